"""Retrying failed QPU jobs without paying twice: ledger, re-attach, transient retries, failover."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any

import pytest
from qiskit import QuantumCircuit

from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import ExecutionError, JobTimeoutError, ProviderResultError, TransientExecutionError
from network.execution import NodeFailedError, RetryPolicy
from network.node_providers import ClusterBuilder, JobStatus, NodeJob, NodeProvider, QPUNodeSpec
from network.storage import ResultStore
from tests.conftest import random_block_circuit

FAST = RetryPolicy(attempts=3, base_delay=0.0, jitter=0.0, grace=0.0)


class Crash(BaseException):
    """Stands for the process dying (not an Exception: nothing may catch and handle it)."""


class FlakyQPU(NodeProvider):
    """A remote provider that counts submissions, keeps jobs server-side, and fails on purpose.

    ``crash_on_poll``: the client dies after submitting (before the result arrives).
    ``transient``: the first N submissions fail with a transient error.
    ``dead_nodes``: nodes whose every submission fails transiently (for failover).
    ``permanent``: every submission is rejected (an invalid circuit, bad credentials).
    """

    key = "flaky_qpu"
    remote = True

    def __init__(self) -> None:
        super().__init__()
        self.submissions = 0
        self.attaches = 0
        self.jobs: dict[str, tuple[dict[str, int], str]] = {}
        self.crash_on_poll = False
        self.transient = 0
        self.dead_nodes: set[str] = set()
        self.permanent = False
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def build_nodes(self, n_nodes: int = 1, max_qubits: int = 8, **kwargs: Any) -> list[QPUNodeSpec]:
        return self.make_nodes(n_nodes, max_qubits=max_qubits, device="QPU", method="flaky", **kwargs)

    def execute(self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None):
        raise AssertionError("remote: submit/poll only")

    def submit(self, circuit, shots, node_spec, *, seed=None, job_key=None):  # type: ignore[no-untyped-def]
        with self._lock:
            if node_spec.node_id in self.dead_nodes:
                raise ConnectionError(f"{node_spec.node_id} unreachable")
            if self.permanent:
                raise ValueError("circuit rejected: gate 'foo' unsupported")
            if self.transient > 0:
                self.transient -= 1
                raise TimeoutError("gateway timeout")
            self.submissions += 1
            job_id = f"job-{next(self._ids)}"
            self.jobs[job_id] = ({"0" * circuit.num_clbits: shots}, node_spec.node_id)
        return NodeJob(job_id, node_spec.node_id, JobStatus.QUEUED)

    def poll(self, job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        if self.crash_on_poll:
            raise Crash()
        counts, _ = self.jobs[job.job_id]
        return NodeJob(job.job_id, job.node_id, JobStatus.COMPLETED, counts=counts)

    def attach(self, job_id: str, node_spec: QPUNodeSpec) -> NodeJob:
        if job_id not in self.jobs:
            raise LookupError(job_id)
        self.attaches += 1
        return NodeJob(job_id, node_spec.node_id, JobStatus.RUNNING)


def _circuit() -> QuantumCircuit:
    qc = random_block_circuit(3, 2, 2, seed=4)
    qc.measure_all()
    return qc


def test_crash_then_rerun_submits_each_shard_once(tmp_path: Path) -> None:
    provider = FlakyQPU()
    registry = ClusterBuilder().add(provider, n_nodes=3).build()
    store = ResultStore(tmp_path.as_uri())
    spec = VirtualCircuitSpec(circuit_object=_circuit(), seed=7, strategy="partition")
    provider.crash_on_poll = True
    with pytest.raises(Crash):
        DistributedQVM(registry, shots=100, store=store, max_workers=1).run(spec)
    assert 1 <= provider.submissions <= 3
    first_wave = provider.submissions
    provider.crash_on_poll = False
    result = DistributedQVM(registry, shots=100, store=store, max_workers=1).run(spec)
    assert provider.submissions == 3 == len(result.plan.shards)
    assert provider.attaches == first_wave  # crashed jobs were re-attached, not paid for again
    ledger = store.read_ledger(result.run_key)
    assert [e.status.value for e in ledger] == ["COMPLETED"] * 3
    assert {e.job_id for e in ledger} == set(provider.jobs)
    # a third run reuses the stored shard results: nothing is submitted or attached
    again = DistributedQVM(registry, shots=100, store=store).run(spec)
    assert provider.submissions == 3 and again.counts == result.counts
    assert any("reused" in n for n in again.notes)


def test_transient_errors_are_retried_with_backoff() -> None:
    provider = FlakyQPU()
    provider.transient = 2
    registry = ClusterBuilder().add(provider, n_nodes=1).build()
    spec = VirtualCircuitSpec(circuit_object=_circuit(), seed=1, strategy="whole")
    result = DistributedQVM(registry, shots=10, retry=FAST).run(spec)
    assert sum(result.counts.values()) == 10 and provider.submissions == 1


def test_permanent_errors_fail_at_once_with_the_providers_message() -> None:
    provider = FlakyQPU()
    provider.permanent = True
    registry = ClusterBuilder().add(provider, n_nodes=2).build()
    with pytest.raises(ExecutionError, match="circuit rejected: gate 'foo' unsupported") as info:
        DistributedQVM(registry, shots=10, retry=FAST).run(VirtualCircuitSpec(circuit_object=_circuit(), seed=1))
    assert not isinstance(info.value, TransientExecutionError)


def test_a_node_that_keeps_failing_is_replaced_and_the_move_recorded() -> None:
    provider = FlakyQPU()
    registry = ClusterBuilder().add(provider, n_nodes=3).build()
    provider.dead_nodes = {"flaky_qpu-0"}
    spec = VirtualCircuitSpec(circuit_object=_circuit(), seed=2, strategy="partition")
    result = DistributedQVM(registry, shots=10, retry=FAST).run(spec)
    moved = result.failovers
    assert moved and all(m["from"] == ["flaky_qpu-0"] and m["to"] != "flaky_qpu-0" for m in moved)
    assert any("failed over from flaky_qpu-0" in n for n in result.notes)
    assert provider.submissions == 3


def test_failover_needs_a_node_that_fits() -> None:
    provider = FlakyQPU()
    registry = ClusterBuilder().add(provider, n_nodes=1).build()
    provider.dead_nodes = {"flaky_qpu-0"}
    with pytest.raises(ExecutionError, match="No other node fits"):
        DistributedQVM(registry, shots=10, retry=FAST).run(VirtualCircuitSpec(circuit_object=_circuit(), seed=2))


# -- every wait has a deadline; a job that may still run is never paid for twice ---------------------


class StuckQPU(FlakyQPU):
    """Jobs that never leave RUNNING until cancelled; polls fail transiently while ``outage`` is set;
    ``cancel_works`` says whether the service confirms cancellations."""

    key = "stuck_qpu"

    def __init__(self) -> None:
        super().__init__()
        self.stuck = True
        self.outage_nodes: set[str] = set()
        self.cancel_works = True
        self.cancelled: list[str] = []

    def build_nodes(self, n_nodes: int = 1, max_qubits: int = 8, **kwargs: Any) -> list[QPUNodeSpec]:
        return self.make_nodes(n_nodes, max_qubits=max_qubits, device="QPU", method="stuck", **kwargs)

    def poll(self, job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        if node_spec.node_id in self.outage_nodes:
            raise ConnectionError(f"{node_spec.node_id}: connection reset")
        if job.job_id in self.cancelled:
            return NodeJob(job.job_id, job.node_id, JobStatus.CANCELLED)
        if self.stuck and self.jobs[job.job_id][1] != "free":
            return NodeJob(job.job_id, job.node_id, JobStatus.RUNNING)
        return super().poll(job, node_spec)

    def attach(self, job_id: str, node_spec: QPUNodeSpec) -> NodeJob:
        if node_spec.node_id in self.outage_nodes:
            raise ConnectionError(f"{node_spec.node_id}: connection reset")
        return super().attach(job_id, node_spec)

    def cancel(self, job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        if not self.cancel_works or node_spec.node_id in self.outage_nodes:
            raise ConnectionError("cancel endpoint unreachable")
        self.cancelled.append(job.job_id)
        return NodeJob(job.job_id, job.node_id, JobStatus.CANCELLED)


def _one_shard() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def test_a_job_that_never_finishes_is_cancelled_at_its_deadline(tmp_path: Path) -> None:
    provider = StuckQPU()
    registry = ClusterBuilder().add(provider, n_nodes=1, job_timeout=0.3).build()
    assert registry.node("stuck_qpu-0").job_timeout == 0.3
    store = ResultStore(tmp_path.as_uri())
    qvm = DistributedQVM(registry, shots=10, store=store, retry=FAST)
    with pytest.raises(
        JobTimeoutError, match=r"did not finish within its node's job_timeout of 0.3 s; it was cancelled"
    ):
        qvm.run(VirtualCircuitSpec(circuit_object=_one_shard(), seed=1))
    assert provider.cancelled == ["job-0"] and provider.submissions == 1
    run = store.list_runs() or [p.name for p in (tmp_path / "runs").iterdir()]
    ledger = store.read_ledger(run[0])
    assert [e.status.value for e in ledger] == ["CANCELLED"] and ledger[0].submitted_at is not None
    assert qvm.plan(VirtualCircuitSpec(circuit_object=_one_shard(), seed=1)).nodes[0].job_timeout == 0.3


def test_an_unconfirmed_cancellation_leaves_the_job_to_re_attach(tmp_path: Path) -> None:
    provider = StuckQPU()
    provider.cancel_works = False
    registry = ClusterBuilder().add(provider, n_nodes=1, job_timeout=0.3).build()
    store = ResultStore(tmp_path.as_uri())
    spec = VirtualCircuitSpec(circuit_object=_one_shard(), seed=2)
    with pytest.raises(JobTimeoutError, match="cancelling it failed .* it may still run. A re-run"):
        DistributedQVM(registry, shots=10, store=store, retry=FAST).run(spec)
    provider.jobs["job-0"] = (provider.jobs["job-0"][0], "free")  # the service finally ran it
    result = DistributedQVM(registry, shots=10, store=store, retry=FAST).run(spec)
    assert provider.submissions == 1 and result.counts == {"00": 10}
    assert any("re-attached" in n for n in result.notes)


def test_a_submitted_job_is_cancelled_before_its_shard_moves(tmp_path: Path) -> None:
    provider = StuckQPU()
    registry = ClusterBuilder().add(provider, n_nodes=2).build()
    provider.outage_nodes = {"stuck_qpu-0"}
    spec = VirtualCircuitSpec(circuit_object=_one_shard(), seed=3, strategy="whole")
    plan = DistributedQVM(registry).plan(spec)
    assert plan.shards[0].node_id == "stuck_qpu-0"
    provider.stuck = False
    # the poll fails; the cancel cannot reach the node either: the shard stays, nothing is paid twice
    with pytest.raises(NodeFailedError, match="could not be cancelled .* not moved to another node"):
        DistributedQVM(registry, shots=10, retry=FAST).run(spec)
    assert provider.submissions == 1
    # the node answers cancellations but not polls: cancelled there, then run on the other node
    provider.outage_nodes = set()
    real_poll = provider.poll

    def poll_fails_on_0(job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        if node_spec.node_id == "stuck_qpu-0":
            raise ConnectionError("poll endpoint down")
        return real_poll(job, node_spec)

    provider.poll = poll_fails_on_0  # type: ignore[method-assign]
    result = DistributedQVM(registry, shots=10, retry=FAST).run(spec)
    assert result.failovers == [{"shard_id": 0, "from": ["stuck_qpu-0"], "to": "stuck_qpu-1"}]
    assert len(provider.cancelled) == 1 and provider.submissions == 3  # the cancelled one is not billed further


def test_transient_failures_within_the_grace_period_are_waited_out() -> None:
    provider = FlakyQPU()
    registry = ClusterBuilder().add(provider, n_nodes=2).build()
    provider.transient = 4  # four failed submissions in a row: past 'attempts', within 'grace'
    policy = RetryPolicy(attempts=2, base_delay=0.01, jitter=0.0, grace=5.0)
    result = DistributedQVM(registry, shots=10, retry=policy).run(
        VirtualCircuitSpec(circuit_object=_one_shard(), seed=4, strategy="whole")
    )
    assert not result.failovers and result.shard_results[0].extra["retries"] == 4
    assert any("4 transient error(s) retried on 1 shard(s)" in n for n in result.notes)


@pytest.mark.parametrize("job_id", ["..", "a/../b", "x" * 300, "has space", "tok\nen", ""])
def test_unsafe_job_ids_are_refused_before_they_are_stored(tmp_path: Path, job_id: str) -> None:
    provider = FlakyQPU()
    real_submit = provider.submit

    def odd_ids(*args: Any, **kwargs: Any) -> NodeJob:
        job = real_submit(*args, **kwargs)
        return NodeJob(job_id, job.node_id, job.status)

    provider.submit = odd_ids  # type: ignore[method-assign]
    registry = ClusterBuilder().add(provider, n_nodes=1).build()
    store = ResultStore(tmp_path.as_uri())
    with pytest.raises(ProviderResultError, match="unusable job id"):
        DistributedQVM(registry, shots=10, store=store, retry=FAST).run(
            VirtualCircuitSpec(circuit_object=_one_shard(), seed=5)
        )
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("ledger/*.json"))
    assert job_id.encode() not in stored or not job_id


def test_job_timeout_is_checked_in_cluster_files() -> None:
    from network.errors import ClusterConfigError

    with pytest.raises(ClusterConfigError, match="job_timeout must be a positive number of seconds"):
        ClusterBuilder.from_dict({"nodes": [{"provider": "local_cpu", "job_timeout": -1}]}).build()
