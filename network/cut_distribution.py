"""Full output distributions of circuits too wide for any node, reconstructed from cut subexperiments.

qiskit-addon-cutting reconstructs expectation values only. This module reuses its decomposition
(``find_cuts``, ``cut_wires``, ``partition_problem``, its subexperiments with every QPD
term enumerated) and reconstructs the probability of every n-bit outcome instead.

Estimator: every original qubit is measured in Z at the end of the subcircuit that holds its final
state. QPD term ``t`` has coefficient ``c_t`` and, for every subcircuit label ``l``, one subexperiment
whose shots give ``x_l`` (the bits of the original qubits finishing in ``l``) and ``m`` (the QPD
measurement bits). With ``q_tl(x_l)`` the mean over shots of ``1{bits == x_l} * (-1)^parity(m)``,

    p(x) = sum_t c_t * prod_l q_tl(x_l)

is an unbiased estimate of the exact distribution, because the labels' subexperiments are sampled
independently. It is a quasi-probability (entries may be negative and the sum is 1 only on
average); :func:`nearest_probability_distribution` maps it to the nearest probability vector.

Wire cuts: ``cut_wires`` moves a cut qubit's state onto a new qubit through a ``Move``; the original
``Qubit`` object ends up holding the final state (what ``expand_observables`` maps the qubit to), so
that is the qubit measured for it. Qubits idle in the whole circuit belong to no subcircuit and
always read 0.

Limits: the result is a dense float64 array of 2^n entries, so n is capped at
:data:`MAX_DISTRIBUTION_QUBITS` (24 qubits: 128 MiB per array, a few such arrays at the peak of a
reconstruction). The contraction costs about ``terms * 2^n`` multiply-adds (terms: the product of the
cuts' QPD basis sizes, 6 per CX gate cut, 8 per wire cut), capped at :data:`MAX_RECONSTRUCTION_WORK`
(2^33: a few seconds, up to about 15 s, on one core). The statistical error grows with the sampling
overhead (9 per CX cut, 16 per wire cut) as for expectation values, and spreads over 2^n outcomes.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import PauliList

from network.errors import PlanningError

__all__ = [
    "MAX_DISTRIBUTION_QUBITS",
    "MAX_RECONSTRUCTION_WORK",
    "DistributionTooLargeError",
    "SubexperimentBits",
    "DistributionProblem",
    "DistributionEstimate",
    "build_distribution_problem",
    "check_distribution_size",
    "find_distribution_problem",
    "reconstruct_distribution",
    "estimate_distribution",
    "nearest_probability_distribution",
    "sample_counts",
    "to_quasi_dict",
    "total_variation",
]

#: Widest circuit whose full distribution is reconstructed (2^24 float64 = 128 MiB per array).
MAX_DISTRIBUTION_QUBITS = 24

#: Most ``terms * 2^n`` multiply-adds one reconstruction may cost.
MAX_RECONSTRUCTION_WORK = 2**33


class DistributionTooLargeError(PlanningError):
    """The full distribution would take too much memory or time to reconstruct."""


@dataclass(frozen=True)
class SubexperimentBits:
    """Where one subexperiment's outcome bits are, as clbit indices (bit ``j`` is key character ``-1 - j``).

    Attributes:
        outcome_clbits: Clbit holding bit ``b`` of ``x_l``, i.e. of original qubit ``label_qubits[l][b]``.
        qpd_clbits: Clbits of the ``qpd_measurements`` register (their parity signs the shot).
        num_clbits: Width of the subexperiment's outcome keys.
    """

    outcome_clbits: tuple[int, ...]
    qpd_clbits: tuple[int, ...]
    num_clbits: int


@dataclass
class DistributionProblem:
    """A cut circuit's subexperiments and what is needed to rebuild its output distribution.

    Attributes:
        partitioned: The library's ``PartitionedCuttingProblem``.
        subexperiments: Subexperiments per subcircuit label; entry ``t`` belongs to QPD term ``t``.
        coefficients: The library's ``(coefficient, weight type)`` per QPD term.
        num_qubits: Qubits of the original circuit.
        label_qubits: Original qubits measured by each label; bit ``b`` of ``x_l`` is ``label_qubits[l][b]``.
        bits: Bit map of every subexperiment, in the order of ``subexperiments``.
        sampling_overhead: Product of the cuts' sampling overheads (1 with no cut).
        cuts: ``(kind, instruction index in the cut circuit)``, kind ``"Gate Cut"`` or ``"Wire Cut"``.
    """

    partitioned: Any
    subexperiments: dict[Hashable, list[QuantumCircuit]]
    coefficients: list[tuple[float, Any]]
    num_qubits: int
    label_qubits: dict[Hashable, tuple[int, ...]]
    bits: dict[Hashable, list[SubexperimentBits]]
    sampling_overhead: float
    cuts: tuple[tuple[str, int], ...]

    @property
    def num_terms(self) -> int:
        """Number of QPD terms (subexperiments per label)."""
        return len(self.coefficients)


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


def check_distribution_size(num_qubits: int, terms: int = 1) -> None:
    """Refuse a reconstruction past the memory or time limit.

    Raises:
        DistributionTooLargeError: The message gives the qubits (or terms), the need and the limit.
    """
    if num_qubits > MAX_DISTRIBUTION_QUBITS:
        need = 8 * 2**num_qubits
        limit = 8 * 2**MAX_DISTRIBUTION_QUBITS
        raise DistributionTooLargeError(
            f"The full output distribution of a {num_qubits}-qubit circuit needs {need:,} bytes per array "
            f"(2^{num_qubits} float64 entries), above the limit of {limit:,} bytes "
            f"({MAX_DISTRIBUTION_QUBITS} qubits). Ask for expectation values (observables) instead, add an "
            "approximate MPS node that holds the circuit, or nodes wide enough to need no cut."
        )
    work = terms * 2**num_qubits
    if work > MAX_RECONSTRUCTION_WORK:
        raise DistributionTooLargeError(
            f"Reconstructing the {num_qubits}-qubit distribution from {terms} QPD terms costs "
            f"{terms} x 2^{num_qubits} = {work:.3g} multiply-adds, above the limit of "
            f"{MAX_RECONSTRUCTION_WORK:.3g}. Use fewer cuts (wider nodes) or ask for expectation values."
        )


def find_distribution_problem(
    circuit: QuantumCircuit, qubits_per_subcircuit: int, *, seed: int = 0
) -> tuple[DistributionProblem, dict[str, Any]]:
    """Find cuts for subcircuits of at most ``qubits_per_subcircuit`` qubits, then build the problem.

    Returns:
        The problem and ``find_cuts``' metadata (``cuts``, ``sampling_overhead``, ``minimum_reached``).

    Raises:
        DistributionTooLargeError: The circuit is wider than :data:`MAX_DISTRIBUTION_QUBITS` (checked
            before the cut search) or its reconstruction would cost too much.
    """
    from qiskit_addon_cutting import DeviceConstraints, OptimizationParameters, find_cuts

    check_distribution_size(circuit.num_qubits)
    cut_circuit, meta = find_cuts(
        circuit, OptimizationParameters(seed=seed), DeviceConstraints(qubits_per_subcircuit=qubits_per_subcircuit)
    )
    return build_distribution_problem(circuit, cut_circuit), meta


def build_distribution_problem(
    circuit: QuantumCircuit,
    cut_circuit: QuantumCircuit | None = None,
    *,
    partition_labels: Sequence[Hashable] | None = None,
) -> DistributionProblem:
    """Decompose a circuit into subexperiments whose outcomes rebuild its full output distribution.

    Args:
        circuit: The original circuit, without classical bits.
        cut_circuit: ``circuit`` with cut instructions (``TwoQubitQPDGate``, ``CutWire``), as
            ``find_cuts`` returns it; subcircuits are its connected components once cut.
        partition_labels: Instead of ``cut_circuit``, a label per qubit; gates across labels are cut.
            With neither, ``circuit`` is split only where it is already disconnected.

    Raises:
        DistributionTooLargeError: Too many qubits (checked first) or QPD terms for the reconstruction.
        ValueError: Both ``cut_circuit`` and ``partition_labels``, classical bits, or a width mismatch.
    """
    from qiskit_addon_cutting import cut_wires, expand_observables, partition_problem
    from qiskit_addon_cutting.qpd import TwoQubitQPDGate

    from network.cut_experiments import generate_experiments

    n = circuit.num_qubits
    check_distribution_size(n)
    if cut_circuit is not None and partition_labels is not None:
        raise ValueError("Pass either cut_circuit or partition_labels, not both.")
    if circuit.num_clbits:
        raise ValueError(f"The circuit has {circuit.num_clbits} classical bits; remove its measurements first.")
    source = circuit if cut_circuit is None else cut_circuit
    if source.num_qubits != n:
        raise ValueError(f"The cut circuit has {source.num_qubits} qubits; the circuit has {n}.")
    cuts = tuple(
        ("Wire Cut" if inst.operation.name == "cut_wire" else "Gate Cut", i)
        for i, inst in enumerate(source.data)
        if inst.operation.name == "cut_wire"
        or isinstance(inst.operation, TwoQubitQPDGate)
        or (partition_labels is not None and len({partition_labels[source.find_bit(q).index] for q in inst.qubits}) > 1)
    )
    expanded = source if partition_labels is not None else cut_wires(source)
    partitioned = partition_problem(expanded, partition_labels)
    terms = math.prod(len(basis.maps) for basis in partitioned.bases)
    check_distribution_size(n, terms)

    # where each original qubit's final state sits in the expanded circuit (after any Move)
    singles = PauliList(["I" * (n - 1 - i) + "Z" + "I" * i for i in range(n)])
    final = {int(np.flatnonzero(row.z)[0]): i for i, row in enumerate(expand_observables(singles, circuit, expanded))}
    owners: dict[Hashable, list[int | None]] = {}  # original qubit of each subcircuit qubit, if measured there
    observables: dict[Hashable, PauliList] = {}
    for label, sub in partitioned.subcircuits.items():
        owners[label] = [final.get(expanded.find_bit(q).index) for q in sub.qubits]
        observables[label] = PauliList(["".join("I" if o is None else "Z" for o in reversed(owners[label]))])
    subexperiments, coefficients = generate_experiments(partitioned.subcircuits, observables)

    label_qubits = {label: tuple(sorted(o for o in own if o is not None)) for label, own in owners.items()}
    read: dict[int, SubexperimentBits] = {}  # identical subexperiments are one object: read each once

    def bits_of(circ: QuantumCircuit, label: Hashable) -> SubexperimentBits:
        if id(circ) not in read:
            read[id(circ)] = _subexperiment_bits(circ, owners[label], label_qubits[label])
        return read[id(circ)]

    bits = {label: [bits_of(circ, label) for circ in circs] for label, circs in subexperiments.items()}
    overhead = math.prod(float(basis.overhead) for basis in partitioned.bases)
    return DistributionProblem(
        partitioned, dict(subexperiments), list(coefficients), n, label_qubits, bits, overhead, cuts
    )


def _subexperiment_bits(
    circ: QuantumCircuit, owners: Sequence[int | None], qubits: tuple[int, ...]
) -> SubexperimentBits:
    """Read which clbit measures which original qubit, and the QPD clbits, off the circuit itself."""
    position = {q: b for b, q in enumerate(qubits)}
    outcome: dict[int, int] = {}
    qpd: list[int] = []
    for inst in circ.data:
        if inst.operation.name != "measure":
            continue
        clbit = circ.find_bit(inst.clbits[0])
        register = clbit.registers[0][0].name
        owner = owners[circ.find_bit(inst.qubits[0]).index]
        if register == "observable_measurements" and owner is not None:
            outcome[position[owner]] = clbit.index
        elif register == "qpd_measurements":
            qpd.append(clbit.index)
    if sorted(outcome) != list(range(len(qubits))):
        raise RuntimeError(f"Subexperiment {circ.name!r} does not measure every qubit of its subcircuit once.")
    return SubexperimentBits(tuple(outcome[b] for b in range(len(qubits))), tuple(sorted(set(qpd))), circ.num_clbits)


def _key_bits(keys: Sequence[str], width: int) -> np.ndarray:
    """Outcome keys as a (keys, width) 0/1 matrix whose column ``j`` is clbit ``j``."""
    flat = [format(int(k, 16), f"0{width}b") if k.startswith("0x") else k.replace(" ", "") for k in keys]
    bad = next((k for k, f in zip(keys, flat, strict=True) if len(f) != width), None)
    if bad is not None:
        raise ValueError(f"Outcome key {bad!r} does not have the subexperiment's {width} classical bits.")
    chars = np.frombuffer("".join(flat).encode("ascii"), dtype=np.uint8).reshape(len(flat), width)
    return (chars[:, ::-1] == ord("1")).astype(np.int64)


def _signed_marginal(counts: Mapping[str, float], bits: SubexperimentBits) -> np.ndarray:
    """``q(x)``: mean over shots of ``1{outcome == x} * (-1)^parity(qpd bits)``."""
    weights = np.array(list(counts.values()), dtype=float)
    matrix = _key_bits(list(counts), bits.num_clbits)
    x = matrix[:, list(bits.outcome_clbits)] @ (1 << np.arange(len(bits.outcome_clbits), dtype=np.int64))
    sign = 1.0 - 2.0 * (matrix[:, list(bits.qpd_clbits)].sum(axis=1) % 2)
    return np.bincount(x, weights=weights * sign, minlength=2 ** len(bits.outcome_clbits)) / weights.sum()


def reconstruct_distribution(
    problem: DistributionProblem, counts: Mapping[Hashable, Sequence[Mapping[str, float]]]
) -> np.ndarray:
    """The unbiased quasi-probability estimate of the original circuit's output distribution.

    Args:
        problem: From :func:`build_distribution_problem`.
        counts: Per label, one counts mapping per subexperiment in the order of
            ``problem.subexperiments[label]``. Keys are Qiskit-style bitstrings over all classical
            registers (spaces between registers allowed) or hex (``"0x3"``); values may be counts or
            probabilities. Each subexperiment is normalized by its own total.

    Returns:
        float64 array of length ``2^n``; index ``i`` has original qubit ``k`` at bit ``k``.

    Raises:
        ValueError: Missing labels, a wrong number of counts, keys of the wrong width, or no shots.
    """
    coeffs = np.array([c for c, _ in problem.coefficients], dtype=float)
    factors: dict[Hashable, np.ndarray] = {}
    for label, circs in problem.subexperiments.items():
        got = counts.get(label)
        if got is None or len(got) != len(circs):
            raise ValueError(
                f"Label {label!r} needs counts for {len(circs)} subexperiments, got {0 if got is None else len(got)}."
            )
        if any(sum(c.values()) <= 0 for c in got):
            raise ValueError(f"A subexperiment of label {label!r} has no shots.")
        factors[label] = np.stack([_signed_marginal(c, b) for c, b in zip(got, problem.bits[label], strict=True)])
    order = sorted(factors, key=lambda label: len(problem.label_qubits[label]))  # widest last: the matrix product
    flat = _contract(coeffs, [factors[label] for label in order])
    # index bit b of ``flat`` counts from the last label's first qubit up
    lsb_first = [q for label in reversed(order) for q in problem.label_qubits[label]]
    return _to_qubit_order(flat, lsb_first, problem.num_qubits)


def _contract(coeffs: np.ndarray, factors: Sequence[np.ndarray]) -> np.ndarray:
    """``sum_t coeffs[t] * kron_l factors[l][t]``, the last factor's index varying fastest.

    Terms go in chunks of ``2^k_last`` so that the left operand never outgrows the result.
    """
    if not factors:
        return np.array([coeffs.sum()])
    *head, last = factors
    rows = math.prod(f.shape[1] for f in head)
    out = np.zeros((rows, last.shape[1]))
    step = last.shape[1]
    for start in range(0, len(coeffs), step):
        chunk = slice(start, start + step)
        left = coeffs[chunk, None]
        for f in head:
            left = (left[:, :, None] * f[chunk, None, :]).reshape(left.shape[0], -1)
        out += left.T @ last[chunk]
    return out.reshape(-1)


def _to_qubit_order(flat: np.ndarray, lsb_first: Sequence[int], num_qubits: int) -> np.ndarray:
    """Permute bits so that qubit ``k`` is bit ``k``; qubits outside ``lsb_first`` read 0."""
    m = len(lsb_first)
    axis_of = {q: m - 1 - b for b, q in enumerate(lsb_first)}  # C order: axis 0 is the top bit
    tensor = flat.reshape((2,) * m).transpose([axis_of[q] for q in sorted(axis_of, reverse=True)])
    if m == num_qubits:
        return np.ascontiguousarray(tensor).reshape(-1)
    out = np.zeros((2,) * num_qubits)
    out[tuple(slice(None) if q in axis_of else 0 for q in reversed(range(num_qubits)))] = tensor
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
