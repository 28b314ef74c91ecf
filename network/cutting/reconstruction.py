"""Cut reconstruction, the last stage of cutting: subexperiment counts back to the answer. Pure.

Distributions (qiskit-addon-cutting reconstructs expectation values only). Every original qubit is
measured in Z at the end of the subcircuit that holds its final state. QPD term ``t`` has coefficient
``c_t`` and, for every subcircuit label ``l``, one subexperiment whose shots give ``x_l`` (the bits of
the original qubits finishing in ``l``) and ``m`` (the QPD measurement bits). With ``q_tl(x_l)`` the
mean over shots of ``1{bits == x_l} * (-1)^parity(m)``,

    p(x) = sum_t c_t * prod_l q_tl(x_l)

is an unbiased estimate of the exact distribution, because the labels' subexperiments are sampled
independently. It is a quasi-probability (entries may be negative and the sum is 1 only on
average); :func:`nearest_probability_distribution` maps it to the nearest probability vector, and
the block's counts are sampled from that.

Wire cuts: ``cut_wires`` moves a cut qubit's state onto a new qubit through a ``Move``; the original
``Qubit`` object ends up holding the final state (what ``expand_observables`` maps the qubit to), so
that is the qubit measured for it. Qubits idle in the whole circuit belong to no subcircuit and
always read 0. The statistical error grows with the sampling overhead (9 per CX cut, 16 per wire
cut) as for expectation values, and spreads over 2^n outcomes.

Expectation values: the library's ``reconstruct_expectation_values``, with bootstrap standard
errors (:func:`estimate_expectations`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import PauliList, SparsePauliOp

from network.circuits import derive_seed
from network.cutting.decomposition import (
    MAX_DENSE_QUBITS,
    BlockKind,
    BlockProblem,
    CutBlock,
    DistributionProblem,
    DistributionTooLargeError,
    SubexperimentBits,
    all_paulis,
    check_support,
)
from network.cutting.experiments import MIN_CIRCUIT_SHOTS, outcome_bits
from network.cutting.joint import estimate_joint_expectations, reconstruct_joint_sparse
from network.errors import ExecutionError

__all__ = [
    "BOOTSTRAP",
    "BlockEstimate",
    "DistributionEstimate",
    "Expectations",
    "SparseQuasi",
    "estimate_distribution",
    "estimate_expectations",
    "nearest_probability_distribution",
    "over_clbits",
    "reconstruct_block",
    "reconstruct_distribution",
    "reconstruct_sparse",
    "sample_counts",
    "to_quasi_dict",
    "total_variation",
]

#: Bootstrap replicates behind each standard error: every circuit's counts are resampled
#: (multinomially, from its observed frequencies) this many times and the estimate recomputed. With
#: 8 batch-means slices instead, the error of the error made a value 4 "standard errors" off about
#: 0.5 % of the time; with 200 replicates it is close to the Gaussian rate (6e-5).
BOOTSTRAP = 200


@dataclass
class DistributionEstimate:
    """A reconstructed distribution in its three forms.

    Attributes:
        quasi: Unbiased quasi-probabilities (index ``i`` has original qubit ``k`` at bit ``k``).
        probabilities: The nearest probability distribution to ``quasi``.
        counts: Counts sampled from ``probabilities``, Qiskit-style keys (empty if no shots were asked).
    """

    quasi: np.ndarray
    probabilities: np.ndarray
    counts: dict[str, int]


def _signed_outcomes(counts: Mapping[str, float], bits: SubexperimentBits) -> tuple[np.ndarray, np.ndarray]:
    """Each observed ``x`` and its weight in ``q(x)``: the mean over shots of
    ``1{outcome == x} * (-1)^parity(qpd bits)``."""
    weights = np.array(list(counts.values()), dtype=float)
    matrix = outcome_bits(list(counts), bits.num_clbits)
    x = matrix[:, list(bits.outcome_clbits)] @ (1 << np.arange(len(bits.outcome_clbits), dtype=np.int64))
    sign = 1.0 - 2.0 * (matrix[:, list(bits.qpd_clbits)].sum(axis=1) % 2)
    return x, weights * sign / weights.sum()


@dataclass(frozen=True)
class SparseQuasi:
    """A reconstructed quasi-distribution over the outcomes it can give.

    Attributes:
        keys: Outcomes as integers (original qubit ``k`` at bit ``k``), uint64.
        values: Their quasi-probabilities (float64, may be negative; the sum is 1 on average).
        num_qubits: Width of the outcomes.
    """

    keys: np.ndarray
    values: np.ndarray
    num_qubits: int

    @property
    def negative_mass(self) -> float:
        """Total of the negative entries, as a positive number."""
        return float(-self.values[self.values < 0].sum())

    def bitstring(self, i: int) -> str:
        """Entry ``i``'s outcome as an ``n``-bit string, qubit 0 rightmost."""
        return format(int(self.keys[i]), f"0{self.num_qubits}b")

    def to_dict(self, *, threshold: float = 1e-9) -> dict[str, float]:
        """Entries with ``|value| > threshold``, keyed by ``n``-bit strings (qubit 0 rightmost)."""
        return {self.bitstring(int(i)): float(self.values[i]) for i in np.flatnonzero(np.abs(self.values) > threshold)}

    def dense(self) -> np.ndarray:
        """The ``2^n`` float64 array (index ``i`` has qubit ``k`` at bit ``k``).

        Raises:
            DistributionTooLargeError: ``n`` above :data:`MAX_DENSE_QUBITS`.
        """
        if self.num_qubits > MAX_DENSE_QUBITS:
            raise DistributionTooLargeError(
                f"A dense {self.num_qubits}-qubit distribution needs {8 * 2**self.num_qubits:,} bytes, above the "
                f"limit of {8 * 2**MAX_DENSE_QUBITS:,} ({MAX_DENSE_QUBITS} qubits); use the sparse entries."
            )
        out = np.zeros(2**self.num_qubits)
        out[self.keys.astype(np.int64)] = self.values
        return out


def reconstruct_sparse(
    problem: DistributionProblem, counts: Mapping[Hashable, Sequence[Mapping[str, float]]]
) -> SparseQuasi:
    """The unbiased quasi-probability estimate of the original circuit's output distribution, over
    the outcomes it can give: every combination of the outcomes each label's subexperiments gave
    (the estimate is exactly 0 elsewhere). Memory grows with those, not with ``2^n``.

    Args:
        problem: From :func:`build_distribution_problem`.
        counts: Per label, one counts mapping per subexperiment in the order of
            ``problem.subexperiments[label]``. Keys are Qiskit-style bitstrings over all classical
            registers (spaces between registers allowed) or hex (``"0x3"``); values may be counts or
            probabilities. Each subexperiment is normalized by its own total.

    Raises:
        ValueError: Missing labels, a wrong number of counts, keys of the wrong width, or no shots.
        DistributionTooLargeError: Past the limits of
            :func:`~network.cutting.decomposition.check_support`; the message gives the numbers.
    """
    coeffs = np.array([c for c, _ in problem.coefficients], dtype=float)
    factors: dict[Hashable, np.ndarray] = {}
    spreads: dict[Hashable, np.ndarray] = {}
    for label, circs in problem.subexperiments.items():
        got = counts.get(label)
        if got is None or len(got) != len(circs):
            raise ValueError(
                f"Label {label!r} needs counts for {len(circs)} subexperiments, got {0 if got is None else len(got)}."
            )
        if any(sum(c.values()) <= 0 for c in got):
            raise ValueError(f"A subexperiment of label {label!r} has no shots.")
        rows = [_signed_outcomes(c, b) for c, b in zip(got, problem.bits[label], strict=True)]
        support = np.unique(np.concatenate([x for x, _ in rows]))
        factor = np.zeros((len(rows), support.size))
        for t, (x, w) in enumerate(rows):
            np.add.at(factor[t], np.searchsorted(support, x), w)
        factors[label] = factor
        # each local outcome's bits moved to the original qubits it measures
        qubits = problem.label_qubits[label]
        spread = np.zeros(support.size, dtype=np.uint64)
        for b, q in enumerate(qubits):
            spread |= ((support >> b) & 1).astype(np.uint64) << np.uint64(q)
        spreads[label] = spread
    order = sorted(factors, key=lambda label: factors[label].shape[1])  # the largest support last
    check_support(problem.num_qubits, [factors[label].shape[1] for label in order], len(coeffs))
    values = _contract(coeffs, [factors[label] for label in order])
    keys = np.zeros(1, dtype=np.uint64)
    for label in order:  # the first label varies slowest, as in the contraction
        keys = (keys[:, None] | spreads[label][None, :]).reshape(-1)
    nonzero = values != 0
    return SparseQuasi(keys[nonzero], values[nonzero], problem.num_qubits)


def reconstruct_distribution(
    problem: DistributionProblem, counts: Mapping[Hashable, Sequence[Mapping[str, float]]]
) -> np.ndarray:
    """:func:`reconstruct_sparse` as a dense array of ``2^n`` float64, index ``i`` having original
    qubit ``k`` at bit ``k`` (up to :data:`MAX_DENSE_QUBITS` qubits).

    Raises:
        ValueError: As :func:`reconstruct_sparse`.
        DistributionTooLargeError: Past the limits of :func:`reconstruct_sparse`, or ``n`` above
            :data:`MAX_DENSE_QUBITS`.
    """
    return reconstruct_sparse(problem, counts).dense()


def _contract(coeffs: np.ndarray, factors: Sequence[np.ndarray]) -> np.ndarray:
    """``sum_t coeffs[t] * kron_l factors[l][t]``, the last factor's index varying fastest.

    Terms go in chunks of ``width(last)`` so that the left operand never outgrows the result.
    """
    if not factors:
        return np.array([coeffs.sum()])
    *head, last = factors
    rows = math.prod(f.shape[1] for f in head)
    out = np.zeros((rows, last.shape[1]))
    step = max(last.shape[1], 1)
    for start in range(0, len(coeffs), step):
        chunk = slice(start, start + step)
        left = coeffs[chunk, None]
        for f in head:
            left = (left[:, :, None] * f[chunk, None, :]).reshape(left.shape[0], -1)
        out += left.T @ last[chunk]
    return out.reshape(-1)


def nearest_probability_distribution(quasi: np.ndarray) -> np.ndarray:
    """The probability vector nearest to ``quasi`` in L2 (Euclidean projection onto the simplex).

    For input summing to 1 this is the Smolin-Gambetta-Smith result (what Qiskit's
    ``QuasiDistribution.nearest_probability_distribution`` computes); other input is also
    renormalized to sum 1. Sort and threshold: O(N log N).
    """
    v = np.asarray(quasi, dtype=float)
    desc = np.sort(v)[::-1]
    excess = (np.cumsum(desc) - 1.0) / np.arange(1, v.size + 1)
    rho = int(np.flatnonzero(desc > excess)[-1])
    return np.maximum(v - excess[rho], 0.0)


def sample_counts(probabilities: np.ndarray, shots: int, seed: int) -> dict[str, int]:
    """Multinomial counts of ``shots`` from a distribution over ``n`` qubits (length ``2^n``).

    Returns:
        Nonzero counts keyed by ``n``-bit strings, qubit 0 rightmost.

    Raises:
        ValueError: Negative entries, a length that is not a power of two, or negative shots.
    """
    p = np.asarray(probabilities, dtype=float)
    n = p.size.bit_length() - 1
    if p.size != 1 << n or np.any(p < 0) or shots < 0:
        raise ValueError("probabilities must be non-negative with 2^n entries, and shots non-negative.")
    tally = np.random.default_rng(seed).multinomial(shots, p / p.sum())
    return {format(int(i), f"0{n}b"): int(tally[i]) for i in np.flatnonzero(tally)}


def to_quasi_dict(quasi: np.ndarray, *, threshold: float = 1e-9) -> dict[str, float]:
    """Sparse view: entries with ``|value| > threshold``, keyed by ``n``-bit strings (qubit 0 rightmost)."""
    n = quasi.size.bit_length() - 1
    return {format(int(i), f"0{n}b"): float(quasi[i]) for i in np.flatnonzero(np.abs(quasi) > threshold)}


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance ``0.5 * sum |p - q|``."""
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def estimate_distribution(
    problem: DistributionProblem,
    counts: Mapping[Hashable, Sequence[Mapping[str, float]]],
    *,
    shots: int = 0,
    seed: int = 0,
) -> DistributionEstimate:
    """Reconstruct the quasi-distribution, its nearest probability distribution and ``shots`` sampled counts."""
    quasi = reconstruct_distribution(problem, counts)
    probabilities = nearest_probability_distribution(quasi)
    sampled = sample_counts(probabilities, shots, seed) if shots else {}
    return DistributionEstimate(quasi, probabilities, sampled)


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
    labels = all_paulis(observables).to_labels()
    column = {label: j for j, label in enumerate(labels)}
    mix = np.zeros((len(observables), len(labels)))
    for row, op in enumerate(observables):
        for label, coeff in zip(op.paulis.to_labels(), op.coeffs, strict=True):
            mix[row, column[label]] += float(np.real(coeff))
    return mix


@dataclass
class Expectations:
    """Expectation values of a block's observables, with bootstrap standard errors (NaN when a
    circuit had fewer than ``MIN_CIRCUIT_SHOTS`` shots)."""

    values: list[float]
    standard_errors: list[float]


def estimate_expectations(problem: BlockProblem, raw: Sequence[Mapping[str, int]], *, seed: int) -> Expectations:
    """The observables' values from the counts of every distinct subexperiment (``raw[i]`` for
    circuit ``i`` of ``problem.split``).

    The library reconstructs the estimate from each circuit's counts (as quasi-distributions,
    one term per distinct outcome rather than one per shot). The standard errors are bootstrap
    errors: every circuit's counts are resampled :data:`BOOTSTRAP` times from its observed
    frequencies (seeded), and the library's formula is applied to each replicate with numpy, in one
    pass that also recomputes the full estimate: it must match the library's. The bootstrap
    captures the nonlinear (product) part of the estimator's variance, and deterministic
    subexperiments (a stabilizer of the state) give zero spread; the error is never reported
    below the floating-point error bound of the QPD sum.

    Raises:
        ExecutionError: The numpy reconstruction disagrees with the library's on the full sample.
    """
    from qiskit.primitives import SamplerResult
    from qiskit.result import QuasiDistribution
    from qiskit_addon_cutting import reconstruct_expectation_values

    assert problem.subobservables is not None
    split = problem.split
    circuits, index_of, shots = split.circuits, split.index, split.shots
    # per distinct circuit: its outcomes (sorted bitstrings) and their counts, observed then each replicate
    outcomes = [sorted(flat) for flat in raw]
    tallies = [
        _bootstrap_tallies(
            np.array([flat[k] for k in keys], dtype=np.int64), np.random.default_rng(derive_seed(seed, "bootstrap", i))
        )
        for i, (flat, keys) in enumerate(zip(raw, outcomes, strict=True))
    ]
    packed = [_packed_outcomes(circ, keys) for circ, keys in zip(circuits, outcomes, strict=True)]
    dists = []
    for ints, tally in zip(packed, tallies, strict=True):
        n = int(tally[0].sum())
        quasi: dict[int, float] = {}
        for value, count in zip(ints, tally[0].tolist(), strict=True):
            quasi[value] = quasi.get(value, 0.0) + count / n
        dists.append(QuasiDistribution(quasi, shots=n))
    results = {}
    for label, circs in problem.subexperiments.items():
        label_dists = [dists[index_of[(label, i)]] for i in range(len(circs))]
        results[label] = SamplerResult(label_dists, [{"shots": d.shots} for d in label_dists])
    coefficients = problem.coefficients
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
    c = np.abs([float(coefficient) for coefficient, _ in coefficients])
    return _expectations(problem.source.observables, terms, estimates[1:], len(c) * c.sum())


def _expectations(
    observables: Sequence[SparsePauliOp], paulis: np.ndarray, replicates: np.ndarray, qpd_terms: float
) -> Expectations:
    """The observables' values from their Paulis' (``paulis``), and bootstrap standard errors from the
    replicates' (rows of ``replicates``; NaN with fewer than two).

    Deterministic subexperiments (a stabilizer of the state) have no spread at all, but the QPD sum
    still rounds: an error is never reported below its floating-point bound, ``qpd_terms`` (terms
    x sum |c|) x eps x sum |observable coefficient|.
    """
    mix = _observable_matrix(observables)
    values = [float(v) for v in mix @ paulis]
    if len(replicates) < 2:
        return Expectations(values, [float("nan")] * len(observables))
    spread = np.std(replicates @ mix.T, axis=0, ddof=1)
    rounding = qpd_terms * np.finfo(float).eps * np.abs(mix).sum(axis=1)
    return Expectations(values, [float(e) for e in np.maximum(spread, rounding)])


@dataclass
class BlockEstimate:
    """What one block's subexperiments gave (:func:`reconstruct_block`).

    Attributes:
        block: The block.
        counts: Distribution blocks: ``shots`` samples of the reconstructed distribution, flat keys
            over the block's classical bits (bit 0 rightmost).
        quasi: Distribution blocks: the unbiased quasi-probability estimate over the block's
            unitary qubits (keys have qubit ``k`` at bit ``k``), sparse.
        negative_mass: Distribution blocks: the quasi-distribution's total negative mass.
        expectations: Expectation blocks: values and standard errors.
        executed_circuits: Distinct circuits run.
    """

    block: CutBlock
    counts: dict[str, int] = field(default_factory=dict)
    quasi: SparseQuasi | None = None
    negative_mass: float = 0.0
    expectations: Expectations | None = None
    executed_circuits: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The block as run, for ``QVMResult.cut``."""
        out = {**self.block.to_dict(), "executed_circuits": self.executed_circuits}
        if self.block.kind is BlockKind.DISTRIBUTION:
            out["negative_mass"] = self.negative_mass
        return out


def reconstruct_block(
    problem: BlockProblem, block: CutBlock, raw: Sequence[Mapping[str, int]], *, shots: int, seed: int
) -> BlockEstimate:
    """Rebuild a block from the counts of its distinct subexperiments (``raw[i]``: circuit ``i``,
    flat keys over its classical bits).

    A distribution block's quasi-distribution is projected onto the nearest probability distribution
    and sampled ``shots`` times (seeded), laid out over the block's classical bits.

    Raises:
        ExecutionError: Counts missing for a circuit, or a reconstruction that disagrees with the library.
    """
    if len(raw) != len(problem.circuits):
        raise ExecutionError(
            f"Block {block.block_id} needs counts of {len(problem.circuits)} subexperiments, got {len(raw)}."
        )
    if problem.joint is not None:
        return _reconstruct_joint(problem, block, raw, shots=shots, seed=seed)
    if block.kind is BlockKind.EXPECTATION:
        expectations = estimate_expectations(problem, raw, seed=derive_seed(seed, "block", block.block_id))
        return BlockEstimate(block, expectations=expectations, executed_circuits=len(raw))
    dist = problem.distribution
    assert dist is not None
    index = problem.split.index
    counts = {
        label: [raw[index[(label, i)]] for i in range(len(circs))] for label, circs in dist.subexperiments.items()
    }
    return _sampled(problem, block, reconstruct_sparse(dist, counts), shots=shots, seed=seed)


def _reconstruct_joint(
    problem: BlockProblem, block: CutBlock, raw: Sequence[Mapping[str, int]], *, shots: int, seed: int
) -> BlockEstimate:
    """:func:`reconstruct_block` for cuts decomposed jointly (:mod:`network.cutting.joint`)."""
    joint = problem.joint
    assert joint is not None
    if block.kind is BlockKind.EXPECTATION:
        bootstrap = BOOTSTRAP if min(problem.split.shots) >= MIN_CIRCUIT_SHOTS else 0
        estimates = estimate_joint_expectations(
            joint, raw, seed=derive_seed(seed, "block", block.block_id), bootstrap=bootstrap
        )
        expectations = _expectations(
            problem.source.observables, estimates[0], estimates[1:], len(joint.weights) * joint.gamma
        )
        return BlockEstimate(block, expectations=expectations, executed_circuits=len(raw))
    keys, quasi = reconstruct_joint_sparse(joint, raw)
    return _sampled(problem, block, SparseQuasi(keys, quasi, joint.num_qubits), shots=shots, seed=seed)


def _sampled(problem: BlockProblem, block: CutBlock, quasi: SparseQuasi, *, shots: int, seed: int) -> BlockEstimate:
    """The quasi-distribution projected onto the nearest probability distribution and sampled
    ``shots`` times (seeded), laid out over the block's classical bits."""
    probabilities = nearest_probability_distribution(quasi.values)
    tally = np.random.default_rng(derive_seed(seed, "cut-distribution", block.block_id)).multinomial(
        shots, probabilities / probabilities.sum()
    )
    sampled = {quasi.bitstring(int(i)): int(tally[i]) for i in np.flatnonzero(tally)}
    return BlockEstimate(
        block,
        counts=over_clbits(sampled, problem.source.clbit_sources),
        quasi=quasi,
        negative_mass=quasi.negative_mass,
        executed_circuits=len(problem.circuits),
    )


def over_clbits(counts: Mapping[str, int], sources: Sequence[int | None]) -> dict[str, int]:
    """Counts keyed over qubits (qubit 0 rightmost) re-keyed over classical bits: bit ``j`` is the
    value of qubit ``sources[j]`` (0 for a bit never written); flat keys, bit 0 rightmost."""
    width = len(sources)
    out: dict[str, int] = {}
    for key, value in counts.items():
        n = len(key)
        flat = "".join(key[n - 1 - q] if q is not None else "0" for q in (sources[j] for j in reversed(range(width))))
        out[flat] = out.get(flat, 0) + value
    return out
