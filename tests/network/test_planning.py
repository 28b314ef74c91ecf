from __future__ import annotations

import json

import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister

from network.distributed_qvm import VirtualCircuitSpec
from network.errors import PlanningError
from network.node_providers import ClusterBuilder, QPURegistry
from network.planning import ShardPlan, ShardPlanner, Strategy
from tests.conftest import random_block_circuit


def _components(qc: QuantumCircuit) -> list[tuple[int, ...]]:
    return [c.qubits for c in VirtualCircuitSpec(circuit_object=qc).analysis.active_components]


def test_barriers_delays_and_idle_qubits_join_nothing() -> None:
    qc = QuantumCircuit(6, 6)
    qc.h(0)
    qc.barrier()
    qc.delay(100, 1)
    qc.x(2)
    qc.barrier(0, 2, 3)
    qc.measure([0, 1, 2, 3], [0, 1, 2, 3])  # qubits 4 and 5 are idle and unmeasured
    assert _components(qc) == [(0,), (1,), (2,), (3,)]
    analysis = VirtualCircuitSpec(circuit_object=qc).analysis
    assert analysis.idle_qubits == 2


def test_two_and_multi_qubit_gates_join() -> None:
    qc = QuantumCircuit(7)
    qc.cx(0, 3)
    qc.ccx(1, 4, 5)
    qc.swap(5, 6)
    qc.measure_all()
    assert _components(qc) == [(0, 3), (1, 4, 5, 6), (2,)]


def test_classical_conditions_join_qubits() -> None:
    qr = QuantumRegister(4)
    c = ClassicalRegister(2, "c")
    d = ClassicalRegister(2, "d")
    qc = QuantumCircuit(qr, c, d)
    qc.h(0)
    qc.measure(0, c[0])
    with qc.if_test((c[0], 1)):
        qc.x(2)
    qc.measure(2, c[1])
    qc.h(1)
    qc.measure(1, d[0])
    qc.x(3)
    qc.measure(3, d[1])
    comps = VirtualCircuitSpec(circuit_object=qc).analysis.active_components
    assert [x.qubits for x in comps] == [(0, 2), (1,), (3,)]
    assert comps[0].dynamic and not comps[1].dynamic


def test_measuring_two_qubits_into_one_bit_joins_them() -> None:
    qc = QuantumCircuit(2, 1)
    qc.x(0)
    qc.measure(0, 0)
    qc.measure(1, 0)
    assert _components(qc) == [(0, 1)]


def test_contract_circuit_goes_whole_to_an_exact_node() -> None:
    registry = (
        ClusterBuilder().add("local_gpu_mps", n_nodes=4, max_qubits=1000).add("local_gpu_aer", n_nodes=8, max_qubits=28)
    ).build()
    qc = QuantumCircuit(10)
    qc.h(range(10))
    qc.measure_all()
    plan = ShardPlanner().plan(VirtualCircuitSpec(circuit_object=qc, shots=2048, seed=1), registry)
    assert plan.strategy is Strategy.WHOLE
    assert len(plan.shards) == 1 and plan.shards[0].whole_circuit
    assert plan.shards[0].node_id.startswith("local_gpu_aer") and not plan.approximate


def test_independent_blocks_are_partitioned_one_per_node() -> None:
    registry = ClusterBuilder().add("local_cpu", n_nodes=8, max_qubits=25).build()
    qc = random_block_circuit(8, 20, 3)
    qc.measure_all()
    plan = ShardPlanner().plan(VirtualCircuitSpec(circuit_object=qc, shots=100, seed=4), registry)
    assert plan.strategy is Strategy.PARTITION
    assert [s.qubits for s in plan.shards] == [tuple(range(20 * b, 20 * b + 20)) for b in range(8)]
    assert sorted(s.node_id for s in plan.shards) == [f"local_cpu-{i}" for i in range(8)]
    assert all(s.shots == 100 and s.exact for s in plan.shards)
    assert len({s.seed for s in plan.shards}) == 8


def test_partition_beats_whole_when_blocks_are_cheaper_apart() -> None:
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=28).build()
    qc = random_block_circuit(2, 13, 4)
    qc.measure_all()
    plan = ShardPlanner().plan(VirtualCircuitSpec(circuit_object=qc, seed=0), registry)
    assert plan.strategy is Strategy.PARTITION  # 2 x 2^13 amplitudes, not 2^26


def test_small_components_are_packed_together() -> None:
    registry = ClusterBuilder().add("local_cpu", n_nodes=4, max_qubits=25).build()
    qc = QuantumCircuit(100)
    qc.h(range(100))
    qc.measure_all()
    plan = ShardPlanner(merge_width=12).plan(VirtualCircuitSpec(circuit_object=qc, seed=0), registry)
    assert plan.strategy is Strategy.PARTITION
    assert all(s.width <= 12 for s in plan.shards)
    assert len(plan.shards) == 9  # ceil(100 / 12)
    assert sorted(q for s in plan.shards for q in s.qubits) == list(range(100))


def test_too_wide_raises_with_the_numbers() -> None:
    # 70 qubits: too wide for any node, and its distribution past the 63 qubits a cut can rebuild
    registry = ClusterBuilder().add("local_cpu", n_nodes=8, max_qubits=25).build()
    qc = QuantumCircuit(70)
    qc.h(0)
    for q in range(69):
        qc.cx(q, q + 1)
    qc.measure_all()
    with pytest.raises(PlanningError) as info:
        ShardPlanner().plan(VirtualCircuitSpec(circuit_object=qc), registry)
    message = str(info.value)
    assert "70 qubits (qubits 0..69)" in message
    assert "at most 63 qubits" in message
    assert "8 x local_cpu (25 qubits, exact)" in message
    assert "the widest usable node holds 25 qubits" in message


def test_approximate_node_takes_what_exact_nodes_cannot_unless_forbidden() -> None:
    # 70 qubits: no cut can rebuild its distribution (63 at most), the MPS node holds it
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=20).add("local_gpu_mps", n_nodes=1).build()
    qc = QuantumCircuit(70)
    for q in range(69):
        qc.cx(q, q + 1)
    qc.measure_all()
    plan = ShardPlanner().plan(VirtualCircuitSpec(circuit_object=qc, seed=0), registry)
    assert plan.approximate and plan.shards[0].node_id == "local_gpu_mps-0"
    assert any("Approximate" in n for n in plan.notes)
    with pytest.raises(PlanningError, match="allow_approximate=False"):
        ShardPlanner().plan(VirtualCircuitSpec(circuit_object=qc, allow_approximate=False), registry)


def test_dynamic_circuits_split_shots_over_equivalent_nodes_on_separate_hosts() -> None:
    registry = (
        ClusterBuilder()
        .add("local_cpu", n_nodes=1, max_qubits=20, host="host-a", name="a")
        .add("local_cpu", n_nodes=1, max_qubits=20, host="host-b", name="b")
        .build()
    )
    qc = random_block_circuit(1, 14, 6)
    qc.measure_all(add_bits=True)
    qc.reset(range(14))  # mid-circuit reset: the simulator must run shot by shot
    qc.h(range(14))
    qc.measure(range(14), range(14))
    spec = VirtualCircuitSpec(circuit_object=qc, shots=10_001, seed=0)
    plan = ShardPlanner().plan(spec, registry)
    assert plan.strategy is Strategy.SHOT_SPLIT
    assert sorted(s.shots for s in plan.shards) == [5000, 5001]
    assert {s.node_id for s in plan.shards} == {"a-0", "b-0"}
    # static circuit: sampling is cheap, one node is enough
    static = random_block_circuit(1, 14, 6)
    static.measure_all()
    assert ShardPlanner().plan(VirtualCircuitSpec(circuit_object=static, seed=0), registry).strategy is Strategy.WHOLE


def test_forced_strategy(cpu_cluster: QPURegistry) -> None:
    qc = QuantumCircuit(3)
    qc.h(range(3))
    qc.measure_all()
    plan = ShardPlanner().plan(VirtualCircuitSpec(circuit_object=qc, strategy="shot_split", shots=1000), cpu_cluster)
    assert plan.strategy is Strategy.SHOT_SPLIT and sum(s.shots for s in plan.shards) == 1000
    bell = QuantumCircuit(2)
    bell.cx(0, 1)
    bell.measure_all()
    with pytest.raises(PlanningError, match="Strategy forced to 'partition'.*single connected component"):
        ShardPlanner().plan(VirtualCircuitSpec(circuit_object=bell, strategy="partition"), cpu_cluster)


def test_plan_is_a_plain_deterministic_value() -> None:
    registry = ClusterBuilder().add("local_cpu", n_nodes=3, max_qubits=10).build()
    qc = random_block_circuit(3, 5, 4, seed=3)
    qc.measure_all()
    spec = VirtualCircuitSpec(circuit_object=qc, shots=500, seed=11)
    a = ShardPlanner().plan(spec, registry)
    b = ShardPlanner().plan(VirtualCircuitSpec(circuit_object=qc.copy(), shots=500, seed=11), registry)
    assert a.to_dict() == b.to_dict()
    text = a.to_json()
    again = ShardPlan.from_dict(json.loads(text))
    assert again == a
    assert json.loads(text)["strategy"] == "partition"


def test_circuit_hash_is_canonical() -> None:
    a = random_block_circuit(2, 3, 3, seed=1)
    b = random_block_circuit(2, 3, 3, seed=1)
    c = random_block_circuit(2, 3, 3, seed=2)
    for qc in (a, b, c):
        qc.measure_all()
    ha, hb, hc = (VirtualCircuitSpec(circuit_object=x).analysis.circuit_hash for x in (a, b, c))
    assert ha == hb != hc


def test_budget_picks_an_affordable_plan_or_refuses_with_the_breakdown() -> None:
    registry = (
        ClusterBuilder()
        .add("local_cpu", n_nodes=1, max_qubits=10, cost_per_task=1.0, cost_per_shot=0.01, name="pricey")
        .add("local_cpu", n_nodes=1, max_qubits=10, cost_per_task=0.5, cost_per_shot=0.001, name="cheap")
        .build()
    )
    qc = QuantumCircuit(3)
    qc.h(range(3))
    qc.measure_all()
    plan = ShardPlanner().plan(VirtualCircuitSpec(circuit_object=qc, shots=100, max_cost=0.7), registry)
    assert plan.shards[0].node_id == "cheap-0" and plan.estimated_cost == pytest.approx(0.6)
    with pytest.raises(
        PlanningError, match=r"max_cost=0.1.*estimated at 0.6.*cheap-0: 0.5 per task \+ 100 shots x 0.001"
    ):
        ShardPlanner().plan(VirtualCircuitSpec(circuit_object=qc, shots=100, max_cost=0.1), registry)


def test_cheapest_node_wins_over_a_faster_priced_one() -> None:
    """A priced GPU node is faster by the cost model; the free CPU node is cheaper and is chosen."""
    registry = (
        ClusterBuilder()
        .add("local_gpu_aer", n_nodes=1, max_qubits=20, cost_per_second=5.0, name="rented")
        .add("local_cpu", n_nodes=1, max_qubits=20)
        .build()
    )
    qc = random_block_circuit(1, 16, 20, seed=3)
    qc.measure_all()
    plan = ShardPlanner().plan(VirtualCircuitSpec(circuit_object=qc, shots=1000, strategy="whole"), registry)
    assert [s.node_id for s in plan.shards] == ["local_cpu-0"] and plan.estimated_cost == 0.0


def test_price_per_second_counts_in_the_estimate_and_the_budget() -> None:
    registry = ClusterBuilder().add("local_cpu", n_nodes=1, max_qubits=10, cost_per_second=100.0, name="slow").build()
    qc = QuantumCircuit(3)
    qc.h(range(3))
    qc.measure_all()
    plan = ShardPlanner().plan(VirtualCircuitSpec(circuit_object=qc, shots=100), registry)
    shard = plan.shards[0]
    assert shard.estimated_cost == pytest.approx(100.0 * shard.estimated_seconds) and shard.estimated_cost > 0
    with pytest.raises(PlanningError, match=r"slow-0: 0 per task \+ [0-9.e-]+ s x 100 ="):
        ShardPlanner().plan(VirtualCircuitSpec(circuit_object=qc, shots=100, max_cost=1e-9), registry)
