"""Joint cuts (network.cutting.joint): the decompositions checked against the operation they
replace, exact reconstructions of Qiskit circuit-library circuits from exact subexperiment
probabilities, and runs through the QVM that the planner prices jointly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.circuit.library import (
    CHGate,
    CPhaseGate,
    CRZGate,
    CSXGate,
    CUGate,
    n_local,
    qaoa_ansatz,
    real_amplitudes,
)
from qiskit.quantum_info import PauliList, SparsePauliOp, Statevector

from network.cutting import joint
from network.cutting.joint import (
    build_joint_problem,
    estimate_joint_expectations,
    exact_counts,
    joint_gamma,
    joint_layout,
    mub_matrices,
    reconstruct_joint_sparse,
    verify_joint,
)
from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import PlanningError, QVMError, SpecError
from network.node_providers import ClusterBuilder
from network.planning import Strategy


@pytest.mark.parametrize(("kind", "n"), [("wires", 1), ("wires", 2), ("wires", 3), ("gates", 1), ("gates", 2)])
def test_the_decomposition_implements_the_cut_operation_with_the_published_gamma(kind: str, n: int) -> None:
    """The Choi matrix of the QPD sum, built from the circuits that run, is the cut operation's."""
    error, gamma = verify_joint(kind, n)
    assert error < 1e-9
    assert gamma == pytest.approx(joint_gamma(n)) == 2 ** (n + 1) - 1


@pytest.mark.parametrize(
    "gate", [CPhaseGate(0.7), CRZGate(1.1), CHGate(), CUGate(0.3, 0.5, 0.9, 0.2), CSXGate()], ids=lambda g: g.name
)
def test_any_controlled_gate_is_teleported_exactly(gate: Any) -> None:
    """The gadget applies the gate from the target side's ancilla: any controlled unitary, either
    direction (the second gate of two runs the other way)."""
    for n in (1, 2):
        error, gamma = verify_joint("gates", n, gate)
        assert error < 1e-9 and gamma == 2 ** (n + 1) - 1


@pytest.mark.parametrize("n", [1, 2, 3])
def test_the_bases_are_mutually_unbiased(n: int) -> None:
    d = 2**n
    bases = []
    for b in range(d + 1):
        columns = []
        for k in range(d):
            qc = QuantumCircuit(n)
            joint._prepare(qc, list(qc.qubits), b, k)
            columns.append(Statevector(qc).data)
        bases.append(np.array(columns).T)
    assert len(mub_matrices(n)) == d
    for i, a in enumerate(bases):
        assert np.allclose(a.conj().T @ a, np.eye(d))
        for b in bases[i + 1 :]:
            assert np.allclose(np.abs(a.conj().T @ b) ** 2, 1 / d)


def library_circuit(name: str) -> QuantumCircuit:
    """Qiskit circuit-library ansatze on 6 qubits, linear entanglement, random parameters, lowered
    to the gates the QVM cuts (two layers: two gates cross the middle)."""
    if name == "real_amplitudes":
        ansatz = real_amplitudes(6, reps=2, entanglement="linear")
    elif name == "two_local_cz":
        ansatz = n_local(6, ["ry", "rz"], "cz", entanglement="linear", reps=2)
    else:
        ansatz = n_local(6, "rx", "cy", entanglement="linear", reps=2)
    bound = ansatz.assign_parameters(np.random.default_rng(7).uniform(0, np.pi, ansatz.num_parameters))
    return transpile(bound, basis_gates=["rx", "ry", "rz", "cx", "cy", "cz"], optimization_level=0)


@pytest.mark.parametrize("name", ["real_amplitudes", "two_local_cz", "two_local_cy"])
def test_library_circuits_are_rebuilt_exactly_from_exact_subexperiments(name: str) -> None:
    qc = library_circuit(name)
    sides = [0, 0, 0, 1, 1, 1]
    problem = build_joint_problem(qc, sides, outputs={q: q for q in range(6)})
    assert problem.kind == "gates" and problem.n == 2
    keys, values = reconstruct_joint_sparse(problem, [exact_counts(c) for c in problem.circuits])
    dense = np.zeros(64)
    dense[keys.astype(np.int64)] = values
    assert np.abs(dense - Statevector(qc).probabilities()).max() < 1e-9

    paulis = PauliList(["ZZZZZZ", "IIXXII", "YIZZIX", "IXIIYI"])
    problem = build_joint_problem(qc, sides, paulis=paulis)
    values = estimate_joint_expectations(problem, [exact_counts(c) for c in problem.circuits], seed=1, bootstrap=0)[0]
    exact = [Statevector(qc).expectation_value(SparsePauliOp(p)).real for p in paulis.to_labels()]
    assert np.allclose(values, exact, atol=1e-9)


def test_three_gates_are_rebuilt_exactly_from_exact_subexperiments() -> None:
    """n = 3 (gamma 15, 576 circuits per piece): the Choi check is too large to run, the exact
    reconstruction of a circuit with three crossing gates (one CZ, two CX, both directions) is not."""
    qc = real_amplitudes(4, reps=1, entanglement="linear").assign_parameters([0.3, 1.1, 0.7, 2.0, 0.2, 1.4, 0.9, 2.5])
    qc = transpile(qc, basis_gates=["ry", "cx", "cz"], optimization_level=0)
    qc.cz(1, 2)
    qc.ry(0.8, 2)
    qc.cx(2, 1)
    qc.ry(0.4, 1)
    problem = build_joint_problem(qc, [0, 0, 1, 1], outputs={q: q for q in range(4)})
    assert problem.n == 3 and problem.gamma == 15
    keys, values = reconstruct_joint_sparse(problem, [exact_counts(c) for c in problem.circuits])
    dense = np.zeros(16)
    dense[keys.astype(np.int64)] = values
    assert np.abs(dense - Statevector(qc).probabilities()).max() < 1e-9


def test_parallel_wire_cuts_are_rebuilt_exactly_from_exact_subexperiments() -> None:
    from qiskit_addon_cutting.instructions import CutWire

    angles = np.random.default_rng(3).uniform(0, 3, 5)
    uncut = QuantumCircuit(5)
    cut = QuantumCircuit(5)
    for qc in (uncut, cut):
        for q in range(5):
            qc.ry(float(angles[q]), q)
        qc.cx(0, 1)
        qc.cx(1, 2)
        qc.rx(0.7, 2)
    cut.append(CutWire(), [1])
    cut.append(CutWire(), [2])
    for qc in (uncut, cut):
        qc.cx(2, 3)
        qc.cx(1, 4)
        qc.cz(3, 4)
        qc.ry(0.4, 1)
    layout = joint_layout(cut)
    assert layout is not None and layout.kind == "wires" and layout.n == 2
    problem = build_joint_problem(layout.circuit, layout.sides, outputs=layout.outputs(uncut))
    assert [len(s.circuits) for s in problem.sides] == [5, 20]  # d + 1 bases measured, d(d + 1) states prepared
    keys, values = reconstruct_joint_sparse(problem, [exact_counts(c) for c in problem.circuits])
    dense = np.zeros(32)
    dense[keys.astype(np.int64)] = values
    assert np.abs(dense - Statevector(uncut).probabilities()).max() < 1e-9

    paulis = PauliList(["ZZZZZ", "XIZZY", "IIXXI"])
    problem = build_joint_problem(layout.circuit, layout.sides, paulis=layout.paulis(paulis, uncut))
    values = estimate_joint_expectations(problem, [exact_counts(c) for c in problem.circuits], seed=1, bootstrap=0)[0]
    exact = [Statevector(uncut).expectation_value(SparsePauliOp(p)).real for p in paulis.to_labels()]
    assert np.allclose(values, exact, atol=1e-9)


def test_a_distribution_spread_past_the_limits_is_refused_before_it_is_contracted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from network.cutting import DistributionTooLargeError, decomposition

    qc = library_circuit("real_amplitudes")
    problem = build_joint_problem(qc, [0, 0, 0, 1, 1, 1], outputs={q: q for q in range(6)})
    raw = [exact_counts(c) for c in problem.circuits]
    monkeypatch.setattr(decomposition, "MAX_SUPPORT", 63)  # the pieces give 8 x 8 outcomes
    with pytest.raises(DistributionTooLargeError, match="8 x 8"):
        reconstruct_joint_sparse(problem, raw)


def test_what_cannot_be_cut_jointly_is_refused_with_a_typed_error() -> None:
    qc = QuantumCircuit(4)
    qc.h(0)
    qc.cx(0, 1)
    qc.swap(1, 2)
    qc.cx(2, 3)
    with pytest.raises(PlanningError, match=r"controlled gates.*swap") as info:
        build_joint_problem(qc, [0, 0, 1, 1], outputs={q: q for q in range(4)})
    assert isinstance(info.value, QVMError)
    with pytest.raises(PlanningError, match="piece"):
        build_joint_problem(qc, [0, 0, 1, 2], outputs={q: q for q in range(4)})
    many = QuantumCircuit(2)
    for _ in range(4):
        many.cx(0, 1)
    with pytest.raises(PlanningError, match="at most 3"):
        build_joint_problem(many, [0, 1], outputs={0: 0, 1: 1})
    with pytest.raises(SpecError, match="joint_cuts"):
        VirtualCircuitSpec(circuit_object=qc, joint_cuts="yes")  # type: ignore[arg-type]


def halves(half: int, seed: int, *, measure: bool = False) -> QuantumCircuit:
    """Two ``half``-qubit CX chains with random ``ry`` layers, joined by two CX (one each way)."""
    rng = np.random.default_rng(seed)
    n = 2 * half
    qc = QuantumCircuit(n, n if measure else 0)
    for layer in range(2):
        for q in range(n):
            qc.ry(float(rng.uniform(0.2, 2.9)), q)
        for offset in (0, half):
            for j in range(offset, offset + half - 1):
                qc.cx(j, j + 1)
        qc.cx(half - 1, half) if layer == 0 else qc.cx(half, half - 1)
    for q in range(n):
        qc.ry(float(rng.uniform(0.2, 2.9)), q)
    if measure:
        qc.measure(range(n), range(n))
    return qc


def test_the_planner_cuts_two_gates_jointly_when_the_nodes_have_room_for_the_ancillas() -> None:
    qc = halves(4, seed=1)
    observable = "IIZZZZII"
    exact = Statevector(qc).expectation_value(SparsePauliOp(observable)).real
    roomy = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=6).build()
    result = DistributedQVM(roomy, shots=2000).run(
        VirtualCircuitSpec(circuit_object=qc, observables=[observable], seed=5)
    )
    assert result.strategy is Strategy.CUT
    assert result.cut is not None
    assert result.cut["sampling_overhead"] == 49.0 and result.cut["joint"] == "gates"
    assert any("decomposed jointly" in note for note in result.notes)
    error = result.standard_errors[0]
    assert 0 < error < 0.05
    assert abs(result.expectation_values[0] - exact) < 4 * error

    separate = DistributedQVM(roomy, shots=2000).run(
        VirtualCircuitSpec(circuit_object=qc, observables=[observable], seed=5, joint_cuts=False)
    )
    assert separate.cut is not None and separate.cut["sampling_overhead"] == 81.0
    tight = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=4).build()  # no room for the ancillas
    alone = DistributedQVM(tight, shots=500).run(
        VirtualCircuitSpec(circuit_object=qc, observables=[observable], seed=5)
    )
    assert alone.cut is not None and alone.cut["sampling_overhead"] == 81.0


def test_counts_of_a_jointly_cut_circuit_match_the_exact_distribution() -> None:
    qc = halves(4, seed=2, measure=True)
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=6).build()
    result = DistributedQVM(registry, shots=20_000).run(VirtualCircuitSpec(circuit_object=qc, seed=3))
    assert result.cut is not None and result.cut["sampling_overhead"] == 49.0
    assert sum(result.counts.values()) == 20_000
    exact = Statevector(qc.remove_final_measurements(inplace=False)).probabilities_dict()
    keys = sorted(set(result.counts) | set(exact))
    p = np.array([result.counts.get(k, 0) / 20_000 for k in keys])
    q = np.array([exact.get(k, 0.0) for k in keys])
    assert 0.5 * np.abs(p - q).sum() < 0.06


def wire_circuit(seed: int = 4) -> QuantumCircuit:
    """Qubit 0 talks to qubits 1 and 2, then to 3 and 4: on 3-qubit nodes one wire cut (16 alone,
    9 jointly) beats the gate cuts."""
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(5)
    for q in range(5):
        qc.ry(float(rng.uniform(0.2, 2.9)), q)
    for _ in range(2):
        qc.cx(0, 1)
        qc.cx(2, 0)
        qc.ry(float(rng.uniform(0.2, 2.9)), 0)
    qc.cx(1, 2)
    for _ in range(2):
        qc.cx(0, 3)
        qc.cx(4, 0)
        qc.rx(float(rng.uniform(0.2, 2.9)), 0)
    qc.cx(3, 4)
    return qc


def test_a_wire_cut_is_priced_and_run_at_the_joint_optimum() -> None:
    """One qubit talks to two pairs in turn: cutting its wire once (16 alone, 9 jointly) beats
    three gate cuts; the joint decomposition measures it at the end of one piece and prepares it
    at the start of the other."""
    qc = wire_circuit()
    observable = "ZZIXZ"
    exact = Statevector(qc).expectation_value(SparsePauliOp(observable)).real
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=3).build()
    result = DistributedQVM(registry, shots=4000).run(
        VirtualCircuitSpec(circuit_object=qc, observables=[observable], seed=11)
    )
    assert result.cut is not None
    assert result.cut["joint"] == "wires" and result.cut["sampling_overhead"] == 9.0
    error = result.standard_errors[0]
    assert abs(result.expectation_values[0] - exact) < 4 * error


@pytest.mark.filterwarnings("ignore::scipy.sparse.SparseEfficiencyWarning")
def test_a_qaoa_circuit_has_its_rzz_gates_between_two_clusters_cut_jointly() -> None:
    """Qiskit's qaoa_ansatz for max-cut on two 4-node clusters joined by two edges: the two rzz(1.8)
    across them cost 8.7 each alone (75.6), 49 teleported jointly (rzz = rz, then a controlled rz)."""
    edges = [(0, 1), (1, 2), (2, 3), (0, 3), (0, 2), (4, 5), (5, 6), (6, 7), (4, 7), (5, 7), (3, 4), (2, 5)]
    cost = SparsePauliOp.from_sparse_list([("ZZ", list(e), 1.0) for e in edges], num_qubits=8)
    qc = qaoa_ansatz(cost, reps=1).assign_parameters([0.6, 0.9])
    observables = ["IIIIIIZZ", "IIIZZIII"]
    exact = [Statevector(qc).expectation_value(SparsePauliOp(o)).real for o in observables]
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=6).build()
    result = DistributedQVM(registry, shots=2000).run(VirtualCircuitSpec(circuit_object=qc, observables=observables,
                                                                         seed=3))  # fmt: skip
    assert result.cut is not None and result.cut["joint"] == "gates" and result.cut["sampling_overhead"] == 49
    for value, error, truth in zip(result.expectation_values, result.standard_errors, exact, strict=True):
        assert abs(value - truth) < 4 * error
    separate = DistributedQVM(registry).plan(
        VirtualCircuitSpec(circuit_object=qc, observables=observables, seed=3, joint_cuts=False)
    )
    assert separate.cuts[0].sampling_overhead == pytest.approx((1 + 2 * abs(np.sin(1.8))) ** 4)
