"""Azure Quantum: IonQ, Quantinuum and Rigetti targets of an ``azure.quantum.Workspace``.

One provider, ``azure_quantum``; each node group names a target of the workspace (``target=``).
The circuit is flattened onto one classical register, transpiled to the target's gates and sent in
the target's own input format (see :data:`TARGETS`):

* IonQ: ``ionq.circuit.v1`` JSON, translated by azure-quantum's own Qiskit-to-IonQ converter; the
  result is IonQ's histogram over the qubits, mapped back to the classical bits with the
  measurement map kept in the job's metadata (so a job re-attached from its id alone decodes too).
* Quantinuum: OpenQASM 2 (``honeywell.openqasm.v1``); the result lists each shot per register.
* Rigetti: Quil (``rigetti.quil.v1``, :func:`to_quil`); the result lists each shot's ``ro`` bits.

Modes:

* ``EMULATED``: nothing leaves the machine. The circuit goes through the same translation checks
  (an IonQ node still refuses a mid-circuit measurement) and runs on qdk's local simulator
  (``qdk.qiskit.QSharpBackend``, noiseless); the prepared spec says ``emulates=<target>`` and
  ``method="qdk"``.
* ``LIVE``: jobs go to the workspace of the node's ``credentials`` block
  (:class:`blocks.credentials.AzureQuantumCredentials`), else to the one the SDK finds in the
  environment (``AZURE_QUANTUM_CONNECTION_STRING``, or ``AZURE_QUANTUM_SUBSCRIPTION_ID``,
  ``AZURE_QUANTUM_WORKSPACE_RG``, ``AZURE_QUANTUM_WORKSPACE_NAME`` and
  ``AZURE_QUANTUM_WORKSPACE_LOCATION`` with ``DefaultAzureCredential``). Without either, the node
  is refused; it never falls back to a simulator.
* ``DRY_RUN``: nothing is contacted.

Job ids are chosen by the client (Azure Quantum creates a job with ``PUT .../jobs/{id}``): the id
is derived from the executor's ``job_key`` and the payload, so a submission retried after a lost
response meets the job it already created instead of paying twice.

Prices: the planner bills each target in its own shape from :mod:`providers.prices`: IonQ per
gate-shot with a minimum per program (error mitigation on unless ``input_params`` turns IonQ's
``debias`` off), Rigetti per 10 ms slice, Quantinuum in HQCs (eHQCs on the emulator) at the
``hqc_rate`` the node group gives (without it Quantinuum nodes are planned at $0, and a warning says
so). In LIVE mode each job is priced before it is submitted, from the circuit as sent: by the
target class's ``estimate_cost`` where the SDK has one (azure-quantum 3.12 has none), else by the
node's bill; the estimate travels in the job's metadata. When the job is done, the service's own
``costEstimate`` replaces it where the job carries one. The shard result says which
(``cost_usd``, ``cost_source``: ``Azure estimate_cost``, ``Azure Quantum job costEstimate`` or
``table <date> <source>``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import uuid
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from network.errors import ClusterConfigError, ExecutionError, NodeUnavailableError, ProviderResultError
from network.node_providers import JobStatus, NodeJob, NodeProvider, QPUNodeSpec, QVMMode
from network.pricing import HQC, GateShot, gate_counts
from providers.prices import node_prices

if TYPE_CHECKING:
    from qiskit import QuantumCircuit

__all__ = ["AzureQuantumProvider", "AzureTarget", "TARGETS", "TARGET_TABLE_DATE", "to_quil"]

log = logging.getLogger(__name__)

#: When :data:`TARGETS` was last checked (azure-quantum 3.12 and the Azure Quantum provider pages).
TARGET_TABLE_DATE = "2026-11-24"

#: Input format, output format and the gates each family's input format is written with.
_FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "ionq": (
        "ionq.circuit.v1",
        "ionq.quantum-results.v1",
        ("h", "x", "y", "z", "s", "sdg", "t", "tdg", "rx", "ry", "rz", "cx", "swap"),
    ),
    "quantinuum": (
        "honeywell.openqasm.v1",
        "honeywell.quantum-results.v1",
        ("h", "x", "y", "z", "s", "sdg", "t", "tdg", "rx", "ry", "rz", "cx", "cz", "reset"),
    ),
    "rigetti": (
        "rigetti.quil.v1",
        "rigetti.quil-results.v1",
        ("h", "x", "y", "z", "s", "t", "rx", "ry", "rz", "cx", "cz", "swap", "reset"),
    ),
}
_QUIL_GATES = {
    "h": "H",
    "x": "X",
    "y": "Y",
    "z": "Z",
    "s": "S",
    "t": "T",
    "rx": "RX",
    "ry": "RY",
    "rz": "RZ",
    "cx": "CNOT",
    "cz": "CZ",
    "swap": "SWAP",
}
#: Azure job states; anything else (Waiting, Executing, Finishing, Cancelling...) is still running.
_QUEUED_STATES = frozenset({"Waiting", "Queued"})
_DONE_STATES = frozenset({"Succeeded", "Completed"})
_FAILED_STATES = frozenset({"Failed", "Cancelled"})
#: Where client-chosen job ids live (uuid5 of the job key and the payload).
_JOB_ID_NAMESPACE = uuid.UUID("6b1f4d3c-2a9e-5c1b-9a7d-3e0f8c2b4a61")
#: Environment variables that identify a workspace for the SDK (each with the SDK's fallback name).
_ENV_IDENTITY = (
    ("AZURE_QUANTUM_SUBSCRIPTION_ID", "SUBSCRIPTION_ID"),
    ("AZURE_QUANTUM_WORKSPACE_RG", "RESOURCE_GROUP"),
    ("AZURE_QUANTUM_WORKSPACE_NAME",),
    ("AZURE_QUANTUM_WORKSPACE_LOCATION", "LOCATION"),
)
_OPTIONS = frozenset({"credentials", "input_params"})


@dataclass(frozen=True)
class AzureTarget:
    """One Azure Quantum target.

    Attributes:
        name: The target id, e.g. ``"ionq.qpu.aria-1"``.
        qubits: Qubits the target offers.
        simulator: True for the providers' cloud simulators and emulators.
    """

    name: str
    qubits: int
    simulator: bool

    @property
    def family(self) -> str:
        """``ionq``, ``quantinuum`` or ``rigetti``: the part of the name before the first dot."""
        return self.name.split(".", 1)[0]

    @property
    def input_format(self) -> str:
        return _FAMILIES[self.family][0]

    @property
    def output_format(self) -> str:
        return _FAMILIES[self.family][1]

    @property
    def basis_gates(self) -> tuple[str, ...]:
        return _FAMILIES[self.family][2]


#: Targets the provider knows, as of :data:`TARGET_TABLE_DATE`. Another target of a known family
#: is accepted when the cluster file gives its ``max_qubits``.
TARGETS: dict[str, AzureTarget] = {
    t.name: t
    for t in (
        AzureTarget("ionq.simulator", 29, simulator=True),
        AzureTarget("ionq.qpu.aria-1", 25, simulator=False),
        AzureTarget("quantinuum.sim.h2-1e", 56, simulator=True),
        AzureTarget("quantinuum.qpu.h2-1", 56, simulator=False),
        AzureTarget("rigetti.sim.qvm", 20, simulator=True),
        AzureTarget("rigetti.qpu.ankaa-3", 84, simulator=False),
    )
}


@dataclass(frozen=True)
class _Payload:
    """A circuit in a target's input format, with what decoding its result needs."""

    data: Any
    metadata: dict[str, str]
    digest: str


class AzureQuantumProvider(NodeProvider):
    """Nodes on Azure Quantum targets (IonQ, Quantinuum, Rigetti), or emulated locally with qdk.

    Args:
        workspace: An ``azure.quantum.Workspace`` to use for every node instead of credential
            blocks or the environment (a notebook's workspace, or a test's).
    """

    key = "azure_quantum"
    description = "Azure Quantum targets: IonQ, Quantinuum, Rigetti (EMULATED: qdk's local simulator)"
    requires = ("azure.quantum", "qdk")
    extra = "azure"
    remote = True

    def __init__(self, workspace: Any = None) -> None:
        super().__init__()
        self._injected = workspace
        self._workspaces: dict[str, Any] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ nodes

    def build_nodes(
        self,
        n_nodes: int = 1,
        target: str = "ionq.simulator",
        max_qubits: int | None = None,
        *,
        cost_per_shot: float | None = None,
        cost_per_task: float | None = None,
        cost_per_second: float | None = None,
        hqc_rate: float | None = None,
        work_pool: str | None = None,
        tags: Sequence[str] = (),
        **options: Any,
    ) -> list[QPUNodeSpec]:
        """Build ``n_nodes`` nodes on one target.

        Args:
            n_nodes: How many nodes (each runs its shards in turn; several share the target's queue).
            target: Target id, e.g. ``"ionq.qpu.aria-1"`` (see :data:`TARGETS`).
            max_qubits: Declared width (default: the target's qubits; required for a target not in
                :data:`TARGETS`).
            cost_per_shot: Overrides the price table.
            cost_per_task: Overrides the price table.
            cost_per_second: Overrides the price table.
            hqc_rate: Dollars per HQC (per eHQC on an emulator) for Quantinuum targets, from your
                Quantinuum contract; without it their nodes are planned at $0 (with a warning).
            work_pool: Prefect work pool that runs these nodes' shards.
            tags: Labels for filtering.
            **options: Kept in the nodes' options: ``credentials`` (name of an Azure Quantum
                Credentials block) and ``input_params`` (extra job input parameters, e.g. IonQ's
                ``{"error_mitigation": {"debias": False}}``).

        Raises:
            ClusterConfigError: Unknown target or option, or a width the target does not have.
        """
        info = _target_info(target, max_qubits)
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ClusterConfigError(
                f"Provider {self.key!r}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(_OPTIONS))}."
            )
        if not isinstance(options.get("input_params", {}), Mapping):
            raise ClusterConfigError(
                f"Provider {self.key!r}: input_params must be a mapping, got {options['input_params']!r}."
            )
        width = info.qubits if max_qubits is None else max_qubits
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= info.qubits:
            raise ClusterConfigError(
                f"Provider {self.key!r}: max_qubits must be an integer from 1 to {info.qubits} "
                f"(the qubits of {target!r}), got {max_qubits!r}."
            )
        mitigation = (options.get("input_params") or {}).get("error_mitigation")
        debias = mitigation.get("debias") if isinstance(mitigation, Mapping) else None
        prices = node_prices(
            self.key,
            target,
            cost_per_task=cost_per_task,
            cost_per_shot=cost_per_shot,
            cost_per_second=cost_per_second,
            hqc_rate=hqc_rate,
            error_mitigation=None if debias is None else bool(debias),
        )
        return self.make_nodes(
            n_nodes,
            max_qubits=width,
            exact=True,  # hardware noise is not an approximation of the method
            method=target,
            device="QPU",
            **prices,
            work_pool=work_pool,
            tags=(*tags, "simulator" if info.simulator else "hardware"),
            host=self.key,
            options=options,
        )

    def prepare(self, node_spec: QPUNodeSpec, mode: QVMMode) -> QPUNodeSpec:
        """EMULATED: a local qdk spec; LIVE: check that the node's workspace can be reached; DRY_RUN: as is.

        Raises:
            NodeUnavailableError: LIVE without credentials (a block or the SDK's environment).
        """
        if mode is QVMMode.EMULATED:
            return replace(node_spec, device="CPU", method="qdk", host="local", emulates=node_spec.method)
        if mode is QVMMode.LIVE:
            self._check_credentials(node_spec)
        return node_spec

    # ------------------------------------------------------------------ running

    def execute(
        self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None
    ) -> dict[str, int]:
        """Run on qdk's simulator (an EMULATED spec) or on the target, waiting for the result."""
        job = self.wait(self.submit(circuit, shots, node_spec, seed=seed), node_spec, max_interval=10.0)
        return self.counts_of(job, node_spec)

    def submit(
        self,
        circuit: QuantumCircuit,
        shots: int,
        node_spec: QPUNodeSpec,
        *,
        seed: int | None = None,
        job_key: str | None = None,
    ) -> NodeJob:
        """Send the circuit to the node's target; an EMULATED spec runs it locally and returns it finished.

        Azure targets take no seed: ``seed`` only seeds the emulation.

        Raises:
            ExecutionError: The circuit cannot be written in the target's input format.
            azure.core.exceptions.HttpResponseError: The service refused the job (see :meth:`is_transient`).
        """
        target = _target_of(node_spec)
        prepared = _prepare_circuit(circuit, target, node_spec.node_id)
        # written in the target's format even when emulated, so the emulation refuses what the target refuses
        payload = _payload(prepared, target, node_spec.node_id)
        if node_spec.emulates is not None or circuit.num_clbits == 0:  # nothing measured: no job to pay for
            counts = _emulate(prepared, shots, seed) if circuit.num_clbits else {"": shots}
            return NodeJob(f"local-{uuid.uuid4().hex}", node_spec.node_id, JobStatus.COMPLETED, counts=counts)
        from azure.core.exceptions import ResourceExistsError

        workspace = self._workspace(node_spec)
        job_id = str(uuid.uuid4())
        if job_key:
            job_id = str(uuid.uuid5(_JOB_ID_NAMESPACE, f"{job_key}|{target.name}|{shots}|{payload.digest}"))
        cost, source = _estimate(workspace, target, payload, prepared, shots, node_spec)
        if cost is not None:  # with the job, so a job re-attached from its id alone reports it too
            payload = replace(payload, metadata={**payload.metadata, "qcos_cost_usd": repr(cost),
                                                 "qcos_cost_source": source[:250]})  # fmt: skip
        try:
            job = _create_job(workspace, target, payload, shots, node_spec, job_id, job_key)
        except ResourceExistsError:
            # the job was created by an earlier try whose response was lost: use it unless it failed
            job = workspace.get_job(job_id)
            if job.details.status in _FAILED_STATES:
                job = _create_job(workspace, target, payload, shots, node_spec, str(uuid.uuid4()), job_key)
            else:
                log.info("node %s: job %s already exists for this shard; re-using it", node_spec.node_id, job_id)
        log.info("node %s: submitted job %s to %s (%d shots)", node_spec.node_id, job.id, target.name, shots)
        return self._to_node_job(job, node_spec)

    def poll(self, job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        """The job's current state, with its counts once it has succeeded."""
        if job.status.done:
            return job
        return self._to_node_job(self._workspace(node_spec).get_job(job.job_id), node_spec)

    def attach(self, job_id: str, node_spec: QPUNodeSpec) -> NodeJob:
        """Re-attach to a job of the node's workspace from its id (``workspace.get_job``).

        Raises:
            LookupError: A local job, a job the workspace does not know, or one on another target.
        """
        from azure.core.exceptions import ResourceNotFoundError

        if job_id.startswith("local-"):
            raise LookupError(f"Job {job_id!r} ran locally and cannot be re-attached.")
        try:
            job = self._workspace(node_spec).get_job(job_id)
        except ResourceNotFoundError as exc:
            raise LookupError(f"The workspace of node {node_spec.node_id!r} has no job {job_id!r}.") from exc
        target = _target_of(node_spec)
        if job.details.target != target.name:
            raise LookupError(f"Job {job_id!r} ran on {job.details.target!r}, not on {target.name!r}.")
        return self._to_node_job(job, node_spec)

    def is_transient(self, error: BaseException) -> bool:
        """Connection failures, timeouts, HTTP 408, 429 and 5xx are transient; other HTTP errors
        (authentication, validation, not found) are permanent."""
        from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

        if isinstance(error, ServiceRequestError | ServiceResponseError):
            return True
        if isinstance(error, HttpResponseError):
            status = error.status_code
            return status is not None and (status in (408, 429) or status >= 500)
        return super().is_transient(error)

    # ------------------------------------------------------------------ workspace

    def _check_credentials(self, node_spec: QPUNodeSpec) -> None:
        """Raise unless the node has credentials: an injected workspace, a loadable block, or the environment.

        Raises:
            NodeUnavailableError: The block cannot be loaded, or the environment names no workspace.
        """
        source = self._source(node_spec)
        if source.startswith("block:"):
            self._load_block(source.removeprefix("block:"), node_spec)
        elif source == "environment" and not os.environ.get("AZURE_QUANTUM_CONNECTION_STRING"):
            missing = [names[0] for names in _ENV_IDENTITY if not any(os.environ.get(n) for n in names)]
            if missing:
                raise NodeUnavailableError(
                    f"Node {node_spec.node_id!r} ({node_spec.method}) runs LIVE on Azure Quantum but has no "
                    "credentials: give its node group credentials='<name of an Azure Quantum Credentials block>', "
                    f"or set AZURE_QUANTUM_CONNECTION_STRING, or {', '.join(missing)} (with an Azure login for "
                    "DefaultAzureCredential). Use mode=QVMMode.EMULATED to run it on qdk's local simulator."
                )

    def _source(self, node_spec: QPUNodeSpec) -> str:
        """Where the node's workspace comes from: ``"injected"``, ``"block:NAME"`` or ``"environment"``."""
        if self._injected is not None:
            return "injected"
        block = node_spec.options.get("credentials")
        return f"block:{block}" if block else "environment"

    def _workspace(self, node_spec: QPUNodeSpec) -> Any:
        """The node's workspace, built once per source (building one may call Azure Resource Manager)."""
        source = self._source(node_spec)
        with self._lock:
            if source not in self._workspaces:
                if source == "injected":
                    self._workspaces[source] = self._injected
                elif source.startswith("block:"):
                    block = self._load_block(source.removeprefix("block:"), node_spec)
                    self._workspaces[source] = block.get_workspace()
                else:
                    from azure.quantum import Workspace

                    self._check_credentials(node_spec)
                    self._workspaces[source] = Workspace()
            return self._workspaces[source]

    @staticmethod
    def _load_block(name: str, node_spec: QPUNodeSpec) -> Any:
        from blocks.base import load_block
        from blocks.credentials import AzureQuantumCredentials
        from network.errors import QVMError

        try:
            return load_block(AzureQuantumCredentials, name)
        except QVMError as exc:
            raise NodeUnavailableError(f"Node {node_spec.node_id!r}: {exc}") from exc

    # ------------------------------------------------------------------ results

    def _to_node_job(self, job: Any, node_spec: QPUNodeSpec) -> NodeJob:
        status = job.details.status
        if status in _DONE_STATES:
            counts = _decode(job, node_spec.node_id)
            extra = _job_cost(job, node_spec)
            return NodeJob(job.id, node_spec.node_id, JobStatus.COMPLETED, counts=counts, extra=extra)
        if status in _FAILED_STATES:
            error = job.details.error_data
            detail = f"{error.code}: {error.message}" if error is not None else "no error details"
            return NodeJob(job.id, node_spec.node_id, JobStatus.FAILED, error=f"job {status.lower()} ({detail})")
        queued = JobStatus.QUEUED if status in _QUEUED_STATES else JobStatus.RUNNING
        return NodeJob(job.id, node_spec.node_id, queued)


def _estimate(
    workspace: Any, target: AzureTarget, payload: _Payload, prepared: QuantumCircuit, shots: int, node_spec: QPUNodeSpec
) -> tuple[float | None, str]:
    """The job's price before it runs, and its source: the SDK's ``estimate_cost`` of the target class
    where it has one (older azure-quantum releases; 3.12 has none), else the node's bill for the
    circuit as sent (its gates counted after transpilation)."""
    from azure.quantum.target import IonQ, Quantinuum, Rigetti

    classes = {"ionq": IonQ, "quantinuum": Quantinuum, "rigetti": Rigetti}
    estimator = getattr(classes[target.family], "estimate_cost", None)
    billing = node_spec.billing
    if callable(estimator):
        client = classes[target.family](workspace, name=target.name)
        rates: dict[str, float] = {}
        if isinstance(billing, GateShot):  # IonQ's estimate counts the gates; the rates are the table's
            rates = {"price_1q": billing.one_qubit, "price_2q": billing.two_qubit, "min_price": billing.program_minimum}
        try:
            try:
                estimate = client.estimate_cost(payload.data, shots=shots, **rates)
            except TypeError:  # releases that named it num_shots, or took no rates
                estimate = client.estimate_cost(payload.data, shots)
            usd = _in_dollars(estimate, node_spec)
        except Exception as exc:  # an estimate never stops a submission
            log.warning("node %s: azure-quantum's estimate_cost failed (%s); using the node's bill", node_spec.node_id,
                        exc)  # fmt: skip
        else:
            if usd is not None:
                return usd, "Azure estimate_cost"
    counts = gate_counts(prepared)
    from network.costs import CostModel

    n_ops = counts.one_qubit + counts.two_qubit
    seconds = CostModel().shard_seconds(
        node_spec, width=prepared.num_qubits, n_ops=n_ops, n_multi=counts.two_qubit, shots=shots, dynamic=False
    )
    cost = node_spec.price(shots, seconds, gates=counts)
    if billing is None:
        return cost, "node cost_per_task/shot/second (cluster file)"
    return cost, f"table {billing.as_of} {billing.source}"


def _in_dollars(estimate: Any, node_spec: QPUNodeSpec) -> float | None:
    """A ``CostEstimate`` in dollars: USD as is, (e)HQCs at the node's rate; ``None`` when it cannot be."""
    total = getattr(estimate, "estimated_total", None)
    if total is None:
        return None
    currency = str(getattr(estimate, "currency_code", "USD") or "USD").upper()
    if currency == "USD":
        return float(total)
    billing = node_spec.billing
    if currency in ("HQC", "EHQC") and isinstance(billing, HQC) and billing.rate is not None:
        return float(total) * billing.rate
    return None


def _job_cost(job: Any, node_spec: QPUNodeSpec) -> dict[str, Any]:
    """What a finished job cost: the service's ``costEstimate`` where the job has one, else the
    estimate made at submission (from the job's metadata), with its source."""
    details = job.details
    metadata = details.metadata or {}
    extra: dict[str, Any] = {}
    if "qcos_cost_usd" in metadata:
        try:
            extra = {"cost_usd": float(metadata["qcos_cost_usd"]), "cost_source": str(metadata["qcos_cost_source"])}
        except (KeyError, TypeError, ValueError):
            extra = {}
    service = _in_dollars(getattr(details, "cost_estimate", None), node_spec)
    if service is not None:
        if extra:
            extra = {"cost_estimate_usd": extra["cost_usd"], "cost_estimate_source": extra["cost_source"]}
        extra.update(cost_usd=service, cost_source="Azure Quantum job costEstimate")
    if extra:
        log.info("node %s: job %s cost $%.6f (%s)", node_spec.node_id, job.id, extra["cost_usd"], extra["cost_source"])
    return extra


def _target_info(name: str, max_qubits: int | None) -> AzureTarget:
    if not isinstance(name, str) or not name:
        raise ClusterConfigError(f"Provider 'azure_quantum': target must be a target id, got {name!r}.")
    if name in TARGETS:
        return TARGETS[name]
    family = name.split(".", 1)[0]
    if family in _FAMILIES and max_qubits is not None:
        return AzureTarget(name, max_qubits if isinstance(max_qubits, int) else 0, simulator=".qpu." not in name)
    hint = (
        "; give max_qubits for another target of the ionq, quantinuum or rigetti families"
        if family in _FAMILIES
        else ""
    )
    raise ClusterConfigError(
        f"Provider 'azure_quantum': unknown target {name!r}. Known targets: {', '.join(TARGETS)}{hint}."
    )


def _target_of(node_spec: QPUNodeSpec) -> AzureTarget:
    name = node_spec.emulates or node_spec.method
    return TARGETS.get(name) or AzureTarget(name, node_spec.max_qubits, simulator=".qpu." not in name)


def _prepare_circuit(circuit: QuantumCircuit, target: AzureTarget, node_id: str) -> QuantumCircuit:
    """The circuit on one register ``q`` and one register ``c`` (bit ``i`` is the circuit's
    classical bit ``i``), in the target's gates."""
    from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, transpile

    flat = QuantumCircuit(QuantumRegister(circuit.num_qubits, "q"), name=circuit.name)
    if circuit.num_clbits:
        flat.add_register(ClassicalRegister(circuit.num_clbits, "c"))
    flat.compose(circuit, qubits=flat.qubits, clbits=flat.clbits, inplace=True)
    try:
        return transpile(flat, basis_gates=[*target.basis_gates, "measure"], optimization_level=1)
    except Exception as exc:  # the transpiler raises TranspilerError, QiskitError, CircuitError...
        raise ExecutionError(
            f"Node {node_id!r}: the circuit cannot be written in {target.name}'s gates "
            f"({', '.join(target.basis_gates)}): {exc}"
        ) from exc


def _payload(circuit: QuantumCircuit, target: AzureTarget, node_id: str) -> _Payload:
    """The circuit in the target's input format.

    Raises:
        ExecutionError: The format cannot express the circuit (an IonQ mid-circuit measurement,
            classical control flow in OpenQASM 2...).
    """
    metadata = {"qcos_clbits": str(circuit.num_clbits), "num_qubits": str(circuit.num_qubits)}
    try:
        if target.family == "ionq":
            with warnings.catch_warnings():
                # importing the SDK's Qiskit package imports qsharp, deprecated in favour of qdk
                warnings.simplefilter("ignore", DeprecationWarning)
                from azure.quantum.qiskit.backends._qiskit_ionq import qiskit_circ_to_ionq_circ

            gates, _, meas_map = qiskit_circ_to_ionq_circ(circuit, gateset="qis")
            data: Any = {"gateset": "qis", "qubits": circuit.num_qubits, "circuit": gates}
            metadata["meas_map"] = json.dumps(meas_map)
            text = json.dumps(data, sort_keys=True)
        elif target.family == "quantinuum":
            from qiskit import qasm2

            data = text = qasm2.dumps(circuit)
        else:
            data = text = to_quil(circuit)
    except Exception as exc:  # each translator raises its own errors (IonQGateError, QASM2ExportError...)
        raise ExecutionError(
            f"Node {node_id!r}: the circuit cannot be written as {target.input_format}: {exc}"
        ) from exc
    return _Payload(data, metadata, hashlib.sha256(text.encode()).hexdigest())


def to_quil(circuit: QuantumCircuit) -> str:
    """A circuit in Rigetti's gates (see :data:`TARGETS`) as a Quil program; classical bit ``i`` is ``ro[i]``.

    Raises:
        ValueError: An instruction Quil has no counterpart for here, or an unbound parameter.
    """
    import numpy as np

    lines = [f"DECLARE ro BIT[{circuit.num_clbits}]"] if circuit.num_clbits else []
    for inst in circuit.data:
        name = inst.operation.name
        qubits = " ".join(str(circuit.find_bit(q).index) for q in inst.qubits)
        if name == "measure":
            lines.append(f"MEASURE {qubits} ro[{circuit.find_bit(inst.clbits[0]).index}]")
        elif name == "reset":
            lines.append(f"RESET {qubits}")
        elif name in _QUIL_GATES:
            params = [np.format_float_positional(float(p), trim="0") for p in inst.operation.params]
            angles = f"({', '.join(params)})" if params else ""
            lines.append(f"{_QUIL_GATES[name]}{angles} {qubits}")
        elif name != "barrier":
            raise ValueError(f"instruction {name!r} has no Quil translation; transpile to {', '.join(_QUIL_GATES)}")
    return "\n".join(lines) + "\n"


def _emulate(circuit: QuantumCircuit, shots: int, seed: int | None) -> dict[str, int]:
    """Counts from qdk's local simulator; keys are flat because the circuit has one register."""
    from qdk.qiskit import QSharpBackend

    # qdk treats seed 0 as "no seed": shift every seed by one so all of them count
    result = QSharpBackend().run(circuit, shots=shots, seed=None if seed is None else seed + 1).result()
    return {str(key): int(value) for key, value in result.get_counts().items()}


def _create_job(
    workspace: Any,
    target: AzureTarget,
    payload: _Payload,
    shots: int,
    node_spec: QPUNodeSpec,
    job_id: str,
    job_key: str | None,
) -> Any:
    from azure.quantum.target import IonQ, Quantinuum, Rigetti

    classes = {"ionq": IonQ, "quantinuum": Quantinuum, "rigetti": Rigetti}
    client = classes[target.family](workspace, name=target.name)
    return client.submit(
        input_data=payload.data,
        name=f"qcos {job_key or node_spec.node_id}",
        shots=shots,
        input_params=dict(node_spec.options.get("input_params") or {}),
        job_id=job_id,
        metadata=payload.metadata,
        tags=["qcos"],
    )


def _decode(job: Any, node_id: str) -> dict[str, int]:
    """Counts (bit 0 rightmost) from a succeeded job's output, in the job's output format.

    Raises:
        ProviderResultError: The output is not what the format promises.
    """
    details = job.details
    metadata = details.metadata or {}
    fmt = details.output_data_format
    try:
        width = int(metadata["qcos_clbits"])
        shots = int((details.input_params or {})["shots"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProviderResultError(
            f"Node {node_id!r}: job {job.id} was not submitted by QCOS ({exc!r} missing)."
        ) from exc
    results = job.get_results()
    if not isinstance(results, Mapping):
        raise ProviderResultError(f"Node {node_id!r}: job {job.id} returned {str(results)[:80]!r}, not JSON ({fmt}).")
    try:
        if fmt == _FAMILIES["ionq"][1]:
            meas_map = json.loads(metadata["meas_map"])
            return _histogram_counts(results["histogram"], meas_map, width, shots, job.id)
        if fmt == _FAMILIES["quantinuum"][1]:
            shots_list = results["c"] if width else []
            return _shot_counts((str(s) for s in shots_list), width)
        if fmt == _FAMILIES["rigetti"][1]:
            readout = results["ro"]
            return _shot_counts(("".join(str(int(b)) for b in reversed(shot)) for shot in readout), width)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProviderResultError(
            f"Node {node_id!r}: job {job.id} returned malformed {fmt} output ({type(exc).__name__}: {exc})."
        ) from exc
    raise ProviderResultError(f"Node {node_id!r}: job {job.id} has output format {fmt!r}, which QCOS cannot read.")


def _shot_counts(keys: Any, width: int) -> dict[str, int]:
    counts = Counter(keys)
    bad = next((k for k in counts if len(k) != width or set(k) - {"0", "1"}), None)
    if bad is not None:
        raise ValueError(f"shot {bad!r} is not {width} bits")
    return dict(counts)


def _histogram_counts(
    histogram: Mapping[str, Any], meas_map: Sequence[int | None], width: int, shots: int, job_id: str
) -> dict[str, int]:
    """IonQ's histogram (probabilities of basis states over the qubits, qubit 0 the lowest bit) as counts.

    Probabilities that are whole numbers of shots (a QPU's tallies) become those counts; others (a
    simulator's exact probabilities, debiased QPU results) are sampled, seeded by the job id so a
    re-attached job gives the same counts.
    """
    import numpy as np

    probabilities: dict[str, float] = {}
    for state, p in histogram.items():
        index = int(state)
        key = "".join(
            "0" if meas_map[c] is None else str((index >> int(meas_map[c])) & 1)  # type: ignore[arg-type]
            for c in reversed(range(width))
        )
        probabilities[key] = probabilities.get(key, 0.0) + float(p)
    keys = sorted(probabilities)
    values = np.array([probabilities[k] for k in keys])
    total = values.sum()
    if not keys or (values < 0).any() or not np.isclose(total, 1.0, atol=1e-3):
        raise ValueError(f"histogram probabilities sum to {total:g}, not 1")
    expected = values / total * shots
    rounded = np.rint(expected)
    if np.allclose(expected, rounded, atol=1e-6) and int(rounded.sum()) == shots:
        counts = rounded.astype(int)
    else:
        rng = np.random.default_rng(int(hashlib.sha256(job_id.encode()).hexdigest()[:16], 16))
        counts = rng.multinomial(shots, values / total)
    return {k: int(n) for k, n in zip(keys, counts, strict=True) if n}
