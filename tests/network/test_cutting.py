"""Cutting round trips: expectation values of connected circuits wider than every node."""

from __future__ import annotations

import random

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp, Statevector

from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import PlanningError, SpecError
from network.node_providers import ClusterBuilder
from network.planning import Strategy


def _connected(n: int, seed: int) -> QuantumCircuit:
    """Two halves with random rotations, joined by one CX in the middle, plus rotations after."""
    rng = random.Random(seed)
    qc = QuantumCircuit(n)
    half = n // 2
    for q in range(n):
        qc.ry(rng.uniform(0.2, 2.9), q)
    for q in range(half - 1):
        qc.cx(q, q + 1)
    for q in range(half, n - 1):
        qc.cx(q, q + 1)
    qc.cx(half - 1, half)
    for q in range(n):
        qc.ry(rng.uniform(0.2, 2.9), q)
    return qc


def _observables(n: int, seed: int) -> list[SparsePauliOp]:
    rng = random.Random(seed)
    out = []
    for _ in range(2):
        label = ["I"] * n
        for q in rng.sample(range(n), 2):
            label[q] = rng.choice("XZ")
        out.append(SparsePauliOp(["".join(label)]))
    z_all = SparsePauliOp(["Z" * n])
    return [*out, z_all]


@pytest.mark.parametrize("case", range(10))
def test_cut_expectation_values_within_four_standard_errors(case: int) -> None:
    rng = random.Random(100 + case)
    n = rng.randint(8, 14)
    width = max(4, min(9, (n + 1) // 2 + rng.randint(0, 1)))
    qc = _connected(n, seed=case)
    observables = _observables(n, seed=case)
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=width).build()
    spec = VirtualCircuitSpec(circuit_object=qc, observables=observables, shots=4000, seed=case)
    result = DistributedQVM(registry).run(spec)
    assert result.strategy is Strategy.CUT and result.cut is not None and result.cut["cuts"]
    assert result.cut["sampling_overhead"] >= 9
    exact = Statevector(qc)
    assert result.expectation_values is not None and result.standard_errors is not None
    for op, value, error in zip(observables, result.expectation_values, result.standard_errors, strict=True):
        truth = float(exact.expectation_value(op).real)
        assert error > 0
        assert abs(value - truth) <= 4 * error + 1e-9, (op, value, truth, error)


def test_standard_errors_shrink_as_shots_grow() -> None:
    qc = _connected(10, seed=3)
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=6).build()
    errors = []
    for shots in (800, 12_800):
        result = DistributedQVM(registry).run(
            VirtualCircuitSpec(circuit_object=qc, observables="Z" * 10, shots=shots, seed=4)
        )
        assert result.standard_errors is not None
        errors.append(result.standard_errors[0])
    assert errors[1] < errors[0] / 2  # ~1/sqrt(16) = 1/4 expected


def test_fitting_circuits_need_no_cut() -> None:
    qc = _connected(6, seed=1)
    registry = ClusterBuilder().add("local_cpu", n_nodes=1, max_qubits=8).build()
    result = DistributedQVM(registry).run(VirtualCircuitSpec(circuit_object=qc, observables="ZZIIII", shots=20_000))
    assert result.strategy is Strategy.WHOLE and result.cut is not None and result.cut["cuts"] == []
    truth = float(Statevector(qc).expectation_value(SparsePauliOp("ZZIIII")).real)
    assert result.expectation_values is not None and result.standard_errors is not None
    assert abs(result.expectation_values[0] - truth) <= 4 * result.standard_errors[0]


def test_overhead_above_the_bound_is_refused_with_the_numbers() -> None:
    qc = _connected(10, seed=2)
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=6).add("local_gpu_mps", n_nodes=1).build()
    spec = VirtualCircuitSpec(circuit_object=qc, observables="Z" * 10, max_sampling_overhead=5)
    with pytest.raises(PlanningError, match=r"sampling overhead 9, above max_sampling_overhead=5") as info:
        DistributedQVM(registry).run(spec)
    message = str(info.value)
    assert "1 cut(s) (Gate Cut at gate" in message
    assert "local_gpu_mps-0" in message and "wider than 6 qubits" in message


def test_bad_observables() -> None:
    qc = _connected(8, seed=0)
    with pytest.raises(SpecError, match=r"acts on 3 qubits; the circuit has 8"):
        VirtualCircuitSpec(circuit_object=qc, observables="ZZZ")
    with pytest.raises(SpecError, match=r"'ZZAZZZZZ' is not a Pauli string"):
        VirtualCircuitSpec(circuit_object=qc, observables=["ZZAZZZZZ"])
    with pytest.raises(SpecError, match="complex coefficients"):
        VirtualCircuitSpec(circuit_object=qc, observables=SparsePauliOp(["Z" * 8], [1j]))
    with pytest.raises(SpecError, match="must be a Pauli string or a SparsePauliOp"):
        VirtualCircuitSpec(circuit_object=qc, observables=[np.eye(2)])


def test_identical_subcircuits_are_sampled_independently() -> None:
    # ten identical one-qubit blocks: Z^10 is a product of ten independent estimates of <Z> = 0.6;
    # sharing one sample between blocks would give m^10 instead, biased and with a wrong error
    qc = QuantumCircuit(10)
    qc.ry(2 * np.arccos(np.sqrt(0.8)), range(10))
    registry = ClusterBuilder().add("local_cpu", n_nodes=1, max_qubits=12).build()
    values = []
    for seed in range(6):
        result = DistributedQVM(registry, shots=4000).run(
            VirtualCircuitSpec(circuit_object=qc, observables="Z" * 10, seed=seed)
        )
        assert result.expectation_values is not None and result.standard_errors is not None
        assert abs(result.expectation_values[0] - 0.6**10) <= 4 * result.standard_errors[0]
        values.append(result.expectation_values[0])
        assert result.cut is not None and result.cut["executed_circuits"] == 10  # one per block, not shared
    assert len(set(values)) == 6
