"""Joint cuts: ``n`` cuts between the same two pieces decomposed together, at the proven optimum
``gamma = 2^(n+1) - 1`` (sampling overhead ``gamma^2``: 49 for two cuts instead of 81 for two CX
gate cuts or 256 for two wire cuts).

Two decompositions, each built from the circuits that run and verified numerically against the
operation it replaces (:func:`verify_joint`: the Choi matrix of the QPD sum equals the cut
operation's to 1e-9, and its gamma is the published one):

* **Parallel wire cuts** (Harada, Wada and Tsuda, "Doubly optimal parallel wire cutting without
  ancilla qubits", arXiv 2303.07340). With ``d = 2^n`` and ``d + 1`` mutually unbiased bases of the
  ``n`` cut wires (stabilizer bases: ``d`` quadratic-form bases and the computational one)::

      id = sum_{b=1..d} E_b - (d - 1) F

  ``E_b`` measures the wires in basis ``b`` and prepares the state measured; ``F`` measures them in
  the computational basis and prepares a uniformly random *other* computational state. No ancilla
  and no mid-circuit measurement: the measuring piece measures its cut wires at its end, the
  preparing piece prepares them at its start. The paper's protocol sends the measured ``k`` to the
  preparing side (one-way classical communication); here that message is resolved afterwards:
  the preparing piece runs once for every ``k`` and the reconstruction pairs each ``k`` measured
  with the run that prepared it. Requirement: every cut wire goes from the same piece to the other
  (nothing flows back), which the block builder checks.

* **Joint gate cuts** by gate teleportation (Piveteau and Sutter, "Circuit knitting with
  classical communication", arXiv 2205.00016; Schmitt, Piveteau and Sutter, arXiv 2312.11638):
  each of the ``n`` controlled gates between the pieces (CX, CY, CZ, CH, CP, CRX/CRY/CRZ, CU, CS,
  CSX; ``rzz(t)`` as ``rz(t)`` on its second qubit and a controlled ``rz(-2t)``) is applied
  non-locally with one Bell pair (Eisert et al.'s protocol: one ancilla on each side; the target
  side applies the gate from its ancilla), and the ``n`` Bell pairs, a maximally
  entangled state of Schmidt rank ``d``, are replaced by their optimal decomposition into product
  states (robustness of entanglement ``d - 1``)::

      Phi_d = d sigma_+ - (d - 1) sigma_-

  ``sigma_+`` is the mixture of ``|psi><psi| (x) |psi*><psi*|`` over the ``d(d+1)`` states of the
  mutually unbiased bases, ``sigma_-`` of ``|k_b><k_b| (x) |j_b*><j_b*|`` with ``k != j``. The
  protocol's two classical messages per gate (the Z outcome of the control side's ancilla decides
  an X on the target side's, the X outcome of the target side's a Z on the control) are resolved
  afterwards as for wires: each piece runs in every version of the corrections it receives, and the
  reconstruction pairs a piece's measured messages with the other piece's version. Needs ``n``
  spare qubits on each piece's node (the ancillas); the ancillas are measured at the end, so no
  mid-circuit measurement is needed. This is the variant that runs: LO with ancillas and messages
  resolved in post-processing.

Both give a :class:`JointProblem`: the two pieces' circuits and a coefficient table
``C[(A circuit, A message), (B circuit, B message)]``; every estimate is
``sum C * a * b`` over the pieces' message-resolved estimates, for expectation values
(:func:`estimate_joint_expectations`, with bootstrap errors) and distributions
(:func:`reconstruct_joint_sparse`).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.quantum_info import PauliList

from network.cutting.experiments import outcome_bits
from network.errors import PlanningError

__all__ = [
    "JOINT_GATES",
    "MAX_JOINT_CUTS",
    "JointKind",
    "JointProblem",
    "build_joint_problem",
    "estimate_joint_expectations",
    "exact_counts",
    "exact_standard_error",
    "joint_gamma",
    "joint_subexperiments",
    "mub_matrices",
    "reconstruct_joint_sparse",
    "separate_overhead",
    "verify_joint",
]

#: Most cuts decomposed jointly (``d + 1 = 9`` bases of 8 states at 3 cuts; a joint gate cut of 3
#: gates needs 576 circuits per piece).
MAX_JOINT_CUTS = 3

#: Two-qubit gates cut jointly by teleportation: the controlled unitaries (the target side applies the
#: gate from its ancilla), and ``rzz`` as ``rz`` on its second qubit then a controlled ``rz``.
JOINT_GATES = frozenset(
    {"cx", "cy", "cz", "ch", "cp", "crx", "cry", "crz", "cu", "cu1", "cu3", "cs", "csdg", "csx", "rzz"}
)

JointKind = str  # "gates" | "wires"

_MOVE = "cut_move"


def joint_gamma(n: int) -> int:
    """The published optimum for ``n`` cuts decomposed jointly: ``2^(n+1) - 1``."""
    return 2 ** (n + 1) - 1


def separate_overhead(kind: JointKind, n: int) -> float:
    """The overhead of the same cuts decomposed one by one: 9 per gate cut, 16 per wire cut."""
    return float((9 if kind == "gates" else 16) ** n)


def joint_subexperiments(kind: JointKind, n: int, groups: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """Circuits of each piece (measuring piece first for wires), per commuting observable group."""
    d = 2**n
    if kind == "gates":
        return d * (d + 1) * d * groups[0], d * (d + 1) * d * groups[1]
    return (d + 1) * groups[0], d * (d + 1) * groups[1]


# -- mutually unbiased bases ----------------------------------------------------------------------


def _quadratic_state(matrix: np.ndarray, n: int) -> np.ndarray:
    """``sum_x i^(x^T M x) |x> / sqrt(d)`` (qubit ``i`` at bit ``i``), the ``k = 0`` state of basis ``M``."""
    d = 2**n
    x = (np.arange(d)[:, None] >> np.arange(n)[None, :]) & 1
    form = np.einsum("ai,ij,aj->a", x, matrix, x) % 4
    return np.asarray((1j) ** form / math.sqrt(d))


@functools.cache
def mub_matrices(n: int) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """``2^n`` symmetric 0/1 matrices whose quadratic-form bases, with the computational basis, are
    ``2^n + 1`` mutually unbiased bases of ``n`` qubits (found once by search, checked numerically).

    Basis ``M``, state ``k``: ``Z^k CZ(M off-diagonal) S(M diagonal) H^n |0>``, a stabilizer state.

    Raises:
        ValueError: ``n`` outside ``1..MAX_JOINT_CUTS``.
    """
    if not 1 <= n <= MAX_JOINT_CUTS:
        raise ValueError(f"Mutually unbiased bases are built for 1 to {MAX_JOINT_CUTS} qubits, not {n}.")
    d = 2**n
    pairs = [(i, j) for i in range(n) for j in range(i, n)]
    candidates = []
    for bits in itertools.product((0, 1), repeat=len(pairs)):
        m = np.zeros((n, n), dtype=np.int64)
        for (i, j), bit in zip(pairs, bits, strict=True):
            m[i, j] = m[j, i] = bit
        candidates.append(m)
    columns = [(_quadratic_state(m, n)[None, :] * _parity_rows(n)).T for m in candidates]

    def unbiased(a: int, b: int) -> bool:
        overlaps = np.abs(columns[a].conj().T @ columns[b]) ** 2
        return bool(np.allclose(overlaps, 1.0 / d, atol=1e-12))

    chosen: list[int] = []

    def extend(start: int) -> bool:
        if len(chosen) == d:
            return True
        for c in range(start, len(candidates)):
            if all(unbiased(c, o) for o in chosen):
                chosen.append(c)
                if extend(c + 1):
                    return True
                chosen.pop()
        return False

    if not extend(0):  # pragma: no cover - the bases exist for every n
        raise RuntimeError(f"No {d} mutually unbiased quadratic-form bases of {n} qubits were found.")
    return tuple(tuple(tuple(int(v) for v in candidates[c][i]) for i in range(n)) for c in chosen)


def _parity_rows(n: int) -> np.ndarray:
    """``(-1)^(k.x)`` with ``k`` the row and ``x`` the column."""
    d = 2**n
    x = np.arange(d)
    return np.asarray((-1.0) ** np.array([[bin(k & v).count("1") % 2 for v in x] for k in x]))


def _prepare(qc: QuantumCircuit, qubits: Sequence[Any], basis: int, k: int, *, conjugate: bool = False) -> None:
    """Prepare state ``k`` of basis ``basis`` (``2^n`` is the computational basis) from ``|0...0>``."""
    n = len(qubits)
    for i, q in enumerate(qubits):
        if (k >> i) & 1:
            qc.x(q)
    if basis == 2**n:
        return
    matrix = mub_matrices(n)[basis]
    for q in qubits:
        qc.h(q)
    for i, q in enumerate(qubits):
        if matrix[i][i]:
            if conjugate:
                qc.sdg(q)
            else:
                qc.s(q)
    for i in range(n):
        for j in range(i + 1, n):
            if matrix[i][j]:
                qc.cz(qubits[i], qubits[j])


def _unprepare(qc: QuantumCircuit, qubits: Sequence[Any], basis: int) -> None:
    """Rotate basis ``basis`` onto the computational one (state ``k`` to ``|k>``), before measuring."""
    n = len(qubits)
    if basis == 2**n:
        return
    matrix = mub_matrices(n)[basis]
    for i in range(n):
        for j in range(i + 1, n):
            if matrix[i][j]:
                qc.cz(qubits[i], qubits[j])
    for i, q in enumerate(qubits):
        if matrix[i][i]:
            qc.sdg(q)
    for q in qubits:
        qc.h(q)


# -- the decompositions as coefficient tables -----------------------------------------------------


def _bell_coefficients(n: int) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The product states of ``Phi_d``'s decomposition and their coefficients.

    Returns:
        ``states``: ``(basis, k)`` of each state (``A`` prepares ``|k_b>``, ``B`` ``|k_b*>``);
        ``c[p, q]``: the coefficient of ``A`` in state ``p`` and ``B`` in state ``q``:
        ``1/d - 1/(d(d+1))`` when ``p == q`` (the ``sigma_+`` part), ``-1/(d(d+1))`` when ``p`` and
        ``q`` are different states of one basis (``sigma_-``), 0 across bases.
    """
    d = 2**n
    states = [(b, k) for b in range(d + 1) for k in range(d)]
    c = np.zeros((len(states), len(states)))
    for p, (bp, kp) in enumerate(states):
        for q, (bq, kq) in enumerate(states):
            if bp == bq:
                c[p, q] = (1.0 / (d + 1) if kp == kq else 0.0) - (0.0 if kp == kq else 1.0 / (d * (d + 1)))
    return states, c


def _published_gamma_of_table(kind: JointKind, n: int) -> float:
    """Gamma of the decomposition as channels (what an LOCC protocol samples from)."""
    d = 2**n
    if kind == "wires":
        return d * 1.0 + (d - 1)  # d channels E_b with coefficient 1, F with -(d - 1)
    _, c = _bell_coefficients(n)
    return float(np.abs(c).sum())  # sum over product states of |coefficient|


# -- the problem ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Side:
    """One piece: its circuits and how to read their bits."""

    circuits: list[QuantumCircuit]
    #: Circuit ``i`` is (state or basis index, version, observable group).
    keys: list[tuple[int, int, int]]
    #: Output clbits: bit ``b`` of the piece's outcome is clbit ``b`` (original qubit ``outputs[b]``).
    outputs: tuple[int, ...]
    #: Width of the message register (clbits after the outputs).
    messages: int
    #: Expectation mode: the piece's local Pauli strings per group (over its output qubits).
    groups: tuple[PauliList, ...] = ()


@dataclass
class JointProblem:
    """A two-piece block cut jointly: the pieces' circuits and how their estimates combine.

    Attributes:
        kind: ``"gates"`` or ``"wires"``.
        n: Cuts decomposed jointly.
        sides: Piece ``0`` (for wires: the measuring piece) and piece ``1``.
        num_qubits: Qubits of the cut circuit's outputs (distributions: the original qubits).
        paulis: Expectation mode: every Pauli (over the original qubits) whose value is estimated.
        weights: Per circuit of ``sides[0]`` then ``sides[1]``: the summed |coefficient| it carries.
    """

    kind: JointKind
    n: int
    sides: tuple[_Side, _Side]
    num_qubits: int
    paulis: PauliList | None = None
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: Expectation mode: for each Pauli, ``(group, index in group)`` on each piece.
    _where: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)

    @property
    def gamma(self) -> float:
        return float(joint_gamma(self.n))

    @property
    def sampling_overhead(self) -> float:
        return self.gamma**2

    @property
    def circuits(self) -> list[QuantumCircuit]:
        return [*self.sides[0].circuits, *self.sides[1].circuits]

    def labels(self) -> list[str]:
        return ["0"] * len(self.sides[0].circuits) + ["1"] * len(self.sides[1].circuits)


def build_joint_problem(
    circuit: QuantumCircuit,
    sides: Sequence[int],
    *,
    outputs: Mapping[int, int] | None = None,
    paulis: PauliList | None = None,
    body_only: bool = False,
) -> JointProblem:
    """Decompose the crossing operations of a two-piece circuit jointly.

    Args:
        circuit: Unitary, lowered; every operation between the pieces is a controlled gate (a joint
            gate cut) or a ``cut_move`` from ``qiskit_addon_cutting.cut_wires`` (a joint wire cut),
            all of one kind.
        sides: The piece (0 or 1) of each qubit.
        outputs: Distribution mode: the original qubit whose final Z value each qubit of
            ``circuit`` holds (qubits absent are not measured).
        paulis: Expectation mode: Paulis over the qubits of ``circuit``, each estimated.
        body_only: Build the circuits without measuring outputs (for :func:`verify_joint`).

    Raises:
        PlanningError: Not two pieces, mixed or unsupported crossing operations, more than
            :data:`MAX_JOINT_CUTS`, or wire cuts that flow back; the message names them.
    """
    if sorted(set(sides)) != [0, 1] or len(sides) != circuit.num_qubits:
        raise PlanningError(f"A joint cut needs a piece (0 or 1) for each of {circuit.num_qubits} qubits.")
    crossing = [
        i for i, inst in enumerate(circuit.data) if len({sides[circuit.find_bit(q).index] for q in inst.qubits}) > 1
    ]
    names = {_name(circuit.data[i].operation) for i in crossing}
    if not crossing:
        raise PlanningError("The circuit has no operation between its two pieces: there is nothing to cut jointly.")
    if names <= JOINT_GATES - {"rzz"}:
        kind: JointKind = "gates"
    elif names == {_MOVE}:
        kind = "wires"
    else:
        raise PlanningError(
            f"Only controlled gates (CX, CZ, CP, CRZ...) or wire cuts between two pieces are cut jointly, not "
            f"{sorted(names)}."
        )
    n = len(crossing)
    if n > MAX_JOINT_CUTS:
        raise PlanningError(f"{n} cuts between two pieces: at most {MAX_JOINT_CUTS} are decomposed jointly.")
    if (outputs is None) == (paulis is None) and not body_only:
        raise PlanningError("Pass outputs (a distribution) or paulis (expectation values), not both or neither.")
    if kind == "wires":
        return _wire_problem(circuit, list(sides), crossing, outputs, paulis, body_only)
    return _gate_problem(circuit, list(sides), crossing, outputs, paulis, body_only)


def _groups(paulis: PauliList | None, local: Sequence[int]) -> tuple[list[PauliList], list[list[tuple[int, int]]]]:
    """Qubit-wise commuting groups of the local parts (over ``local``) and where each Pauli's part is."""
    if paulis is None:
        return [], []
    parts = [paulis[i][list(local)] for i in range(len(paulis))]
    distinct: list[str] = []
    for p in parts:
        if p.to_label() not in distinct:
            distinct.append(p.to_label())
    grouped = PauliList(distinct).group_qubit_wise_commuting()
    where: dict[str, tuple[int, int]] = {}
    for g, group in enumerate(grouped):
        for j, label in enumerate(group.to_labels()):
            where.setdefault(label, (g, j))
    return list(grouped), [[where[p.to_label()]] for p in parts]


def _measure_outputs(
    qc: QuantumCircuit, qubits: Sequence[Any], out: ClassicalRegister, group: PauliList | None
) -> None:
    """Rotate into the group's shared basis (X: H, Y: S^dagger H) and measure ``qubits`` into ``out``."""
    if group is not None:
        for i, q in enumerate(qubits):
            x = bool(np.any(group.x[:, i]))
            z = bool(np.any(group.z[:, i]))
            if x and z:
                qc.sdg(q)
                qc.h(q)
            elif x:
                qc.h(q)
    for i, q in enumerate(qubits):
        qc.measure(q, out[i])


def _gate_problem(
    circuit: QuantumCircuit,
    sides: list[int],
    crossing: list[int],
    outputs: Mapping[int, int] | None,
    paulis: PauliList | None,
    body_only: bool,
) -> JointProblem:
    n = len(crossing)
    d = 2**n
    local = [[q for q in range(circuit.num_qubits) if sides[q] == s] for s in (0, 1)]
    states, coefficients = _bell_coefficients(n)
    variants: list[list[_Variant]] = []
    for s in (0, 1):
        row_weight = np.abs(coefficients).sum(axis=1 - s)  # summed |c| of each state of this piece
        variants.append([
            ((p, version), row_weight[p] / d,
             functools.partial(_gate_side, circuit, sides, s, crossing, basis, k, version, body_only=body_only))
            for p, (basis, k) in enumerate(states)
            for version in range(d)
        ])  # fmt: skip
    return _assemble("gates", n, circuit, local, outputs, paulis, variants, (n, n))


_Variant = tuple[tuple[int, int], float, Callable[[Sequence[int], "PauliList | None"], QuantumCircuit]]


def _assemble(
    kind: JointKind,
    n: int,
    circuit: QuantumCircuit,
    local: Sequence[Sequence[int]],
    outputs: Mapping[int, int] | None,
    paulis: PauliList | None,
    variants: Sequence[Sequence[_Variant]],
    messages: tuple[int, int],
) -> JointProblem:
    """Both pieces' circuits: each variant ``(key, weight, build)`` of a piece once per commuting
    group of its local Paulis (``build(measured qubits, group)``)."""
    built: list[_Side] = []
    weights: list[np.ndarray] = []
    wheres: list[list[list[tuple[int, int]]]] = []
    for s in (0, 1):
        groups, where = _groups(paulis, local[s])
        wheres.append(where)
        measured = list(local[s]) if outputs is None else [q for q in local[s] if q in outputs]
        circuits: list[QuantumCircuit] = []
        keys: list[tuple[int, int, int]] = []
        side_weights: list[float] = []
        for (first, second), weight, build in variants[s]:
            for g in range(max(len(groups), 1)):
                circuits.append(build(measured, groups[g] if groups else None))
                keys.append((first, second, g))
                side_weights.append(weight)
        outs = tuple(measured) if outputs is None else tuple(outputs[q] for q in measured)
        built.append(_Side(circuits, keys, outs, messages[s], tuple(groups)))
        weights.append(np.array(side_weights))
    where_pairs = [(a[0], b[0]) for a, b in zip(wheres[0], wheres[1], strict=True)] if paulis is not None else []
    size = circuit.num_qubits if outputs is None else len(outputs)
    return JointProblem(kind, n, (built[0], built[1]), size, paulis, np.concatenate(weights), where_pairs)


def _gate_side(
    circuit: QuantumCircuit,
    sides: list[int],
    side: int,
    crossing: list[int],
    basis: int,
    k: int,
    version: int,
    measured: Sequence[int],
    group: PauliList | None,
    *,
    body_only: bool,
) -> QuantumCircuit:
    """Piece ``side``'s circuit: ancillas in state ``(basis, k)`` (conjugated on piece 1), its gates,
    and per crossing gate ``i`` its half of the teleported gate with correction bit ``i`` of
    ``version``; message bit ``i`` is the ancilla's Z (control side) or X (target side) outcome."""
    n = len(crossing)
    local = [q for q in range(circuit.num_qubits) if sides[q] == side]
    position = {q: i for i, q in enumerate(local)}
    data = QuantumRegister(len(local), "q")
    anc = QuantumRegister(n, "anc")
    out = ClassicalRegister(len(measured), "out")
    msg = ClassicalRegister(n, "msg")
    qc = QuantumCircuit(data, anc, out, msg, name=f"joint{side}_{basis}_{k}_{version}")
    _prepare(qc, list(anc), basis, k, conjugate=side == 1)
    target_side: list[bool] = []
    cut = 0
    for i, inst in enumerate(circuit.data):
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        if i not in crossing:
            if sides[qubits[0]] == side:
                qc.append(inst.operation, [data[position[q]] for q in qubits])
            continue
        control, target = qubits
        if sides[control] == side:  # Z^(m1) to the other side; receives m2: Z^(m2) on the control
            qc.cx(data[position[control]], anc[cut])
            if (version >> cut) & 1:
                qc.z(data[position[control]])
            target_side.append(False)
        else:  # receives m1: X^(m1) on the ancilla, then the gate from the ancilla
            if (version >> cut) & 1:
                qc.x(anc[cut])
            qc.append(inst.operation, [anc[cut], data[position[target]]])
            target_side.append(True)
        cut += 1
    for i, is_target in enumerate(target_side):
        if is_target:
            qc.h(anc[i])
    if not body_only:
        _measure_outputs(qc, [data[position[q]] for q in measured], out, group)
    for i in range(n):
        qc.measure(anc[i], msg[i])
    return qc


def _wire_problem(
    circuit: QuantumCircuit,
    sides: list[int],
    crossing: list[int],
    outputs: Mapping[int, int] | None,
    paulis: PauliList | None,
    body_only: bool,
) -> JointProblem:
    moves = [tuple(circuit.find_bit(q).index for q in circuit.data[i].qubits) for i in crossing]
    source = {sides[a] for a, _ in moves}
    if len(source) != 1:
        raise PlanningError("Wire cuts in both directions between two pieces cannot be decomposed jointly.")
    first = source.pop()
    sides = [s if first == 0 else 1 - s for s in sides]  # piece 0 measures, piece 1 prepares
    olds = [a for a, _ in moves]
    news = [b for _, b in moves]
    for a, b in moves:
        used = [
            j
            for j, inst in enumerate(circuit.data)
            if j not in crossing and {a, b} & {circuit.find_bit(q).index for q in inst.qubits}
        ]
        at = crossing[moves.index((a, b))]
        if any(j > at and a in _qubits(circuit, j) for j in used) or any(
            j < at and b in _qubits(circuit, j) for j in used
        ):
            raise PlanningError("A cut wire is used after it is measured or before it is prepared.")
    n = len(moves)
    d = 2**n
    local = [
        [q for q in range(circuit.num_qubits) if sides[q] == s and q not in (olds if s == 0 else ())] for s in (0, 1)
    ]
    variants: list[list[_Variant]] = []
    for s in (0, 1):
        plan = [(b, 0) for b in range(d + 1)] if s == 0 else [(b, k) for b in range(d + 1) for k in range(d)]
        variants.append([
            ((basis, k), (d - 1.0 if basis == d else 1.0) / (1.0 if s == 0 else d),
             functools.partial(_wire_side, circuit, sides, s, crossing, olds, news, basis, k, body_only=body_only))
            for basis, k in plan
        ])  # fmt: skip
    return _assemble("wires", n, circuit, local, outputs, paulis, variants, (n, 0))


def _name(op: Any) -> str:
    """An operation's name; a wire cut of ``cut_wires`` (a QPD gate labelled ``cut_move``) is ``cut_move``."""
    return _MOVE if getattr(op, "label", None) == _MOVE else str(op.name)


def _qubits(circuit: QuantumCircuit, j: int) -> set[int]:
    return {circuit.find_bit(q).index for q in circuit.data[j].qubits}


def _wire_side(
    circuit: QuantumCircuit,
    sides: list[int],
    side: int,
    crossing: list[int],
    olds: list[int],
    news: list[int],
    basis: int,
    k: int,
    measured: Sequence[int],
    group: PauliList | None,
    *,
    body_only: bool,
) -> QuantumCircuit:
    """The measuring piece (0): its gates, then the cut wires rotated from ``basis`` and measured
    into the message register. The preparing piece (1): the cut wires prepared in ``(basis, k)``,
    then its gates."""
    n = len(crossing)
    local = [q for q in range(circuit.num_qubits) if sides[q] == side]
    position = {q: i for i, q in enumerate(local)}
    data = QuantumRegister(len(local), "q")
    out = ClassicalRegister(len(measured), "out")
    regs: list[Any] = [data, out]
    msg = ClassicalRegister(n, "msg") if side == 0 else None
    if msg is not None:
        regs.append(msg)
    qc = QuantumCircuit(*regs, name=f"jointwire{side}_{basis}_{k}")
    if side == 1:
        _prepare(qc, [data[position[b]] for b in news], basis, k)
    for i, inst in enumerate(circuit.data):
        if i in crossing:
            continue
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        if sides[qubits[0]] == side:
            qc.append(inst.operation, [data[position[q]] for q in qubits])
    if side == 0:
        _unprepare(qc, [data[position[a]] for a in olds], basis)
    if not body_only:
        _measure_outputs(qc, [data[position[q]] for q in measured], out, group)
    if msg is not None:
        for i, a in enumerate(olds):
            qc.measure(data[position[a]], msg[i])
    return qc


# -- combining the pieces' estimates --------------------------------------------------------------


def _pairings(problem: JointProblem) -> list[tuple[int, int, int, int, float]]:
    """The coefficient table as ``(A circuit, A message, B circuit, B message, c)``, ``-1`` standing
    for "any message" (a piece without messages has only ``0``). Observable groups are not in it:
    each group pairs with its own."""
    n, d = problem.n, 2**problem.n
    if problem.kind == "gates":
        _, c = _bell_coefficients(n)
        out = []
        for p, q in zip(*np.nonzero(c), strict=True):
            for v in range(d):
                for w in range(d):
                    out.append((p * d + v, w, q * d + w, v, float(c[p, q])))
        return out
    out = []
    for b in range(d + 1):
        for k in range(d):
            prep = b * d + k
            if b < d:
                out.append((b, k, prep, 0, 1.0))
            else:  # -(d - 1) F = sum_j (a_comp[j] - a_comp[any]) b_j
                out.append((b, k, prep, 0, 1.0))
                out.append((b, -1, prep, 0, -1.0))
    return out


@dataclass(frozen=True)
class _Read:
    """One circuit's counts: distinct keys, their output part and message part, and the tallies."""

    outputs: np.ndarray
    messages: np.ndarray
    tallies: np.ndarray  # (rows, keys): observed, then bootstrap replicates


def _read(
    side: _Side, circuit: QuantumCircuit, counts: Mapping[str, float], rows: int, rng: np.random.Generator | None
) -> _Read:
    keys = sorted(counts)
    width = circuit.num_clbits
    bits = outcome_bits(keys, width)
    m = len(side.outputs)
    outputs = bits[:, :m] @ (1 << np.arange(m, dtype=np.int64))  # the output register's clbits come first
    messages = bits[:, m:] @ (1 << np.arange(width - m, dtype=np.int64))
    observed = np.array([counts[k] for k in keys], dtype=float)
    if not observed.sum() > 0:
        raise ValueError("A subexperiment has no shots.")
    if rows > 1 and rng is not None:
        replicates = rng.multinomial(round(observed.sum()), observed / observed.sum(), size=rows - 1)
        tallies = np.vstack([observed[None, :], replicates])
    else:
        tallies = observed[None, :]
    return _Read(outputs, messages, tallies)


def _pauli_signs(group: PauliList, j: int, outputs: np.ndarray) -> np.ndarray:
    """The +-1 value of Pauli ``j`` of ``group`` on each outcome, measured in the group's basis:
    the parity of the outcome's bits where the Pauli is not the identity."""
    mask = sum(1 << b for b in range(group.num_qubits) if group.x[j, b] or group.z[j, b])
    return 1.0 - 2.0 * (np.bitwise_count(np.asarray(outputs, dtype=np.int64) & mask) % 2)


def reconstruct_joint_sparse(
    problem: JointProblem, raw: Sequence[Mapping[str, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """The unbiased quasi-distribution over the original qubits from every circuit's counts
    (``raw[i]``: circuit ``i`` of :attr:`JointProblem.circuits`, flat keys).

    Returns:
        ``(keys, values)``: outcomes as uint64 (original qubit ``k`` at bit ``k``) over every
        combination of the outcomes the two pieces gave, and their quasi-probabilities.

    Raises:
        DistributionTooLargeError: Past the limits of
            :func:`~network.cutting.decomposition.check_support`.
    """
    factors: list[np.ndarray] = []
    spreads: list[np.ndarray] = []
    offset = 0
    for side in problem.sides:
        reads = [_read(side, circ, raw[offset + i], 1, None) for i, circ in enumerate(side.circuits)]
        offset += len(side.circuits)
        support = np.unique(np.concatenate([r.outputs for r in reads]))
        d = 2**side.messages
        table = np.zeros((len(reads), d + 1, support.size))
        for i, r in enumerate(reads):
            freq = r.tallies[0] / r.tallies[0].sum()
            cols = np.searchsorted(support, r.outputs)
            np.add.at(table[i, d], cols, freq)
            np.add.at(table[i], (r.messages, cols), freq)
        factors.append(table)
        spread = np.zeros(support.size, dtype=np.uint64)
        for b, q in enumerate(side.outputs):
            spread |= ((support >> b) & 1).astype(np.uint64) << np.uint64(q)
        spreads.append(spread)
    first, second = factors
    from network.cutting.decomposition import check_support  # it imports this module

    # one outer product per condition of piece 1 (circuit and message)
    check_support(problem.num_qubits, [first.shape[2], second.shape[2]], second.shape[0] * second.shape[1],
                  "paired runs")  # fmt: skip
    da, db = first.shape[1] - 1, second.shape[1] - 1
    # sum_j (sum_i C_ij a_i) (x) b_j, grouped by the B condition
    mixed = np.zeros((second.shape[0], db + 1, first.shape[2]))
    for ai, am, bi, bm, c in _pairings(problem):
        mixed[bi, bm] += c * first[ai, am if am >= 0 else da]
    values = np.einsum("jmx,jmy->xy", mixed, second).reshape(-1)
    keys = (spreads[0][:, None] | spreads[1][None, :]).reshape(-1)
    nonzero = values != 0
    return keys[nonzero], values[nonzero]


def estimate_joint_expectations(
    problem: JointProblem, raw: Sequence[Mapping[str, float]], *, seed: int, bootstrap: int
) -> np.ndarray:
    """Every Pauli's value (``problem.paulis``), shape ``(1 + bootstrap, paulis)``: row 0 from the
    counts as observed, then one row per bootstrap replicate (every circuit's counts resampled,
    multinomially, from its observed frequencies; seeded)."""
    assert problem.paulis is not None
    rows = 1 + bootstrap
    rng = np.random.default_rng(seed)
    per_side: list[np.ndarray] = []  # (circuits, rows, messages + 1, local paulis of the circuit's group)
    offset = 0
    for side in problem.sides:
        width = max((len(g) for g in side.groups), default=1)
        d = 2**side.messages
        table = np.zeros((len(side.circuits), rows, d + 1, width))
        for i, circ in enumerate(side.circuits):
            r = _read(side, circ, raw[offset + i], rows, rng)
            group = side.groups[side.keys[i][2]]
            freq = r.tallies / r.tallies.sum(axis=1, keepdims=True)
            for j in range(len(group)):
                weighted = freq * _pauli_signs(group, j, r.outputs)[None, :]
                table[i, :, d, j] = weighted.sum(axis=1)
                for m in range(d):
                    table[i, :, m, j] = weighted[:, r.messages == m].sum(axis=1)
        offset += len(side.circuits)
        per_side.append(table)
    a, b = per_side
    da, db = a.shape[2] - 1, b.shape[2] - 1
    groups_a, groups_b = max(len(problem.sides[0].groups), 1), max(len(problem.sides[1].groups), 1)
    table = np.array(_pairings(problem))  # (pairings, 5): A circuit, A message, B circuit, B message, c
    ai, bi = table[:, 0].astype(int), table[:, 2].astype(int)
    am = np.where(table[:, 1] >= 0, table[:, 1], da).astype(int)
    bm = np.where(table[:, 3] >= 0, table[:, 3], db).astype(int)
    values = np.zeros((rows, len(problem.paulis)))
    for t, ((ga, ja), (gb, jb)) in enumerate(problem._where):
        x = a[ai * groups_a + ga, :, am, ja]  # (pairings, rows)
        y = b[bi * groups_b + gb, :, bm, jb]
        values[:, t] = table[:, 4] @ (x * y)
    return values


# -- verification ---------------------------------------------------------------------------------


def exact_counts(circuit: QuantumCircuit) -> dict[str, float]:
    """The exact outcome probabilities of a circuit measured at its end (every joint subexperiment
    is), keyed like counts (flat keys, clbit 0 rightmost): for checks and error predictions."""
    from qiskit.quantum_info import Statevector

    probabilities = Statevector(circuit.remove_final_measurements(inplace=False)).probabilities()
    measured = {
        circuit.find_bit(inst.clbits[0]).index: circuit.find_bit(inst.qubits[0]).index
        for inst in circuit.data
        if inst.operation.name == "measure"
    }
    width = circuit.num_clbits
    out: dict[str, float] = {}
    for index in np.flatnonzero(probabilities > 1e-15):
        key = "".join(str((index >> measured[j]) & 1) if j in measured else "0" for j in reversed(range(width)))
        out[key] = out.get(key, 0.0) + float(probabilities[index])
    return out


def exact_standard_error(problem: JointProblem, shots: Sequence[int], pauli: int = 0) -> tuple[float, float]:
    """The exact value of Pauli ``pauli`` and the exact standard error of its estimate when circuit
    ``i`` runs ``shots[i]`` shots, from every circuit's exact outcome probabilities.

    The estimate is ``X^T C Y`` with ``X`` and ``Y`` the two pieces' message-resolved means
    (independent, each circuit's entries multinomial): ``Var = tr(C^T S_X C S_Y) - (mu_X^T C mu_Y)^2``
    with ``S = Cov + mu mu^T``.
    """
    assert problem.paulis is not None
    moments = []
    offset = 0
    for s, side in enumerate(problem.sides):
        group_of, j = problem._where[pauli][s]
        d = 2**side.messages
        groups = max(len(side.groups), 1)
        mean = np.zeros((len(side.circuits) // groups, d + 1))
        cov = np.zeros((len(side.circuits) // groups, d + 1, d + 1))
        for i, circ in enumerate(side.circuits):
            if i % groups != group_of:
                continue
            read = _read(side, circ, exact_counts(circ), 1, None)
            p = read.tallies[0] / read.tallies[0].sum()
            sign = _pauli_signs(side.groups[group_of], j, read.outputs)
            mu = np.zeros(d + 1)
            mass = np.zeros(d)
            np.add.at(mu, read.messages, p * sign)
            np.add.at(mass, read.messages, p)
            mu[d] = float(np.sum(p * sign))
            second = np.diag(np.append(mass, 1.0))
            second[:d, d] = second[d, :d] = mass
            row = i // groups
            mean[row] = mu
            cov[row] = (second - np.outer(mu, mu)) / shots[offset + i]
        offset += len(side.circuits)
        moments.append((mean, cov))
    (mean_a, cov_a), (mean_b, cov_b) = moments
    da, db = mean_a.shape[1], mean_b.shape[1]
    c = np.zeros((mean_a.size, mean_b.size))
    for ai, am, bi, bm, coefficient in _pairings(problem):
        c[ai * da + (am if am >= 0 else da - 1), bi * db + (bm if bm >= 0 else db - 1)] += coefficient
    mu_a, mu_b = mean_a.reshape(-1), mean_b.reshape(-1)
    s_a = _block_diagonal(cov_a) + np.outer(mu_a, mu_a)
    s_b = _block_diagonal(cov_b) + np.outer(mu_b, mu_b)
    value = float(mu_a @ c @ mu_b)
    variance = float(np.trace(c.T @ s_a @ c @ s_b)) - value**2
    return value, math.sqrt(max(variance, 0.0))


def _block_diagonal(blocks: np.ndarray) -> np.ndarray:
    n, k, _ = blocks.shape
    out = np.zeros((n * k, n * k))
    for i in range(n):
        out[i * k : (i + 1) * k, i * k : (i + 1) * k] = blocks[i]
    return out


def _side_kraus(circ: QuantumCircuit, data: int, extra: int, message_qubits: Sequence[int]) -> dict[int, np.ndarray]:
    """Per message value ``u``: ``(I (x) <u|) U (I (x) |0>)`` of a body circuit whose first
    ``data`` qubits are the input and whose last ``extra`` start in ``|0>``; the message is read
    off ``message_qubits`` (the rest of the extra qubits must end in ``|0>`` or be data)."""
    from qiskit.quantum_info import Operator

    unitary = Operator(circ.remove_final_measurements(inplace=False)).data
    total = data + extra
    dim = 2**total
    out: dict[int, np.ndarray] = {}
    inputs = np.arange(2**data)  # extra qubits in |0>: the high bits are 0
    for u in range(2 ** len(message_qubits)):
        rows = np.array(
            [r for r in range(dim) if all(((r >> q) & 1) == ((u >> i) & 1) for i, q in enumerate(message_qubits))]
        )
        out[u] = unitary[np.ix_(rows, inputs)]
    return out


def verify_joint(kind: JointKind, n: int, gate: Any = None) -> tuple[float, float]:
    """Build the joint decomposition of ``n`` cuts from the circuits that run and compare the
    channel its terms implement, summed with their coefficients, with the cut operation.

    Args:
        kind: ``"wires"`` or ``"gates"``.
        n: Cuts.
        gate: Gate cuts: the two-qubit controlled gate (a qiskit ``Gate``; default CX).

    Returns:
        ``(max |Choi difference|, gamma)``: the largest entry of the difference of the Choi
        matrices (the cut operation: the identity on ``n`` wires, or ``n`` copies of the gate), and
        the decomposition's gamma as channels.
    """
    if kind == "wires":
        from qiskit_addon_cutting import cut_wires
        from qiskit_addon_cutting.instructions import CutWire

        qc = QuantumCircuit(n)
        for q in range(n):
            qc.id(q)
            qc.append(CutWire(), [q])
            qc.id(q)
        expanded = cut_wires(qc)
        moves = [inst for inst in expanded.data if _name(inst.operation) == _MOVE]
        olds = [expanded.find_bit(m.qubits[0]).index for m in moves]
        news = [expanded.find_bit(m.qubits[1]).index for m in moves]
        sides = [0 if q in olds else 1 for q in range(expanded.num_qubits)]
        problem = build_joint_problem(expanded, sides, body_only=True)
        measurer = problem.sides[0]
        # piece 0's data: the old wires (its only qubits); piece 1's: the new wires
        povm: list[np.ndarray] = []
        for circ in measurer.circuits:
            kraus = _side_kraus(circ, n, 0, list(range(n)))
            povm.append(np.stack([kraus[u][0] for u in range(2**n)]))  # rows <u| U
        states = [_side_kraus(circ, 0, n, [])[0][:, 0] for circ in problem.sides[1].circuits]
        d = 2**n
        choi = np.zeros((d * d, d * d), dtype=complex)
        for ai, am, bi, _, c in _pairings(problem):
            rows = povm[ai] if am < 0 else povm[ai][am : am + 1]
            effect = rows.conj().T @ rows  # E = sum_u U^dagger |u><u| U
            sigma = np.outer(states[bi], states[bi].conj())
            choi += c * np.kron(effect.T, sigma)  # Choi of rho -> tr(E rho) sigma, input first
        del news
        target = np.zeros((d * d, d * d), dtype=complex)
        phi = np.eye(d).reshape(-1)
        target += np.outer(phi, phi)
        return float(np.abs(choi - target).max()), _published_gamma_of_table("wires", n)
    from qiskit.circuit.library import CXGate

    qc = QuantumCircuit(2 * n)
    for i in range(n):
        qc.append(gate if gate is not None else CXGate(), [i, n + i] if i % 2 == 0 else [n + i, i])
    sides = [0] * n + [1] * n
    problem = build_joint_problem(qc, sides, body_only=True)
    d = 2**n
    pieces = [[_side_kraus(circ, n, n, [n + i for i in range(n)]) for circ in side.circuits] for side in problem.sides]
    choi = np.zeros((d**4, d**4), dtype=complex)
    for ai, am, bi, bm, c in _pairings(problem):
        ka = pieces[0][ai][am]
        kb = pieces[1][bi][bm]
        k = np.kron(kb, ka)  # qubit order: piece 1's data are the high qubits
        v = k.reshape(-1, order="F")  # vec(K): Choi of rho -> K rho K^dagger
        choi += c * np.outer(v, v.conj())
    from qiskit.quantum_info import Operator

    u = Operator(qc).data
    v = u.reshape(-1, order="F")
    return float(np.abs(choi - np.outer(v, v.conj())).max()), _published_gamma_of_table("gates", n)


# -- where a cut circuit can be cut jointly -------------------------------------------------------


@dataclass(frozen=True)
class JointLayout:
    """A cut circuit whose cuts can be decomposed jointly.

    Attributes:
        kind: ``"gates"`` or ``"wires"``.
        n: Its cuts.
        circuit: What :func:`build_joint_problem` takes: the uncut gates back in place (gate cuts),
            or ``cut_wires``' expansion (wire cuts).
        sides: The piece of each of its qubits; for wires piece 0 measures (holds the wires before
            their cuts).
        widths: Width of each piece (``"0"``, ``"1"``) as it runs, ancillas included.
        operations: Operations per piece as it runs, ``(all, multi-qubit)``.
    """

    kind: JointKind
    n: int
    circuit: QuantumCircuit
    sides: tuple[int, ...]
    widths: dict[str, int]
    operations: dict[str, tuple[int, int]]

    @property
    def circuits_per_piece(self) -> tuple[int, int]:
        return joint_subexperiments(self.kind, self.n)

    def outputs(self, original: QuantumCircuit) -> dict[int, int]:
        """Distribution mode: the original qubit whose final state each qubit of :attr:`circuit` holds."""
        if self.kind == "gates":
            return {q: q for q in range(self.circuit.num_qubits)}
        from qiskit_addon_cutting import expand_observables

        n = original.num_qubits
        singles = PauliList(["I" * (n - 1 - i) + "Z" + "I" * i for i in range(n)])
        expanded = expand_observables(singles, original, self.circuit)
        return {int(np.flatnonzero(row.z)[0]): i for i, row in enumerate(expanded)}

    def paulis(self, paulis: PauliList, original: QuantumCircuit) -> PauliList:
        """Expectation mode: ``paulis`` (over the original qubits) over the qubits of :attr:`circuit`."""
        if self.kind == "gates":
            return paulis
        from qiskit_addon_cutting import expand_observables

        return PauliList(expand_observables(paulis, original, self.circuit))


def joint_layout(cut_circuit: QuantumCircuit, circuit: QuantumCircuit | None = None) -> JointLayout | None:
    """The joint decomposition a cut circuit (``find_cuts``' output: ``TwoQubitQPDGate`` and
    ``CutWire`` instructions) admits, or ``None``: it needs two pieces, at most
    :data:`MAX_JOINT_CUTS` cuts, all wire cuts from one piece to the other or all gate cuts of
    :data:`JOINT_GATES`, whose operations are read off ``circuit`` (the uncut circuit; without it,
    gate cuts are never joint)."""
    from qiskit.circuit import CircuitInstruction
    from qiskit.circuit.library import CRZGate, RZGate
    from qiskit_addon_cutting import cut_wires
    from qiskit_addon_cutting.qpd import TwoQubitQPDGate

    gates = [i for i, inst in enumerate(cut_circuit.data) if isinstance(inst.operation, TwoQubitQPDGate)]
    wires = [i for i, inst in enumerate(cut_circuit.data) if inst.operation.name == "cut_wire"]
    if bool(gates) == bool(wires) or len(gates) + len(wires) > MAX_JOINT_CUTS:
        return None
    if gates:
        if circuit is None or len(circuit.data) != len(cut_circuit.data):
            return None
        if any(
            circuit.data[i].operation.name not in JOINT_GATES or circuit.data[i].qubits != cut_circuit.data[i].qubits
            for i in gates
        ):
            return None
        rebuilt = cut_circuit.copy_empty_like()
        crossing = []
        for i, inst in enumerate(circuit.data):
            op = inst.operation
            if i in gates and op.name == "rzz":  # rz(theta) on the second qubit, then crz(-2 theta)
                theta = op.params[0]
                rebuilt._append(CircuitInstruction(RZGate(theta), (inst.qubits[1],), ()))
                op = CRZGate(-2 * theta)
            if i in gates:
                crossing.append(len(rebuilt.data))
            rebuilt._append(CircuitInstruction(op, inst.qubits, inst.clbits))
        circuit = rebuilt
        kind: JointKind = "gates"
    else:
        circuit = cut_wires(cut_circuit)
        kind = "wires"
        crossing = [i for i, inst in enumerate(circuit.data) if _name(inst.operation) == _MOVE]
    # pieces: connected components once the cut operations are removed
    parent = list(range(circuit.num_qubits))

    def root(q: int) -> int:
        while parent[q] != q:
            parent[q] = parent[parent[q]]
            q = parent[q]
        return q

    used: set[int] = set()
    for i, inst in enumerate(circuit.data):
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        used.update(qubits)
        if i not in crossing:
            for q in qubits[1:]:
                parent[root(q)] = root(qubits[0])
    roots = sorted({root(q) for q in used})
    if len(roots) != 2 or len(used) != circuit.num_qubits:
        return None
    sides = [roots.index(root(q)) for q in range(circuit.num_qubits)]
    if kind == "wires":
        first = {sides[circuit.find_bit(circuit.data[i].qubits[0]).index] for i in crossing}
        if len(first) != 1:
            return None
        if first == {1}:
            sides = [1 - s for s in sides]
    n = len(crossing)
    widths = {str(s): sides.count(s) + (n if kind == "gates" else 0) for s in (0, 1)}
    operations = {}
    for s in (0, 1):
        local = [
            inst
            for i, inst in enumerate(circuit.data)
            if i not in crossing and sides[circuit.find_bit(inst.qubits[0]).index] == s
        ]
        multi = sum(1 for inst in local if len(inst.qubits) > 1)
        gadget = 4 * n if kind == "gates" else 3 * n  # preparation, gate half, correction, readout
        operations[str(s)] = (len(local) + gadget + widths[str(s)], multi + 2 * n)
    return JointLayout(kind, n, circuit, tuple(sides), widths, operations)
