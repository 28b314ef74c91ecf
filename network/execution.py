"""Running shards on nodes: one shard on one node, and a whole plan concurrently.

Threads are enough: simulators release the GIL while they compute, and remote jobs spend their
time waiting. Nodes on the same host share its cores: the executor runs at most that many local
shards at once and gives each a matching thread budget, so concurrent simulators never
oversubscribe the machine.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

from network.circuits import bind_parameters, normalize_all, normalize_counts, split_circuit
from network.compilation import lower_circuit
from network.errors import (
    ExecutionError,
    JobTimeoutError,
    NodeCapacityError,
    ProviderResultError,
    QVMError,
    StorageError,
    TransientExecutionError,
)
from network.node_providers import (
    JobLimits,
    JobStatus,
    NodeJob,
    NodeProvider,
    QPUNodeSpec,
    QPURegistry,
    QVMMode,
)
from network.planning import Shard, ShardPlan

if TYPE_CHECKING:
    from qiskit import QuantumCircuit

__all__ = [
    "ShardResult",
    "NodeExecutor",
    "RetryPolicy",
    "NodeFailedError",
    "LedgerEntry",
    "LedgerStatus",
    "JobLedger",
    "InMemoryLedger",
    "ShardCache",
    "WorkUnit",
    "check_job_id",
    "raise_failures",
    "SweepInput",
    "ShardInput",
    "shard_circuits",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

ProgressCallback = Callable[["ShardResult"], None]


@dataclass
class ShardResult:
    """What one shard produced.

    Attributes:
        shard_id: The shard.
        node_id: Node that ran it.
        counts: Flat keys over the shard's classical bits (bit 0 rightmost).
        shots: Shots run.
        seed: Seed used.
        seconds: Wall time on the node, submission to result.
        job_id: The provider's job id.
        device: Device the node actually ran on.
        emulated: True when the node ran on a stand-in device (a GPU node on the CPU).
        exact: False for approximate nodes.
        method: Simulation method or hardware family.
        binding_counts: A sweep batch: the counts of each binding, in order (``counts`` stays empty).
    """

    shard_id: int
    node_id: str
    counts: dict[str, int]
    shots: int
    seed: int
    seconds: float
    job_id: str
    device: str
    emulated: bool = False
    exact: bool = True
    method: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    binding_counts: list[dict[str, int]] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "shard_id": self.shard_id,
            "node_id": self.node_id,
            "counts": dict(self.counts),
            "shots": self.shots,
            "seed": self.seed,
            "seconds": self.seconds,
            "job_id": self.job_id,
            "device": self.device,
            "emulated": self.emulated,
            "exact": self.exact,
            "method": self.method,
            "extra": dict(self.extra),
        }
        if self.binding_counts is not None:
            out["binding_counts"] = [dict(c) for c in self.binding_counts]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardResult:
        return cls(**{**data, "counts": dict(data["counts"]), "extra": dict(data.get("extra", {}))})


@dataclass(frozen=True)
class SweepInput:
    """What a sweep batch runs: a parameterized circuit, once per binding (``{name: value}``)."""

    circuit: QuantumCircuit
    bindings: Sequence[Mapping[str, float]]

    @property
    def num_qubits(self) -> int:
        return int(self.circuit.num_qubits)


#: What one shard runs: a circuit, or a sweep batch.
ShardInput: TypeAlias = "QuantumCircuit | SweepInput"


def shard_circuits(
    circuit: QuantumCircuit, plan: ShardPlan, shard_ids: Sequence[int] | None = None
) -> dict[int, QuantumCircuit]:
    """The circuit each shard runs, by shard id: the lowered circuit (:func:`lower_circuit`) where
    ``whole_circuit``, a sub-circuit of it (built once per distinct qubit set), or a cut block's
    subexperiment (rebuilt from the circuit and the block: :func:`~network.cutting.block_problem`).
    ``shard_ids`` limits it to some shards. Providers translate each to their node's gates.

    Raises:
        CircuitCompileError: A gate of the circuit cannot be lowered.
        PlanningError: A cut block does not fit the circuit.
    """
    wanted_ids = None if shard_ids is None else set(shard_ids)
    wanted = [s for s in plan.shards if wanted_ids is None or s.shard_id in wanted_ids]
    out: dict[int, QuantumCircuit] = {}
    cut = [s for s in wanted if s.block is not None]
    if cut:
        from network.cutting import block_problem

        blocks = {b.block_id: b for b in plan.cuts}
        for block_id in sorted({s.block for s in cut if s.block is not None}):
            problem = block_problem(circuit, blocks[block_id], circuit_hash=plan.circuit_hash)
            for shard in cut:
                if shard.block == block_id and shard.circuit_index is not None:
                    out[shard.shard_id] = problem.circuits[shard.circuit_index]
    rest = [s for s in wanted if s.block is None]
    if not rest:
        return out
    lowered = lower_circuit(circuit)
    distinct: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
    for shard in rest:
        if not shard.whole_circuit:
            distinct.setdefault((shard.qubits, shard.clbits), len(distinct))
    subs = split_circuit(lowered, list(distinct)) if distinct else []
    out.update({s.shard_id: lowered if s.whole_circuit else subs[distinct[(s.qubits, s.clbits)]] for s in rest})
    return out


#: What a provider's job id may look like before it is stored or put in a URL: printable, no spaces, no
#: path segment of dots, at most 256 characters (IBM, Azure and REST ids; Braket ARNs with ':' and '/').
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,255}$")


def check_job_id(job_id: object, node: QPUNodeSpec) -> str:
    """``job_id`` if it is safe to store in the ledger and to put in a URL.

    Raises:
        ProviderResultError: Not a string, too long, characters outside the safe set, or a ``.``
            or ``..`` path segment; the message quotes at most 40 characters of it.
    """
    text = job_id if isinstance(job_id, str) else ""
    if not _JOB_ID.match(text) or any(part in (".", "..") for part in text.split("/")):
        shown = repr(job_id)[:40]
        raise ProviderResultError(
            f"Node {node.node_id!r} returned an unusable job id {shown} (expected up to 256 letters, digits and "
            "'._:/@+=-', starting with a letter or digit, no '.' or '..' segment); it was not stored."
        )
    return text


def raise_failures(failures: Sequence[tuple[str, BaseException]]) -> None:
    """Raise what went wrong in concurrent work, ``(where, error)`` pairs in a stable order.

    Interrupts (``KeyboardInterrupt``, a crash) propagate unwrapped; a single project error is
    raised as it is; when every failure is the result store's (an S3 outage), a
    :class:`~network.errors.StorageError` says so instead of blaming the nodes; otherwise an
    :class:`~network.errors.ExecutionError` lists them all, the first chained.
    """
    if not failures:
        return
    first = failures[0][1]
    interrupts = [e for _, e in failures if not isinstance(e, Exception)]
    if interrupts:  # KeyboardInterrupt, SystemExit: never wrapped
        raise interrupts[0]
    if len(failures) == 1 and isinstance(first, QVMError):
        raise first
    listed = "; ".join(f"{where}: {e}" for where, e in failures)
    if all(isinstance(e, StorageError) for _, e in failures):
        raise StorageError(
            f"The result store failed for {len(failures)} unit(s) of work (the nodes did not): {listed}"
        ) from first
    raise ExecutionError(f"{len(failures)} shard(s) failed: {listed}") from first


class LedgerStatus(StrEnum):
    SUBMITTING = "SUBMITTING"
    SUBMITTED = "SUBMITTED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@dataclass
class LedgerEntry:
    """One remote submission: written before anything waits on it, read before submitting.

    Attributes:
        run_key: Identity of the run (same spec, seed and cluster -> same key).
        shard_id: The shard.
        node_id: Node the job was sent to.
        provider_key: Provider of that node.
        job_key: Idempotency key given to the provider (``{run_key}/{shard_id}``, then ``~2``, ``~3``... for
            later attempts after a job that failed or was cancelled).
        job_id: The provider's job id once known.
        status: SUBMITTING (job id not yet known), SUBMITTED, COMPLETED or FAILED.
        updated_at: Unix time of the last change.
        attempts: The attempt this entry records (re-attaching, or repeating a submission whose outcome
            was unknown under the same key, does not count).
        submitted_at: Unix time of the submission (the job's deadline counts from it, re-runs included).
        batch_index: Where the shard's circuit sits in a job of several circuits (``None``: its own job).
    """

    run_key: str
    shard_id: int
    node_id: str
    provider_key: str
    job_key: str
    job_id: str | None = None
    status: LedgerStatus = LedgerStatus.SUBMITTING
    updated_at: float = field(default_factory=time.time)
    attempts: int = 0
    submitted_at: float | None = None
    batch_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "status": self.status.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerEntry:
        return cls(**{**data, "status": LedgerStatus(data["status"])})


class JobLedger(Protocol):
    """Where remote job ids are recorded (:class:`InMemoryLedger`, or a result store's ledger)."""

    def get(self, run_key: str, shard_id: int) -> LedgerEntry | None: ...

    def record(self, entry: LedgerEntry) -> None: ...


class InMemoryLedger:
    """A ledger for one process (tests, notebooks). Use a result store's ledger to survive crashes."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, int], LedgerEntry] = {}
        self._lock = threading.Lock()

    def get(self, run_key: str, shard_id: int) -> LedgerEntry | None:
        with self._lock:
            entry = self._entries.get((run_key, shard_id))
            return None if entry is None else LedgerEntry.from_dict(entry.to_dict())

    def record(self, entry: LedgerEntry) -> None:
        with self._lock:
            self._entries[(entry.run_key, entry.shard_id)] = LedgerEntry.from_dict(entry.to_dict())

    def entries(self) -> list[LedgerEntry]:
        with self._lock:
            return list(self._entries.values())


class ShardCache(Protocol):
    """Completed shard results kept between runs, so a re-run does not pay for them twice."""

    def load_shard_result(self, run_key: str, shard_id: int) -> ShardResult | None: ...

    def save_shard_result(self, run_key: str, result: ShardResult) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, for transient errors only.

    A node counts as failed (then failover, if allowed) only after ``attempts`` tries *and*
    ``grace`` seconds of transient failures: a gateway that blinks for a second is waited out,
    not abandoned (a remote job moved while it still runs would be paid twice).

    Attributes:
        attempts: Fewest tries per node before it counts as failed.
        base_delay: Seconds before the second try; doubles each time, capped at ``max_delay``.
        jitter: Each delay is multiplied by a random factor in ``[1 - jitter, 1 + jitter]``.
        grace: Seconds of consecutive transient failures before a node counts as failed.
    """

    attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 30.0
    jitter: float = 0.5
    grace: float = 30.0

    def __post_init__(self) -> None:
        if (
            self.attempts < 1
            or self.base_delay < 0
            or self.max_delay < 0
            or not 0 <= self.jitter <= 1
            or not self.grace >= 0
        ):
            raise ValueError(f"Invalid retry policy {self!r}.")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        base = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)


class NodeFailedError(TransientExecutionError):
    """A node kept failing with transient errors through every retry."""

    def __init__(self, message: str, node_id: str) -> None:
        super().__init__(message)
        self.node_id = node_id


class NodeExecutor:
    """Runs shards on the nodes of a registry.

    Args:
        registry: The cluster.
        mode: EMULATED or LIVE (DRY_RUN plans never reach the executor).
        max_workers: Upper bound on concurrent shards (default: one per node used).
        host_cores: Cores of each host (default: this machine's).
        poll_interval: First wait between status polls of a remote job; grows to 5 s.
        retry: Backoff for transient errors; permanent errors fail at once.
        failover: Send a shard whose node keeps failing to another node that fits.
        ledger: Where remote job ids are recorded before anything waits on them.
        shard_cache: Completed shard results to reuse (and where new ones are kept).
        run_key: Identity of the run for the ledger and the cache.
    """

    def __init__(
        self,
        registry: QPURegistry,
        mode: QVMMode = QVMMode.EMULATED,
        *,
        max_workers: int | None = None,
        host_cores: int | None = None,
        poll_interval: float = 0.2,
        retry: RetryPolicy | None = None,
        failover: bool = True,
        ledger: JobLedger | None = None,
        shard_cache: ShardCache | None = None,
        run_key: str | None = None,
    ) -> None:
        self.registry = registry
        self.mode = QVMMode.parse(mode)
        self.max_workers = max_workers
        self.host_cores = host_cores or os.cpu_count() or 1
        self.poll_interval = poll_interval
        self.retry = retry or RetryPolicy()
        self.failover = failover
        self.ledger = ledger
        self.shard_cache = shard_cache
        self.run_key = run_key
        # without a run key, job keys are unique to this executor: a service that deduplicates submissions
        # on them must never hand back another run's job
        self._adhoc_key = f"adhoc-{uuid.uuid4().hex}"
        self._host_slots: dict[str, _HostGate] = {}
        self._failed_nodes: set[str] = set()
        self._lock = threading.Lock()

    def for_run(self, run_key: str | None) -> NodeExecutor:
        """An executor for one run: its own run key and failed-node set, sharing this one's registry,
        ledger, shard cache and host slots (so concurrent runs never oversubscribe a host). One
        :class:`DistributedQVM` runs several specs from several threads this way."""
        run = copy.copy(self)
        run.run_key = run_key
        run._failed_nodes = set()
        return run

    def prepare(self, node_ids: Sequence[str]) -> dict[str, QPUNodeSpec]:
        """Ask each provider how its nodes run in this mode; raise before anything runs.

        Raises:
            NodeUnavailableError: A node cannot run in this mode (no GPU in LIVE mode...).
        """
        return {nid: self.registry.provider(nid).prepare(self.registry.node(nid), self.mode) for nid in node_ids}

    def run(self, shard: Shard, circuit: ShardInput, node: QPUNodeSpec | None = None) -> ShardResult:
        """Run one shard on its node, retrying transient errors, and validate what comes back.

        A remote provider's job id goes to the ledger before anything waits on it; when the
        ledger already holds one for this run and shard, the executor re-attaches to that job
        instead of submitting (and paying) again.

        Args:
            shard: The shard.
            circuit: The circuit it runs (see :func:`shard_circuits`), or a sweep batch.
            node: The prepared node spec (default: prepare the shard's node now).

        Raises:
            NodeCapacityError: The circuit is wider than the node; nothing runs.
            NodeFailedError: Transient errors through every retry.
            ExecutionError: A permanent failure; the message names the node.
            ProviderResultError: The provider's counts do not match the circuit.
        """
        if node is None:
            node = self.prepare([shard.node_id])[shard.node_id]
        self._check_capacity(shard, circuit, node)
        provider = self.registry.provider(node.node_id)
        return self._with_retries(lambda: self._run_once(shard, circuit, node, provider), shard, node, provider)

    def _with_retries(self, attempt: Callable[[], _T], shard: Shard, node: QPUNodeSpec, provider: NodeProvider) -> _T:
        last: BaseException | None = None
        first_failure: float | None = None
        number = 0
        while True:
            number += 1
            try:
                result = attempt()
            except (ProviderResultError, JobTimeoutError):
                raise
            except BaseException as exc:
                original = exc.__cause__ if isinstance(exc, ExecutionError) and exc.__cause__ else exc
                if not (isinstance(exc, TransientExecutionError) or provider.is_transient(original)):
                    raise
                last = exc
                now = time.monotonic()
                first_failure = now if first_failure is None else first_failure
                if number >= self.retry.attempts and now - first_failure >= self.retry.grace:
                    break
                wait = self.retry.delay(number)
                if number >= self.retry.attempts:  # past the tries, within the grace period: wait it out
                    wait = min(max(wait, self.retry.base_delay, 0.1), self.retry.grace - (now - first_failure))
                log.warning(
                    "shard %d on %s: transient error (try %d), retrying in %.1fs: %s",
                    shard.shard_id, node.node_id, number, wait, exc,
                )  # fmt: skip
                time.sleep(max(wait, 0.0))
                continue
            if number > 1:
                for one in result if isinstance(result, list) else [result]:
                    if isinstance(one, ShardResult):
                        one.extra["retries"] = number - 1
            return result
        elapsed = time.monotonic() - (first_failure or time.monotonic())
        raise NodeFailedError(
            f"Shard {shard.shard_id}: node {node.node_id!r} failed {number} time(s) with transient errors over "
            f"{elapsed:.3g} s; last: {last}",
            node.node_id,
        ) from last

    def _run_once(self, shard: Shard, inp: ShardInput, node: QPUNodeSpec, provider: NodeProvider) -> ShardResult:
        if isinstance(inp, SweepInput):
            if not provider.remote:
                return self._run_sweep(shard, inp, node, provider)
            if len(inp.bindings) != 1:  # a remote job is one circuit: plan_sweep gives such nodes one binding each
                raise ExecutionError(
                    f"Shard {shard.shard_id}: a sweep batch for the remote node {node.node_id!r} must hold one "
                    f"binding, got {len(inp.bindings)}."
                )
            result = self._run_once(shard, bind_parameters(inp.circuit, inp.bindings[0]), node, provider)
            result.binding_counts, result.counts = [result.counts], {}
            return result
        circuit = inp
        start = time.perf_counter()
        ledger = self.ledger if (provider.remote and self.ledger is not None and self.run_key) else None
        base_key = f"{self.run_key or self._adhoc_key}/{shard.shard_id}"
        entry = ledger.get(self.run_key, shard.shard_id) if ledger is not None and self.run_key else None
        timeout = provider.job_deadline(node)
        job: NodeJob | None = None
        reattached = False
        try:
            resumable = (LedgerStatus.SUBMITTED, LedgerStatus.COMPLETED)  # a failed or cancelled job is not rejoined
            if entry is not None and entry.job_id and entry.node_id == node.node_id and entry.status in resumable:
                try:
                    job = provider.attach(entry.job_id, node)
                    reattached = True
                    log.info("shard %d: re-attached to job %s on %s", shard.shard_id, entry.job_id, node.node_id)
                except LookupError:
                    job = None
            if job is None:
                # A submission that may have reached the service (SUBMITTING: no job id recorded yet) is
                # repeated under the same key, which the service deduplicates; after a failed, cancelled
                # or unknown job the next attempt gets a key of its own, or the service would hand back
                # the job that ended.
                attempt = 1 if entry is None else entry.attempts + (entry.status is not LedgerStatus.SUBMITTING)
                job_key = base_key if attempt == 1 else f"{base_key}~{attempt}"
                if ledger is not None:
                    entry = LedgerEntry(
                        self.run_key or "", shard.shard_id, node.node_id, provider.key, job_key, attempts=attempt
                    )
                    ledger.record(entry)
                submitted_at = time.time()
                job = provider.submit(circuit, shard.shots, node, seed=shard.seed, job_key=job_key)
                check_job_id(job.job_id, node)
                if ledger is not None and entry is not None:
                    entry.job_id, entry.status, entry.updated_at = job.job_id, LedgerStatus.SUBMITTED, time.time()
                    entry.submitted_at = submitted_at
                    ledger.record(entry)
            else:
                submitted_at = entry.submitted_at if entry is not None and entry.submitted_at else time.time()
            deadline = None if timeout is None else time.monotonic() + (submitted_at + timeout - time.time())
            try:
                job = provider.wait(job, node, interval=self.poll_interval, deadline=deadline)
            except JobTimeoutError:
                job = self._cancel_late(shard, job, node, provider, timeout, ledger, entry)
        except QVMError:
            raise
        except Exception as exc:
            raise _provider_error(provider, exc, f"Shard {shard.shard_id}", node.node_id) from exc
        if job.counts is None and job.batch_counts is not None and entry is not None and entry.job_id == job.job_id:
            index = entry.batch_index  # a job this shard shared with others (the chunks have changed since)
            if index is not None and 0 <= index < len(job.batch_counts):
                job.counts = job.batch_counts[index]
        if job.status is not JobStatus.COMPLETED or job.counts is None:
            if ledger is not None and entry is not None:
                entry.status, entry.updated_at = LedgerStatus.FAILED, time.time()
                ledger.record(entry)
            raise ExecutionError(
                f"Shard {shard.shard_id} failed on node {node.node_id!r} (job {job.job_id}): "
                f"{job.error or ('cancelled' if job.status is JobStatus.CANCELLED else 'no counts returned')}"
            )
        counts = normalize_counts(job.counts, width=circuit.num_clbits, shots=shard.shots, node_id=node.node_id)
        if ledger is not None and entry is not None:
            entry.status, entry.updated_at = LedgerStatus.COMPLETED, time.time()
            ledger.record(entry)
        result = self._result(shard, node, counts, time.perf_counter() - start, job.job_id)
        result.extra.update(job.extra)
        if reattached:
            result.extra["reattached"] = True
        return result

    def _cancel_late(
        self,
        shard: Shard,
        job: NodeJob,
        node: QPUNodeSpec,
        provider: NodeProvider,
        timeout: float | None,
        ledger: JobLedger | None,
        entry: LedgerEntry | None,
    ) -> NodeJob:
        """A job past its node's ``job_timeout``: cancel it at its provider. A job that finished
        meanwhile is returned; otherwise the shard fails with :class:`JobTimeoutError`, saying
        whether the cancellation was confirmed (an unconfirmed job stays in the ledger as
        submitted, so a re-run re-attaches to it rather than paying again)."""
        limit = f"its node's job_timeout of {timeout:g} s" if timeout is not None else "its deadline"
        try:
            final = provider.cancel(job, node)
        except Exception as exc:
            log.warning("shard %d: job %s on %s is past %s and could not be cancelled: %s",
                        shard.shard_id, job.job_id, node.node_id, limit, exc)  # fmt: skip
            raise JobTimeoutError(
                f"Shard {shard.shard_id}: job {job.job_id} on node {node.node_id!r} did not finish within {limit}, and "
                f"cancelling it failed ({type(exc).__name__}: {exc}); it may still run. A re-run of the same seeded "
                "spec re-attaches to it.",
                job_id=job.job_id,
            ) from exc
        if final.status is JobStatus.COMPLETED and (final.counts is not None or final.batch_counts is not None):
            return final  # it finished while being cancelled
        if not final.status.done:
            raise JobTimeoutError(
                f"Shard {shard.shard_id}: job {job.job_id} on node {node.node_id!r} did not finish within {limit}; "
                f"the provider did not confirm its cancellation (status {final.status.value}), so it may still run. "
                "A re-run of the same seeded spec re-attaches to it.",
                job_id=job.job_id,
            )
        if ledger is not None and entry is not None:
            entry.status, entry.updated_at = LedgerStatus.CANCELLED, time.time()
            ledger.record(entry)
        log.warning("shard %d: job %s on %s passed %s and was cancelled", shard.shard_id, job.job_id, node.node_id,
                    limit)  # fmt: skip
        raise JobTimeoutError(
            f"Shard {shard.shard_id}: job {job.job_id} on node {node.node_id!r} did not finish within {limit}; it was "
            f"cancelled at the provider ({final.status.value}). Raise job_timeout for this node group to wait longer.",
            job_id=job.job_id,
        )

    def _run_sweep(self, shard: Shard, inp: SweepInput, node: QPUNodeSpec, provider: NodeProvider) -> ShardResult:
        """A local sweep batch: one provider call for every binding (simulators bind natively)."""
        start = time.perf_counter()
        try:
            raw = provider.execute_sweep(inp.circuit, list(inp.bindings), shard.shots, node, seed=shard.seed)
        except QVMError:
            raise
        except Exception as exc:
            raise _provider_error(provider, exc, f"Sweep shard {shard.shard_id}", node.node_id) from exc
        if len(raw) != len(inp.bindings):
            raise ProviderResultError(
                f"Node {node.node_id!r} returned {len(raw)} results for {len(inp.bindings)} bindings."
            )
        counts = normalize_all(raw, width=inp.circuit.num_clbits, shots=shard.shots, node_id=node.node_id)
        result = self._result(shard, node, {}, time.perf_counter() - start, f"sweep-{uuid.uuid4().hex[:12]}")
        result.binding_counts = counts
        return result

    @staticmethod
    def _check_capacity(shard: Shard, circuit: ShardInput, node: QPUNodeSpec) -> None:
        if circuit.num_qubits > node.max_qubits:
            raise NodeCapacityError(
                f"Shard {shard.shard_id} has {circuit.num_qubits} qubits but node {node.node_id!r} "
                f"accepts at most {node.max_qubits}; it was not run."
            )

    @staticmethod
    def _result(shard: Shard, node: QPUNodeSpec, counts: dict[str, int], seconds: float, job_id: str) -> ShardResult:
        return ShardResult(
            shard_id=shard.shard_id,
            node_id=node.node_id,
            counts=counts,
            shots=shard.shots,
            seed=shard.seed,
            seconds=seconds,
            job_id=job_id,
            device=node.device,
            emulated=node.emulates is not None,
            exact=node.exact,
            method=node.method,
            extra={"emulates": node.emulates} if node.emulates else {},
        )

    def run_batch(
        self, shards: Sequence[Shard], circuits: Sequence[QuantumCircuit], node: QPUNodeSpec
    ) -> list[ShardResult]:
        """Run shards of equivalent nodes of one host in one provider call.

        ``node`` is the prepared spec the call runs with; each result keeps its shard's node id.
        """
        for shard, circuit in zip(shards, circuits, strict=True):
            self._check_capacity(shard, circuit, self.registry.node(shard.node_id))
        provider = self.registry.provider(shards[0].node_id)
        start = time.perf_counter()
        try:
            batch = provider.execute_batch(
                list(circuits), [s.shots for s in shards], node, seeds=[s.seed for s in shards]
            )
        except QVMError:
            raise
        except Exception as exc:
            ids = ", ".join(str(s.shard_id) for s in shards)
            raise ExecutionError(f"Shards {ids} failed on node {node.node_id!r}: {type(exc).__name__}: {exc}") from exc
        seconds = time.perf_counter() - start
        if len(batch) != len(shards):
            raise ExecutionError(
                f"Node {node.node_id!r} returned {len(batch)} results for a batch of {len(shards)} shards."
            )
        results = []
        for shard, circuit, counts in zip(shards, circuits, batch, strict=True):
            own = replace(node, node_id=shard.node_id)
            flat = normalize_counts(counts, width=circuit.num_clbits, shots=shard.shots, node_id=shard.node_id)
            result = self._result(shard, own, flat, seconds, f"batch-{uuid.uuid4().hex[:12]}")
            result.extra["batch_size"] = len(shards)
            results.append(result)
        return results

    def run_plan(
        self,
        plan: ShardPlan,
        circuit: QuantumCircuit,
        *,
        on_result: ProgressCallback | None = None,
        prepared: Mapping[str, QPUNodeSpec] | None = None,
    ) -> list[ShardResult]:
        """Run every shard of ``plan`` (those an earlier attempt stored are reused).

        Args:
            plan: The plan.
            circuit: The original circuit the plan was made for.
            on_result: Called (from a worker thread) as each shard finishes.
            prepared: Prepared node specs (default: prepare the plan's nodes now).

        Returns:
            Results in shard order.

        Raises:
            ExecutionError: One or more shards failed; the first failure is chained, all are listed.
        """
        cached, pending = self.split_cached(plan.shards)
        for r in cached:
            if on_result is not None:
                on_result(r)
        inputs = shard_circuits(circuit, plan, [s.shard_id for s in pending]) if pending else {}
        done = {
            r.shard_id: r for r in [*cached, *self.run_shards(pending, inputs, on_result=on_result, prepared=prepared)]
        }
        return [done[s.shard_id] for s in plan.shards]

    def run_shards(
        self,
        shards: Sequence[Shard],
        inputs: Mapping[int, ShardInput],
        *,
        on_result: ProgressCallback | None = None,
        prepared: Mapping[str, QPUNodeSpec] | None = None,
    ) -> list[ShardResult]:
        """Run shards concurrently: every unit of quantum work (a whole circuit, a partition block, a
        cut subexperiment, a sweep batch) goes through here or through :meth:`run_unit`.

        Shards of local CPU nodes that share a host and a configuration go to their provider in
        batches (Aer spreads a batch over the cores; it holds the GIL, so threads alone would
        not). Other nodes run in parallel threads, each node's shards in turn.

        Args:
            shards: The shards to run.
            inputs: What each runs, by shard id (:func:`shard_circuits`, or :class:`SweepInput`).
            on_result: Called (from a worker thread) as each shard finishes.
            prepared: Prepared node specs (default: prepare the shards' nodes now).

        Returns:
            Results in the order of ``shards``.

        Raises:
            ExecutionError: One or more shards failed; the first failure is chained, all are listed.
        """
        if not shards:
            return []
        if prepared is None:
            prepared = self.prepare(sorted({s.node_id for s in shards}))
        results: dict[int, ShardResult] = {}
        units = self.work_units(shards, prepared)
        failures: list[tuple[Shard, BaseException]] = []
        stop = threading.Event()
        lock = threading.Lock()

        def collect(result: ShardResult) -> None:
            with lock:
                results[result.shard_id] = result
            if on_result is not None:
                on_result(result)

        def work(unit: WorkUnit) -> None:
            try:
                self.run_unit(unit, inputs, on_result=collect, stop=stop)
            except BaseException as exc:
                with lock:
                    failures.append((unit.shards[0], exc))
                stop.set()

        limit = len(units) if self.max_workers is None else max(1, min(self.max_workers, len(units)))
        if limit <= 1:
            for unit in units:
                work(unit)
        else:
            with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="qvm-shard") as pool:
                list(pool.map(work, units))
        if failures:
            failures.sort(key=lambda f: f[0].shard_id)
            raise_failures([(f"shard {s.shard_id} on {s.node_id}", e) for s, e in failures])
        return [results[s.shard_id] for s in shards]

    def split_cached(self, shards: Sequence[Shard]) -> tuple[list[ShardResult], list[Shard]]:
        """Results an earlier attempt already stored, and the shards still to run."""
        cached, pending = [], []
        for shard in shards:
            hit = self._cached(shard)
            if hit is None:
                pending.append(shard)
            else:
                cached.append(hit)
        return cached, pending

    def run_unit(
        self,
        unit: WorkUnit,
        circuits: Mapping[int, ShardInput],
        *,
        on_result: ProgressCallback | None = None,
        stop: threading.Event | None = None,
    ) -> list[ShardResult]:
        """Run one unit of work (a batch for one host, or one node's shards in turn).

        Completed shards go to the shard cache at once (local sweep batches aside: running them
        again costs less than storing every binding's counts). Both drivers call this: the
        in-process executor from its threads, the Prefect flows from their execute tasks.

        Args:
            unit: From :meth:`work_units`.
            circuits: What each shard runs, indexed by shard id.
            on_result: Called as each shard finishes.
            stop: When set, the unit stops before its next shard.
        """
        done: list[ShardResult] = []

        def finish(results: Sequence[ShardResult]) -> None:
            for r in results:
                keep = r.binding_counts is None or self.registry.provider(r.node_id).remote
                if self.shard_cache is not None and self.run_key and keep:
                    self.shard_cache.save_shard_result(self.run_key, r)
                done.append(r)
                if on_result is not None:
                    on_result(r)

        if unit.batched:
            for chunk in unit.chunks(self.host_cores):
                if stop is not None and stop.is_set():
                    break
                batch = [circuits[s.shard_id] for s in chunk]
                with self._slot(unit.node, whole_host=True):
                    finish(self.run_batch(chunk, [c for c in batch if not isinstance(c, SweepInput)], unit.node))
            return done
        provider = self.registry.provider(unit.node.node_id)
        limits = provider.job_limits(unit.node) if provider.remote else JobLimits()
        if limits.circuits > 1 and len(unit.shards) > 1:  # several circuits per vendor job
            for positions in limits.chunks([s.shots for s in unit.shards]):
                if stop is not None and stop.is_set():
                    break
                chunk = [unit.shards[i] for i in positions]
                with self._slot(unit.node):  # an emulated service runs here
                    if len(chunk) == 1:
                        finish([self._run_with_failover(chunk[0], circuits[chunk[0].shard_id], unit.node)])
                    else:
                        inputs = [_one_circuit(circuits[s.shard_id]) for s in chunk]
                        finish(self._run_many_with_failover(chunk, inputs, unit.node))
            return done
        for shard in unit.shards:
            if stop is not None and stop.is_set():
                break
            # a sweep batch spreads its bindings over the host's cores, as a batch does
            with self._slot(unit.node, whole_host=shard.bindings is not None):
                finish([self._run_with_failover(shard, circuits[shard.shard_id], unit.node)])
        return done

    def _run_many_with_failover(
        self, shards: Sequence[Shard], circuits: Sequence[QuantumCircuit], node: QPUNodeSpec
    ) -> list[ShardResult]:
        """Shards in one vendor job (:meth:`NodeProvider.submit_many`); a node that keeps failing
        hands each shard to the one-job path on another node, once the job is confirmed cancelled."""
        provider = self.registry.provider(node.node_id)
        for shard, circuit in zip(shards, circuits, strict=True):
            self._check_capacity(shard, circuit, node)
        try:
            results = self._with_retries(lambda: self._run_many(shards, circuits, node, provider), shards[0], node,
                                         provider)  # fmt: skip
        except NodeFailedError as exc:
            if not self.failover:
                raise
            with self._lock:
                self._failed_nodes.add(node.node_id)
                spare = self._spare_node(circuits[0], node, self._failed_nodes)
            if spare is None:
                raise NodeFailedError(f"{exc} No other node fits the shards.", node.node_id) from exc
            self._release(shards[0], node, exc)  # the job is shared: releasing one entry cancels it
            moved = []
            for shard, circuit in zip(shards, circuits, strict=True):
                result = self._run_with_failover(replace(shard, node_id=spare.node_id), circuit, spare)
                result.extra.setdefault("failover_from", []).insert(0, node.node_id)
                moved.append(result)
            return moved
        return results

    def _run_many(
        self, shards: Sequence[Shard], circuits: Sequence[QuantumCircuit], node: QPUNodeSpec, provider: NodeProvider
    ) -> list[ShardResult]:
        """One job of several circuits: re-attached when the ledger records one job for every shard,
        else submitted (each shard's ledger entry names the job and its place in it)."""
        start = time.perf_counter()
        ledger = self.ledger if (self.ledger is not None and self.run_key) else None
        entries = [ledger.get(self.run_key, s.shard_id) if ledger is not None and self.run_key else None
                   for s in shards]  # fmt: skip
        resumable = (LedgerStatus.SUBMITTED, LedgerStatus.COMPLETED)
        first = entries[0]
        timeout = provider.job_deadline(node)
        job: NodeJob | None = None
        reattached = False
        try:
            one_job = (
                first is not None
                and first.job_id is not None
                and first.node_id == node.node_id
                and all(
                    e is not None and e.job_id == first.job_id and e.status in resumable and e.batch_index == i
                    for i, e in enumerate(entries)
                )
            )
            if one_job and first is not None and first.job_id:
                try:
                    job = provider.attach(first.job_id, node)
                    reattached = True
                    log.info("shards %s: re-attached to job %s on %s", _span_ids(shards), job.job_id, node.node_id)
                except LookupError:
                    job = None
            if job is None:
                previous = max((e.attempts for e in entries if e is not None), default=0)
                unknown = any(e is not None and e.status is LedgerStatus.SUBMITTING for e in entries)
                attempt = max(previous + (0 if unknown else 1), 1)
                base = f"{self.run_key or self._adhoc_key}/{shards[0].shard_id}-{shards[-1].shard_id}"
                job_key = base if attempt == 1 else f"{base}~{attempt}"
                fresh = [LedgerEntry(self.run_key or "", s.shard_id, node.node_id, provider.key, job_key,
                                     attempts=attempt, batch_index=i) for i, s in enumerate(shards)]  # fmt: skip
                if ledger is not None:
                    for entry in fresh:
                        ledger.record(entry)
                submitted_at = time.time()
                job = provider.submit_many(
                    circuits, [s.shots for s in shards], node, seeds=[s.seed for s in shards], job_key=job_key
                )
                check_job_id(job.job_id, node)
                if ledger is not None:
                    for entry in fresh:
                        entry.job_id, entry.status, entry.updated_at = job.job_id, LedgerStatus.SUBMITTED, time.time()
                        entry.submitted_at = submitted_at
                        ledger.record(entry)
                entries = list(fresh)
                log.info("shards %s: one job %s on %s", _span_ids(shards), job.job_id, node.node_id)
            else:
                first = entries[0]
                submitted_at = first.submitted_at if first is not None and first.submitted_at else time.time()
            deadline = None if timeout is None else time.monotonic() + (submitted_at + timeout - time.time())
            try:
                job = provider.wait(job, node, interval=self.poll_interval, deadline=deadline)
            except JobTimeoutError:
                job = self._cancel_late(shards[0], job, node, provider, timeout, None, None)
        except QVMError:
            raise
        except Exception as exc:
            raise _provider_error(provider, exc, f"Shards {_span_ids(shards)}", node.node_id) from exc

        def mark(status: LedgerStatus) -> None:
            if ledger is None:
                return
            for entry in entries:
                if entry is not None:
                    entry.status, entry.updated_at = status, time.time()
                    ledger.record(entry)

        if job.status is not JobStatus.COMPLETED or job.batch_counts is None:
            mark(LedgerStatus.CANCELLED if job.status is JobStatus.CANCELLED else LedgerStatus.FAILED)
            raise ExecutionError(
                f"Shards {_span_ids(shards)} failed on node {node.node_id!r} (job {job.job_id}): "
                f"{job.error or 'no counts returned'}"
            )
        if len(job.batch_counts) != len(shards):
            raise ProviderResultError(
                f"Node {node.node_id!r} returned {len(job.batch_counts)} results for a job of {len(shards)} circuits."
            )
        seconds = time.perf_counter() - start
        results = []
        for shard, circuit, raw in zip(shards, circuits, job.batch_counts, strict=True):
            counts = normalize_counts(raw, width=circuit.num_clbits, shots=shard.shots, node_id=node.node_id)
            result = self._result(shard, node, counts, seconds, job.job_id)
            result.extra.update(job.extra)
            result.extra["job_circuits"] = len(shards)
            if reattached:
                result.extra["reattached"] = True
            results.append(result)
        mark(LedgerStatus.COMPLETED)
        return results

    def _run_with_failover(self, shard: Shard, circuit: ShardInput, node: QPUNodeSpec) -> ShardResult:
        try:
            return self.run(shard, circuit, node)
        except NodeFailedError as exc:
            if not self.failover:
                raise
            with self._lock:
                self._failed_nodes.add(node.node_id)
                spare = self._spare_node(circuit, node, self._failed_nodes)
            if spare is None:
                raise NodeFailedError(f"{exc} No other node fits the shard.", node.node_id) from exc
            self._release(shard, node, exc)  # only once there is somewhere to go
            log.warning(
                "shard %d: node %s keeps failing, failing over to %s", shard.shard_id, node.node_id, spare.node_id
            )
            result = self._run_with_failover(replace(shard, node_id=spare.node_id), circuit, spare)
            result.extra.setdefault("failover_from", []).insert(0, node.node_id)
            return result

    def _release(self, shard: Shard, node: QPUNodeSpec, failure: NodeFailedError) -> None:
        """Before a shard moves off ``node``: a job it submitted there must be confirmed cancelled
        (or finished), else it may still run and the move would pay twice.

        Raises:
            NodeFailedError: The job could not be confirmed cancelled; the shard stays put (its
                ledger entry lets a re-run re-attach).
        """
        provider = self.registry.provider(node.node_id)
        entry = self.ledger.get(self.run_key, shard.shard_id) if self.ledger and self.run_key else None
        if not provider.remote or entry is None or not entry.job_id or entry.node_id != node.node_id:
            return  # nothing was submitted there
        if entry.status is not LedgerStatus.SUBMITTED:
            return
        try:
            final = provider.cancel(provider.attach(entry.job_id, node), node)
        except Exception as exc:
            raise NodeFailedError(
                f"{failure} Job {entry.job_id} was submitted there and could not be cancelled ({type(exc).__name__}: "
                f"{exc}); it may still run, so the shard was not moved to another node (that would pay twice). "
                "Re-run the same seeded spec later to re-attach to it.",
                node.node_id,
            ) from exc
        if not final.status.done:
            raise NodeFailedError(
                f"{failure} Job {entry.job_id} was submitted there and its cancellation is not confirmed (status "
                f"{final.status.value}); the shard was not moved. Re-run the same seeded spec later to re-attach.",
                node.node_id,
            )
        entry.status, entry.updated_at = LedgerStatus.CANCELLED, time.time()
        self.ledger.record(entry)  # type: ignore[union-attr]
        log.warning("shard %d: job %s on %s cancelled before moving the shard", shard.shard_id, entry.job_id,
                    node.node_id)  # fmt: skip

    def _cached(self, shard: Shard) -> ShardResult | None:
        if self.shard_cache is None or not self.run_key:
            return None
        cached = self.shard_cache.load_shard_result(self.run_key, shard.shard_id)
        if cached is None or cached.shots != shard.shots:
            return None
        cached.extra["reused"] = True
        return cached

    def _spare_node(self, circuit: ShardInput, failed: QPUNodeSpec, excluded: set[str]) -> QPUNodeSpec | None:
        """Another node that fits ``circuit``: same provider first, exact if the failed one was."""
        candidates = [
            n
            for n in self.registry.nodes
            if n.node_id not in excluded and n.max_qubits >= circuit.num_qubits and (n.exact or not failed.exact)
        ]
        candidates.sort(key=lambda n: (n.provider_key != failed.provider_key, n.method != failed.method))
        for node in candidates:
            try:
                return self.registry.provider(node.node_id).prepare(node, self.mode)
            except QVMError:
                continue
        return None

    def work_units(self, shards: Sequence[Shard], prepared: Mapping[str, QPUNodeSpec]) -> list[WorkUnit]:
        """Group shards into units: one batch per host and provider configuration for CPU nodes of
        batching providers (one per node on other devices), else one unit per node (its shards run
        in turn: a remote node's shards are ledgered one job each)."""
        batches: dict[tuple[Any, ...], list[Shard]] = {}
        per_node: dict[str, list[Shard]] = {}
        for shard in shards:
            node = prepared[shard.node_id]
            provider = self.registry.provider(shard.node_id)
            if provider.supports_batch and not provider.remote and shard.bindings is None:
                # CPU nodes of one host and configuration share one call; other devices batch per node
                key: tuple[Any, ...] = (
                    (node.host, id(provider), node.method, node.exact, repr(sorted(node.options.items())))
                    if node.device == "CPU"
                    else ("node", node.node_id)
                )
                batches.setdefault(key, []).append(shard)
            else:
                per_node.setdefault(shard.node_id, []).append(shard)
        units = [WorkUnit(prepared[group[0].node_id], group, batched=True) for group in batches.values()]
        cpu_nodes: dict[str, int] = {}
        for nid in per_node:
            if prepared[nid].device == "CPU":
                cpu_nodes[prepared[nid].host] = cpu_nodes.get(prepared[nid].host, 0) + 1
        for nid, group in per_node.items():
            node = prepared[nid]
            concurrent = min(cpu_nodes.get(node.host, 1), self.host_cores)
            if node.device == "CPU" and concurrent > 1 and "threads" not in node.options:
                # several simulators share the host: give each its share of the cores
                node = replace(node, options={**node.options, "threads": max(1, self.host_cores // concurrent)})
            units.append(WorkUnit(node, group, batched=False))
        return units

    def _slot(self, node: QPUNodeSpec, *, whole_host: bool = False) -> Any:
        """A context that holds one of the host's cores (or all of them for a batch)."""
        if node.device != "CPU":
            return contextlib.nullcontext()
        with self._lock:
            gate = self._host_slots.get(node.host)
            if gate is None:
                gate = self._host_slots[node.host] = _HostGate(self.host_cores)
        return gate.hold(self.host_cores if whole_host else 1)


@dataclass
class WorkUnit:
    """Shards that run together: a batch on one host (``batched``) or one node's shards in turn.

    ``node`` is the prepared spec the unit runs with.
    """

    node: QPUNodeSpec
    shards: list[Shard]
    batched: bool

    def chunks(self, cores: int) -> list[list[Shard]]:
        """Batches of a few times the core count, so progress shows and memory stays bounded."""
        size = max(4 * cores, math.ceil(len(self.shards) / 8))
        return [self.shards[i : i + size] for i in range(0, len(self.shards), size)]


def _one_circuit(inp: ShardInput) -> QuantumCircuit:
    """What a shard runs as one circuit (a remote sweep shard holds one binding)."""
    if isinstance(inp, SweepInput):
        if len(inp.bindings) != 1:
            raise ExecutionError(f"A sweep batch of {len(inp.bindings)} bindings cannot be one circuit of a job.")
        return bind_parameters(inp.circuit, inp.bindings[0])
    return inp


def _provider_error(provider: NodeProvider, exc: Exception, what: str, node_id: str) -> ExecutionError:
    """A provider's untyped exception as the executor's typed one, naming ``what`` failed and where:
    transient (retried) when the provider classifies it so."""
    error = TransientExecutionError if provider.is_transient(exc) else ExecutionError
    return error(f"{what} failed on node {node_id!r}: {type(exc).__name__}: {exc}")


def _span_ids(shards: Sequence[Shard]) -> str:
    ids = [s.shard_id for s in shards]
    return f"{ids[0]}..{ids[-1]}" if len(ids) > 2 else ", ".join(map(str, ids))


class _HostGate:
    """A counting semaphore that can take several units at once (a batch takes the host)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.free = capacity
        self.cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, units: int) -> Iterator[None]:
        units = min(units, self.capacity)
        with self.cond:
            self.cond.wait_for(lambda: self.free >= units)
            self.free -= units
        try:
            yield
        finally:
            with self.cond:
                self.free += units
                self.cond.notify_all()
