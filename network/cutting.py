"""Expectation values by circuit cutting (CUT strategy), through qiskit-addon-cutting.

The decomposition, the subexperiments and the quasi-probability reconstruction are the library's;
this module chooses the cuts for the cluster's nodes, bounds the sampling overhead, spreads the
subexperiments over nodes in batches (identical circuits run once), and estimates standard errors
by batch means (each subexperiment's shots split into independent groups).

A circuit that fits a node goes through the same path with no cut.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import PauliList, SparsePauliOp

from network.circuits import analyze_circuit, derive_seed, normalize_counts
from network.errors import ExecutionError, PlanningError, SpecError
from network.node_providers import QPUNodeSpec, QPURegistry, describe_capacities

__all__ = ["CutPlan", "CutResult", "parse_observables", "plan_cuts", "run_cut"]

#: Batch-means groups for standard errors.
GROUPS = 8


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
        shots: Shots of each subexperiment.
    """

    cuts: tuple[tuple[str, int], ...]
    sampling_overhead: float
    qubits_per_subcircuit: int
    subcircuit_widths: Mapping[str, int]
    subexperiments: Mapping[str, int]
    nodes: Mapping[str, tuple[str, ...]]
    shots: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "cuts": [list(c) for c in self.cuts],
            "sampling_overhead": self.sampling_overhead,
            "qubits_per_subcircuit": self.qubits_per_subcircuit,
            "subcircuit_widths": dict(self.subcircuit_widths),
            "subexperiments": dict(self.subexperiments),
            "nodes": {k: list(v) for k, v in self.nodes.items()},
            "shots": self.shots,
        }


@dataclass
class CutResult:
    plan: CutPlan
    values: list[float]
    standard_errors: list[float]
    timings: dict[str, float] = field(default_factory=dict)
    executed_circuits: int = 0


def _problem(circuit: QuantumCircuit, paulis: PauliList, width: int, seed: int) -> tuple[Any, dict[str, Any]]:
    from qiskit_addon_cutting import (
        DeviceConstraints,
        OptimizationParameters,
        cut_wires,
        expand_observables,
        find_cuts,
        partition_problem,
    )

    cut_circuit, meta = find_cuts(
        circuit, OptimizationParameters(seed=seed), DeviceConstraints(qubits_per_subcircuit=width)
    )
    with_ancillas = cut_wires(cut_circuit)
    expanded = expand_observables(paulis, circuit, with_ancillas)
    return partition_problem(circuit=with_ancillas, observables=expanded), meta


def plan_cuts(
    circuit: QuantumCircuit,
    observables: Sequence[SparsePauliOp],
    nodes: Sequence[QPUNodeSpec],
    *,
    shots: int,
    max_overhead: float,
    seed: int,
) -> tuple[CutPlan, Any]:
    """Find cuts for the widest exact node, check the overhead bound, assign subcircuits to nodes.

    Returns:
        The plan and the library's partitioned problem (for :func:`run_cut`).

    Raises:
        PlanningError: No exact node, a subcircuit wider than every node, or an overhead above
            ``max_overhead``; the message quotes the numbers and the alternatives.
    """
    exact = [n for n in nodes if n.exact]
    if not exact:
        raise PlanningError(f"Cutting needs exact nodes; this cluster has none ({describe_capacities(nodes)}).")
    width = max(n.max_qubits for n in exact)
    paulis = _all_paulis(observables)
    problem, meta = _problem(circuit, paulis, min(width, circuit.num_qubits), seed)
    cuts = tuple((str(kind), int(index)) for kind, index in meta.get("cuts", []))
    overhead = float(np.prod([b.overhead for b in problem.bases])) if problem.bases else 1.0
    if overhead > max_overhead:
        mps = [n for n in nodes if not n.exact and n.max_qubits >= circuit.num_qubits]
        alternatives = [
            f"raise max_sampling_overhead above {overhead:g}",
            f"add nodes wider than {width} qubits so fewer cuts are needed",
        ]
        if mps:
            alternatives.append(f"allow the approximate MPS node {mps[0].node_id}")
        raise PlanningError(
            f"Cutting the {circuit.num_qubits}-qubit circuit into pieces of at most {width} qubits needs "
            f"{len(cuts)} cut(s) ({', '.join(f'{k} at gate {i}' for k, i in cuts)}) with sampling overhead "
            f"{overhead:g}, above max_sampling_overhead={max_overhead:g}. Alternatives: {'; '.join(alternatives)}."
        )
    widths = {str(label): sub.num_qubits for label, sub in problem.subcircuits.items()}
    from qiskit_addon_cutting import generate_cutting_experiments

    subexperiments, coefficients = generate_cutting_experiments(
        circuits=problem.subcircuits, observables=problem.subobservables, num_samples=np.inf
    )
    counts = {str(label): len(circs) for label, circs in subexperiments.items()}
    assignment: dict[str, tuple[str, ...]] = {}
    for offset, (label, w) in enumerate(sorted(widths.items())):
        fit = [n.node_id for n in exact if n.max_qubits >= w]
        if not fit:
            raise PlanningError(
                f"Subcircuit {label} has {w} qubits; no exact node holds it ({describe_capacities(nodes)})."
            )
        # spread the labels over the nodes; each label's batch may use all fitting nodes
        assignment[label] = tuple(fit[offset % len(fit) :] + fit[: offset % len(fit)])
    plan = CutPlan(cuts, overhead, width, widths, counts, assignment, shots)
    return plan, (problem, subexperiments, coefficients)


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
    """Run every subexperiment (identical circuits once), then reconstruct each observable.

    Each distinct circuit's shots are put in a random order once; the full estimate uses all of
    them and batch-means group ``g`` the ``g``-th slice. The library reconstructs from the
    counts of each slice (as quasi-distributions, one term per distinct outcome rather than one
    per shot): the same sums as from per-shot bit arrays, at a cost that does not grow with shots.
    """
    from qiskit.primitives import SamplerResult
    from qiskit.result import QuasiDistribution
    from qiskit_addon_cutting import reconstruct_expectation_values

    problem, subexperiments, coefficients = problem_and_experiments
    t0 = time.perf_counter()
    # Deduplicate identical subexperiments within a subcircuit (their terms are summed). Never
    # across subcircuits: the reconstruction multiplies their estimates, which must stay independent.
    unique: dict[tuple[str, str], int] = {}
    circuits: list[QuantumCircuit] = []
    owner: list[str] = []
    index_of: dict[tuple[Any, int], int] = {}
    for label, circs in subexperiments.items():
        for i, circ in enumerate(circs):
            key = (str(label), analyze_circuit(circ).circuit_hash)
            if key not in unique:
                unique[key] = len(circuits)
                circuits.append(circ)
                owner.append(str(label))
            index_of[(label, i)] = unique[key]
    by_node: dict[str, list[int]] = {}
    for idx, label in enumerate(owner):
        node_id = plan.nodes[label][idx % len(plan.nodes[label])]
        by_node.setdefault(node_id, []).append(idx)
    # per distinct circuit: its outcomes (sorted bitstrings) and its shots as indices into them
    outcomes: list[list[str]] = [[] for _ in circuits]
    samples: list[np.ndarray] = [np.zeros(0, dtype=np.intp) for _ in circuits]
    for node_id, idxs in by_node.items():
        node = prepared[node_id]
        provider = registry.provider(node_id)
        batch = [circuits[i] for i in idxs]
        seeds = [derive_seed(seed, "cut", i) for i in idxs]
        try:
            raw = provider.execute_batch(batch, [plan.shots] * len(batch), node, seeds=seeds)
        except Exception as exc:
            raise ExecutionError(f"Cut subexperiments failed on node {node_id!r}: {exc}") from exc
        rng = np.random.default_rng(derive_seed(seed, "cut-order", node_id))
        for i, counts in zip(idxs, raw, strict=True):
            flat = normalize_counts(counts, width=circuits[i].num_clbits, shots=plan.shots, node_id=node_id)
            keys = sorted(flat)
            order = np.repeat(np.arange(len(keys), dtype=np.intp), [flat[k] for k in keys])
            rng.shuffle(order)  # the same permutation as shuffling the list of shots itself
            outcomes[i], samples[i] = keys, order
    t_exec = time.perf_counter()

    # The library reads results in its SamplerV1 form as ``obs | qpd << len(obs)`` (register bit
    # j is bit j of each part): each distinct outcome of each subexperiment, converted once.
    packed: dict[tuple[Any, int], list[int]] = {}
    for label, circs in subexperiments.items():
        for i, circ in enumerate(circs):
            u = index_of[(label, i)]
            width = circ.num_clbits
            index = {b: j for j, b in enumerate(circ.clbits)}
            regs = {reg.name: [index[b] for b in reg] for reg in circ.cregs}
            obs = regs.get("observable_measurements", [])
            bits = obs + regs.get("qpd_measurements", [])
            packed[(label, i)] = [
                sum(1 << j for j, p in enumerate(bits) if key[width - 1 - p] == "1") for key in outcomes[u]
            ]

    def results_for(group: slice) -> dict[Any, SamplerResult]:
        tallies = [np.bincount(s[group], minlength=len(k)) for s, k in zip(samples, outcomes, strict=True)]
        out: dict[Any, SamplerResult] = {}
        for label, circs in subexperiments.items():
            dists = []
            for i in range(len(circs)):
                tally = tallies[index_of[(label, i)]]
                n = int(tally.sum())
                dists.append(
                    QuasiDistribution(
                        {v: int(c) / n for v, c in zip(packed[(label, i)], tally, strict=True) if c}, shots=n
                    )
                )
            out[label] = SamplerResult(dists, [{"shots": d.shots} for d in dists])
        return out

    paulis = _all_paulis(observables)
    labels = paulis.to_labels()

    def estimate(group: slice) -> list[float]:
        terms = reconstruct_expectation_values(results_for(group), coefficients, problem.subobservables)
        by_label = dict(zip(labels, terms, strict=True))
        return [
            float(sum(np.real(c) * by_label[p] for p, c in zip(op.paulis.to_labels(), op.coeffs, strict=True)))
            for op in observables
        ]

    values = estimate(slice(None))
    size = plan.shots // GROUPS
    if size >= 1:
        groups = np.array([estimate(slice(g * size, (g + 1) * size)) for g in range(GROUPS)])
        # each group mean has GROUPS x the variance of the full estimate
        errors = [float(np.std(groups[:, j], ddof=1) / math.sqrt(GROUPS)) for j in range(len(observables))]
    else:
        errors = [float("nan")] * len(observables)
    t_rec = time.perf_counter()
    return CutResult(plan, values, errors, {"execute": t_exec - t0, "reconstruct": t_rec - t_exec}, len(circuits))
