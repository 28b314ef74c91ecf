"""Several circuits per vendor job (IBM's multi-PUB jobs, Braket's program sets): a node's shards go
in as few jobs as the service takes, each still ledgered and re-attached after a crash, never paid twice."""

from __future__ import annotations

import itertools
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from network.distributed_qvm import DistributedQVM, SweepSpec, VirtualCircuitSpec
from network.errors import ExecutionError
from network.node_providers import ClusterBuilder, JobLimits, JobStatus, NodeJob, NodeProvider, QPUNodeSpec
from network.storage import ResultStore
from tests.conftest import SWEEP_QASM
from tests.network.test_cut_pipeline import narrow_chain
from tests.network.test_reattach import Crash


class BatchQPU(NodeProvider):
    """A remote service whose jobs hold up to ``capacity`` circuits; it counts jobs (what is billed
    per task), answers all-zero counts, and can die at the first poll or fail a job on purpose."""

    key = "batch_qpu"
    remote = True

    def __init__(self, capacity: int = 4, *, limits: JobLimits | None = None) -> None:
        super().__init__()
        self.limits = limits or JobLimits(circuits=capacity)
        self.job_shots: list[list[int]] = []
        self.jobs: dict[str, list[dict[str, int]]] = {}
        self.by_key: dict[str, str] = {}
        self.submissions = 0
        self.circuits = 0
        self.attaches = 0
        self.crash = False
        self.fail_next = 0
        self.failed: set[str] = set()
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def build_nodes(self, n_nodes: int = 1, max_qubits: int = 8, **kwargs: Any) -> list[QPUNodeSpec]:
        return self.make_nodes(n_nodes, max_qubits=max_qubits, device="QPU", method="batch", **kwargs)

    def execute(self, circuit: Any, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None) -> dict:
        raise AssertionError("remote: jobs only")

    def job_limits(self, node_spec: QPUNodeSpec) -> JobLimits:
        return self.limits

    def submit(self, circuit, shots, node_spec, *, seed=None, job_key=None):  # type: ignore[no-untyped-def]
        return self.submit_many([circuit], [shots], node_spec, seeds=[seed], job_key=job_key or "")

    def submit_many(self, circuits, shots, node_spec, *, seeds, job_key):  # type: ignore[no-untyped-def]
        with self._lock:
            if job_key in self.by_key:  # idempotent by key, as the vendors' client tokens are
                return NodeJob(self.by_key[job_key], node_spec.node_id, JobStatus.QUEUED)
            self.submissions += 1
            self.circuits += len(circuits)
            self.job_shots.append(list(shots))
            job_id = f"job-{next(self._ids)}"
            self.by_key[job_key] = job_id
            self.jobs[job_id] = [{"0" * c.num_clbits: n} for c, n in zip(circuits, shots, strict=True)]
            if self.fail_next:
                self.fail_next -= 1
                self.failed.add(job_id)
        return NodeJob(job_id, node_spec.node_id, JobStatus.QUEUED)

    def poll(self, job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        if self.crash:
            raise Crash()
        if job.job_id in self.failed:
            return NodeJob(job.job_id, job.node_id, JobStatus.FAILED, error="calibration lost")
        counts = self.jobs[job.job_id]
        if len(counts) == 1:  # a one-circuit job (submit) answers its counts as such too
            return NodeJob(job.job_id, job.node_id, JobStatus.COMPLETED, counts=counts[0], batch_counts=counts)
        return NodeJob(job.job_id, job.node_id, JobStatus.COMPLETED, batch_counts=counts)

    def attach(self, job_id: str, node_spec: QPUNodeSpec) -> NodeJob:
        if job_id not in self.jobs:
            raise LookupError(job_id)
        self.attaches += 1
        return NodeJob(job_id, node_spec.node_id, JobStatus.RUNNING)


def test_cut_subexperiments_share_vendor_jobs(tmp_path: Path) -> None:
    provider = BatchQPU(capacity=4)
    registry = ClusterBuilder().add(provider, n_nodes=2, max_qubits=5).build()
    store = ResultStore(tmp_path.as_uri())
    result = DistributedQVM(registry, store=store).run(VirtualCircuitSpec(circuit_object=narrow_chain(), seed=1))
    per_node: dict[str, int] = {}
    for shard in result.plan.shards:
        per_node[shard.node_id] = per_node.get(shard.node_id, 0) + 1
    tasks = sum(math.ceil(n / 4) for n in per_node.values())
    assert provider.circuits == len(result.plan.shards) == 10 and provider.submissions == tasks < 10
    ledger = store.read_ledger(result.run_key)
    assert len(ledger) == 10 and len({e.job_id for e in ledger}) == tasks
    assert all(e.batch_index is not None and e.status.value == "COMPLETED" for e in ledger)
    assert all(r.extra["job_circuits"] > 1 for r in result.shard_results)


def test_a_crash_and_a_rerun_reattach_to_the_shared_jobs(tmp_path: Path) -> None:
    provider = BatchQPU(capacity=3)
    registry = ClusterBuilder().add(provider, n_nodes=1, max_qubits=5).build()
    store = ResultStore(tmp_path.as_uri())
    spec = VirtualCircuitSpec(circuit_object=narrow_chain(), seed=2)
    provider.crash = True
    with pytest.raises(Crash):
        DistributedQVM(registry, store=store).run(spec)
    assert provider.submissions == 1  # the first job of three circuits, then the process died
    provider.crash = False
    result = DistributedQVM(registry, store=store).run(spec)
    assert provider.submissions == math.ceil(10 / 3) and provider.circuits == 10 and provider.attaches == 1
    assert sum(bool(r.extra.get("reattached")) for r in result.shard_results) == 3


def test_a_failed_shared_job_is_submitted_again_under_its_own_key(tmp_path: Path) -> None:
    provider = BatchQPU(capacity=10)
    registry = ClusterBuilder().add(provider, n_nodes=1, max_qubits=5).build()
    store = ResultStore(tmp_path.as_uri())
    spec = VirtualCircuitSpec(circuit_object=narrow_chain(), seed=3)
    provider.fail_next = 1
    with pytest.raises(ExecutionError, match="calibration lost"):
        DistributedQVM(registry, store=store).run(spec)
    result = DistributedQVM(registry, store=store).run(spec)
    assert provider.submissions == 2 and result.reconstructed
    assert all(e.job_key.endswith("~2") for e in store.read_ledger(result.run_key))


def test_sweep_bindings_on_a_batching_node_share_jobs(tmp_path: Path) -> None:
    provider = BatchQPU(capacity=4)
    registry = ClusterBuilder().add(provider, n_nodes=1, max_qubits=4).build()
    sweep = SweepSpec(qasm=SWEEP_QASM, grid={"theta": list(np.linspace(0, 3, 10))}, shots=50, seed=4)
    result = DistributedQVM(registry, store=(tmp_path / "s").as_uri()).run_sweep(sweep)
    assert len(result.frame) == 10 and provider.circuits == 10 and provider.submissions == 3  # 4 + 4 + 2
    assert set(result.frame["counts"]) == {'{"00": 50}'}


def test_one_circuit_jobs_stay_as_they_were(tmp_path: Path) -> None:
    provider = BatchQPU(capacity=1)
    registry = ClusterBuilder().add(provider, n_nodes=1, max_qubits=5).build()
    DistributedQVM(registry).run(VirtualCircuitSpec(circuit_object=narrow_chain(), seed=5))
    assert provider.submissions == provider.circuits == 10


def test_job_limits_split_by_circuits_total_shots_and_equal_shots() -> None:
    assert JobLimits(circuits=3).chunks([5] * 7) == [[0, 1, 2], [3, 4, 5], [6]]
    # IBM-like: executions (shots of all circuits together) bounded; a circuit over the bound alone
    assert JobLimits(circuits=10, total_shots=100).chunks([40, 40, 40, 200, 10]) == [[0, 1], [2], [3], [4]]
    # Braket-like: a program set divides its shots evenly, so only equal shots share a task
    assert JobLimits(circuits=2, same_shots=True).chunks([10, 20, 10, 20, 10]) == [[0, 2], [4], [1, 3]]
    assert JobLimits().chunks([1, 1]) == [[0], [1]]


def test_subexperiments_of_unequal_shots_share_jobs_only_with_equal_ones(tmp_path: Path) -> None:
    provider = BatchQPU(limits=JobLimits(circuits=100, total_shots=100_000, same_shots=True))
    registry = ClusterBuilder().add(provider, n_nodes=1, max_qubits=5).build()
    result = DistributedQVM(registry, store=tmp_path.as_uri()).run(
        VirtualCircuitSpec(circuit_object=narrow_chain(), seed=6, shots=4000)
    )
    shots = sorted(s.shots for s in result.plan.shards)
    assert len(set(shots)) > 1  # proportional allocation: the subexperiments' shots differ
    assert all(len(set(job)) == 1 for job in provider.job_shots)
    assert provider.submissions == len(set(shots)) and provider.circuits == len(shots)
    assert result.reconstructed
