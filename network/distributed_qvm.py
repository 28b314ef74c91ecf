"""The facade users call: :class:`DistributedQVM`.

``run`` is driver A of the design: plan, execute concurrently in-process, reconstruct. It needs
no server. The Prefect flows (driver B) call the same stage functions.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from network.circuits import derive_seed
from network.errors import SpecError
from network.execution import InMemoryLedger, NodeExecutor, RetryPolicy, ShardResult
from network.node_providers import QPUNodeSpec, QPURegistry, QVMMode
from network.planning import ShardPlan, ShardPlanner
from network.reconstruction import ClassicalReconstructor
from network.results import QVMResult
from network.spec import VirtualCircuitSpec, validate_shots
from network.storage import ResultStore
from network.sweeps import SweepPlan, SweepSpec, plan_sweep, run_sweep_batch, sweep_frame

__all__ = [
    "assemble_result",
    "DistributedQVM",
    "VirtualCircuitSpec",
    "QVMMode",
    "QVMResult",
    "SweepSpec",
    "SweepResult",
]

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    """A sweep's table (one row per binding), its plan, timings and where it was stored."""

    frame: pd.DataFrame
    plan: SweepPlan
    timings: dict[str, float]
    storage_url: str | None = None

    @property
    def sweep_key(self) -> str:
        return self.plan.sweep_key


def _label(op: Any) -> str:
    labels = op.paulis.to_labels()
    if len(labels) == 1 and op.coeffs[0] == 1:
        return str(labels[0])
    return " + ".join(f"{c.real:g}*{p}" for p, c in zip(labels, op.coeffs, strict=True))


def assemble_result(
    plan: ShardPlan,
    results: list[ShardResult],
    counts: dict[str, int],
    *,
    mode: QVMMode,
    seed: int,
    timings: dict[str, float],
    name: str,
    metadata: Mapping[str, Any],
) -> QVMResult:
    """The :class:`QVMResult` of a run, with its notes (emulation, failover, reuse). Both drivers use it."""
    notes = list(plan.notes)
    emulated_nodes = sorted({r.node_id for r in results if r.emulated})
    if emulated_nodes:
        notes.append(
            f"{len(emulated_nodes)} GPU node(s) ran emulated on the CPU (no GPU on this machine): "
            + ", ".join(emulated_nodes)
        )
    for move in (r for r in results if r.extra.get("failover_from")):
        notes.append(
            f"Shard {move.shard_id} failed over from {', '.join(move.extra['failover_from'])} to {move.node_id}."
        )
    reused = sum(1 for r in results if r.extra.get("reused"))
    if reused:
        notes.append(f"{reused} shard result(s) reused from an earlier run of the same spec.")
    return QVMResult(
        counts=counts,
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
    )


class DistributedQVM:
    """Runs circuits on a cluster of heterogeneous nodes.

    Args:
        registry: The cluster, from :class:`~network.node_providers.ClusterBuilder`.
        mode: ``EMULATED`` (default: nothing leaves the machine), ``LIVE`` or ``DRY_RUN``.
        shots: Default shots for specs that do not set their own.
        planner: A custom :class:`ShardPlanner`.
        max_workers: Upper bound on shards running at once.
        store: Where runs are persisted (a :class:`ResultStore` or its URL). With a store, remote
            job ids go to its ledger and completed shards are reused when the same seeded spec
            runs again. ``None`` keeps everything in memory.
        retry: Backoff for transient node errors.
        failover: Move a shard off a node that keeps failing to another node that fits.

    Raises:
        SpecError: ``shots`` is not a positive integer.
    """

    def __init__(
        self,
        registry: QPURegistry,
        mode: QVMMode | str = QVMMode.EMULATED,
        shots: int = 1024,
        *,
        planner: ShardPlanner | None = None,
        max_workers: int | None = None,
        store: ResultStore | str | None = None,
        retry: RetryPolicy | None = None,
        failover: bool = True,
    ) -> None:
        if not isinstance(registry, QPURegistry):
            raise SpecError(f"registry must be a QPURegistry (from ClusterBuilder().build()), got {registry!r}.")
        self.registry = registry
        try:
            self.mode = QVMMode.parse(mode)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
        self.shots = validate_shots(shots)
        self.planner = planner or ShardPlanner()
        self.store = ResultStore(store) if isinstance(store, str) else store
        self.executor = NodeExecutor(
            registry,
            self.mode,
            max_workers=max_workers,
            retry=retry,
            failover=failover,
            ledger=self.store.ledger() if self.store is not None else InMemoryLedger(),
            shard_cache=self.store,
        )
        self.reconstructor = ClassicalReconstructor()

    def prepared_nodes(self) -> dict[str, QPUNodeSpec]:
        """Every node as it runs in this mode (a GPU node emulated on the CPU says so).

        Raises:
            NodeUnavailableError: A node cannot run in this mode (LIVE without its GPU...).
        """
        return self.executor.prepare(self.registry.node_ids)

    def plan(
        self, spec: VirtualCircuitSpec, *, seed: int | None = None, prepared: dict[str, QPUNodeSpec] | None = None
    ) -> ShardPlan:
        """Plan ``spec`` without running it, on the nodes as they run in this mode."""
        nodes = prepared if prepared is not None else self.prepared_nodes()
        return self.planner.plan(spec, list(nodes.values()), shots=self.shots, seed=seed)

    def run(
        self,
        spec: VirtualCircuitSpec,
        *,
        on_shard_done: Callable[[ShardResult], None] | None = None,
        on_plan: Callable[[ShardPlan], None] | None = None,
    ) -> QVMResult:
        """Plan, execute and reconstruct ``spec``.

        Args:
            spec: The circuit and its options.
            on_shard_done: Called as each shard finishes (progress bars).
            on_plan: Called with the plan before anything runs.

        Raises:
            PlanningError: The circuit fits no strategy on this cluster.
            NodeUnavailableError: A planned node cannot run in this mode.
            ExecutionError: A shard failed.
        """
        t0 = time.perf_counter()
        seed = spec.seed if spec.seed is not None else secrets.randbits(31)
        prepared = self.prepared_nodes()
        if spec.observables is not None:
            return self._run_observables(spec, seed, prepared, t0)
        plan = self.plan(spec, seed=seed, prepared=prepared)
        t_plan = time.perf_counter()
        if on_plan is not None:
            on_plan(plan)
        notes = list(plan.notes)
        timings = {"plan": t_plan - t0}
        if self.mode is QVMMode.DRY_RUN:
            emulated = any(prepared[s.node_id].emulates for s in plan.shards)
            timings["total"] = time.perf_counter() - t0
            return QVMResult(
                counts={},
                shots=plan.shots,
                mode=self.mode,
                plan=plan,
                timings=timings,
                seed=seed,
                approximate=plan.approximate,
                emulated=emulated,
                notes=[*notes, "Dry run: nothing was executed."],
                name=spec.label,
                metadata=dict(spec.metadata),
            )
        self.executor.run_key = plan.run_key
        if self.store is not None:
            self.store.write_plan(plan)
        results = self.executor.run_plan(plan, spec.circuit, on_result=on_shard_done, prepared=prepared)
        t_exec = time.perf_counter()
        counts = self.reconstructor.reconstruct_counts(plan, results)
        t_rec = time.perf_counter()
        timings.update(execute=t_exec - t_plan, reconstruct=t_rec - t_exec, total=t_rec - t0)
        result = assemble_result(
            plan, results, counts, mode=self.mode, seed=seed, timings=timings, name=spec.label, metadata=spec.metadata
        )
        if self.store is not None:
            t_store = time.perf_counter()
            result.storage_url = self.store.run_url(plan.run_key)
            self.store.write_result(result)
            timings["persist"] = time.perf_counter() - t_store
        log.info(
            "ran %s: %s, %d shard(s), %.3fs",
            spec.label,
            plan.strategy.value,
            len(plan.shards),
            timings["total"],
        )
        return result

    def _run_observables(
        self, spec: VirtualCircuitSpec, seed: int, prepared: dict[str, QPUNodeSpec], t0: float
    ) -> QVMResult:
        """Expectation values through the cutting pipeline (no cut when the circuit fits a node)."""
        from network.circuits import ClbitLayout
        from network.cutting import plan_cuts, run_cut
        from network.planning import Shard, Strategy

        circuit = spec.unmeasured_circuit
        shots = spec.shots or self.shots
        nodes = [n for n in prepared.values() if n.exact or spec.allow_approximate]
        cut_plan, problem = plan_cuts(
            circuit, spec.observables, nodes, shots=shots, max_overhead=spec.max_sampling_overhead, seed=seed
        )
        shards = tuple(
            Shard(
                shard_id=i,
                node_id=cut_plan.nodes[label][0],
                qubits=(),
                clbits=(),
                shots=shots * cut_plan.subexperiments[label],
                seed=derive_seed(seed, "cut", label),
                whole_circuit=False,
                exact=True,
                estimated_seconds=0.0,
                estimated_cost=0.0,
            )
            for i, label in enumerate(sorted(cut_plan.subexperiments))
        )
        strategy = Strategy.CUT if cut_plan.cuts else Strategy.WHOLE
        notes = [
            f"{len(cut_plan.cuts)} cut(s), sampling overhead {cut_plan.sampling_overhead:g}, "
            f"{sum(cut_plan.subexperiments.values())} subexperiments of {shots} shots."
        ]
        plan = ShardPlan(
            strategy=strategy,
            shards=shards,
            shots=shots,
            seed=seed,
            circuit_hash=spec.analysis.circuit_hash,
            n_qubits=circuit.num_qubits,
            layout=ClbitLayout(0, ()),
            approximate=False,
            estimated_seconds=0.0,
            estimated_cost=0.0,
            nodes=tuple(prepared[nid] for nid in sorted({s.node_id for s in shards})),
            notes=tuple(notes),
        )
        t_plan = time.perf_counter()
        timings = {"plan": t_plan - t0}
        if self.mode is QVMMode.DRY_RUN:
            timings["total"] = time.perf_counter() - t0
            return QVMResult({}, shots, self.mode, plan, timings=timings, seed=seed, notes=notes, name=spec.label,
                             observables=[str(o) for o in spec.observables], cut=cut_plan.to_dict())  # fmt: skip
        outcome = run_cut(spec.observables, cut_plan, problem, self.registry, prepared, seed=seed)
        timings.update(outcome.timings)
        timings["total"] = time.perf_counter() - t0
        return QVMResult(
            counts={},
            shots=shots,
            mode=self.mode,
            plan=plan,
            timings=timings,
            seed=seed,
            emulated=any(prepared[s.node_id].emulates for s in shards),
            notes=notes,
            name=spec.label,
            metadata=dict(spec.metadata),
            observables=[_label(o) for o in spec.observables],
            expectation_values=outcome.values,
            standard_errors=outcome.standard_errors,
            cut={**cut_plan.to_dict(), "executed_circuits": outcome.executed_circuits},
        )

    def run_sweep(self, sweep: SweepSpec) -> SweepResult:
        """Run every binding of ``sweep``, batched per node, nodes in parallel.

        With a store, the table is written as ``tables/sweep.parquet`` under the sweep's key.

        Raises:
            PlanningError: No node fits the circuit.
            ExecutionError: A batch failed.
        """
        t0 = time.perf_counter()
        prepared = self.prepared_nodes()
        plan = plan_sweep(sweep, list(prepared.values()), seed=secrets.randbits(31) if sweep.seed is None else None)
        t_plan = time.perf_counter()
        by_node: dict[str, list[Any]] = {}
        for batch in plan.batches:
            by_node.setdefault(batch.node_id, []).append(batch)

        def work(node_id: str) -> list[dict[str, Any]]:
            return [run_sweep_batch(sweep, b, self.registry, prepared[node_id]) for b in by_node[node_id]]

        if len(by_node) == 1:
            outputs = [work(next(iter(by_node)))]
        else:
            with ThreadPoolExecutor(max_workers=len(by_node), thread_name_prefix="qvm-sweep") as pool:
                outputs = list(pool.map(work, by_node))
        t_exec = time.perf_counter()
        frame = sweep_frame(sweep, plan, [r for out in outputs for r in out])
        timings = {"plan": t_plan - t0, "execute": t_exec - t_plan, "total": time.perf_counter() - t0}
        result = SweepResult(frame, plan, timings)
        if self.store is not None:
            self.store.write_table(plan.sweep_key, "sweep", frame)
            result.storage_url = self.store.run_url(plan.sweep_key)
        return result
