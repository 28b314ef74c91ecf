"""The ``run-circuit`` flow: plan, execute (mapped over work units, pools via their deployments),
reconstruct, persist, with artifacts in the UI."""

from __future__ import annotations

import secrets
import time
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.futures import PrefectFuture, as_completed

from flows.artifacts import Progress, publish_plan, publish_result
from flows.common import load_circuit_text, parse_mode, resolve_cluster, resolve_store
from flows.models import RunCircuitParameters
from flows.tasks import dispatch_pool_task, reconstruct_task, submit_unit, transient_only
from network.distributed_qvm import DistributedQVM, assemble_result
from network.execution import NodeExecutor, ShardResult
from network.node_providers import QVMMode
from network.planning import ShardPlan, Strategy
from network.results import QVMResult
from network.spec import VirtualCircuitSpec

__all__ = ["run_circuit", "plan_task", "persist_task"]


def _spec(params: RunCircuitParameters, qasm: str, seed: int) -> VirtualCircuitSpec:
    return VirtualCircuitSpec(
        qasm=qasm,
        shots=params.shots,
        seed=seed,
        strategy=params.strategy,
        max_cost=params.budget,
        name=params.name,
        observables=params.observables,
        max_sampling_overhead=params.max_sampling_overhead,
    )


@task(name="estimate", retries=2, retry_delay_seconds=2, retry_jitter_factor=0.5, retry_condition_fn=transient_only)
def estimate_task(params: RunCircuitParameters, qasm: str, seed: int) -> dict[str, Any]:
    """Expectation values, or counts reconstructed from cut subexperiments, through the same facade
    as the in-process driver; it persists the run itself (quasi-distribution included)."""
    mode = parse_mode(params.mode)
    store = resolve_store(params.storage) if mode is not QVMMode.DRY_RUN else None
    qvm = DistributedQVM(resolve_cluster(params.cluster), mode=mode, shots=params.shots, store=store)
    return qvm.run(_spec(params, qasm, seed)).to_dict()


@task(name="plan")
def plan_task(params: RunCircuitParameters, qasm: str, seed: int) -> dict[str, Any]:
    """Plan the circuit on the cluster (pure). Nodes run here are prepared for this mode; nodes of a work
    pool are planned as declared, since their pool's workers prepare them where they run (a LUMI or GPU
    node cannot be prepared on a machine without Slurm or a GPU)."""
    registry = resolve_cluster(params.cluster)
    qvm = DistributedQVM(registry, mode=parse_mode(params.mode), shots=params.shots)
    pooled = {nid for nid in registry.node_ids if registry.node(nid).work_pool}
    prepared = qvm.executor.prepare([nid for nid in registry.node_ids if nid not in pooled])
    prepared.update({nid: registry.node(nid) for nid in pooled})
    return qvm.plan(_spec(params, qasm, seed), seed=seed, prepared=prepared).to_dict()


@task(name="persist")
def persist_task(result: dict[str, Any], storage: str | None) -> str:
    """Write the run (plan, shards, counts, result.json last) to the result store."""
    store = resolve_store(storage)
    return store.write_result(QVMResult.from_dict(result))


@flow(name="run-circuit", validate_parameters=True)
def run_circuit(params: RunCircuitParameters) -> dict[str, Any]:
    """Run one circuit on the cluster and persist the result.

    Shards whose node names a work pool are sent to that pool's ``execute-shards`` deployment,
    one flow run per pool; the rest run in this flow's task runner.
    """
    logger = get_run_logger()
    t0 = time.perf_counter()
    store = resolve_store(params.storage)
    qasm = load_circuit_text(params.circuit, store)
    seed = params.seed if params.seed is not None else secrets.randbits(31)
    mode = parse_mode(params.mode)
    plan = None if params.observables else ShardPlan.from_dict(plan_task(params, qasm, seed))
    if plan is None or plan.strategy is Strategy.CUT:
        # observables, or counts of a circuit wider than every node: the cutting pipeline
        estimated = QVMResult.from_dict(estimate_task(params, qasm, seed))
        estimated.storage_url = store.run_url(estimated.run_key)
        publish_result(estimated, store)
        return {
            "run_key": estimated.run_key,
            "storage_url": estimated.storage_url,
            "strategy": estimated.strategy.value,
            "observables": estimated.observables,
            "expectation_values": estimated.expectation_values,
            "standard_errors": estimated.standard_errors,
            "reconstructed": estimated.reconstructed,
            "top": estimated.most_frequent(5),
            "cut": estimated.cut,
        }
    label = params.name or f"run {plan.run_key[:8]}"
    publish_plan(plan, label)
    logger.info(
        "%s: %s, %d shard(s), estimated %.3g s, cost %g", label, plan.strategy.value, len(plan.shards),
        plan.estimated_seconds, plan.estimated_cost,
    )  # fmt: skip
    t_plan = time.perf_counter()
    timings = {"plan": t_plan - t0}
    if mode is QVMMode.DRY_RUN:
        store.write_plan(plan)
        return {"run_key": plan.run_key, "strategy": plan.strategy.value, "dry_run": True, "plan": plan.to_dict()}
    store.write_plan(plan)

    registry = resolve_cluster(params.cluster)
    executor = NodeExecutor(registry, mode, shard_cache=store, run_key=plan.run_key)
    cached, pending = executor.split_cached(plan.shards)
    pooled: dict[str, list[int]] = {}
    local = []
    for shard in pending:
        pool = registry.node(shard.node_id).work_pool
        if pool:
            pooled.setdefault(pool, []).append(shard.shard_id)
        else:
            local.append(shard)
    prepared = executor.prepare(sorted({s.node_id for s in local}))
    units = executor.work_units(local, prepared)
    progress = Progress(len(plan.shards), f"Shards of {label}")
    if cached:
        progress.advance(len(cached))
    futures: dict[PrefectFuture[Any], int] = {}
    plan_dict = plan.to_dict()
    for unit in units:
        future = submit_unit(
            unit,
            qasm=qasm,
            plan=plan_dict,
            run_key=plan.run_key,
            cluster=params.cluster,
            storage=params.storage,
            mode=mode.value,
        )
        futures[future] = len(unit.shards)
    for pool, ids in pooled.items():
        request = {
            "qasm": qasm,
            "plan": plan.to_dict(),
            "shard_ids": ids,
            "seed": seed,
            "cluster": params.cluster,
            "storage": params.storage,
            "mode": mode.value,
        }
        futures[dispatch_pool_task.submit(pool=pool, request=request, run_key=plan.run_key, shard_ids=ids)] = len(ids)
    results = [r.to_dict() for r in cached]
    for future in as_completed(list(futures)):
        results += future.result()
        progress.advance(futures[future])
    t_exec = time.perf_counter()
    counts = reconstruct_task(plan.to_dict(), results)
    t_rec = time.perf_counter()
    timings.update(execute=t_exec - t_plan, reconstruct=t_rec - t_exec, total=t_rec - t0)
    shard_results = sorted((ShardResult.from_dict(r) for r in results), key=lambda r: r.shard_id)
    result = assemble_result(
        plan, shard_results, counts, mode=mode, seed=seed, timings=timings, name=label, metadata={"flow": "run-circuit"}
    )
    result.storage_url = store.run_url(plan.run_key)
    persist_task(result.to_dict(), params.storage)
    publish_result(result, store)
    logger.info("%s: stored at %s", label, result.storage_url)
    return {
        "run_key": result.run_key,
        "storage_url": result.storage_url,
        "strategy": plan.strategy.value,
        "shards": len(plan.shards),
        "timings": timings,
        "top": result.most_frequent(5),
    }
