"""The ``run-sweep`` flow: bindings batched per node, batches in parallel, one table row per binding."""

from __future__ import annotations

import secrets
from typing import Any, cast

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.utilities.annotations import quote

from flows.common import load_bindings, load_circuit_text, parse_mode, resolve_cluster, resolve_store
from flows.models import RunSweepParameters
from flows.tasks import transient_only
from network.distributed_qvm import DistributedQVM
from network.sweeps import SweepBatch, SweepSpec, plan_sweep, run_sweep_batch, sweep_frame

__all__ = ["run_sweep"]


def _sweep(params: RunSweepParameters, qasm: str, seed: int) -> SweepSpec:
    return SweepSpec(
        qasm=qasm, grid=params.grid, bindings=params.bindings, shots=params.shots, seed=seed, name=params.name
    )


@task(name="sweep-batch", task_run_name="sweep batch {batch_id}", retries=2, retry_delay_seconds=2,
      retry_jitter_factor=0.5, retry_condition_fn=transient_only)  # fmt: skip
def sweep_batch_task(
    params: RunSweepParameters, qasm: str, seed: int, batch_id: int, batch: dict[str, Any]
) -> dict[str, Any]:
    """Run one batch of bindings on its node (one provider call)."""
    qvm = DistributedQVM(resolve_cluster(params.cluster), mode=parse_mode(params.mode))
    prepared = qvm.prepared_nodes()
    one = SweepBatch(**batch)
    return run_sweep_batch(_sweep(params, qasm, seed), one, qvm.registry, prepared[one.node_id])


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
    sweep = _sweep(params, qasm, seed)
    qvm = DistributedQVM(resolve_cluster(params.cluster), mode=parse_mode(params.mode))
    plan = plan_sweep(sweep, list(qvm.prepared_nodes().values()))
    logger.info("%d binding(s) in %d batch(es)", sweep.n_bindings, len(plan.batches))
    # quote(): the bindings can be large, and Prefect would otherwise walk every value of them
    # (twice per task) looking for futures; there are none. The task receives params unchanged.
    quoted = cast(RunSweepParameters, quote(params))
    futures = [sweep_batch_task.submit(quoted, qasm, seed, b.batch_id, b.to_dict()) for b in plan.batches]
    frame = sweep_frame(sweep, plan, [f.result() for f in futures])
    url = store.write_table(plan.sweep_key, "sweep", frame)
    preview = frame.drop(columns=["counts"]).head(50)
    rows = [{str(k): v for k, v in row.items()} for row in preview.to_dict(orient="records")]
    create_table_artifact(table=rows, key="qcos-sweep", description="First 50 bindings")
    create_markdown_artifact(
        markdown=f"# Sweep {plan.sweep_key}\n\n{sweep.n_bindings} bindings, {len(plan.batches)} batch(es), "
        f"{params.shots} shots each.\n\nTable: `{url}`",
        key="qcos-sweep-summary",
    )
    return {"sweep_key": plan.sweep_key, "table_url": url, "bindings": sweep.n_bindings, "batches": len(plan.batches)}
