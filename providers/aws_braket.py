"""Amazon Braket provider: ``aws_braket`` nodes on IonQ, Rigetti, IQM and AQT QPUs and the managed simulators.

A node group names a ``target`` from :data:`TARGETS` (``ionq_forte``, ``ionq_aria``, ``rigetti_ankaa``,
``iqm_garnet``, ``iqm_emerald``, ``aqt_ibex_q1``, ``rigetti_cepheus``, ``sv1``, ``dm1``, ``tn1``) or a
device ARN::

    nodes:
      - provider: aws_braket
        target: ionq_forte
        credentials: braket-prod          # a saved BraketCredentials block (else the AWS environment)

Modes:

* ``LIVE``: tasks go to Amazon Braket through the SDK's :class:`~braket.aws.AwsSession`, with the
  credentials, region, S3 results folder and endpoint of the ``BraketCredentials`` block named in
  the node's options, or the AWS environment (``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``...,
  ``AWS_ENDPOINT_URL_BRAKET``). Without credentials the node is refused before anything runs;
  nothing falls back to a simulator. The task ARN is the job id; a re-run re-attaches to it with
  :class:`~braket.aws.AwsQuantumTask`, and the executor's job key goes to ``CreateQuantumTask`` as
  its ``clientToken``, so a submission repeated after a crash returns the task already created.
* ``EMULATED``: the SDK's :class:`~braket.devices.LocalSimulator`: ``braket_dm`` with a depolarizing
  noise model built from the QPU's typical error rates (:data:`TARGETS`), ``braket_sv`` for the
  managed simulators and for QPUs without noise figures. The node option ``emulator`` picks one.
  The spec's ``emulates`` names the simulator that ran; its width limit caps ``max_qubits``.
* ``DRY_RUN``: nothing is contacted; the plan is priced from :mod:`providers.prices`.

Prices: the dated table of :mod:`providers.prices` (a fee per task plus one per shot on QPUs; per
minute with a 3 s minimum per task on the simulators). In LIVE mode, when the device's properties
carry a price (``properties.service.deviceCost``), :meth:`BraketProvider.prepare` prices the node
with it instead, and the node's billing source says so (``Braket device properties ...``).

Circuits are translated gate by gate into a :class:`braket.circuits.Circuit` over the target's
supported gates (Qiskit's transpiler first rewrites other gates into them), so the program Braket
receives uses Braket's own gate names, which its QPUs validate. Measurements become one final
``measure`` of every qubit the circuit uses (some QPUs accept nothing less); which qubit feeds which
classical bit travels with the task as its ``qcos-clbits`` tags, so counts are rebuilt in Qiskit's
order (classical bit 0 rightmost) from the job id alone. Braket lists qubit 0 first in its
bitstrings; the mapping undoes that too.

After a LIVE task completes, the SDK's cost :class:`~braket.tracking.Tracker` prices it from the
AWS price list and the billed simulator duration (``cost_usd`` in the job's ``extra``, and logged);
the node option ``track_cost: false`` skips that (the price list is a download from
pricing.us-east-1.amazonaws.com).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from network.errors import ClusterConfigError, ExecutionError, NodeUnavailableError, ProviderResultError, QVMError
from network.node_providers import JobLimits, JobStatus, NodeJob, NodeProvider, QPUNodeSpec, QVMMode
from network.pricing import Billing, PerMinute, PerTaskShot
from providers.prices import node_prices

if TYPE_CHECKING:
    from qiskit import QuantumCircuit

__all__ = [
    "BraketProvider",
    "BraketTarget",
    "BraketTranslation",
    "NoiseFigures",
    "TARGETS",
    "TARGET_TABLE_DATE",
    "decode_clbit_sources",
    "encode_clbit_sources",
    "qiskit_counts",
    "to_braket",
]

log = logging.getLogger(__name__)

#: When the device table (ARNs, widths, gate sets, error rates) was last checked.
TARGET_TABLE_DATE = "2025-06-01"

#: Qiskit gate name -> Braket ``Circuit`` method with the same matrix (up to a global phase) and
#: the same qubit and parameter order. Qiskit's ``u`` and ``ecr`` are absent on purpose: Braket's
#: gates of those names follow other conventions, so the transpiler rewrites them.
_GATES: dict[str, str] = {
    "id": "i", "x": "x", "y": "y", "z": "z", "h": "h", "s": "s", "sdg": "si", "t": "t", "tdg": "ti",
    "sx": "v", "sxdg": "vi", "rx": "rx", "ry": "ry", "rz": "rz", "p": "phaseshift",
    "cx": "cnot", "cy": "cy", "cz": "cz", "swap": "swap", "iswap": "iswap", "cp": "cphaseshift",
    "rxx": "xx", "ryy": "yy", "rzz": "zz", "ccx": "ccnot", "cswap": "cswap",
}  # fmt: skip
_PASSIVE = frozenset({"barrier", "delay"})
_SIMULATOR_GATES = frozenset(_GATES)
_ONE_QUBIT = frozenset({"x", "y", "z", "h", "s", "sdg", "t", "tdg", "rx", "ry", "rz"})
# Conservative subsets of each device's ``supportedOperations`` (Braket device pages, 2025-06): the
# vendor's compiler takes any of them, so a missing gate only costs a transpiled rewrite.
_IONQ_GATES = _ONE_QUBIT | {"sx", "sxdg", "cx", "swap", "rxx", "ryy", "rzz"}
_RIGETTI_GATES = _ONE_QUBIT | {"id", "p", "cx", "cz", "cp", "swap", "iswap", "ccx", "cswap"}
_IQM_GATES = _ONE_QUBIT | {"id", "p", "cx", "cz", "swap"}
#: Gates every Braket QPU accepts: the basis for device ARNs missing from :data:`TARGETS`.
_COMMON_QPU_GATES = _ONE_QUBIT | {"cx", "swap"}
_EMULATORS = ("braket_sv", "braket_dm")
_TAG_PREFIX = "qcos-clbits"
#: Tag of a program-set task: how many circuits it holds (each program names its clbits in a comment).
_SET_TAG = "qcos-program-set"
_SOURCES_COMMENT = "// qcos-clbits: "
_PROGRAM_SET_ACTION = "braket.ir.openqasm.program_set"
_TAG_VALUE_LIMIT = 256  # characters in one AWS tag value
_TASK_STATUS = {
    "CREATED": JobStatus.QUEUED,
    "QUEUED": JobStatus.QUEUED,
    "RUNNING": JobStatus.RUNNING,
    "CANCELLING": JobStatus.RUNNING,
    "COMPLETED": JobStatus.COMPLETED,
    "FAILED": JobStatus.FAILED,
    "CANCELLED": JobStatus.CANCELLED,
}
#: Error codes worth retrying. ``ServiceQuotaExceededException`` is Braket's limit on concurrent
#: tasks, which frees up as tasks finish; ``DeviceOfflineException`` is transient so that, once
#: the retries are spent, the executor fails the shard over to another node (a permanent error
#: would end the run). ``DeviceRetiredException``, validation, authorization and not-found errors
#: are permanent.
_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "InternalServiceException",
        "InternalServerError",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceQuotaExceededException",
        "DeviceOfflineException",
    }
)
_OPTIONS = frozenset(
    {
        "credentials",
        "region",
        "endpoint_url",
        "s3_bucket",
        "s3_prefix",
        "emulator",
        "track_cost",
        "circuits_per_job",
        "target",
        "device_arn",
    }
)
_DEFAULT_PREFIX = "tasks"  # the SDK's own default key prefix for task results


@dataclass(frozen=True)
class NoiseFigures:
    """A QPU's typical (median) fidelities, for the EMULATED noise model.

    Attributes:
        one_qubit: Average fidelity of a single-qubit gate.
        two_qubit: Average fidelity of a two-qubit gate.
        readout: Probability that a measurement reads the right value.
        source: Where the figures come from.
    """

    one_qubit: float
    two_qubit: float
    readout: float
    source: str

    def channels(self) -> tuple[float, float, float]:
        """Parameters of Braket's ``Depolarizing``, ``TwoQubitDepolarizing`` and ``BitFlip`` channels.

        Braket's depolarizing channels keep the state with probability ``1 - p`` and apply each
        non-identity Pauli with probability ``p / (d**2 - 1)`` (``d = 2**n``). Their average gate
        infidelity is ``p d / (d + 1)``: ``2p/3`` on one qubit, ``4p/5`` on two, so
        ``p = 3/2 (1 - F1)`` and ``p = 5/4 (1 - F2)``. A readout error is a bit flip just before
        the measurement.
        """
        return 1.5 * (1 - self.one_qubit), 1.25 * (1 - self.two_qubit), 1 - self.readout


@dataclass(frozen=True)
class BraketTarget:
    """One Braket device a node can name.

    Attributes:
        arn: Device ARN; QPU ARNs carry their region, simulator ARNs none (any Braket region).
        max_qubits: Device width (0 for a device ARN missing from :data:`TARGETS`).
        gates: Qiskit gate names whose Braket equivalents the device accepts.
        noise: Typical error rates for EMULATED mode (QPUs), or ``None``.
    """

    arn: str
    max_qubits: int
    gates: frozenset[str]
    noise: NoiseFigures | None = None

    @property
    def is_qpu(self) -> bool:
        return "/qpu/" in self.arn

    @property
    def region(self) -> str | None:
        """The region in the ARN, or ``None`` for the managed simulators."""
        return self.arn.split(":")[3] or None


_VENDOR_FIGURES = (
    "typical published median fidelities (vendor and Braket device pages, 2025), rounded; not calibration data"
)

#: The devices known by name, as of :data:`TARGET_TABLE_DATE`. Noise figures are approximations.
TARGETS: dict[str, BraketTarget] = {
    "ionq_forte": BraketTarget(
        "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1", 36, _IONQ_GATES,
        NoiseFigures(0.9998, 0.995, 0.995, _VENDOR_FIGURES),
    ),
    "ionq_aria": BraketTarget(
        "arn:aws:braket:us-east-1::device/qpu/ionq/Aria-1", 25, _IONQ_GATES,
        NoiseFigures(0.9995, 0.99, 0.994, _VENDOR_FIGURES),
    ),
    "rigetti_ankaa": BraketTarget(
        "arn:aws:braket:us-west-1::device/qpu/rigetti/Ankaa-3", 84, _RIGETTI_GATES,
        NoiseFigures(0.999, 0.995, 0.97, _VENDOR_FIGURES),
    ),
    "iqm_garnet": BraketTarget(
        "arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet", 20, _IQM_GATES,
        NoiseFigures(0.999, 0.995, 0.98, _VENDOR_FIGURES),
    ),
    # Priced in providers.prices; ARNs and widths as Braket lists them (2026: amazon-braket-sdk 1.88 does
    # not name them yet). No noise figures here: EMULATED runs them on braket_sv unless told otherwise.
    "iqm_emerald": BraketTarget("arn:aws:braket:eu-north-1::device/qpu/iqm/Emerald", 54, _IQM_GATES),
    "aqt_ibex_q1": BraketTarget("arn:aws:braket:eu-north-1::device/qpu/aqt/Ibex-Q1", 12, _COMMON_QPU_GATES),
    "rigetti_cepheus": BraketTarget(
        "arn:aws:braket:us-west-1::device/qpu/rigetti/Cepheus-1-108Q", 108, _RIGETTI_GATES
    ),
    "sv1": BraketTarget("arn:aws:braket:::device/quantum-simulator/amazon/sv1", 34, _SIMULATOR_GATES),
    "dm1": BraketTarget("arn:aws:braket:::device/quantum-simulator/amazon/dm1", 17, _SIMULATOR_GATES),
    "tn1": BraketTarget("arn:aws:braket:::device/quantum-simulator/amazon/tn1", 50, _SIMULATOR_GATES),
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Qiskit -> Braket
# ---------------------------------------------------------------------------------------------


@dataclass
class BraketTranslation:
    """A Qiskit circuit as Braket runs it.

    Attributes:
        circuit: The gates, on qubits renumbered ``0..k-1`` in the order of the original indices
            (Braket declares as many qubits as the highest index used); no measurement yet.
        measured: Renumbered qubits whose final value some classical bit records, ascending.
        sources: For each classical bit, the renumbered qubit it records, or ``None`` when no
            measurement writes it (it stays 0).
        qubits: Original index of each renumbered qubit.
    """

    circuit: Any
    measured: tuple[int, ...]
    sources: tuple[int | None, ...]
    qubits: tuple[int, ...]


def to_braket(circuit: QuantumCircuit, gates: frozenset[str], *, max_qubits: int) -> BraketTranslation:
    """Translate ``circuit`` for a device that accepts ``gates`` (Qiskit names, see ``_GATES``).

    Mid-circuit measurements are deferred (a CX onto an ancilla measured at the end, see
    :func:`providers.aer.defer_measurements`); gates outside ``gates`` go through Qiskit's
    transpiler without a coupling map, so qubit indices are kept (Braket's own compiler places
    them on the device).

    Raises:
        ExecutionError: The circuit has something Braket cannot run: while loops, switch statements,
            unbound parameters, or mid-circuit measurements that cannot be deferred.
    """
    from braket.circuits import Circuit

    from network.compilation import translate
    from network.errors import CircuitCompileError
    from providers.aer import defer_measurements

    n_measure = sum(1 for inst in circuit.data if inst.name == "measure")
    # defer_measurements keeps a measurement mid-circuit when 2**k > shots (Aer then branches per
    # shot); Braket cannot branch, so the shot count passed makes deferral always preferable.
    deferred, dynamic = defer_measurements(circuit, 2**n_measure, max_qubits)
    if dynamic:
        raise ExecutionError(
            "Amazon Braket runs circuits whose measurements are all final; this circuit measures "
            "mid-circuit in a way that cannot be deferred (while loops, switch statements, classical variables, "
            f"or too few qubits for the ancillas within {max_qubits})."
        )
    if circuit.parameters:
        names = ", ".join(sorted(p.name for p in circuit.parameters))
        raise ExecutionError(f"Bind the circuit's parameters before running it on Amazon Braket: {names}.")
    try:  # cached per distinct circuit and gate set; a circuit already in the gates is kept as it is
        deferred = translate(deferred, gates | {"measure"}, target="Amazon Braket")
    except CircuitCompileError as exc:
        raise ExecutionError(f"The circuit cannot be rewritten into Amazon Braket's gates: {exc}") from exc
    index = {bit: i for i, bit in enumerate(deferred.qubits)}
    clbit_index = {bit: i for i, bit in enumerate(deferred.clbits)}
    used = sorted({index[q] for inst in deferred.data if inst.name not in _PASSIVE for q in inst.qubits})
    compact = {q: i for i, q in enumerate(used)}
    braket = Circuit()
    final: dict[int, int] = {}  # clbit -> renumbered qubit; measurements are final here
    for inst in deferred.data:
        name = inst.name
        if name in _PASSIVE:
            continue
        targets = [compact[index[q]] for q in inst.qubits]
        if name == "measure":
            final[clbit_index[inst.clbits[0]]] = targets[0]
            continue
        method = _GATES.get(name)
        if method is None or name not in gates:
            raise ExecutionError(
                f"Amazon Braket cannot run the instruction {name!r}: it runs unitary gates and final measurements only."
            )
        getattr(braket, method)(*targets, *(float(p) for p in inst.operation.params))
    sources = tuple(final.get(c) for c in range(deferred.num_clbits))
    measured = tuple(sorted(set(final.values())))
    return BraketTranslation(braket, measured, sources, tuple(used))


def encode_clbit_sources(sources: Sequence[int | None]) -> str:
    """Compact text for :attr:`BraketTranslation.sources`, in the characters AWS tags allow.

    Tokens joined by ``.``: ``a-b`` a run of consecutive qubits, ``a`` one qubit, ``xN`` (or ``x``)
    N unwritten classical bits. ``measure_all`` on 36 qubits is ``"0-35"``.
    """
    tokens: list[str] = []
    i = 0
    while i < len(sources):
        j = i
        first = sources[i]
        if first is None:
            while j + 1 < len(sources) and sources[j + 1] is None:
                j += 1
            tokens.append("x" if j == i else f"x{j - i + 1}")
        else:
            while j + 1 < len(sources) and sources[j + 1] == first + (j + 1 - i):
                j += 1
            tokens.append(str(first) if j == i else f"{first}-{first + j - i}")
        i = j + 1
    return ".".join(tokens)


def decode_clbit_sources(text: str) -> tuple[int | None, ...]:
    """Invert :func:`encode_clbit_sources`.

    Raises:
        ValueError: The text is not in that format.
    """
    out: list[int | None] = []
    for token in text.split(".") if text else []:
        if token.startswith("x"):
            out.extend([None] * (int(token[1:]) if len(token) > 1 else 1))
        elif "-" in token:
            first, last = (int(part) for part in token.split("-"))
            if last < first:
                raise ValueError(f"descending run {token!r}")
            out.extend(range(first, last + 1))
        else:
            out.append(int(token))
    return tuple(out)


def _layout_tags(sources: Sequence[int | None]) -> dict[str, str]:
    text = encode_clbit_sources(sources)
    chunks = [text[i : i + _TAG_VALUE_LIMIT] for i in range(0, len(text), _TAG_VALUE_LIMIT)] or [""]
    return {_TAG_PREFIX if i == 0 else f"{_TAG_PREFIX}-{i}": chunk for i, chunk in enumerate(chunks)}


def _sources_from_tags(tags: Mapping[str, str], node_id: str, arn: str) -> tuple[int | None, ...]:
    if _TAG_PREFIX not in tags:
        raise ProviderResultError(
            f"Node {node_id!r}: Braket task {arn} has no {_TAG_PREFIX!r} tag; it was not submitted by QCOS, "
            "so its classical bits cannot be mapped."
        )
    parts = [tags[_TAG_PREFIX]]
    while f"{_TAG_PREFIX}-{len(parts)}" in tags:
        parts.append(tags[f"{_TAG_PREFIX}-{len(parts)}"])
    try:
        return decode_clbit_sources("".join(parts))
    except ValueError as exc:
        raise ProviderResultError(
            f"Node {node_id!r}: Braket task {arn} has a malformed {_TAG_PREFIX!r} tag: {exc}"
        ) from exc


def qiskit_counts(
    counts: Mapping[str, int], measured: Sequence[int], sources: Sequence[int | None], node_id: str
) -> dict[str, int]:
    """Counts keyed by Braket bitstrings (character ``i`` = qubit ``measured[i]``) in Qiskit's order.

    Raises:
        ProviderResultError: A classical bit's qubit was not measured, or a bitstring is malformed.
    """
    position = {q: i for i, q in enumerate(measured)}
    missing = sorted({s for s in sources if s is not None} - position.keys())
    if missing:
        raise ProviderResultError(
            f"Node {node_id!r}: the result measured qubits {list(measured)}, not qubit(s) {missing} that the "
            "circuit's classical bits record."
        )
    columns = [None if s is None else position[s] for s in reversed(sources)]  # classical bit 0 rightmost
    out: dict[str, int] = {}
    for bits, n in counts.items():
        if len(bits) != len(measured) or set(bits) - {"0", "1"}:
            raise ProviderResultError(
                f"Node {node_id!r} returned bitstring {bits!r}; expected {len(measured)} binary digits."
            )
        key = "".join("0" if c is None else bits[c] for c in columns)
        out[key] = out.get(key, 0) + int(n)
    return out


def _apportion(probabilities: Mapping[str, float], shots: int) -> dict[str, int]:
    """Whole counts summing to ``shots`` (largest remainders), from measured frequencies.

    IonQ returns frequencies rather than shots; rounding each one alone (as the SDK does) can
    miss the shot total by one or two.
    """
    keys = list(probabilities)
    weights = [max(float(probabilities[k]), 0.0) for k in keys]
    total = sum(weights) or 1.0
    exact = [w / total * shots for w in weights]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(keys)), key=lambda i: counts[i] - exact[i])
    for i in order[: shots - sum(counts)]:
        counts[i] += 1
    return {k: c for k, c in zip(keys, counts, strict=True) if c}


def _result_counts(result: Any, sources: Sequence[int | None], node_id: str) -> dict[str, int]:
    measured = result.measured_qubits
    if measured is None:
        raise ProviderResultError(f"Node {node_id!r}: the Braket result lists no measured qubits.")
    if result.measurement_probabilities_copied_from_device:
        raw = _apportion(result.measurement_probabilities, int(result.task_metadata.shots))
    else:
        raw = dict(result.measurement_counts)
    return qiskit_counts(raw, measured, sources, node_id)


def _program(translation: BraketTranslation) -> Any:
    """The OpenQASM program of a translated circuit. Every qubit is measured: some QPUs require it
    (``requiresAllQubitsMeasurement``); the counts then read the measured qubits' columns only. A
    circuit that measures nothing (in a program set) measures qubit 0, whose column no bit reads."""
    from braket.circuits.serialization import IRType

    circuit = translation.circuit.copy()
    if not translation.qubits:
        circuit.i(0)
    return circuit.measure(range(max(len(translation.qubits), 1))).to_ir(ir_type=IRType.OPENQASM)


def _program_set_counts(session: Any, metadata: Mapping[str, Any], node_id: str) -> list[dict[str, int]]:
    """Each program's counts, in order, from a finished program-set task's results in S3.

    The results JSON (a ``ProgramSetTaskResult``) holds its programs, their executables and the
    task metadata inline, or as keys relative to its ``s3Location``; both are read. Each program's
    clbit layout comes from the comment :meth:`BraketProvider.submit_many` wrote into it.

    Raises:
        ProviderResultError: Malformed results, a failed executable, or a program count other
            than the task's tag says.
    """
    from braket.ir.openqasm import Program
    from braket.schema_common import BraketSchemaBase
    from braket.task_result import (
        ProgramResult,
        ProgramSetExecutableFailure,
        ProgramSetExecutableResult,
        ProgramSetTaskResult,
    )

    arn = metadata["quantumTaskArn"]
    bucket, directory = metadata["outputS3Bucket"], metadata["outputS3Directory"]

    def load(raw: Any, bucket: str, prefix: str | None, kind: type) -> Any:
        if isinstance(raw, str) and prefix is not None:
            raw = BraketSchemaBase.parse_raw_schema(session.retrieve_s3_object_body(bucket, f"{prefix}/{raw}"))
        if not isinstance(raw, kind):
            raise ProviderResultError(f"Node {node_id!r}: Braket task {arn} returned {type(raw).__name__}, "
                                      f"expected {kind.__name__}.")  # fmt: skip
        return raw

    try:
        result = BraketSchemaBase.parse_raw_schema(session.retrieve_s3_object_body(bucket, f"{directory}/results.json"))
        if not isinstance(result, ProgramSetTaskResult):
            raise ProviderResultError(f"Node {node_id!r}: Braket task {arn} has no program-set result.")
        where, prefix = result.s3Location or (bucket, None)
        expected = int(metadata["tags"][_SET_TAG])
        if len(result.programResults) != expected:
            raise ProviderResultError(
                f"Node {node_id!r}: Braket task {arn} returned {len(result.programResults)} program results "
                f"for {expected} programs."
            )
        per_program = int(metadata["shots"]) // expected
        out = []
        for i, raw_program in enumerate(result.programResults):
            program_result = load(raw_program, where, prefix, ProgramResult)
            source = load(program_result.source, where, prefix, Program).source
            line = next((ln for ln in source.splitlines() if ln.startswith(_SOURCES_COMMENT)), None)
            if line is None:
                raise ProviderResultError(
                    f"Node {node_id!r}: program {i} of Braket task {arn} names no clbits; it was not submitted by QCOS."
                )
            sources = decode_clbit_sources(line.removeprefix(_SOURCES_COMMENT).strip())
            if len(program_result.executableResults) != 1:
                raise ProviderResultError(
                    f"Node {node_id!r}: program {i} of Braket task {arn} returned "
                    f"{len(program_result.executableResults)} executables, expected 1."
                )
            executable = load(program_result.executableResults[0], where, prefix, BraketSchemaBase)
            if isinstance(executable, ProgramSetExecutableFailure):
                failure = executable.failureMetadata
                raise ProviderResultError(
                    f"Node {node_id!r}: program {i} of Braket task {arn} failed ({failure.category.value}): "
                    f"{failure.failureReason}"
                )
            if not isinstance(executable, ProgramSetExecutableResult) or not executable.measuredQubits:
                raise ProviderResultError(f"Node {node_id!r}: program {i} of Braket task {arn} lists no measurements.")
            if executable.measurements:
                raw: dict[str, int] = {}
                for row in executable.measurements:
                    key = "".join(str(b) for b in row)
                    raw[key] = raw.get(key, 0) + 1
            elif executable.measurementProbabilities:
                raw = _apportion(executable.measurementProbabilities, per_program)
            else:
                raise ProviderResultError(f"Node {node_id!r}: program {i} of Braket task {arn} returned no counts.")
            out.append(qiskit_counts(raw, executable.measuredQubits, sources, node_id))
        return out
    except (ValueError, KeyError, TypeError) as exc:  # pydantic rejects malformed JSON; a tag or key is missing
        raise ProviderResultError(f"Node {node_id!r}: the result of Braket task {arn} is malformed: {exc}") from exc


def _tracked_cost(metadata: Mapping[str, Any], duration_ms: int | None) -> float:
    """The Braket cost :class:`Tracker`'s price of one finished task, in US dollars.

    A tracker prices the tasks whose creation it saw. Here creation and completion happen in
    different calls, perhaps different processes (re-attached tasks), so a fresh tracker is told
    both from the task's own metadata, with the SDK's event types: the price then comes from
    the AWS price list, with the billed simulator duration (3 s minimum) and reservations as the
    SDK applies them.
    """
    from braket.tracking import Tracker
    from braket.tracking.tracking_events import _TaskCompletionEvent, _TaskCreationEvent

    arn = metadata["quantumTaskArn"]
    reserved = any(a.get("type") == "RESERVATION_TIME_WINDOW_ARN" for a in metadata.get("associations") or [])
    tracker = Tracker()
    tracker.receive_event(
        _TaskCreationEvent(
            arn=arn,
            shots=int(metadata["shots"]),
            is_job_task=bool(metadata.get("jobArn")),
            device=metadata["deviceArn"],
        )
    )
    tracker.receive_event(
        _TaskCompletionEvent(
            arn=arn,
            execution_duration=duration_ms,
            status=metadata["status"],
            has_reservation_arn=reserved,
        )
    )
    return float(tracker.qpu_tasks_cost() + tracker.simulator_tasks_cost())


def _is_task_arn(job_id: str) -> bool:
    parts = job_id.split(":")
    return len(parts) == 6 and parts[:3] == ["arn", "aws", "braket"] and parts[5].startswith("quantum-task/")


# ---------------------------------------------------------------------------------------------
# The provider
# ---------------------------------------------------------------------------------------------


@dataclass
class _Account:
    """An AWS session in one region, and where its task results go."""

    session: Any
    folder: tuple[str, str] | None


class BraketProvider(NodeProvider):
    """Amazon Braket QPUs and managed simulators (``target``), emulated with the SDK's LocalSimulator."""

    key = "aws_braket"
    description = "Amazon Braket: IonQ, Rigetti, IQM and AQT QPUs, SV1/DM1/TN1 (EMULATED: the SDK's LocalSimulator)"
    requires = ("braket",)
    extra = "braket"
    remote = True

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._accounts: dict[tuple[Any, ...], _Account] = {}
        self._simulators: dict[str, Any] = {}
        self._set_limits: dict[str, tuple[int, int] | None] = {}

    def build_nodes(
        self,
        n_nodes: int = 1,
        target: str = "sv1",
        max_qubits: int | None = None,
        *,
        cost_per_shot: float | None = None,
        cost_per_task: float | None = None,
        cost_per_second: float | None = None,
        work_pool: str | None = None,
        tags: Sequence[str] = (),
        credentials: str | None = None,
        options: Mapping[str, Any] | None = None,
        **more_options: Any,
    ) -> list[QPUNodeSpec]:
        """Build ``n_nodes`` nodes on one Braket device.

        Args:
            n_nodes: How many nodes (each runs its shards in turn; tasks of different nodes run at once).
            target: A name from :data:`TARGETS` or a device ARN.
            max_qubits: Width limit (default and maximum: the device's; required for a device ARN).
            cost_per_shot: Override of the price table's per-shot price.
            cost_per_task: Override of the per-task price.
            cost_per_second: Override of the per-second price (managed simulators).
            work_pool: Prefect work pool that runs these nodes' shards.
            tags: Labels for filtering.
            credentials: Name of a saved ``BraketCredentials`` block (default: the AWS environment).
            options: Node options: ``region``, ``endpoint_url`` (a VPC or test endpoint of the Braket
                API), ``s3_bucket``, ``s3_prefix``, ``emulator`` (``braket_sv`` or ``braket_dm``),
                ``track_cost`` (default true), ``credentials``, ``circuits_per_job`` (programs per
                program-set task, at most the device's; 1 sends one task per circuit).
            **more_options: The same options given as keywords.

        Raises:
            ClusterConfigError: Unknown target or option, or a width beyond the device's.
        """
        node_options = {**(options or {}), **more_options}
        unknown = sorted(set(node_options) - _OPTIONS)
        if unknown:
            raise ClusterConfigError(
                f"Provider {self.key!r}: unknown option(s) {', '.join(unknown)}. "
                f"Known options: {', '.join(sorted(_OPTIONS - {'target', 'device_arn'}))}."
            )
        if credentials is not None:
            node_options["credentials"] = credentials
        emulator = node_options.get("emulator")
        if emulator is not None and emulator not in _EMULATORS:
            raise ClusterConfigError(
                f"Provider {self.key!r}: emulator must be one of {', '.join(_EMULATORS)}, got {emulator!r}."
            )
        spec_target = _target(target)
        if max_qubits is None:
            if not spec_target.max_qubits:
                raise ClusterConfigError(f"Provider {self.key!r}: give max_qubits for the device ARN {target!r}.")
            max_qubits = spec_target.max_qubits
        elif isinstance(max_qubits, int) and spec_target.max_qubits and max_qubits > spec_target.max_qubits:
            raise ClusterConfigError(
                f"Provider {self.key!r}: target {target!r} has {spec_target.max_qubits} qubits; "
                f"max_qubits={max_qubits} is more."
            )
        # a device ARN of a named target is priced like its name
        named = next((name for name, known in TARGETS.items() if known.arn == spec_target.arn), target)
        prices = node_prices(
            self.key, named, cost_per_task=cost_per_task, cost_per_shot=cost_per_shot, cost_per_second=cost_per_second
        )
        return self.make_nodes(
            n_nodes,
            max_qubits=max_qubits,
            exact=True,
            method=target,
            device="QPU" if spec_target.is_qpu else "CPU",
            **prices,
            work_pool=work_pool,
            tags=tuple(tags),
            host=self.key,  # a cloud device: it shares no cores with this machine
            mid_circuit=False,  # measurements are final on Braket: mid-circuit ones are deferred onto ancillas
            options={**node_options, "target": target, "device_arn": spec_target.arn},
        )

    def prepare(self, node_spec: QPUNodeSpec, mode: QVMMode) -> QPUNodeSpec:
        """EMULATED: the LocalSimulator spec; LIVE: check credentials and the device, and take the
        device's own price where its properties carry one (:func:`_device_billing`); DRY_RUN: as is.

        Raises:
            NodeUnavailableError: LIVE without credentials, or the device is unknown, offline or retired.
        """
        if mode is QVMMode.DRY_RUN:
            return node_spec
        target = _target(node_spec.options["target"])
        if mode is QVMMode.EMULATED:
            emulator = node_spec.options.get("emulator") or ("braket_dm" if target.noise else "braket_sv")
            limit = self._simulator(emulator).properties.paradigm.qubitCount
            return replace(
                node_spec, device="CPU", host="local", emulates=emulator, max_qubits=min(node_spec.max_qubits, limit)
            )
        device = self._check_device(node_spec, target)
        self._remember_program_set_limits(target.arn, device.properties)
        billing = _device_billing(device, node_spec)
        return node_spec if billing is None else replace(node_spec, billing=billing)

    def execute(
        self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None
    ) -> dict[str, int]:
        """Run and wait (LIVE: submit, then poll with a growing interval up to 5 s).

        Raises:
            ExecutionError: The task failed or was cancelled.
        """
        return self.counts_of(self.wait(self.submit(circuit, shots, node_spec, seed=seed), node_spec), node_spec)

    def submit(
        self,
        circuit: QuantumCircuit,
        shots: int,
        node_spec: QPUNodeSpec,
        *,
        seed: int | None = None,
        job_key: str | None = None,
    ) -> NodeJob:
        """Create a Braket task (LIVE) or run the LocalSimulator (EMULATED, returns a finished job).

        The task's ``clientToken`` derives from ``job_key``, the device and the shots: submitting
        the same shard again returns the task already created instead of paying twice.
        """
        target = _target(node_spec.options["target"])
        translation = to_braket(circuit, target.gates, max_qubits=node_spec.max_qubits)
        if not translation.measured:  # nothing is measured: every shot reads all zeros
            counts = {"0" * circuit.num_clbits: shots}
            return NodeJob(f"local-{uuid.uuid4().hex}", node_spec.node_id, JobStatus.COMPLETED, counts=counts)
        if node_spec.emulates is not None:
            counts = self._emulate(translation, shots, node_spec, target, seed)
            return NodeJob(f"local-{uuid.uuid4().hex}", node_spec.node_id, JobStatus.COMPLETED, counts=counts)
        account = self._account(node_spec, target.region)
        folder = self._folder(account)
        program = _program(translation)
        token_source = f"{job_key}|{target.arn}|{shots}" if job_key else uuid.uuid4().hex
        arn = account.session.create_quantum_task(
            deviceArn=target.arn,
            outputS3Bucket=folder[0],
            outputS3KeyPrefix=folder[1],
            shots=shots,
            action=program.json(),
            clientToken=hashlib.sha256(token_source.encode()).hexdigest(),  # 64 characters, Braket's limit
            tags=_layout_tags(translation.sources),
        )
        log.info("node %s: Braket task %s created on %s (%d shots)", node_spec.node_id, arn, target.arn, shots)
        return NodeJob(arn, node_spec.node_id, JobStatus.QUEUED)

    def job_limits(self, node_spec: QPUNodeSpec) -> JobLimits:
        """A program set per task, as the device's properties allow (``maximumExecutables``,
        ``maximumTotalShots``), its shots divided evenly among its programs; one circuit per task
        on a device without program sets or with ``circuits_per_job: 1``."""
        wanted = node_spec.options.get("circuits_per_job")
        if wanted == 1:
            return JobLimits()
        limits = self._program_set_limits(node_spec)
        if limits is None:
            return JobLimits()
        most, total = limits
        return JobLimits(circuits=min(most, int(wanted)) if wanted else most, total_shots=total, same_shots=True)

    def submit_many(
        self,
        circuits: Sequence[QuantumCircuit],
        shots: Sequence[int],
        node_spec: QPUNodeSpec,
        *,
        seeds: Sequence[int | None],
        job_key: str,
    ) -> NodeJob:
        """One program-set task running every circuit with the same shots (LIVE), or each circuit
        on the LocalSimulator with its own seed (EMULATED, a finished job).

        The task's ``clientToken`` derives from ``job_key``: submitting again returns the task
        already created. Each program carries its clbit layout in a comment, so a fresh process
        re-attaches from the task ARN alone.

        Raises:
            ExecutionError: The circuits ask for different shots.
        """
        if len(set(shots)) > 1:
            raise ExecutionError(
                f"Node {node_spec.node_id!r}: a Braket program set runs all its programs with the same shots; "
                f"got {sorted(set(shots))}."
            )
        target = _target(node_spec.options["target"])
        translations = [to_braket(c, target.gates, max_qubits=node_spec.max_qubits) for c in circuits]
        if node_spec.emulates is not None:
            batch = [
                self._emulate(t, n, node_spec, target, seed) if t.measured else {"0" * c.num_clbits: n}
                for t, c, n, seed in zip(translations, circuits, shots, seeds, strict=True)
            ]
            return NodeJob(f"local-{uuid.uuid4().hex}", node_spec.node_id, JobStatus.COMPLETED, batch_counts=batch)
        from braket.ir.openqasm import Program
        from braket.ir.openqasm.program_set_v1 import ProgramSet

        programs = [
            Program(source=f"{_program(t).source}\n{_SOURCES_COMMENT}{encode_clbit_sources(t.sources)}\n")
            for t in translations
        ]
        total = shots[0] * len(programs)
        account = self._account(node_spec, target.region)
        folder = self._folder(account)
        arn = account.session.create_quantum_task(
            deviceArn=target.arn,
            outputS3Bucket=folder[0],
            outputS3KeyPrefix=folder[1],
            shots=total,
            action=ProgramSet(programs=programs).json(),
            clientToken=hashlib.sha256(f"{job_key}|{target.arn}|{total}|set".encode()).hexdigest(),
            tags={_SET_TAG: str(len(programs))},
        )
        log.info("node %s: Braket program-set task %s created on %s (%d programs x %d shots)",
                 node_spec.node_id, arn, target.arn, len(programs), shots[0])  # fmt: skip
        return NodeJob(arn, node_spec.node_id, JobStatus.QUEUED)

    def cancel(self, job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        """Cancel the task (CancelQuantumTask) and return its state afterwards: ``CANCELLED`` once
        Braket confirms it, its result when it finished first, else still running (``CANCELLING``)."""
        if job.status.done or not _is_task_arn(job.job_id):
            return super().cancel(job, node_spec)
        account = self._account(node_spec, job.job_id.split(":")[3])
        current = self.poll(job, node_spec)
        if current.status.done:
            return current
        account.session.cancel_quantum_task(job.job_id)
        log.info("node %s: cancellation of Braket task %s requested", node_spec.node_id, job.job_id)
        return self.poll(job, node_spec)

    def poll(self, job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        """Ask Braket for the task's status; fetch and convert its result once it has completed.

        Raises:
            ProviderResultError: The result in S3 is malformed or does not match the circuit.
        """
        if job.status.done:
            return job
        from braket.aws import AwsQuantumTask

        account = self._account(node_spec, job.job_id.split(":")[3])
        task = AwsQuantumTask(job.job_id, aws_session=account.session, quiet=True)
        metadata = task.metadata()
        status = _TASK_STATUS.get(metadata["status"], JobStatus.QUEUED)
        if status is JobStatus.FAILED:
            reason = metadata.get("failureReason") or metadata["status"]
            return NodeJob(job.job_id, job.node_id, status, error=f"Braket task {metadata['status']}: {reason}")
        if status is JobStatus.CANCELLED:
            return NodeJob(job.job_id, job.node_id, status, error="Braket task CANCELLED")
        if status is not JobStatus.COMPLETED:
            return NodeJob(job.job_id, job.node_id, status)
        tags = metadata.get("tags") or {}
        if _SET_TAG in tags:
            batch = _program_set_counts(account.session, metadata, node_spec.node_id)
            return NodeJob(
                job.job_id,
                job.node_id,
                JobStatus.COMPLETED,
                counts=batch[0] if len(batch) == 1 else None,
                extra=self._cost(node_spec, metadata, None),
                batch_counts=batch,
            )
        sources = _sources_from_tags(tags, node_spec.node_id, job.job_id)
        try:
            result = task.result()
        except (ValueError, KeyError, TypeError) as exc:  # pydantic rejects a malformed results.json
            raise ProviderResultError(
                f"Node {node_spec.node_id!r}: the result of Braket task {job.job_id} is malformed: {exc}"
            ) from exc
        if result is None:
            raise ProviderResultError(f"Node {node_spec.node_id!r}: Braket task {job.job_id} returned no result.")
        counts = _result_counts(result, sources, node_spec.node_id)
        simulator = getattr(result.additional_metadata, "simulatorMetadata", None)
        extra = self._cost(node_spec, metadata, getattr(simulator, "executionDuration", None))
        return NodeJob(job.job_id, job.node_id, JobStatus.COMPLETED, counts=counts, extra=extra)

    @staticmethod
    def _cost(node_spec: QPUNodeSpec, metadata: Mapping[str, Any], duration_ms: int | None) -> dict[str, Any]:
        """The SDK cost ``Tracker``'s price of the finished task (unless ``track_cost`` is off)."""
        if not node_spec.options.get("track_cost", True):
            return {}
        arn = metadata["quantumTaskArn"]
        try:
            cost = _tracked_cost(metadata, duration_ms)
        except Exception as exc:  # the price list is a download; a missing price never fails a shard
            log.warning("node %s: no Braket cost for task %s: %s", node_spec.node_id, arn, exc)
            return {"cost_error": f"{type(exc).__name__}: {exc}"}
        log.info("node %s: Braket task %s cost $%.6f", node_spec.node_id, arn, cost)
        return {"cost_usd": cost, "cost_source": "braket.tracking.Tracker"}

    def attach(self, job_id: str, node_spec: QPUNodeSpec) -> NodeJob:
        """Re-attach to a Braket task from its ARN.

        Raises:
            LookupError: Not a Braket task ARN (an emulated job), an emulated node, or Braket does
                not know the task.
        """
        if node_spec.emulates is not None or not _is_task_arn(job_id):
            raise LookupError(f"Node {node_spec.node_id!r} cannot re-attach to job {job_id!r}.")
        from botocore.exceptions import ClientError  # type: ignore[import-untyped, unused-ignore]

        try:
            return self.poll(NodeJob(job_id, node_spec.node_id, JobStatus.QUEUED), node_spec)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("ResourceNotFoundException", "ValidationException"):
                raise LookupError(f"Braket does not know task {job_id}: {exc}") from exc
            raise

    def is_transient(self, error: BaseException) -> bool:
        """Throttling, 5xx, timeouts, connection errors, quotas and offline devices are worth retrying."""
        from botocore.exceptions import (  # type: ignore[import-untyped, unused-ignore]
            ClientError,
            HTTPClientError,
        )
        from botocore.exceptions import ConnectionError as BotoConnectionError

        if isinstance(error, ClientError):
            response = error.response
            code = response.get("Error", {}).get("Code", "")
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return code in _TRANSIENT_CODES or status == 429 or status >= 500
        return isinstance(error, BotoConnectionError | HTTPClientError) or super().is_transient(error)

    def _remember_program_set_limits(self, arn: str, properties: Any) -> tuple[int, int] | None:
        from braket.device_schema import DeviceActionType

        action = properties.action.get(DeviceActionType.OPENQASM_PROGRAM_SET)
        limits = None if action is None else (int(action.maximumExecutables), int(action.maximumTotalShots))
        with self._lock:
            self._set_limits[arn] = limits
        return limits

    def _program_set_limits(self, node_spec: QPUNodeSpec) -> tuple[int, int] | None:
        """``(maximumExecutables, maximumTotalShots)`` of the device's program sets (the emulator's
        in EMULATED mode), or ``None`` when it takes none."""
        if node_spec.emulates is not None:
            return self._remember_program_set_limits(node_spec.emulates, self._simulator(node_spec.emulates).properties)
        arn = node_spec.options["device_arn"]
        with self._lock:
            if arn in self._set_limits:
                return self._set_limits[arn]
        device = self._check_device(node_spec, _target(node_spec.options["target"]))
        return self._remember_program_set_limits(arn, device.properties)

    # -- EMULATED -------------------------------------------------------------------------

    def _simulator(self, name: str) -> Any:
        with self._lock:
            if name not in self._simulators:
                from braket.devices import LocalSimulator

                self._simulators[name] = LocalSimulator(name)
            return self._simulators[name]

    def _emulate(
        self, translation: BraketTranslation, shots: int, node_spec: QPUNodeSpec, target: BraketTarget, seed: int | None
    ) -> dict[str, int]:
        """Exact probabilities of the measured qubits from the LocalSimulator, sampled with ``seed``.

        The SDK's local simulators take no seed; asking for the distribution (``shots=0``) and
        sampling it here keeps runs reproducible from the spec's seed. Probabilities are asked for
        in ascending qubit order: the simulator mislabels a permuted target list.
        """
        import numpy as np
        from braket.circuits import Noise

        circuit = translation.circuit.copy()
        gate_types: dict[int, set[type]] = {1: set(), 2: set()}
        for inst in circuit.instructions:
            gate_types.get(inst.operator.qubit_count, set()).add(type(inst.operator))
        idle = sorted(set(translation.measured) - {q for inst in circuit.instructions for q in inst.target})
        for qubit in idle:  # the simulator needs every measured qubit in the circuit
            circuit.i(qubit)
        if node_spec.emulates == "braket_dm" and target.noise is not None:
            one, two, readout = target.noise.channels()
            if gate_types[1]:
                circuit.apply_gate_noise(Noise.Depolarizing(one), target_gates=list(gate_types[1]))
            if gate_types[2]:
                circuit.apply_gate_noise(Noise.TwoQubitDepolarizing(two), target_gates=list(gate_types[2]))
            circuit.apply_readout_noise(Noise.BitFlip(readout), target_qubits=list(translation.measured))
        circuit.probability(target=list(translation.measured))
        emulator = node_spec.emulates or "braket_sv"
        try:
            result = self._simulator(emulator).run(circuit, shots=0).result()
        except Exception as exc:  # the simulator raises ValueError, IndexError, its own parser errors...
            raise ExecutionError(f"The Braket {emulator} emulator failed on node {node_spec.node_id!r}: {exc}") from exc
        probabilities = np.clip(np.asarray(result.values[0], dtype=float), 0.0, None)
        sampled = np.random.default_rng(seed).multinomial(shots, probabilities / probabilities.sum())
        width = len(translation.measured)
        raw = {format(int(i), f"0{width}b"): int(sampled[i]) for i in np.flatnonzero(sampled)}
        return qiskit_counts(raw, translation.measured, translation.sources, node_spec.node_id)

    # -- LIVE -----------------------------------------------------------------------------

    def _account(self, node_spec: QPUNodeSpec, region: str | None) -> _Account:
        """The AWS session for the node's credentials in ``region`` (default: the options', the
        block's, the environment's, else us-east-1), made once per provider.

        Raises:
            NodeUnavailableError: No credentials, or the named block cannot be loaded.
        """
        options = node_spec.options
        name = options.get("credentials")
        key = (name, region or options.get("region"), options.get("endpoint_url"))
        with self._lock:
            if key in self._accounts:
                return self._accounts[key]
        import boto3  # type: ignore[import-untyped, unused-ignore]
        from braket.aws import AwsSession

        block = _load_credentials(name, node_spec) if name else None
        region = region or options.get("region") or (block.region_name if block else None)
        if block is not None:
            boto = _block_session(block, region, node_spec)
        else:
            boto = boto3.Session(region_name=region)
            if boto.region_name is None:
                boto = boto3.Session(region_name="us-east-1")
        if boto.get_credentials() is None:
            raise NodeUnavailableError(
                f"Node {node_spec.node_id!r} ({self.key}, {options['target']}) runs LIVE on Amazon Braket but "
                "found no AWS credentials: name a BraketCredentials block in the node's options "
                "(credentials: BLOCK_NAME) or set the AWS environment (AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY). Run with mode=QVMMode.EMULATED to use the SDK's local simulator instead."
            )
        endpoint = options.get("endpoint_url") or (block.endpoint_url if block else None)
        client = boto.client("braket", region_name=boto.region_name, endpoint_url=endpoint)
        session = AwsSession(boto_session=boto, braket_client=client)
        session.s3_client  # noqa: B018 -- made now: boto3 sessions are not thread-safe, clients are
        bucket = options.get("s3_bucket") or (block.s3_bucket if block else None)
        prefix = options.get("s3_prefix") or (block.s3_prefix if block else None) or _DEFAULT_PREFIX
        account = _Account(session, (bucket, prefix.strip("/") or _DEFAULT_PREFIX) if bucket else None)
        with self._lock:
            return self._accounts.setdefault(key, account)

    def _folder(self, account: _Account) -> tuple[str, str]:
        """Where task results go: the configured bucket, else Braket's default bucket of the account."""
        with self._lock:
            if account.folder is None:
                account.folder = (account.session.default_bucket(), _DEFAULT_PREFIX)
            return account.folder

    def _check_device(self, node_spec: QPUNodeSpec, target: BraketTarget) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped, unused-ignore]
        from braket.aws import AwsDevice

        account = self._account(node_spec, target.region)
        try:
            device = AwsDevice(target.arn, aws_session=account.session)
        except (ClientError, BotoCoreError, ValueError) as exc:
            raise NodeUnavailableError(
                f"Node {node_spec.node_id!r}: Amazon Braket device {target.arn} is not reachable: {exc}"
            ) from exc
        if device.status != "ONLINE":
            raise NodeUnavailableError(
                f"Node {node_spec.node_id!r}: Amazon Braket device {target.arn} is {device.status}; "
                "choose another target or run with mode=QVMMode.EMULATED."
            )
        return device


def _device_billing(device: Any, node_spec: QPUNodeSpec) -> Billing | None:
    """The node's billing with the price the device's properties state (``service.deviceCost``), or
    ``None`` when they state none, the node's prices came from the cluster file, or the unit is unknown.

    ``deviceCost`` is one price and its unit: ``shot`` or ``task`` replaces that rate of a per-task-and-shot
    bill, ``minute``/``hour``/``second`` the rate of a simulator's (the 3 s minimum per task stays).
    """
    try:
        cost = device.properties.service.deviceCost
    except AttributeError:
        return None
    current = node_spec.billing
    if cost is None or current is None or current.source.startswith("cluster file"):
        return None
    price, unit = float(cost.price), str(cost.unit).lower().rstrip("s")
    # no date in it: a node's price must not change the plan of a re-run (its plan key) from one day to the next
    table = f"{current.source} {current.as_of}".strip()
    source = f"Braket device properties deviceCost (${price:g}/{unit}, any other rate from the table: {table})"
    if isinstance(current, PerTaskShot) and unit in ("shot", "task"):
        per_task, per_shot = (current.per_task, price) if unit == "shot" else (price, current.per_shot)
        return replace(current, per_task=per_task, per_shot=per_shot, source=source, as_of="")
    per_minute = {"second": price * 60, "minute": price, "hour": price / 60}.get(unit)
    if isinstance(current, PerMinute) and per_minute is not None:
        return replace(current, per_minute=per_minute, source=source, as_of="")
    log.info("node %s: Braket deviceCost %r does not fit its %s bill; the table's price stays", node_spec.node_id,
             cost, current.kind)  # fmt: skip
    return None


def _target(name: str) -> BraketTarget:
    """The device a node names: a :data:`TARGETS` entry, or a device ARN (width unknown: ``max_qubits=0``).

    Raises:
        ClusterConfigError: Neither.
    """
    if name in TARGETS:
        return TARGETS[name]
    if name.startswith("arn:aws:braket:") and ":device/" in name:
        return BraketTarget(name, 0, _COMMON_QPU_GATES if "/qpu/" in name else _SIMULATOR_GATES)
    raise ClusterConfigError(
        f"Unknown Amazon Braket target {name!r}. Known targets: {', '.join(TARGETS)}, or a device ARN "
        "(arn:aws:braket:REGION::device/...)."
    )


def _load_credentials(name: str, node_spec: QPUNodeSpec) -> Any:
    """The saved ``BraketCredentials`` block ``name``.

    Raises:
        NodeUnavailableError: No such block (not a LookupError: :meth:`BraketProvider.attach` must
            not mistake it for an unknown task).
    """
    from blocks import BraketCredentials, load_block

    try:
        return load_block(BraketCredentials, name)
    except QVMError as exc:
        raise NodeUnavailableError(f"Node {node_spec.node_id!r}: {exc}") from exc


def _block_session(block: Any, region: str | None, node_spec: QPUNodeSpec) -> Any:
    """A boto3 session from the block's AWS credentials, in ``region`` (a QPU's own region may
    differ from the block's).

    Raises:
        NodeUnavailableError: The block names an access key but holds no secret key.
    """
    try:
        return block.model_copy(update={"region_name": region}).get_boto3_session()
    except QVMError as exc:
        raise NodeUnavailableError(f"Node {node_spec.node_id!r}: {exc}") from exc
