"""Cutting round trips: expectation values of connected circuits wider than every node."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp, Statevector

from network.cutting import MIN_CIRCUIT_SHOTS, ShotAllocation, allocate_shots, block_problem, share_shots
from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import PlanningError, SpecError
from network.node_providers import ClusterBuilder, QVMMode
from network.planning import ShardPlanner, Strategy
from providers.aer import defer_measurements
from tests.conftest import undeferrable_circuit


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
    spec = VirtualCircuitSpec(circuit_object=qc, observables="Z" * 10, max_sampling_overhead=5, allow_approximate=False)
    with pytest.raises(
        PlanningError,
        match=r"sampling overhead 9 \(not decomposed: above the bound\); the bounds are max_sampling_overhead=5",
    ) as info:
        DistributedQVM(registry).run(spec)
    message = str(info.value)
    assert "1 cut(s) (Gate Cut at gate" in message
    assert "allow the approximate MPS node local_gpu_mps-0" in message and "wider than 6 qubits" in message
    assert "fewer shots" in message


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


# --- shot allocation -------------------------------------------------------------------------


def _rzz_joined(n: int, theta: float, seed: int) -> QuantumCircuit:
    """Two halves with random rotations and a CX chain, joined by ``rzz(theta)`` twice."""
    rng = random.Random(seed)
    qc = QuantumCircuit(n)
    half = n // 2
    for _ in range(2):
        for q in range(n):
            qc.ry(rng.uniform(0.2, 2.9), q)
        for q in [*range(half - 1), *range(half, n - 1)]:
            qc.cx(q, q + 1)
        qc.rzz(theta, half - 1, half)
    for q in range(n):
        qc.ry(rng.uniform(0.2, 2.9), q)
    return qc


def _planned(qc: QuantumCircuit, observables: list[SparsePauliOp], width: int, shots: int) -> tuple[Any, ...]:
    """The planner's expectation block on two ``width``-qubit nodes: (plan, its block, the block's problem)."""
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=width).build()
    prepared = [registry.provider(n).prepare(registry.node(n), QVMMode.EMULATED) for n in registry.node_ids]
    spec = VirtualCircuitSpec(
        circuit_object=qc, observables=observables, shots=shots, seed=5, max_sampling_overhead=1e6
    )
    plan = ShardPlanner().plan(spec, prepared)
    block = plan.cuts[0]
    return plan, block, block_problem(qc, block, circuit_hash=plan.circuit_hash)


@pytest.mark.parametrize(
    ("weights", "total", "minimum"),
    [
        ([1.0, 1.0, 1.0], 10, 2),  # even, one remainder shot each to the first
        ([3.0, 1.0, 0.0, 1e-6], 1000, 8),  # zero and tiny weights held at the minimum
        ([0.99, 0.01, 0.1, 0.1, 0.1, 0.1], 7201, 8),
        ([0.0, 0.0], 17, 8),  # all zero: even
        ([5.0, 1.0], 16, 8),  # the budget is exactly the minimum for every circuit
        (list(np.random.default_rng(3).exponential(size=50)), 72_000, 8),
    ],
)
def test_allocation_keeps_the_total_and_the_minimum(weights: list[float], total: int, minimum: int) -> None:
    shots = np.array(allocate_shots(weights, total, minimum))
    assert shots.sum() == total
    assert shots.min() >= minimum
    w = np.array(weights)
    assert np.all(shots[:, None] >= shots[None, :], where=w[:, None] > w[None, :])  # more weight, never fewer
    free = shots > minimum + 1  # surely not held at the minimum: shots within rounding of w * (budget left) / sum(w)
    if free.any() and w.sum() > 0:
        ratio = shots[free] / w[free]
        assert ratio.max() - ratio.min() <= 2 / w[free].min()


def test_allocation_follows_the_weights_and_refuses_an_impossible_minimum() -> None:
    shots = allocate_shots([4.0, 2.0, 1.0, 1.0], 8000, 8)
    assert shots == [4000, 2000, 1000, 1000]
    assert allocate_shots([1.0, 1.0], 9, 3) == [5, 4]  # largest remainder, ties to the lower index
    with pytest.raises(ValueError, match="at least 8 shots each from 15"):
        allocate_shots([1.0, 1.0], 15, 8)


def test_the_plan_takes_the_allocation_by_name() -> None:
    plan, block, _ = _planned(_connected(8, seed=1), [SparsePauliOp("Z" * 8)], width=5, shots=10)
    assert replace(block, shot_allocation="uniform").shot_allocation is ShotAllocation.UNIFORM
    assert block.shot_allocation is ShotAllocation.PROPORTIONAL
    summary = block.to_dict()["shot_allocation"]
    assert summary["method"] == "proportional" and summary["total_shots"] == block.total_shots
    assert sum(summary["circuit_shots"]) == block.total_shots and summary["circuits"] == len(block.circuit_shots)
    # the block's distinct subexperiments are the plan's shards, each with its shots
    assert [s.shots for s in plan.block_shards(0)] == list(block.circuit_shots)
    with pytest.raises(ValueError, match="'even' is not a valid ShotAllocation"):
        replace(block, shot_allocation="even")
    with pytest.raises(SpecError, match="Unknown shot_allocation 'even'; choose one of proportional, uniform"):
        VirtualCircuitSpec(circuit_object=_connected(8, seed=1), observables="Z" * 8, shot_allocation="even")


def test_proportional_shares_follow_the_coefficients_of_an_rzz_cut() -> None:
    # small-angle RZZ cuts: one term's |c| ~ 0.98, others down to 1e-4
    qc = _rzz_joined(8, theta=0.2, seed=1)
    _, block, problem = _planned(qc, [SparsePauliOp("IIZZZZII")], width=4, shots=500)
    subexperiments, coefficients = problem.subexperiments, problem.coefficients
    proportional = share_shots(subexperiments, coefficients, block.total_shots)
    uniform = share_shots(subexperiments, coefficients, block.total_shots, ShotAllocation.UNIFORM)
    assert block.total_shots == 500 * sum(len(c) for c in subexperiments.values())
    for split in (proportional, uniform):
        assert sum(split.shots) == block.total_shots and min(split.shots) >= MIN_CIRCUIT_SHOTS
    assert max(uniform.shots) - min(uniform.shots) <= 1
    w, n = proportional.weights, np.array(proportional.shots)
    assert max(w) / min(w) > 1000
    heavier = w[:, None] > w[None, :]
    assert np.all(n[:, None] >= n[None, :], where=heavier)  # more weight, never fewer shots
    assert n[np.argmax(w)] > 10 * max(uniform.shots)


def test_weights_count_every_commuting_group() -> None:
    # X and Z on the same qubits do not commute qubit-wise: two groups per label, each term's |c| once per group
    qc = _connected(8, seed=4)
    observables = [SparsePauliOp("IIIZZIII"), SparsePauliOp("IIIXXIII")]
    _, block, problem = _planned(qc, observables, width=5, shots=100)
    subexperiments, coefficients = problem.subexperiments, problem.coefficients
    split = share_shots(subexperiments, coefficients, block.total_shots)
    magnitude = sum(abs(float(c)) for c, _ in coefficients)
    groups = {label: len(circs) // len(coefficients) for label, circs in subexperiments.items()}
    assert all(len(circs) == len(coefficients) * groups[label] for label, circs in subexperiments.items())
    assert max(groups.values()) == 2
    assert split.weights.sum() == pytest.approx(magnitude * sum(groups.values()))


@pytest.mark.parametrize("allocation", list(ShotAllocation))
def test_unequal_coefficients_within_four_standard_errors(allocation: ShotAllocation) -> None:
    qc = _rzz_joined(8, theta=0.3, seed=2)
    observables = [SparsePauliOp("IIZZZZII"), SparsePauliOp("IIIXXIII"), SparsePauliOp("ZZZZZZZZ")]
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=4).build()
    spec = VirtualCircuitSpec(
        circuit_object=qc, observables=observables, shots=2000, seed=9, max_sampling_overhead=1e6,
        shot_allocation=allocation.value,
    )  # fmt: skip
    result = DistributedQVM(registry).run(spec)
    assert result.cut is not None
    block = result.plan.cuts[0]
    assert block.shot_allocation is allocation and len(block.circuit_shots) == result.cut["executed_circuits"]
    assert sum(block.circuit_shots) == block.total_shots and min(block.circuit_shots) >= MIN_CIRCUIT_SHOTS
    assert len(result.shard_results) == len(block.circuit_shots)  # one shard per distinct subexperiment
    assert result.cut["shot_allocation"] == {
        "method": str(allocation),
        "total_shots": block.total_shots,
        "circuits": len(block.circuit_shots),
        "min_shots": min(block.circuit_shots),
        "max_shots": max(block.circuit_shots),
        "circuit_shots": list(block.circuit_shots),
    }
    exact = Statevector(qc)
    assert result.expectation_values is not None and result.standard_errors is not None
    for op, value, error in zip(observables, result.expectation_values, result.standard_errors, strict=True):
        truth = float(exact.expectation_value(op).real)
        assert error > 0
        assert abs(value - truth) <= 4 * error + 1e-9, (op, value, truth, error)


def test_a_budget_below_the_minimum_gives_no_standard_error() -> None:
    qc = _connected(8, seed=6)
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=5).build()
    spec = VirtualCircuitSpec(circuit_object=qc, observables="Z" * 8, shots=2, seed=1, max_sampling_overhead=1e6)
    result = DistributedQVM(registry).run(spec)
    block = result.plan.cuts[0]
    assert sum(block.circuit_shots) == block.total_shots
    assert result.standard_errors is not None and result.expectation_values is not None
    assert min(block.circuit_shots) < MIN_CIRCUIT_SHOTS and np.isnan(result.standard_errors[0])
    assert np.isfinite(result.expectation_values[0])


# --- deferred mid-circuit measurements (the Aer provider) ------------------------------------


def _mid_measured() -> QuantumCircuit:
    """Qubit 1 measured, then entangled again and measured at the end; clbit 0 written twice."""
    qc = QuantumCircuit(3, 3)
    qc.ry(1.1, 0)
    qc.ry(0.7, 1)
    qc.cx(0, 1)
    qc.measure(1, 0)
    qc.h(1)
    qc.cx(1, 2)
    qc.measure(1, 1)
    qc.ry(0.4, 0)
    qc.measure(0, 0)
    qc.measure(2, 2)
    return qc


def test_deferred_measurements_keep_the_distribution() -> None:
    from qiskit_aer import AerSimulator

    qc = _mid_measured()
    deferred, dynamic = defer_measurements(qc, 1000, 20)
    assert not dynamic and deferred.num_qubits == 4 and deferred.num_clbits == 3
    names = [inst.operation.name for inst in deferred.data]
    # one final measurement per classical bit: clbit 0's first value is overwritten
    assert names[-3:] == ["measure"] * 3 and "measure" not in names[:-3]
    shots = 200_000
    a = AerSimulator().run(qc, shots=shots, seed_simulator=1).result().get_counts()
    b = AerSimulator().run(deferred, shots=shots, seed_simulator=2).result().get_counts()
    distance = sum(abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b)) / (2 * shots)
    assert distance < 0.01


def _same_counts(a: QuantumCircuit, b: QuantumCircuit) -> float:
    from qiskit_aer import AerSimulator

    shots = 200_000
    x = AerSimulator().run(a, shots=shots, seed_simulator=1).result().get_counts()
    y = AerSimulator().run(b, shots=shots, seed_simulator=2).result().get_counts()
    return sum(abs(x.get(k, 0) - y.get(k, 0)) for k in set(x) | set(y)) / (2 * shots)


def test_resets_and_feed_forward_are_deferred_too() -> None:
    with_reset = _mid_measured()
    with_reset.reset(1)
    with_reset.h(1)
    with_reset.measure(1, 1)
    deferred, dynamic = defer_measurements(with_reset, 1000, 20)
    assert not dynamic and deferred.num_qubits == 6  # qubit 1 measured twice mid-circuit, then reset: 3 ancillas
    assert _same_counts(with_reset, deferred) < 0.01
    feed_forward = _mid_measured()
    with feed_forward.if_test((feed_forward.clbits[0], 1)):
        feed_forward.x(2)
    deferred, dynamic = defer_measurements(feed_forward, 1000, 20)
    assert not dynamic and not any(inst.is_control_flow() for inst in deferred.data)
    assert _same_counts(feed_forward, deferred) < 0.01


def test_measurements_that_cannot_be_deferred_are_left_alone() -> None:
    final = QuantumCircuit(2, 2)
    final.h(0)
    final.cx(0, 1)
    final.measure([0, 1], [0, 1])
    assert defer_measurements(final, 100, 20) == (final, False)
    looped = undeferrable_circuit()
    assert defer_measurements(looped, 1000, 20) == (looped, True)
    assert defer_measurements(_mid_measured(), 1, 20)[1]  # 2 outcomes of the ancilla > 1 shot
    assert defer_measurements(_mid_measured(), 1000, 3)[1]  # no room for the ancilla
