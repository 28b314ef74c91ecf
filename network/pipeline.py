"""One pipeline, two drivers: plan -> execute -> reconstruct -> assemble -> persist, written once.

:class:`Pipeline` holds the stages; a :class:`Driver` says how they run. The in-process driver
(:class:`InProcessDriver`, what :class:`~network.distributed_qvm.DistributedQVM` uses) calls each stage
directly and runs shards on a thread pool; the Prefect driver (``flows.drivers.PrefectDriver``) runs
the stages as tasks and the shards as mapped tasks, batched per node, with shards of pooled nodes
sent to their work pool's deployment. Either way every shard (whole circuit, partition block, cut
subexperiment, sweep batch) goes through :class:`~network.execution.NodeExecutor`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from network.errors import StorageError
from network.execution import NodeExecutor, ProgressCallback, ShardInput, ShardResult, shard_circuits
from network.node_providers import QPUNodeSpec, QPURegistry, QVMMode
from network.planning import Shard, ShardPlan, ShardPlanner, plan_key
from network.reconstruction import ClassicalReconstructor, Reconstruction, summarize_cuts
from network.results import QVMResult
from network.spec import VirtualCircuitSpec
from network.storage import ResultStore
from network.sweeps import SweepPlan, SweepSpec, plan_sweep, sweep_frame, sweep_inputs

if TYPE_CHECKING:
    import pandas as pd
    from qiskit import QuantumCircuit

__all__ = ["Driver", "InProcessDriver", "Pipeline", "SweepResult", "Work", "assemble_result"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class Work:
    """What the shards of one run execute: a circuit's plan, or a sweep's.

    Attributes:
        plan: The plan the shards come from.
        circuit: The circuit a :class:`ShardPlan` was made for.
        sweep: The sweep a :class:`SweepPlan` was made for.
    """

    plan: ShardPlan | SweepPlan
    circuit: QuantumCircuit | None = None
    sweep: SweepSpec | None = None

    @property
    def run_key(self) -> str:
        return self.plan.run_key

    def inputs(self, shards: Sequence[Shard]) -> dict[int, ShardInput]:
        """What each shard runs, by shard id."""
        if self.sweep is not None:
            return dict(sweep_inputs(self.sweep, shards))
        assert self.circuit is not None and isinstance(self.plan, ShardPlan)
        return dict(shard_circuits(self.circuit, self.plan, [s.shard_id for s in shards]))


class Driver(Protocol):
    """How a pipeline's stages and shards run."""

    def prepare(self, pipeline: Pipeline) -> dict[str, QPUNodeSpec]:
        """The nodes as they run in the pipeline's mode (raises before anything runs)."""
        ...

    def stage(self, name: str, fn: Callable[..., _T], /, *args: Any) -> _T:
        """Run one stage (``plan``, ``reconstruct``, ``persist``)."""
        ...

    def execute(
        self,
        work: Work,
        shards: Sequence[Shard],
        prepared: Mapping[str, QPUNodeSpec],
        executor: NodeExecutor,
        on_result: ProgressCallback,
    ) -> list[ShardResult]:
        """Run ``shards`` (none of them stored yet) and return their results."""
        ...


class InProcessDriver:
    """Stages called directly, shards on the executor's thread pool: no server needed."""

    def prepare(self, pipeline: Pipeline) -> dict[str, QPUNodeSpec]:
        return pipeline.executor.prepare(pipeline.registry.node_ids)

    def stage(self, name: str, fn: Callable[..., _T], /, *args: Any) -> _T:
        return fn(*args)

    def execute(
        self,
        work: Work,
        shards: Sequence[Shard],
        prepared: Mapping[str, QPUNodeSpec],
        executor: NodeExecutor,
        on_result: ProgressCallback,
    ) -> list[ShardResult]:
        return executor.run_shards(shards, work.inputs(shards), on_result=on_result, prepared=prepared)


@dataclass
class SweepResult:
    """A sweep's table (one row per binding), its plan, timings and where it was stored."""

    frame: pd.DataFrame
    plan: SweepPlan
    timings: dict[str, float]
    storage_url: str | None = None
    shard_results: list[ShardResult] | None = None
    table_url: str | None = None

    @property
    def sweep_key(self) -> str:
        return self.plan.sweep_key


class Pipeline:
    """The stages of a run, shared by both drivers.

    Args:
        registry: The cluster.
        mode: EMULATED, LIVE or DRY_RUN.
        executor: Runs shards (its ledger and shard cache are the store's when there is one).
        shots: Shots for specs that set none.
        planner: Plans specs.
        store: Where plans, shards and results are kept; ``None`` keeps them in memory.
    """

    def __init__(
        self,
        registry: QPURegistry,
        mode: QVMMode,
        executor: NodeExecutor,
        *,
        shots: int = 1024,
        planner: ShardPlanner | None = None,
        store: ResultStore | None = None,
    ) -> None:
        self.registry = registry
        self.mode = mode
        self.executor = executor
        self.shots = shots
        self.planner = planner or ShardPlanner()
        self.store = store
        self.reconstructor = ClassicalReconstructor()

    # -- stages ---------------------------------------------------------------------------------

    def plan(self, spec: VirtualCircuitSpec, seed: int, prepared: Mapping[str, QPUNodeSpec]) -> tuple[ShardPlan, bool]:
        """The plan, and whether it is an earlier run's (a seeded spec on the same cluster, stored).

        Reusing the stored plan keeps a re-run on its run key, so it re-attaches to jobs the first
        run submitted and reuses its stored shards even where planning is not reproducible to the
        bit (a cut search stopped by its time budget).
        """
        nodes = list(prepared.values())
        key = plan_key(spec, nodes, self.shots) if self.store is not None and spec.seed is not None else None
        if key is not None and self.store is not None:
            try:
                stored = self.store.find_plan(key)
            except StorageError as exc:
                log.warning("cannot read stored plans (%s); planning afresh", exc)
                stored = None
            if stored is not None:
                return stored, True
        plan = self.planner.plan(spec, nodes, shots=self.shots, seed=seed)
        return replace(plan, mode=self.mode.value), False

    def persist_plan(self, spec: VirtualCircuitSpec, plan: ShardPlan, prepared: Mapping[str, QPUNodeSpec]) -> None:
        if self.store is None:
            return
        self.store.write_plan(plan)
        if spec.seed is not None:
            self.store.remember_plan(plan_key(spec, list(prepared.values()), self.shots), plan)

    # -- runs -----------------------------------------------------------------------------------

    def run(
        self,
        spec: VirtualCircuitSpec,
        driver: Driver,
        *,
        on_shard_done: ProgressCallback | None = None,
        on_plan: Callable[[ShardPlan], None] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> QVMResult:
        """Plan, execute, reconstruct, assemble and persist one spec.

        Raises:
            PlanningError: The circuit fits no strategy on this cluster.
            NodeUnavailableError: A planned node cannot run in this mode.
            ExecutionError: A shard failed.
        """
        t0 = time.perf_counter()
        seed = spec.seed if spec.seed is not None else secrets.randbits(31)
        prepared = driver.prepare(self)
        plan, reused_plan = driver.stage("plan", self.plan, spec, seed, prepared)
        t_plan = time.perf_counter()
        if on_plan is not None:
            on_plan(plan)
        timings = {"plan": t_plan - t0}
        extra = {**spec.metadata, **(metadata or {})}
        if self.mode is QVMMode.DRY_RUN:
            timings["total"] = time.perf_counter() - t0
            return QVMResult(
                counts={},
                shots=plan.shots,
                mode=self.mode,
                plan=plan,
                timings=timings,
                seed=plan.seed,
                approximate=plan.approximate,
                emulated=any(prepared[s.node_id].emulates for s in plan.shards if s.node_id in prepared),
                notes=[*plan.notes, "Dry run: nothing was executed."],
                name=spec.label,
                metadata=extra,
                observables=plan.observables,
                cut=summarize_cuts([b.to_dict() for b in plan.cuts]),
            )
        self.persist_plan(spec, plan, prepared)
        executor = self.executor.for_run(plan.run_key)  # per-run state stays in the run
        cached, pending = executor.split_cached(plan.shards)
        for r in cached:
            if on_shard_done is not None:
                on_shard_done(r)
        ran = driver.execute(Work(plan, circuit=spec.circuit), pending, prepared, executor, on_shard_done or _ignore)
        order = {s.shard_id: i for i, s in enumerate(plan.shards)}
        results = sorted([*cached, *ran], key=lambda r: order[r.shard_id])
        t_exec = time.perf_counter()
        rebuilt = driver.stage("reconstruct", self.reconstructor.reconstruct, plan, results, spec.circuit)
        t_rec = time.perf_counter()
        timings.update(execute=t_exec - t_plan, reconstruct=t_rec - t_exec)
        result = assemble_result(
            plan, results, rebuilt, mode=self.mode, seed=plan.seed, timings=timings, name=spec.label, metadata=extra
        )
        if reused_plan:
            result.notes.append(f"Plan reused from an earlier run of the same seeded spec (run {plan.run_key}).")
        if self.store is not None:
            result.storage_url = self.store.run_url(plan.run_key)
            driver.stage("persist", self.store.write_result, result)
            timings["persist"] = time.perf_counter() - t_rec
        timings["total"] = time.perf_counter() - t0
        log.info("ran %s: %s, %d shard(s), %.3fs", spec.label, plan.strategy.value, len(plan.shards), timings["total"])
        return result

    def run_sweep(
        self,
        sweep: SweepSpec,
        driver: Driver,
        *,
        on_shard_done: ProgressCallback | None = None,
        on_plan: Callable[[SweepPlan], None] | None = None,
    ) -> SweepResult:
        """Plan a sweep's batches, run them as shards, build the table (one row per binding) and
        store it as ``tables/sweep.parquet`` under the run's key (the sweep, its nodes, the mode).

        Raises:
            PlanningError: No node fits the circuit.
            ExecutionError: A batch failed.
        """
        t0 = time.perf_counter()
        prepared = driver.prepare(self)
        single = {nid for nid in prepared if self.registry.provider(nid).remote}
        seed = secrets.randbits(31) if sweep.seed is None else None
        plan = replace(
            driver.stage("plan", _plan_sweep, sweep, list(prepared.values()), seed, single), mode=self.mode.value
        )
        t_plan = time.perf_counter()
        if on_plan is not None:
            on_plan(plan)
        executor = self.executor.for_run(plan.run_key)
        cached, pending = executor.split_cached(plan.shards)
        for r in cached:
            if on_shard_done is not None:
                on_shard_done(r)
        ran = driver.execute(Work(plan, sweep=sweep), pending, prepared, executor, on_shard_done or _ignore)
        results = sorted([*cached, *ran], key=lambda r: r.shard_id)
        t_exec = time.perf_counter()
        frame = driver.stage("reconstruct", sweep_frame, sweep, plan, results)
        timings = {"plan": t_plan - t0, "execute": t_exec - t_plan, "total": time.perf_counter() - t0}
        out = SweepResult(frame, plan, timings, shard_results=results)
        if self.store is not None:
            out.table_url = driver.stage("persist", self.store.write_table, plan.run_key, "sweep", frame)
            out.storage_url = self.store.run_url(plan.run_key)
            timings["total"] = time.perf_counter() - t0
        return out


def _plan_sweep(sweep: SweepSpec, nodes: Sequence[QPUNodeSpec], seed: int | None, single: set[str]) -> SweepPlan:
    return plan_sweep(sweep, nodes, seed=seed, single=single)


def _ignore(_: ShardResult) -> None:
    return None


def _stand_in(emulates: str | None) -> str:
    """What ran instead of the declared device, in words."""
    if emulates == "GPU":
        return "a GPU node emulated on the CPU"
    return f"emulated by {emulates}" if emulates else "emulated"


def _ids(ids: Sequence[int], limit: int = 12) -> str:
    shown = ", ".join(map(str, ids[:limit]))
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def assemble_result(
    plan: ShardPlan,
    results: list[ShardResult],
    rebuilt: Reconstruction,
    *,
    mode: QVMMode,
    seed: int,
    timings: dict[str, float],
    name: str,
    metadata: Mapping[str, Any],
) -> QVMResult:
    """The :class:`QVMResult` of a run, with its notes (reconstruction, emulation, failover, reuse)."""
    notes = [*plan.notes, *rebuilt.notes]
    emulated_nodes = sorted({r.node_id for r in results if r.emulated})
    if emulated_nodes:
        stand_ins = {r.node_id: r.extra.get("emulates") for r in results if r.emulated}
        notes.append(
            f"{len(emulated_nodes)} node(s) ran emulated on this machine, no real device used: "
            + ", ".join(f"{n} ({_stand_in(stand_ins.get(n))})" for n in emulated_nodes)
        )
    for move in (r for r in results if r.extra.get("failover_from")):
        notes.append(
            f"Shard {move.shard_id} failed over from {', '.join(move.extra['failover_from'])} to {move.node_id}."
        )
    reported = [float(r.extra["cost_usd"]) for r in results if r.extra.get("cost_usd") is not None]
    if reported:
        notes.append(
            f"Cost reported by the providers for {len(reported)} shard(s): ${sum(reported):.4g} "
            f"(estimated before running: {plan.estimated_cost:.4g})."
        )
    reused = sum(1 for r in results if r.extra.get("reused"))
    if reused:
        notes.append(f"{reused} shard result(s) reused from an earlier run of the same spec.")
    reattached = [r.shard_id for r in results if r.extra.get("reattached")]
    if reattached:
        notes.append(
            f"{len(reattached)} shard(s) re-attached to the job an earlier attempt submitted (not paid again): "
            f"{_ids(reattached)}."
        )
    retried = [(r.shard_id, int(r.extra["retries"])) for r in results if r.extra.get("retries")]
    if retried:
        notes.append(
            f"{sum(n for _, n in retried)} transient error(s) retried on {len(retried)} shard(s): "
            f"{_ids([i for i, _ in retried])}."
        )
    return QVMResult(
        counts=rebuilt.counts,
        shots=plan.shots,
        mode=mode,
        plan=plan,
        shard_results=results,
        timings=timings,
        seed=seed,
        approximate=any(not r.exact for r in results),
        emulated=bool(emulated_nodes),
        notes=notes,
        name=name,
        metadata=dict(metadata),
        observables=plan.observables,
        expectation_values=rebuilt.expectation_values,
        standard_errors=rebuilt.standard_errors,
        cut=rebuilt.cut_summary(),
        reconstructed=rebuilt.reconstructed,
        quasi_distribution=rebuilt.quasi_distribution(plan.n_qubits),
    )
