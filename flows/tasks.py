"""Prefect tasks around the pure stages of ``network``. Every task rebuilds what it needs from
plain values (QASM text, the plan as a dict, block names), so it can run in another process."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.context import TaskRunContext
from prefect.tasks import exponential_backoff

from flows.common import parse_mode, resolve_cluster, resolve_store
from network.circuits import parse_qasm
from network.errors import ExecutionError, TransientExecutionError
from network.execution import NodeExecutor, RetryPolicy, ShardResult, WorkUnit, shard_circuits
from network.planning import ShardPlan
from network.reconstruction import ClassicalReconstructor

__all__ = ["execute_unit_task", "submit_unit", "reconstruct_task", "dispatch_pool_task", "transient_only"]


def transient_only(task_obj: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry transient errors (network, timeouts, flaky nodes) only.

    Permanent errors (an invalid circuit, bad credentials, a provider's rejection) fail at once
    with the provider's message.
    """
    error = state.result(raise_on_failure=False)
    return isinstance(error, TransientExecutionError | ConnectionError | TimeoutError)


def unit_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Completed shard results are reused on re-run: the key is the run key (which hashes the
    canonical circuit, seed, shots and shard layout), the mode and the shard ids."""
    ids = "-".join(str(i) for i in parameters["shard_ids"])
    return f"qcos-{parameters['run_key']}-{parameters['mode']}-{ids}"


@task(
    name="execute-shards",
    task_run_name="execute {node_id} ({batched_label})",
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=transient_only,
    cache_key_fn=unit_cache_key,
    persist_result=True,
)
def execute_unit_task(
    *,
    qasm: str,
    plan: dict[str, Any],
    run_key: str,
    shard_ids: list[int],
    node_id: str,
    batched: bool,
    batched_label: str,
    cluster: str | None,
    storage: str | None,
    mode: str,
) -> list[dict[str, Any]]:
    """Run one work unit (see :meth:`NodeExecutor.work_units`) and return its shard results.

    The executor records remote job ids in the store's ledger before waiting on them and
    re-attaches on a retry; completed shards are kept in the store and reused.
    """
    registry = resolve_cluster(cluster)
    store = resolve_store(storage)
    shard_plan = ShardPlan.from_dict(plan)
    executor = NodeExecutor(
        registry,
        parse_mode(mode),
        ledger=store.ledger(),
        shard_cache=store,
        run_key=run_key,
        retry=RetryPolicy(attempts=2, base_delay=1.0),
    )
    by_id = {s.shard_id: s for s in shard_plan.shards}
    cached, pending = executor.split_cached([by_id[i] for i in shard_ids])
    done: list[ShardResult] = list(cached)
    if pending:
        prepared = executor.prepare([node_id])
        circuits = shard_circuits(parse_qasm(qasm), shard_plan, [s.shard_id for s in pending])
        done += executor.run_unit(WorkUnit(prepared[node_id], pending, batched), circuits)
    return [r.to_dict() for r in sorted(done, key=lambda r: r.shard_id)]


def submit_unit(
    unit: WorkUnit,
    *,
    qasm: str,
    plan: dict[str, Any],
    run_key: str,
    cluster: str | None,
    storage: str | None,
    mode: str,
) -> Any:
    """Submit :func:`execute_unit_task` for one work unit; returns its future."""
    ids = [s.shard_id for s in unit.shards]
    return execute_unit_task.submit(
        qasm=qasm,
        plan=plan,
        run_key=run_key,
        shard_ids=ids,
        node_id=unit.node.node_id,
        batched=unit.batched,
        batched_label=f"{len(ids)} shard(s){', batched' if unit.batched else ''}",
        cluster=cluster,
        storage=storage,
        mode=mode,
    )


@task(name="reconstruct")
def reconstruct_task(plan: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, int]:
    """Recombine shard results into counts over the original circuit (pure)."""
    return ClassicalReconstructor().reconstruct_counts(
        ShardPlan.from_dict(plan), [ShardResult.from_dict(r) for r in results]
    )


@task(name="dispatch-to-pool", task_run_name="dispatch to pool {pool}")
def dispatch_pool_task(
    *, pool: str, request: dict[str, Any], run_key: str, shard_ids: list[int]
) -> list[dict[str, Any]]:
    """Send one pool's shards to its ``execute-shards/{pool}`` deployment, as one flow run.

    The idempotency key makes a retried or re-run parent find the same child run instead of
    starting (and paying for) another one. Results come back through the result store.
    """
    from prefect.deployments import run_deployment

    flow_run = run_deployment(
        name=f"execute-shards/{pool}",
        parameters={"request": request},
        idempotency_key=f"qcos-{run_key}-{pool}",
        timeout=None,
        as_subflow=True,
        flow_run_name=f"{pool}-{run_key[:8]}",
    )
    state = flow_run.state  # type: ignore[union-attr]
    if state is None or not state.is_completed():
        name = state.name if state is not None else "unknown"
        raise ExecutionError(
            f"Work pool {pool!r} did not complete shards {shard_ids} (flow run {flow_run.id}: {name}: "  # type: ignore[union-attr]
            f"{state.message if state is not None else ''})"
        )
    store = resolve_store(request.get("storage"))
    results = []
    for shard_id in shard_ids:
        found = store.load_shard_result(run_key, shard_id)
        if found is None:
            raise ExecutionError(
                f"Work pool {pool!r} finished but shard {shard_id} has no stored result in {store.url}."
            )
        results.append(found.to_dict())
    return results
