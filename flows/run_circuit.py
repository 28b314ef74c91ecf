"""The ``run-circuit`` flow: the one pipeline (plan, execute, reconstruct, persist) with Prefect as its
driver: stages as tasks, shards as mapped tasks batched per node (cut subexperiments included), pooled
shards through their pool's deployment, artifacts in the UI."""

from __future__ import annotations

import secrets
from typing import Any

from prefect import flow, get_run_logger

from flows.artifacts import Progress, publish_plan, publish_result
from flows.common import load_circuit_text, parse_mode, resolve_cluster, resolve_store
from flows.drivers import PrefectDriver
from flows.models import RunCircuitParameters, block_name
from network.execution import NodeExecutor, ShardResult
from network.node_providers import QVMMode
from network.pipeline import Pipeline
from network.planning import ShardPlan
from network.spec import VirtualCircuitSpec

__all__ = ["run_circuit", "spec_from_parameters"]


def spec_from_parameters(params: RunCircuitParameters, qasm: str, seed: int) -> VirtualCircuitSpec:
    """The spec the flow runs: the parameters share the spec's option names."""
    return VirtualCircuitSpec(
        qasm=qasm,
        shots=params.shots,
        seed=seed,
        strategy=params.strategy,
        max_cost=params.max_cost,
        allow_approximate=params.allow_approximate,
        name=params.name,
        observables=params.observables,
        max_sampling_overhead=params.max_sampling_overhead,
        max_subexperiments=params.max_subexperiments,
        shot_allocation=params.shot_allocation,
        joint_cuts=params.joint_cuts,
        target_precision=params.target_precision,
    )


@flow(name="run-circuit", validate_parameters=True)
def run_circuit(params: RunCircuitParameters) -> dict[str, Any]:
    """Run one circuit on the cluster and persist the result.

    Shards whose node names a work pool are sent to that pool's ``execute-shards`` deployment,
    one flow run per pool; the rest run in this flow's task runner. Cut subexperiments are shards
    like any other.
    """
    logger = get_run_logger()
    store = resolve_store(params.storage)
    qasm = load_circuit_text(params.circuit, store)
    seed = params.seed if params.seed is not None else secrets.randbits(31)
    mode = parse_mode(params.mode)
    spec = spec_from_parameters(params, qasm, seed)
    registry = resolve_cluster(params.cluster)
    executor = NodeExecutor(registry, mode, ledger=store.ledger(), shard_cache=store)
    pipeline = Pipeline(registry, mode, executor, shots=params.shots, store=store)
    driver = PrefectDriver(
        qasm=qasm,
        cluster=block_name(params.cluster),
        storage=block_name(params.storage),
        mode=mode.value,
        pool_timeout=params.pool_timeout,
    )
    progress: list[Progress] = []

    def on_plan(plan: ShardPlan) -> None:
        label = params.name or f"run {plan.run_key[:8]}"
        publish_plan(plan, label)
        logger.info(
            "%s: %s, %d shard(s), estimated %.3g s, cost %g", label, plan.strategy.value, len(plan.shards),
            plan.estimated_seconds, plan.estimated_cost,
        )  # fmt: skip
        for note in plan.notes:
            logger.info("%s: %s", label, note)
        if mode is not QVMMode.DRY_RUN:
            progress.append(Progress(len(plan.shards), f"Shards of {label}"))

    def on_shard_done(result: ShardResult) -> None:
        if progress:
            progress[0].advance()

    result = pipeline.run(spec, driver, on_plan=on_plan, on_shard_done=on_shard_done, metadata={"flow": "run-circuit"})
    if mode is QVMMode.DRY_RUN:
        store.write_plan(result.plan)
        return {
            "run_key": result.run_key,
            "strategy": result.strategy.value,
            "dry_run": True,
            "plan": result.plan.to_dict(),
        }
    publish_result(result, store)
    logger.info("%s: stored at %s", result.name, result.storage_url)
    summary: dict[str, Any] = {
        "run_key": result.run_key,
        "storage_url": result.storage_url,
        "strategy": result.strategy.value,
        "shards": len(result.plan.shards),
        "timings": result.timings,
        "top": result.most_frequent(5),
        "reconstructed": result.reconstructed,
        "cut": result.cut,
    }
    if result.expectation_values is not None:
        summary.update(
            observables=result.observables,
            expectation_values=result.expectation_values,
            standard_errors=result.standard_errors,
        )
    if result.precision is not None:
        summary["precision"] = result.precision.to_dict()
    return summary
