"""Cut decomposition, the second stage of cutting: a chosen cut becomes a typed, serializable
:class:`CutBlock` and the subexperiments that sample it.

A block is one connected part of a circuit that no exact node holds (its measured distribution is
rebuilt), or the whole circuit when expectation values are asked for. Its cuts are stored as
positions (:class:`CutLocation`), so any process can rebuild the very same subexperiments from the
circuit and the block alone (:func:`block_problem`): the planner lists them as shards, executors in
other processes (Prefect tasks, work pools) regenerate the circuit each shard runs, and the
reconstruction reads their counts back in the same order. Problems are cached per process, so the
in-process driver builds them once.

The decomposition itself is qiskit-addon-cutting's (``cut_wires``, ``partition_problem``, its QPD
bases); :mod:`network.cutting.experiments` generates each distinct subexperiment once.

Distributions (the library reconstructs expectation values only): every original qubit is measured
in Z at the end of the subcircuit that holds its final state, and :mod:`network.cutting.reconstruction`
rebuilds the probability of every outcome it can have. Limits: the estimate is sparse, over the
product of the outcomes each piece's subexperiments gave, at most :data:`MAX_SUPPORT` entries (2^24),
on :data:`MAX_DISTRIBUTION_QUBITS` qubits (63: outcomes are 64-bit keys), and the contraction's
``terms * entries`` multiply-adds are capped at :data:`MAX_RECONSTRUCTION_WORK` (2^33). A circuit of
independent blocks is cut block by block, so the limits apply to each block, not to the circuit.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import PauliList, SparsePauliOp

from network.circuits import split_circuit
from network.compilation import lower_circuit, unitary_form
from network.costs import CostModel
from network.cutting.experiments import ShotAllocation, SubexperimentShots, generate_experiments, share_shots
from network.cutting.joint import JointProblem, build_joint_problem, joint_layout
from network.cutting.search import (
    DEFAULT_MAX_SUBEXPERIMENTS,
    DEFAULT_TIME_BUDGET,
    CutCandidate,
    choose_cut,
    strip_barriers,
    whole_on,
)
from network.errors import PlanningError, SpecError, library_errors
from network.node_providers import QPUNodeSpec

__all__ = [
    "MAX_DENSE_QUBITS",
    "MAX_DISTRIBUTION_QUBITS",
    "MAX_RECONSTRUCTION_WORK",
    "MAX_SUPPORT",
    "BlockChoice",
    "BlockKind",
    "BlockProblem",
    "BlockSource",
    "CutBlock",
    "CutLocation",
    "DistributionProblem",
    "DistributionTooLargeError",
    "SubexperimentBits",
    "all_paulis",
    "apply_cuts",
    "block_problem",
    "block_source",
    "build_distribution_problem",
    "check_distribution_size",
    "check_support",
    "cut_locations",
    "drop_idle_qubits",
    "find_distribution_problem",
    "parse_observables",
    "plan_block",
    "with_ancillas",
]

#: Widest block whose distribution is reconstructed: outcomes are 64-bit integer keys.
MAX_DISTRIBUTION_QUBITS = 63

#: Widest distribution returned as a dense array of 2^n float64 (128 MiB) by
#: :func:`~network.cutting.reconstruction.reconstruct_distribution`.
MAX_DENSE_QUBITS = 24

#: Most entries one reconstruction holds: the product over pieces of the outcomes each piece's
#: subexperiments were seen to give (2^24: 128 MiB of float64 values, as many 64-bit keys).
MAX_SUPPORT = 2**24

#: Most ``terms * entries`` multiply-adds one reconstruction may cost.
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


def check_distribution_size(num_qubits: int, terms: int = 1) -> None:
    """Refuse a reconstruction past the key width or the time limit, before anything runs.

    The memory a reconstruction needs is known only from the outcomes (:data:`MAX_SUPPORT`,
    checked by :func:`~network.cutting.reconstruction.reconstruct_sparse`); here the work is bounded
    with the most entries it may hold, ``min(2^n, MAX_SUPPORT)``.

    Raises:
        DistributionTooLargeError: The message gives the qubits (or terms), the need and the limit.
    """
    if num_qubits > MAX_DISTRIBUTION_QUBITS:
        raise DistributionTooLargeError(
            f"The output distribution of a {num_qubits}-qubit circuit cannot be reconstructed: its outcomes "
            f"are 64-bit keys, at most {MAX_DISTRIBUTION_QUBITS} qubits. Ask for expectation values "
            "(observables) instead, add an approximate MPS node that holds the circuit, or nodes wide enough "
            "to need no cut."
        )
    entries = min(2**num_qubits, MAX_SUPPORT)
    work = terms * entries
    if work > MAX_RECONSTRUCTION_WORK:
        raise DistributionTooLargeError(
            f"Reconstructing the {num_qubits}-qubit distribution from {terms} QPD terms costs up to "
            f"{terms} x {entries:,} = {work:.3g} multiply-adds, above the limit of "
            f"{MAX_RECONSTRUCTION_WORK:.3g}. Use fewer cuts (wider nodes) or ask for expectation values."
        )


def check_support(num_qubits: int, sizes: Sequence[int], terms: int, what: str = "QPD terms") -> None:
    """Refuse a reconstruction whose pieces gave too many outcomes, before it is contracted.

    Args:
        num_qubits: Width of the distribution.
        sizes: Distinct outcomes of each piece; the estimate holds their product.
        terms: Terms of the contraction, each costing one multiply-add per entry.
        what: What the terms are, for the message.

    Raises:
        DistributionTooLargeError: More than :data:`MAX_SUPPORT` entries or more than
            :data:`MAX_RECONSTRUCTION_WORK` multiply-adds; the message gives the numbers.
    """
    entries = math.prod(sizes)
    if entries > MAX_SUPPORT or entries * terms > MAX_RECONSTRUCTION_WORK:
        shown = " x ".join(str(size) for size in sizes) or "1"
        raise DistributionTooLargeError(
            f"The {num_qubits}-qubit distribution's pieces gave {shown} distinct outcomes: {entries:,} "
            f"combinations x {terms} {what}, above the limits of {MAX_SUPPORT:,} entries and "
            f"{MAX_RECONSTRUCTION_WORK:.3g} multiply-adds. The output spreads over too many outcomes to rebuild "
            "it whole: ask for expectation values (observables), or use wider nodes (fewer, larger pieces)."
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
    if not reduced.data:  # no operation at all: one identity, so the cutter gives the qubit a piece
        reduced.id(0)
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


def all_paulis(observables: Sequence[SparsePauliOp]) -> PauliList:
    labels: list[str] = []
    for op in observables:
        for label in op.paulis.to_labels():
            if label not in labels:
                labels.append(label)
    return PauliList(labels)


def with_ancillas(op: SparsePauliOp, ancillas: int) -> SparsePauliOp:
    """``op`` acting as the identity on ``ancillas`` qubits appended after its own."""
    if not ancillas:
        return op
    return SparsePauliOp(["I" * ancillas + label for label in op.paulis.to_labels()], op.coeffs)


# -- where the cuts are ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CutLocation:
    """One cut, as a position in the cut circuit (what ``find_cuts`` reports).

    Attributes:
        kind: ``"Gate Cut"`` (the two-qubit gate at ``index`` is replaced by its QPD) or
            ``"Wire Cut"`` (a ``CutWire`` sits at ``index``, on ``qubit``).
        index: Position in the cut circuit: instruction ``index`` once every earlier wire cut is
            inserted.
        qubit: The cut qubit of a wire cut (a qubit index of the uncut circuit).
    """

    kind: str
    index: int
    qubit: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("Gate Cut", "Wire Cut") or (self.kind == "Wire Cut") != (self.qubit is not None):
            raise ValueError(f"Invalid cut location {self!r}.")

    def to_list(self) -> list[Any]:
        return [self.kind, self.index] if self.qubit is None else [self.kind, self.index, self.qubit]

    @classmethod
    def from_list(cls, data: Sequence[Any]) -> CutLocation:
        return cls(str(data[0]), int(data[1]), None if len(data) < 3 else int(data[2]))


def cut_locations(cut_circuit: QuantumCircuit) -> tuple[CutLocation, ...]:
    """The cuts of a circuit with cut instructions (``TwoQubitQPDGate``, ``CutWire``)."""
    from qiskit_addon_cutting.qpd import TwoQubitQPDGate

    out = []
    for i, inst in enumerate(cut_circuit.data):
        if inst.operation.name == "cut_wire":
            out.append(CutLocation("Wire Cut", i, cut_circuit.find_bit(inst.qubits[0]).index))
        elif isinstance(inst.operation, TwoQubitQPDGate):
            out.append(CutLocation("Gate Cut", i))
    return tuple(out)


def apply_cuts(circuit: QuantumCircuit, cuts: Sequence[CutLocation]) -> QuantumCircuit:
    """``circuit`` with its cut instructions: the inverse of :func:`cut_locations`, built the way
    ``find_cuts`` builds its output (``cut_gates``, then each ``CutWire`` inserted in order).

    Raises:
        PlanningError: A location does not fit the circuit (a plan made for another circuit).
    """
    from qiskit.circuit import CircuitInstruction
    from qiskit_addon_cutting import cut_gates
    from qiskit_addon_cutting.instructions import CutWire

    wires = sorted((c for c in cuts if c.kind == "Wire Cut"), key=lambda c: c.index)
    gate_ids = []
    for c in cuts:
        if c.kind == "Gate Cut":
            original = c.index - sum(1 for w in wires if w.index < c.index)
            if not 0 <= original < len(circuit.data) or len(circuit.data[original].qubits) != 2:
                raise PlanningError(f"Gate cut {c.to_list()} does not name a two-qubit gate of the circuit.")
            gate_ids.append(original)
    with library_errors(PlanningError, "Cutting the planned gates failed"):
        out = cut_gates(circuit, gate_ids)[0] if gate_ids else circuit.copy()
        for w in wires:
            assert w.qubit is not None
            if not 0 <= w.qubit < circuit.num_qubits or w.index > len(out.data):
                raise PlanningError(f"Wire cut {w.to_list()} does not fit the {circuit.num_qubits}-qubit circuit.")
            out.data.insert(w.index, CircuitInstruction(CutWire(), [out.qubits[w.qubit]], []))
    return out


# -- blocks -------------------------------------------------------------------------------------


class BlockKind(StrEnum):
    """What a block's subexperiments rebuild."""

    #: The joint distribution of the block's classical bits (counts of a component too wide to run).
    DISTRIBUTION = "distribution"
    #: Expectation values of the spec's observables (the whole circuit).
    EXPECTATION = "expectation"


@dataclass(frozen=True)
class CutBlock:
    """A cut part of a circuit, as the plan carries it: where the cuts are, what they cost, where
    its pieces run, and how many shots each distinct subexperiment takes.

    The shards of a block are its distinct subexperiments: shard ``k`` of the block runs circuit
    ``k`` of :func:`block_problem` with ``circuit_shots[k]`` shots.

    Attributes:
        block_id: Index among the plan's blocks (``Shard.block``).
        kind: Distribution (counts) or expectation values.
        qubits: Qubits of the original circuit the block covers, in its qubit order.
        clbits: Classical bits it writes, in its bit order (empty for expectation values).
        cuts: The cuts, as positions in the block's cut circuit.
        sampling_overhead: Product of the per-cut factors (9 per CX gate cut, 16 per wire cut).
        subcircuit_widths: Width of each piece, by label.
        subexperiments: Subexperiments of each piece (QPD terms times observable groups).
        nodes: Nodes that may run each piece, its chosen node first.
        shots: Shots per subexperiment: the budget is ``shots`` times the subexperiments
            (:attr:`total_shots`), shared among the distinct circuits.
        shot_allocation: How the budget is shared (see :func:`~network.cutting.share_shots`).
        circuit_shots: Shots of each distinct circuit, in shard order.
        source: The search that found the cut (``find_cuts(width=12)``, ``node-sized(12+4)``,
            ``whole``, or ``whole on NODE`` for an approximate node).
        approximate: True when the block runs whole on an approximate (MPS) node.
        estimated_seconds: Makespan estimate of its subexperiments.
        estimated_cost: Cost estimate of its subexperiments.
        observables: Expectation blocks: each observable as ``(Pauli label, coefficient)`` terms
            over the original circuit's qubits (qubit 0 rightmost).
        notes: What the planner weighed.
        joint: ``"gates"`` or ``"wires"`` when the cuts are decomposed jointly
            (:mod:`network.cutting.joint`), else empty.
    """

    block_id: int
    kind: BlockKind
    qubits: tuple[int, ...]
    clbits: tuple[int, ...]
    cuts: tuple[CutLocation, ...]
    sampling_overhead: float
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
    observables: tuple[tuple[tuple[str, float], ...], ...] = ()
    notes: tuple[str, ...] = ()
    joint: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", BlockKind(self.kind))
        # the value as text too ("uniform"); an unknown one raises ValueError here
        object.__setattr__(self, "shot_allocation", ShotAllocation(self.shot_allocation))

    @property
    def total_shots(self) -> int:
        """The shot budget: ``shots`` for each subexperiment."""
        return self.shots * sum(self.subexperiments.values())

    @property
    def qubits_per_subcircuit(self) -> int:
        return max(self.subcircuit_widths.values(), default=0)

    @property
    def problem_key(self) -> str:
        """Identity of the subexperiments (what :func:`block_problem` builds), nodes and estimates aside."""
        text = json.dumps(
            [self.kind.value, self.qubits, self.clbits, [c.to_list() for c in self.cuts], self.observables,
             self.shots, self.shot_allocation.value, sorted(self.subexperiments.items())]
            + ([self.joint] if self.joint else []),
        )  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def observable_ops(self) -> list[SparsePauliOp]:
        return [SparsePauliOp([label for label, _ in terms], [c for _, c in terms]) for terms in self.observables]

    def observable_labels(self) -> list[str]:
        """Each observable as text: its label alone, or ``c*LABEL + ...``."""
        out = []
        for terms in self.observables:
            if len(terms) == 1 and terms[0][1] == 1:
                out.append(terms[0][0])
            else:
                out.append(" + ".join(f"{c:g}*{label}" for label, c in terms))
        return out

    def summary(self) -> str:
        """One sentence for plan notes."""
        cuts = ", ".join(f"{c.kind} at gate {c.index}" for c in self.cuts[:8]) or "none"
        if len(self.cuts) > 8:
            cuts += f", and {len(self.cuts) - 8} more"
        pieces = "+".join(str(w) for w in sorted(self.subcircuit_widths.values(), reverse=True))
        spread = (
            f": {min(self.circuit_shots)} to {max(self.circuit_shots)} shots for each of "
            f"{len(self.circuit_shots)} distinct circuits"
            if self.circuit_shots
            else ""
        )
        what = "expectation values" if self.kind is BlockKind.EXPECTATION else f"the {len(self.qubits)}-qubit block"
        if self.kind is BlockKind.DISTRIBUTION and self.qubits:
            what += f" on qubits {_span(self.qubits)}"
        variant = "teleported gates, ancillas included" if self.joint == "gates" else "parallel wires"
        jointly = f" decomposed jointly ({variant})" if self.joint else ""
        return (
            f"Cut {what}: {len(self.cuts)} cut(s) ({cuts}){jointly} found by {self.source}, pieces of {pieces} qubits, "
            f"sampling overhead {self.sampling_overhead:g}, {sum(self.subexperiments.values())} subexperiments "
            f"sharing {self.total_shots} shots ({self.shot_allocation.value} to |coefficient|{spread})."
        )

    def to_dict(self) -> dict[str, Any]:
        allocation: dict[str, Any] = {"method": self.shot_allocation.value, "total_shots": self.total_shots}
        if self.circuit_shots:
            allocation.update(
                circuits=len(self.circuit_shots),
                min_shots=min(self.circuit_shots),
                max_shots=max(self.circuit_shots),
                circuit_shots=list(self.circuit_shots),
            )
        return {
            "block_id": self.block_id,
            "kind": self.kind.value,
            "qubits": list(self.qubits),
            "clbits": list(self.clbits),
            "cuts": [c.to_list() for c in self.cuts],
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
            "observables": [[list(t) for t in terms] for terms in self.observables],
            "notes": list(self.notes),
            "joint": self.joint,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CutBlock:
        allocation = data.get("shot_allocation", {})
        return cls(
            block_id=int(data["block_id"]),
            kind=BlockKind(data["kind"]),
            qubits=tuple(int(q) for q in data["qubits"]),
            clbits=tuple(int(b) for b in data["clbits"]),
            cuts=tuple(CutLocation.from_list(c) for c in data["cuts"]),
            sampling_overhead=float(data["sampling_overhead"]),
            subcircuit_widths={str(k): int(v) for k, v in data["subcircuit_widths"].items()},
            subexperiments={str(k): int(v) for k, v in data["subexperiments"].items()},
            nodes={str(k): tuple(v) for k, v in data["nodes"].items()},
            shots=int(data["shots"]),
            shot_allocation=ShotAllocation(allocation.get("method", ShotAllocation.PROPORTIONAL.value)),
            circuit_shots=tuple(int(s) for s in allocation.get("circuit_shots", ())),
            source=str(data.get("source", "")),
            approximate=bool(data.get("approximate", False)),
            estimated_seconds=float(data.get("estimated_seconds", 0.0)),
            estimated_cost=float(data.get("estimated_cost", 0.0)),
            observables=tuple(
                tuple((str(label), float(c)) for label, c in terms) for terms in data.get("observables", ())
            ),
            notes=tuple(data.get("notes", ())),
            joint=str(data.get("joint", "")),
        )


@dataclass(frozen=True)
class BlockSource:
    """The uncut circuit a block cuts, and how its qubits read back.

    Attributes:
        circuit: Unitary (measurements deferred onto ancillas), lowered, no barriers, no clbits.
        observables: Expectation blocks: the observables on its qubits (ancillas added, idle
            qubits dropped).
        clbit_sources: Distribution blocks: for classical bit ``j`` of the block, the qubit of
            ``circuit`` whose final Z value is its value (``None``: a bit never written, 0).
    """

    circuit: QuantumCircuit
    observables: tuple[SparsePauliOp, ...] = ()
    clbit_sources: tuple[int | None, ...] = ()


def block_source(
    circuit: QuantumCircuit,
    kind: BlockKind,
    qubits: Sequence[int],
    clbits: Sequence[int],
    observables: Sequence[SparsePauliOp] = (),
) -> BlockSource:
    """The circuit a block cuts: its part of ``circuit`` (lowered, measurements deferred).

    Raises:
        CircuitCompileError: Control flow that cannot be deferred (``while``, ``switch``...).
    """
    lowered = lower_circuit(circuit)
    if kind is BlockKind.EXPECTATION:
        form = unitary_form(lowered, coherent_reads=True)
        ops = [with_ancillas(op, form.ancillas) for op in observables]
        reduced, ops = drop_idle_qubits(lower_circuit(form.circuit), ops)
        return BlockSource(strip_barriers(reduced), tuple(ops))
    whole = list(qubits) == list(range(lowered.num_qubits)) and list(clbits) == list(range(lowered.num_clbits))
    part = lowered if whole else split_circuit(lowered, [(qubits, clbits)])[0]
    form = unitary_form(part)
    return BlockSource(strip_barriers(lower_circuit(form.circuit)), (), form.clbit_sources)


@dataclass
class BlockProblem:
    """A block's subexperiments and what its reconstruction needs, rebuilt from the circuit and the
    block alone (:func:`block_problem`).

    Attributes:
        source: The uncut circuit.
        subexperiments: Every QPD term's subexperiments per piece (identical ones are one object).
        coefficients: The library's ``(coefficient, weight type)`` per term.
        split: The distinct circuits (the block's shards, in order) and their shots.
        distribution: Distribution blocks: the bit maps of every subexperiment.
        subobservables: Expectation blocks: the library's sub-observables per piece.
        joint: Cuts decomposed jointly: the problem (its circuits are ``split``'s).
    """

    source: BlockSource
    subexperiments: dict[Hashable, list[QuantumCircuit]]
    coefficients: list[tuple[float, Any]]
    split: SubexperimentShots
    distribution: DistributionProblem | None = None
    subobservables: Mapping[Hashable, PauliList] | None = None
    joint: JointProblem | None = None

    @property
    def circuits(self) -> list[QuantumCircuit]:
        return self.split.circuits


@dataclass(frozen=True)
class BlockChoice:
    """What :func:`plan_block` decided: a cut block, or a whole component on an approximate node."""

    block: CutBlock | None
    problem: BlockProblem | None
    approximate_node: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


_CACHE_SIZE = 8
_problems: OrderedDict[tuple[str, str], BlockProblem] = OrderedDict()
_problems_lock = threading.Lock()


def _remember(key: tuple[str, str], problem: BlockProblem) -> None:
    with _problems_lock:
        _problems[key] = problem
        _problems.move_to_end(key)
        while len(_problems) > _CACHE_SIZE:
            _problems.popitem(last=False)


def block_problem(circuit: QuantumCircuit, block: CutBlock, *, circuit_hash: str) -> BlockProblem:
    """The block's subexperiments, rebuilt from the circuit the plan was made for.

    Deterministic: the same circuit and block give the same circuits in the same order, with the
    same shots, in any process. Cached per process (the planner's build is reused).

    Raises:
        PlanningError: The block does not fit the circuit, or this version of qiskit-addon-cutting
            decomposes it differently from the plan.
    """
    key = (circuit_hash, block.problem_key)
    with _problems_lock:
        cached = _problems.get(key)
    if cached is not None:
        return cached
    source = block_source(circuit, block.kind, block.qubits, block.clbits, block.observable_ops())
    problem = _decompose(source, apply_cuts(source.circuit, block.cuts), block.kind, joint=bool(block.joint))
    counts = {str(label): len(circs) for label, circs in problem[0].items()}
    if counts != dict(block.subexperiments):
        raise PlanningError(
            f"Block {block.block_id} decomposes into {counts} subexperiments here, the plan has "
            f"{dict(block.subexperiments)}: the plan was made for another circuit or library version."
        )
    rebuilt = _problem(source, problem, block.total_shots, block.shot_allocation)
    if block.circuit_shots and tuple(rebuilt.split.shots) != tuple(block.circuit_shots):
        raise PlanningError(f"Block {block.block_id}'s distinct subexperiments differ from the plan's.")
    _remember(key, rebuilt)
    return rebuilt


_Decomposed = tuple[dict[Hashable, list[QuantumCircuit]], list[tuple[float, Any]], Any]


def _decompose(
    source: BlockSource, cut_circuit: QuantumCircuit, kind: BlockKind, *, joint: bool = False
) -> _Decomposed:
    """Subexperiments, coefficients and (distribution problem | sub-observables | joint problem) of a cut circuit."""
    if joint:
        return _joint(source, cut_circuit, kind)
    if kind is BlockKind.DISTRIBUTION:
        with library_errors(PlanningError, "Decomposing the cut circuit failed"):
            dist = build_distribution_problem(source.circuit, cut_circuit)
        return dist.subexperiments, dist.coefficients, dist
    partitioned = _partition_observables(source, cut_circuit)
    with library_errors(PlanningError, "Generating the cut subexperiments failed"):
        subexperiments, coefficients = generate_experiments(partitioned.subcircuits, partitioned.subobservables)
    return subexperiments, coefficients, partitioned.subobservables


def _joint(source: BlockSource, cut_circuit: QuantumCircuit, kind: BlockKind) -> _Decomposed:
    """The cuts decomposed jointly (:mod:`network.cutting.joint`): both pieces' circuits, no library terms."""
    layout = joint_layout(cut_circuit, source.circuit)
    if layout is None:
        raise PlanningError("The block's cuts cannot be decomposed jointly: the plan was made for another circuit.")
    with library_errors(PlanningError, "Decomposing the cuts jointly failed"):
        if kind is BlockKind.DISTRIBUTION:
            problem = build_joint_problem(layout.circuit, layout.sides, outputs=layout.outputs(source.circuit))
        else:
            paulis = layout.paulis(all_paulis(source.observables), source.circuit)
            problem = build_joint_problem(layout.circuit, layout.sides, paulis=paulis)
    return {"0": problem.sides[0].circuits, "1": problem.sides[1].circuits}, [], problem


def _partition_observables(source: BlockSource, cut_circuit: QuantumCircuit) -> Any:
    from qiskit_addon_cutting import cut_wires, expand_observables, partition_problem

    with library_errors(PlanningError, "Decomposing the cut circuit failed"):
        with_wires = cut_wires(cut_circuit)
        expanded = expand_observables(all_paulis(source.observables), source.circuit, with_wires)
        return partition_problem(circuit=with_wires, observables=expanded)


def _problem(source: BlockSource, decomposed: _Decomposed, total: int, allocation: ShotAllocation) -> BlockProblem:
    subexperiments, coefficients, extra = decomposed
    if isinstance(extra, JointProblem):
        labels = extra.labels()
        index = {
            (label, i): labels.index(str(label)) + i
            for label, circs in subexperiments.items()
            for i in range(len(circs))
        }
        split = SubexperimentShots(extra.circuits, labels, index, extra.weights, []).allocate(total, allocation)
        return BlockProblem(source, subexperiments, coefficients, split, joint=extra)
    split = share_shots(subexperiments, coefficients, total, allocation)
    if isinstance(extra, DistributionProblem):
        return BlockProblem(source, subexperiments, coefficients, split, distribution=extra)
    return BlockProblem(source, subexperiments, coefficients, split, subobservables=extra)


def plan_block(
    circuit: QuantumCircuit,
    *,
    circuit_hash: str,
    block_id: int,
    kind: BlockKind,
    qubits: Sequence[int],
    clbits: Sequence[int],
    observables: Sequence[SparsePauliOp] = (),
    nodes: Sequence[QPUNodeSpec],
    shots: int,
    seed: int,
    max_overhead: float,
    max_subexperiments: int = DEFAULT_MAX_SUBEXPERIMENTS,
    time_budget: float = DEFAULT_TIME_BUDGET,
    allow_approximate: bool = True,
    allocation: ShotAllocation | str = ShotAllocation.PROPORTIONAL,
    cost_model: CostModel | None = None,
    joint: bool = True,
) -> BlockChoice:
    """Choose the cut of one block (:func:`~network.cutting.choose_cut`) and decompose it.

    A distribution block whose cut is above the bounds, or too wide to reconstruct, goes whole to an
    allowed approximate (MPS) node that holds it (``approximate_node``); an expectation block then
    becomes one uncut piece on that node. The subexperiments are counted (QPD terms times each
    piece's commuting observable groups) before any is generated. With ``joint``, cuts that can be
    decomposed jointly (:mod:`network.cutting.joint`) are priced and run jointly when that is
    cheaper; a joint decomposition of an expectation block that needs more than
    ``max_subexperiments`` circuits for its observables gives way to the separate one.

    Raises:
        PlanningError: No cut within the bounds and no approximate node allowed; the message quotes
            the numbers and the alternatives (:class:`DistributionTooLargeError` for a distribution
            too large to reconstruct).
        CircuitCompileError: The block's measurements cannot be deferred.
    """
    from qiskit_addon_cutting.utils.observable_grouping import ObservableCollection

    model = cost_model or CostModel()
    allocation = ShotAllocation(allocation)
    source = block_source(circuit, kind, qubits, clbits, observables)
    n = source.circuit.num_qubits
    mps = sorted(
        (node for node in nodes if not node.exact and node.max_qubits >= n), key=lambda node: node.price(shots)
    )
    mps = mps if allow_approximate else []
    distribution = kind is BlockKind.DISTRIBUTION

    def on_mps(why: str) -> BlockChoice:
        note = f"Approximate: the {n}-qubit block ran whole on the MPS node {mps[0].node_id} ({why})."
        return BlockChoice(None, None, mps[0].node_id, (note,))

    if distribution:
        try:
            check_distribution_size(n)
        except PlanningError as exc:
            if mps:
                return on_mps(f"its distribution is too large to reconstruct: {exc}")
            raise
    choice, notes = choose_cut(
        source.circuit, nodes, shots=shots, max_overhead=max_overhead, seed=seed,
        allow_approximate=allow_approximate, max_subexperiments=max_subexperiments, time_budget=time_budget,
        joint=joint,
    )  # fmt: skip
    decomposed: _Decomposed | None = None
    if choice.joint and not distribution:
        decomposed = _joint(source, choice.cut_circuit, kind)
        count = sum(len(circs) for circs in decomposed[0].values())
        if count > max_subexperiments:
            decomposed = None
            choice, notes = choose_cut(
                source.circuit, nodes, shots=shots, max_overhead=max_overhead, seed=seed,
                allow_approximate=allow_approximate, max_subexperiments=max_subexperiments, time_budget=time_budget,
                joint=False,
            )  # fmt: skip
            notes.append(
                f"The joint decomposition needs {count:,} subexperiments for these observables, above "
                f"max_subexperiments={max_subexperiments:,}: the cuts are decomposed one by one."
            )
    if distribution:
        if choice.approximate:
            return BlockChoice(None, None, choice.nodes["0"][0], tuple(notes))
        try:
            check_distribution_size(n, choice.terms)
        except PlanningError as exc:
            if mps:
                return on_mps(str(exc))
            raise
        if n > MAX_DENSE_QUBITS:
            notes = [
                *notes,
                f"The {n}-qubit distribution is reconstructed sparsely: its memory grows with the product of "
                f"the outcomes each piece's subexperiments give, refused past {MAX_SUPPORT:,} entries once "
                "they ran (with a result store their counts are kept).",
            ]
        decomposed = _decompose(source, choice.cut_circuit, kind, joint=bool(choice.joint))
    elif decomposed is None:  # expectation values, the cuts decomposed one by one
        partitioned = _partition_observables(source, choice.cut_circuit)
        count = choice.terms * sum(len(ObservableCollection(s).groups) for s in partitioned.subobservables.values())
        if count > max_subexperiments and not choice.approximate:
            if not mps:
                raise PlanningError(
                    f"The cut ({len(choice.cuts)} cut(s), sampling overhead {choice.sampling_overhead:g}) needs "
                    f"{count:,} subexperiments for these observables, above max_subexperiments="
                    f"{max_subexperiments:,}. Raise the bound, group the observables into fewer non-commuting "
                    "sets, use wider nodes or add an approximate MPS node."
                )
            choice = whole_on(source.circuit, mps[0], shots, model)
            notes = [
                f"Approximate: ran whole on the MPS node {mps[0].node_id} (cutting needs {count:,} "
                f"subexperiments > max_subexperiments={max_subexperiments:,})."
            ]
            partitioned = _partition_observables(source, choice.cut_circuit)
        with library_errors(PlanningError, "Generating the cut subexperiments failed"):
            subexperiments, coefficients = generate_experiments(partitioned.subcircuits, partitioned.subobservables)
        decomposed = (subexperiments, coefficients, partitioned.subobservables)
    counts = {str(label): len(circs) for label, circs in decomposed[0].items()}
    if set(counts) != set(choice.widths):
        raise PlanningError(
            f"The decomposition's pieces {sorted(counts)} differ from the planned {sorted(choice.widths)}."
        )
    problem = _problem(source, decomposed, shots * sum(counts.values()), allocation)
    block = _block(block_id, kind, qubits, clbits, observables, choice, counts, shots, allocation, problem, notes)
    _remember((circuit_hash, block.problem_key), problem)
    return BlockChoice(block, problem, None, tuple(notes))


def _block(
    block_id: int,
    kind: BlockKind,
    qubits: Sequence[int],
    clbits: Sequence[int],
    observables: Sequence[SparsePauliOp],
    choice: CutCandidate,
    counts: Mapping[str, int],
    shots: int,
    allocation: ShotAllocation,
    problem: BlockProblem,
    notes: Sequence[str],
) -> CutBlock:
    terms = tuple(
        tuple((str(label), float(np.real(c))) for label, c in zip(op.paulis.to_labels(), op.coeffs, strict=True))
        for op in observables
    )
    return CutBlock(
        block_id=block_id,
        kind=kind,
        qubits=tuple(qubits),
        clbits=tuple(clbits),
        cuts=cut_locations(choice.cut_circuit),
        sampling_overhead=choice.sampling_overhead,
        subcircuit_widths=dict(choice.widths),
        subexperiments=dict(counts),
        nodes=dict(choice.nodes),
        shots=shots,
        shot_allocation=allocation,
        circuit_shots=tuple(problem.split.shots),
        source=choice.source,
        approximate=choice.approximate,
        estimated_seconds=choice.estimated_seconds,
        estimated_cost=choice.estimated_cost,
        observables=terms,
        notes=tuple(notes),
        joint=choice.joint,
    )


def _span(qubits: Sequence[int]) -> str:
    if list(qubits) == list(range(qubits[0], qubits[0] + len(qubits))):
        return f"{qubits[0]}..{qubits[-1]}"
    shown = ", ".join(map(str, qubits[:8]))
    return f"{shown}{', ...' if len(qubits) > 8 else ''}"
