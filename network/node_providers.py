"""Nodes, providers and the cluster registry.

A *provider* is a family of nodes (Aer on the CPU, Aer on a GPU, a cloud QPU...). It turns
keyword arguments into :class:`QPUNodeSpec` values (:meth:`NodeProvider.build_nodes`) and runs a
circuit on one of them (:meth:`NodeProvider.execute`). Providers are found through the
``qcos.providers`` entry-point group; the built-ins register there exactly as third parties do.

A :class:`QPURegistry` maps node ids to specs and providers; :class:`ClusterBuilder` makes one.
Nothing here imports a vendor SDK: provider modules import theirs lazily, so a missing optional SDK
breaks only that provider, with an install hint.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from network.errors import (
    ClusterConfigError,
    ExecutionError,
    JobTimeoutError,
    ProviderUnavailableError,
    UnknownProviderError,
)
from network.pricing import Billing, GateCounts, billing_from_dict

if TYPE_CHECKING:
    from qiskit import QuantumCircuit

__all__ = [
    "DEFAULT_JOB_TIMEOUT",
    "ENTRY_POINT_GROUP",
    "QVMMode",
    "JobStatus",
    "NodeJob",
    "JobLimits",
    "QPUNodeSpec",
    "NodeProvider",
    "QPURegistry",
    "ClusterBuilder",
    "available_providers",
    "get_provider",
    "register_provider",
    "unregister_provider",
    "describe_capacities",
]

ENTRY_POINT_GROUP = "qcos.providers"
#: Seconds a remote job may take, submission to result, unless its node sets ``job_timeout``: a day
#: (QPU queues can be long; a cluster file sets a tighter one per node group).
DEFAULT_JOB_TIMEOUT = 24 * 3600.0
_DEVICES = ("CPU", "GPU", "QPU")


class QVMMode(StrEnum):
    """How a run treats the nodes of the cluster.

    * ``EMULATED``: nothing leaves the machine. A node whose hardware is absent (a GPU node on a
      machine without a GPU) runs on the CPU with the same method and the node's limits, and the
      result says so.
    * ``LIVE``: every node runs on its real device; a missing device is an error, never a silent
      fallback.
    * ``DRY_RUN``: plan and estimate only; nothing runs.
    """

    EMULATED = "emulated"
    LIVE = "live"
    DRY_RUN = "dry_run"

    @classmethod
    def parse(cls, value: QVMMode | str) -> QVMMode:
        """Accept a member, its value or its name, case-insensitively."""
        if isinstance(value, QVMMode):
            return value
        text = str(value).strip().lower()
        for member in cls:
            if text in (member.value, member.name.lower()):
                return member
        choices = ", ".join(m.value for m in cls)
        raise ValueError(f"Unknown mode {value!r}; choose one of: {choices}.")


class JobStatus(StrEnum):
    """Lifecycle of one submission to a node (the same words the REST protocol uses)."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    #: Cancelled at the provider: it will not run (or finish) and is not billed further.
    CANCELLED = "CANCELLED"

    @property
    def done(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass
class NodeJob:
    """A submission to a node. Local providers return it already finished.

    Attributes:
        job_id: Plain string id; a remote provider can re-attach to the job from it alone.
        node_id: The node the job runs on.
        status: Current status.
        counts: Bitstring counts once ``COMPLETED``.
        error: The provider's message once ``FAILED``.
        extra: Provider facts merged into the shard result's ``extra`` (``cost_usd``...).
        batch_counts: For a job of several circuits (:meth:`NodeProvider.submit_many`), the counts
            of each, in order, once ``COMPLETED``.
    """

    job_id: str
    node_id: str
    status: JobStatus
    counts: dict[str, int] | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    batch_counts: list[dict[str, int]] | None = None


@dataclass(frozen=True)
class JobLimits:
    """What one job of a remote service may hold (:meth:`NodeProvider.job_limits`).

    Attributes:
        circuits: Circuits per job (1: one circuit per job, no batching).
        total_shots: Shots of all its circuits together (``None``: no limit); IBM counts circuits x
            shots as executions (at most 10 million), a Braket program set its total shots.
        same_shots: Every circuit of a job runs the same shots (a Braket program set divides its
            shots evenly among its programs): shards are grouped by shots.
    """

    circuits: int = 1
    total_shots: int | None = None
    same_shots: bool = False

    def chunks(self, shots: Sequence[int]) -> list[list[int]]:
        """Positions of ``shots`` split into jobs: in order (by shots first when ``same_shots``),
        each job within both limits; a circuit over ``total_shots`` alone is a job of its own."""
        order = sorted(range(len(shots)), key=lambda i: (shots[i], i)) if self.same_shots else range(len(shots))
        out: list[list[int]] = []
        for i in order:
            last = out[-1] if out else None
            fits = (
                last is not None
                and len(last) < max(self.circuits, 1)
                and (not self.same_shots or shots[last[0]] == shots[i])
                and (self.total_shots is None or sum(shots[j] for j in last) + shots[i] <= self.total_shots)
            )
            if fits and last is not None:
                last.append(i)
            else:
                out.append([i])
        return out


@dataclass(frozen=True)
class QPUNodeSpec:
    """One node of the cluster: what it can take and what it costs.

    Attributes:
        node_id: Unique id within a registry, e.g. ``"local_cpu-3"``.
        provider_key: Key of the provider that runs it.
        max_qubits: Widest circuit the node accepts; wider circuits never run on it.
        exact: False for approximate simulators (matrix product states with truncation).
        method: Simulation method or hardware family (``statevector``, ``matrix_product_state``...).
        device: ``CPU``, ``GPU`` or ``QPU``: the device the node is declared to run on.
        cost_per_shot: Price of one shot in the provider's currency (0 for local nodes).
        cost_per_task: Price of one submission.
        cost_per_second: Price of one second of device time (IBM's QPU seconds, managed simulators).
        work_pool: Prefect work pool whose workers run this node's shards, if any.
        tags: Free-form labels for filtering.
        host: Nodes with the same host share its CPU cores; the executor never oversubscribes it.
        options: Provider-specific run options (JSON-serializable), e.g. Aer's ``precision``.
        emulates: Set on the spec actually executed when a node runs on a stand-in device
            (``"GPU"`` for a GPU node emulated on the CPU).
        job_timeout: Seconds one job may take on this node, submission to result (every request
            and poll included). Past it the job is cancelled at its provider and the shard fails
            with :class:`~network.errors.JobTimeoutError`. ``None``: :data:`DEFAULT_JOB_TIMEOUT`
            for remote providers, no limit for local ones. The plan lists it per node.
        billing: How the target bills (:mod:`network.pricing`: per task and shot, gate-shots, time
            slices, HQCs...), or ``None`` for the flat ``cost_per_*`` prices. When set it prices the
            node, and the ``cost_per_*`` fields are only its nearest flat equivalents. A mapping (as
            :meth:`to_dict` writes it) is accepted.
        mid_circuit: False for a node that measures only at the end of a circuit (Braket, the
            cuQuantum GPU nodes): a measurement mid-circuit (a cut subexperiment has them) is
            deferred onto an ancilla qubit, which must fit within ``max_qubits``; the cut search
            leaves that room.
    """

    node_id: str
    provider_key: str
    max_qubits: int
    exact: bool = True
    method: str = "statevector"
    device: str = "CPU"
    cost_per_shot: float = 0.0
    cost_per_task: float = 0.0
    work_pool: str | None = None
    tags: tuple[str, ...] = ()
    host: str = "local"
    options: Mapping[str, Any] = field(default_factory=dict)
    emulates: str | None = None
    cost_per_second: float = 0.0
    job_timeout: float | None = None
    billing: Billing | None = None
    mid_circuit: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.node_id, str) or not self.node_id.strip():
            raise ClusterConfigError(f"A node id must be a non-empty string, got {self.node_id!r}.")
        if isinstance(self.max_qubits, bool) or not isinstance(self.max_qubits, int) or self.max_qubits < 1:
            raise ClusterConfigError(
                f"Node {self.node_id!r}: max_qubits must be a positive integer, got {self.max_qubits!r}."
            )
        if self.device not in _DEVICES:
            raise ClusterConfigError(
                f"Node {self.node_id!r}: device must be one of {', '.join(_DEVICES)}, got {self.device!r}."
            )
        for name in ("cost_per_shot", "cost_per_task", "cost_per_second"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ClusterConfigError(f"Node {self.node_id!r}: {name} must be a finite number >= 0, got {value!r}.")
        timeout = self.job_timeout
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ClusterConfigError(
                f"Node {self.node_id!r}: job_timeout must be a positive number of seconds or None, got {timeout!r}."
            )
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "options", dict(self.options))
        if self.billing is not None and not isinstance(self.billing, Billing):
            if not isinstance(self.billing, Mapping):
                raise ClusterConfigError(f"Node {self.node_id!r}: billing must be a mapping, got {self.billing!r}.")
            try:
                object.__setattr__(self, "billing", billing_from_dict(self.billing))
            except (TypeError, ValueError) as exc:
                raise ClusterConfigError(f"Node {self.node_id!r}: {exc}") from exc

    def fits(self, width: int, mid_measurements: int = 0) -> bool:
        """Whether a circuit of ``width`` qubits with ``mid_measurements`` measurements before its
        end fits: a node without mid-circuit measurement needs an ancilla for each."""
        return self.max_qubits >= width + (0 if self.mid_circuit else mid_measurements)

    def price(self, shots: int, seconds: float = 0.0, *, tasks: int = 1, gates: GateCounts | None = None) -> float:
        """Estimated price of ``tasks`` submissions of ``shots`` shots in total taking ``seconds``.

        ``gates`` counts the operations of the circuit each task runs; bills by gate-shot or HQC need
        them (without, a gate-shot program is priced at its minimum, an HQC program at its base).
        """
        if self.billing is not None:
            return self.billing.estimate(shots, seconds, tasks, gates)
        return tasks * self.cost_per_task + shots * self.cost_per_shot + seconds * self.cost_per_second

    def price_breakdown(
        self, shots: int, seconds: float = 0.0, *, tasks: int = 1, gates: GateCounts | None = None
    ) -> str:
        """How :meth:`price` adds up, for error messages and plan notes."""
        if self.billing is not None:
            return f"{self.node_id}: " + self.billing.breakdown(shots, seconds, tasks, gates)
        parts = [f"{self.cost_per_task:g} per task" if tasks == 1 else f"{tasks} tasks x {self.cost_per_task:g}"]
        if self.cost_per_shot:
            parts.append(f"{shots} shots x {self.cost_per_shot:g}")
        if self.cost_per_second:
            parts.append(f"{seconds:.3g} s x {self.cost_per_second:g}")
        return f"{self.node_id}: " + " + ".join(parts) + f" = {self.price(shots, seconds, tasks=tasks):g}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict; :meth:`from_dict` inverts it."""
        data = asdict(self)
        data["tags"] = list(self.tags)
        data["billing"] = None if self.billing is None else self.billing.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QPUNodeSpec:
        values = dict(data)
        values["tags"] = tuple(values.get("tags", ()))
        return cls(**values)


class NodeProvider(ABC):
    """A family of nodes. Subclass it, set :attr:`key`, implement two methods.

    ``execute`` returns counts keyed by bitstrings over *all* the circuit's classical bits, bit 0
    rightmost (spaces between registers are allowed and ignored), summing to ``shots``.

    Remote providers override :meth:`submit` and :meth:`poll`; the defaults run :meth:`execute`
    and return a job that is born finished, so the executor never branches on local vs remote.
    """

    key: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: Importable modules the provider needs; checked when the provider is instantiated.
    requires: ClassVar[tuple[str, ...]] = ()
    #: The pip extra that installs :attr:`requires`.
    extra: ClassVar[str | None] = None
    #: True when :meth:`execute_batch` runs many circuits in one call faster than one by one.
    supports_batch: ClassVar[bool] = False
    #: True for providers whose jobs live elsewhere and cost money or queue time: their job ids go
    #: to the ledger before anything waits on them, and a re-run re-attaches with :meth:`attach`.
    remote: ClassVar[bool] = False

    def __init__(self) -> None:
        self.check_dependencies()

    @classmethod
    def check_dependencies(cls) -> None:
        """Raise :class:`ProviderUnavailableError` with an install hint if an SDK is missing."""
        missing = [mod for mod in cls.requires if not _importable(mod)]
        if missing:
            raise ProviderUnavailableError(
                f"Provider {cls.key!r} needs {', '.join(missing)}, which is not installed. " + install_hint(cls.extra)
            )

    @classmethod
    def live_status(cls) -> str | None:
        """Why this machine cannot run the provider's nodes in LIVE mode (no GPU...), or None.

        Cheap and contacts nothing remote; ``qcos providers`` shows it. Remote providers answer
        None: whether their service is reachable is only known when a run asks.
        """
        return None

    @abstractmethod
    def build_nodes(self, **kwargs: Any) -> list[QPUNodeSpec]:
        """Turn cluster arguments (``n_nodes=4, max_qubits=28``...) into node specs."""

    def execute(
        self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None
    ) -> dict[str, int]:
        """Run ``circuit`` for ``shots`` shots on the node and return its counts.

        Optional, as the seed's contract has it: a provider that only describes its nodes
        (``build_nodes``) runs them on the default simulator for their declared method (Aer
        statevector, or Aer matrix product state for ``method="matrix_product_state"``). A
        provider may also define ``execute(circuit, shots, node_spec)`` without ``seed``: the seed is
        passed only to providers that accept it (:meth:`run_execute`).
        """
        method = "matrix_product_state" if node_spec.method == "matrix_product_state" else "statevector"
        stand_in = replace(node_spec, method=method, device="CPU", options={}, emulates=None)
        return _default_simulator().execute(circuit, shots, stand_in, seed=seed)

    def run_execute(
        self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, seed: int | None
    ) -> dict[str, int]:
        """Call :meth:`execute`, with ``seed`` only when its signature takes one."""
        if _accepts_seed(type(self)):
            return self.execute(circuit, shots, node_spec, seed=seed)
        return self.execute(circuit, shots, node_spec)

    def execute_batch(
        self,
        circuits: Sequence[QuantumCircuit],
        shots: Sequence[int],
        node_spec: QPUNodeSpec,
        *,
        seeds: Sequence[int | None],
    ) -> list[dict[str, int]]:
        """Run several circuits; the default calls :meth:`execute` for each."""
        return [
            self.run_execute(circuit, n, node_spec, seed)
            for circuit, n, seed in zip(circuits, shots, seeds, strict=True)
        ]

    def execute_sweep(
        self,
        circuit: QuantumCircuit,
        bindings: Sequence[Mapping[str, float]],
        shots: int,
        node_spec: QPUNodeSpec,
        *,
        seed: int | None = None,
    ) -> list[dict[str, int]]:
        """Run ``circuit`` once per binding (``{parameter name: value}``).

        The default binds each and calls :meth:`execute_batch`; simulators with native parameter
        binding override it.
        """
        from network.circuits import bind_parameters

        bound = [bind_parameters(circuit, b) for b in bindings]
        seeds = [None if seed is None else (seed + i) & 0x7FFF_FFFF for i in range(len(bound))]
        return self.execute_batch(bound, [shots] * len(bound), node_spec, seeds=seeds)

    def prepare(self, node_spec: QPUNodeSpec, mode: QVMMode) -> QPUNodeSpec:
        """Return the spec to execute with in ``mode``; raise if the node cannot run in it.

        GPU providers return a CPU spec with ``emulates="GPU"`` in EMULATED mode on a machine
        without a GPU, and raise :class:`~network.errors.NodeUnavailableError` in LIVE mode.
        """
        return node_spec

    def submit(
        self,
        circuit: QuantumCircuit,
        shots: int,
        node_spec: QPUNodeSpec,
        *,
        seed: int | None = None,
        job_key: str | None = None,
    ) -> NodeJob:
        """Start a job. The default runs synchronously and returns a finished job.

        ``job_key`` is stable across retries and re-runs of the same shard; remote providers pass
        it to services that deduplicate submissions (an idempotency key or client token).
        """
        counts = self.run_execute(circuit, shots, node_spec, seed)
        return NodeJob(
            job_id=f"local-{uuid.uuid4().hex}",
            node_id=node_spec.node_id,
            status=JobStatus.COMPLETED,
            counts=counts,
        )

    def poll(self, job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        """Refresh a job's status. The default job is already finished."""
        return job

    def wait(
        self,
        job: NodeJob,
        node_spec: QPUNodeSpec,
        *,
        interval: float = 0.5,
        max_interval: float = 5.0,
        deadline: float | None = None,
    ) -> NodeJob:
        """Poll ``job`` until it is done, the interval growing 1.5x from ``interval`` up to ``max_interval``.

        Args:
            deadline: ``time.monotonic()`` value past which waiting stops (no sleep runs past it).

        Raises:
            JobTimeoutError: The job was not done by ``deadline``; it is not cancelled here (the
                executor cancels it at its provider).
        """
        delay = interval
        while not job.status.done:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    job = self.poll(job, node_spec)  # a last look: it may have finished meanwhile
                    if job.status.done:
                        return job
                    raise JobTimeoutError(
                        f"Node {node_spec.node_id!r}: job {job.job_id} was still {job.status.value} at its deadline.",
                        job_id=job.job_id,
                    )
                time.sleep(min(delay, left))
            else:
                time.sleep(delay)
            delay = min(delay * 1.5, max_interval)
            job = self.poll(job, node_spec)
        return job

    def job_limits(self, node_spec: QPUNodeSpec) -> JobLimits:
        """What one job on ``node_spec`` may hold (default: one circuit).

        Remote services that run several circuits in one job (IBM: the PUBs of one ``SamplerV2``
        job; Braket: a program set) answer more, and implement :meth:`submit_many`: the executor
        then sends a node's shards (cut subexperiments, sweep bindings) in as few jobs as these
        limits allow, fewer tasks and per-task fees, each still ledgered and re-attachable.
        """
        return JobLimits()

    def submit_many(
        self,
        circuits: Sequence[QuantumCircuit],
        shots: Sequence[int],
        node_spec: QPUNodeSpec,
        *,
        seeds: Sequence[int | None],
        job_key: str,
    ) -> NodeJob:
        """Start one job running every circuit (within :meth:`job_limits`); its
        :attr:`NodeJob.batch_counts` come in circuit order. ``job_key`` makes a repeated submission
        return the job already created.

        Raises:
            ExecutionError: The provider runs one circuit per job.
        """
        raise ExecutionError(f"Provider {self.key!r} runs one circuit per job (job_limits: 1 circuit).")

    def cancel(self, job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        """Ask the provider to cancel ``job`` and return its state afterwards.

        The cancellation is confirmed when the returned job is done (``CANCELLED``, or it finished
        first). Remote providers override this; the default knows only jobs that are born finished.

        Raises:
            ExecutionError: The provider cannot cancel jobs (the job may still be running).
        """
        if job.status.done:
            return job
        raise ExecutionError(
            f"Provider {self.key!r} cannot cancel job {job.job_id} on node {node_spec.node_id!r}; it may still run."
        )

    def job_deadline(self, node_spec: QPUNodeSpec) -> float | None:
        """Seconds a job may take on ``node_spec`` (:attr:`QPUNodeSpec.job_timeout`, else the default
        for remote providers), or ``None`` for no limit."""
        if node_spec.job_timeout is not None:
            return float(node_spec.job_timeout)
        return DEFAULT_JOB_TIMEOUT if self.remote else None

    def counts_of(self, job: NodeJob, node_spec: QPUNodeSpec) -> dict[str, int]:
        """The counts of a finished job.

        Raises:
            ExecutionError: The job failed; the message names the node, the job and the provider's error.
        """
        if job.status is JobStatus.FAILED or job.counts is None:
            raise ExecutionError(f"Node {node_spec.node_id!r}: job {job.job_id} failed: {job.error}")
        return job.counts

    def attach(self, job_id: str, node_spec: QPUNodeSpec) -> NodeJob:
        """Re-attach to a job from its id alone (remote providers).

        Raises:
            LookupError: The provider does not know the job (it is then submitted again).
        """
        raise LookupError(f"Provider {self.key!r} cannot re-attach to job {job_id!r}.")

    def is_transient(self, error: BaseException) -> bool:
        """Whether ``error`` is worth retrying. Override to classify an SDK's exceptions."""
        from network.errors import TransientExecutionError

        return isinstance(error, TransientExecutionError | ConnectionError | TimeoutError)

    def make_nodes(self, n_nodes: int, **spec_fields: Any) -> list[QPUNodeSpec]:
        """Helper for :meth:`build_nodes`: ``n_nodes`` specs named ``{key}-{i}``."""
        if isinstance(n_nodes, bool) or not isinstance(n_nodes, int) or n_nodes < 1:
            raise ClusterConfigError(f"Provider {self.key!r}: n_nodes must be a positive integer, got {n_nodes!r}.")
        return [QPUNodeSpec(node_id=f"{self.key}-{i}", provider_key=self.key, **spec_fields) for i in range(n_nodes)]

    def close(self) -> None:
        """Release what the provider holds open (Runtime batches, HTTP clients, Dask clusters).
        The default holds nothing; a closed provider may open them again on its next use."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key={self.key!r})"


_SEED_PARAMETERS: dict[type, bool] = {}
_DEFAULT_SIMULATOR: list[NodeProvider] = []
_SIMULATOR_LOCK = threading.Lock()


def _accepts_seed(cls: type) -> bool:
    """Whether ``cls.execute`` takes a ``seed`` keyword (or ``**kwargs``); read once per class."""
    known = _SEED_PARAMETERS.get(cls)
    if known is None:
        import inspect

        try:
            parameters = inspect.signature(cls.execute).parameters.values()  # type: ignore[attr-defined]
        except (TypeError, ValueError):  # a builtin or C callable: assume the documented signature
            parameters = None
        known = parameters is None or any(
            p.name == "seed" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
        )
        _SEED_PARAMETERS[cls] = known
    return known


def _default_simulator() -> NodeProvider:
    """The simulator that runs nodes of providers that only describe them (Aer on the CPU)."""
    with _SIMULATOR_LOCK:
        if not _DEFAULT_SIMULATOR:
            _DEFAULT_SIMULATOR.append(get_provider("local_cpu"))  # found like any provider, by its key
        return _DEFAULT_SIMULATOR[0]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def install_hint(extra: str | None) -> str:
    """The pip command that installs an extra, or a generic hint."""
    if extra:
        return f"Install it with: pip install 'qcos[{extra}]'"
    return "Install the provider's SDK and try again."


# ---------------------------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------------------------

_runtime_providers: dict[str, type[NodeProvider]] = {}
_lock = threading.Lock()


def register_provider(key: str, cls: type[NodeProvider]) -> None:
    """Register a provider class at runtime (notebooks, tests).

    Packaged providers should use the ``qcos.providers`` entry-point group instead.
    """
    if not (isinstance(cls, type) and issubclass(cls, NodeProvider)):
        raise TypeError(f"{cls!r} is not a NodeProvider subclass.")
    with _lock:
        _runtime_providers[key] = cls


def unregister_provider(key: str) -> None:
    """Undo :func:`register_provider`."""
    with _lock:
        _runtime_providers.pop(key, None)


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def available_providers() -> list[str]:
    """Keys of every registered provider (entry points and runtime registrations), sorted."""
    return sorted(set(_entry_points()) | set(_runtime_providers))


def provider_class(key: str) -> type[NodeProvider]:
    """Load the class registered under ``key``.

    Raises:
        UnknownProviderError: No provider has that key; the message lists the available ones.
        ProviderUnavailableError: The provider's module could not import its SDK.
    """
    if key in _runtime_providers:
        return _runtime_providers[key]
    eps = _entry_points()
    if key not in eps:
        raise UnknownProviderError(
            f"Unknown provider {key!r}. Available providers: {', '.join(available_providers()) or 'none'}."
        )
    ep = eps[key]
    try:
        loaded = ep.load()
    except ImportError as exc:
        extra = ep.extras[0] if ep.extras else None
        raise ProviderUnavailableError(f"Provider {key!r} could not be loaded ({exc}). {install_hint(extra)}") from exc
    if not (isinstance(loaded, type) and issubclass(loaded, NodeProvider)):
        raise UnknownProviderError(f"Entry point {key!r} ({ep.value}) does not point to a NodeProvider subclass.")
    return loaded


def get_provider(key: str) -> NodeProvider:
    """Instantiate the provider registered under ``key`` (see :func:`provider_class`)."""
    return provider_class(key)()


# ---------------------------------------------------------------------------------------------
# Registry and builder
# ---------------------------------------------------------------------------------------------


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort ``node-10`` after ``node-9``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


class QPURegistry:
    """The nodes of a cluster: node id -> spec and node id -> provider.

    Iteration order is the natural order of node ids, whatever order nodes were added in, so a
    plan depends only on the cluster's content.
    """

    def __init__(self, entries: Iterable[tuple[QPUNodeSpec, NodeProvider]]) -> None:
        specs: dict[str, QPUNodeSpec] = {}
        providers: dict[str, NodeProvider] = {}
        for spec, provider in entries:
            if spec.node_id in specs:
                raise ClusterConfigError(
                    f"Duplicate node id {spec.node_id!r}; give one of the groups a distinct name=."
                )
            specs[spec.node_id] = spec
            providers[spec.node_id] = provider
        order = sorted(specs, key=natural_key)
        self._specs = {nid: specs[nid] for nid in order}
        self._providers = {nid: providers[nid] for nid in order}

    @property
    def nodes(self) -> tuple[QPUNodeSpec, ...]:
        return tuple(self._specs.values())

    @property
    def node_ids(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def node(self, node_id: str) -> QPUNodeSpec:
        """The spec of ``node_id``.

        Raises:
            ClusterConfigError: No such node; the message lists the known ids.
        """
        try:
            return self._specs[node_id]
        except KeyError:
            raise ClusterConfigError(
                f"Unknown node {node_id!r}. Nodes in this cluster: {_abbrev(self.node_ids)}."
            ) from None

    def close(self) -> None:
        """Close every provider of the cluster once (see :meth:`NodeProvider.close`)."""
        seen: set[int] = set()
        for provider in self._providers.values():
            if id(provider) not in seen:
                seen.add(id(provider))
                provider.close()

    def provider(self, node_id: str) -> NodeProvider:
        """The provider that runs ``node_id``."""
        self.node(node_id)
        return self._providers[node_id]

    def filter(
        self,
        *,
        exact: bool | None = None,
        min_qubits: int | None = None,
        provider_key: str | None = None,
        device: str | None = None,
        tags: Sequence[str] = (),
        work_pool: str | None = None,
    ) -> list[QPUNodeSpec]:
        """Nodes matching every given criterion."""
        out = []
        for spec in self._specs.values():
            if exact is not None and spec.exact != exact:
                continue
            if min_qubits is not None and spec.max_qubits < min_qubits:
                continue
            if provider_key is not None and spec.provider_key != provider_key:
                continue
            if device is not None and spec.device != device:
                continue
            if any(tag not in spec.tags for tag in tags):
                continue
            if work_pool is not None and spec.work_pool != work_pool:
                continue
            out.append(spec)
        return out

    def subset(self, node_ids: Iterable[str]) -> QPURegistry:
        """A registry with only ``node_ids``."""
        return QPURegistry((self.node(nid), self._providers[nid]) for nid in node_ids)

    def capacities(self) -> str:
        """Human summary of node widths, used in error messages."""
        return describe_capacities(self._specs.values())

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": [spec.to_dict() for spec in self._specs.values()]}

    def __len__(self) -> int:
        return len(self._specs)

    def __iter__(self) -> Iterator[QPUNodeSpec]:
        return iter(self._specs.values())

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._specs

    def __repr__(self) -> str:
        return f"QPURegistry({self.capacities()})"


def describe_capacities(nodes: Iterable[QPUNodeSpec]) -> str:
    """``"8 x local_cpu (25 qubits, exact); 1 x local_gpu_mps (1000 qubits, approximate)"``."""
    groups: dict[tuple[str, int, bool], int] = {}
    for spec in nodes:
        key = (spec.provider_key, spec.max_qubits, spec.exact)
        groups[key] = groups.get(key, 0) + 1
    parts = [
        f"{count} x {key} ({width} qubits, {'exact' if exact else 'approximate'})"
        for (key, width, exact), count in groups.items()
    ]
    return "; ".join(parts) or "no nodes"


def _abbrev(items: Sequence[str], limit: int = 12) -> str:
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f", ... ({len(items)} in all)"


@dataclass
class _Group:
    provider: str | NodeProvider
    name: str | None
    kwargs: dict[str, Any]
    job_timeout: float | None = None


class ClusterBuilder:
    """Fluent builder of a :class:`QPURegistry`.

    >>> registry = (ClusterBuilder()
    ...             .add("local_cpu", n_nodes=2, max_qubits=24)
    ...             .add("local_gpu_mps", n_nodes=1, max_qubits=1000)
    ...             .build())

    ``add`` takes a provider key or a provider instance. Node ids are ``{name}-{i}`` where
    ``name`` defaults to the provider key; add the same key twice with different ``name=``.
    The result does not depend on the order of the ``add`` calls.
    """

    def __init__(self) -> None:
        self._groups: list[_Group] = []

    def add(
        self,
        provider: str | NodeProvider,
        *,
        name: str | None = None,
        job_timeout: float | None = None,
        **kwargs: Any,
    ) -> ClusterBuilder:
        """Add a group of nodes built by ``provider`` from ``kwargs``.

        ``job_timeout`` (seconds, any provider) bounds each job on these nodes, submission to
        result (:attr:`QPUNodeSpec.job_timeout`).
        """
        if not isinstance(provider, str | NodeProvider):
            raise ClusterConfigError(f"add() takes a provider key or a NodeProvider instance, got {provider!r}.")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ClusterConfigError(f"A group name must be a non-empty string, got {name!r}.")
        self._groups.append(_Group(provider, name, dict(kwargs), job_timeout))
        return self

    def build(self) -> QPURegistry:
        """Instantiate providers and their nodes.

        Raises:
            UnknownProviderError: A key names no provider.
            ProviderUnavailableError: A provider's SDK is missing.
            ClusterConfigError: Bad arguments or duplicate node ids.
        """
        entries: list[tuple[QPUNodeSpec, NodeProvider]] = []
        instances: dict[str, NodeProvider] = {}
        seen_prefixes: dict[str, int] = {}
        for index, group in enumerate(self._groups):
            if isinstance(group.provider, NodeProvider):
                provider = group.provider
            else:
                provider = instances.get(group.provider) or get_provider(group.provider)
                instances[group.provider] = provider
            try:
                specs = provider.build_nodes(**group.kwargs)
            except TypeError as exc:
                raise ClusterConfigError(
                    f"Provider {provider.key!r} rejected arguments {group.kwargs!r}: {exc}"
                ) from exc
            prefix = group.name or provider.key
            if prefix in seen_prefixes:
                raise ClusterConfigError(
                    f"Nodes named {prefix!r} are added twice (groups {seen_prefixes[prefix]} and {index}); "
                    "pass name='...' to tell them apart."
                )
            seen_prefixes[prefix] = index
            if group.name is not None:
                specs = [replace(s, node_id=f"{group.name}-{i}") for i, s in enumerate(specs)]
            if group.job_timeout is not None:
                specs = [replace(s, job_timeout=group.job_timeout) for s in specs]
            entries.extend((spec, provider) for spec in specs)
        return QPURegistry(entries)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> ClusterBuilder:
        """Build from the cluster-file structure.

        Accepted shapes::

            nodes:                       # or a bare list of the same items
              - provider: local_cpu
                n_nodes: 8
                max_qubits: 25
              - provider: local_gpu_mps
                name: mps
                max_qubits: 1000
        """
        items: Any
        if isinstance(data, Mapping):
            if "nodes" not in data:
                raise ClusterConfigError(f"A cluster definition needs a 'nodes' list; got keys {sorted(data)!r}.")
            items = data["nodes"]
        else:
            items = data
        if not isinstance(items, Sequence) or isinstance(items, str | bytes) or not items:
            raise ClusterConfigError(f"'nodes' must be a non-empty list, got {items!r}.")
        builder = cls()
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or "provider" not in item:
                raise ClusterConfigError(f"Cluster entry {i} must be a mapping with a 'provider' key, got {item!r}.")
            kwargs = dict(item)
            key = kwargs.pop("provider")
            name = kwargs.pop("name", None)
            builder.add(str(key), name=name, **kwargs)
        return builder

    @classmethod
    def from_yaml(cls, source: str | Path) -> ClusterBuilder:
        """Build from a YAML file path (or YAML text containing a newline)."""
        import yaml

        if isinstance(source, Path) or "\n" not in str(source):
            path = Path(source)
            if not path.is_file():
                raise ClusterConfigError(f"Cluster file {str(path)!r} does not exist.")
            text = path.read_text(encoding="utf-8")
        else:
            text = str(source)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ClusterConfigError(f"Cluster file is not valid YAML: {exc}") from exc
        if data is None:
            raise ClusterConfigError("Cluster file is empty.")
        return cls.from_dict(data)
