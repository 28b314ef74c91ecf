"""Driver B: the one pipeline (:mod:`network.pipeline`) run by Prefect.

Stages (plan, reconstruct, persist) are task runs in the flow; shards are mapped tasks, one per work
unit (a batch for a host, or one node's shards in turn: cut subexperiments included), on the flow's
task runner; shards whose node names a work pool go to that pool's ``execute-shards`` deployment,
one flow run per pool and run. Everything a task needs travels as plain values (QASM text, the plan
as a dict, block names), so a task can run in another process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from prefect import Task, get_run_logger
from prefect.cache_policies import NONE
from prefect.futures import PrefectFuture, as_completed
from prefect.utilities.annotations import quote

from flows.tasks import DEFAULT_POOL_TIMEOUT, dispatch_pool_task, submit_sweep_unit, submit_unit
from network.execution import NodeExecutor, ProgressCallback, ShardResult, raise_failures
from network.node_providers import QPUNodeSpec
from network.pipeline import Pipeline, Work
from network.planning import Shard, ShardPlan

__all__ = ["PrefectDriver"]

_T = TypeVar("_T")


class PrefectDriver:
    """Runs a pipeline's stages as Prefect tasks and its shards as submitted tasks.

    Args:
        qasm: The circuit as OpenQASM (what every task rebuilds it from).
        cluster: The cluster's block name or YAML path (``None``: the default local cluster).
        storage: The result store's block name or URL.
        mode: The mode's value.
        pool_timeout: Seconds shards sent to a work pool may wait for a worker to start them.
    """

    def __init__(
        self,
        *,
        qasm: str,
        cluster: str | None,
        storage: str | None,
        mode: str,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    ) -> None:
        self.pool_timeout = pool_timeout
        self.qasm = qasm
        self.cluster = cluster
        self.storage = storage
        self.mode = mode

    def prepare(self, pipeline: Pipeline) -> dict[str, QPUNodeSpec]:
        """Nodes run here are prepared for this mode; nodes of a work pool are planned as declared,
        since their pool's workers prepare them where they run (a LUMI or GPU node cannot be
        prepared on a machine without Slurm or a GPU)."""
        registry = pipeline.registry
        pooled = {nid for nid in registry.node_ids if registry.node(nid).work_pool}
        prepared = pipeline.executor.prepare([nid for nid in registry.node_ids if nid not in pooled])
        prepared.update({nid: registry.node(nid) for nid in pooled})
        return {nid: prepared[nid] for nid in registry.node_ids}

    def stage(self, name: str, fn: Callable[..., _T], /, *args: Any) -> _T:
        """Run ``fn`` as the task run ``name`` (in this flow's thread: stages are cheap and pure)."""
        wrapped: Task[..., _T] = Task(fn=fn, name=name, cache_policy=NONE, persist_result=False)
        return wrapped(*(cast(Any, quote(a)) for a in args))

    def execute(
        self,
        work: Work,
        shards: Sequence[Shard],
        prepared: Mapping[str, QPUNodeSpec],
        executor: NodeExecutor,
        on_result: ProgressCallback,
    ) -> list[ShardResult]:
        logger = get_run_logger()
        registry = executor.registry
        run_key = work.run_key
        pooled: dict[str, list[int]] = {}
        local: list[Shard] = []
        for shard in shards:
            pool = registry.node(shard.node_id).work_pool
            if pool and work.sweep is None:
                pooled.setdefault(pool, []).append(shard.shard_id)
            else:
                local.append(shard)
        units = executor.work_units(local, {s.node_id: prepared[s.node_id] for s in local})
        plan_dict = work.plan.to_dict()
        futures: list[PrefectFuture[Any]] = []
        for unit in units:
            if work.sweep is not None:
                future = submit_sweep_unit(
                    unit, sweep=work.sweep, qasm=self.qasm, plan=plan_dict, run_key=run_key, cluster=self.cluster,
                    storage=self.storage, mode=self.mode,
                )  # fmt: skip
            else:
                future = submit_unit(
                    unit, qasm=self.qasm, plan=plan_dict, run_key=run_key, cluster=self.cluster,
                    storage=self.storage, mode=self.mode,
                )  # fmt: skip
            futures.append(future)
        for pool, ids in pooled.items():
            assert isinstance(work.plan, ShardPlan)
            request = {
                "qasm": self.qasm, "plan": plan_dict, "shard_ids": ids, "seed": work.plan.seed,
                "cluster": self.cluster, "storage": self.storage, "mode": self.mode,
                **({} if work.key is None else {"run_key": run_key}),
            }  # fmt: skip
            logger.info("%d shard(s) of run %s go to work pool %r", len(ids), run_key[:8], pool)
            # a later round of a target_precision run (its own shards, the run's key): a child run of its own
            dispatch = run_key if work.key is None else f"{run_key}-r{min(ids)}"
            futures.append(
                dispatch_pool_task.submit(
                    pool=pool, request=request, run_key=run_key, shard_ids=ids, pool_timeout=self.pool_timeout,
                    dispatch_key=dispatch,
                )
            )  # fmt: skip
        results: list[ShardResult] = []
        failures: list[tuple[str, BaseException]] = []
        for future in as_completed(futures):
            try:
                done = [ShardResult.from_dict(r) for r in future.result()]
            except Exception as exc:  # every unit finishes before the first failure is raised
                failures.append((f"unit {len(failures) + 1}", exc))
                continue
            for result in done:
                on_result(result)
            results += done
        raise_failures(failures)
        return results
