"""The ``run-sweep`` flow: the one pipeline for sweeps with Prefect as its driver: batches of bindings
are shards run by the executor in mapped tasks (one per node), one table row per binding."""

from __future__ import annotations

import secrets
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.artifacts import Progress
from flows.common import load_bindings, load_circuit_text, parse_mode, resolve_cluster, resolve_store
from flows.drivers import PrefectDriver
from flows.models import RunSweepParameters, block_name
from network.execution import NodeExecutor, ShardResult
from network.pipeline import Pipeline
from network.sweeps import SweepPlan, SweepSpec

__all__ = ["run_sweep"]


@flow(name="run-sweep", validate_parameters=True)
def run_sweep(params: RunSweepParameters) -> dict[str, Any]:
    """Run a parameter sweep and persist its table (parquet) to the result store."""
    logger = get_run_logger()
    store = resolve_store(params.storage)
    qasm = load_circuit_text(params.circuit, store)
    seed = params.seed if params.seed is not None else secrets.randbits(31)
    if params.bindings_file is not None:
        loaded = load_bindings(params.bindings_file, store)
        params = params.model_copy(update={"bindings": loaded, "bindings_file": None})
    sweep = SweepSpec(
        qasm=qasm, grid=params.grid, bindings=params.bindings, shots=params.shots, seed=seed, name=params.name
    )
    mode = parse_mode(params.mode)
    registry = resolve_cluster(params.cluster)
    executor = NodeExecutor(registry, mode, ledger=store.ledger(), shard_cache=store)
    pipeline = Pipeline(registry, mode, executor, store=store)
    driver = PrefectDriver(
        qasm=qasm, cluster=block_name(params.cluster), storage=block_name(params.storage), mode=mode.value
    )
    progress: list[Progress] = []

    def on_plan(plan: SweepPlan) -> None:
        logger.info("%d binding(s) in %d batch(es)", sweep.n_bindings, len(plan.shards))
        progress.append(Progress(len(plan.shards), f"Batches of sweep {plan.sweep_key}"))

    def on_shard_done(result: ShardResult) -> None:
        if progress:
            progress[0].advance()

    result = pipeline.run_sweep(sweep, driver, on_shard_done=on_shard_done, on_plan=on_plan)
    plan = result.plan
    frame = result.frame
    preview = frame.drop(columns=["counts"]).head(50)
    rows = [{str(k): v for k, v in row.items()} for row in preview.to_dict(orient="records")]
    create_table_artifact(table=rows, key="qcos-sweep", description="First 50 bindings")
    url = result.table_url
    create_markdown_artifact(
        markdown=f"# Sweep {plan.sweep_key}\n\n{sweep.n_bindings} bindings, {len(plan.shards)} batch(es), "
        f"{params.shots} shots each.\n\nTable: `{url}`",
        key="qcos-sweep-summary",
    )
    return {
        "sweep_key": plan.sweep_key,
        "run_key": plan.run_key,
        "table_url": url,
        "bindings": sweep.n_bindings,
        "batches": len(plan.shards),
    }
