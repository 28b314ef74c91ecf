"""The ``execute-shards`` flow each work pool runs: one batch of shards of one plan."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.common import parse_mode, resolve_cluster, resolve_store
from flows.models import ExecuteShardsRequest
from flows.tasks import submit_unit
from network.errors import SpecError
from network.execution import NodeExecutor
from network.planning import ShardPlan

__all__ = ["execute_shards"]


@flow(name="execute-shards", validate_parameters=True)
def execute_shards(request: ExecuteShardsRequest) -> list[dict[str, Any]]:
    """Run the requested shards on this pool's nodes; results go to the result store (and are
    returned). Shards already stored by an earlier attempt are not run again."""
    logger = get_run_logger()
    plan = ShardPlan.from_dict(request.plan)
    run_key = request.run_key or plan.run_key
    mode = parse_mode(request.mode)
    registry = resolve_cluster(request.cluster)
    store = resolve_store(request.storage)
    executor = NodeExecutor(registry, mode, shard_cache=store, run_key=run_key)
    by_id = {s.shard_id: s for s in plan.shards}
    unknown = [i for i in request.shard_ids if i not in by_id]
    if unknown:
        raise SpecError(f"Shard ids {unknown} are not in plan {plan.run_key} ({len(plan.shards)} shards).")
    shards = [by_id[i] for i in request.shard_ids]
    prepared = executor.prepare(sorted({s.node_id for s in shards}))
    units = executor.work_units(shards, prepared)
    logger.info("run %s: %d shard(s) in %d unit(s)", run_key, len(shards), len(units))
    futures = [
        submit_unit(
            unit,
            qasm=request.qasm,
            plan=request.plan,
            run_key=run_key,
            cluster=request.cluster,
            storage=request.storage,
            mode=mode.value,
        )
        for unit in units
    ]
    results = [r for future in futures for r in future.result()]
    logger.info("run %s: %d shard(s) stored in %s", run_key, len(results), store.url)
    return sorted(results, key=lambda r: r["shard_id"])
