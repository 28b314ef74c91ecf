"""Every unit of quantum work is a shard: cut subexperiments and sweep batches go through the one
executor (ledger, re-attach, retries, failover, progress), and a circuit of independent blocks is
partitioned first and cut only where a block is wider than every node."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit

from network.circuits import derive_seed
from network.cutting import (
    BlockKind,
    CutLocation,
    apply_cuts,
    block_problem,
    cut_locations,
)
from network.cutting import decomposition as decomposition_module
from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import PlanningError
from network.execution import RetryPolicy
from network.node_providers import ClusterBuilder, NodeJob, QPUNodeSpec, QVMMode
from network.planning import Shard, ShardPlan, ShardPlanner, Strategy
from network.storage import ResultStore
from network.sweeps import SweepSpec
from tests.conftest import SWEEP_QASM
from tests.network.test_reattach import Crash, FlakyQPU
from tests.stats import assert_matches, cut_tvd_tolerance, exact_distribution, tvd

FAST = RetryPolicy(attempts=2, base_delay=0.0, jitter=0.0, grace=0.0)


def brick(qc: QuantumCircuit, qubits: list[int], rng: np.random.Generator, depth: int = 2) -> None:
    """Random ``ry`` layers and a CX brickwork on ``qubits`` (connected)."""
    for d in range(depth):
        for q in qubits:
            qc.ry(float(rng.uniform(0.2, 2.9)), q)
        for a, b in zip(qubits[d % 2 :: 2], qubits[d % 2 + 1 :: 2], strict=False):
            qc.cx(a, b)


def chain(qc: QuantumCircuit, qubits: list[int], rng: np.random.Generator) -> None:
    """``ry`` on every qubit, a CX chain, ``ry`` again: connected, one gate cut per split."""
    for q in qubits:
        qc.ry(float(rng.uniform(0.2, 2.9)), q)
    for a, b in itertools.pairwise(qubits):
        qc.cx(a, b)
    for q in qubits:
        qc.ry(float(rng.uniform(0.2, 2.9)), q)


def blocks_and_a_chain(block_width: int, n_blocks: int, chain_width: int, seed: int) -> QuantumCircuit:
    """``n_blocks`` independent bricks of ``block_width`` qubits, then one chain of ``chain_width``."""
    rng = np.random.default_rng(seed)
    n = block_width * n_blocks + chain_width
    qc = QuantumCircuit(n, n)
    for k in range(n_blocks):
        brick(qc, list(range(k * block_width, (k + 1) * block_width)), rng)
    chain(qc, list(range(n - chain_width, n)), rng)
    qc.measure(range(n), range(n))
    return qc


def part(circuit: QuantumCircuit, qubits: list[int]) -> QuantumCircuit:
    """The sub-circuit on ``qubits`` (a union of components), measured into its own bits in order."""
    from network.circuits import split_circuit

    return split_circuit(circuit, [(qubits, qubits)])[0]


def marginal(counts: dict[str, int], bits: list[int]) -> dict[str, int]:
    """Counts of ``bits`` (flat keys, bit 0 rightmost), keyed bit ``bits[0]`` rightmost."""
    out: Counter[str] = Counter()
    for key, value in counts.items():
        n = len(key)
        out["".join(key[n - 1 - b] for b in reversed(bits))] += value
    return dict(out)


# -- partition, then cut per component ------------------------------------------------------------------


def test_independent_blocks_partition_and_only_the_wide_one_is_cut() -> None:
    """3 x 6-qubit blocks and one 8-qubit chain (26 qubits) on 6-qubit nodes: the chain is cut and
    reconstructed on its own (26 qubits would exceed the distribution limit), the blocks run as
    partition shards, and all are joined shot by shot."""
    qc = blocks_and_a_chain(6, 3, 8, seed=1)
    registry = ClusterBuilder().add("local_cpu", n_nodes=4, max_qubits=6).build()
    shots = 20_000
    result = DistributedQVM(registry).run(VirtualCircuitSpec(circuit_object=qc, shots=shots, seed=3))
    plan = result.plan
    assert result.strategy is Strategy.CUT and result.reconstructed and sum(result.counts.values()) == shots
    assert len(plan.cuts) == 1 and plan.cuts[0].qubits == tuple(range(18, 26))
    parts = [s for s in plan.shards if s.block is None]
    subexperiments = plan.block_shards(0)
    assert sorted(q for s in parts for q in s.qubits) == list(range(18))
    assert len(subexperiments) == len(plan.cuts[0].circuit_shots) and all(s.n_qubits for s in subexperiments)
    assert any("joined shot by shot" in n for n in result.notes)
    # each partition block within multinomial noise of its exact distribution
    for k in range(3):
        qubits = list(range(6 * k, 6 * k + 6))
        assert_matches(marginal(result.counts, qubits), exact_distribution(part(qc, qubits)), what=f"block {k}")
    # the cut chain within the reconstruction's bound
    chain_bits = list(range(18, 26))
    exact_chain = exact_distribution(part(qc, chain_bits))
    block = plan.cuts[0]
    bound = cut_tvd_tolerance(
        exact_chain, total_shots=block.total_shots, overhead=block.sampling_overhead, sampled=shots, outcomes=2**8
    )
    assert tvd(marginal(result.counts, chain_bits), exact_chain) <= bound
    # the join keeps the parts independent: a pair of bits from two parts follows the product distribution
    pair = marginal(result.counts, [0, 1, 18, 19])
    left, right = exact_distribution(part(qc, list(range(6)))), exact_chain
    product: dict[str, float] = {}
    for a, pa in marginal_probabilities(left, [0, 1]).items():
        for b, pb in marginal_probabilities(right, [0, 1]).items():
            product[b + a] = product.get(b + a, 0.0) + pa * pb
    assert tvd(pair, product) <= 0.03


def marginal_probabilities(dist: dict[str, float], bits: list[int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, p in dist.items():
        n = len(key)
        k = "".join(key[n - 1 - b] for b in reversed(bits))
        out[k] = out.get(k, 0.0) + p
    return out


def test_a_60_qubit_circuit_of_blocks_with_one_wider_than_the_nodes_runs() -> None:
    qc = blocks_and_a_chain(8, 6, 12, seed=2)
    registry = ClusterBuilder().add("local_cpu", n_nodes=3, max_qubits=8).build()
    result = DistributedQVM(registry).run(VirtualCircuitSpec(circuit_object=qc, shots=4000, seed=5))
    assert qc.num_qubits == 60 and result.strategy is Strategy.CUT
    assert [b.qubits for b in result.plan.cuts] == [tuple(range(48, 60))]
    assert all(len(k) == 60 for k in result.counts) and sum(result.counts.values()) == 4000
    for k in (0, 5):
        qubits = list(range(8 * k, 8 * k + 8))
        assert_matches(marginal(result.counts, qubits), exact_distribution(part(qc, qubits)), what=f"block {k}")


def test_distribution_limits_apply_per_block() -> None:
    """Two 20-qubit chains on 12-qubit nodes: 40 qubits in all, above the 24-qubit limit, but each
    block is reconstructed on its own."""
    rng = np.random.default_rng(4)
    qc = QuantumCircuit(40, 40)
    chain(qc, list(range(20)), rng)
    chain(qc, list(range(20, 40)), rng)
    qc.measure(range(40), range(40))
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=12).build()
    plan = DistributedQVM(registry, mode="dry_run").plan(VirtualCircuitSpec(circuit_object=qc, shots=100, seed=1))
    assert [len(b.qubits) for b in plan.cuts] == [20, 20] and plan.strategy is Strategy.CUT


def test_forced_cut_with_nothing_to_cut_says_so() -> None:
    qc = blocks_and_a_chain(3, 2, 0, seed=3)
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=6).build()
    with pytest.raises(PlanningError, match="strategy 'cut' was forced, but every component fits an exact node"):
        DistributedQVM(registry).plan(VirtualCircuitSpec(circuit_object=qc, strategy="cut"))


# -- the plan: real shards, serializable, rebuilt anywhere ----------------------------------------------


def narrow_chain(n: int = 8, seed: int = 1) -> QuantumCircuit:
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(n, n)
    chain(qc, list(range(n)), rng)
    qc.measure(range(n), range(n))
    return qc


def test_a_cut_plan_lists_its_subexperiments_as_shards_with_estimates() -> None:
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=5).build()
    spec = VirtualCircuitSpec(circuit_object=narrow_chain(), shots=1000, seed=2)
    result = DistributedQVM(registry, mode="dry_run").run(spec)
    plan = result.plan
    block = plan.cuts[0]
    assert result.counts == {} and result.cut is not None and result.cut["cuts"] == [c.to_list() for c in block.cuts]
    assert [s.shots for s in plan.shards] == list(block.circuit_shots)
    assert sum(s.shots for s in plan.shards) == block.total_shots
    assert {s.node_id for s in plan.shards} == {"local_cpu-0", "local_cpu-1"}  # spread over the piece's nodes
    assert all(s.estimated_seconds > 0 and s.block == 0 and s.kind == "subexperiment" for s in plan.shards)
    assert plan.estimated_seconds > 0
    assert [s.seed for s in plan.shards] == [derive_seed(2, "shard", i) for i in range(len(plan.shards))]
    again = ShardPlan.from_dict(plan.to_dict())
    assert again == plan and again.run_key == plan.run_key


def test_subexperiments_are_rebuilt_identically_from_the_plan_alone() -> None:
    """What another process (a Prefect task, a work pool's worker) does: nothing but the circuit and
    the plan's JSON, no cache."""
    qc = narrow_chain(9, seed=7)
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=5).build()
    plan = DistributedQVM(registry).plan(VirtualCircuitSpec(circuit_object=qc, shots=500, seed=1))
    planned = block_problem(qc, plan.cuts[0], circuit_hash=plan.circuit_hash)
    decomposition_module._problems.clear()
    rebuilt = block_problem(qc, ShardPlan.from_dict(plan.to_dict()).cuts[0], circuit_hash=plan.circuit_hash)
    assert rebuilt is not planned
    assert [structure(c) for c in rebuilt.circuits] == [structure(c) for c in planned.circuits]
    assert rebuilt.split.shots == planned.split.shots == list(plan.cuts[0].circuit_shots)


def structure(circuit: QuantumCircuit) -> list[tuple[Any, ...]]:
    """Operations with their parameters and bit indices (register names aside)."""
    return [
        (
            inst.operation.name,
            tuple(np.round(np.asarray(p, dtype=complex), 12).tobytes() for p in inst.operation.params),
            tuple(circuit.find_bit(q).index for q in inst.qubits),
            tuple(circuit.find_bit(c).index for c in inst.clbits),
        )
        for inst in circuit.data
    ]


def test_cut_locations_round_trip_gate_and_wire_cuts() -> None:
    from qiskit.circuit import CircuitInstruction
    from qiskit_addon_cutting import cut_gates
    from qiskit_addon_cutting.instructions import CutWire

    qc = QuantumCircuit(6)
    chain(qc, list(range(6)), np.random.default_rng(3))  # ry on 0..5, then CX (0, 1) at 6, (1, 2) at 7...
    cut = cut_gates(qc, [7])[0]
    cut.data.insert(9, CircuitInstruction(CutWire(), [cut.qubits[4]], []))
    cut.data.insert(3, CircuitInstruction(CutWire(), [cut.qubits[1]], []))
    locations = cut_locations(cut)
    assert [c.kind for c in locations] == ["Wire Cut", "Gate Cut", "Wire Cut"]
    assert [c.qubit for c in locations] == [1, None, 4]
    rebuilt = apply_cuts(qc, locations)
    assert [(i.operation.name, tuple(rebuilt.find_bit(q).index for q in i.qubits)) for i in rebuilt.data] == [
        (i.operation.name, tuple(cut.find_bit(q).index for q in i.qubits)) for i in cut.data
    ]
    assert [CutLocation.from_list(c.to_list()) for c in locations] == list(locations)
    with pytest.raises(PlanningError, match="does not name a two-qubit gate"):
        apply_cuts(qc, [CutLocation("Gate Cut", 0)])


# -- one executor: progress, ledger, re-attach, retries, failover, budget ------------------------------


def test_progress_reports_every_subexperiment() -> None:
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=5).build()
    done: list[Any] = []
    result = DistributedQVM(registry).run(
        VirtualCircuitSpec(circuit_object=narrow_chain(), shots=500, seed=1), on_shard_done=done.append
    )
    assert sorted(r.shard_id for r in done) == [s.shard_id for s in result.plan.shards]


class CrashingQPU(FlakyQPU):
    """Dies (the whole process, as far as the run can tell) once ``crash_after`` jobs were submitted."""

    key = "crashing_qpu"

    def __init__(self) -> None:
        super().__init__()
        self.crash_after: int | None = None

    def build_nodes(self, n_nodes: int = 1, max_qubits: int = 8, **kwargs: Any) -> list[QPUNodeSpec]:
        return self.make_nodes(n_nodes, max_qubits=max_qubits, device="QPU", method="crashing", **kwargs)

    def poll(self, job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        if self.crash_after is not None and self.submissions >= self.crash_after:
            raise Crash()
        return super().poll(job, node_spec)


def test_crash_mid_cut_run_then_rerun_pays_once_per_subexperiment(tmp_path: Path) -> None:
    provider = CrashingQPU()
    registry = ClusterBuilder().add(provider, n_nodes=2, max_qubits=5).build()
    store = ResultStore(tmp_path.as_uri())
    spec = VirtualCircuitSpec(circuit_object=narrow_chain(), shots=300, seed=8)
    provider.crash_after = 4
    with pytest.raises(Crash):
        DistributedQVM(registry, store=store).run(spec)
    first_wave = provider.submissions
    assert 4 <= first_wave < 10
    provider.crash_after = None
    result = DistributedQVM(registry, store=store).run(spec)
    distinct = len(result.plan.cuts[0].circuit_shots)
    assert len(result.plan.shards) == distinct == provider.submissions  # nothing paid twice
    assert 1 <= provider.attaches <= first_wave  # the jobs in flight at the crash were re-attached
    assert any("Plan reused" in n for n in result.notes)
    ledger = store.read_ledger(result.run_key)
    assert len(ledger) == distinct and all(e.status.value == "COMPLETED" and e.attempts == 1 for e in ledger)
    # a plain re-run of the finished run submits nothing
    DistributedQVM(registry, store=store).run(spec)
    assert provider.submissions == distinct


def test_a_seeded_rerun_reuses_its_stored_plan(tmp_path: Path) -> None:
    """Re-running keeps the first run's plan (and so its run key, ledger and shards), even where the
    cut search would not reproduce it (a search stopped by its time budget)."""

    class Refusing(ShardPlanner):
        def plan(self, *args: Any, **kwargs: Any) -> ShardPlan:
            raise AssertionError("planned again")

    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=5).build()
    store = (tmp_path / "s").as_uri()
    spec = VirtualCircuitSpec(circuit_object=narrow_chain(), shots=300, seed=9)
    first = DistributedQVM(registry, store=store).run(spec)
    again = DistributedQVM(registry, store=store, planner=Refusing()).run(spec)
    assert again.run_key == first.run_key and again.counts == first.counts
    other = ClusterBuilder().add("local_cpu", n_nodes=3, max_qubits=5).build()  # another cluster: planned anew
    with pytest.raises(AssertionError, match="planned again"):
        DistributedQVM(other, store=store, planner=Refusing()).run(spec)


def test_transient_errors_on_subexperiments_are_retried_and_a_dead_node_failed_over() -> None:
    provider = FlakyQPU()
    registry = ClusterBuilder().add(provider, n_nodes=3, max_qubits=5).build()
    provider.transient = 1  # one error: retried on its node (two tries), never a failover
    provider.dead_nodes = {"flaky_qpu-0"}
    result = DistributedQVM(registry, retry=FAST).run(
        VirtualCircuitSpec(circuit_object=narrow_chain(), shots=200, seed=4)
    )
    assert result.failovers and all(m["from"] == ["flaky_qpu-0"] for m in result.failovers)
    assert provider.submissions == len(result.plan.shards)


def test_a_cut_run_over_budget_is_refused_before_anything_is_paid() -> None:
    provider = FlakyQPU()
    registry = ClusterBuilder().add(provider, n_nodes=2, max_qubits=5, cost_per_task=0.3, cost_per_shot=0.01).build()
    spec = VirtualCircuitSpec(circuit_object=narrow_chain(), shots=100, seed=1)
    plan = DistributedQVM(registry).plan(spec)
    assert plan.estimated_cost == pytest.approx(sum(0.3 + 0.01 * s.shots for s in plan.shards))
    with pytest.raises(PlanningError, match="Every plan exceeds the budget max_cost=1"):
        DistributedQVM(registry).run(VirtualCircuitSpec(circuit_object=narrow_chain(), shots=100, seed=1, max_cost=1))
    assert provider.submissions == 0


def test_expectation_values_run_their_subexperiments_through_the_ledger(tmp_path: Path) -> None:
    provider = FlakyQPU()
    registry = ClusterBuilder().add(provider, n_nodes=2, max_qubits=5).build()
    store = ResultStore(tmp_path.as_uri())
    qc = narrow_chain().remove_final_measurements(inplace=False)
    spec = VirtualCircuitSpec(circuit_object=qc, observables="Z" * 8, shots=200, seed=3)
    result = DistributedQVM(registry, store=store).run(spec)
    assert result.plan.cuts[0].kind is BlockKind.EXPECTATION and result.expectation_values is not None
    assert len(store.read_ledger(result.run_key)) == len(result.plan.shards) == provider.submissions


def test_reference_server_crash_mid_cut_run_then_rerun(tmp_path: Path, monkeypatch: Any) -> None:
    """The custom_rest reference server counts what a client would pay for: after a crash and a
    re-run, one job per distinct subexperiment."""
    from providers.custom_rest.server import AerBackend, create_app, serve_in_background

    app = create_app(AerBackend(max_qubits=6))
    with serve_in_background(app) as url:
        registry = ClusterBuilder().add("custom_rest", n_nodes=2, base_url=url, max_qubits=5).build()
        store = ResultStore(tmp_path.as_uri())
        spec = VirtualCircuitSpec(circuit_object=narrow_chain(), shots=500, seed=6)
        provider = registry.provider("custom_rest-0")
        real_wait = provider.wait

        def wait_or_die(*args: Any, **kwargs: Any) -> Any:
            if app.state.jobs.submissions >= 3:
                raise Crash()
            return real_wait(*args, **kwargs)

        monkeypatch.setattr(provider, "wait", wait_or_die)
        with pytest.raises(Crash):
            DistributedQVM(registry, mode=QVMMode.LIVE, store=store).run(spec)
        assert 3 <= app.state.jobs.submissions < 10
        monkeypatch.undo()
        result = DistributedQVM(registry, mode=QVMMode.LIVE, store=store).run(spec)
        assert app.state.jobs.submissions == len(result.plan.shards) == len(result.plan.cuts[0].circuit_shots)
        assert result.reconstructed and sum(result.counts.values()) == 500


# -- sweeps: batches are shards ---------------------------------------------------------------------------


def test_sweep_bindings_on_a_remote_node_are_ledgered_jobs_and_survive_a_crash(tmp_path: Path) -> None:
    provider = CrashingQPU()
    registry = ClusterBuilder().add(provider, n_nodes=1, max_qubits=4).build()
    store = (tmp_path / "s").as_uri()
    sweep = SweepSpec(qasm=SWEEP_QASM, grid={"theta": [0.1 * i for i in range(6)]}, shots=100, seed=2)
    provider.crash_after = 3
    with pytest.raises(Crash):
        DistributedQVM(registry, store=store, max_workers=1).run_sweep(sweep)
    provider.crash_after = None
    done: list[Shard] = []
    result = DistributedQVM(registry, store=store).run_sweep(sweep, on_shard_done=lambda r: done.append(r))
    assert provider.submissions == 6 == len(result.plan.shards) == len(done)  # one job per binding, never twice
    assert provider.attaches >= 1 and list(result.frame["binding"]) == list(range(6))
    ledger = ResultStore(store).read_ledger(result.plan.run_key)
    assert len(ledger) == 6 and {e.status.value for e in ledger} == {"COMPLETED"}


def test_local_sweep_batches_run_through_the_executor_with_progress() -> None:
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=4, host="a").add(
        "local_cpu", n_nodes=1, max_qubits=4, host="b", name="b"
    ).build()  # fmt: skip
    sweep = SweepSpec(qasm=SWEEP_QASM, grid={"theta": [0.0, math.pi]}, shots=200, seed=1)
    done: list[Any] = []
    result = DistributedQVM(registry).run_sweep(sweep, on_shard_done=done.append)
    assert len(done) == len(result.plan.shards) == 2 and all(r.binding_counts for r in done)
    assert list(result.frame["counts"]) == ['{"00": 200}', '{"11": 200}']
