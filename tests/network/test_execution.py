from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from qiskit import QuantumCircuit

from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import ExecutionError, NodeCapacityError, ProviderResultError
from network.execution import NodeExecutor, RetryPolicy, ShardResult
from network.node_providers import ClusterBuilder, JobStatus, NodeJob, NodeProvider, QPUNodeSpec
from network.planning import Shard, Strategy
from tests.conftest import random_block_circuit
from tests.stats import assert_matches, exact_distribution


class ScriptedProvider(NodeProvider):
    """Returns whatever counts the test scripts, after an asynchronous-looking job."""

    key = "scripted"

    def __init__(self, counts: Any = None, error: Exception | None = None, polls: int = 0) -> None:
        super().__init__()
        self.counts = counts
        self.error = error
        self.polls = polls
        self.calls = 0
        self.threads: set[str] = set()

    def build_nodes(self, n_nodes: int = 1, max_qubits: int = 8, **_: Any) -> list[QPUNodeSpec]:
        return self.make_nodes(n_nodes, max_qubits=max_qubits, device="QPU", method="scripted")

    def execute(self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None):
        raise AssertionError("submit/poll are used")

    def submit(self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, *, seed=None, job_key=None):
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        if self.error is not None:
            raise self.error
        counts = self.counts if self.counts is not None else {"0" * circuit.num_clbits: shots}
        return NodeJob(f"job-{self.calls}", node_spec.node_id, JobStatus.QUEUED, counts=counts)

    def poll(self, job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        self.polls -= 1
        job.status = JobStatus.COMPLETED if self.polls <= 0 else JobStatus.RUNNING
        return job


def _qc(n: int = 2) -> QuantumCircuit:
    qc = QuantumCircuit(n)
    qc.measure_all()
    return qc


def test_remote_style_jobs_are_polled_until_done() -> None:
    provider = ScriptedProvider(polls=3)
    registry = ClusterBuilder().add(provider, n_nodes=1).build()
    result = DistributedQVM(registry, shots=10).run(VirtualCircuitSpec(circuit_object=_qc(), seed=1))
    assert result.counts == {"00": 10}
    assert result.shard_results[0].job_id == "job-1"
    assert provider.polls <= 0


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        ({"000": 10}, "key '000' of 3 bits; the circuit has 2"),
        ({"0a": 10}, "non-binary key '0a'"),
        ({"00": 4, "11": 5}, "summing to 9, expected 10"),
        ({"00": 11, "11": -1}, "negative count -1"),
        ({"00": 10.0}, "non-integer count 10.0"),
        (["00"], "not a counts mapping"),
    ],
)
def test_bad_counts_are_rejected_naming_node_and_defect(counts: Any, match: str) -> None:
    registry = ClusterBuilder().add(ScriptedProvider(counts=counts), n_nodes=1).build()
    with pytest.raises(ProviderResultError, match=match) as info:
        DistributedQVM(registry, shots=10).run(VirtualCircuitSpec(circuit_object=_qc(), seed=1))
    assert "'scripted-0'" in str(info.value)


def test_provider_exceptions_become_execution_errors() -> None:
    registry = ClusterBuilder().add(ScriptedProvider(error=ConnectionError("backend went away")), n_nodes=1).build()
    with pytest.raises(ExecutionError, match=r"node 'scripted-0'.*ConnectionError: backend went away"):
        DistributedQVM(registry, shots=10, retry=RetryPolicy(attempts=1, grace=0.0)).run(
            VirtualCircuitSpec(circuit_object=_qc(), seed=1)
        )


def test_a_circuit_wider_than_its_node_never_runs() -> None:
    provider = ScriptedProvider()
    registry = ClusterBuilder().add(provider, n_nodes=1, max_qubits=2).build()
    executor = NodeExecutor(registry)
    shard = Shard(0, "scripted-0", (0, 1, 2), (0, 1, 2), 10, 1, True, True, 0.0, 0.0)
    with pytest.raises(NodeCapacityError, match="3 qubits but node 'scripted-0' accepts at most 2"):
        executor.run(shard, _qc(3))
    assert provider.calls == 0


def test_aer_node_limits_are_enforced_in_batches_too() -> None:
    registry = ClusterBuilder().add("local_cpu", n_nodes=1, max_qubits=2).build()
    shard = Shard(0, "local_cpu-0", (0, 1, 2), (0, 1, 2), 10, 1, True, True, 0.0, 0.0)
    with pytest.raises(NodeCapacityError):
        NodeExecutor(registry).run_batch([shard], [_qc(3)], registry.node("local_cpu-0"))


def test_remote_nodes_run_concurrently_and_report_progress() -> None:
    provider = ScriptedProvider()
    registry = ClusterBuilder().add(provider, n_nodes=4, max_qubits=4).build()
    qc = random_block_circuit(4, 3, 2)
    qc.measure_all()
    seen: list[ShardResult] = []
    result = DistributedQVM(registry, shots=50).run(
        VirtualCircuitSpec(circuit_object=qc, seed=1, strategy="partition"), on_shard_done=seen.append
    )
    assert result.strategy is Strategy.PARTITION
    assert sorted(r.shard_id for r in seen) == [0, 1, 2, 3]
    assert provider.calls == 4
    assert len(provider.threads) > 1


def test_failures_are_collected_per_shard() -> None:
    registry = ClusterBuilder().add(ScriptedProvider(error=RuntimeError("boom")), n_nodes=2, max_qubits=4).build()
    qc = random_block_circuit(2, 3, 2)
    qc.measure_all()
    with pytest.raises(ExecutionError, match="boom"):
        DistributedQVM(registry, shots=5).run(VirtualCircuitSpec(circuit_object=qc, strategy="partition"))


def test_many_local_shards_are_batched_and_exact() -> None:
    registry = ClusterBuilder().add("local_cpu", n_nodes=6, max_qubits=8).build()
    qc = random_block_circuit(6, 2, 2, seed=8)
    qc.measure_all()
    result = DistributedQVM(registry, shots=20_000).run(
        VirtualCircuitSpec(circuit_object=qc, seed=5, strategy="partition")
    )
    assert len(result.shard_results) == 6
    assert {r.extra.get("batch_size") for r in result.shard_results} == {6}
    assert sorted(r.node_id for r in result.shard_results) == [f"local_cpu-{i}" for i in range(6)]
    assert_matches(result.counts, exact_distribution(qc))


def test_dry_run_executes_nothing() -> None:
    provider = ScriptedProvider()
    registry = ClusterBuilder().add(provider, n_nodes=1).build()
    result = DistributedQVM(registry, mode="dry_run", shots=10).run(VirtualCircuitSpec(circuit_object=_qc()))
    assert result.counts == {} and not result.executed and provider.calls == 0
    assert result.plan.shards[0].node_id == "scripted-0"


def test_one_qvm_runs_specs_from_several_threads_as_each_would_alone(tmp_path: Path) -> None:
    """Per-run state (run key, failed nodes) lives in the run: concurrent runs do not mix. With a
    shared run key, a run would store its shards under another's key or reuse another's shards
    (same shard ids and shots) as its own."""
    import threading

    from qiskit import QuantumCircuit

    from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
    from network.node_providers import ClusterBuilder

    def circuit(n: int, flips: list[int]) -> QuantumCircuit:
        qc = QuantumCircuit(n)
        qc.h(0)
        for q in range(n - 1):
            qc.cx(q, q + 1)
        if flips:
            qc.x(flips)
        qc.measure_all()
        return qc

    wide = circuit(13, [2])  # wider than every node: cut, its subexperiments shards like the others'
    specs = [
        VirtualCircuitSpec(circuit_object=circuit(6, [1]), shots=2000, seed=11),
        VirtualCircuitSpec(circuit_object=circuit(8, [0, 7]), shots=2000, seed=12),
        VirtualCircuitSpec(circuit_object=circuit(5, []), shots=2000, seed=13),
        VirtualCircuitSpec(circuit_object=wide, shots=2000, seed=14),
        VirtualCircuitSpec(
            circuit_object=wide.remove_final_measurements(inplace=False), observables="Z" * 13, shots=2000, seed=15
        ),
    ]
    registry = ClusterBuilder().add("local_cpu", n_nodes=3, max_qubits=10).build()
    alone = [DistributedQVM(registry).run(spec) for spec in specs]
    shared = DistributedQVM(registry, store=(tmp_path / "store").as_uri())
    together: list[object] = [None] * len(specs)

    def run(i: int) -> None:
        together[i] = shared.run(specs[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(specs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [r.strategy.value for r in alone] == ["whole", "whole", "whole", "cut", "cut"]
    for a, b in zip(alone, together, strict=True):
        assert b is not None and b.counts == a.counts and b.run_key == a.run_key  # type: ignore[attr-defined]
        assert b.expectation_values == a.expectation_values  # type: ignore[attr-defined]
        for shard in a.shard_results:  # each run's shards stored under its own key
            stored = shared.store.load_shard_result(a.run_key, shard.shard_id)  # type: ignore[union-attr]
            assert stored is not None and stored.counts == shard.counts
    assert shared.executor.run_key is None  # nothing of a run is left on the shared executor
