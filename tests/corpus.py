"""The public corpus (``tests/data/corpus``): circuits nobody here wrote, and how each is checked.

MQT Bench 2.3 (every family, ``alg`` and ``indep`` levels, widths 4-10, generated once by
``dev/make_corpus.py``), hand-written OpenQASM 2/3 with custom gates, and Qiskit circuit-library
circuits with composite gates built here from Qiskit's own classes. Each runs on

* a roomy cluster (exact nodes wider than the circuit): counts within the shot-noise bound of the
  exact distribution;
* a cut-forcing cluster (two exact nodes narrower than the circuit's widest component): counts
  reconstructed from cut subexperiments within the bound of :func:`tests.stats.cut_tvd_tolerance`,
  or a typed refusal (:data:`REFUSALS`);
* observables on the cut-forcing cluster: each within 4 standard errors of the exact value.

The exact references come from :func:`tests.stats.exact_distribution` (exact branching over
mid-circuit measurements) and :func:`tests.stats.exact_expectation`, which share no code with the
QVM's compiler.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from network.circuits import parse_qasm
from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import CircuitCompileError, CircuitParseError, PlanningError, QVMError
from network.node_providers import ClusterBuilder, QPURegistry
from tests.stats import cut_tvd_tolerance, exact_distribution, exact_expectation, tvd, tvd_tolerance

CORPUS = Path(__file__).parent / "data" / "corpus"

#: Typed refusals a corpus circuit may meet, and why each is documented.
REFUSALS: dict[type[QVMError], str] = {
    CircuitParseError: "Qiskit's OpenQASM 3 importer cannot read it (MQT writes `^` in conditions)",
    CircuitCompileError: "an opaque gate has no definition",
    PlanningError: "no cut within max_sampling_overhead / max_subexperiments, and no MPS node",
}


@dataclass
class Case:
    """One corpus circuit."""

    name: str
    source: str
    family: str
    level: str | None
    load: Callable[[], QuantumCircuit]
    slow: bool = False
    dynamic: bool = False
    num_qubits: int = 0


@dataclass
class Outcome:
    """How a case fared on one cluster: ``pass``, ``refused`` (typed) or ``fail``."""

    status: str
    detail: str = ""
    seconds: float = 0.0
    plan_seconds: float = 0.0
    strategy: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@cache
def manifest() -> dict[str, Any]:
    return json.loads((CORPUS / "manifest.json").read_text())


def _qasm_loader(path: Path) -> Callable[[], QuantumCircuit]:
    return lambda: parse_qasm(path.read_text())


def _qpy_loader(path: Path) -> Callable[[], QuantumCircuit]:
    def load() -> QuantumCircuit:
        from qiskit import qpy

        with path.open("rb") as handle:
            return qpy.load(handle)[0]

    return load


#: Widths checked in CI; the others run with ``-m slow``.
CI_WIDTHS = frozenset({4, 5, 6})


def cases() -> list[Case]:
    """Every corpus case: MQT Bench files, hand-written OpenQASM, Qiskit library circuits."""
    out = []
    for entry in manifest()["entries"]:
        path = CORPUS / entry["path"]
        stem = path.stem
        out.append(
            Case(
                name=entry["path"].removesuffix(".qasm"),
                source=entry["source"],
                family=entry.get("family") or stem,
                level=entry.get("level"),
                load=_qasm_loader(path),
                slow=entry["source"] != "hand-written" and entry["num_qubits"] not in CI_WIDTHS,
                dynamic=bool(entry.get("dynamic")),
                num_qubits=int(entry["num_qubits"]),
            )
        )
        if entry.get("qpy"):
            qpy_path = CORPUS / entry["qpy"]
            out.append(
                Case(
                    name=entry["qpy"],
                    source=entry["source"] + " (QPY)",
                    family=entry.get("family") or stem,
                    level=entry.get("level"),
                    load=_qpy_loader(qpy_path),
                    slow=entry["num_qubits"] not in CI_WIDTHS,
                    dynamic=True,
                    num_qubits=int(entry["num_qubits"]),
                )
            )
    for name, build in library_circuits().items():
        width = build().num_qubits
        out.append(
            Case(
                name=f"library/{name}", source="qiskit.circuit.library", family=name, level=None, load=build,
                num_qubits=width,
            )
        )  # fmt: skip
    return out


def library_circuits() -> dict[str, Callable[[], QuantumCircuit]]:
    """Qiskit circuit-library circuits with composite gates, as users build them."""
    from qiskit.circuit.library import MCXGate, QFTGate, UnitaryGate, grover_operator, phase_estimation, quantum_volume
    from qiskit.quantum_info import random_unitary

    def qft() -> QuantumCircuit:
        qc = QuantumCircuit(5)
        qc.x([0, 2])
        qc.append(QFTGate(5), range(5))
        qc.measure_all()
        return qc

    def mcx() -> QuantumCircuit:
        qc = QuantumCircuit(6, 6)
        qc.h(range(4))
        qc.append(MCXGate(4), [0, 1, 2, 3, 4])
        qc.append(MCXGate(3, ctrl_state="101"), [1, 2, 3, 5])
        qc.measure(range(6), range(6))
        return qc

    def volume() -> QuantumCircuit:
        qc = quantum_volume(6, depth=6, seed=11)
        qc.measure_all()
        return qc

    def qpe() -> QuantumCircuit:
        target = QuantumCircuit(2)
        target.cp(2 * math.pi * 0.375, 0, 1)
        qc = QuantumCircuit(6, 4)
        qc.x([4, 5])
        qc.append(phase_estimation(4, target).to_gate(label="qpe"), range(6))
        qc.measure(range(4), range(4))
        return qc

    def grover() -> QuantumCircuit:
        oracle = QuantumCircuit(4)
        oracle.x([1, 3])
        oracle.h(3)
        oracle.mcx([0, 1, 2], 3)
        oracle.h(3)
        oracle.x([1, 3])  # marks |0101>
        op = grover_operator(oracle)
        qc = QuantumCircuit(4)
        qc.h(range(4))
        qc.compose(op.power(2), inplace=True)
        qc.measure_all()
        return qc

    def unitaries() -> QuantumCircuit:
        qc = QuantumCircuit(5, 5)
        qc.h(range(5))
        qc.append(UnitaryGate(random_unitary(4, seed=3), label="u01"), [0, 1])
        qc.append(UnitaryGate(random_unitary(8, seed=4)), [1, 2, 3])
        qc.append(UnitaryGate(random_unitary(4, seed=5)), [3, 4])
        qc.measure(range(5), range(5))
        return qc

    return {
        "QFTGate_5": qft,
        "MCXGate_6": mcx,
        "QuantumVolume_6": volume,
        "PhaseEstimation_6": qpe,
        "GroverOperator_4": grover,
        "UnitaryGate_5": unitaries,
    }


def roomy_cluster(width: int) -> QPURegistry:
    """Exact nodes that hold the whole circuit."""
    return ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=max(width, 2) + 2).build()


def cut_width(width: int) -> int:
    """Node width that forces a cut of a ``width``-qubit connected circuit (pieces of about 3/4)."""
    return max(2, width - max(1, width // 4))


def cut_cluster(width: int, *, mps: bool = False) -> QPURegistry:
    """Two exact nodes narrower than the circuit (and an MPS node that holds it, if asked)."""
    builder = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=cut_width(width))
    if mps:
        builder = builder.add("local_gpu_mps", n_nodes=1, max_qubits=max(width, 2) * 3)
    return builder.build()


def _measured(circuit: QuantumCircuit) -> QuantumCircuit:
    """Circuits published without measurements are measured at the end, as a user would."""
    if circuit.num_clbits:
        return circuit
    measured = circuit.copy()
    measured.measure_all()
    return measured


def check_counts(case: Case, registry: QPURegistry, *, shots: int, seed: int, cut: bool) -> Outcome:
    """Run the case's counts on ``registry`` and compare with the exact distribution."""
    t0 = time.perf_counter()
    try:
        circuit = _measured(case.load())
        spec = VirtualCircuitSpec(circuit_object=circuit, shots=shots, seed=seed)
        qvm = DistributedQVM(registry)
        result = qvm.run(spec)
    except QVMError as exc:
        return _refused(exc, t0)
    except BaseException as exc:  # the point of the corpus: nothing untyped escapes
        if isinstance(exc, KeyboardInterrupt):
            raise
        return Outcome("fail", f"untyped {type(exc).__name__}: {exc}", time.perf_counter() - t0)
    exact = exact_distribution(circuit)
    distance = tvd(result.counts, exact)
    if result.reconstructed and result.cut is not None:
        bound = cut_tvd_tolerance(
            exact,
            total_shots=int(result.cut["shot_allocation"]["total_shots"]),
            overhead=float(result.cut["sampling_overhead"]),
            sampled=sum(result.counts.values()),
            outcomes=2 ** min(circuit.num_clbits, circuit.num_qubits + 64),
        )
    else:
        bound = tvd_tolerance(exact, sum(result.counts.values()))
    status = "pass" if distance <= bound else "fail"
    extra = {"tvd": distance, "bound": bound, "approximate": result.approximate}
    if result.cut:
        extra.update(overhead=result.cut["sampling_overhead"], cuts=len(result.cut["cuts"]))
    return Outcome(
        status,
        f"TVD {distance:.4f} vs bound {bound:.4f}",
        time.perf_counter() - t0,
        result.timings.get("plan", 0.0),
        result.plan.strategy.value,
        extra,
    )


def observables_for(num_qubits: int, seed: str) -> list[str]:
    """Three Pauli observables: Z on the first and last qubit, X on qubit 0, and a random one."""
    rng = np.random.default_rng([ord(c) for c in seed])
    zz = ["I"] * num_qubits
    zz[0] = zz[-1] = "Z"
    x0 = ["I"] * num_qubits
    x0[-1] = "X"  # qubit 0 is the rightmost letter
    rand = list(rng.choice(list("IXYZ"), size=num_qubits))
    if all(p == "I" for p in rand):
        rand[0] = "Z"
    return ["".join(zz), "".join(x0), "".join(rand)]


def check_observables(case: Case, registry: QPURegistry, *, shots: int, seed: int) -> Outcome:
    """Expectation values on ``registry``: each within 4 standard errors of the exact value."""
    t0 = time.perf_counter()
    try:
        circuit = case.load()
        labels = observables_for(circuit.num_qubits, case.name)
        spec = VirtualCircuitSpec(circuit_object=circuit, observables=labels, shots=shots, seed=seed)
        result = DistributedQVM(registry).run(spec)
    except QVMError as exc:
        return _refused(exc, t0)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return Outcome("fail", f"untyped {type(exc).__name__}: {exc}", time.perf_counter() - t0)
    assert result.expectation_values is not None and result.standard_errors is not None
    worst = 0.0
    details = []
    for label, value, error in zip(labels, result.expectation_values, result.standard_errors, strict=True):
        truth = exact_expectation(circuit, SparsePauliOp(label))
        if not math.isfinite(error):
            return Outcome("fail", f"{label}: no standard error", time.perf_counter() - t0)
        # 1e-9: the exact reference rounds too (a stabilizer's value is 1 up to float error)
        off = max(abs(value - truth) - 1e-9, 0.0)
        z = off / error if error > 0 else (0.0 if off == 0 else math.inf)
        worst = max(worst, z)
        details.append(f"{label}: {value:+.4f}±{error:.4f} (exact {truth:+.4f})")
    status = "pass" if worst <= 4 else "fail"
    return Outcome(
        status,
        f"worst {worst:.2f} SE; " + "; ".join(details),
        time.perf_counter() - t0,
        result.timings.get("plan", 0.0),
        result.plan.strategy.value,
        {"worst_z": worst},
    )


def _refused(exc: QVMError, t0: float) -> Outcome:
    kind = next((k for k in REFUSALS if isinstance(exc, k)), None)
    if exc.__cause__ is not None and not isinstance(exc.__cause__, QVMError) and not isinstance(exc, CircuitParseError):
        # a library call failed inside planning or compiling: typed, but a defect, not a documented refusal
        return Outcome("fail", f"library failure {type(exc).__name__}: {exc}", time.perf_counter() - t0)
    if kind is None:
        return Outcome("fail", f"undocumented refusal {type(exc).__name__}: {exc}", time.perf_counter() - t0)
    return Outcome("refused", f"{type(exc).__name__}: {str(exc)[:300]}", time.perf_counter() - t0)


def iter_cases(*, slow: bool | None = None) -> Iterator[Case]:
    for case in cases():
        if slow is None or case.slow == slow:
            yield case
