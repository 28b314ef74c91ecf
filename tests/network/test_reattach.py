"""Retrying failed QPU jobs without paying twice: ledger, re-attach, transient retries, failover."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any

import pytest
from qiskit import QuantumCircuit

from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import ExecutionError, TransientExecutionError
from network.execution import RetryPolicy
from network.node_providers import ClusterBuilder, JobStatus, NodeJob, NodeProvider, QPUNodeSpec
from network.storage import ResultStore
from tests.conftest import random_block_circuit

FAST = RetryPolicy(attempts=3, base_delay=0.0, jitter=0.0)


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
