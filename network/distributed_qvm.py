"""The facade users call: :class:`DistributedQVM`.

``run`` is driver A of the design: plan, execute concurrently in-process, reconstruct. It needs
no server. The Prefect flows (driver B) call the same stage functions.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from network.circuits import derive_seed
from network.errors import CircuitCompileError, PlanningError, SpecError
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


def _stand_in(emulates: str | None) -> str:
    """What ran instead of the declared device, in words."""
    if emulates == "GPU":
        return "a GPU node emulated on the CPU"
    return f"emulated by {emulates}" if emulates else "emulated"


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

    def close(self) -> None:
        """Close the cluster's providers: open Runtime batches, HTTP clients, Dask clusters."""
        self.registry.close()

    def __enter__(self) -> DistributedQVM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        if self.needs_cutting(spec, nodes):
            planned = self._plan_cut(
                spec, seed if seed is not None else derive_seed(0, spec.analysis.circuit_hash), nodes
            )
            if planned is not None:
                return planned[2]
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
        if self.needs_cutting(spec, prepared):
            cut = self._run_cut(spec, seed, prepared, t0)
            if cut is not None:
                return cut
            # the cut planner chose an approximate node: place it without searching for cuts again
            plan = self.planner.plan(spec, list(prepared.values()), shots=self.shots, seed=seed)
        else:
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
        executor = self.executor.for_run(plan.run_key)  # per-run state stays in the run
        if self.store is not None:
            self.store.write_plan(plan)
        results = executor.run_plan(plan, spec.circuit, on_result=on_shard_done, prepared=prepared)
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

    def needs_cutting(self, spec: VirtualCircuitSpec, prepared: Mapping[str, QPUNodeSpec] | None = None) -> bool:
        """True when ``spec`` goes through the cutting pipeline: observables, a forced ``"cut"``
        strategy, or a connected component wider than every exact node (counts are then
        reconstructed from cut subexperiments, or the circuit runs whole on an allowed MPS node)."""
        if spec.observables is not None or spec.strategy == "cut":
            return True
        if spec.strategy is not None:
            return False
        nodes = (prepared if prepared is not None else self.prepared_nodes()).values()
        widest = spec.analysis.widest
        exact = max((n.max_qubits for n in nodes if n.exact), default=0)
        return widest is not None and widest.width > exact

    def _plan_cut(
        self, spec: VirtualCircuitSpec, seed: int, prepared: Mapping[str, QPUNodeSpec]
    ) -> tuple[Any, Any, ShardPlan] | None:
        """The cut plan, its problem and the shard plan describing it; ``None`` when the circuit
        should run whole on an approximate node (an ordinary plan then places it)."""
        from network.cutting import drop_idle_qubits, plan_cuts, plan_distribution

        options: dict[str, Any] = {
            "shots": spec.shots or self.shots, "max_overhead": spec.max_sampling_overhead, "seed": seed,
            "allow_approximate": spec.allow_approximate, "max_subexperiments": spec.max_subexperiments,
            "time_budget": spec.plan_time_budget,
        }  # fmt: skip
        nodes = list(prepared.values())  # the cut planner decides on approximate ones itself
        if spec.observables is not None:
            form = spec.unitary(coherent_reads=True)
            observables = [_with_ancillas(op, form.ancillas) for op in spec.observables]
            circuit, observables = drop_idle_qubits(form.circuit, observables)
            cut_plan, problem = plan_cuts(circuit, observables, nodes, **options)
            problem = (problem, observables)  # run_cut measures the observables as planned
        else:
            try:
                form = spec.unitary()
            except CircuitCompileError as exc:
                n = spec.circuit.num_qubits
                if spec.allow_approximate and any(not node.exact and node.max_qubits >= n for node in nodes):
                    return None  # an ordinary plan puts it whole on the MPS node
                raise PlanningError(
                    f"The circuit is wider than every exact node, so its counts would be reconstructed from "
                    f"cut subexperiments, which needs its mid-circuit measurements deferred: {exc} Add an "
                    f"approximate MPS node of at least {n} qubits (local_gpu_mps) or an exact node that holds "
                    f"its widest component ({spec.analysis.widest.width if spec.analysis.widest else n} qubits)."
                ) from exc
            cut_plan, problem = plan_distribution(form.circuit, nodes, **options)
            if problem is None:
                return None
            problem = (*problem, form)
        return cut_plan, problem, _cut_shard_plan(spec, cut_plan, seed, prepared)

    def _run_cut(
        self, spec: VirtualCircuitSpec, seed: int, prepared: dict[str, QPUNodeSpec], t0: float
    ) -> QVMResult | None:
        """Expectation values or a reconstructed distribution through the cutting pipeline.

        Returns ``None`` when the circuit should run whole on an approximate node instead (an
        ordinary run then plans it).
        """
        from network.cutting import run_cut, run_distribution

        planned = self._plan_cut(spec, seed, prepared)
        if planned is None:
            return None
        cut_plan, problem, plan = planned
        shots = plan.shots
        observables = spec.observables
        notes = list(plan.notes)
        timings = {"plan": time.perf_counter() - t0}
        common: dict[str, Any] = {
            "shots": shots, "mode": self.mode, "plan": plan, "timings": timings, "seed": seed,
            "approximate": cut_plan.approximate, "notes": notes, "name": spec.label, "metadata": dict(spec.metadata),
            "emulated": any(prepared[s.node_id].emulates for s in plan.shards),
        }  # fmt: skip
        if observables is not None:
            common["observables"] = [_label(o) for o in observables]
        if self.mode is QVMMode.DRY_RUN:
            timings["total"] = time.perf_counter() - t0
            notes.append("Dry run: nothing was executed.")
            return QVMResult(counts={}, cut=cut_plan.to_dict(), **common)
        if observables is not None:
            planned_problem, planned_observables = problem
            estimate = run_cut(planned_observables, cut_plan, planned_problem, self.registry, prepared, seed=seed)
            timings.update(estimate.timings)
            result = QVMResult(
                counts={},
                expectation_values=estimate.values,
                standard_errors=estimate.standard_errors,
                cut={**estimate.plan.to_dict(), "executed_circuits": estimate.executed_circuits},
                **common,
            )
        else:
            from network.cut_distribution import to_quasi_dict

            distribution, merged, form = problem
            rebuilt = run_distribution(
                cut_plan, (distribution, merged), self.registry, prepared, shots=shots, seed=seed
            )
            timings.update(rebuilt.timings)
            negative = float(-rebuilt.quasi[rebuilt.quasi < 0].sum())
            notes.append(
                f"Counts reconstructed from cut subexperiments: {shots} samples of the nearest probability "
                f"distribution to the quasi-distribution estimate (its negative mass {negative:.3g})."
            )
            result = QVMResult(
                counts=_counts_over_clbits(spec.circuit, form.clbit_sources, rebuilt.counts),
                cut={
                    **rebuilt.plan.to_dict(),
                    "executed_circuits": rebuilt.executed_circuits,
                    "negative_mass": negative,
                },
                reconstructed=True,
                quasi_distribution=to_quasi_dict(rebuilt.quasi),
                **common,
            )
        if self.store is not None:
            result.storage_url = self.store.run_url(plan.run_key)
            self.store.write_result(result)
        timings["total"] = time.perf_counter() - t0
        return result

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


def _cut_shard_plan(
    spec: VirtualCircuitSpec, cut_plan: Any, seed: int, prepared: Mapping[str, QPUNodeSpec]
) -> ShardPlan:
    """The shard plan that describes a cut run: one shard per piece, on its first node."""
    from network.circuits import ClbitLayout
    from network.planning import Shard, Strategy

    shards = tuple(
        Shard(
            shard_id=i,
            node_id=cut_plan.nodes[label][0],
            qubits=(),
            clbits=(),
            shots=cut_plan.shots * cut_plan.subexperiments[label],
            seed=derive_seed(seed, "cut", label),
            whole_circuit=not cut_plan.cuts,
            exact=not cut_plan.approximate,
            estimated_seconds=0.0,
            estimated_cost=0.0,
        )
        for i, label in enumerate(sorted(cut_plan.subexperiments))
    )
    pieces = "+".join(str(w) for w in sorted(cut_plan.subcircuit_widths.values(), reverse=True))
    per_circuit = cut_plan.circuit_shots
    spread = (
        f": {min(per_circuit)} to {max(per_circuit)} shots for each of {len(per_circuit)} distinct circuits"
        if per_circuit
        else ""
    )
    cuts = ", ".join(f"{kind} at gate {index}" for kind, index in cut_plan.cuts) or "none"
    summary = (
        f"{len(cut_plan.cuts)} cut(s) ({cuts}) found by {cut_plan.source}: pieces of {pieces} qubits, sampling "
        f"overhead {cut_plan.sampling_overhead:g}, {sum(cut_plan.subexperiments.values())} subexperiments sharing "
        f"{cut_plan.total_shots} shots ({cut_plan.shot_allocation.value} to |coefficient|{spread})."
    )
    return ShardPlan(
        strategy=Strategy.CUT if cut_plan.cuts else Strategy.WHOLE,
        shards=shards,
        shots=spec.shots or cut_plan.shots,
        seed=seed,
        circuit_hash=spec.analysis.circuit_hash,
        n_qubits=spec.circuit.num_qubits,
        layout=ClbitLayout(0, ()) if spec.observables is not None else spec.analysis.layout,
        approximate=cut_plan.approximate,
        estimated_seconds=cut_plan.estimated_seconds,
        estimated_cost=cut_plan.estimated_cost,
        nodes=tuple(prepared[nid] for nid in sorted({s.node_id for s in shards})),
        notes=(summary, *cut_plan.notes),
    )


def _counts_over_clbits(circuit: Any, sources: Sequence[int | None], counts: Mapping[str, int]) -> dict[str, int]:
    """Counts keyed over the qubits of a unitary form (qubit 0 rightmost) as the circuit's classical
    bits print them: bit ``j`` is the value of qubit ``sources[j]`` (0 for a bit never written)."""
    from network.circuits import ClbitLayout

    width = circuit.num_clbits
    layout = ClbitLayout.of(circuit)
    out: dict[str, int] = {}
    for key, value in counts.items():
        n = len(key)
        flat = "".join(key[n - 1 - q] if q is not None else "0" for q in (sources[j] for j in reversed(range(width))))
        formatted = layout.format(flat)
        out[formatted] = out.get(formatted, 0) + value
    return out


def _with_ancillas(op: Any, ancillas: int) -> Any:
    """``op`` acting as the identity on ``ancillas`` qubits appended after its own."""
    if not ancillas:
        return op
    from qiskit.quantum_info import SparsePauliOp

    return SparsePauliOp(["I" * ancillas + label for label in op.paulis.to_labels()], op.coeffs)
