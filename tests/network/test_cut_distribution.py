"""Full output distributions rebuilt from cut subexperiments (network.cutting: decomposition and reconstruction).

Subexperiments carry mid-circuit measurements and resets, so a simulator runs them shot by shot:
AerSimulator needs about 85 s for one two-cut case at 10^5 shots per subexperiment. The statistical
sweep therefore samples each subexperiment multinomially from its exact outcome distribution
(computed by branching on every measurement and reset), which is what an ideal device returns; two
cases also go through AerSimulator end to end.

Measured on 12 cases (10 random connected 8-qubit circuits cut by find_cuts for 4- or 5-qubit nodes,
one or two CX gate cuts each, and 2 star circuits with a wire cut), TVD of the nearest probability
distribution to the exact one, shots per subexperiment: mean 0.081 (max 0.095) at 10^3, mean 0.0085
(max 0.011) at 10^5, ratio 9.5. Through AerSimulator: 0.011 (one gate cut, 5x10^4 shots) and 0.007
(wire cut, 10^5 shots).
"""

from __future__ import annotations

from collections.abc import Hashable
from functools import cache
from itertools import pairwise

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import Operator, Statevector
from qiskit.result import QuasiDistribution
from qiskit_addon_cutting.instructions import CutWire
from qiskit_aer import AerSimulator

from network.cutting import (
    MAX_DISTRIBUTION_QUBITS,
    DistributionProblem,
    DistributionTooLargeError,
    build_distribution_problem,
    estimate_distribution,
    find_distribution_problem,
    nearest_probability_distribution,
    reconstruct_distribution,
    reconstruct_sparse,
    sample_counts,
    to_quasi_dict,
    total_variation,
)
from network.errors import PlanningError

#: Bound on the TVD of each case at 10^5 shots per subexperiment, and of the Aer runs (measured at most 0.011).
TVD_BOUND = 0.03
#: Mean TVD at 10^3 shots over mean TVD at 10^5 must exceed this (shot noise predicts 10; measured 9.5).
MIN_TVD_RATIO = 5.0

Counts = dict[Hashable, list[dict[str, float]]]


def line_circuit(seed: int, n: int = 8, gates: int = 16) -> QuantumCircuit:
    """Random ry/rz rotations and CX between neighbours; every neighbour pair once at least (connected)."""
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(n)
    for q in range(n):
        qc.ry(rng.uniform(0, np.pi), q)
        qc.rz(rng.uniform(0, 2 * np.pi), q)
    pairs = [*rng.permutation(n - 1), *rng.integers(n - 1, size=gates - n + 1)]
    for a in map(int, pairs):
        control, target = (a, a + 1) if rng.random() < 0.5 else (a + 1, a)
        qc.cx(control, target)
        qc.ry(rng.uniform(0, np.pi), control)
        qc.rz(rng.uniform(0, 2 * np.pi), target)
    return qc


def star_circuit(seed: int) -> QuantumCircuit:
    """Qubit 0 entangles with qubits 1-3, then with 4-7: find_cuts cuts its wire in between."""
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(8)
    for q in range(8):
        qc.ry(rng.uniform(0, np.pi), q)
    for group in ((1, 2, 3), (4, 5, 6, 7)):
        for t in rng.permutation(group):
            qc.cx(0, int(t))
            qc.ry(rng.uniform(0, np.pi), 0)
        for a, b in pairwise(group):
            qc.cx(a, b)
            qc.ry(rng.uniform(0, np.pi), b)
    return qc


def exact_outcomes(circ: QuantumCircuit) -> dict[str, float]:
    """Exact distribution of a circuit's count keys, branching on mid-circuit measurements and resets."""
    branches: list[tuple[float, Statevector, dict[int, int]]] = [(1.0, Statevector.from_int(0, 2**circ.num_qubits), {})]
    for inst in circ.data:
        qargs = [circ.find_bit(q).index for q in inst.qubits]
        if inst.name == "barrier":
            continue
        if inst.name not in ("measure", "reset"):
            branches = [(w, sv.evolve(inst.operation, qargs), bits) for w, sv, bits in branches]
            continue
        split = []
        for w, sv, bits in branches:
            p_one = sv.probabilities(qargs)[1]
            for outcome, p in ((0, 1 - p_one), (1, p_one)):
                if p < 1e-14:
                    continue
                state = sv.evolve(Operator(np.diag([1.0 - outcome, outcome])), qargs)
                state = Statevector(state.data / np.sqrt(p))
                recorded = dict(bits)
                if inst.name == "measure":
                    recorded[circ.find_bit(inst.clbits[0]).index] = outcome
                elif outcome:
                    state = state.evolve(Operator([[0, 1], [1, 0]]), qargs)
                split.append((w * p, state, recorded))
        branches = split
    out: dict[str, float] = {}
    for w, _, bits in branches:
        key = "".join(str(bits.get(j, 0)) for j in reversed(range(circ.num_clbits)))
        out[key] = out.get(key, 0.0) + w
    return out


CASES = [("line", seed, 5 if seed % 2 else 4) for seed in range(10)] + [("star", 0, 5), ("star", 1, 5)]


@cache
def case(kind: str, seed: int, width: int) -> tuple[DistributionProblem, np.ndarray, Counts]:
    """The problem, the exact distribution, and every subexperiment's exact outcome distribution."""
    qc = line_circuit(seed) if kind == "line" else star_circuit(seed)
    problem, _ = find_distribution_problem(qc, width)
    outcomes = {label: [exact_outcomes(c) for c in circs] for label, circs in problem.subexperiments.items()}
    return problem, Statevector(qc).probabilities(), outcomes


def sample_exact(outcomes: Counts, shots: int, seed: int) -> Counts:
    """Ideal-device counts: each subexperiment sampled independently from its exact distribution."""
    rng = np.random.default_rng(seed)
    sampled: Counts = {}
    for label, dists in outcomes.items():
        sampled[label] = []
        for dist in dists:
            tally = rng.multinomial(shots, np.array(list(dist.values())) / sum(dist.values()))
            sampled[label].append({k: int(t) for k, t in zip(dist, tally, strict=True) if t})
    return sampled


def run_aer(problem: DistributionProblem, shots: int, seed: int) -> Counts:
    """Each label's subexperiments in one Aer call, with its own seed (Aer seeds a call's experiments from one)."""
    sim = AerSimulator()
    counts: Counts = {}
    for k, (label, circs) in enumerate(problem.subexperiments.items()):
        result = sim.run(circs, shots=shots, seed_simulator=seed + 1000 * k).result()
        counts[label] = [result.get_counts(i) for i in range(len(circs))]
    return counts


def test_cases_cover_gate_and_wire_cuts() -> None:
    kinds = [{kind for kind, _ in case(*c)[0].cuts} for c in CASES]
    assert all(kinds), "every case needs at least one cut"
    assert sum("Wire Cut" in k for k in kinds) == 2
    assert sum(len(case(*c)[0].cuts) >= 2 for c in CASES) >= 5


@pytest.mark.parametrize("spec", CASES, ids=[f"{k}{s}-w{w}" for k, s, w in CASES])
def test_exact_subexperiment_distributions_reconstruct_exactly(spec: tuple[str, int, int]) -> None:
    problem, exact, outcomes = case(*spec)
    assert max(len(q) for q in problem.label_qubits.values()) <= spec[2]
    np.testing.assert_allclose(reconstruct_distribution(problem, outcomes), exact, atol=1e-9)


def test_forced_wire_cuts_partition_labels_and_idle_qubits_reconstruct_exactly() -> None:
    qc = line_circuit(2, n=6, gates=8)
    # a wire cut before anything on qubit 5 and one after everything on qubit 1: a subcircuit
    # holds only qubit 5's first segment and measures no original qubit
    cut = QuantumCircuit(6)
    cut.append(CutWire(), [5])
    for inst in qc.data:
        cut.append(inst)
    cut.append(CutWire(), [1])
    idle = QuantumCircuit(5)
    idle.h(0)
    idle.cx(0, 1)
    idle.ry(0.4, 3)
    idle.cx(3, 4)
    idle.cx(1, 3)
    problems = [
        (qc, build_distribution_problem(qc, cut)),
        (qc, build_distribution_problem(qc, partition_labels="AABBBA")),
        (idle, build_distribution_problem(idle, partition_labels=["a", "a", None, "b", "b"])),
    ]
    assert problems[0][1].cuts == (("Wire Cut", 0), ("Wire Cut", len(qc.data) + 1))
    assert () in problems[0][1].label_qubits.values()
    assert problems[1][1].label_qubits == {"A": (0, 1, 5), "B": (2, 3, 4)}
    assert problems[2][1].cuts == (("Gate Cut", 4),)
    for circuit, problem in problems:
        outcomes = {label: [exact_outcomes(c) for c in circs] for label, circs in problem.subexperiments.items()}
        exact = Statevector(circuit).probabilities()
        np.testing.assert_allclose(reconstruct_distribution(problem, outcomes), exact, atol=1e-9)


def test_tvd_is_small_at_1e5_shots_and_falls_with_shots() -> None:
    tvd: dict[int, list[float]] = {10**3: [], 10**5: []}
    for i, spec in enumerate(CASES):
        problem, exact, outcomes = case(*spec)
        for shots, values in tvd.items():
            quasi = reconstruct_distribution(problem, sample_exact(outcomes, shots, seed=i))
            values.append(total_variation(nearest_probability_distribution(quasi), exact))
    assert max(tvd[10**5]) < TVD_BOUND, tvd[10**5]
    assert np.mean(tvd[10**3]) > MIN_TVD_RATIO * np.mean(tvd[10**5]), tvd


@pytest.mark.parametrize(("spec", "shots"), [(("line", 3, 5), 50_000), (("star", 0, 5), 100_000)])
def test_aer_counts_end_to_end(spec: tuple[str, int, int], shots: int) -> None:
    problem, exact, _ = case(*spec)
    counts = run_aer(problem, shots, seed=7)
    assert any(" " in key for key in counts[0][0]), "Aer separates registers with spaces"
    estimate = estimate_distribution(problem, counts, shots=1000, seed=1)
    assert total_variation(estimate.probabilities, exact) < TVD_BOUND
    assert sum(estimate.counts.values()) == 1000
    hexed = {
        label: [{hex(int(k.replace(" ", ""), 2)): v for k, v in c.items()} for c in per]
        for label, per in counts.items()
    }
    np.testing.assert_array_equal(reconstruct_distribution(problem, hexed), estimate.quasi)


def test_shots_may_differ_between_subexperiments() -> None:
    problem, exact, outcomes = case("line", 3, 5)
    scaled = {
        label: [{k: v * (i + 1) for k, v in d.items()} for i, d in enumerate(ds)] for label, ds in outcomes.items()
    }
    np.testing.assert_allclose(reconstruct_distribution(problem, scaled), exact, atol=1e-9)


def test_reconstruct_rejects_bad_counts() -> None:
    problem, _, outcomes = case("line", 3, 5)
    with pytest.raises(ValueError, match="needs counts for"):
        reconstruct_distribution(problem, {0: outcomes[0]})
    short = {label: [{"0" + k: v for k, v in d.items()} for d in ds] for label, ds in outcomes.items()}
    with pytest.raises(ValueError, match="classical bits"):
        reconstruct_distribution(problem, short)


def test_nearest_probability_distribution_matches_qiskit() -> None:
    rng = np.random.default_rng(3)
    quasi = rng.normal(0.02, 0.05, size=256)
    quasi /= quasi.sum()
    assert (quasi < 0).sum() > 50
    ours = nearest_probability_distribution(quasi)
    theirs = QuasiDistribution(dict(enumerate(quasi))).nearest_probability_distribution()
    np.testing.assert_allclose(ours, [theirs.get(i, 0.0) for i in range(quasi.size)], atol=1e-12)
    assert ours.min() >= 0
    assert ours.sum() == pytest.approx(1.0)
    off = nearest_probability_distribution(quasi * 1.1)
    assert off.min() >= 0
    assert off.sum() == pytest.approx(1.0)
    probs = rng.dirichlet(np.ones(16))
    np.testing.assert_allclose(nearest_probability_distribution(probs), probs, atol=1e-15)


def test_sample_counts() -> None:
    probs = np.random.default_rng(0).dirichlet(np.ones(32))
    counts = sample_counts(probs, 5000, seed=4)
    assert sum(counts.values()) == 5000
    assert {len(k) for k in counts} == {5}
    assert all(v > 0 for v in counts.values())
    assert counts == sample_counts(probs, 5000, seed=4)
    assert counts != sample_counts(probs, 5000, seed=5)
    one_hot = np.zeros(8)
    one_hot[1] = 1.0  # qubit 0 set: rightmost character
    assert sample_counts(one_hot, 10, seed=0) == {"001": 10}
    with pytest.raises(ValueError):
        sample_counts(-one_hot, 10, seed=0)


def test_to_quasi_dict_and_total_variation() -> None:
    quasi = np.array([0.6, -0.1, 0.0, 0.5])
    assert to_quasi_dict(quasi) == {"00": 0.6, "01": -0.1, "11": 0.5}
    assert total_variation(quasi, np.array([1.0, 0, 0, 0])) == pytest.approx(0.5)


def test_too_many_qubits_is_refused_before_any_work() -> None:
    n = MAX_DISTRIBUTION_QUBITS + 1
    wide = QuantumCircuit(n)
    wide.h(range(n))
    for build in (lambda: build_distribution_problem(wide), lambda: find_distribution_problem(wide, 4)):
        with pytest.raises(DistributionTooLargeError, match=f"{n}-qubit") as info:
            build()
        assert isinstance(info.value, PlanningError)
        assert "64-bit keys" in str(info.value)


def test_sparse_estimate_is_the_dense_one_and_goes_past_24_qubits() -> None:
    """The sparse estimate holds only the combinations of observed outcomes and equals the dense
    one entry for entry; a 30-qubit problem (two 15-qubit GHZ halves joined by a CX, exact
    subexperiment distributions) rebuilds exactly with a handful of entries, and its dense form
    is refused with the numbers."""
    for spec in CASES[:3]:
        problem, _, outcomes = case(*spec)
        counts = sample_exact(outcomes, 2_000, seed=9)
        sparse = reconstruct_sparse(problem, counts)
        dense = reconstruct_distribution(problem, counts)
        assert sparse.keys.size == np.count_nonzero(dense)
        np.testing.assert_array_equal(dense[sparse.keys.astype(np.int64)], sparse.values)
    n = 30
    ghz = QuantumCircuit(n)
    ghz.h(0)
    for q in range(n - 1):
        ghz.cx(q, q + 1)
    problem = build_distribution_problem(ghz, partition_labels=[q // 15 for q in range(n)])
    outcomes = {label: [exact_outcomes(c) for c in circs] for label, circs in problem.subexperiments.items()}
    quasi = reconstruct_sparse(problem, outcomes)
    assert quasi.num_qubits == n and quasi.keys.size < 100
    exact = {"0" * n: 0.5, "1" * n: 0.5}
    assert {k: round(v, 9) for k, v in quasi.to_dict().items()} == exact
    with pytest.raises(DistributionTooLargeError, match="dense 30-qubit distribution needs 8,589,934,592 bytes"):
        quasi.dense()


def test_too_many_terms_is_refused() -> None:
    n = MAX_DISTRIBUTION_QUBITS
    chain = QuantumCircuit(n)
    for q in range(n - 1):
        chain.cx(q, q + 1)
    with pytest.raises(DistributionTooLargeError, match="QPD terms"):
        build_distribution_problem(chain, partition_labels=[q % 2 for q in range(n)])
