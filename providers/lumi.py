"""LUMI's AMD MI250X GPU nodes, reached through Slurm and Dask: ``lumi_amd_gpu``.

A node of this provider is one LUMI-G node: ``gcds`` GCDs (8 by default: four AMD Instinct MI250X
modules of two GCDs, each GCD with 64 GB of HBM). It runs the ROCm build of Qiskit Aer in a Dask
worker that a Slurm job started on that node.

* ``statevector`` (exact): the state is split into chunks spread over the node's GCDs with Aer's
  multi-GPU chunk mode (``blocking_enable=True``, ``blocking_qubits`` such that one chunk takes less
  than a quarter of a GCD's HBM, as Aer asks). ``max_qubits`` defaults to
  ``floor(log2(gcds x 64 GiB / bytes per amplitude)) - 1``: complex128 amplitudes take 16 bytes
  (``precision="single"``: 8), and the one qubit of headroom leaves half the HBM to Aer's chunk-swap
  buffers and workspace. A whole node holds 34 qubits in double precision (35 in single); one GCD 31.
  A state never spans two nodes: that needs Aer built with MPI and one rank per GCD under ``srun``,
  which a Dask worker is not. Wider circuits go to MPS nodes, or the planner cuts them across nodes.
* ``matrix_product_state`` (approximate, 1000 qubits by default): Aer has no GPU implementation of
  MPS, so these nodes run Aer's MPS on the node's CPU cores and host memory.

Every node declares ``device="GPU"`` and, by default, ``work_pool="lumi"`` (the flows send its shards
to the ``execute-shards/lumi`` deployment, whose worker runs on a LUMI login node).

Execution: :meth:`LumiAMDGPUProvider.execute_batch` sends one Dask task per circuit (:func:`run_on_worker`)
to the node group's cluster and gathers the counts. Each task asks for the Dask resource ``GCD=<gcds>``,
which each worker advertises once, so one simulation holds a node at a time. A circuit's counts depend
only on the circuit, its shots and its seed, never on how circuits were batched or on how many workers
there are. The cluster of a node group is started at its first run and shared by every provider
instance of the process with the same configuration (the flows rebuild the registry in every task);
:meth:`LumiAMDGPUProvider.close` closes the ones no other live instance uses, and the rest close when
the interpreter exits. Closing a ``SLURMCluster`` cancels its jobs.

Modes:

* ``EMULATED``: nothing leaves the machine. The nodes run on an in-process
  ``distributed.LocalCluster`` (one worker thread) with Aer on this CPU, through the same submit and
  gather path as LIVE; results say ``emulates="CPU (Aer) for LUMI MI250X GPU"``.
* ``LIVE``: a ``dask_jobqueue.SLURMCluster`` built from a :class:`~blocks.lumi.LumiSlurmConfig` block
  (``slurm="block-name"``) or inline block fields (``slurm={"account": ...}``); it needs ``sbatch`` on
  this machine's ``PATH``, and the job script is checked with ``sbatch --test-only`` before any job
  is queued. Or ``dask_address="tcp://host:port"``: an existing scheduler whose workers advertise
  ``--resources GCD=<gcds>``. A worker whose Aer has no GPU refuses statevector work: nothing falls
  back to a CPU.
* ``DRY_RUN``: nothing is contacted, no block is loaded.

Other clusters: ``LumiAMDGPUProvider(cluster_factory=...)`` replaces :func:`default_cluster_factory`; it
receives a :class:`ClusterRequest` per node group and returns a ``distributed`` cluster (then owned and
closed by the provider) or a scheduler address. The tests pass a ``LocalCluster`` this way.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from network.circuits import normalize_counts
from network.errors import ClusterConfigError, NodeUnavailableError, TransientExecutionError
from network.node_providers import NodeProvider, QPUNodeSpec, QVMMode
from providers import gpu

if TYPE_CHECKING:
    from qiskit import QuantumCircuit

    from blocks.lumi import LumiSlurmConfig

__all__ = [
    "LumiAMDGPUProvider",
    "ClusterRequest",
    "ClusterFactory",
    "default_cluster_factory",
    "start_slurm_cluster",
    "run_on_worker",
    "statevector_qubits",
    "blocking_qubits",
    "close_connections",
    "GCD_HBM_BYTES",
    "LUMI_G_GCDS",
    "EMULATES",
]

log = logging.getLogger(__name__)

KEY = "lumi_amd_gpu"
#: GCDs (Slurm "GPUs") in one LUMI-G node: four MI250X modules of two GCDs each.
LUMI_G_GCDS = 8
#: HBM of one MI250X GCD.
GCD_HBM_BYTES = 64 * 2**30
#: What an EMULATED node runs on instead of the GPU node (results and notes quote it).
EMULATES = "CPU (Aer) for LUMI MI250X GPU"
_STATEVECTOR = "statevector"
_MPS = "matrix_product_state"
_METHODS = (_STATEVECTOR, _MPS)
_BYTES_PER_AMPLITUDE = {"double": 16, "single": 8}
_MPS_MAX_QUBITS = 1000
#: Aer run options a cluster file may set on a LUMI node group.
_AER_OPTIONS = frozenset(
    {
        "blocking_enable",
        "blocking_qubits",
        "chunk_swap_buffer_qubits",
        "batched_shots_gpu",
        "fusion_enable",
        "fusion_threshold",
        "max_parallel_threads",
        "max_parallel_shots",
        "max_parallel_experiments",
        "shot_branching_enable",
        "shot_branching_sampling_enable",
        "matrix_product_state_max_bond_dimension",
        "matrix_product_state_truncation_threshold",
        "mps_sample_measure_algorithm",
    }
)
_TEST_ONLY_TIMEOUT_S = 60
#: Seconds between checks that a Slurm cluster still has its jobs, while a batch waits.
_REFRESH_S = 30.0


def statevector_qubits(gcds: int = LUMI_G_GCDS, precision: str = "double") -> int:
    """Widest statevector ``gcds`` GCDs hold with half their HBM (the rest is Aer's headroom)."""
    return gpu.statevector_qubits(gcds * GCD_HBM_BYTES, _BYTES_PER_AMPLITUDE[precision], fraction=0.5)


def blocking_qubits(precision: str = "double") -> int:
    """Aer's chunk width: the largest ``b`` with ``bytes per amplitude * 2**b`` under a quarter of a GCD's HBM."""
    return math.ceil(math.log2(GCD_HBM_BYTES / 4 / _BYTES_PER_AMPLITUDE[precision])) - 1


@dataclass(frozen=True)
class ClusterRequest:
    """What the provider asks a cluster factory for, once per node group.

    Attributes:
        group: The node group's name (its node ids without the ``-<i>`` suffix).
        mode: ``EMULATED`` or ``LIVE``.
        jobs: Nodes in the group: Slurm jobs (one Dask worker each) to keep running.
        gcds: GCDs per node; tasks ask for the worker resource ``GCD=<gcds>``.
        slurm: ``SLURMCluster`` keyword arguments in LIVE mode (from the block); ``None`` when emulated.
    """

    group: str
    mode: QVMMode
    jobs: int
    gcds: int
    slurm: Mapping[str, Any] | None = None


#: Makes the Dask cluster of a node group: a ``distributed`` cluster object, or a scheduler address.
ClusterFactory = Callable[[ClusterRequest], Any]


def default_cluster_factory(request: ClusterRequest) -> Any:
    """An in-process ``LocalCluster`` for emulation, a ``SLURMCluster`` on LUMI (:func:`start_slurm_cluster`)."""
    if request.slurm is None:
        return loopback_cluster(
            n_workers=1,
            processes=False,
            threads_per_worker=1,  # Aer holds the GIL while it simulates: more threads would only queue
            resources={"GCD": request.gcds},
        )
    return start_slurm_cluster(request.slurm)


def loopback_cluster(**kwargs: Any) -> Any:
    """A ``distributed.LocalCluster`` that listens on 127.0.0.1 alone, on free ports, with no dashboard.

    A plain ``LocalCluster`` still serves the scheduler's HTTP routes on port 8787 without a dashboard, and
    in-process workers serve theirs on every interface; an emulated node should open nothing beyond this
    machine. ``kwargs`` go to ``LocalCluster`` and override these defaults.
    """
    from distributed import LocalCluster

    options: dict[str, Any] = {
        "dashboard_address": None,
        "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"},
        "worker_dashboard_address": "127.0.0.1:0",
    }
    if kwargs.get("processes", True):
        options["host"] = "127.0.0.1"  # in-process clusters talk over inproc:// and take no host
    return LocalCluster(**{**options, **kwargs})


def start_slurm_cluster(kwargs: Mapping[str, Any]) -> Any:
    """A ``SLURMCluster`` whose job script Slurm accepted (``sbatch --test-only``), scaled to its jobs.

    Args:
        kwargs: ``SLURMCluster`` keyword arguments (:meth:`LumiSlurmConfig.cluster_kwargs`);
            ``n_workers`` is the number of jobs.

    Raises:
        NodeUnavailableError: Slurm rejects the job (account, partition, GPUs, time limit...) or does
            not answer; nothing was queued.
    """
    from dask_jobqueue import SLURMCluster

    options = dict(kwargs)
    jobs = int(options.pop("n_workers", 1))
    cluster = SLURMCluster(**options)
    try:
        _test_job_script(cluster.job_script(), options)
    except BaseException:
        cluster.close()
        raise
    cluster.scale(jobs=jobs)
    log.info(
        "lumi: %d Slurm job(s) submitted to partition %s (account %s); workers join %s when they start%s",
        jobs, options.get("queue"), options.get("account"), cluster.scheduler_address,
        f" (dashboard: {cluster.dashboard_link})" if options.get("scheduler_options", {}).get("dashboard_address")
        else "",
    )  # fmt: skip
    return cluster


def _test_job_script(script: str, options: Mapping[str, Any]) -> None:
    """Ask Slurm whether it would accept ``script``, without queuing it."""
    where = f"partition {options.get('queue')!r}, account {options.get('account')!r}"
    with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="qcos-lumi-") as handle:
        handle.write(script)
        handle.flush()
        try:
            done = subprocess.run(
                ["sbatch", "--test-only", handle.name],
                capture_output=True,
                text=True,
                timeout=_TEST_ONLY_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NodeUnavailableError(f"Slurm could not check the LUMI worker job ({where}): {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise NodeUnavailableError(f"Slurm rejects the LUMI worker job ({where}): {detail}")


def run_on_worker(
    circuit: QuantumCircuit, shots: int, seed: int | None, *, settings: Mapping[str, Any]
) -> dict[str, int]:
    """Run one circuit with Aer in the calling process: a Dask worker on a LUMI-G node, or this machine.

    The same Aer code as the local providers (:mod:`providers.aer`): deferred mid-circuit
    measurements, counts over every classical bit, bit 0 rightmost.

    Args:
        circuit: The circuit.
        shots: Shots to sample.
        seed: Aer's ``seed_simulator``.
        settings: ``node_id``, ``method``, ``device`` (``GPU`` on LUMI, ``CPU`` when emulated) and
            ``aer_options``.

    Raises:
        NodeUnavailableError: A statevector node's worker has no GPU (Aer without ROCm support).
        ExecutionError: Aer failed.
    """
    from providers.aer import LocalCPUProvider, LocalGPUAerProvider, aer_devices

    node_id, method = str(settings["node_id"]), str(settings["method"])
    on_gpu = settings["device"] == "GPU" and method == _STATEVECTOR
    if on_gpu and "GPU" not in aer_devices():
        raise NodeUnavailableError(
            f"Node {node_id!r}: the Dask worker on {socket.gethostname()} has no GPU: its Aer reports only "
            f"{', '.join(aer_devices())}. Put the ROCm build of Aer on the workers (docs/lumi.md); nothing ran "
            "on the CPU instead."
        )
    spec = QPUNodeSpec(
        node_id=node_id,
        provider_key=KEY,
        max_qubits=max(1, circuit.num_qubits),
        exact=method == _STATEVECTOR,
        method=method,
        device="GPU" if on_gpu else "CPU",
        options=dict(settings["aer_options"]),
    )
    aer = LocalGPUAerProvider() if on_gpu else LocalCPUProvider()
    return aer.execute(circuit, shots, spec, seed=seed)


@dataclass
class _Connection:
    """A Dask client, the cluster it owns (if any), and the providers using it."""

    client: Any
    cluster: Any | None
    jobs: int | None = None
    users: weakref.WeakSet[LumiAMDGPUProvider] = field(default_factory=weakref.WeakSet)

    def refresh(self) -> None:
        """Keep a Slurm cluster at its job count: jobs that reached their time limit are submitted again."""
        if self.jobs is None or self.cluster is None:
            return
        from dask_jobqueue import JobQueueCluster

        if isinstance(self.cluster, JobQueueCluster):
            self.cluster.scale(jobs=self.jobs)

    def check_resources(self, gcds: int, node_id: str) -> None:
        """Fail at once, rather than wait forever, when no connected worker offers ``GCD=<gcds>``."""
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        offered = [w.get("resources", {}).get("GCD", 0) for w in workers.values()]
        if offered and max(offered) < gcds:
            raise NodeUnavailableError(
                f"Node {node_id!r} needs a Dask worker with the resource GCD={gcds}, but the {len(offered)} "
                f"worker(s) of {self.client.scheduler.address} offer at most GCD={max(offered)}. Start workers "
                f"with '--resources GCD={gcds}' (LumiSlurmConfig does this)."
            )

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


_connections: dict[tuple[Any, ...], _Connection] = {}
_connections_lock = threading.Lock()
_atexit_registered = False


def close_connections() -> None:
    """Close every Dask client and owned cluster of this process (Slurm jobs are cancelled). Runs at exit."""
    with _connections_lock:
        open_ones = list(_connections.values())
        _connections.clear()
    for connection in open_ones:
        try:
            connection.close()
        except Exception as exc:  # at exit, one cluster failing to close must not keep the others open
            log.warning("lumi: could not close a Dask cluster: %s", exc)


class LumiAMDGPUProvider(NodeProvider):
    """LUMI-G nodes (8 MI250X GCDs each) running the ROCm build of Aer in Dask workers started by Slurm.

    Args:
        cluster_factory: Makes the Dask cluster of a node group from a :class:`ClusterRequest`
            (default :func:`default_cluster_factory`); returns a cluster (owned and closed by the
            provider) or a scheduler address.
    """

    key = KEY
    description = "LUMI-G nodes (AMD MI250X GCDs) through Slurm and Dask, ROCm build of Aer"
    requires = ("dask_jobqueue", "distributed")
    extra = "lumi"
    supports_batch = True

    def __init__(self, cluster_factory: ClusterFactory | None = None) -> None:
        super().__init__()
        self.cluster_factory: ClusterFactory = cluster_factory or default_cluster_factory
        self._blocks: dict[str, LumiSlurmConfig] = {}
        self._blocks_lock = threading.Lock()

    def build_nodes(
        self,
        n_nodes: int = 1,
        max_qubits: int | None = None,
        *,
        gcds: int = LUMI_G_GCDS,
        method: str = _STATEVECTOR,
        precision: str = "double",
        slurm: str | Mapping[str, Any] | None = None,
        dask_address: str | None = None,
        work_pool: str | None = "lumi",
        cost_per_shot: float = 0.0,
        cost_per_task: float = 0.0,
        cost_per_second: float = 0.0,
        tags: Sequence[str] = (),
        **aer_options: Any,
    ) -> list[QPUNodeSpec]:
        """Build ``n_nodes`` LUMI-G nodes.

        Args:
            n_nodes: LUMI-G nodes, one Slurm job (and Dask worker) each.
            max_qubits: Declared width; default what ``gcds`` GCDs hold (statevector, see the module
                docstring) or 1000 (MPS). A statevector width beyond the HBM is refused.
            gcds: GCDs per node, 1 to 8 (fewer than 8: use the ``small-g`` partition).
            method: ``statevector`` (exact) or ``matrix_product_state`` (approximate, on the node's CPUs).
            precision: ``double`` (16 bytes per amplitude) or ``single`` (8).
            slurm: Name of a saved ``QCOS LUMI Slurm`` block, or its fields inline (``{"account": ...}``).
            dask_address: Scheduler address of an existing Dask cluster (LIVE), instead of ``slurm``.
            work_pool: Prefect work pool whose worker submits these nodes' shards (``lumi``).
            cost_per_shot: Price per shot (LUMI bills GPU hours to the project, not per shot).
            cost_per_task: Price per submission.
            cost_per_second: Price per second of node time, to weigh the allocation in the cost model.
            tags: Labels for filtering.
            **aer_options: Aer run options (``blocking_qubits``, ``fusion_enable``...).

        Raises:
            ClusterConfigError: An argument is out of range or unknown.
        """
        if isinstance(gcds, bool) or not isinstance(gcds, int) or not 1 <= gcds <= LUMI_G_GCDS:
            raise ClusterConfigError(f"Provider {self.key!r}: gcds must be 1 to {LUMI_G_GCDS} per node, got {gcds!r}.")
        if method not in _METHODS:
            raise ClusterConfigError(
                f"Provider {self.key!r}: unknown method {method!r}; choose one of {', '.join(_METHODS)}."
            )
        if precision not in _BYTES_PER_AMPLITUDE:
            raise ClusterConfigError(
                f"Provider {self.key!r}: precision must be 'double' or 'single', got {precision!r}."
            )
        unknown = sorted(set(aer_options) - _AER_OPTIONS)
        if unknown:
            raise ClusterConfigError(
                f"Provider {self.key!r}: unknown option(s) {', '.join(unknown)}. "
                f"Known Aer options: {', '.join(sorted(_AER_OPTIONS))}."
            )
        if dask_address is not None and (not isinstance(dask_address, str) or "://" not in dask_address):
            raise ClusterConfigError(
                f"Provider {self.key!r}: dask_address must be a scheduler address such as 'tcp://host:8786', "
                f"got {dask_address!r}."
            )
        options: dict[str, Any] = {**aer_options, "precision": precision}
        if method == _STATEVECTOR:
            capacity = statevector_qubits(gcds, precision)
            if max_qubits is None:
                max_qubits = capacity
            elif isinstance(max_qubits, int) and max_qubits > capacity:
                raise ClusterConfigError(
                    f"Provider {self.key!r}: max_qubits={max_qubits} exceeds what {gcds} GCD(s) of "
                    f"{GCD_HBM_BYTES // 2**30} GiB hold in {precision} precision ({capacity} qubits)."
                )
            if gcds > 1:
                options.setdefault("blocking_enable", True)
                options.setdefault("blocking_qubits", blocking_qubits(precision))
        elif max_qubits is None:
            max_qubits = _MPS_MAX_QUBITS
        options.update(gcds=gcds, group_nodes=n_nodes)
        if slurm is not None:
            options["slurm"] = self._checked_slurm(slurm)
        if dask_address is not None:
            options["dask_address"] = dask_address
        nodes = self.make_nodes(
            n_nodes,
            max_qubits=max_qubits,
            exact=method == _STATEVECTOR,
            method=method,
            device="GPU",
            cost_per_shot=cost_per_shot,
            cost_per_task=cost_per_task,
            cost_per_second=cost_per_second,
            work_pool=work_pool,
            tags=tuple(tags),
            options=options,
        )
        # each node is a machine of its own: its cores are not shared with the others
        return [replace(node, host=f"lumi-{i}") for i, node in enumerate(nodes)]

    def _checked_slurm(self, slurm: Any) -> str | dict[str, Any]:
        from blocks.lumi import LumiSlurmConfig

        if isinstance(slurm, str) and slurm.strip():
            return slurm
        if isinstance(slurm, Mapping):
            try:
                LumiSlurmConfig(**slurm)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                raise ClusterConfigError(f"Provider {self.key!r}: invalid slurm settings: {exc}") from exc
            return dict(slurm)
        raise ClusterConfigError(
            f"Provider {self.key!r}: slurm must name a 'QCOS LUMI Slurm' block or hold its fields, got {slurm!r}."
        )

    def prepare(self, node_spec: QPUNodeSpec, mode: QVMMode) -> QPUNodeSpec:
        """EMULATED: a CPU spec on this machine; LIVE: check Slurm (or the scheduler address); DRY_RUN: as is.

        Raises:
            NodeUnavailableError: LIVE without ``sbatch`` on ``PATH`` or without a Slurm configuration.
            BlockNotFoundError: LIVE with a ``slurm`` block name that is not saved.
        """
        if mode is QVMMode.EMULATED:
            return replace(node_spec, device="CPU", host="local", emulates=EMULATES)
        if mode is QVMMode.LIVE:
            self._live_target(node_spec)
        return node_spec

    def _live_target(self, node_spec: QPUNodeSpec) -> str | LumiSlurmConfig:
        """The scheduler address, or the Slurm configuration, a LIVE node runs through."""
        address = node_spec.options.get("dask_address")
        if address:
            return str(address)
        if shutil.which("sbatch") is None:
            raise NodeUnavailableError(
                f"Node {node_spec.node_id!r} ({self.key}) runs through Slurm, but 'sbatch' is not on this machine's "
                "PATH. Run it from a LUMI login node (the 'lumi' work pool's worker lives there), give the node "
                "group dask_address='tcp://host:port' of a running Dask scheduler, or use mode=QVMMode.EMULATED."
            )
        slurm = node_spec.options.get("slurm")
        if slurm is None:
            raise NodeUnavailableError(
                f"Node {node_spec.node_id!r} ({self.key}) has no Slurm settings: give its node group "
                "slurm='<name of a QCOS LUMI Slurm block>' or slurm={'account': 'project_...', ...}."
            )
        from blocks.lumi import LumiSlurmConfig

        if isinstance(slurm, Mapping):
            return LumiSlurmConfig(**slurm)
        with self._blocks_lock:
            config = self._blocks.get(str(slurm))
            if config is None:
                from blocks.base import load_block

                config = self._blocks[str(slurm)] = load_block(LumiSlurmConfig, str(slurm))
        return config

    def execute(
        self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None
    ) -> dict[str, int]:
        return self.execute_batch([circuit], [shots], node_spec, seeds=[seed])[0]

    def execute_batch(
        self,
        circuits: Sequence[QuantumCircuit],
        shots: Sequence[int],
        node_spec: QPUNodeSpec,
        *,
        seeds: Sequence[int | None],
    ) -> list[dict[str, int]]:
        """One Dask task per circuit on the node group's cluster; counts in circuit order.

        Raises:
            NodeUnavailableError: No worker offers the node's GCDs, or a worker has no GPU.
            ProviderResultError: A worker returned malformed counts.
        """
        if not circuits:
            return []
        connection = self._connection(node_spec)
        gcds = int(node_spec.options["gcds"])
        connection.refresh()
        connection.check_resources(gcds, node_spec.node_id)
        settings = {
            "node_id": node_spec.node_id,
            "method": node_spec.method,
            "device": node_spec.device,
            "aer_options": {k: v for k, v in node_spec.options.items() if k in _AER_OPTIONS or k == "precision"},
        }
        tag = uuid.uuid4().hex[:12]
        futures = connection.client.map(
            run_on_worker,
            list(circuits),
            list(shots),
            list(seeds),
            settings=settings,
            key=[f"qcos-{node_spec.node_id}-{tag}-{i}" for i in range(len(circuits))],
            resources={"GCD": gcds},
        )
        try:
            results = _gather(connection, futures)
        except BaseException:
            connection.client.cancel(futures)
            raise
        return [
            normalize_counts(counts, width=circuit.num_clbits, shots=n, node_id=node_spec.node_id)
            for counts, circuit, n in zip(results, circuits, shots, strict=True)
        ]

    def _connection(self, node_spec: QPUNodeSpec) -> _Connection:
        """The Dask client of the node's group, started at the first call (see the module docstring)."""
        gcds = int(node_spec.options["gcds"])
        jobs = int(node_spec.options["group_nodes"])
        group = node_spec.node_id.rsplit("-", 1)[0]
        request: ClusterRequest | None = None
        if node_spec.emulates is not None:
            request = ClusterRequest(group=group, mode=QVMMode.EMULATED, jobs=jobs, gcds=gcds)
            key: tuple[Any, ...] = (self.cluster_factory, "emulated", gcds)
        else:
            target = self._live_target(node_spec)
            if isinstance(target, str):
                key = ("address", target)
            else:
                slurm = target.cluster_kwargs(jobs=jobs, gcds=gcds)
                request = ClusterRequest(group=group, mode=QVMMode.LIVE, jobs=jobs, gcds=gcds, slurm=slurm)
                key = (self.cluster_factory, "slurm", group, json.dumps(slurm, sort_keys=True))
        global _atexit_registered
        with _connections_lock:
            connection = _connections.get(key)
            if connection is None:
                connection = _open(self.cluster_factory, request) if request is not None else _open_address(key[1])
                _connections[key] = connection
                if not _atexit_registered:
                    atexit.register(close_connections)
                    _atexit_registered = True
            connection.users.add(self)
        return connection

    def is_transient(self, error: BaseException) -> bool:
        """Lost connections and timeouts are transient; a worker that died running a task, Aer errors are not."""
        from distributed.comm.core import CommClosedError

        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            if isinstance(current, TransientExecutionError | CommClosedError | ConnectionError | TimeoutError):
                return True
            if isinstance(current, OSError) and str(current).startswith("Timed out trying to connect"):
                return True
            current = current.__cause__ or current.__context__
        return False

    def close(self) -> None:
        """Stop using this provider's Dask connections; a cluster no other live provider uses is closed."""
        closing = []
        with _connections_lock:
            for key, connection in list(_connections.items()):
                if self in connection.users:
                    connection.users.discard(self)
                    if not connection.users:
                        closing.append(_connections.pop(key))
        for connection in closing:
            connection.close()


def _gather(connection: _Connection, futures: list[Any]) -> list[Any]:
    """Wait for ``futures``, keeping the cluster at its job count meanwhile: a job that reaches its
    time limit while the tasks wait (or run) is submitted again, and Dask reruns its tasks."""
    results = []
    for future in futures:
        while True:
            try:
                results.append(future.result(timeout=_REFRESH_S))
                break
            except TimeoutError:
                connection.refresh()
    return results


def _open(factory: ClusterFactory, request: ClusterRequest) -> _Connection:
    from distributed import Client

    made = factory(request)
    if isinstance(made, str):
        return _open_address(made)
    try:
        client = Client(made, set_as_default=False)
    except BaseException:
        made.close()
        raise
    return _Connection(client, made, jobs=request.jobs if request.slurm is not None else None)


def _open_address(address: str) -> _Connection:
    from distributed import Client

    log.info("lumi: connecting to the Dask scheduler at %s", address)
    return _Connection(Client(address, set_as_default=False), None)
