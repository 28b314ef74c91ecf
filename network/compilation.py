"""The compile stage: lower circuits to what the planner and the cutter reason about, and translate
them for each node. Pure: no I/O; results are cached per distinct circuit and target.

Three transformations, each keeping the classical bits (registers, order, which measurement writes
which bit) exactly:

* :func:`lower_circuit`: every operation becomes a standard Qiskit gate on at most two qubits
  (``cx``, ``cp``, ``rzz``, ``swap``, ``u``...), a measurement, a reset, a barrier, a delay or
  classical control flow whose bodies are lowered too. Composite gates (``QFTGate``, ``MCXGate``,
  ``UnitaryGate``, OpenQASM ``gate`` definitions, ``ctrl @`` modifiers) are expanded through their
  definitions by Qiskit's own transpiler (high-level synthesis, unitary synthesis, basis
  translation) into the widest standard basis, so a two-qubit gate the cutter prices cheaply
  (``cp(0.1)``, ``rzz``) is never rewritten into dearer CX gates. A gate with no definition
  (OpenQASM ``opaque``) is refused with :class:`~network.errors.CircuitCompileError` naming it.
* :func:`translate`: a lowered circuit in the gates one node executes (Aer's instruction set for
  its method, a REST node's declared ``basis_gates``, a cloud target's gates). A circuit already in
  them is returned as it is.
* :func:`unitary_form`: the circuit as a unitary on its qubits plus ancillas, measurements deferred
  (the principle of deferred measurement): a mid-circuit measurement becomes a CX onto a fresh
  ancilla, a reset a swap with a fresh ancilla, a classically controlled gate a quantum-controlled
  one. It has the same joint distribution over the classical bits, and the same reduced state on
  the original qubits, so the cutter and the distribution reconstruction can take dynamic circuits.

Inputs are bounded before anything big is built: :data:`MAX_CIRCUIT_QUBITS` qubits and
:data:`MAX_LOWERED_OPERATIONS` operations after expansion.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from qiskit import QuantumCircuit
from qiskit.circuit import ClassicalRegister, Clbit, Gate, Instruction, Operation

from network.errors import CircuitCompileError, library_errors

__all__ = [
    "LOWERED_GATES",
    "DIRECTIVES",
    "MAX_CIRCUIT_QUBITS",
    "MAX_LOWERED_OPERATIONS",
    "UnitaryForm",
    "is_lowered",
    "lower_circuit",
    "translate",
    "aer_basis",
    "unitary_form",
    "with_terminal_measurements",
    "needs_deferral",
    "opaque_operations",
    "expanded_size",
]

#: Widest circuit the QVM accepts at all (OpenQASM declarations are checked before parsing).
MAX_CIRCUIT_QUBITS = 100_000
#: Most operations a circuit may expand to when its composite gates are lowered.
MAX_LOWERED_OPERATIONS = 5_000_000
#: Non-gate instructions every stage understands.
DIRECTIVES = frozenset({"measure", "reset", "barrier", "delay"})
_CONTROL_FLOW = frozenset({"if_else", "for_loop", "while_loop", "switch_case", "box", "break_loop", "continue_loop"})
_CACHE_SIZE = 256


@lru_cache(maxsize=1)
def _standard_gates() -> dict[str, int]:
    """Standard gate names and their widths."""
    from qiskit.circuit.library import get_standard_gate_name_mapping

    return {
        name: gate.num_qubits
        for name, gate in get_standard_gate_name_mapping().items()
        if name not in DIRECTIVES and name != "global_phase"
    }


@lru_cache(maxsize=1)
def _directive_types() -> tuple[type, ...]:
    from qiskit.circuit import Barrier, Delay, Measure, Reset

    return (Barrier, Delay, Measure, Reset)


def _lowered_gates() -> frozenset[str]:
    return frozenset(name for name, width in _standard_gates().items() if width <= 2)


#: Standard gates on at most two qubits: every gate of a lowered circuit is one of them.
LOWERED_GATES: frozenset[str] = _lowered_gates()


class _Cache:
    """A small thread-safe LRU of compiled circuits, keyed by circuit hash and target."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self.size = size
        self.items: OrderedDict[tuple[Any, ...], QuantumCircuit] = OrderedDict()
        self.lock = threading.Lock()
        self.hits = self.misses = 0

    def get_or_make(self, key: tuple[Any, ...], make: Callable[[], QuantumCircuit]) -> QuantumCircuit:
        with self.lock:
            hit = self.items.get(key)
            if hit is not None:
                self.items.move_to_end(key)
                self.hits += 1
                return hit
            self.misses += 1
        made = make()
        with self.lock:
            self.items[key] = made
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return made

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.hits = self.misses = 0


_LOWERED = _Cache()
_TRANSLATED = _Cache()


def _in_gates(circuit: QuantumCircuit, gates: Collection[str]) -> bool:
    """True when every instruction, control-flow bodies included, is a standard gate named in
    ``gates``, a directive, or control flow. A non-standard operation that merely shares a
    standard name (an OpenQASM ``gate unitary a { x a; }``) never passes."""
    for inst in circuit.data:
        name = inst.name
        if inst.is_standard_gate():  # no Python gate object is built for this
            if name not in gates:
                return False
            continue
        if name in DIRECTIVES:
            if isinstance(inst.operation, _directive_types()):
                continue
            return False
        if inst.is_control_flow():
            if not all(_in_gates(block, gates) for block in inst.operation.blocks):
                return False
            continue
        return False
    return True


def is_lowered(circuit: QuantumCircuit) -> bool:
    """True when ``circuit`` holds only standard gates on at most two qubits, directives and
    control flow over such bodies (the planner's and the cutter's input)."""
    return _in_gates(circuit, LOWERED_GATES)


def opaque_operations(circuit: QuantumCircuit) -> list[str]:
    """Names of operations that cannot be expanded: no definition, no matrix, not standard."""
    from qiskit.circuit import AnnotatedOperation, ControlFlowOp

    found: list[str] = []
    for inst in circuit.data:
        op = inst.operation
        if inst.is_standard_gate() or (inst.name in DIRECTIVES and isinstance(op, Instruction)):
            continue
        if isinstance(op, ControlFlowOp):
            for block in op.blocks:
                found += [n for n in opaque_operations(block) if n not in found]
            continue
        if isinstance(op, AnnotatedOperation):
            op = op.base_op
            if not isinstance(op, Instruction):
                continue
        if isinstance(op, Instruction) and op.definition is None and not _has_matrix(op) and op.name not in found:
            found.append(op.name)
    return found


def _has_matrix(op: Instruction) -> bool:
    """Whether the transpiler can synthesize ``op`` from a matrix (a Gate subclass may define
    ``to_matrix`` and still have none)."""
    if not hasattr(op, "to_matrix"):
        return False
    if op.name in _standard_gates():
        return True
    try:
        op.to_matrix()
    except Exception:
        return False
    return True


def _expand_impostors(circuit: QuantumCircuit, depth: int = 0) -> QuantumCircuit:
    """``circuit`` with every non-standard operation that carries a standard gate's name (an
    OpenQASM ``gate r(a, b) q { ... }`` as Qiskit's exporter writes it, ``gate unitary a { x a; }``)
    replaced by its definition: the transpiler would take such a gate for the standard one and
    keep it as it is."""
    if depth > 32:
        raise CircuitCompileError("Custom gate definitions nest more than 32 levels deep.")
    names = _standard_gates()
    if not any(
        (
            (inst.name in names or inst.name in DIRECTIVES or inst.name == "unitary")
            and not inst.is_standard_gate()
            and not isinstance(inst.operation, _directive_types())
        )
        or inst.is_control_flow()
        for inst in circuit.data
    ):
        return circuit
    from qiskit.circuit import CircuitInstruction, ControlFlowOp

    out = circuit.copy_empty_like()
    for inst in circuit.data:
        op = inst.operation
        if isinstance(op, ControlFlowOp):
            blocks = [_expand_impostors(block, depth + 1) for block in op.blocks]
            out._append(CircuitInstruction(op.replace_blocks(blocks), inst.qubits, inst.clbits))
            continue
        clash = inst.name in names or inst.name in DIRECTIVES or inst.name == "unitary"
        real = inst.is_standard_gate() or isinstance(op, _directive_types()) or _is_matrix_unitary(op)
        if not clash or real:
            out._append(inst)
            continue
        definition = getattr(op, "definition", None)
        if definition is None:
            raise CircuitCompileError(
                f"The circuit uses a gate named {inst.name!r} that is not Qiskit's {inst.name!r} and has no "
                "definition, so it cannot be simulated or cut."
            )
        expanded = _expand_impostors(definition, depth + 1)
        out.compose(expanded, qubits=inst.qubits, clbits=inst.clbits or None, inplace=True)
    return out


def _is_matrix_unitary(op: Any) -> bool:
    from qiskit.circuit.library import UnitaryGate

    return isinstance(op, UnitaryGate)


def expanded_size(circuit: QuantumCircuit, cap: int = MAX_LOWERED_OPERATIONS) -> int:
    """About how many operations ``circuit`` has once every definition is expanded, counted
    without expanding anything twice: a gate's definition is sized once per gate name and width, so
    nested definitions that double at every level (``gate g1 a { g0 a; g0 a; }`` ...) cost time
    linear in their text. Stops counting past ``cap``. A ``UnitaryGate`` counts ``4**n``."""
    return _expanded_size(circuit, cap, {}, 0)


def _expanded_size(circuit: QuantumCircuit, cap: int, memo: dict[tuple[Any, ...], int], depth: int) -> int:
    from qiskit.circuit import AnnotatedOperation, ControlFlowOp
    from qiskit.circuit.library import UnitaryGate

    if depth > 64:
        raise CircuitCompileError("Gate definitions nest more than 64 levels deep.")
    total = 0
    for inst in circuit.data:
        if inst.is_standard_gate() or inst.name in DIRECTIVES:
            total += 1
        else:
            op = inst.operation
            if isinstance(op, ControlFlowOp):
                total += 1 + sum(_expanded_size(block, cap, memo, depth + 1) for block in op.blocks)
            elif isinstance(op, UnitaryGate):
                total += 4**op.num_qubits
            else:
                key = (op.name, op.num_qubits, type(op).__name__)
                if key not in memo:
                    base = op.base_op if isinstance(op, AnnotatedOperation) else op
                    definition = getattr(base, "definition", None)
                    memo[key] = 1 if definition is None else max(1, _expanded_size(definition, cap, memo, depth + 1))
                total += memo[key]
        if total > cap:
            return total
    return total


def _transpile(circuit: QuantumCircuit, basis: Iterable[str], what: str) -> QuantumCircuit:
    from qiskit import transpile

    with library_errors(CircuitCompileError, "Reading the circuit's gate definitions failed"):
        size = expanded_size(circuit)
    if size > MAX_LOWERED_OPERATIONS:
        raise CircuitCompileError(
            f"The circuit's gate definitions expand to more than {MAX_LOWERED_OPERATIONS:,} operations "
            f"(at least {size:,}); nothing was expanded."
        )
    circuit = _expand_impostors(circuit)

    names = sorted(set(basis) & set(_standard_gates()) | {"measure", "reset", "delay"})
    with library_errors(CircuitCompileError, what):
        out = transpile(circuit, basis_gates=names, optimization_level=0, seed_transpiler=0)
    out.name = circuit.name
    out.metadata = dict(circuit.metadata or {})
    return out


def _check_size(circuit: QuantumCircuit) -> None:
    if circuit.num_qubits > MAX_CIRCUIT_QUBITS:
        raise CircuitCompileError(
            f"The circuit has {circuit.num_qubits} qubits, above the limit of {MAX_CIRCUIT_QUBITS}."
        )


def lower_circuit(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit`` with every gate standard and on at most two qubits (see the module docstring).

    A circuit that is already lowered is returned as it is; others are expanded once per distinct
    circuit (an LRU cache keyed by the circuit's hash).

    Raises:
        CircuitCompileError: An operation has no definition (OpenQASM ``opaque``), the expansion
            fails or grows past :data:`MAX_LOWERED_OPERATIONS`; the message names the gate.
    """
    if is_lowered(circuit):
        return circuit
    _check_size(circuit)
    from network.circuits import analyze_circuit

    key = (analyze_circuit(circuit).circuit_hash,)
    return _LOWERED.get_or_make(key, lambda: _lower(circuit))


def _lower(circuit: QuantumCircuit) -> QuantumCircuit:
    opaque = opaque_operations(circuit)
    if opaque:
        raise CircuitCompileError(
            f"The circuit uses {', '.join(repr(n) for n in opaque)}, which has no definition (an OpenQASM "
            "'opaque' gate or a Qiskit Instruction without one), so it cannot be simulated or cut. Define it "
            "(OpenQASM 'gate NAME ... { ... }', or a definition / matrix on the Qiskit object)."
        )
    out = _transpile(circuit, LOWERED_GATES, "Lowering the circuit's composite gates failed")
    size = _size(out)
    if size > MAX_LOWERED_OPERATIONS:
        raise CircuitCompileError(
            f"The circuit expands to {size:,} operations once its composite gates are lowered, above the limit "
            f"of {MAX_LOWERED_OPERATIONS:,}."
        )
    if not is_lowered(out):
        left = sorted({i.name for i in out.data if not (i.is_standard_gate() or i.name in DIRECTIVES)})
        raise CircuitCompileError(f"Lowering left operations the planner cannot use: {', '.join(left)}.")
    return out


def _size(circuit: QuantumCircuit) -> int:
    total = 0
    for inst in circuit.data:
        total += 1
        if inst.is_control_flow():
            total += sum(_size(block) for block in inst.operation.blocks)
    return total


def translate(circuit: QuantumCircuit, basis_gates: Collection[str], *, target: str = "the node") -> QuantumCircuit:
    """``circuit`` in the gates of ``basis_gates`` (standard Qiskit names), for one node.

    Already in them: returned as it is. Otherwise Qiskit's transpiler rewrites it without a
    coupling map (qubit indices and classical bits kept), once per distinct circuit and basis.

    Raises:
        CircuitCompileError: The basis cannot express the circuit, or an operation has no
            definition; the message names ``target`` and the basis.
    """
    gates = frozenset(basis_gates)
    if _in_gates(circuit, gates):
        return circuit
    _check_size(circuit)
    from network.circuits import analyze_circuit

    key = (analyze_circuit(circuit).circuit_hash, tuple(sorted(gates)))

    def make() -> QuantumCircuit:
        opaque = opaque_operations(circuit)
        if opaque:
            raise CircuitCompileError(
                f"Cannot translate {', '.join(repr(n) for n in opaque)} for {target}: no definition to expand."
            )
        out = _transpile(
            circuit, gates, f"Cannot translate the circuit to the gates of {target} ({', '.join(sorted(gates))})"
        )
        if not _in_gates(out, gates):
            left = sorted({i.name for i in out.data if i.name not in gates and i.name not in DIRECTIVES})
            raise CircuitCompileError(
                f"Cannot translate {', '.join(left)} to the gates of {target} ({', '.join(sorted(gates))})."
            )
        return out

    return _TRANSLATED.get_or_make(key, make)


@lru_cache(maxsize=8)
def aer_basis(method: str) -> frozenset[str]:
    """Standard gates Aer runs natively with ``method`` (``statevector``, ``matrix_product_state``)."""
    from qiskit_aer import AerSimulator

    with library_errors(CircuitCompileError, f"Aer does not know the method {method!r}"):
        names = AerSimulator(method=method).configuration().basis_gates
    return frozenset(names) & frozenset(_standard_gates())


# -- deferred measurement ------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitaryForm:
    """A circuit as a unitary, its measurements deferred (:func:`unitary_form`).

    Attributes:
        circuit: No classical bits and no measurements; the original qubits first (same
            indices), then the ancillas.
        clbit_sources: For each original classical bit, the qubit of ``circuit`` whose final
            Z value is that bit's final value, or ``None`` for a bit never written (always 0).
        num_qubits: Qubits of the original circuit.
        ancillas: Qubits added: one per deferred measurement and per reset, one per multi-bit
            ``if``/``else`` condition.
        deferred: Mid-circuit measurements deferred.
        resets: Resets replaced by swaps with fresh ancillas.
        conditions: Classically controlled blocks turned into quantum-controlled gates.
    """

    circuit: QuantumCircuit
    clbit_sources: tuple[int | None, ...]
    num_qubits: int
    ancillas: int = 0
    deferred: int = 0
    resets: int = 0
    conditions: int = 0

    @property
    def dynamic(self) -> bool:
        """True when the original circuit measured or reset mid-circuit or used classical control."""
        return bool(self.deferred or self.resets or self.conditions)


@dataclass
class _Flat:
    op: Operation
    qubits: tuple[int, ...]
    clbits: tuple[int, ...]
    #: For ``if_else``: the enclosing block's classical bits the condition may name -> clbit index.
    cond_map: dict[Clbit, int] | None = None


def unitary_form(
    circuit: QuantumCircuit, *, coherent_reads: bool = False, max_ancillas: int | None = None
) -> UnitaryForm:
    """Defer every measurement of ``circuit``: a unitary with the same outcome distribution.

    A measurement is deferred (a CX onto a fresh ancilla, which then holds the bit) when a later
    operation acts on its qubit, or, with ``coherent_reads``, when a later condition reads its bit
    (for expectation values: the measured qubit must then lose its coherence, as it would). Other
    measurements are dropped and their qubit holds the bit. A reset of a used qubit swaps it with
    a fresh ancilla. An ``if``/``else`` on bits or registers becomes its bodies' gates controlled on
    the qubits holding those bits; ``for`` loops are unrolled and boxes inlined.

    Args:
        circuit: Any circuit of gates, measurements, resets, barriers, delays and that control flow.
        coherent_reads: Defer measurements whose bit is read later even when their qubit is idle.
        max_ancillas: Refuse when more ancillas would be needed.

    Raises:
        CircuitCompileError: A ``while`` loop, ``switch``, classical expression or variable, a
            measurement or reset inside a conditional body, or more than ``max_ancillas`` ancillas.
    """
    nq = circuit.num_qubits
    flat = _flatten(circuit)
    mid = _mid_measurements(flat, coherent_reads)
    ops: list[tuple[Operation, tuple[int, ...]]] = []
    carrier: dict[int, int] = {}
    touched: set[int] = set()
    counter = {"ancillas": 0, "deferred": 0, "resets": 0, "conditions": 0}

    def ancilla() -> int:
        counter["ancillas"] += 1
        if max_ancillas is not None and counter["ancillas"] > max_ancillas:
            raise CircuitCompileError(
                f"Deferring the circuit's measurements needs more than {max_ancillas} ancilla qubit(s)."
            )
        return nq + counter["ancillas"] - 1

    from qiskit.circuit.library import CXGate, SwapGate

    for index, item in enumerate(flat):
        name = item.op.name
        if name in ("barrier", "delay"):
            continue
        if name == "measure":
            q, c = item.qubits[0], item.clbits[0]
            if index in mid:
                a = ancilla()
                ops.append((CXGate(), (q, a)))
                carrier[c] = a
                counter["deferred"] += 1
            else:
                carrier[c] = q
            continue
        if name == "reset":
            q = item.qubits[0]
            if q in touched:
                a = ancilla()
                ops.append((SwapGate(), (q, a)))
                counter["resets"] += 1
            continue
        if name == "if_else":
            _defer_condition(item, carrier, ops, ancilla, touched)
            counter["conditions"] += 1
            continue
        ops.append((item.op, item.qubits))
        touched.update(item.qubits)
    out = QuantumCircuit(nq + counter["ancillas"], name=circuit.name, global_phase=circuit.global_phase)
    qubits = out.qubits
    from qiskit.circuit import CircuitInstruction

    for op, qs in ops:
        out._append(CircuitInstruction(op, tuple(qubits[q] for q in qs), ()))
    return UnitaryForm(
        circuit=out,
        clbit_sources=tuple(carrier.get(j) for j in range(circuit.num_clbits)),
        num_qubits=nq,
        ancillas=counter["ancillas"],
        deferred=counter["deferred"],
        resets=counter["resets"],
        conditions=counter["conditions"],
    )


def _flatten(circuit: QuantumCircuit) -> list[_Flat]:
    """Top-level instructions with ``for`` loops unrolled and boxes inlined, bits as indices."""
    if circuit.num_vars or getattr(circuit, "num_stretches", 0):
        raise CircuitCompileError("Classical variables cannot be deferred; the circuit declares some.")
    qindex = {bit: i for i, bit in enumerate(circuit.qubits)}
    cindex = {bit: i for i, bit in enumerate(circuit.clbits)}
    out: list[_Flat] = []

    def walk(block: QuantumCircuit, qmap: Sequence[int], cmap: Sequence[int]) -> None:
        bq = {bit: qmap[i] for i, bit in enumerate(block.qubits)}
        bc = {bit: cmap[i] for i, bit in enumerate(block.clbits)}
        for inst in block.data:
            name = inst.name
            qs = tuple(bq[q] for q in inst.qubits)
            cs = tuple(bc[c] for c in inst.clbits)
            if name == "for_loop":
                indexset, parameter, body = inst.operation.params
                values = list(indexset)
                if len(values) * len(body.data) + len(out) > MAX_LOWERED_OPERATIONS:
                    raise CircuitCompileError(f"A for loop of {len(values)} iterations is too long to unroll.")
                for value in values:
                    bound = body.assign_parameters({parameter: value}) if parameter is not None else body
                    walk(bound, qs, cs)
            elif name == "box":
                walk(inst.operation.blocks[0], qs, cs)
            elif name == "if_else":
                out.append(_Flat(inst.operation, qs, cs, dict(zip(inst.clbits, cs, strict=True))))
            elif inst.is_control_flow():
                raise CircuitCompileError(
                    f"A {name!r} block cannot be deferred into a unitary (only if/else, for loops and boxes can)."
                )
            elif name in DIRECTIVES or isinstance(inst.operation, Gate):
                out.append(_Flat(inst.operation, qs, cs))
            else:
                raise CircuitCompileError(f"The instruction {name!r} cannot be deferred into a unitary.")

    walk(circuit, [qindex[q] for q in circuit.qubits], [cindex[c] for c in circuit.clbits])
    return out


def _mid_measurements(flat: Sequence[_Flat], coherent_reads: bool) -> set[int]:
    """Indices of measurements that must be deferred onto ancillas (scanning backwards)."""
    busy: set[int] = set()
    read: set[int] = set()
    mid: set[int] = set()
    for index in range(len(flat) - 1, -1, -1):
        item = flat[index]
        name = item.op.name
        if name == "measure":
            if item.qubits[0] in busy or (coherent_reads and item.clbits[0] in read):
                mid.add(index)
        elif name not in ("barrier", "delay"):
            busy.update(item.qubits)
            if name == "if_else":
                read.update(item.clbits)
    return mid


#: Most classical bits one condition may read when it is turned into controls (its truth table).
MAX_CONDITION_BITS = 10


def condition_bits(condition: Any) -> list[Clbit]:
    """The classical bits an ``if`` condition reads: a bit, a register's bits, or an expression's."""
    from qiskit.circuit.classical import expr

    if isinstance(condition, expr.Expr):
        bits: list[Clbit] = []
        for var in expr.iter_vars(condition):
            if isinstance(var.var, Clbit):
                found = [var.var]
            elif isinstance(var.var, ClassicalRegister):
                found = list(var.var)
            else:
                raise CircuitCompileError(
                    f"The condition {condition} reads a classical variable; it cannot be deferred."
                )
            bits += [b for b in found if b not in bits]
        return bits
    target, _ = condition
    return [target] if isinstance(target, Clbit) else list(target)


def evaluate_condition(condition: Any, value_of: Callable[[Clbit], int]) -> bool:
    """Whether ``condition`` (a ``(bit or register, value)`` pair or a classical expression over
    bits and registers) holds when each bit has the value ``value_of(bit)``."""
    from qiskit.circuit.classical import expr

    if not isinstance(condition, expr.Expr):
        target, value = condition
        if isinstance(target, Clbit):
            return value_of(target) == int(bool(value))
        return sum(value_of(b) << i for i, b in enumerate(target)) == int(value)
    return bool(_evaluate(condition, value_of))


def _evaluate(node: Any, value_of: Callable[[Clbit], int]) -> int:
    from qiskit.circuit.classical import expr, types

    def width(n: Any) -> int | None:
        return n.type.width if isinstance(n.type, types.Uint) else None

    if isinstance(node, expr.Var):
        if isinstance(node.var, Clbit):
            return value_of(node.var)
        return sum(value_of(b) << i for i, b in enumerate(node.var))
    if isinstance(node, expr.Value):
        return int(node.value)
    if isinstance(node, expr.Cast):
        inner = _evaluate(node.operand, value_of)
        if isinstance(node.type, types.Bool):
            return int(bool(inner))
        w = width(node)
        return inner % (1 << w) if w else inner
    if isinstance(node, expr.Index):
        return (_evaluate(node.target, value_of) >> _evaluate(node.index, value_of)) & 1
    if isinstance(node, expr.Unary):
        inner = _evaluate(node.operand, value_of)
        if node.op is expr.Unary.Op.LOGIC_NOT:
            return int(not inner)
        if node.op is expr.Unary.Op.BIT_NOT:
            w = width(node)
            return (~inner) % (1 << w) if w else int(not inner)
        raise CircuitCompileError(f"The condition operator {node.op.name} cannot be deferred.")
    if isinstance(node, expr.Binary):
        a, b = _evaluate(node.left, value_of), _evaluate(node.right, value_of)
        op = expr.Binary.Op
        table: dict[Any, Callable[[int, int], int]] = {
            op.BIT_AND: lambda x, y: x & y, op.BIT_OR: lambda x, y: x | y, op.BIT_XOR: lambda x, y: x ^ y,
            op.LOGIC_AND: lambda x, y: int(bool(x) and bool(y)), op.LOGIC_OR: lambda x, y: int(bool(x) or bool(y)),
            op.EQUAL: lambda x, y: int(x == y), op.NOT_EQUAL: lambda x, y: int(x != y),
            op.LESS: lambda x, y: int(x < y), op.LESS_EQUAL: lambda x, y: int(x <= y),
            op.GREATER: lambda x, y: int(x > y), op.GREATER_EQUAL: lambda x, y: int(x >= y),
        }  # fmt: skip
        if node.op in table:
            return table[node.op](a, b)
        w = width(node)
        if node.op is op.SHIFT_LEFT and w:
            return (a << b) % (1 << w)
        if node.op is op.SHIFT_RIGHT:
            return a >> b
        raise CircuitCompileError(f"The condition operator {node.op.name} cannot be deferred.")
    raise CircuitCompileError(f"The condition {node} cannot be deferred into a unitary.")


def _defer_condition(
    item: _Flat,
    carrier: dict[int, int],
    ops: list[tuple[Operation, tuple[int, ...]]],
    ancilla: Callable[[], int],
    touched: set[int],
) -> None:
    """Emit an if/else's bodies as gates controlled on the qubits holding the condition's bits.

    The condition's truth table over its bits (bits never written read 0) decides: constant, one
    satisfying assignment (the bodies are controlled on those qubits in that state), or several
    (a fresh flag qubit collects them, one multi-controlled X per assignment, and the bodies are
    controlled on the flag).
    """
    op = item.op
    true_body, false_body = op.blocks[0], (op.blocks[1] if len(op.blocks) > 1 else None)
    assert item.cond_map is not None
    bits = condition_bits(op.condition)
    live = [b for b in bits if carrier.get(item.cond_map[b]) is not None]
    if len(live) > MAX_CONDITION_BITS:
        raise CircuitCompileError(
            f"The condition {op.condition} reads {len(live)} measured bits; at most {MAX_CONDITION_BITS} are deferred."
        )
    satisfying = []
    for assignment in range(1 << len(live)):
        values = {b: (assignment >> i) & 1 for i, b in enumerate(live)}
        if evaluate_condition(op.condition, lambda b, values=values: values.get(b, 0)):  # type: ignore[misc]
            satisfying.append(assignment)
    controls = [carrier[item.cond_map[b]] for b in live]
    if len(satisfying) == 1 << len(live):
        _emit_block(true_body, item.qubits, [], "", ops, touched)
        return
    if not satisfying:
        if false_body is not None:
            _emit_block(false_body, item.qubits, [], "", ops, touched)
        return
    width = len(controls)
    state = format(satisfying[0], f"0{width}b")  # ctrl_state: the first control is the rightmost character
    if len(satisfying) > 1 or (false_body is not None and width > 1):
        from qiskit.circuit.library import MCXGate

        flag = ancilla()  # flag = (condition holds); the assignments exclude each other
        for assignment in satisfying:
            ops.append((MCXGate(width, ctrl_state=format(assignment, f"0{width}b")), (*controls, flag)))
        controls, state = [flag], "1"
    _emit_block(true_body, item.qubits, controls, state, ops, touched)
    if false_body is not None:
        flipped = "".join("1" if s == "0" else "0" for s in state)
        _emit_block(false_body, item.qubits, controls, flipped, ops, touched)


def _emit_block(
    block: QuantumCircuit,
    qubits: Sequence[int],
    controls: Sequence[int],
    state: str,
    ops: list[tuple[Operation, tuple[int, ...]]],
    touched: set[int],
) -> None:
    qmap = {bit: qubits[i] for i, bit in enumerate(block.qubits)}
    for inst in block.data:
        name = inst.name
        if name in ("barrier", "delay"):
            continue
        if name in ("measure", "reset") or inst.is_control_flow() or inst.clbits:
            raise CircuitCompileError(f"A {name!r} inside a conditional block cannot be deferred into a unitary.")
        qs = tuple(qmap[q] for q in inst.qubits)
        if set(qs) & set(controls):
            raise CircuitCompileError("A conditional block acts on the qubit that holds its own condition.")
        gate = inst.operation
        if controls:
            with library_errors(CircuitCompileError, f"Cannot control the gate {name!r} on its condition"):
                gate = gate.control(len(controls), ctrl_state=state, annotated=False)
            ops.append((gate, (*controls, *qs)))
        else:
            ops.append((gate, qs))
        touched.update(qs)


def needs_deferral(circuit: QuantumCircuit) -> bool:
    """True when ``circuit`` measures a qubit that is used again, resets a used qubit, or has
    classical control flow: what :func:`unitary_form` would change. One backward pass."""
    busy: set[Any] = set()
    for inst in reversed(circuit.data):
        name = inst.name
        if name == "measure":
            if inst.qubits[0] in busy:
                return True
        elif name in ("barrier", "delay"):
            continue
        elif inst.is_control_flow():
            return True
        else:
            busy.update(inst.qubits)
    touched: set[Any] = set()
    for inst in circuit.data:
        if inst.name == "reset" and inst.qubits[0] in touched:
            return True
        if inst.name not in ("barrier", "delay"):
            touched.update(inst.qubits)
    return False


def with_terminal_measurements(circuit: QuantumCircuit, form: UnitaryForm) -> QuantumCircuit:
    """``form``'s unitary followed by one final measurement per written classical bit, with the
    original circuit's classical bits and registers (same order, same layout)."""
    out = QuantumCircuit(form.circuit.qubits, name=circuit.name, global_phase=form.circuit.global_phase)
    out.add_bits(circuit.clbits)
    for register in circuit.cregs:
        out.add_register(register)
    out.compose(form.circuit, qubits=range(form.circuit.num_qubits), inplace=True)
    for clbit, source in enumerate(form.clbit_sources):
        if source is not None:
            out.measure(source, clbit)
    return out
