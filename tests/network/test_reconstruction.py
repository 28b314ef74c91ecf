"""Round trips: plan, run on Aer, reconstruct, compare with the exact answer."""

from __future__ import annotations

import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Clbit
from qiskit_aer import AerSimulator

from network.circuits import ClbitLayout
from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.execution import ShardResult
from network.node_providers import ClusterBuilder, QPURegistry
from network.planning import Shard, ShardPlan, Strategy
from network.reconstruction import ClassicalReconstructor
from tests.conftest import random_block_circuit
from tests.stats import assert_matches, exact_distribution


def _permuted_multi_register_circuit() -> QuantumCircuit:
    """Three blocks (3, 3, 2 qubits) measured into bits scattered over three registers."""
    q = QuantumRegister(8, "q")
    a, b, c = ClassicalRegister(3, "a"), ClassicalRegister(3, "b"), ClassicalRegister(2, "c")
    qc = QuantumCircuit(q, a, b, c)
    for i in range(8):
        qc.ry(0.3 + 0.37 * i, i)
        qc.rz(0.2 * i, i)
    qc.cx(0, 1)
    qc.cx(1, 2)
    qc.cx(4, 3)
    qc.cz(3, 5)
    qc.cx(6, 7)
    qc.ry(0.7, 7)
    # block {0,1,2} -> c[1], a[2], b[0]; block {3,4,5} -> a[0], c[0], b[2]; block {6,7} -> b[1], a[1]
    for qubit, bit in [(0, c[1]), (1, a[2]), (2, b[0]), (3, a[0]), (4, c[0]), (5, b[2]), (6, b[1]), (7, a[1])]:
        qc.measure(qubit, bit)
    return qc


def test_partition_with_permuted_clbits_and_several_registers(cpu_cluster: QPURegistry) -> None:
    qc = _permuted_multi_register_circuit()
    qvm = DistributedQVM(cpu_cluster, shots=20_000)
    result = qvm.run(VirtualCircuitSpec(circuit_object=qc, seed=9, strategy="partition"))
    assert result.strategy is Strategy.PARTITION and len(result.plan.shards) == 3
    assert_matches(result.counts, exact_distribution(qc), what="partition")
    # key format identical to Aer's on the same circuit
    direct = AerSimulator().run(qc, shots=10, seed_simulator=1).result().get_counts()
    assert {len(k.split(" ")) for k in result.counts} == {3}
    assert [len(p) for p in next(iter(result.counts)).split(" ")] == [len(p) for p in next(iter(direct)).split(" ")]


def test_planner_picks_partition_on_its_own_and_stays_exact(cpu_cluster: QPURegistry) -> None:
    qc = random_block_circuit(2, 7, 3, seed=2)
    qc.measure_all()
    result = DistributedQVM(cpu_cluster, shots=30_000).run(VirtualCircuitSpec(circuit_object=qc, seed=3))
    assert result.strategy is Strategy.PARTITION
    assert_matches(result.counts, exact_distribution(qc))


def test_unmeasured_qubits_and_unwritten_bits(cpu_cluster: QPURegistry) -> None:
    q = QuantumRegister(5, "q")
    c = ClassicalRegister(4, "c")
    qc = QuantumCircuit(q, c)
    qc.h(0)
    qc.ry(1.1, 1)
    qc.cx(2, 3)  # entangled pair never measured
    qc.h(4)
    qc.measure(0, c[3])
    qc.measure(1, c[0])  # c[1], c[2] are never written
    result = DistributedQVM(cpu_cluster, shots=20_000).run(VirtualCircuitSpec(circuit_object=qc, seed=2))
    assert all(set(s.qubits) <= {0, 1} or s.whole_circuit for s in result.plan.shards)
    assert all(k[1:3] == "00" for k in result.counts)
    assert_matches(result.counts, exact_distribution(qc))
    assert any("never measured" in n for n in result.notes)


def test_loose_clbits_give_flat_keys(cpu_cluster: QPURegistry) -> None:
    qc = QuantumCircuit(QuantumRegister(3, "q"), ClassicalRegister(2, "r"), [Clbit()])
    qc.x(0)
    qc.h(1)
    qc.x(2)
    qc.measure(0, 2)  # loose bit
    qc.measure(1, 0)
    qc.measure(2, 1)
    result = DistributedQVM(cpu_cluster, shots=4000).run(VirtualCircuitSpec(circuit_object=qc, seed=1))
    assert set(result.counts) <= {"110", "111"}
    assert_matches(result.counts, {"110": 0.5, "111": 0.5})


def test_shot_split_merges_counts(cpu_cluster: QPURegistry) -> None:
    qc = QuantumCircuit(2, 2)
    qc.ry(0.9, 0)
    qc.measure(0, 0)
    qc.reset(0)
    qc.ry(2.1, 0)
    qc.measure(0, 1)
    qc.h(1)  # independent extra qubit, unmeasured
    result = DistributedQVM(cpu_cluster, shots=20_001).run(
        VirtualCircuitSpec(circuit_object=qc, seed=4, strategy="shot_split")
    )
    assert result.strategy is Strategy.SHOT_SPLIT and len(result.plan.shards) == 4
    assert sum(result.counts.values()) == 20_001
    import math

    p0, p1 = math.sin(0.45) ** 2, math.sin(1.05) ** 2
    exact = {f"{b1}{b0}": (p1 if b1 else 1 - p1) * (p0 if b0 else 1 - p0) for b0 in (0, 1) for b1 in (0, 1)}
    assert_matches(result.counts, exact, what="mid-circuit measurement + reset")


def _plan(shards: list[Shard], layout: ClbitLayout, strategy: Strategy, shots: int) -> ShardPlan:
    return ShardPlan(strategy, tuple(shards), shots, 0, "h", 4, layout, False, 0.0, 0.0)


def _shard(i: int, qubits: tuple[int, ...], clbits: tuple[int, ...], shots: int) -> Shard:
    return Shard(i, f"n-{i}", qubits, clbits, shots, i, False, True, 0.0, 0.0)


def test_join_is_pure_and_places_every_bit() -> None:
    # shard 0 writes bits (3, 0) in that order: its key "01" means bit 3 = 1, bit 0 = 0
    layout = ClbitLayout(4, (("a", (0, 1)), ("b", (2, 3))))
    plan = _plan([_shard(0, (0, 1), (3, 0), 6), _shard(1, (2,), (1,), 6)], layout, Strategy.PARTITION, 6)
    results = [
        ShardResult(0, "n-0", {"01": 6}, 6, 0, 0.0, "j0", "CPU"),
        ShardResult(1, "n-1", {"1": 2, "0": 4}, 6, 1, 0.0, "j1", "CPU"),
    ]
    counts = ClassicalReconstructor().reconstruct_counts(plan, results)
    assert counts == {"10 10": 2, "10 00": 4}


def test_reconstruction_refuses_incomplete_results() -> None:
    layout = ClbitLayout(1, (("c", (0,)),))
    plan = _plan([_shard(0, (0,), (0,), 5), _shard(1, (0,), (0,), 5)], layout, Strategy.SHOT_SPLIT, 10)
    with pytest.raises(Exception, match=r"shard\(s\) \[1\] are missing"):
        ClassicalReconstructor().reconstruct_counts(plan, [ShardResult(0, "n-0", {"1": 5}, 5, 0, 0.0, "j", "CPU")])


def test_partition_is_reproducible_under_a_seed() -> None:
    registry = ClusterBuilder().add("local_cpu", n_nodes=3, max_qubits=10).build()
    qc = random_block_circuit(3, 5, 4, seed=1)
    qc.measure_all()
    qvm = DistributedQVM(registry, shots=3000)
    first = qvm.run(VirtualCircuitSpec(circuit_object=qc, seed=123))
    second = qvm.run(VirtualCircuitSpec(circuit_object=qc, seed=123))
    other = qvm.run(VirtualCircuitSpec(circuit_object=qc, seed=124))
    assert first.strategy is Strategy.PARTITION
    assert first.counts == second.counts
    assert first.counts != other.counts
    unseeded = qvm.run(VirtualCircuitSpec(circuit_object=qc))
    replay = qvm.run(VirtualCircuitSpec(circuit_object=qc, seed=unseeded.seed))
    assert replay.counts == unseeded.counts
