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

from network.circuits import derive_seed
from network.cutting.decomposition import BlockKind
from network.cutting.precision import (
    MAX_ROUNDS,
    PILOT_SHOTS,
    PrecisionReport,
    circuit_variances,
    merge_counts,
    next_round,
)
from network.errors import SpecError, StorageError
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
        key: The run key, when it is not the plan's (see :attr:`run_key`).
    """

    plan: ShardPlan | SweepPlan
    circuit: QuantumCircuit | None = None
    sweep: SweepSpec | None = None
    key: str | None = None

    @property
    def run_key(self) -> str:
        """The run the shards belong to: the plan's, or ``key`` for a later round of a
        ``target_precision`` run (its plan holds that round's shards; they keep the run's key)."""
        return self.key or self.plan.run_key

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
        base = plan
        if spec.target_precision is not None:
            plan = _pilot_plan(plan)
            self._check_rounds(spec, plan)
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
                notes=[*plan.notes, *_precision_plan_notes(spec, plan), "Dry run: nothing was executed."],
                name=spec.label,
                metadata=extra,
                observables=plan.observables,
                cut=summarize_cuts([b.to_dict() for b in plan.cuts]),
            )
        self.persist_plan(spec, base, prepared)  # a target_precision run's pilot is derived from it again
        executor = self.executor.for_run(plan.run_key)  # per-run state stays in the run
        report: PrecisionReport | None = None
        if spec.target_precision is not None:
            results, rebuilt, report = self._run_rounds(spec, plan, driver, prepared, executor, on_shard_done, timings)
            t_rec = time.perf_counter()
        else:
            results = self._execute(Work(plan, circuit=spec.circuit), plan.shards, driver, prepared, executor,
                                    on_shard_done)  # fmt: skip
            t_exec = time.perf_counter()
            rebuilt = driver.stage("reconstruct", self.reconstructor.reconstruct, plan, results, spec.circuit)
            t_rec = time.perf_counter()
            timings.update(execute=t_exec - t_plan, reconstruct=t_rec - t_exec)
        result = assemble_result(
            plan, results, rebuilt, mode=self.mode, seed=plan.seed, timings=timings, name=spec.label, metadata=extra
        )
        if report is not None:
            _report_precision(result, report)
        if reused_plan:
            result.notes.append(f"Plan reused from an earlier run of the same seeded spec (run {plan.run_key}).")
        if self.store is not None:
            result.storage_url = self.store.run_url(plan.run_key)
            driver.stage("persist", self.store.write_result, result)
            timings["persist"] = time.perf_counter() - t_rec
        timings["total"] = time.perf_counter() - t0
        log.info("ran %s: %s, %d shard(s), %.3fs", spec.label, plan.strategy.value, len(plan.shards), timings["total"])
        return result

    def _execute(
        self,
        work: Work,
        shards: Sequence[Shard],
        driver: Driver,
        prepared: Mapping[str, QPUNodeSpec],
        executor: NodeExecutor,
        on_shard_done: ProgressCallback | None,
    ) -> list[ShardResult]:
        """Results of ``shards``: those an earlier attempt stored, the rest run by the driver, in order."""
        cached, pending = executor.split_cached(shards)
        for r in cached:
            if on_shard_done is not None:
                on_shard_done(r)
        ran = driver.execute(work, pending, prepared, executor, on_shard_done or _ignore)
        order = {s.shard_id: i for i, s in enumerate(shards)}
        return sorted([*cached, *ran], key=lambda r: order[r.shard_id])

    def _check_rounds(self, spec: VirtualCircuitSpec, plan: ShardPlan) -> None:
        """Raise before anything runs where rounds cannot run yet.

        Raises:
            SpecError: A plan that is not one expectation block.
        """
        if len(plan.cuts) != 1 or plan.cuts[0].kind is not BlockKind.EXPECTATION:
            raise SpecError(
                f"target_precision={spec.target_precision!r} needs a plan of one expectation block, got "
                f"{len(plan.cuts)} cut block(s)."
            )

    def _run_rounds(
        self,
        spec: VirtualCircuitSpec,
        plan: ShardPlan,
        driver: Driver,
        prepared: Mapping[str, QPUNodeSpec],
        executor: NodeExecutor,
        on_shard_done: ProgressCallback | None,
        timings: dict[str, float],
    ) -> tuple[list[ShardResult], Reconstruction, PrecisionReport]:
        """A ``target_precision`` run: the pilot plan's shards, then rounds of new shards (see
        :mod:`network.cutting.precision`) until the target, the budget or the round limit.

        Every round's shards go through the driver and the executor like any other, under the
        run's key: a re-run reads the stored ones back, and since each round's shots follow from
        the counts before it, it plans the same rounds and runs none of them again.

        Returns:
            Every shard's result (pilot first, then each round's), the reconstruction from the
            counts merged per distinct circuit, and the report.
        """
        from network.cutting import block_problem

        assert spec.target_precision is not None
        target = spec.target_precision
        block = plan.cuts[0]
        problem = block_problem(spec.circuit, block, circuit_hash=plan.circuit_hash)
        pilot = {s.circuit_index or 0: s for s in plan.shards}
        shards = list(plan.shards)
        report = PrecisionReport(target=target, budget=block.total_shots)
        timings.update(execute=0.0, reconstruct=0.0)
        work = Work(plan, circuit=spec.circuit)
        new: Sequence[Shard] = plan.shards
        results: list[ShardResult] = []
        while True:
            t0 = time.perf_counter()
            results += self._execute(work, new, driver, prepared, executor, on_shard_done)
            t1 = time.perf_counter()
            merged_plan, merged = _merge_rounds(plan, shards, results)
            rebuilt = driver.stage("reconstruct", self.reconstructor.reconstruct, merged_plan, merged, spec.circuit)
            errors = [float(e) for e in rebuilt.standard_errors or []]
            circuit_shots = [s.shots for s in merged_plan.shards]
            used = sum(circuit_shots)
            report.rounds.append(
                {"round": len(report.rounds), "shots": sum(s.shots for s in new), "shards": [s.shard_id for s in new],
                 "standard_error": max(errors, default=float("nan"))}
            )  # fmt: skip
            report.total_shots, report.circuit_shots, report.standard_errors = used, circuit_shots, errors
            report.reached = bool(errors) and all(e <= target for e in errors)
            extra: list[int] = []
            if not report.reached and used < report.budget and len(report.rounds) < MAX_ROUNDS:
                raw = [r.counts for r in merged]
                variances = driver.stage("allocate", circuit_variances, problem, block, raw, plan.seed)
                extra = next_round(variances, circuit_shots, target, report.budget - used, standard_errors=errors)
            t2 = time.perf_counter()
            timings["execute"] += t1 - t0
            timings["reconstruct"] += t2 - t1
            if not any(extra):
                break
            new = []
            for index, shots in enumerate(extra):
                if shots <= 0:
                    continue
                template, shard_id = pilot[index], len(shards)
                scale = shots / template.shots
                shard = replace(
                    template,
                    shard_id=shard_id,
                    shots=shots,
                    seed=derive_seed(plan.seed, "shard", shard_id),
                    estimated_seconds=template.estimated_seconds * scale,
                    estimated_cost=template.estimated_cost * scale,
                )
                new.append(shard)
                shards.append(new[-1])
            report.shards += [s.to_dict() for s in new]
            work = Work(replace(plan, shards=tuple(new)), circuit=spec.circuit, key=plan.run_key)
        if report.reached:
            report.stopped_by = "target"
        elif used >= report.budget:
            report.stopped_by = "budget"
        else:
            report.stopped_by = "rounds"
        return results, rebuilt, report

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


def _pilot_plan(plan: ShardPlan) -> ShardPlan:
    """A ``target_precision`` run's first round: the plan with :data:`PILOT_SHOTS` shots for each
    distinct circuit (the plan itself when the budget holds no more than that)."""
    if len(plan.cuts) != 1 or not plan.shards or any(s.block != plan.cuts[0].block_id for s in plan.shards):
        return plan
    if PILOT_SHOTS * len(plan.shards) >= plan.cuts[0].total_shots:
        return plan
    shards = tuple(
        replace(
            s,
            shots=PILOT_SHOTS,
            estimated_seconds=s.estimated_seconds * PILOT_SHOTS / s.shots,
            estimated_cost=s.estimated_cost * PILOT_SHOTS / s.shots,
        )
        for s in plan.shards
    )
    return replace(plan, shards=shards)


def _precision_plan_notes(spec: VirtualCircuitSpec, plan: ShardPlan) -> list[str]:
    if spec.target_precision is None or not plan.cuts:
        return []
    budget = plan.cuts[0].total_shots
    return [
        f"Target precision {spec.target_precision:g}: a pilot round of {sum(s.shots for s in plan.shards):,} shots "
        f"over {len(plan.shards)} distinct circuits, then rounds shared by each circuit's estimated variance, up "
        f"to a budget of {budget:,} shots."
    ]


def _merge_rounds(
    plan: ShardPlan, shards: Sequence[Shard], results: Sequence[ShardResult]
) -> tuple[ShardPlan, list[ShardResult]]:
    """The pilot plan with each shard holding every round's shots of its circuit, and one result
    per pilot shard with the counts of every round merged (what the reconstruction takes)."""
    by_id = {r.shard_id: r for r in results}
    parts: dict[int, list[ShardResult]] = {}
    for shard in shards:
        parts.setdefault(shard.circuit_index or 0, []).append(by_id[shard.shard_id])
    merged_shards, merged_results = [], []
    for shard in plan.shards:
        done = parts[shard.circuit_index or 0]
        total = sum(r.shots for r in done)
        merged_shards.append(replace(shard, shots=total))
        first = by_id[shard.shard_id]
        merged_results.append(replace(first, counts=merge_counts([r.counts for r in done]), shots=total))
    return replace(plan, shards=tuple(merged_shards)), merged_results


def _report_precision(result: QVMResult, report: PrecisionReport) -> None:
    """The report in the result: its field, a note, and the shots as run in ``result.cut``."""
    result.precision = report
    result.notes.append(report.note())
    if result.cut is not None and report.circuit_shots:
        result.cut["shot_allocation"] = {
            "method": "target_precision",
            "total_shots": report.total_shots,
            "budget": report.budget,
            "circuits": len(report.circuit_shots),
            "min_shots": min(report.circuit_shots),
            "max_shots": max(report.circuit_shots),
            "circuit_shots": list(report.circuit_shots),
        }


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
