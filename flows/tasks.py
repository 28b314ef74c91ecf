"""Prefect tasks around the pure stages of ``network``. Every task rebuilds what it needs from
plain values (QASM text, the plan as a dict, block names), so it can run in another process."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NONE
from prefect.context import TaskRunContext
from prefect.tasks import exponential_backoff

from flows.common import parse_mode, resolve_cluster, resolve_store
from network.circuits import parse_qasm
from network.errors import ExecutionError, TransientExecutionError
from network.execution import NodeExecutor, RetryPolicy, ShardInput, ShardResult, SweepInput, WorkUnit, shard_circuits
from network.planning import Shard, ShardPlan
from network.sweeps import SweepPlan, SweepSpec

__all__ = [
    "execute_unit_task",
    "sweep_unit_task",
    "submit_unit",
    "submit_sweep_unit",
    "dispatch_pool_task",
    "transient_only",
]


def transient_only(task_obj: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry transient errors (network, timeouts, flaky nodes) only.

    Permanent errors (an invalid circuit, bad credentials, a provider's rejection) fail at once
    with the provider's message.
    """
    error = state.result(raise_on_failure=False)
    return isinstance(error, TransientExecutionError | ConnectionError | TimeoutError)


#: How long Prefect keeps a work unit's result for a retried or re-run flow: the result store keeps
#: shards for good; this cache only spares re-reading them on a retry soon after.
UNIT_CACHE_EXPIRATION = timedelta(days=7)


def unit_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Completed shard results are reused on re-run: the key is the run key (which hashes the
    canonical circuit, seeds, shots, shard layout, nodes and mode: new work, such as a scheduled
    run with a fresh seed or the same spec on another cluster, never matches), the mode and the
    shard ids (hashed past a few: the key names the persisted result's file, which must stay a valid
    file name for a unit of 1,000 shards)."""
    ids = "-".join(str(i) for i in parameters["shard_ids"])
    if len(ids) > 64:
        ids = f"{len(parameters['shard_ids'])}x{hashlib.sha256(ids.encode()).hexdigest()[:24]}"
    return f"qcos-{parameters['run_key']}-{parameters['mode']}-{ids}"


@task(
    name="execute-shards",
    task_run_name="execute {node_id} ({batched_label})",
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=transient_only,
    cache_key_fn=unit_cache_key,
    cache_expiration=UNIT_CACHE_EXPIRATION,
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
    shard_plan = ShardPlan.from_dict(plan)
    by_id = {s.shard_id: s for s in shard_plan.shards}

    def inputs(pending: list[Shard]) -> dict[int, ShardInput]:
        return dict(shard_circuits(parse_qasm(qasm), shard_plan, [s.shard_id for s in pending]))

    return _run_unit([by_id[i] for i in shard_ids], inputs, run_key, node_id, batched, cluster, storage, mode)


def _run_unit(
    shards: list[Shard],
    inputs: Callable[[list[Shard]], dict[int, ShardInput]],
    run_key: str,
    node_id: str,
    batched: bool,
    cluster: str | None,
    storage: str | None,
    mode: str,
) -> list[dict[str, Any]]:
    """One work unit through a task's own executor: stored shards reused, the rest run (remote job
    ids ledgered before anything waits on them), results returned as dicts in shard order."""
    registry = resolve_cluster(cluster)
    store = resolve_store(storage)
    executor = NodeExecutor(
        registry,
        parse_mode(mode),
        ledger=store.ledger(),
        shard_cache=store,
        run_key=run_key,
        retry=RetryPolicy(attempts=2, base_delay=1.0),
    )
    cached, pending = executor.split_cached(shards)
    done: list[ShardResult] = list(cached)
    if pending:
        prepared = executor.prepare([node_id])
        done += executor.run_unit(WorkUnit(prepared[node_id], pending, batched), inputs(pending))
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
    kinds = sorted({s.kind for s in unit.shards})
    return execute_unit_task.submit(
        qasm=qasm,
        plan=plan,
        run_key=run_key,
        shard_ids=ids,
        node_id=unit.node.node_id,
        batched=unit.batched,
        batched_label=f"{len(ids)} {'/'.join(kinds)} shard(s){', batched' if unit.batched else ''}",
        cluster=cluster,
        storage=storage,
        mode=mode,
    )


@task(
    name="sweep-shards",
    task_run_name="sweep {node_id} ({batched_label})",
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=transient_only,
    cache_policy=NONE,
)
def sweep_unit_task(
    *,
    qasm: str,
    parameter_names: list[str],
    values: str,
    plan: dict[str, Any],
    run_key: str,
    shard_ids: list[int],
    node_id: str,
    batched_label: str,
    cluster: str | None,
    storage: str | None,
    mode: str,
) -> list[dict[str, Any]]:
    """Run one node's sweep batches through the executor (retries, failover, host slots; a remote
    node's bindings ledgered one job each) and return their results. ``values`` holds each shard's
    bindings as JSON (``{shard id: [[value per parameter name], ...]}``), so a task carries only its
    own, and as one string: Prefect walks every element of a structured parameter, twice per task,
    which for 1000 bindings of 36 parameters costs about 0.3 s."""
    by_id = {s.shard_id: s for s in SweepPlan.from_dict(plan).shards}

    def inputs(pending: list[Shard]) -> dict[int, ShardInput]:
        circuit = parse_qasm(qasm)
        rows = json.loads(values)
        return {
            s.shard_id: SweepInput(circuit, [dict(zip(parameter_names, v, strict=True)) for v in rows[str(s.shard_id)]])
            for s in pending
        }

    return _run_unit([by_id[i] for i in shard_ids], inputs, run_key, node_id, False, cluster, storage, mode)


def submit_sweep_unit(
    unit: WorkUnit,
    *,
    sweep: SweepSpec,
    qasm: str,
    plan: dict[str, Any],
    run_key: str,
    cluster: str | None,
    storage: str | None,
    mode: str,
) -> Any:
    """Submit :func:`sweep_unit_task` for one work unit of a sweep, with its shards' bindings only."""
    ids = [s.shard_id for s in unit.shards]
    values: dict[str, list[list[float]]] = {}
    for shard in unit.shards:
        assert shard.bindings is not None
        start, stop = shard.bindings
        values[str(shard.shard_id)] = [list(v) for v in sweep.values[start:stop]]
    count = sum(len(v) for v in values.values())
    return sweep_unit_task.submit(
        qasm=qasm,
        parameter_names=list(sweep.parameter_names),
        values=json.dumps(values),
        plan=plan,
        run_key=run_key,
        shard_ids=ids,
        node_id=unit.node.node_id,
        batched_label=f"{len(ids)} batch(es), {count} binding(s)",
        cluster=cluster,
        storage=storage,
        mode=mode,
    )


#: Child flow runs a run may start per work pool (each after the earlier ones ended without completing).
MAX_POOL_ATTEMPTS = 20


def _wait_for_child(flow_run_id: Any, pool: str, pool_timeout: float, shard_ids: list[int]) -> Any:
    """The child run's final state. While no worker has picked it up, say so every 30 s; past
    ``pool_timeout`` seconds of that, cancel it and raise.

    Raises:
        ExecutionError: No worker started the child in time; the message names the pool, its workers
            and the command that starts one.
    """
    from prefect import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    logger = get_run_logger()
    with get_client(sync_client=True) as client:
        waiting_since = time.monotonic()
        noted = 0.0
        while True:
            state = client.read_flow_run(flow_run_id).state
            if state is not None and state.is_final():
                return state
            if state is None or state.type is StateType.SCHEDULED:  # no worker has picked it up yet
                waited = time.monotonic() - waiting_since
                if waited >= pool_timeout:
                    workers = _pool_workers(client, pool)
                    message = (
                        f"No worker of work pool {pool!r} started shards {shard_ids} within pool_timeout="
                        f"{pool_timeout:g} s ({workers}). Start one where the pool's nodes live: "
                        f"`bash deployments/start_worker.sh {pool}`, then re-run; the child flow run was cancelled."
                    )
                    client.set_flow_run_state(flow_run_id, Cancelled(message=message), force=True)
                    raise ExecutionError(message)
                if waited - noted >= 30 or noted == 0.0:
                    logger.warning("shards %s wait for a worker of work pool %r (%s); giving up after %g s",
                                   shard_ids, pool, _pool_workers(client, pool), pool_timeout)  # fmt: skip
                    noted = max(waited, 1e-9)
            else:
                waiting_since = time.monotonic()  # started: its jobs' deadlines bound it from here
            time.sleep(min(1.0, max(pool_timeout / 10, 0.1)))


def _pool_workers(client: Any, pool: str) -> str:
    """The pool's workers in words, e.g. ``no worker has ever polled it`` or ``2 worker(s), 0 online``."""
    try:
        workers = client.read_workers_for_work_pool(pool)
    except Exception as exc:  # the pool itself may not exist
        return f"the pool cannot be read: {type(exc).__name__}: {exc}"
    if not workers:
        return "no worker has ever polled it"
    online = sum(1 for w in workers if str(getattr(w, "status", "")).upper().endswith("ONLINE"))
    return f"{len(workers)} worker(s), {online} online"


def _earlier(flow_run: Any) -> bool:
    """Whether ``flow_run`` existed before this dispatch (it was found by its key, not just created
    and failed now): a child that fails in this very call fails the call."""
    from prefect.context import TaskRunContext

    context = TaskRunContext.get()
    started = context.task_run.start_time if context is not None and context.task_run is not None else None
    created = getattr(flow_run, "created", None)
    return started is not None and created is not None and created < started


#: Seconds shards sent to a work pool may wait for a worker to start them (flow parameter ``pool_timeout``).
DEFAULT_POOL_TIMEOUT = 600.0


@task(name="dispatch-to-pool", task_run_name="dispatch to pool {pool}")
def dispatch_pool_task(
    *,
    pool: str,
    request: dict[str, Any],
    run_key: str,
    shard_ids: list[int],
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    dispatch_key: str | None = None,
) -> list[dict[str, Any]]:
    """Send one pool's shards to its ``execute-shards/{pool}`` deployment, as one flow run.

    Idempotency keys make a retried or re-run parent find the same child run instead of starting
    (and paying for) another one: attempt ``k`` of a run and pool has the key ``qcos-{run_key}-{pool}``
    (then ``-2``, ``-3``...); a later round of a ``target_precision`` run passes its own ``dispatch_key``
    (the run key and the round's first shard id) in place of the run key, so each round is a child of
    its own. A child that is running or completed is waited on or read; a new attempt
    starts only after every earlier one ended without completing, and it re-attaches to their jobs
    through the ledger. A child that no worker starts within ``pool_timeout`` seconds is cancelled
    and the task fails saying which pool has no worker and how to start one (a running child is
    bounded by its jobs' deadlines instead). Results come back through the result store.
    """
    from prefect.deployments import run_deployment

    logger = get_run_logger()
    key = dispatch_key or run_key
    flow_run: Any = None
    for attempt in range(1, MAX_POOL_ATTEMPTS + 1):
        suffix = "" if attempt == 1 else f"-{attempt}"
        flow_run = run_deployment(
            name=f"execute-shards/{pool}",
            parameters={"request": request},
            idempotency_key=f"qcos-{key}-{pool}{suffix}",
            timeout=0,
            as_subflow=True,
            flow_run_name=f"{pool}-{run_key[:8]}{key[len(run_key) :]}{suffix}",
        )
        earlier = _earlier(flow_run)
        state = _wait_for_child(flow_run.id, pool, pool_timeout, shard_ids)
        if state.is_completed():
            break
        if state.is_final() and attempt < MAX_POOL_ATTEMPTS and earlier:
            # an earlier run's attempt that ended without completing: start the next one
            logger.info("pool %r: attempt %d (flow run %s) ended %s; starting another", pool, attempt,
                        flow_run.id, state.name)  # fmt: skip
            continue
        raise ExecutionError(
            f"Work pool {pool!r} did not complete shards {shard_ids} (flow run {flow_run.id}: {state.name}: "
            f"{state.message or ''})"
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
