"""Expectation values by circuit cutting (CUT strategy), through qiskit-addon-cutting.

The decomposition, the subexperiments and the quasi-probability reconstruction are the library's;
this module chooses the cuts for the cluster's nodes, bounds the sampling overhead, spreads the
subexperiments over nodes in batches (identical circuits run once), shares the shot budget among
them in proportion to their coefficients, and estimates standard errors by batch means (each
subexperiment's shots split into independent groups).

A circuit that fits a node goes through the same path with no cut.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import PauliList, SparsePauliOp

from network.circuits import analyze_circuit, derive_seed, normalize_counts
from network.cut_experiments import generate_experiments
from network.cut_search import CutCandidate, RejectedCut, candidate_cuts, rank_candidates, strip_barriers
from network.errors import ExecutionError, PlanningError, SpecError, library_errors
from network.node_providers import QPUNodeSpec, QPURegistry, describe_capacities
from network.planning import CostModel

if TYPE_CHECKING:
    from network.cut_distribution import DistributionProblem

__all__ = [
    "CutPlan",
    "CutResult",
    "DistributionResult",
    "ShotAllocation",
    "SubexperimentShots",
    "allocate_shots",
    "choose_cut",
    "drop_idle_qubits",
    "parse_observables",
    "plan_cuts",
    "plan_distribution",
    "run_cut",
    "run_distribution",
    "sample_circuits",
    "share_shots",
]

#: Fewest shots a distinct circuit gets (fewer only when the budget cannot give every circuit that
#: many); below it no standard error is reported.
MIN_CIRCUIT_SHOTS = 8
#: Bootstrap replicates behind each standard error: every circuit's counts are resampled
#: (multinomially, from its observed frequencies) this many times and the estimate recomputed. With
#: 8 batch-means slices instead, the error of the error made a value 4 "standard errors" off about
#: 0.5 % of the time; with 200 replicates it is close to the Gaussian rate (6e-5).
BOOTSTRAP = 200
#: Default bound on the subexperiments of a cut (``VirtualCircuitSpec.max_subexperiments``).
DEFAULT_MAX_SUBEXPERIMENTS = 1000
#: Default seconds the cut search may take (``VirtualCircuitSpec.plan_time_budget``).
DEFAULT_TIME_BUDGET = 0.5


class ShotAllocation(StrEnum):
    """How :func:`run_cut` shares a plan's shot budget among its distinct circuits.

    ``PROPORTIONAL`` gives each circuit shots in proportion to the summed magnitude of the QPD
    coefficients of the terms that use it (qiskit-addon-cutting issue 532); ``UNIFORM`` gives
    every circuit the same.
    """

    PROPORTIONAL = "proportional"
    UNIFORM = "uniform"


def parse_observables(observables: Any, n_qubits: int) -> list[SparsePauliOp]:
    """Observables as a list of SparsePauliOp over ``n_qubits``.

    Accepts a Pauli string, a SparsePauliOp, or a list of either.

    Raises:
        SpecError: Not Pauli, wrong width, or complex coefficients; the message quotes the value.
    """
    items = observables if isinstance(observables, list | tuple) else [observables]
    if not items:
        raise SpecError("observables must not be empty.")
    out = []
    for item in items:
        if isinstance(item, str):
            text = item.replace(" ", "").upper()
            if not text or set(text) - set("IXYZ"):
                raise SpecError(f"Observable {item!r} is not a Pauli string (letters I, X, Y, Z only).")
            op = SparsePauliOp([text])
        elif isinstance(item, SparsePauliOp):
            op = item
        else:
            raise SpecError(f"Observable {item!r} must be a Pauli string or a SparsePauliOp.")
        if op.num_qubits != n_qubits:
            raise SpecError(f"Observable {item!r} acts on {op.num_qubits} qubits; the circuit has {n_qubits}.")
        if np.any(np.abs(np.imag(op.coeffs)) > 1e-12):
            raise SpecError(f"Observable {item!r} has complex coefficients; it must be Hermitian.")
        out.append(op)
    return out


@dataclass(frozen=True)
class CutPlan:
    """Where the cuts go and what they cost.

    Attributes:
        cuts: ``(kind, gate index)`` pairs, kind ``"Gate Cut"`` or ``"Wire Cut"``.
        sampling_overhead: Product of the per-cut factors (9 per CX gate cut, 16 per wire cut).
        qubits_per_subcircuit: Width the cut search targeted (the widest exact node).
        subcircuit_widths: Width of each subcircuit, by label.
        subexperiments: Subexperiments per subcircuit label.
        nodes: Node of each subcircuit label.
        shots: Shots per subexperiment: the budget is ``shots`` times the number of
            subexperiments (:attr:`total_shots`), shared among the distinct circuits.
        shot_allocation: How the budget is shared (a :class:`ShotAllocation` or its value).
        circuit_shots: Shots of each distinct circuit (identical subexperiments of a piece merged),
            in the order they run; the planners fill it in.
        source: The search that found the cut (``find_cuts(width=12)``, ``node-sized(12+4)``, or
            ``whole on NODE`` for an uncut run).
        approximate: True when the circuit runs whole on an approximate (MPS) node.
        estimated_seconds: Makespan estimate of the subexperiments.
        estimated_cost: Cost estimate.
        notes: What the planner weighed.
    """

    cuts: tuple[tuple[str, int], ...]
    sampling_overhead: float
    qubits_per_subcircuit: int
    subcircuit_widths: Mapping[str, int]
    subexperiments: Mapping[str, int]
    nodes: Mapping[str, tuple[str, ...]]
    shots: int
    shot_allocation: ShotAllocation = ShotAllocation.PROPORTIONAL
    circuit_shots: tuple[int, ...] = ()
    source: str = ""
    approximate: bool = False
    estimated_seconds: float = 0.0
    estimated_cost: float = 0.0
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # accept the value as text too ("uniform"); an unknown one raises ValueError here
        object.__setattr__(self, "shot_allocation", ShotAllocation(self.shot_allocation))

    @property
    def total_shots(self) -> int:
        """The shot budget: ``shots`` for each subexperiment."""
        return self.shots * sum(self.subexperiments.values())

    def to_dict(self) -> dict[str, Any]:
        allocation: dict[str, Any] = {"method": str(self.shot_allocation), "total_shots": self.total_shots}
        if self.circuit_shots:
            allocation.update(
                circuits=len(self.circuit_shots),
                min_shots=min(self.circuit_shots),
                max_shots=max(self.circuit_shots),
                circuit_shots=list(self.circuit_shots),
            )
        return {
            "cuts": [list(c) for c in self.cuts],
            "sampling_overhead": self.sampling_overhead,
            "qubits_per_subcircuit": self.qubits_per_subcircuit,
            "subcircuit_widths": dict(self.subcircuit_widths),
            "subexperiments": dict(self.subexperiments),
            "nodes": {k: list(v) for k, v in self.nodes.items()},
            "shots": self.shots,
            "shot_allocation": allocation,
            "source": self.source,
            "approximate": self.approximate,
            "estimated_seconds": self.estimated_seconds,
            "estimated_cost": self.estimated_cost,
        }


@dataclass
class CutResult:
    """Estimates from :func:`run_cut`.

    Attributes:
        plan: The plan as run (its ``circuit_shots`` filled in).
        values: Expectation value of each observable.
        standard_errors: Batch-means standard error of each (NaN when a circuit had fewer than
            ``MIN_CIRCUIT_SHOTS`` shots).
        timings: Seconds spent executing and reconstructing.
        executed_circuits: Distinct circuits run.
    """

    plan: CutPlan
    values: list[float]
    standard_errors: list[float]
    timings: dict[str, float] = field(default_factory=dict)
    executed_circuits: int = 0


def choose_cut(
    circuit: QuantumCircuit,
    nodes: Sequence[QPUNodeSpec],
    *,
    shots: int,
    max_overhead: float,
    seed: int,
    allow_approximate: bool = True,
    max_subexperiments: int = DEFAULT_MAX_SUBEXPERIMENTS,
    time_budget: float = DEFAULT_TIME_BUDGET,
) -> tuple[CutCandidate, list[str]]:
    """The cut to run, or the whole circuit on an approximate node when cutting costs too much.

    Exact first: the best cut (lowest overhead, then makespan, then cost; see
    :mod:`network.cut_search`) wins while its overhead is within ``max_overhead`` and its
    subexperiments (QPD terms times pieces, counted before any is generated) within
    ``max_subexperiments``. Past either, an approximate (MPS) node that holds the whole circuit
    takes it when ``allow_approximate``. The search stops starting new searches after
    ``time_budget`` seconds and keeps its best so far.

    Returns:
        The choice and notes that say what was weighed.

    Raises:
        PlanningError: Neither is possible; the message quotes the overhead, the subexperiments,
            the cuts and the alternatives.
    """
    n = circuit.num_qubits
    mps = sorted(
        (node for node in nodes if not node.exact and node.max_qubits >= n), key=lambda node: node.price(shots)
    )
    exact = [node for node in nodes if node.exact]
    ranked: list[CutCandidate] = []
    rejected: list[RejectedCut] = []
    failure = ""
    if exact:
        try:
            with library_errors(PlanningError, "The cut search failed"):
                found = candidate_cuts(
                    circuit, exact, shots=shots, seed=seed, max_overhead=max_overhead,
                    deadline=time.monotonic() + time_budget, rejected=rejected,
                )  # fmt: skip
            ranked = rank_candidates(found)
        except PlanningError as exc:
            failure = str(exc)
    feasible = [c for c in ranked if c.sampling_overhead <= max_overhead and c.subexperiments <= max_subexperiments]
    notes: list[str] = []
    if feasible:
        best = feasible[0]
        if best.cuts and mps and allow_approximate:
            notes.append(
                f"The approximate node {mps[0].node_id} could run the circuit whole; cutting is exact in "
                "expectation, so it was preferred (force the MPS node with max_sampling_overhead=1)."
            )
        return best, notes
    within = [c for c in ranked if c.sampling_overhead <= max_overhead]
    closest: CutCandidate | RejectedCut | None = (
        min(within, key=lambda c: c.subexperiments) if within else (ranked[0] if ranked else None)
    )
    if closest is None and rejected:  # only cuts above the bound were found; none was decomposed
        closest = min(rejected, key=lambda r: r.sampling_overhead)
    if closest is None:
        why = failure or "the cluster has no exact node"
    elif closest.sampling_overhead > max_overhead:
        why = f"cutting needs sampling overhead {closest.sampling_overhead:g} > max_sampling_overhead={max_overhead:g}"
    else:
        assert isinstance(closest, CutCandidate)  # a rejected cut is above the overhead bound
        why = f"cutting needs {closest.subexperiments:,} subexperiments > max_subexperiments={max_subexperiments:,}"
    if mps and allow_approximate:
        notes.append(f"Approximate: ran whole on the MPS node {mps[0].node_id} ({why}).")
        return _whole_on(circuit, mps[0], shots, CostModel()), notes
    if closest is None:
        raise PlanningError(
            failure or f"Cutting needs exact nodes; this cluster has none ({describe_capacities(nodes)})."
        )
    widest = max(node.max_qubits for node in exact)
    cuts = ", ".join(f"{kind} at gate {index}" for kind, index in closest.cuts[:8])
    if len(closest.cuts) > 8:
        cuts += f", and {len(closest.cuts) - 8} more"
    alternatives = []
    if closest.sampling_overhead > max_overhead:
        alternatives += [
            f"raise max_sampling_overhead to {closest.sampling_overhead:g} (the estimate then needs about "
            f"{closest.sampling_overhead:g}x the shots of an uncut run for the same precision)",
            f"fewer shots keep that run cheaper, at {math.sqrt(closest.sampling_overhead):.3g}x the standard error "
            "of an uncut run with the same shots",
        ]
    count = closest.subexperiments if isinstance(closest, CutCandidate) else None
    if count is not None and count > max_subexperiments:
        alternatives.append(
            f"raise max_subexperiments to {count} (planning and running them takes correspondingly longer)"
        )
    alternatives.append(
        f"more qubits per node: nodes wider than {widest} qubits need fewer cuts (one of {n} needs none)"
    )
    any_mps = [node for node in nodes if not node.exact and node.max_qubits >= n]
    if any_mps and not allow_approximate:
        alternatives.append(f"allow the approximate MPS node {any_mps[0].node_id} (allow_approximate=True)")
    elif not any_mps:
        alternatives.append(f"add an approximate MPS node (local_gpu_mps) of at least {n} qubits")
    needs = f"sampling overhead {closest.sampling_overhead:.6g}"
    needs += f" and {count:,} subexperiments" if count is not None else " (not decomposed: above the bound)"
    raise PlanningError(
        f"Cutting the {n}-qubit circuit for nodes of {describe_capacities(nodes)} needs {len(closest.cuts)} cut(s) "
        f"({cuts}) with {needs}; the bounds are max_sampling_overhead={max_overhead:g} and "
        f"max_subexperiments={max_subexperiments:,}. Alternatives: {'; '.join(alternatives)}."
    )


def _whole_on(circuit: QuantumCircuit, node: QPUNodeSpec, shots: int, model: CostModel) -> CutCandidate:
    """The uncut circuit placed on ``node`` (an approximate node that holds it)."""
    n_multi = sum(1 for inst in circuit.data if len(inst.qubits) > 1)
    seconds = model.shard_seconds(
        node, width=circuit.num_qubits, n_ops=len(circuit.data), n_multi=n_multi, shots=shots, dynamic=False
    )
    cost = node.price(shots, seconds)
    return CutCandidate(
        f"whole on {node.node_id}", circuit, (), 1.0, {"0": circuit.num_qubits}, 1, {"0": (node.node_id,)},
        seconds, cost, approximate=True,
    )  # fmt: skip


def plan_cuts(
    circuit: QuantumCircuit,
    observables: Sequence[SparsePauliOp],
    nodes: Sequence[QPUNodeSpec],
    *,
    shots: int,
    max_overhead: float,
    seed: int,
    allow_approximate: bool = True,
    max_subexperiments: int = DEFAULT_MAX_SUBEXPERIMENTS,
    time_budget: float = DEFAULT_TIME_BUDGET,
) -> tuple[CutPlan, Any]:
    """Choose the cut (:func:`choose_cut`), decompose the observables, and generate the subexperiments.

    The subexperiments are counted (QPD terms times each piece's commuting observable groups)
    before any is generated; past ``max_subexperiments`` an allowed MPS node takes the circuit
    whole, else a :class:`PlanningError` quotes the count.

    Returns:
        The plan and, for :func:`run_cut`, the library's partitioned problem, its subexperiments and
        coefficients, and the distinct circuits among them (merged once, here).

    Raises:
        PlanningError: No cut within the bound and no approximate node allowed, or no node holds a
            piece; the message quotes the numbers and the alternatives.
    """
    from qiskit_addon_cutting import cut_wires, expand_observables, partition_problem
    from qiskit_addon_cutting.utils.observable_grouping import ObservableCollection

    circuit = strip_barriers(circuit)
    bounds: dict[str, Any] = {"max_subexperiments": max_subexperiments, "time_budget": time_budget}
    choice, notes = choose_cut(
        circuit, nodes, shots=shots, max_overhead=max_overhead, seed=seed, allow_approximate=allow_approximate,
        **bounds,
    )  # fmt: skip
    with library_errors(PlanningError, "Decomposing the cut circuit failed"):
        with_ancillas = cut_wires(choice.cut_circuit)
        expanded = expand_observables(_all_paulis(observables), circuit, with_ancillas)
        problem = partition_problem(circuit=with_ancillas, observables=expanded)
        count = choice.terms * sum(len(ObservableCollection(subs).groups) for subs in problem.subobservables.values())
    if count > max_subexperiments and not choice.approximate:
        mps = [n for n in nodes if not n.exact and n.max_qubits >= circuit.num_qubits] if allow_approximate else []
        if not mps:
            raise PlanningError(
                f"The cut ({len(choice.cuts)} cut(s), sampling overhead {choice.sampling_overhead:g}) needs {count:,} "
                f"subexperiments for these observables, above max_subexperiments={max_subexperiments:,}. Raise "
                "the bound, group the observables into fewer non-commuting sets, use wider nodes or add an "
                "approximate MPS node."
            )
        choice = _whole_on(circuit, min(mps, key=lambda n: n.price(shots)), shots, CostModel())
        notes = [f"Approximate: ran whole on the MPS node {choice.nodes['0'][0]} (cutting needs {count:,} "
                 f"subexperiments > max_subexperiments={max_subexperiments:,})."]  # fmt: skip
        with library_errors(PlanningError, "Decomposing the circuit failed"):
            with_ancillas = cut_wires(choice.cut_circuit)
            expanded = expand_observables(_all_paulis(observables), circuit, with_ancillas)
            problem = partition_problem(circuit=with_ancillas, observables=expanded)
    with library_errors(PlanningError, "Generating the cut subexperiments failed"):
        subexperiments, coefficients = generate_experiments(problem.subcircuits, problem.subobservables)
    plan = _cut_plan(choice, {str(label): len(circs) for label, circs in subexperiments.items()}, shots, notes)
    split = share_shots(subexperiments, coefficients, plan.total_shots, plan.shot_allocation)
    return replace(plan, circuit_shots=tuple(split.shots)), (problem, subexperiments, coefficients, split)


def _cut_plan(choice: CutCandidate, subexperiments: dict[str, int], shots: int, notes: Sequence[str]) -> CutPlan:
    if set(subexperiments) != set(choice.widths):
        raise PlanningError(
            f"The decomposition's pieces {sorted(subexperiments)} differ from the planned {sorted(choice.widths)}."
        )
    return CutPlan(
        cuts=choice.cuts,
        sampling_overhead=choice.sampling_overhead,
        qubits_per_subcircuit=max(choice.widths.values()),
        subcircuit_widths=dict(choice.widths),
        subexperiments=subexperiments,
        nodes=dict(choice.nodes),
        shots=shots,
        source=choice.source,
        approximate=choice.approximate,
        estimated_seconds=choice.estimated_seconds,
        estimated_cost=choice.estimated_cost,
        notes=tuple(notes),
    )


def drop_idle_qubits(
    circuit: QuantumCircuit, observables: Sequence[SparsePauliOp]
) -> tuple[QuantumCircuit, list[SparsePauliOp]]:
    """The circuit on the qubits some operation acts on, and the observables on those qubits.

    An idle qubit stays in ``|0>``: a Pauli term with X or Y on it has expectation 0 (the term is
    dropped) and Z or I contribute a factor 1 (the letter is dropped). qiskit-addon-cutting leaves
    such qubits without a piece, so they must not reach it. Exact: nothing is estimated for them.
    """
    used = sorted({circuit.find_bit(q).index for inst in circuit.data for q in inst.qubits})
    if len(used) == circuit.num_qubits:
        return circuit, list(observables)
    used = used or [0]
    position = {q: i for i, q in enumerate(used)}
    reduced = QuantumCircuit(len(used), name=circuit.name, global_phase=circuit.global_phase)
    from qiskit.circuit import CircuitInstruction

    for inst in circuit.data:
        qubits = tuple(reduced.qubits[position[circuit.find_bit(q).index]] for q in inst.qubits)
        reduced._append(CircuitInstruction(inst.operation, qubits, ()))
    idle = [q for q in range(circuit.num_qubits) if q not in position]
    n = circuit.num_qubits
    out = []
    for op in observables:
        labels: list[str] = []
        coeffs: list[complex] = []
        for label, coeff in zip(op.paulis.to_labels(), op.coeffs, strict=True):
            if any(label[n - 1 - q] in "XY" for q in idle):
                continue
            labels.append("".join(label[n - 1 - q] for q in reversed(used)))
            coeffs.append(coeff)
        out.append(SparsePauliOp(labels, coeffs) if labels else SparsePauliOp(["I" * len(used)], [0.0]))
    return reduced, out


def _all_paulis(observables: Sequence[SparsePauliOp]) -> PauliList:
    labels: list[str] = []
    for op in observables:
        for label in op.paulis.to_labels():
            if label not in labels:
                labels.append(label)
    return PauliList(labels)


def run_cut(
    observables: Sequence[SparsePauliOp],
    plan: CutPlan,
    problem_and_experiments: Any,
    registry: QPURegistry,
    prepared: Mapping[str, QPUNodeSpec],
    *,
    seed: int,
) -> CutResult:
    """Run every distinct subexperiment once, then reconstruct each observable.

    Identical subexperiments of a subcircuit run once, their terms summed. The budget of
    ``plan.total_shots`` is shared among the distinct circuits by ``plan.shot_allocation`` (see
    :func:`share_shots`).

    The library reconstructs the estimate from each circuit's counts (as quasi-distributions,
    one term per distinct outcome rather than one per shot). The standard errors are bootstrap
    errors: every circuit's counts are resampled :data:`BOOTSTRAP` times from its observed
    frequencies (seeded), and the library's formula is applied to each replicate with numpy, in one
    pass that also recomputes the full estimate: it must match the library's. The bootstrap
    captures the nonlinear (product) part of the estimator's variance, and deterministic
    subexperiments (a stabilizer of the state) give zero spread; the error is never reported
    below the floating-point error bound of the QPD sum.

    Raises:
        ExecutionError: A node failed, or the numpy reconstruction disagrees with the library's
            on the full sample.
    """
    from qiskit.primitives import SamplerResult
    from qiskit.result import QuasiDistribution
    from qiskit_addon_cutting import reconstruct_expectation_values

    problem, subexperiments, coefficients, merged = problem_and_experiments
    t0 = time.perf_counter()
    split = merged.allocate(plan.total_shots, plan.shot_allocation)  # the plan's allocation may have been replaced
    circuits, index_of, shots = split.circuits, split.index, split.shots
    raw = sample_circuits(circuits, split.labels, shots, plan.nodes, registry, prepared, seed=seed)
    # per distinct circuit: its outcomes (sorted bitstrings) and their counts, observed then each replicate
    outcomes = [sorted(flat) for flat in raw]
    tallies = [
        _bootstrap_tallies(
            np.array([flat[k] for k in keys], dtype=np.int64), np.random.default_rng(derive_seed(seed, "bootstrap", i))
        )
        for i, (flat, keys) in enumerate(zip(raw, outcomes, strict=True))
    ]
    t_exec = time.perf_counter()

    packed = [_packed_outcomes(circ, keys) for circ, keys in zip(circuits, outcomes, strict=True)]
    dists = []
    for ints, tally in zip(packed, tallies, strict=True):
        n = int(tally[0].sum())
        quasi: dict[int, float] = {}
        for value, count in zip(ints, tally[0].tolist(), strict=True):
            quasi[value] = quasi.get(value, 0.0) + count / n
        dists.append(QuasiDistribution(quasi, shots=n))
    results = {}
    for label, circs in subexperiments.items():
        label_dists = [dists[index_of[(label, i)]] for i in range(len(circs))]
        results[label] = SamplerResult(label_dists, [{"shots": d.shots} for d in label_dists])
    terms = np.array(reconstruct_expectation_values(results, coefficients, problem.subobservables))

    rows = 1 + BOOTSTRAP if min(shots) >= MIN_CIRCUIT_SHOTS else 1
    estimates = _replicate_estimates(
        coefficients, problem.subobservables, index_of, packed, [t[:rows] for t in tallies]
    )
    if not np.allclose(estimates[0], terms, rtol=0.0, atol=1e-9):
        raise ExecutionError(
            f"The numpy reconstruction gives {estimates[0].tolist()} on all shots, the library "
            f"{terms.tolist()}: this version of qiskit-addon-cutting reconstructs differently."
        )
    mix = _observable_matrix(observables)
    values = [float(v) for v in mix @ terms]
    if rows > 1:
        spread = np.std(estimates[1:] @ mix.T, axis=0, ddof=1)
        # Deterministic subexperiments (a stabilizer of the state) have no spread at all, but the QPD sum
        # still rounds: never report less than its floating-point error bound (terms x eps x sum |c|).
        c = np.abs([float(coefficient) for coefficient, _ in coefficients])
        rounding = len(c) * np.finfo(float).eps * c.sum() * np.abs(mix).sum(axis=1)
        errors = [float(e) for e in np.maximum(spread, rounding)]
    else:
        errors = [float("nan")] * len(observables)
    t_rec = time.perf_counter()
    return CutResult(
        replace(plan, circuit_shots=tuple(shots)),
        values,
        errors,
        {"execute": t_exec - t0, "reconstruct": t_rec - t_exec},
        len(circuits),
    )


def sample_circuits(
    circuits: Sequence[QuantumCircuit],
    labels: Sequence[str],
    shots: Sequence[int],
    nodes: Mapping[str, Sequence[str]],
    registry: QPURegistry,
    prepared: Mapping[str, QPUNodeSpec],
    *,
    seed: int,
) -> list[dict[str, int]]:
    """Run distinct circuits, each on a node of its piece, one batch per node, nodes in parallel.

    Circuit ``i`` of piece ``labels[i]`` goes to ``nodes[label][i % len(nodes[label])]`` with
    seed ``derive_seed(seed, "cut", i)`` (distinct circuits never share a simulator stream).

    Returns:
        Flat counts of each circuit (bit ``i`` at position ``width-1-i``).

    Raises:
        ExecutionError: A node failed; the message names it.
    """
    by_node: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        choices = nodes[label]
        by_node.setdefault(choices[i % len(choices)], []).append(i)

    def run(node_id: str) -> list[dict[str, int]]:
        idxs = by_node[node_id]
        node = prepared[node_id]
        batch = [circuits[i] for i in idxs]
        seeds = [derive_seed(seed, "cut", i) for i in idxs]
        try:
            raw = registry.provider(node_id).execute_batch(batch, [shots[i] for i in idxs], node, seeds=seeds)
        except Exception as exc:
            raise ExecutionError(f"Cut subexperiments failed on node {node_id!r}: {exc}") from exc
        return [
            normalize_counts(counts, width=circuits[i].num_clbits, shots=shots[i], node_id=node_id)
            for i, counts in zip(idxs, raw, strict=True)
        ]

    out: list[dict[str, int]] = [{} for _ in circuits]
    if len(by_node) == 1:
        results = [run(next(iter(by_node)))]
    else:
        with ThreadPoolExecutor(max_workers=len(by_node), thread_name_prefix="qvm-cut") as pool:
            results = list(pool.map(run, by_node))
    for node_id, flats in zip(by_node, results, strict=True):
        for i, flat in zip(by_node[node_id], flats, strict=True):
            out[i] = flat
    return out


def allocate_shots(weights: Sequence[float] | np.ndarray, total: int, minimum: int) -> list[int]:
    """Share ``total`` shots among circuits in proportion to ``weights``, at least ``minimum`` each.

    Circuits whose proportional share falls below ``minimum`` get exactly ``minimum``, and the
    rest of the budget is shared among the others in proportion to their weights (repeated
    until no share falls below it). Shares are rounded by largest remainder, so they sum to
    ``total`` exactly. All-zero weights share evenly.

    Raises:
        ValueError: ``minimum`` shots for every circuit exceed ``total``.
    """
    w = np.asarray(weights, dtype=float)
    n = len(w)
    if n == 0 or minimum * n > total:
        raise ValueError(f"Cannot give {n} circuit(s) at least {minimum} shots each from {total}.")
    if not w.sum() > 0:
        w = np.ones(n)
    held = np.zeros(n, dtype=bool)  # circuits held at the minimum
    while True:
        free = ~held
        share = np.where(free, (total - minimum * held.sum()) * w / w[free].sum(), minimum)
        low = free & (share < minimum + 1e-6)
        if not low.any() or low.sum() == free.sum():
            break
        held |= low
    shots = np.floor(share).astype(np.int64)
    shots[held] = minimum
    left = total - int(shots.sum())
    order = np.argsort(np.floor(share) - share, kind="stable")  # largest remainder first, ties by index
    shots[order[:left]] += 1
    return [int(x) for x in shots]


@dataclass(frozen=True)
class SubexperimentShots:
    """The distinct circuits of a cut's subexperiments and the shots of each.

    Attributes:
        circuits: Distinct circuits: identical subexperiments of a subcircuit merged, never
            across subcircuits (the reconstruction multiplies their estimates, which must stay
            independent).
        labels: Subcircuit label of each.
        index: Distinct circuit of each ``(label, subexperiment index)``.
        weights: Summed |coefficient| of the terms that use each.
        shots: Shots of each.
    """

    circuits: list[QuantumCircuit]
    labels: list[str]
    index: dict[tuple[Any, int], int]
    weights: np.ndarray
    shots: list[int]

    def allocate(self, total: int, allocation: ShotAllocation | str) -> SubexperimentShots:
        """The same circuits with ``total`` shots shared by ``allocation`` (see :func:`share_shots`).

        Raises:
            ValueError: ``allocation`` is not a :class:`ShotAllocation` value.
        """
        proportional = ShotAllocation(allocation) is ShotAllocation.PROPORTIONAL
        shares = self.weights if proportional else np.ones(len(self.circuits))
        return replace(self, shots=allocate_shots(shares, total, min(MIN_CIRCUIT_SHOTS, total // len(self.circuits))))


def share_shots(
    subexperiments: Mapping[Any, Sequence[QuantumCircuit]],
    coefficients: Sequence[tuple[float, Any]],
    total: int,
    allocation: ShotAllocation | str = ShotAllocation.PROPORTIONAL,
) -> SubexperimentShots:
    """Merge identical subexperiments and share ``total`` shots among the distinct circuits.

    A circuit's weight is the summed |coefficient| of the terms that use it: the library orders a
    label's subexperiments term by term and, within a term, one per commuting observable group
    of that label, so subexperiment ``i`` belongs to term ``i // groups``. ``PROPORTIONAL``
    shares in proportion to the weights, ``UNIFORM`` evenly; either way every circuit gets at
    least ``MIN_CIRCUIT_SHOTS`` shots (fewer only when the budget cannot give every circuit that
    many).

    Why proportional: a circuit's estimate enters the result multiplied by its terms'
    coefficients and by the other subcircuits' estimates (each at most 1 in magnitude), so its
    share of the variance is at most ``weight**2 / shots`` (first order). Shots in proportion
    to the weights minimize the sum of those bounds, ``(sum of weights)**2 / total``; by
    Cauchy-Schwarz that is never above the even share's, and far below it when the
    coefficients are unequal (with the minimum, :func:`allocate_shots` gives the allocation that
    minimizes the bound subject to it). The bound is not the variance: where the terms sharing a
    circuit cancel, or the other subcircuits' estimates are small, the gain can be smaller.

    Raises:
        ValueError: ``allocation`` is not a :class:`ShotAllocation` value.
    """
    unique: dict[tuple[str, str], int] = {}
    circuits: list[QuantumCircuit] = []
    labels: list[str] = []
    index: dict[tuple[Any, int], int] = {}
    hashes: dict[int, str] = {}  # generate_experiments shares identical circuits: hash each object once
    for label, circs in subexperiments.items():
        for i, circ in enumerate(circs):
            digest = hashes.get(id(circ))
            if digest is None:
                digest = hashes[id(circ)] = analyze_circuit(circ).circuit_hash
            key = (str(label), digest)
            if key not in unique:
                unique[key] = len(circuits)
                circuits.append(circ)
                labels.append(str(label))
            index[(label, i)] = unique[key]
    weights = np.zeros(len(circuits))
    for label, circs in subexperiments.items():
        groups = len(circs) // len(coefficients)
        for i in range(len(circs)):
            weights[index[(label, i)]] += abs(float(coefficients[i // groups][0]))
    return SubexperimentShots(circuits, labels, index, weights, []).allocate(total, allocation)


def _bootstrap_tallies(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Counts of each outcome as observed (row 0) and in :data:`BOOTSTRAP` multinomial resamples
    of the same number of shots from the observed frequencies (rows 1...)."""
    total = int(counts.sum())
    replicates = rng.multinomial(total, counts / max(total, 1), size=BOOTSTRAP)
    return np.vstack([counts[None, :], replicates])


def _packed_outcomes(circuit: QuantumCircuit, keys: Sequence[str]) -> list[int]:
    """Each outcome as the library reads results in its SamplerV1 form: ``obs | qpd << len(obs)``.

    Register bit ``j`` is bit ``j`` of its part.
    """
    width = circuit.num_clbits
    index = {b: j for j, b in enumerate(circuit.clbits)}
    regs = {reg.name: [index[b] for b in reg] for reg in circuit.cregs}
    bits = regs.get("observable_measurements", []) + regs.get("qpd_measurements", [])
    return [sum(1 << j for j, p in enumerate(bits) if key[width - 1 - p] == "1") for key in keys]


def _replicate_estimates(
    coefficients: Sequence[tuple[float, Any]],
    subobservables: Mapping[Any, PauliList],
    index_of: Mapping[tuple[Any, int], int],
    packed: Sequence[Sequence[int]],
    tallies: Sequence[np.ndarray],
) -> np.ndarray:
    """The library's reconstruction for every row of the tallies at once, shape ``(rows, paulis)``.

    As ``reconstruct_expectation_values``: an outcome's value for a commuting observable is the
    parity of its QPD bits times that of its observable bits under the observable's mask; a
    subexperiment's expectation values are their means; a term multiplies, over labels, the mean
    of each sub-observable over the places it is measured, times the term's coefficient.
    """
    from qiskit_addon_cutting.utils.observable_grouping import ObservableCollection

    n_rows = tallies[0].shape[0]
    n_paulis = len(next(iter(subobservables.values())))
    products = np.ones((len(coefficients), n_rows, n_paulis))
    means: dict[tuple[int, int], np.ndarray] = {}  # (circuit, group) -> (rows, commuting observables)
    for label, subs in subobservables.items():
        collection = ObservableCollection(subs)
        groups = collection.groups
        for k, cog in enumerate(groups):
            n_meas = len(cog.pauli_indices) or 1  # the library measures qubit 0 for an empty group
            masks = cog.pauli_bitmasks
            for t in range(len(coefficients)):
                u = index_of[(label, t * len(groups) + k)]
                if (u, k) not in means:
                    signs = np.array(
                        [
                            [(-1) ** (((p >> n_meas).bit_count() + (p & m).bit_count()) & 1) for m in masks]
                            for p in packed[u]
                        ],
                        dtype=float,
                    ).reshape(len(packed[u]), len(masks))
                    means[(u, k)] = (tallies[u] @ signs) / tallies[u].sum(axis=1, keepdims=True)
        for j, sub in enumerate(subs):
            places = collection.lookup[sub]
            for t in range(len(coefficients)):
                products[t, :, j] *= np.mean(
                    [means[(index_of[(label, t * len(groups) + m)], m)][:, n] for m, n in places], axis=0
                )
    c = np.array([float(coefficient) for coefficient, _ in coefficients])
    return np.tensordot(c, products, axes=1)


def _observable_matrix(observables: Sequence[SparsePauliOp]) -> np.ndarray:
    """Real coefficient of each Pauli of :func:`_all_paulis` in each observable, ``(observables, paulis)``."""
    labels = _all_paulis(observables).to_labels()
    column = {label: j for j, label in enumerate(labels)}
    mix = np.zeros((len(observables), len(labels)))
    for row, op in enumerate(observables):
        for label, coeff in zip(op.paulis.to_labels(), op.coeffs, strict=True):
            mix[row, column[label]] += float(np.real(coeff))
    return mix


@dataclass
class DistributionResult:
    """A distribution reconstructed from cut subexperiments (:func:`run_distribution`).

    Attributes:
        plan: The plan as run (its ``circuit_shots`` filled in).
        quasi: The unbiased quasi-probability estimate, index ``i`` with qubit ``k`` at bit ``k``.
        probabilities: The nearest probability distribution to it.
        counts: ``shots`` samples of it, keyed over all qubits (qubit 0 rightmost).
        timings: Seconds spent executing and reconstructing.
        executed_circuits: Distinct circuits run.
    """

    plan: CutPlan
    quasi: np.ndarray
    probabilities: np.ndarray
    counts: dict[str, int]
    timings: dict[str, float]
    executed_circuits: int


def plan_distribution(
    circuit: QuantumCircuit,
    nodes: Sequence[QPUNodeSpec],
    *,
    shots: int,
    max_overhead: float,
    seed: int,
    allow_approximate: bool = True,
    max_subexperiments: int = DEFAULT_MAX_SUBEXPERIMENTS,
    time_budget: float = DEFAULT_TIME_BUDGET,
) -> tuple[CutPlan, tuple[DistributionProblem, SubexperimentShots] | None]:
    """Plan the full output distribution of ``circuit`` (no measurements) by cutting.

    Returns:
        The plan and the problem to run with its distinct circuits (merged once, here); ``None``
        instead of them when the circuit should run
        whole on an approximate node (cutting above the bound, or too wide to reconstruct, and
        approximation allowed): the caller plans that as an ordinary run.

    Raises:
        DistributionTooLargeError: Too many qubits or QPD terms to reconstruct, and no
            approximate node to fall back on.
        PlanningError: As :func:`choose_cut`.
    """
    from network.cut_distribution import build_distribution_problem, check_distribution_size

    circuit = strip_barriers(circuit)
    n = circuit.num_qubits
    mps = [node for node in nodes if not node.exact and node.max_qubits >= n] if allow_approximate else []
    try:
        check_distribution_size(n)
    except PlanningError:
        if mps:
            return _cut_plan(_whole_on(circuit, mps[0], shots, CostModel()), {"0": 1}, shots, ()), None
        raise
    choice, notes = choose_cut(
        circuit, nodes, shots=shots, max_overhead=max_overhead, seed=seed, allow_approximate=allow_approximate,
        max_subexperiments=max_subexperiments, time_budget=time_budget,
    )  # fmt: skip
    if choice.approximate:
        return _cut_plan(choice, {"0": 1}, shots, notes), None
    try:
        check_distribution_size(n, choice.terms)
    except PlanningError:
        if mps:
            return _cut_plan(_whole_on(circuit, mps[0], shots, CostModel()), {"0": 1}, shots, ()), None
        raise
    with library_errors(PlanningError, "Decomposing the cut circuit failed"):
        problem = build_distribution_problem(circuit, choice.cut_circuit)
    counts = {str(label): len(circs) for label, circs in problem.subexperiments.items()}
    plan = _cut_plan(choice, counts, shots, notes)
    split = share_shots(problem.subexperiments, problem.coefficients, plan.total_shots, plan.shot_allocation)
    return replace(plan, circuit_shots=tuple(split.shots)), (problem, split)


def run_distribution(
    plan: CutPlan,
    planned: tuple[DistributionProblem, SubexperimentShots],
    registry: QPURegistry,
    prepared: Mapping[str, QPUNodeSpec],
    *,
    shots: int,
    seed: int,
) -> DistributionResult:
    """Run the subexperiments (identical ones of a piece once, shots by |coefficient|), rebuild the
    quasi-distribution, project it to the nearest probability distribution and draw ``shots``
    samples from it."""
    from network.cut_distribution import nearest_probability_distribution, reconstruct_distribution, sample_counts

    problem, merged = planned
    t0 = time.perf_counter()
    split = merged.allocate(plan.total_shots, plan.shot_allocation)
    raw = sample_circuits(split.circuits, split.labels, split.shots, plan.nodes, registry, prepared, seed=seed)
    t_exec = time.perf_counter()
    counts = {
        label: [raw[split.index[(label, i)]] for i in range(len(circs))]
        for label, circs in problem.subexperiments.items()
    }
    quasi = reconstruct_distribution(problem, counts)
    probabilities = nearest_probability_distribution(quasi)
    sampled = sample_counts(probabilities, shots, derive_seed(seed, "cut-distribution"))
    t_rec = time.perf_counter()
    return DistributionResult(
        replace(plan, circuit_shots=tuple(split.shots)),
        quasi,
        probabilities,
        sampled,
        {"execute": t_exec - t0, "reconstruct": t_rec - t_exec},
        len(split.circuits),
    )
