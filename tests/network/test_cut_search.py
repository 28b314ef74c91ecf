"""Cut search over heterogeneous nodes: candidates from find_cuts and node-sized partitions, ranked."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from qiskit import QuantumCircuit

from network.cutting.search import RejectedCut, _InteractionGraph, candidate_cuts, rank_candidates, strip_barriers
from network.errors import PlanningError
from network.node_providers import QPUNodeSpec


def node(node_id: str, width: int, *, exact: bool = True, host: str = "local") -> QPUNodeSpec:
    return QPUNodeSpec(node_id=node_id, provider_key="local_cpu", max_qubits=width, exact=exact, host=host)


def block(qc: QuantumCircuit, qubits: list[int], rng: np.random.Generator, layers: int = 2) -> None:
    """Random ``ry`` layers and a CX chain: every qubit of ``qubits`` entangled with the next."""
    for _ in range(layers):
        for q in qubits:
            qc.ry(float(rng.uniform(0.1, 3.0)), q)
        for a, b in itertools.pairwise(qubits):
            qc.cx(a, b)


def planted(sizes: list[int], seed: int) -> QuantumCircuit:
    """Blocks of ``sizes`` qubits, consecutive blocks joined by one CX: the cheapest cut is known."""
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(sum(sizes))
    start = 0
    spans = []
    for size in sizes:
        spans.append(list(range(start, start + size)))
        start += size
    for span in spans:
        block(qc, span, rng)
    for left, right in itertools.pairwise(spans):
        qc.cx(left[-1], right[0])
    for span in spans:
        block(qc, span, rng, layers=1)
    return qc


def test_best_plan_uses_two_different_widths_on_two_nodes() -> None:
    """A 7-qubit block and a 4-qubit block joined by one CX, on a 7-qubit and a 4-qubit node."""
    qc = planted([7, 4], seed=1)
    nodes = [node("wide", 7, host="a"), node("narrow", 4, host="b")]
    best = rank_candidates(candidate_cuts(qc, nodes, shots=1000, seed=3))[0]
    assert best.sampling_overhead == pytest.approx(9.0)
    assert sorted(best.widths.values()) == [4, 7]
    placed = {best.widths[label]: chosen[0] for label, chosen in best.nodes.items()}
    assert placed == {7: "wide", 4: "narrow"}


def test_narrow_width_alone_would_cost_far_more() -> None:
    """Cutting the same circuit for the 4-qubit node only needs more cuts: the search never even
    decomposes that cut (it cannot beat the best found), it only notes it."""
    qc = planted([7, 4], seed=2)
    rejected: list[RejectedCut] = []
    candidates = candidate_cuts(qc, [node("wide", 7), node("narrow", 4)], shots=1000, seed=3, rejected=rejected)
    assert not [c for c in candidates if c.source == "find_cuts(width=4)"]
    narrow = [r for r in rejected if r.source == "find_cuts(width=4)"]
    assert narrow and narrow[0].sampling_overhead > 9.0
    assert rank_candidates(candidates)[0].sampling_overhead == pytest.approx(9.0)


@pytest.mark.parametrize(("sizes", "caps"), [([6, 3, 3], [6, 3, 3]), ([5, 4, 3], [5, 4, 3]), ([8, 2], [8, 2])])
def test_node_sized_partition_finds_the_planted_cut(sizes: list[int], caps: list[int]) -> None:
    qc = planted(sizes, seed=sum(sizes))
    graph = _InteractionGraph.of(qc)
    assert graph is not None
    parts = graph.partition(caps, np.random.default_rng(0))
    assert parts is not None
    assert len(graph.crossing_gates(parts)) == len(sizes) - 1
    filled = np.bincount(np.asarray(parts), weights=np.asarray(graph.sizes), minlength=len(caps))
    assert all(f <= c for f, c in zip(filled, caps, strict=True))


def test_three_qubit_gates_stay_in_one_piece() -> None:
    qc = planted([4, 4], seed=5)
    qc.ccx(3, 4, 5)  # joins both blocks: must not be cut
    graph = _InteractionGraph.of(qc)
    assert graph is not None
    assert graph.group_of[3] == graph.group_of[4] == graph.group_of[5]


def test_circuit_that_fits_a_node_is_not_cut() -> None:
    qc = planted([3, 3], seed=6)
    (only,) = candidate_cuts(qc, [node("n", 6)], shots=100, seed=0)
    assert only.cuts == () and only.sampling_overhead == 1.0


def test_only_approximate_nodes_is_a_planning_error() -> None:
    with pytest.raises(PlanningError, match="exact nodes"):
        candidate_cuts(planted([4, 4], seed=7), [node("mps", 64, exact=False)], shots=100, seed=0)


def test_barriers_are_stripped() -> None:
    qc = planted([3, 3], seed=8)
    qc.barrier()
    assert "barrier" not in strip_barriers(qc).count_ops()
    assert strip_barriers(qc).num_qubits == qc.num_qubits


def test_the_library_search_stops_at_the_deadline_with_its_greedy_cut() -> None:
    """Past the deadline the best-first search expands nothing more and find_cuts returns the greedy
    solution, exactly as with no backjumps at all; without a deadline it searches as before."""
    import time

    from qiskit_addon_cutting import DeviceConstraints, OptimizationParameters, find_cuts

    from network.cutting.search import _bounded_search

    qc = QuantumCircuit(6)
    for a in range(6):
        qc.h(a)
        for b in range(a + 1, 6):
            qc.cp(0.3 * (b - a), a, b)
    constraints = DeviceConstraints(qubits_per_subcircuit=4)

    def overhead(backjumps: int) -> float:
        _, meta = find_cuts(qc, OptimizationParameters(seed=1, max_backjumps=backjumps), constraints)
        return float(meta["sampling_overhead"])

    greedy = overhead(0)
    with _bounded_search(time.monotonic() - 1.0):
        assert overhead(10_000) == greedy
    with _bounded_search(None):
        searched = overhead(10_000)
    assert searched <= greedy
    assert overhead(10_000) == searched  # outside the context nothing is bounded
