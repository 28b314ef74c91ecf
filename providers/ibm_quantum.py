"""IBM Quantum through Qiskit Runtime: the ``ibm_quantum`` provider.

Each node is one IBM Quantum backend (``backend="ibm_brisbane"``). Circuits are transpiled to the
backend's instruction set (``generate_preset_pass_manager(backend=..., optimization_level=...)``) and
sampled with Qiskit Runtime's ``SamplerV2``; shards of one backend share a ``Batch`` (or run as
separate jobs with ``execution_mode="job"``). :meth:`IBMQuantumProvider.estimate` runs ``EstimatorV2``
on a node for expectation values.

* ``EMULATED``: the backend's fake from ``qiskit_ibm_runtime.fake_provider`` (``ibm_brisbane`` ->
  ``FakeBrisbane``) in Qiskit Runtime's local testing mode: the same ISA transpilation, run on Aer
  with the device's noise model. Nothing leaves the machine; ``emulates`` names the fake.
* ``LIVE``: ``QiskitRuntimeService`` from the ``IBMQuantumCredentials`` block named by the node's
  ``credentials`` option, else the SDK's own account lookup (``QISKIT_IBM_TOKEN`` /
  ``QISKIT_IBM_INSTANCE`` variables, then the account saved with ``save_account``). Runtime job ids
  go to the executor's ledger; a re-run re-attaches with ``service.job(job_id)``. Jobs are tagged
  ``qcos-job:{job_key}``, and a submission first looks for a live job with its tag on the backend, so
  a retry after a lost response re-attaches instead of paying twice. Nothing falls back to a simulator.
* ``DRY_RUN``: nothing is contacted.

IBM bills QPU seconds: nodes get their per-second price from :mod:`providers.prices` by processor
family (``ibm_eagle``, ``ibm_heron``), read from the fake's configuration; backends without a local
fake, or of another family, cost 0 unless the cluster file prices them. In LIVE mode a finished job's
billed QPU seconds (Runtime's ``job.usage()``) at that price go to the shard result (``cost_usd``,
``cost_source``, ``qpu_seconds``).

Tests and embedders reach a different service with ``IBMQuantumProvider(service_factory=...)``: the
factory receives the node's ``credentials`` option and returns a ``QiskitRuntimeService``; the default
is :func:`default_service`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from network.errors import (
    ClusterConfigError,
    ExecutionError,
    JobTimeoutError,
    NodeUnavailableError,
    ProviderResultError,
    ProviderUnavailableError,
    QVMError,
    TransientExecutionError,
)
from network.node_providers import JobLimits, JobStatus, NodeJob, NodeProvider, QPUNodeSpec, QVMMode
from providers.prices import node_prices

if TYPE_CHECKING:
    from qiskit import QuantumCircuit

__all__ = ["IBMQuantumProvider", "ServiceFactory", "default_service", "fake_backend_names", "join_registers"]

log = logging.getLogger(__name__)

#: Builds a ``QiskitRuntimeService`` from a node's ``credentials`` option (a block name, or ``None``).
ServiceFactory = Callable[[str | None], Any]

_EXECUTION_MODES = ("batch", "job")
#: Node options a cluster file may set (through ``options=`` or the keyword of the same name).
_OPTIONS = frozenset(
    {
        "backend",
        "emulator",
        "optimization_level",
        "execution_mode",
        "credentials",
        "max_execution_time",
        "seed_transpiler",
        "circuits_per_job",
    }
)
#: Circuits (PUBs) per Sampler job when a node's shards share jobs (option ``circuits_per_job``).
_CIRCUITS_PER_JOB = 100
#: IBM's job limits: a Sampler job runs at most 10 million executions (circuits x shots).
_MAX_EXECUTIONS = 10_000_000
#: A register the Sampler needs on a circuit that measures nothing (its one bit is never written).
_UNMEASURED = "qcos_unmeasured"
#: Runtime job states, by the name the SDK reports, as QCOS job states (final ones are handled apart).
_RUNNING = {"QUEUED": JobStatus.QUEUED, "INITIALIZING": JobStatus.QUEUED, "VALIDATING": JobStatus.QUEUED}
_FINAL = frozenset({"DONE", "ERROR", "CANCELLED"})
_TAG = "qcos-job:"
#: ``(register name, clbit index of each register bit)`` for each classical register of a circuit.
_Layout = tuple[tuple[str, tuple[int, ...]], ...]


# ---------------------------------------------------------------------------------------------
# Fake backends (EMULATED mode and the static description of known devices)
# ---------------------------------------------------------------------------------------------


@functools.cache
def _fake_classes() -> dict[str, str]:
    """Device name -> class name of the SDK's fake backends (``"brisbane"`` -> ``"FakeBrisbane"``)."""
    from qiskit_ibm_runtime import fake_provider
    from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2

    found = {}
    for name in dir(fake_provider):
        cls = getattr(fake_provider, name)
        if name.startswith("Fake") and isinstance(cls, type) and issubclass(cls, FakeBackendV2):
            found[name.removeprefix("Fake").removesuffix("V2").lower()] = name
    return found


def _device_name(backend: str) -> str:
    """``"ibm_brisbane"``, ``"fake_brisbane"``, ``"FakeBrisbane"`` and ``"brisbane"`` -> ``"brisbane"``."""
    text = backend.strip().lower()
    for prefix in ("ibm_", "ibmq_", "fake_", "fake"):
        if text.startswith(prefix):
            return text.removeprefix(prefix).removesuffix("v2")
    return text


def fake_backend_names() -> list[str]:
    """Backend names that have a local fake (EMULATED mode), e.g. ``ibm_brisbane``."""
    return sorted(f"ibm_{name}" for name in _fake_classes())


@functools.cache
def _fake_backend(device: str) -> Any:
    """The SDK's fake of ``device`` (one instance per device: it caches its noisy simulator)."""
    from qiskit_ibm_runtime import fake_provider

    return getattr(fake_provider, _fake_classes()[device])()


def _known_fake(backend: str) -> Any | None:
    device = _device_name(backend)
    return _fake_backend(device) if device in _fake_classes() else None


def _family(fake: Any) -> str | None:
    """Processor family (``"Eagle"``, ``"Heron"``...) from a fake's configuration."""
    processor = getattr(fake.configuration(), "processor_type", None) or {}
    family = processor.get("family") if isinstance(processor, Mapping) else None
    return str(family) if family else None


# ---------------------------------------------------------------------------------------------
# Services and targets
# ---------------------------------------------------------------------------------------------


def default_service(credentials: str | None) -> Any:
    """The ``QiskitRuntimeService`` a LIVE node uses.

    Args:
        credentials: Name of a saved ``IBMQuantumCredentials`` block, or ``None`` for the SDK's own
            lookup: the ``QISKIT_IBM_TOKEN`` / ``QISKIT_IBM_INSTANCE`` / ``QISKIT_IBM_CHANNEL``
            variables, then the account saved with ``QiskitRuntimeService.save_account``.

    Raises:
        BlockNotFoundError: No such block.
        MissingSecretError: The block has no token.
        AccountNotFoundError: No block named and no account in the environment or on disk.
    """
    if credentials:
        from blocks import IBMQuantumCredentials, load_block

        return load_block(IBMQuantumCredentials, credentials).get_service()
    from qiskit_ibm_runtime import QiskitRuntimeService

    return QiskitRuntimeService()


@dataclass
class _Target:
    """A resolved backend: the fake (EMULATED) or the service's backend (LIVE), and its pass manager."""

    name: str
    backend: Any
    service: Any  # None for a fake (EMULATED)
    pass_manager: Any
    execution_mode: str
    secrets: tuple[str, ...] = ()
    lock: threading.Lock = field(default_factory=threading.Lock)
    batch: Any | None = None

    @property
    def live(self) -> bool:
        return self.service is not None


@dataclass
class _Tracked:
    """A submitted Runtime job and what is needed to turn its result into counts."""

    job: Any
    target: _Target
    layouts: tuple[_Layout, ...]
    widths: tuple[int, ...]
    shots: tuple[int | None, ...]


class IBMQuantumProvider(NodeProvider):
    """IBM Quantum backends through Qiskit Runtime (``SamplerV2``, batches, ISA transpilation).

    Args:
        service_factory: Builds the ``QiskitRuntimeService`` of LIVE nodes from their ``credentials``
            option (default :func:`default_service`). One service is built per distinct option and
            reused.
    """

    key = "ibm_quantum"
    description = "IBM Quantum via Qiskit Runtime SamplerV2 (EMULATED: fake backends with their noise models)"
    requires = ("qiskit_ibm_runtime",)
    extra = "ibm"
    remote = True

    def __init__(self, *, service_factory: ServiceFactory | None = None) -> None:
        super().__init__()
        self._service_factory: ServiceFactory = service_factory or default_service
        self._services: dict[str | None, Any] = {}
        self._targets: dict[tuple[Any, ...], _Target] = {}
        self._jobs: dict[str, _Tracked] = {}
        self._lock = threading.RLock()

    # -- cluster -----------------------------------------------------------------------------

    def build_nodes(
        self,
        n_nodes: int = 1,
        backend: str | None = None,
        max_qubits: int | None = None,
        *,
        target: str | None = None,
        emulator: str | None = None,
        optimization_level: int | None = None,
        execution_mode: str | None = None,
        credentials: str | None = None,
        max_execution_time: int | None = None,
        cost_per_shot: float | None = None,
        cost_per_task: float | None = None,
        cost_per_second: float | None = None,
        work_pool: str | None = None,
        tags: Sequence[str] = (),
        options: Mapping[str, Any] | None = None,
        **unknown: Any,
    ) -> list[QPUNodeSpec]:
        """Build ``n_nodes`` nodes on one IBM backend. Contacts nothing.

        Args:
            n_nodes: How many nodes (shards run on them in parallel; they share one batch).
            backend: IBM backend name, e.g. ``ibm_brisbane`` (``target`` is accepted as an alias).
            max_qubits: Widest shard (default: the backend's qubit count, known for backends with a
                local fake; required for others).
            target: Alias of ``backend``.
            emulator: Fake backend to run EMULATED mode on (default: the backend's own fake).
            optimization_level: Preset pass manager level, 0 to 3 (default 1).
            execution_mode: ``batch`` (default: a Runtime batch per backend) or ``job``.
            credentials: Name of the ``IBMQuantumCredentials`` block LIVE mode uses (default: the
                SDK's environment variables or saved account).
            max_execution_time: Runtime's per-job limit in seconds (caps QPU time, and so cost).
            cost_per_shot: Overrides the price table.
            cost_per_task: Overrides the price table.
            cost_per_second: Overrides the price table (IBM bills QPU seconds).
            work_pool: Prefect work pool that runs these nodes' shards.
            tags: Labels for filtering.
            options: The same node options as a mapping (``backend``, ``emulator``,
                ``optimization_level``, ``execution_mode``, ``credentials``, ``max_execution_time``,
                ``seed_transpiler``, ``circuits_per_job``: PUBs per Sampler job when a node's cut
                subexperiments or sweep bindings share jobs, default 100; 1 sends one job each).

        Raises:
            ClusterConfigError: Unknown arguments, a missing backend, or an unknown width.
        """
        given = dict(options or {})
        given.update({k: unknown.pop(k) for k in list(unknown) if k in _OPTIONS})  # options given as keywords
        if unknown:
            # never echo the values: a misplaced token must not end up in an error message
            hint = (
                " Never put an IBM Quantum token in a cluster file: save it in an IBMQuantumCredentials "
                "block and name the block with credentials=..."
                if any("token" in k.lower() for k in unknown)
                else ""
            )
            raise ClusterConfigError(
                f"Provider {self.key!r}: unknown argument(s) {', '.join(sorted(unknown))}. Known node options: "
                f"{', '.join(sorted(_OPTIONS))}.{hint}"
            )
        bad = sorted(set(given) - _OPTIONS)
        if bad:
            raise ClusterConfigError(
                f"Provider {self.key!r}: unknown option(s) {', '.join(bad)}. Known: {', '.join(sorted(_OPTIONS))}."
            )
        if backend is not None and target is not None and backend != target:
            raise ClusterConfigError(f"Provider {self.key!r}: backend={backend!r} and target={target!r} disagree.")
        explicit = {
            "backend": backend or target,
            "emulator": emulator,
            "optimization_level": optimization_level,
            "execution_mode": execution_mode,
            "credentials": credentials,
            "max_execution_time": max_execution_time,
        }
        opts = {**given, **{k: v for k, v in explicit.items() if v is not None}}
        opts.setdefault("optimization_level", 1)
        opts.setdefault("execution_mode", "batch")
        self._check_options(opts)
        name = opts["backend"]
        fake = _known_fake(name)
        if max_qubits is None:
            if fake is None:
                raise ClusterConfigError(
                    f"Provider {self.key!r}: no local description of backend {name!r}, so its width is unknown; "
                    f"give max_qubits=... (and emulator='ibm_...' to run it in EMULATED mode). "
                    f"Backends known locally: {', '.join(fake_backend_names())}."
                )
            max_qubits = int(fake.num_qubits)
        family = _family(fake) if fake is not None else None
        prices = node_prices(
            self.key,
            f"ibm_{family.lower()}" if family else None,
            cost_per_task=cost_per_task,
            cost_per_shot=cost_per_shot,
            cost_per_second=cost_per_second,
        )
        return self.make_nodes(
            n_nodes,
            max_qubits=max_qubits,
            exact=True,  # hardware noise is not an approximation of the method
            method=f"ibm_{family.lower()}" if family else "ibm_qpu",
            device="QPU",
            **prices,
            work_pool=work_pool,
            tags=tuple(tags),
            options=opts,
        )

    def _check_options(self, opts: Mapping[str, Any]) -> None:
        def fail(problem: str) -> ClusterConfigError:
            return ClusterConfigError(f"Provider {self.key!r}: {problem}")

        name = opts.get("backend")
        if not isinstance(name, str) or not name.strip():
            raise fail(
                "needs backend='ibm_...', the IBM backend its nodes run on. "
                f"Backends known locally (EMULATED mode): {', '.join(fake_backend_names())}."
            )
        level = opts["optimization_level"]
        if isinstance(level, bool) or level not in (0, 1, 2, 3):
            raise fail(f"optimization_level must be 0, 1, 2 or 3, got {level!r}.")
        if opts["execution_mode"] not in _EXECUTION_MODES:
            raise fail(f"execution_mode must be one of {', '.join(_EXECUTION_MODES)}, got {opts['execution_mode']!r}.")
        limit = opts.get("max_execution_time")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise fail(f"max_execution_time must be a positive number of seconds, got {limit!r}.")
        for key in ("credentials", "emulator"):
            value = opts.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise fail(f"{key} must be a non-empty name, got {value!r}.")
        seed = opts.get("seed_transpiler")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise fail(f"seed_transpiler must be an integer, got {seed!r}.")
        per_job = opts.get("circuits_per_job")
        if per_job is not None and (isinstance(per_job, bool) or not isinstance(per_job, int) or per_job < 1):
            raise fail(f"circuits_per_job must be a positive integer, got {per_job!r}.")

    # -- modes -------------------------------------------------------------------------------

    def prepare(self, node_spec: QPUNodeSpec, mode: QVMMode) -> QPUNodeSpec:
        """EMULATED: the spec that runs on the backend's fake. LIVE: check credentials and backend.

        Raises:
            NodeUnavailableError: EMULATED without a fake for the backend (the message lists the
                known ones); LIVE without usable credentials or without the backend. LIVE never
                falls back to a simulator.
        """
        mode = QVMMode.parse(mode)
        if mode is QVMMode.DRY_RUN:
            return node_spec
        if mode is QVMMode.EMULATED:
            fake = self._emulator(node_spec)
            return replace(
                node_spec,
                emulates=f"{fake.name} (noise model of {node_spec.options['backend']})",
                max_qubits=min(node_spec.max_qubits, int(fake.num_qubits)),
            )
        target = self._live_target(node_spec)
        return replace(node_spec, max_qubits=min(node_spec.max_qubits, int(target.backend.num_qubits)))

    def _emulator(self, node_spec: QPUNodeSpec) -> Any:
        name = node_spec.options.get("emulator") or node_spec.options["backend"]
        fake = _known_fake(name)
        if fake is None:
            raise NodeUnavailableError(
                f"Node {node_spec.node_id!r}: no fake backend for {name!r} to emulate it with. Set emulator= to one "
                f"of: {', '.join(fake_backend_names())}."
            )
        return fake

    def _service(self, node_spec: QPUNodeSpec) -> Any:
        credentials = node_spec.options.get("credentials")
        with self._lock:
            if credentials in self._services:
                return self._services[credentials]
        try:
            service = self._service_factory(credentials)
        except ProviderUnavailableError:
            raise
        except Exception as exc:
            raise NodeUnavailableError(_credentials_problem(node_spec, credentials, exc)) from exc
        with self._lock:
            return self._services.setdefault(credentials, service)

    def _live_target(self, node_spec: QPUNodeSpec) -> _Target:
        name = node_spec.options["backend"]
        key = ("live", node_spec.options.get("credentials"), name, *self._transpile_key(node_spec))
        with self._lock:
            if key in self._targets:
                return self._targets[key]
        service = self._service(node_spec)
        secrets = _secrets_of(service)
        try:
            backend = service.backend(name)
        except Exception as exc:
            raise NodeUnavailableError(
                _scrub(
                    f"Node {node_spec.node_id!r}: IBM Quantum backend {name!r} is not available to this account "
                    f"({type(exc).__name__}: {exc}). Nothing ran; LIVE mode never falls back to a simulator.",
                    secrets,
                )
            ) from exc
        target = _Target(name, backend, service, self._pass_manager(backend, node_spec), _mode(node_spec), secrets)
        with self._lock:
            return self._targets.setdefault(key, target)

    def _emulated_target(self, node_spec: QPUNodeSpec) -> _Target:
        fake = self._emulator(node_spec)
        key = ("emulated", fake.name, *self._transpile_key(node_spec))
        with self._lock:
            target = self._targets.get(key)
            if target is None:
                target = _Target(fake.name, fake, None, self._pass_manager(fake, node_spec), _mode(node_spec))
                self._targets[key] = target
            return target

    def _target(self, node_spec: QPUNodeSpec) -> _Target:
        """The backend a prepared spec runs on: its fake when it is emulated, else the real one."""
        return self._emulated_target(node_spec) if node_spec.emulates else self._live_target(node_spec)

    @staticmethod
    def _transpile_key(node_spec: QPUNodeSpec) -> tuple[Any, ...]:
        opts = node_spec.options
        return opts["optimization_level"], opts.get("seed_transpiler", 0), _mode(node_spec)

    @staticmethod
    def _pass_manager(backend: Any, node_spec: QPUNodeSpec) -> Any:
        from qiskit.transpiler import generate_preset_pass_manager

        return generate_preset_pass_manager(
            backend=backend,
            optimization_level=node_spec.options["optimization_level"],
            seed_transpiler=node_spec.options.get("seed_transpiler", 0),
        )

    # -- running -----------------------------------------------------------------------------

    def submit(
        self,
        circuit: QuantumCircuit,
        shots: int,
        node_spec: QPUNodeSpec,
        *,
        seed: int | None = None,
        job_key: str | None = None,
    ) -> NodeJob:
        """Start a ``SamplerV2`` job (in the backend's batch) and return its Runtime job id.

        In LIVE mode a job of this backend already tagged with ``job_key`` (and not failed) is
        re-attached instead of submitting again.
        """
        if circuit.num_clbits == 0:  # nothing is measured: the only outcome is the empty string
            return NodeJob(f"unmeasured-{uuid.uuid4().hex}", node_spec.node_id, JobStatus.COMPLETED, {"": shots})
        return self._submit([circuit], [shots], node_spec, seed, job_key)

    def job_limits(self, node_spec: QPUNodeSpec) -> JobLimits:
        """Up to ``circuits_per_job`` (default 100) PUBs of equal shots per Sampler job, within IBM's
        10 million executions (circuits x shots) per job. (qiskit-ibm-runtime 0.48 deprecated PUBs
        of different shots in one job.)"""
        return JobLimits(
            circuits=int(node_spec.options.get("circuits_per_job", _CIRCUITS_PER_JOB)),
            total_shots=_MAX_EXECUTIONS,
            same_shots=True,
        )

    def submit_many(
        self,
        circuits: Sequence[QuantumCircuit],
        shots: Sequence[int],
        node_spec: QPUNodeSpec,
        *,
        seeds: Sequence[int | None],
        job_key: str,
    ) -> NodeJob:
        """One ``SamplerV2`` job with a PUB per circuit (and its own shots); its counts come back
        as :attr:`NodeJob.batch_counts`. EMULATED jobs are seeded with the first circuit's seed.

        In LIVE mode a job of this backend already tagged with ``job_key`` is re-attached instead.
        """
        return self._submit(circuits, shots, node_spec, seeds[0] if seeds else None, job_key)

    def _submit(
        self,
        circuits: Sequence[QuantumCircuit],
        shots: Sequence[int],
        node_spec: QPUNodeSpec,
        seed: int | None,
        job_key: str | None,
    ) -> NodeJob:
        target = self._target(node_spec)
        with _translated(self, node_spec, "submission", target.secrets):
            prepared = [_sampler_ready(c) for c in circuits]
            layouts, widths = tuple(_layout_of(c) for c in prepared), tuple(_width_of(c) for c in prepared)
            if job_key and target.live:
                existing = self._tagged_job(target, job_key)
                if existing is not None:
                    job_id = existing.job_id()
                    log.info("node %s: job %s already carries key %s; re-attaching", node_spec.node_id, job_id, job_key)
                    self._track(existing, _Tracked(existing, target, layouts, widths, tuple(shots)))
                    return NodeJob(job_id, node_spec.node_id, JobStatus.QUEUED)
            isa = [self._transpile(target, c) for c in prepared]
            job = self._run_sampler(target, isa, list(shots), node_spec, seed, job_key)
            self._track(job, _Tracked(job, target, layouts, widths, tuple(shots)))
            if len(circuits) > 1:
                log.info("node %s: one Sampler job %s of %d PUBs", node_spec.node_id, job.job_id(), len(circuits))
            return NodeJob(job.job_id(), node_spec.node_id, JobStatus.QUEUED)

    def poll(self, job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        """Refresh the job from Runtime; once done, its counts."""
        if job.status.done:
            return job
        tracked = self._jobs.get(job.job_id) or self._reattach(job.job_id, node_spec)
        with _translated(self, node_spec, f"job {job.job_id}", tracked.target.secrets):
            status = _status_name(tracked.job.status())
            if status not in _FINAL:
                return NodeJob(job.job_id, node_spec.node_id, _RUNNING.get(status, JobStatus.RUNNING))
            if status == "CANCELLED":
                self._jobs.pop(job.job_id, None)
                return NodeJob(job.job_id, node_spec.node_id, JobStatus.CANCELLED, error="cancelled on IBM Quantum")
            try:
                every = self._counts(tracked, tracked.job.result(), node_spec)
            except QVMError:
                raise
            except Exception as exc:
                if self.is_transient(exc):
                    raise
                self._jobs.pop(job.job_id, None)
                message = _scrub(f"{type(exc).__name__}: {exc}", tracked.target.secrets)
                return NodeJob(job.job_id, node_spec.node_id, JobStatus.FAILED, error=f"{status}: {message}")
            self._jobs.pop(job.job_id, None)
            extra = _usage_cost(tracked, node_spec) if tracked.target.live else {}
            return NodeJob(
                job.job_id,
                node_spec.node_id,
                JobStatus.COMPLETED,
                counts=every[0] if len(every) == 1 else None,
                extra=extra,
                batch_counts=every,
            )

    def cancel(self, job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        """Cancel the Runtime job (``job.cancel()``) and return its state afterwards: ``CANCELLED``
        once Runtime confirms it, its result when it finished first, else still running."""
        if job.status.done:
            return job
        tracked = self._jobs.get(job.job_id) or self._reattach(job.job_id, node_spec)
        with _translated(self, node_spec, f"cancelling job {job.job_id}", tracked.target.secrets):
            if _status_name(tracked.job.status()) not in _FINAL:
                tracked.job.cancel()
            status = _status_name(tracked.job.status())
        if status == "CANCELLED":
            self._jobs.pop(job.job_id, None)
            log.info("node %s: job %s cancelled", node_spec.node_id, job.job_id)
            return NodeJob(job.job_id, node_spec.node_id, JobStatus.CANCELLED, error="cancelled")
        if status in _FINAL:
            return self.poll(job, node_spec)
        return NodeJob(job.job_id, node_spec.node_id, _RUNNING.get(status, JobStatus.RUNNING))

    def attach(self, job_id: str, node_spec: QPUNodeSpec) -> NodeJob:
        """Re-attach to a Runtime job from its id alone (``service.job(job_id)``).

        The clbit layout comes from the job's own inputs, so a fresh process can read its counts.

        Raises:
            LookupError: Runtime does not know the job, or it was a local (EMULATED) job of
                another process; the executor then submits again.
        """
        if job_id not in self._jobs:
            self._reattach(job_id, node_spec)
        return self.poll(NodeJob(job_id, node_spec.node_id, JobStatus.QUEUED), node_spec)

    def _reattach(self, job_id: str, node_spec: QPUNodeSpec) -> _Tracked:
        if node_spec.emulates:
            raise _UnknownJob(f"Node {node_spec.node_id!r}: local job {job_id!r} does not outlive its process.")
        from qiskit_ibm_runtime.exceptions import RuntimeJobNotFound

        target = self._live_target(node_spec)

        with _translated(self, node_spec, f"re-attaching to job {job_id}", target.secrets):
            try:
                job = target.service.job(job_id)
            except RuntimeJobNotFound as exc:
                raise _UnknownJob(f"IBM Quantum has no job {job_id!r}: {exc}") from exc
            pubs = _decode_pubs(job.inputs)
            circuits = [pub[0] if isinstance(pub, list | tuple) else pub for pub in pubs]
            shots = tuple(pub[2] if isinstance(pub, list | tuple) and len(pub) > 2 else None for pub in pubs)
            tracked = _Tracked(
                job, target, tuple(_layout_of(c) for c in circuits), tuple(_width_of(c) for c in circuits), shots
            )
        self._track(job, tracked)
        return tracked

    def execute(
        self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None
    ) -> dict[str, int]:
        """Run one circuit and wait for its counts."""
        return self.execute_batch([circuit], [shots], node_spec, seeds=[seed])[0]

    def execute_batch(
        self,
        circuits: Sequence[QuantumCircuit],
        shots: Sequence[int],
        node_spec: QPUNodeSpec,
        *,
        seeds: Sequence[int | None],
    ) -> list[dict[str, int]]:
        """Run several circuits as the PUBs of one ``SamplerV2`` job and wait for their counts, at
        most the node's job deadline (:meth:`job_deadline`).

        The job is seeded (EMULATED) with the first circuit's seed.

        Raises:
            JobTimeoutError: The job did not finish by its deadline (it is cancelled first).
            ExecutionError: The job failed or was cancelled.
        """
        out: list[dict[str, int]] = [{"": n} for n in shots]
        measured = [i for i, c in enumerate(circuits) if c.num_clbits]
        if not measured:
            return out
        job = self._submit([circuits[i] for i in measured], [shots[i] for i in measured], node_spec, seeds[0], None)
        timeout = self.job_deadline(node_spec)
        try:
            job = self.wait(job, node_spec, deadline=None if timeout is None else time.monotonic() + timeout)
        except JobTimeoutError:
            self.cancel(job, node_spec)
            raise
        if job.status is not JobStatus.COMPLETED or job.batch_counts is None:
            raise ExecutionError(
                f"Node {node_spec.node_id!r}: job {job.job_id} ended {job.status.value}: {job.error or 'no counts'}"
            )
        for i, counts in zip(measured, job.batch_counts, strict=True):
            out[i] = counts
        return out

    def estimate(
        self,
        circuit: QuantumCircuit,
        observables: Sequence[Any],
        node_spec: QPUNodeSpec,
        *,
        precision: float | None = None,
        seed: int | None = None,
    ) -> tuple[list[float], list[float]]:
        """Expectation values of ``observables`` on ``circuit`` with Qiskit Runtime's ``EstimatorV2``.

        The circuit's final measurements are removed, it is transpiled to the backend's ISA and
        each observable is mapped through the transpiled layout. Blocks until the job finishes.

        Args:
            circuit: The state preparation.
            observables: Pauli strings or ``SparsePauliOp`` values over the circuit's qubits.
            node_spec: The prepared node (EMULATED specs run on the fake).
            precision: Target standard error (Runtime's default when ``None``).
            seed: Simulator seed in EMULATED mode.

        Returns:
            The values and their standard errors, one per observable.
        """
        from qiskit.quantum_info import SparsePauliOp
        from qiskit_ibm_runtime import EstimatorV2

        target = self._target(node_spec)
        with _translated(self, node_spec, "estimator job", target.secrets):
            isa = self._transpile(target, circuit.remove_final_measurements(inplace=False))
            mapped = [SparsePauliOp(o).apply_layout(isa.layout) for o in observables]

            def run(mode: Any) -> Any:
                estimator = EstimatorV2(mode=mode)
                self._set_common_options(estimator, target, node_spec, seed, None)
                return estimator.run([(isa, mapped)], precision=precision)

            data = self._in_mode(target, run).result()[0].data
            return [float(v) for v in np.ravel(data.evs)], [float(s) for s in np.ravel(data.stds)]

    def is_transient(self, error: BaseException) -> bool:
        """Timeouts, lost connections, throttling and 5xx are transient; auth, input and 4xx are not.

        The SDK re-raises HTTP errors of a submission as ``IBMRuntimeError`` from ``None``; the HTTP
        error is then found on the exception's context.
        """
        from qiskit_ibm_runtime.api.exceptions import RequestsApiError
        from qiskit_ibm_runtime.exceptions import (
            IBMAccountError,
            IBMInputValueError,
            IBMNotAuthorizedError,
            RuntimeJobTimeoutError,
        )
        from requests.exceptions import ConnectionError as RequestsConnectionError
        from requests.exceptions import Timeout

        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            if isinstance(
                current, TransientExecutionError | RuntimeJobTimeoutError | RequestsConnectionError | Timeout
            ):
                return True
            if isinstance(current, ConnectionError | TimeoutError):
                return True
            if isinstance(current, IBMNotAuthorizedError | IBMInputValueError | IBMAccountError | ExecutionError):
                return False
            if isinstance(current, RequestsApiError):
                code = current.status_code
                return code == -1 or code in (408, 429) or code >= 500
            current = current.__cause__ or current.__context__
        return False

    def close(self) -> None:
        """Close the open Runtime batches (their queued jobs still run). Later jobs open new ones."""
        with self._lock:
            targets = list(self._targets.values())
        for target in targets:
            with target.lock:
                batch, target.batch = target.batch, None
            if batch is None:
                continue
            try:
                batch.close()
            except Exception as exc:  # the batch closes itself when its max_time ends
                log.warning("could not close the batch on %s: %s", target.name, _scrub(str(exc), target.secrets))

    # -- internals ---------------------------------------------------------------------------

    def _track(self, job: Any, tracked: _Tracked) -> None:
        with self._lock:
            self._jobs[job.job_id()] = tracked

    def _transpile(self, target: _Target, circuit: QuantumCircuit) -> QuantumCircuit:
        with target.lock:  # one pass manager per backend; runs are serialized rather than shared
            return target.pass_manager.run(circuit)

    def _tagged_job(self, target: _Target, job_key: str) -> Any | None:
        """The newest job of this backend tagged with ``job_key`` that has not failed, if any."""
        for job in target.service.jobs(job_tags=[_TAG + job_key], backend_name=target.name, limit=5):
            if _status_name(job.status()) not in ("ERROR", "CANCELLED"):
                return job
        return None

    def _run_sampler(
        self,
        target: _Target,
        circuits: Sequence[QuantumCircuit],
        shots: Sequence[int],
        node_spec: QPUNodeSpec,
        seed: int | None,
        job_key: str | None,
    ) -> Any:
        from qiskit_ibm_runtime import SamplerV2

        pubs = [(c, None, n) for c, n in zip(circuits, shots, strict=True)]

        def run(mode: Any) -> Any:
            sampler = SamplerV2(mode=mode)
            self._set_common_options(sampler, target, node_spec, seed, job_key)
            return sampler.run(pubs)

        return self._in_mode(target, run)

    @staticmethod
    def _set_common_options(
        primitive: Any, target: _Target, node_spec: QPUNodeSpec, seed: int | None, job_key: str | None
    ) -> None:
        options = primitive.options
        if not target.live and seed is not None:
            options.simulator.seed_simulator = seed
        tags = ["qcos", f"qcos-node:{node_spec.node_id}"]
        if job_key:
            tags.append(_TAG + job_key)
        options.environment.job_tags = tags
        limit = node_spec.options.get("max_execution_time")
        if limit is not None:
            options.max_execution_time = limit

    def _in_mode(self, target: _Target, run: Callable[[Any], Any]) -> Any:
        """Call ``run`` with the target's batch (opened on first use), or the backend in job mode.

        A batch the service has closed (``max_time`` elapsed) is replaced once.
        """
        if target.execution_mode != "batch":
            return run(target.backend)
        batch = self._batch(target)
        try:
            return run(batch)
        except Exception:
            if _accepts_jobs(batch):
                raise
            with target.lock:
                if target.batch is batch:
                    target.batch = None
            return run(self._batch(target))

    @staticmethod
    def _batch(target: _Target) -> Any:
        from qiskit_ibm_runtime import Batch

        with target.lock:
            if target.batch is None:
                target.batch = Batch(backend=target.backend)
            return target.batch

    def _counts(self, tracked: _Tracked, result: Any, node_spec: QPUNodeSpec) -> list[dict[str, int]]:
        if result is None:
            raise ProviderResultError(f"Node {node_spec.node_id!r} returned an empty result.")
        if len(result) != len(tracked.layouts):
            raise ProviderResultError(
                f"Node {node_spec.node_id!r} returned {len(result)} results for a job of "
                f"{len(tracked.layouts)} circuits."
            )
        return [
            join_registers(pub.data, layout, width=width, shots=shots, node_id=node_spec.node_id)
            for pub, layout, width, shots in zip(result, tracked.layouts, tracked.widths, tracked.shots, strict=True)
        ]


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _usage_cost(tracked: _Tracked, node_spec: QPUNodeSpec) -> dict[str, Any]:
    """The finished job's QPU seconds as Runtime bills them (``job.usage()``), priced at the node's
    per-second rate; nothing when Runtime has no usage for it (yet)."""
    try:
        seconds = float(tracked.job.usage() or 0.0)
    except Exception as exc:  # the usage is a report: its absence never fails a shard
        log.debug("node %s: no Runtime usage: %s", node_spec.node_id, _scrub(str(exc), tracked.target.secrets))
        return {}
    if seconds <= 0:
        return {}
    billing = node_spec.billing
    if billing is not None:
        rate = f"{billing.source}, {billing.as_of}"
    else:
        rate = f"cost_per_second {node_spec.cost_per_second:g}"
    return {
        "cost_usd": node_spec.price(0, seconds),
        "cost_source": f"IBM Runtime job.usage(): {seconds:g} QPU s, priced by {rate}",
        "qpu_seconds": seconds,
    }


def _mode(node_spec: QPUNodeSpec) -> str:
    return str(node_spec.options.get("execution_mode", "batch"))


def _status_name(status: Any) -> str:
    """``"DONE"`` from the SDK's string states and from Qiskit's ``JobStatus.DONE`` (local jobs)."""
    return str(getattr(status, "name", status)).upper()


def _accepts_jobs(batch: Any) -> bool:
    """Whether a batch still takes jobs, as far as the service says (True when it cannot tell)."""
    try:
        details = batch.details()
    except Exception:
        return True
    if not details:
        return True
    return bool(details.get("accepting_jobs", True)) and details.get("state") != "closed"


def _secrets_of(service: Any | None) -> tuple[str, ...]:
    """The service's token and the environment's, to scrub from messages."""
    found = [os.environ.get("QISKIT_IBM_TOKEN")]
    active_account = getattr(service, "active_account", None)
    if callable(active_account):
        with contextlib.suppress(Exception):  # an account-less service has nothing more to scrub
            found.append((active_account() or {}).get("token"))
    return tuple(s for s in found if isinstance(s, str) and len(s) >= 4)


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _credentials_problem(node_spec: QPUNodeSpec, credentials: str | None, exc: Exception) -> str:
    from qiskit_ibm_runtime.accounts.exceptions import AccountNotFoundError

    secrets = _secrets_of(None)
    where = (
        f"the IBMQuantumCredentials block {credentials!r}"
        if credentials
        else "the QISKIT_IBM_TOKEN / QISKIT_IBM_INSTANCE variables or the account saved with "
        "QiskitRuntimeService.save_account"
    )
    if isinstance(exc, AccountNotFoundError):
        problem = (
            "LIVE mode needs IBM Quantum credentials and found none: name an IBMQuantumCredentials block with "
            "credentials=... in the cluster file, set QISKIT_IBM_TOKEN (and QISKIT_IBM_INSTANCE), or save an account "
            "with QiskitRuntimeService.save_account"
        )
    else:
        problem = f"could not open IBM Quantum with {where} ({type(exc).__name__}: {_scrub(str(exc), secrets)})"
    return (
        f"Node {node_spec.node_id!r}: {problem}. Nothing ran; LIVE mode never falls back to a simulator "
        "(use mode=QVMMode.EMULATED for the backend's fake)."
    )


class _UnknownJob(LookupError):
    """The service does not know a job id (the executor then submits again)."""


@contextlib.contextmanager
def _translated(
    provider: IBMQuantumProvider, node_spec: QPUNodeSpec, what: str, secrets: tuple[str, ...]
) -> Iterator[None]:
    """Turn SDK errors into QCOS errors that name the node and hold no secret."""
    try:
        yield
    except (QVMError, _UnknownJob):
        raise
    except Exception as exc:
        error = TransientExecutionError if provider.is_transient(exc) else ExecutionError
        message = _scrub(
            f"IBM Quantum {what} failed on node {node_spec.node_id!r} "
            f"(backend {node_spec.options.get('backend')}): {type(exc).__name__}: {exc}",
            secrets,
        )
        raise error(message) from exc


def _with_all_clbits_in_registers(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit``, or a copy with a register over the clbits outside every register.

    SamplerV2 returns data per classical register, so loose clbits (a shard of a ``measure_all``
    circuit has them) would be lost.
    """
    from qiskit.circuit import ClassicalRegister

    covered = {bit for reg in circuit.cregs for bit in reg}
    loose = [bit for bit in circuit.clbits if bit not in covered]
    if not loose:
        return circuit
    names = {reg.name for reg in circuit.cregs}
    name = next(n for n in (f"qcos_bits{i or ''}" for i in range(len(names) + 1)) if n not in names)
    out = circuit.copy()
    out.add_register(ClassicalRegister(name=name, bits=loose))
    return out


def _sampler_ready(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit`` with every clbit in a register; one that measures nothing gets a register of one
    bit nobody writes (a PUB without registers draws a warning, and its result would be empty)."""
    if circuit.num_clbits:
        return _with_all_clbits_in_registers(circuit)
    from qiskit.circuit import ClassicalRegister

    out = circuit.copy()
    out.add_register(ClassicalRegister(1, _UNMEASURED))
    return out


def _layout_of(circuit: QuantumCircuit) -> _Layout:
    return tuple(
        (reg.name, tuple(circuit.find_bit(bit).index for bit in reg))
        for reg in circuit.cregs
        if reg.name != _UNMEASURED
    )


def _width_of(circuit: QuantumCircuit) -> int:
    """The clbits of the circuit as the user wrote it (without :data:`_UNMEASURED`)."""
    return circuit.num_clbits - sum(reg.size for reg in circuit.cregs if reg.name == _UNMEASURED)


def _decode_pubs(inputs: Mapping[str, Any]) -> list[Any]:
    """The PUBs of a Runtime job from its inputs, whether the SDK decoded their QPY circuits or not."""
    from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder

    return list(json.loads(json.dumps(inputs["pubs"], cls=RuntimeEncoder), cls=RuntimeDecoder))


def join_registers(data: Any, layout: _Layout, *, width: int, shots: int | None, node_id: str) -> dict[str, int]:
    """Counts over all clbits (bit 0 rightmost) from SamplerV2's per-register bit arrays.

    Args:
        data: A PUB result's ``DataBin`` (one ``BitArray`` per classical register).
        layout: ``(register name, clbit index of each of its bits)`` per register.
        width: Number of clbits of the circuit; bits in no register read 0.
        shots: Expected shots (``None``: whatever the result holds).
        node_id: For error messages.

    Raises:
        ProviderResultError: A register is missing or its bit array has the wrong shape.
    """
    arrays = []
    for name, indices in layout:
        if name not in data:
            raise ProviderResultError(
                f"Node {node_id!r} returned no data for classical register {name!r} (got {', '.join(data.keys())})."
            )
        bits = data[name]
        if not hasattr(bits, "num_bits") or np.ndim(bits.array) != 2:
            raise ProviderResultError(f"Node {node_id!r} returned {type(bits).__name__} for register {name!r}.")
        if bits.num_bits != len(indices):
            raise ProviderResultError(
                f"Node {node_id!r} returned {bits.num_bits} bits for register {name!r}, which has {len(indices)}."
            )
        if shots is not None and bits.num_shots != shots:
            raise ProviderResultError(
                f"Node {node_id!r} returned {bits.num_shots} shots for register {name!r}, expected {shots}."
            )
        arrays.append((indices, bits))
    total = shots if shots is not None else (arrays[0][1].num_shots if arrays else 0)
    if width == 0:  # nothing measured: every shot reads the empty string
        return {"": total}
    if {b.num_shots for _, b in arrays} - {total}:
        raise ProviderResultError(f"Node {node_id!r} returned registers with different shot counts.")
    table = np.zeros((total, width), dtype=np.uint8)  # column c: clbit c
    for indices, bits in arrays:
        # BitArray packs each shot big-endian: the last column is bit 0 of the register
        unpacked = np.unpackbits(bits.array, axis=-1)
        for j, clbit in enumerate(indices):
            table[:, clbit] = unpacked[:, -1 - j]
    rows, counts = np.unique(table[:, ::-1], axis=0, return_counts=True)
    return {"".join("1" if b else "0" for b in row): int(n) for row, n in zip(rows, counts, strict=True)}
