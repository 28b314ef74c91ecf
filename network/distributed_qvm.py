"""The facade users call: :class:`DistributedQVM`.

``run`` is driver A of the design: the one pipeline (:mod:`network.pipeline`) with its stages called
in-process and shards on a thread pool. It needs no server and makes no planning decision of its
own. The Prefect flows (driver B) run the same pipeline with Prefect task submission.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from network.errors import SpecError
from network.execution import InMemoryLedger, NodeExecutor, RetryPolicy, ShardResult
from network.node_providers import QPUNodeSpec, QPURegistry, QVMMode
from network.pipeline import InProcessDriver, Pipeline, SweepResult, assemble_result
from network.planning import ShardPlan, ShardPlanner
from network.results import QVMResult
from network.spec import VirtualCircuitSpec, validate_shots
from network.storage import ResultStore
from network.sweeps import SweepSpec

__all__ = [
    "assemble_result",
    "DistributedQVM",
    "VirtualCircuitSpec",
    "QVMMode",
    "QVMResult",
    "SweepSpec",
    "SweepResult",
]


class DistributedQVM:
    """Runs circuits on a cluster of heterogeneous nodes.

    One instance may serve several threads at once: each run keeps its own state (run key, failed
    nodes), and the runs share the providers and the hosts' cores.

    Args:
        registry: The cluster, from :class:`~network.node_providers.ClusterBuilder`.
        mode: ``EMULATED`` (default: nothing leaves the machine), ``LIVE`` or ``DRY_RUN``.
        shots: Default shots for specs that do not set their own.
        planner: A custom :class:`ShardPlanner`.
        max_workers: Upper bound on shards running at once.
        store: Where runs are persisted (a :class:`ResultStore` or its URL). With a store, remote
            job ids go to its ledger and completed shards are reused when the same seeded spec
            runs again. ``None`` keeps everything in memory.
        retry: Backoff for transient node errors.
        failover: Move a shard off a node that keeps failing to another node that fits.

    Raises:
        SpecError: ``shots`` is not a positive integer.
    """

    def __init__(
        self,
        registry: QPURegistry,
        mode: QVMMode | str = QVMMode.EMULATED,
        shots: int = 1024,
        *,
        planner: ShardPlanner | None = None,
        max_workers: int | None = None,
        store: ResultStore | str | None = None,
        retry: RetryPolicy | None = None,
        failover: bool = True,
    ) -> None:
        if not isinstance(registry, QPURegistry):
            raise SpecError(f"registry must be a QPURegistry (from ClusterBuilder().build()), got {registry!r}.")
        self.registry = registry
        try:
            self.mode = QVMMode.parse(mode)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
        self.shots = validate_shots(shots)
        self.planner = planner or ShardPlanner()
        self.store = ResultStore(store) if isinstance(store, str) else store
        self.executor = NodeExecutor(
            registry,
            self.mode,
            max_workers=max_workers,
            retry=retry,
            failover=failover,
            ledger=self.store.ledger() if self.store is not None else InMemoryLedger(),
            shard_cache=self.store,
        )
        self.pipeline = Pipeline(
            registry, self.mode, self.executor, shots=self.shots, planner=self.planner, store=self.store
        )
        self.driver = InProcessDriver()
        self.reconstructor = self.pipeline.reconstructor

    def close(self) -> None:
        """Close the cluster's providers: open Runtime batches, HTTP clients, Dask clusters."""
        self.registry.close()

    def __enter__(self) -> DistributedQVM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prepared_nodes(self) -> dict[str, QPUNodeSpec]:
        """Every node as it runs in this mode (a GPU node emulated on the CPU says so).

        Raises:
            NodeUnavailableError: A node cannot run in this mode (LIVE without its GPU...).
        """
        return self.executor.prepare(self.registry.node_ids)

    def plan(
        self, spec: VirtualCircuitSpec, *, seed: int | None = None, prepared: dict[str, QPUNodeSpec] | None = None
    ) -> ShardPlan:
        """Plan ``spec`` without running it, on the nodes as they run in this mode: every strategy,
        cut subexperiments included as shards with their nodes, shots and estimates.

        Raises:
            PlanningError: The circuit fits no strategy on this cluster.
        """
        nodes = prepared if prepared is not None else self.prepared_nodes()
        return replace(self.planner.plan(spec, list(nodes.values()), shots=self.shots, seed=seed), mode=self.mode.value)

    def run(
        self,
        spec: VirtualCircuitSpec,
        *,
        on_shard_done: Callable[[ShardResult], None] | None = None,
        on_plan: Callable[[ShardPlan], None] | None = None,
    ) -> QVMResult:
        """Plan, execute and reconstruct ``spec``.

        Args:
            spec: The circuit and its options.
            on_shard_done: Called as each shard finishes, cut subexperiments included (progress bars).
            on_plan: Called with the plan before anything runs.

        Raises:
            PlanningError: The circuit fits no strategy on this cluster.
            NodeUnavailableError: A planned node cannot run in this mode.
            ExecutionError: A shard failed.
        """
        return self.pipeline.run(spec, self.driver, on_shard_done=on_shard_done, on_plan=on_plan)

    def run_sweep(self, sweep: SweepSpec, *, on_shard_done: Callable[[ShardResult], None] | None = None) -> SweepResult:
        """Run every binding of ``sweep``: batches per node, each batch a shard through the executor.

        With a store, the table is written as ``tables/sweep.parquet`` under the run's key (the sweep,
        its nodes and the mode: the same sweep on another cluster or in another mode never overwrites it).

        Raises:
            PlanningError: No node fits the circuit.
            ExecutionError: A batch failed.
        """
        return self.pipeline.run_sweep(sweep, self.driver, on_shard_done=on_shard_done)
