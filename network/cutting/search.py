"""Cut search, the first stage of cutting: where to cut, sized to the cluster's actual nodes, ranked.

qiskit-addon-cutting's ``find_cuts`` takes one ``qubits_per_subcircuit`` for every piece. A cluster
mixes widths (a 25-qubit node beside a 12-qubit one), so this module gathers candidates from two
sources and ranks them:

* ``find_cuts`` at each distinct node width (gate and wire cuts, the library's search);
* a node-sized partition of the qubits (gate cuts only): the qubit interaction graph, weighted by
  the log of each crossing gate's sampling overhead, split into parts whose sizes fit ``k``
  distinct nodes (the ``k`` widest), by breadth-first filling and then local moves and swaps
  that lower the cut weight (Fiduccia-Mattheyses style) from several starts.

Candidates are ranked by sampling overhead, then estimated makespan (subexperiments per piece on
the nodes that hold it, nodes in parallel, hosts shared), then cost. Every candidate ends as a
circuit with cut instructions, which the library decomposes (``cut_wires``, ``partition_problem``).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit import QuantumCircuit

from network.costs import CostModel
from network.errors import PlanningError, library_errors
from network.node_providers import QPUNodeSpec, describe_capacities
from network.pricing import GateCounts, gate_counts

__all__ = [
    "DEFAULT_MAX_SUBEXPERIMENTS",
    "DEFAULT_TIME_BUDGET",
    "CutCandidate",
    "RejectedCut",
    "candidate_cuts",
    "choose_cut",
    "rank_candidates",
    "strip_barriers",
    "whole_on",
]

#: Default bound on the subexperiments of a cut (``VirtualCircuitSpec.max_subexperiments``).
DEFAULT_MAX_SUBEXPERIMENTS = 1000
#: Default seconds the cut search may take (``VirtualCircuitSpec.plan_time_budget``).
DEFAULT_TIME_BUDGET = 0.5

#: Relative tolerance under which two sampling overheads count as equal.
OVERHEAD_RTOL = 1e-9
#: Random restarts of the node-sized partition search (besides the breadth-first starts).
RESTARTS = 8
#: Backjumps the library's best-first search may make per width (its default is 10,000); the time
#: budget stops it sooner (:func:`_bounded_search`).
MAX_BACKJUMPS = 1000
#: The library's search starts with an unbounded greedy pass of about this many seconds per
#: two-qubit gate and qubit (measured on the corpus: 0.6 s for 612 gates on 7 qubits, 3.8 s for
#: 1404 on 8); it is skipped when that would overrun the time budget.
GREEDY_SECONDS_PER_GATE_QUBIT = 1.5e-4


@dataclass(frozen=True)
class RejectedCut:
    """A cut the search found but did not decompose: its overhead is above the bound."""

    source: str
    cuts: tuple[tuple[str, int], ...]
    sampling_overhead: float

    @property
    def n_cuts(self) -> int:
        return len(self.cuts)


@dataclass(frozen=True)
class CutCandidate:
    """One way to cut the circuit, decomposed and placed.

    Attributes:
        source: Where it came from (``find_cuts(width=12)`` or ``node-sized(12+4)``).
        cut_circuit: The circuit with cut instructions (input of ``cut_wires``).
        cuts: ``(kind, gate index)`` pairs, kind ``"Gate Cut"`` or ``"Wire Cut"``.
        sampling_overhead: Product of the per-cut factors.
        widths: Width of each piece, by label.
        terms: Quasi-probability terms (subexperiments per piece and observable group).
        nodes: Nodes that may run each piece, preferred first.
        estimated_seconds: Makespan estimate of all subexperiments.
        estimated_cost: Cost estimate (QPU nodes' per-task and per-shot prices).
        approximate: True when the circuit runs whole on an approximate (MPS) node instead.
        joint: ``"gates"`` or ``"wires"`` when the cuts are decomposed jointly
            (:mod:`network.cutting.joint`; ``sampling_overhead`` is then ``(2^(n+1) - 1)^2`` and
            ``widths`` include the ancillas), else empty.
        joint_circuits: Joint cuts: the circuits of both pieces (for a distribution).
    """

    source: str
    cut_circuit: QuantumCircuit
    cuts: tuple[tuple[str, int], ...]
    sampling_overhead: float
    widths: dict[str, int]
    terms: int
    nodes: dict[str, tuple[str, ...]]
    estimated_seconds: float
    estimated_cost: float
    approximate: bool = False
    joint: str = ""
    joint_circuits: int = 0

    @property
    def subexperiments(self) -> int:
        """Subexperiments to generate for a distribution (one per QPD term and piece); observables
        multiply it by their commuting groups per piece."""
        if self.joint:
            return self.joint_circuits
        return self.terms * max(len(self.widths), 1)

    def rank(self) -> tuple[float, float, float]:
        return (self.sampling_overhead, self.estimated_seconds, self.estimated_cost)


def strip_barriers(circuit: QuantumCircuit) -> QuantumCircuit:
    """A copy without barriers (they would join the pieces and change nothing in simulation)."""
    out = circuit.copy_empty_like()
    for inst in circuit.data:
        if inst.operation.name != "barrier":
            out.append(inst)
    return out


def candidate_cuts(
    circuit: QuantumCircuit,
    nodes: Sequence[QPUNodeSpec],
    *,
    shots: int,
    seed: int,
    max_overhead: float = 1024.0,
    cost_model: CostModel | None = None,
    deadline: float | None = None,
    rejected: list[RejectedCut] | None = None,
    joint: bool = True,
) -> list[CutCandidate]:
    """Every candidate cut of ``circuit`` (no barriers, no measurements) for ``nodes`` (exact ones).

    Cuts whose sampling overhead is above ``max_overhead`` (or above the best found so far) are
    never decomposed, which is where a search's time would go; they are appended to ``rejected``
    so a refusal can quote the closest one.

    A circuit that fits a node whole yields the uncut candidate only. The node-sized partitions
    come first; then ``find_cuts`` runs from the widest node down, each search bounded by the
    lowest overhead found so far (and by ``max_overhead``), so narrower widths only cost time when
    they could tie or win. A search that hits its bound returns the library's best effort, which
    may lie above it. Past ``deadline`` (``time.monotonic()``) no new search starts once one
    candidate exists: the best so far is returned.

    With ``joint``, every candidate whose cuts can be decomposed jointly (two pieces, all gate cuts
    of controlled gates or ``rzz``, or all wire cuts one way, see :func:`~network.cutting.joint.joint_layout`) is also
    offered priced jointly, ``(2^(n+1) - 1)^2`` instead of the product, where its pieces (with the
    ancillas a joint gate cut needs) fit the nodes. The search bounds stay the separate overheads,
    so a cut that only wins jointly is still found.

    Raises:
        PlanningError: No exact node, or no candidate fits the nodes.
    """
    from qiskit_addon_cutting import DeviceConstraints, OptimizationParameters, find_cuts

    model = cost_model or CostModel()
    exact = sorted((n for n in nodes if n.exact), key=lambda n: -n.max_qubits)
    if not exact:
        raise PlanningError(f"Cutting needs exact nodes; this cluster has none ({describe_capacities(nodes)}).")
    n = circuit.num_qubits
    if exact[0].max_qubits >= n:
        whole = _candidate("whole", circuit.copy(), (), exact, shots, model)
        assert whole is not None  # the widest node holds it
        return [whole]
    # the node-sized partitions first: they are cheap, and their best overhead bounds the library's search
    rejected = rejected if rejected is not None else []
    limit = max(float(max_overhead), 1.0)
    out: list[CutCandidate] = _node_sized(circuit, exact, shots, seed, model, deadline, limit, rejected)
    bound = min([limit, *(c.sampling_overhead for c in out)])
    two_qubit = sum(1 for inst in circuit.data if len(inst.qubits) == 2)
    greedy = GREEDY_SECONDS_PER_GATE_QUBIT * two_qubit * n
    skipped = False
    for width in _search_widths(exact):
        if width < 2:
            continue
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining < greedy or (out and remaining <= 0):
                skipped = True
                break
        # find_cuts bounds gamma, the square root of the sampling overhead
        with _bounded_search(deadline):
            cut_circuit, meta = find_cuts(
                circuit,
                OptimizationParameters(seed=seed, max_gamma=math.sqrt(bound) * (1 + 1e-6), max_backjumps=MAX_BACKJUMPS),
                DeviceConstraints(qubits_per_subcircuit=width),
            )
        cuts = tuple((str(kind), int(index)) for kind, index in meta.get("cuts", []))
        source = f"find_cuts(width={width})"
        overhead = float(meta.get("sampling_overhead", 1.0))
        if overhead > bound * (1 + 1e-6):  # the library's best effort past its bound cannot win
            rejected.append(RejectedCut(source, cuts, overhead))
            continue
        candidate = _candidate(source, cut_circuit, cuts, exact, shots, model)
        if candidate is not None:
            out.append(candidate)
            bound = min(bound, candidate.sampling_overhead)
    if not out:
        if skipped and not rejected:
            raise PlanningError(
                f"No cut of the {n}-qubit circuit was found within the cut search's time budget: the library's "
                f"search would take about {greedy:.2g} s for its {two_qubit} two-qubit gates. Raise plan_time_budget, "
                "or use wider nodes or an approximate MPS node."
            )
        raise PlanningError(
            f"No cut of the {n}-qubit circuit fits this cluster's exact nodes ({describe_capacities(nodes)})."
        )
    if joint:
        out += [j for c in out if (j := _joint_variant(c, circuit, exact, shots, model)) is not None]
    return out


def _joint_variant(
    candidate: CutCandidate, circuit: QuantumCircuit, exact: Sequence[QPUNodeSpec], shots: int, model: CostModel
) -> CutCandidate | None:
    """``candidate`` with its cuts decomposed jointly, or ``None`` when they cannot be (or the
    pieces with their ancillas fit no node, or it would cost no less)."""
    from network.cutting.joint import joint_gamma, joint_layout

    if not candidate.cuts:
        return None
    layout = joint_layout(candidate.cut_circuit, circuit)
    if layout is None or joint_gamma(layout.n) ** 2 >= candidate.sampling_overhead:
        return None
    pieces = {
        label: (width, *layout.operations[label], 0) for label, width in layout.widths.items()
    }  # measured at the end: no mid-circuit measurement
    if any(not any(node.fits(width, 0) for node in exact) for width, _, _, _ in pieces.values()):
        return None
    terms = max(layout.circuits_per_piece)
    nodes, seconds, cost = _place(pieces, terms, exact, shots, model, dynamic=False)
    return CutCandidate(
        f"{candidate.source}, joint {layout.kind}", candidate.cut_circuit, candidate.cuts,
        float(joint_gamma(layout.n) ** 2), dict(layout.widths), terms, nodes, seconds, cost,
        joint=layout.kind, joint_circuits=sum(layout.circuits_per_piece),
    )  # fmt: skip


def _search_widths(exact: Sequence[QPUNodeSpec]) -> list[int]:
    """Piece widths to search for, widest first: each node's, and for a node that defers
    mid-circuit measurements onto ancillas (``mid_circuit`` false) narrower ones down to half its
    width, which leave room for them."""
    widths = {node.max_qubits for node in exact}
    for node in exact:
        if not node.mid_circuit:
            widths.update(range(max(2, node.max_qubits // 2), node.max_qubits))
    return sorted(widths, reverse=True)


_SEARCH = threading.local()
_INSTALL_LOCK = threading.Lock()
_installed = False


@contextlib.contextmanager
def _bounded_search(deadline: float | None) -> Iterator[None]:
    """Make the library's best-first cut search stop at ``deadline`` (``time.monotonic()``).

    ``find_cuts`` takes no time limit, and its ``max_backjumps`` bounds work only loosely (a
    backjump costs 1 to 30 ms across the corpus). So once per process the library's search
    functions are wrapped: past the calling thread's deadline, the best-first phase expands no more
    states, its queue drains at once, and the library returns its greedy solution, as it does when
    the search exhausts its bounds. The greedy phase is never cut short (it must reach a solution);
    its cost is estimated beforehand instead. Other threads, and calls outside this context, are
    unaffected. Written against qiskit-addon-cutting 0.10 (pinned); ``test_cut_search`` checks it.
    """
    global _installed
    with _INSTALL_LOCK:
        if not _installed:
            _install_search_deadline()
            _installed = True
    _SEARCH.deadline = math.inf if deadline is None else deadline
    try:
        yield
    finally:
        _SEARCH.deadline = math.inf


def _install_search_deadline() -> None:
    from qiskit_addon_cutting.cut_finding import cut_optimization, lo_cuts_optimizer

    optimization_pass = cut_optimization.CutOptimization.optimization_pass

    def bounded(next_states: Any) -> Any:
        def bounded_next_states(state: Any, *args: Any) -> Any:
            if getattr(_SEARCH, "best_first", False) and time.monotonic() > getattr(_SEARCH, "deadline", math.inf):
                return []
            return next_states(state, *args)

        return bounded_next_states

    def bounded_pass(self: Any) -> Any:
        _SEARCH.best_first = True
        try:
            return optimization_pass(self)
        finally:
            _SEARCH.best_first = False

    # find_cuts reaches the search functions through lo_cuts_optimizer's own copy of the table
    for module in (cut_optimization, lo_cuts_optimizer):
        functions = module.cut_optimization_search_funcs
        functions.next_state_func = bounded(functions.next_state_func)
    cut_optimization.CutOptimization.optimization_pass = bounded_pass


def rank_candidates(candidates: Sequence[CutCandidate]) -> list[CutCandidate]:
    """Lowest overhead first (equal within :data:`OVERHEAD_RTOL`), then makespan, then cost."""
    ordered = sorted(candidates, key=lambda c: c.rank())
    best = ordered[0].sampling_overhead
    tied = [c for c in ordered if c.sampling_overhead <= best * (1 + OVERHEAD_RTOL)]
    rest = [c for c in ordered if c not in tied]
    return sorted(tied, key=lambda c: (c.estimated_seconds, c.estimated_cost)) + rest


def _candidate(
    source: str,
    cut_circuit: QuantumCircuit,
    cuts: tuple[tuple[str, int], ...],
    exact: Sequence[QPUNodeSpec],
    shots: int,
    model: CostModel,
) -> CutCandidate | None:
    """Decompose ``cut_circuit``, price it and place its pieces; ``None`` when a piece fits no node."""
    from qiskit_addon_cutting import cut_wires, partition_problem
    from qiskit_addon_cutting.qpd import BaseQPDGate

    problem = partition_problem(circuit=cut_wires(cut_circuit))
    overhead = float(np.prod([b.overhead for b in problem.bases])) if problem.bases else 1.0
    terms = int(np.prod([len(b.coeffs) for b in problem.bases])) if problem.bases else 1
    widths = {str(label): sub.num_qubits for label, sub in problem.subcircuits.items()}
    pieces = {
        str(label): (
            sub.num_qubits,
            len(sub.data),
            sum(1 for i in sub.data if len(i.qubits) > 1),
            sum(1 for i in sub.data if isinstance(i.operation, BaseQPDGate)),  # each may measure mid-circuit
        )
        for label, sub in problem.subcircuits.items()
    }
    if any(not any(node.fits(w, mid) for node in exact) for w, _, _, mid in pieces.values()):
        return None
    nodes, seconds, cost = _place(pieces, terms, exact, shots, model, dynamic=bool(problem.bases))
    return CutCandidate(source, cut_circuit, cuts, overhead, widths, terms, nodes, seconds, cost)


def _place(
    pieces: dict[str, tuple[int, int, int, int]],
    terms: int,
    exact: Sequence[QPUNodeSpec],
    shots: int,
    model: CostModel,
    *,
    dynamic: bool,
) -> tuple[dict[str, tuple[str, ...]], float, float]:
    """Pieces to nodes, widest piece first, each to the fitting node that finishes it soonest.

    Returns each piece's nodes (its chosen node first, then the other fitting ones), the makespan
    and the cost.
    """
    load: dict[str, float] = {node.node_id: 0.0 for node in exact}
    loads: list[tuple[QPUNodeSpec, float]] = []
    placed: dict[str, tuple[str, ...]] = {}
    cost = 0.0
    for label, (width, n_ops, n_multi, mid) in sorted(pieces.items(), key=lambda kv: (-kv[1][0], kv[0])):
        fit = [node for node in exact if node.fits(width, mid)]

        def seconds(node: QPUNodeSpec, width: int = width, n_ops: int = n_ops, n_multi: int = n_multi) -> float:
            one = model.shard_seconds(node, width=width, n_ops=n_ops, n_multi=n_multi, shots=shots, dynamic=dynamic)
            return terms * one

        best = min(fit, key=lambda node: (load[node.node_id] + seconds(node), node.node_id))
        spent = seconds(best)
        load[best.node_id] += spent
        loads.append((best, spent))
        gates = GateCounts(one_qubit=n_ops - n_multi, two_qubit=n_multi, measurements=width)  # each piece measured
        cost += best.price(terms * shots, spent, tasks=terms, gates=gates)
        placed[label] = (best.node_id, *(node.node_id for node in fit if node is not best))
    return placed, model.makespan(loads), cost


# -- node-sized partitions (gate cuts only) -------------------------------------------------------


def _node_sized(
    circuit: QuantumCircuit,
    exact: Sequence[QPUNodeSpec],
    shots: int,
    seed: int,
    model: CostModel,
    deadline: float | None = None,
    max_overhead: float = math.inf,
    rejected: list[RejectedCut] | None = None,
) -> list[CutCandidate]:
    """One candidate per part count ``k``: parts that fit the ``k`` widest nodes, one each (fewer
    part counts once ``deadline`` has passed). Partitions above ``max_overhead`` are only noted in
    ``rejected``."""
    from qiskit_addon_cutting import cut_gates

    graph = _InteractionGraph.of(circuit)
    if graph is None:
        return []
    out: list[CutCandidate] = []
    capacities = [node.max_qubits for node in exact]
    for k in range(2, min(len(exact), len(graph.sizes)) + 1):
        if out and deadline is not None and time.monotonic() > deadline:
            break
        caps = capacities[:k]
        if sum(caps) < circuit.num_qubits:
            continue
        parts = graph.partition(caps, np.random.default_rng([seed, k]))
        if parts is None:
            continue
        gate_ids = graph.crossing_gates(parts)
        name = "+".join(str(c) for c in caps)
        overhead = math.exp(min(graph.cut_weight(np.asarray(parts)), 700.0))  # past e^700 a float overflows
        if overhead > max_overhead * (1 + 1e-6):
            if rejected is not None:
                rejected.append(
                    RejectedCut(f"node-sized({name})", tuple(("Gate Cut", int(i)) for i in gate_ids), overhead)
                )
            continue
        try:
            cut_circuit, _ = cut_gates(circuit, gate_ids)
        except Exception:  # a crossing gate the library cannot decompose
            continue
        cuts = tuple(("Gate Cut", int(i)) for i in gate_ids)
        candidate = _candidate(f"node-sized({name})", cut_circuit, cuts, exact, shots, model)
        if candidate is not None:
            out.append(candidate)
    return out


@dataclass
class _InteractionGraph:
    """Qubits merged where a gate acts on three or more (those cannot be cut), edge weights the
    log of the overhead of cutting every gate between two groups."""

    group_of: list[int]  # qubit -> group
    sizes: list[int]  # group -> qubits in it
    weights: np.ndarray  # group x group, symmetric, log-overhead
    gates: list[tuple[int, int, int]]  # (gate index, group a, group b) of two-qubit gates

    @classmethod
    def of(cls, circuit: QuantumCircuit) -> _InteractionGraph | None:
        from qiskit_addon_cutting.qpd import QPDBasis

        n = circuit.num_qubits
        parent = list(range(n))

        def find(q: int) -> int:
            while parent[q] != q:
                parent[q] = parent[parent[q]]
                q = parent[q]
            return q

        pairs: list[tuple[int, int, int, float]] = []
        for index, inst in enumerate(circuit.data):
            qubits = [circuit.find_bit(q).index for q in inst.qubits]
            if len(qubits) > 2 or (len(qubits) == 2 and inst.clbits):
                for q in qubits[1:]:
                    parent[find(q)] = find(qubits[0])
            elif len(qubits) == 2:
                try:
                    factor = float(QPDBasis.from_instruction(inst.operation).overhead)
                except Exception:  # not decomposable: keep both qubits together
                    parent[find(qubits[1])] = find(qubits[0])
                    continue
                pairs.append((index, qubits[0], qubits[1], math.log(max(factor, 1.0 + 1e-12))))
        roots = sorted({find(q) for q in range(n)})
        number = {r: i for i, r in enumerate(roots)}
        group_of = [number[find(q)] for q in range(n)]
        sizes = [0] * len(roots)
        for g in group_of:
            sizes[g] += 1
        weights = np.zeros((len(roots), len(roots)))
        gates = []
        for index, a, b, w in pairs:
            ga, gb = group_of[a], group_of[b]
            if ga != gb:
                weights[ga, gb] += w
                weights[gb, ga] += w
                gates.append((index, ga, gb))
        if len(roots) < 2:
            return None
        return cls(group_of, sizes, weights, gates)

    def crossing_gates(self, parts: Sequence[int]) -> list[int]:
        return [index for index, a, b in self.gates if parts[a] != parts[b]]

    def cut_weight(self, parts: np.ndarray) -> float:
        different = parts[:, None] != parts[None, :]
        return float(self.weights[different].sum() / 2)

    def partition(self, caps: Sequence[int], rng: np.random.Generator) -> list[int] | None:
        """Groups to ``len(caps)`` parts within capacities, lowest cut weight found; None if none fits."""
        best: np.ndarray | None = None
        best_weight = math.inf
        starts = [self._bfs_order(0), self._bfs_order(self._far_end())]
        starts += [list(rng.permutation(len(self.sizes))) for _ in range(RESTARTS)]
        for order in starts:
            parts = self._fill(order, caps)
            if parts is None:
                continue
            self._refine(parts, caps)
            weight = self.cut_weight(parts)
            if weight < best_weight - 1e-12:
                best, best_weight = parts, weight
        return None if best is None else [int(p) for p in best]

    def _bfs_order(self, start: int) -> list[int]:
        seen = [False] * len(self.sizes)
        order: list[int] = []
        for root in [start, *range(len(self.sizes))]:
            if seen[root]:
                continue
            seen[root] = True
            queue = [root]
            while queue:
                g = queue.pop(0)
                order.append(g)
                for h in np.argsort(-self.weights[g], kind="stable"):
                    if self.weights[g, h] > 0 and not seen[h]:
                        seen[h] = True
                        queue.append(int(h))
        return order

    def _far_end(self) -> int:
        return self._bfs_order(0)[-1]

    def _fill(self, order: Sequence[int], caps: Sequence[int]) -> np.ndarray | None:
        """Fill parts in order along ``order``; a group that does not fit goes to the roomiest part."""
        parts = np.full(len(self.sizes), -1)
        room = list(caps)
        current = 0
        for g in order:
            size = self.sizes[g]
            while current < len(room) and room[current] < size:
                current += 1
            target = current if current < len(room) else int(np.argmax(room))
            if room[target] < size:
                return None
            parts[g] = target
            room[target] -= size
        return parts

    def _refine(self, parts: np.ndarray, caps: Sequence[int]) -> None:
        """Single moves and pairwise swaps that lower the cut weight, until none does."""
        k = len(caps)
        sizes = np.asarray(self.sizes)
        room = np.asarray(caps) - np.bincount(parts, weights=sizes, minlength=k).astype(int)
        improved = True
        while improved:
            improved = False
            # affinity[g, p]: weight from group g to part p
            affinity = np.stack([self.weights[:, parts == p].sum(axis=1) for p in range(k)], axis=1)
            for g in range(len(self.sizes)):
                here = parts[g]
                gains = affinity[g] - affinity[g, here]
                for p in np.argsort(-gains):
                    if p == here or gains[p] <= 1e-12:
                        break
                    if room[p] >= sizes[g]:
                        self._move(parts, room, affinity, sizes, g, int(p))
                        improved = True
                        break
            if improved:
                continue
            for g in range(len(self.sizes)):
                for h in range(g + 1, len(self.sizes)):
                    pg, ph = parts[g], parts[h]
                    if pg == ph:
                        continue
                    gain = (
                        affinity[g, ph] - affinity[g, pg] + affinity[h, pg] - affinity[h, ph] - 2 * self.weights[g, h]
                    )
                    if gain <= 1e-12:
                        continue
                    if room[ph] + sizes[h] >= sizes[g] and room[pg] + sizes[g] >= sizes[h]:
                        self._move(parts, room, affinity, sizes, g, int(ph))
                        self._move(parts, room, affinity, sizes, h, int(pg))
                        improved = True
                        break
                if improved:
                    break

    def _move(
        self, parts: np.ndarray, room: np.ndarray, affinity: np.ndarray, sizes: np.ndarray, g: int, p: int
    ) -> None:
        old = parts[g]
        parts[g] = p
        room[old] += sizes[g]
        room[p] -= sizes[g]
        affinity[:, old] -= self.weights[:, g]
        affinity[:, p] += self.weights[:, g]


def describe(candidate: CutCandidate) -> dict[str, Any]:
    """A candidate as plain data (for plan notes)."""
    return {
        "source": candidate.source,
        "cuts": len(candidate.cuts),
        "sampling_overhead": candidate.sampling_overhead,
        "widths": sorted(candidate.widths.values(), reverse=True),
        "estimated_seconds": candidate.estimated_seconds,
    }


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
    joint: bool = True,
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
    gates = gate_counts(circuit)
    mps = sorted(
        (node for node in nodes if not node.exact and node.max_qubits >= n),
        key=lambda node: node.price(shots, gates=gates),
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
                    deadline=time.monotonic() + time_budget, rejected=rejected, joint=joint,
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
        return whole_on(circuit, mps[0], shots, CostModel()), notes
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


def whole_on(circuit: QuantumCircuit, node: QPUNodeSpec, shots: int, model: CostModel) -> CutCandidate:
    """The uncut circuit placed on ``node`` (an approximate node that holds it)."""
    n_multi = sum(1 for inst in circuit.data if len(inst.qubits) > 1)
    seconds = model.shard_seconds(
        node, width=circuit.num_qubits, n_ops=len(circuit.data), n_multi=n_multi, shots=shots, dynamic=False
    )
    cost = node.price(shots, seconds, gates=gate_counts(circuit))
    return CutCandidate(
        f"whole on {node.node_id}", circuit, (), 1.0, {"0": circuit.num_qubits}, 1, {"0": (node.node_id,)},
        seconds, cost, approximate=True,
    )  # fmt: skip
