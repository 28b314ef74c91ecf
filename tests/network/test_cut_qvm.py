"""Cutting through the QVM facade: counts reconstructed from cut circuits, heterogeneous nodes,
and the choice between cutting and an approximate MPS node."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp, Statevector

from network.cutting import DistributionTooLargeError, total_variation
from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import PlanningError
from network.node_providers import ClusterBuilder, QVMMode
from network.planning import Strategy


def chain(n: int, seed: int, *, measure: bool = True) -> QuantumCircuit:
    """Random ``ry`` layers around a CX chain over all ``n`` qubits: connected, one cut per split."""
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(n, n if measure else 0)
    for q in range(n):
        qc.ry(float(rng.uniform(0.2, 2.9)), q)
    for q in range(n - 1):
        qc.cx(q, q + 1)
    for q in range(n):
        qc.ry(float(rng.uniform(0.2, 2.9)), q)
    if measure:
        qc.measure(range(n), range(n))
    return qc


def exact_probabilities(qc: QuantumCircuit) -> dict[str, float]:
    probs = Statevector(qc.remove_final_measurements(inplace=False)).probabilities_dict()
    return {k: float(v) for k, v in probs.items()}


def tvd(counts: dict[str, int], exact: dict[str, float]) -> float:
    keys = sorted(set(counts) | set(exact))
    total = sum(counts.values())
    p = np.array([counts.get(k, 0) / total for k in keys])
    q = np.array([exact.get(k, 0.0) for k in keys])
    return total_variation(p, q)


def test_counts_of_a_circuit_wider_than_every_node_are_reconstructed() -> None:
    qc = chain(8, seed=1)
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=5).build()
    result = DistributedQVM(registry).run(VirtualCircuitSpec(circuit_object=qc, shots=50_000, seed=3))
    assert result.strategy is Strategy.CUT
    assert result.reconstructed and not result.approximate
    assert sum(result.counts.values()) == 50_000
    assert all(len(k) == 8 for k in result.counts)
    assert result.cut is not None and result.cut["sampling_overhead"] == pytest.approx(9.0)
    assert any("reconstructed" in note for note in result.notes)
    assert tvd(result.counts, exact_probabilities(qc)) < 0.05
    assert result.quasi_distribution is not None
    assert sum(result.quasi_distribution.values()) == pytest.approx(1.0, abs=0.05)


def test_reconstructed_counts_follow_the_circuit_clbit_layout() -> None:
    """Qubit q measured into clbit 7 - q, a qubit left unmeasured: keys follow the clbits."""
    base = chain(8, seed=2, measure=False)
    qc = QuantumCircuit(8, 8)
    qc.compose(base, inplace=True)
    for q in range(7):
        qc.measure(q, 7 - q)
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=5).build()
    result = DistributedQVM(registry).run(VirtualCircuitSpec(circuit_object=qc, shots=50_000, seed=4))
    exact: dict[str, float] = {}
    for key, p in exact_probabilities(base).items():
        bits = ["0"] * 8
        for q in range(7):
            bits[7 - (7 - q)] = key[7 - q]
        mapped = "".join(bits)
        exact[mapped] = exact.get(mapped, 0.0) + p
    assert tvd(result.counts, exact) < 0.05


def test_cut_preferred_over_an_approximate_node_within_the_bound() -> None:
    qc = chain(8, seed=5)
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=5).add("local_gpu_mps", n_nodes=1).build()
    result = DistributedQVM(registry).run(VirtualCircuitSpec(circuit_object=qc, shots=2000, seed=1))
    assert result.strategy is Strategy.CUT and not result.approximate
    assert any("approximate" in note for note in result.notes)  # the alternative is stated


def test_approximate_node_taken_when_cutting_exceeds_the_bound() -> None:
    qc = chain(8, seed=6)
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=5).add("local_gpu_mps", n_nodes=1).build()
    spec = VirtualCircuitSpec(circuit_object=qc, shots=2000, seed=1, max_sampling_overhead=4)
    result = DistributedQVM(registry).run(spec)
    assert result.approximate and result.strategy is not Strategy.CUT
    assert sum(result.counts.values()) == 2000


def test_forbidding_approximation_leaves_the_overhead_error() -> None:
    qc = chain(8, seed=6)
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=5).add("local_gpu_mps", n_nodes=1).build()
    spec = VirtualCircuitSpec(circuit_object=qc, shots=2000, seed=1, max_sampling_overhead=4, allow_approximate=False)
    with pytest.raises(PlanningError, match=r"overhead 9.*max_sampling_overhead=4"):
        DistributedQVM(registry).run(spec)


def test_observables_fall_back_to_the_approximate_node_past_the_bound() -> None:
    qc = chain(8, seed=7, measure=False)
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=5).add("local_gpu_mps", n_nodes=1).build()
    spec = VirtualCircuitSpec(circuit_object=qc, observables="ZZZZZZZZ", shots=20_000, seed=2, max_sampling_overhead=4)
    result = DistributedQVM(registry).run(spec)
    assert result.approximate
    exact = float(Statevector(qc).expectation_value(SparsePauliOp("Z" * 8)).real)
    assert result.expectation_values is not None and result.standard_errors is not None
    assert abs(result.expectation_values[0] - exact) < 4 * result.standard_errors[0] + 1e-3


def ghz(n: int) -> QuantumCircuit:
    qc = QuantumCircuit(n, n)
    qc.h(0)
    for q in range(n - 1):
        qc.cx(q, q + 1)
    qc.measure(range(n), range(n))
    return qc


def test_a_32_qubit_distribution_is_reconstructed_sparsely() -> None:
    """Past the dense 24-qubit limit (refused before): GHZ-32 cut for 16-qubit nodes. The estimate
    holds the combinations of the outcomes each piece gave, a handful, not 2^32."""
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=16).build()
    result = DistributedQVM(registry).run(VirtualCircuitSpec(circuit_object=ghz(32), shots=20_000, seed=5))
    assert result.strategy is Strategy.CUT and result.reconstructed
    assert any("reconstructed sparsely" in note for note in result.plan.notes), result.plan.notes
    zeros, ones = "0" * 32, "1" * 32
    assert tvd(result.counts, {zeros: 0.5, ones: 0.5}) < 0.05, sorted(result.counts.items(), key=lambda kv: -kv[1])[:5]
    quasi = result.quasi_distribution
    assert quasi is not None and len(quasi) < 1000 and all(len(k) == 32 for k in quasi)
    assert quasi[zeros] == pytest.approx(0.5, abs=0.05) and quasi[ones] == pytest.approx(0.5, abs=0.05)


def test_distribution_past_the_key_width_is_refused_before_running() -> None:
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=40).build()
    with pytest.raises(DistributionTooLargeError, match="64-qubit circuit cannot be reconstructed.*at most 63"):
        DistributedQVM(registry).plan(VirtualCircuitSpec(circuit_object=ghz(64), shots=100, seed=1))


def test_output_spread_past_the_support_limit_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limit on the combinations of the pieces' outcomes, lowered so that a spread 8-qubit
    output crosses it: a typed error with the numbers, after the subexperiments ran."""
    import network.cutting.decomposition as decomposition  # where the limit is checked

    monkeypatch.setattr(decomposition, "MAX_SUPPORT", 64)
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=5).build()
    with pytest.raises(DistributionTooLargeError, match=r"gave \d+ x \d+ distinct outcomes: \d[\d,]* combinations"):
        DistributedQVM(registry).run(VirtualCircuitSpec(circuit_object=chain(8, seed=8), shots=2000, seed=1))


def test_dry_run_prices_the_cut_without_running() -> None:
    qc = chain(8, seed=9)
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=5).build()
    result = DistributedQVM(registry, mode=QVMMode.DRY_RUN).run(VirtualCircuitSpec(circuit_object=qc, shots=100))
    assert result.counts == {} and result.strategy is Strategy.CUT
    assert result.cut is not None and result.cut["subexperiments"]


def test_heterogeneous_nodes_take_pieces_of_their_own_width() -> None:
    """A 7-qubit block and a 4-qubit block joined by one CX, on a 7-qubit and a 4-qubit node."""
    rng = np.random.default_rng(11)
    qc = QuantumCircuit(11)
    for span in (range(7), range(7, 11)):
        for q in span:
            qc.ry(float(rng.uniform(0.2, 2.9)), q)
        for q in list(span)[:-1]:
            qc.cx(q, q + 1)
    qc.cx(6, 7)
    for q in range(11):
        qc.ry(float(rng.uniform(0.2, 2.9)), q)
    registry = (
        ClusterBuilder()
        .add("local_cpu", name="wide", max_qubits=7, host="a")
        .add("local_cpu", name="narrow", max_qubits=4, host="b")
        .build()
    )
    spec = VirtualCircuitSpec(circuit_object=qc, observables="Z" * 11, shots=4000, seed=5)
    result = DistributedQVM(registry).run(spec)
    assert result.cut is not None
    widths = result.cut["subcircuit_widths"]
    assert sorted(widths.values()) == [4, 7]
    assert {widths[label]: nodes[0] for label, nodes in result.cut["nodes"].items()} == {7: "wide-0", 4: "narrow-0"}
    exact = float(Statevector(qc).expectation_value(SparsePauliOp("Z" * 11)).real)
    assert result.expectation_values is not None and result.standard_errors is not None
    assert abs(result.expectation_values[0] - exact) < 4 * result.standard_errors[0]


def test_observables_on_idle_qubits_are_exact() -> None:
    """Qubits no gate touches (Bernstein-Vazirani has them) get no piece from qiskit-addon-cutting,
    which raised ``KeyError: None``; their Paulis are evaluated exactly instead."""
    from tests.stats import exact_expectation

    bare = QuantumCircuit(5, 2)  # qubits 2..4 never touched
    bare.h(0)
    bare.cx(0, 1)
    bare.measure([0, 1], [0, 1])
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=3).build()
    labels = ["IIIZZ", "ZIIII", "IXIII", "XIIZZ", "IIIXX"]
    spec = VirtualCircuitSpec(circuit_object=bare, observables=labels, shots=4000, seed=1)
    result = DistributedQVM(registry).run(spec)
    assert result.expectation_values is not None and result.standard_errors is not None
    for label, value, error in zip(labels, result.expectation_values, result.standard_errors, strict=True):
        assert abs(value - exact_expectation(bare, label)) <= 4 * error + 1e-9, label
    assert result.expectation_values[2] == 0.0 and result.standard_errors[2] == 0.0  # X on an idle qubit


def test_observables_after_mid_circuit_measurement_and_feed_forward() -> None:
    from tests.stats import exact_expectation

    qc = QuantumCircuit(5, 2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure(0, 0)  # its bit is read below: the qubit decoheres
    with qc.if_test((qc.clbits[0], 1)):
        qc.x(2)
    qc.h(0)
    for q in range(1, 4):
        qc.cx(q, q + 1)
    qc.ry(0.7, 4)
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=4).build()
    labels = ["IIIIX", "ZZIII", "IIZZI", "XIIIZ"]
    result = DistributedQVM(registry).run(VirtualCircuitSpec(circuit_object=qc, observables=labels, shots=8000, seed=3))
    assert result.strategy is Strategy.CUT
    assert result.expectation_values is not None and result.standard_errors is not None
    for label, value, error in zip(labels, result.expectation_values, result.standard_errors, strict=True):
        assert abs(value - exact_expectation(qc, label)) <= 4 * error + 1e-9, (label, value, error)
