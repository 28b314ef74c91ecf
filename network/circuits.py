"""Circuit utilities shared by the stages: parsing, analysis, splitting, bitstring layout.

Everything here is pure. The analysis walks the circuit once and is fast enough for planning a
1000-qubit, 100,000-gate circuit well under a second.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Barrier, CircuitInstruction

from network.errors import CircuitParseError, ProviderResultError, library_errors

__all__ = [
    "Component",
    "CircuitAnalysis",
    "ClbitLayout",
    "analyze_circuit",
    "parse_qasm",
    "check_qasm_size",
    "MAX_QASM_BITS",
    "MAX_QASM_CHARS",
    "MAX_QASM3_CHARS",
    "MAX_QASM_DEFINITION_OPS",
    "check_qasm_definitions",
    "split_circuit",
    "normalize_counts",
    "normalize_all",
    "bind_parameters",
    "derive_seed",
]

# Instructions that never couple qubits nor change the sampled distribution's structure.
_NON_JOINING = frozenset({"barrier", "delay"})
_QASM_VERSION = re.compile(r"^\s*OPENQASM\s+(\d+)(?:\.\d+)?\s*;", re.MULTILINE)


def derive_seed(base_seed: int, *labels: object) -> int:
    """A 31-bit seed derived from ``base_seed`` and labels (stable across runs and machines)."""
    text = ":".join([str(int(base_seed)), *map(str, labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFF_FFFF


#: Longest OpenQASM text accepted (characters).
MAX_QASM_CHARS = 64 * 2**20
#: Longest OpenQASM 3 text accepted: Qiskit's OpenQASM 3 importer reads about 40 KB a second.
MAX_QASM3_CHARS = 2 * 2**20
#: Most operations one OpenQASM gate definition may expand to (gates calling gates). OpenQASM 3's
#: importer copies a definition for every call inside another, about 0.3 ms per expanded operation.
MAX_QASM_DEFINITION_OPS = {2: 5_000_000, 3: 20_000}
#: Most qubits, and most classical bits, an OpenQASM program may declare.
MAX_QASM_BITS = 100_000
# declarations: OpenQASM 2 ``qreg q[5];``, OpenQASM 3 ``qubit[5] q;``, ``bit[5] c;``, ``int[64] x;``...
_REGISTER_DECL = re.compile(r"\b(qreg|creg)\s+[A-Za-z_]\w*\s*\[\s*([^\]]*)\]")
_TYPE_DECL = re.compile(r"\b(qubit|bit|int|uint|angle|float|complex|array)\s*\[\s*([^\],]*)")
_QASM3_CONST = re.compile(r"\bconst\s+\w+(?:\s*\[[^\]]*\])?\s+([A-Za-z_]\w*)\s*=\s*([0-9][\w]*)\s*;")
_GATE_DEF = re.compile(r"\bgate\s+([A-Za-z_]\w*)[^{;]*\{([^{}]*)\}")
_CALLEE = re.compile(r"^\s*(?:(?:ctrl|negctrl|inv|pow)\s*(?:\([^)]*\))?\s*@\s*)*([A-Za-z_]\w*)")
_QASM3_SINGLE = re.compile(r"(?:^|[;{}\s])(qubit|bit)\s+[A-Za-z_]")


def check_qasm_size(text: str, *, max_bits: int = MAX_QASM_BITS) -> tuple[int, int]:
    """Declared qubits and classical bits of OpenQASM ``text``, read off its declarations before
    parsing, so no input makes the parser allocate more than the caps allow.

    Returns:
        ``(qubits, clbits)`` declared.

    Raises:
        CircuitParseError: The text is longer than :data:`MAX_QASM_CHARS`, declares more than
            ``max_bits`` qubits or classical bits, or a type wider than ``max_bits``.
    """
    if len(text) > MAX_QASM_CHARS:
        raise CircuitParseError(
            f"The OpenQASM text has {len(text):,} characters, above the limit of {MAX_QASM_CHARS:,}."
        )
    # Sizes are counted in the raw text, comments included: an OpenQASM 3 annotation (`@note /* ...`)
    # runs to the end of its line, so what looks like a comment to a regex may be code to the parser;
    # counting declarations inside real comments too only errs on the safe side. Sizes that are no
    # literal are refused only outside comments (prose such as "qubit[n]" is common there).
    code = text
    uncommented = _strip_comments(text)
    in_code = {
        (kind, size.strip()) for kind, size in [*_REGISTER_DECL.findall(uncommented), *_TYPE_DECL.findall(uncommented)]
    }
    qubits = clbits = 0
    constants: dict[str, int] = {}
    for name, value in _QASM3_CONST.findall(code):
        number = _integer(value, max_bits)
        if number is not None:
            constants[name] = number
    for kind, size in [*_REGISTER_DECL.findall(code), *_TYPE_DECL.findall(code)]:
        size = size.strip()
        n = _integer(size, max_bits)
        if n is None:
            n = constants.get(size)
        if n is None:
            if kind in ("qubit", "bit", "qreg", "creg") and (kind, size) in in_code:
                raise CircuitParseError(
                    f"The OpenQASM text declares {kind}[{size[:40]}]: register sizes must be integer literals or "
                    "constants set to one, so they can be checked before parsing."
                )
            continue  # a type width the parser itself checks (array[float[64], n]...)
        if kind in ("qubit", "qreg"):
            qubits += n
        elif kind in ("bit", "creg"):
            clbits += n
        elif n > max_bits:
            raise CircuitParseError(f"The OpenQASM text declares a {kind}[{n}], wider than the limit of {max_bits}.")
    singles = _QASM3_SINGLE.findall(code)
    qubits += singles.count("qubit")
    clbits += singles.count("bit")
    if qubits > max_bits:
        raise CircuitParseError(
            f"The OpenQASM text declares {qubits:,} qubits, above the limit of {max_bits:,}; "
            "no node or cut could run it."
        )
    if clbits > max_bits:
        raise CircuitParseError(
            f"The OpenQASM text declares {clbits:,} classical bits, above the limit of {max_bits:,}."
        )
    return qubits, clbits


def check_qasm_definitions(text: str, version: int) -> int:
    """The largest number of operations one ``gate`` definition expands to, from the text alone
    (each definition sized once: gates that call a gate twice at every level are linear work).

    Raises:
        CircuitParseError: A definition expands past :data:`MAX_QASM_DEFINITION_OPS` for this
            OpenQASM version; the parser would take hours or gigabytes to read it.
    """
    bodies = {name: body for name, body in _GATE_DEF.findall(text)}
    if not bodies:
        return 0
    cap = MAX_QASM_DEFINITION_OPS.get(version, MAX_QASM_DEFINITION_OPS[2])
    sizes: dict[str, int] = {}

    def size(name: str, depth: int) -> int:
        if name not in bodies:
            return 1
        if name in sizes:
            return sizes[name]
        if depth > 256:
            raise CircuitParseError(f"The OpenQASM gate definitions nest more than 256 levels deep (at {name!r}).")
        sizes[name] = 1  # a recursive definition is invalid; the parser reports it
        total = 0
        for statement in bodies[name].split(";"):
            match = _CALLEE.match(statement)
            if match:
                total = min(total + size(match.group(1), depth + 1), cap + 1)
        sizes[name] = max(total, 1)
        return sizes[name]

    largest = max(size(name, 0) for name in bodies)
    if largest > cap:
        worst = max(bodies, key=lambda name: sizes.get(name, 0))
        raise CircuitParseError(
            f"The OpenQASM gate {worst!r} expands to more than {cap:,} operations through the gates it calls; "
            f"OpenQASM {version} input is limited to {cap:,} per definition."
        )
    return largest


def _integer(text: str, cap: int) -> int | None:
    """An OpenQASM integer literal (decimal, hex, octal or binary; ``_`` separators allowed), or
    None. A literal too long to convert counts as ``cap + 1``: it is above every cap anyway."""
    token = text.replace("_", "")
    if not token or not token[0].isdigit():
        return None
    try:
        return int(token, 0) if token[:2].lower() in ("0x", "0o", "0b") else int(token, 10)
    except ValueError:
        return cap + 1 if token.isdigit() else None


def parse_qasm(text: str, *, max_bits: int = MAX_QASM_BITS) -> QuantumCircuit:
    """Parse OpenQASM 2 or 3 with Qiskit's own parsers.

    The declared register sizes are checked first (:func:`check_qasm_size`), so a hostile
    ``qreg q[100000000];`` is refused before anything is allocated. Whatever the parsers raise,
    Rust panics (``pyo3_runtime.PanicException``, a ``BaseException``) included, becomes a
    :class:`CircuitParseError`.

    Raises:
        CircuitParseError: The text is not valid OpenQASM or is too large; the parser's message is kept.
    """
    if not isinstance(text, str) or not text.strip():
        raise CircuitParseError(f"OpenQASM input must be non-empty text, got {text!r:.80}.")
    check_qasm_size(text, max_bits=max_bits)
    match = _QASM_VERSION.search(_strip_comments(text))
    version = int(match.group(1)) if match else 2
    if version not in (2, 3):
        raise CircuitParseError(f"Unsupported OpenQASM version {version}; use 2 or 3.")
    if version == 3 and len(text) > MAX_QASM3_CHARS:
        raise CircuitParseError(
            f"The OpenQASM 3 text has {len(text):,} characters, above the limit of {MAX_QASM3_CHARS:,} "
            "(Qiskit's OpenQASM 3 importer reads about 40 KB a second); OpenQASM 2 may be up to "
            f"{MAX_QASM_CHARS:,}."
        )
    check_qasm_definitions(text, version)
    try:
        if version == 3:
            from qiskit import qasm3
        else:
            from qiskit import qasm2
    except ImportError as exc:  # qasm3 needs qiskit-qasm3-import, a core dependency
        raise CircuitParseError(f"OpenQASM {version} support is not installed: {exc}") from exc
    with library_errors(CircuitParseError, f"Invalid OpenQASM {version}"):
        if version == 3:
            circuit = qasm3.loads(text)
        else:
            circuit = qasm2.loads(text, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
    if circuit.num_qubits > max_bits or circuit.num_clbits > max_bits:
        raise CircuitParseError(
            f"The OpenQASM program has {circuit.num_qubits:,} qubits and {circuit.num_clbits:,} classical bits; "
            f"the limit is {max_bits:,} of each."
        )
    return circuit


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return re.sub(r"//[^\n]*", "", text)


@dataclass(frozen=True)
class Component:
    """A set of qubits (and the classical bits they write) that no operation links to the rest.

    Attributes:
        qubits: Original qubit indices, ascending.
        clbits: Original classical-bit indices, ascending.
        n_ops: Operations on these qubits, barriers, delays and measurements excluded.
        n_multi: Of those, the ones on two or more qubits.
        dynamic: True when a measurement is followed by more operations, a reset follows an
            operation, or control flow appears: simulators then re-run the circuit per shot.
    """

    qubits: tuple[int, ...]
    clbits: tuple[int, ...]
    n_ops: int
    n_multi: int
    dynamic: bool

    @property
    def width(self) -> int:
        return len(self.qubits)


@dataclass(frozen=True)
class ClbitLayout:
    """How classical bits are printed in count keys, following Qiskit.

    Registers appear in reverse order of declaration, separated by spaces, each with its bit 0
    rightmost. When some bit belongs to no register (or to several), keys are one flat string
    over all bits, bit 0 rightmost.
    """

    n_clbits: int
    registers: tuple[tuple[str, tuple[int, ...]], ...]

    @classmethod
    def of(cls, circuit: QuantumCircuit) -> ClbitLayout:
        index = {bit: i for i, bit in enumerate(circuit.clbits)}
        regs = tuple((reg.name, tuple(index[b] for b in reg)) for reg in circuit.cregs)
        return cls(circuit.num_clbits, regs)

    @property
    def qiskit_style(self) -> bool:
        covered = [i for _, bits in self.registers for i in bits]
        return len(covered) == self.n_clbits and len(set(covered)) == self.n_clbits

    @property
    def is_identity(self) -> bool:
        """True when a flat key already is the formatted key (one register, bits in order)."""
        if not self.registers:
            return True
        return len(self.registers) == 1 and self.registers[0][1] == tuple(range(self.n_clbits))

    def format(self, flat: str) -> str:
        """Turn a flat key (bit ``i`` at position ``n-1-i``) into the circuit's key format."""
        if self.is_identity or not self.qiskit_style:
            return flat
        n = self.n_clbits
        return " ".join("".join(flat[n - 1 - i] for i in reversed(bits)) for _, bits in reversed(self.registers))

    def unformat(self, key: str) -> str:
        """The flat key (bit ``i`` at position ``n-1-i``) of a key in the circuit's format: the
        inverse of :meth:`format`."""
        if self.is_identity or not self.qiskit_style:
            return key.replace(" ", "")
        n = self.n_clbits
        flat = ["0"] * n
        for (_, bits), part in zip(reversed(self.registers), key.split(" "), strict=True):
            for j, i in enumerate(bits):
                flat[n - 1 - i] = part[len(bits) - 1 - j]
        return "".join(flat)

    def to_dict(self) -> dict[str, Any]:
        return {"n_clbits": self.n_clbits, "registers": [[n, list(b)] for n, b in self.registers]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClbitLayout:
        regs = tuple((str(n), tuple(int(i) for i in b)) for n, b in data["registers"])
        return cls(int(data["n_clbits"]), regs)


@dataclass(frozen=True)
class CircuitAnalysis:
    """What the planner needs to know about a circuit, from one pass over it."""

    n_qubits: int
    n_clbits: int
    n_ops: int
    components: tuple[Component, ...]
    idle_qubits: int
    unmeasured_qubits: int
    circuit_hash: str
    layout: ClbitLayout
    dynamic: bool
    splittable: bool

    @property
    def active_components(self) -> tuple[Component, ...]:
        """Components that write at least one classical bit: the only ones counts depend on."""
        return tuple(c for c in self.components if c.qubits and c.clbits)

    @property
    def widest(self) -> Component | None:
        comps = self.active_components
        return max(comps, key=lambda c: (c.width, -c.qubits[0])) if comps else None


class _UnionFind:
    __slots__ = ("parent",)

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            if ra < rb:
                self.parent[rb] = ra
            else:
                self.parent[ra] = rb


def analyze_circuit(circuit: QuantumCircuit) -> CircuitAnalysis:
    """One pass: interaction components, gate counts, dynamic features and a canonical hash.

    Two-qubit and multi-qubit operations join their qubits; a measurement joins its qubit to
    its classical bit, and control flow joins every bit it reads or acts on, so classical
    conditions join qubits through the bits they test. Barriers and delays join nothing, and
    idle qubits stay alone.
    """
    nq, nc = circuit.num_qubits, circuit.num_clbits
    qindex = {bit: i for i, bit in enumerate(circuit.qubits)}
    cindex = {bit: nq + i for i, bit in enumerate(circuit.clbits)}
    uf = _UnionFind(nq + nc)
    ops = [0] * nq
    multi = [0] * nq
    touched = [False] * nq
    measured = [False] * nq
    dyn = [False] * nq
    hasher = hashlib.sha256()
    hasher.update(repr((nq, nc, ClbitLayout.of(circuit).to_dict())).encode())
    chunk: list[Any] = []
    splittable = not (circuit.num_vars or circuit.num_stretches)
    any_dynamic = False
    for inst in circuit.data:
        name = inst.name
        qs = [qindex[q] for q in inst.qubits]
        cs = [cindex[c] for c in inst.clbits]
        params = inst.params
        chunk.append((name, qs, cs, _canonical_params(params) if params else None))
        if len(chunk) >= 4096:
            hasher.update(repr(chunk).encode())
            chunk.clear()
        if name in _NON_JOINING:
            continue
        if name == "measure":
            q = qs[0]
            uf.union(q, cs[0])
            measured[q] = True
            touched[q] = True
            continue
        if not qs and not cs:
            splittable = splittable and name == "global_phase"
            continue
        is_control_flow = inst.is_control_flow()  # no Python gate object is built for this
        first = qs[0] if qs else None
        for b in qs[1:]:
            uf.union(qs[0], b)
        anchor = qs[0] if qs else cs[0]
        for c in cs:
            uf.union(anchor, c)
        for q in qs:
            if measured[q] or is_control_flow or (name == "reset" and touched[q]):
                dyn[q] = True
                any_dynamic = True
            touched[q] = True
        if first is not None:
            ops[first] += 1
            if len(qs) > 1:
                multi[first] += 1
    if chunk:
        hasher.update(repr(chunk).encode())

    if not splittable:  # classical variables couple everything in ways we do not track
        for i in range(1, nq + nc):
            uf.union(0, i)

    groups: dict[int, tuple[list[int], list[int]]] = {}
    for i in range(nq + nc):
        qs_, cs_ = groups.setdefault(uf.find(i), ([], []))
        (qs_ if i < nq else cs_).append(i if i < nq else i - nq)
    components = []
    idle = unmeasured = 0
    for qs_, cs_ in groups.values():
        comp_ops = sum(ops[q] for q in qs_)
        if qs_ and not cs_:
            if comp_ops == 0 and not any(touched[q] for q in qs_):
                idle += len(qs_)
            else:
                unmeasured += len(qs_)
        components.append(
            Component(
                qubits=tuple(qs_),
                clbits=tuple(cs_),
                n_ops=comp_ops,
                n_multi=sum(multi[q] for q in qs_),
                dynamic=any(dyn[q] for q in qs_),
            )
        )
    components.sort(key=lambda c: c.qubits[0] if c.qubits else nq + c.clbits[0])
    return CircuitAnalysis(
        n_qubits=nq,
        n_clbits=nc,
        n_ops=sum(ops),
        components=tuple(components),
        idle_qubits=idle,
        unmeasured_qubits=unmeasured,
        circuit_hash=hasher.hexdigest(),
        layout=ClbitLayout.of(circuit),
        dynamic=any_dynamic,
        splittable=splittable,
    )


def _canonical_params(params: Sequence[Any]) -> tuple[Any, ...]:
    out: list[Any] = []
    for p in params:
        if isinstance(p, float | int | complex | str):
            out.append(p)
        elif isinstance(p, QuantumCircuit):
            out.append(analyze_circuit(p).circuit_hash)
        elif isinstance(p, np.ndarray):
            out.append(hashlib.sha256(np.ascontiguousarray(p).tobytes()).hexdigest())
        else:
            out.append(str(p))
    return tuple(out)


def split_circuit(
    circuit: QuantumCircuit, parts: Sequence[tuple[Sequence[int], Sequence[int]]]
) -> list[QuantumCircuit]:
    """Cut ``circuit`` into independent sub-circuits, one per ``(qubits, clbits)`` part.

    Each part must be a union of interaction components. Sub-circuits keep the original bit
    objects, so classical conditions stay valid; their bit order is the order given. Registers
    whose bits all fall in a part are kept on it. Barriers are restricted to each part's qubits.
    Instructions on qubits outside every part (unmeasured components) are dropped.
    """
    qbits, cbits = circuit.qubits, circuit.clbits
    subs: list[QuantumCircuit] = []
    q_owner: dict[int, int] = {}
    c_owner: dict[int, int] = {}
    for k, (qs, cs) in enumerate(parts):
        sub = QuantumCircuit([qbits[i] for i in qs], [cbits[i] for i in cs], name=f"{circuit.name}-part{k}")
        cset = set(cs)
        for reg in circuit.cregs:
            if all(circuit.find_bit(b).index in cset for b in reg):
                sub.add_register(reg)
        subs.append(sub)
        q_owner.update((i, k) for i in qs)
        c_owner.update((i, k) for i in cs)
    qindex = {bit: i for i, bit in enumerate(qbits)}
    cindex = {bit: i for i, bit in enumerate(cbits)}
    for inst in circuit.data:
        if inst.name == "barrier":
            by_part: dict[int, list[Any]] = {}
            for q in inst.qubits:
                owner = q_owner.get(qindex[q])
                if owner is not None:
                    by_part.setdefault(owner, []).append(q)
            for owner, qs_in in by_part.items():
                subs[owner]._append(CircuitInstruction(Barrier(len(qs_in)), tuple(qs_in), ()))
            continue
        if inst.qubits:
            owner = q_owner.get(qindex[inst.qubits[0]])
        elif inst.clbits:
            owner = c_owner.get(cindex[inst.clbits[0]])
        else:
            owner = None
        if owner is not None:
            subs[owner]._append(inst)
    return subs


def normalize_counts(counts: Mapping[str, Any], *, width: int, shots: int, node_id: str) -> dict[str, int]:
    """Validate a provider's counts and return them as flat keys of ``width`` bits.

    Raises:
        ProviderResultError: Naming the node and the defect (key width, non-binary keys,
            negative or non-integer counts, a total that is not ``shots``).
    """
    if not isinstance(counts, Mapping):
        raise ProviderResultError(f"Node {node_id!r} returned {type(counts).__name__}, not a counts mapping.")
    keys = list(counts)
    values = list(counts.values())
    if not all(isinstance(k, str) for k in keys):
        bad = next(k for k in keys if not isinstance(k, str))
        raise ProviderResultError(f"Node {node_id!r} returned a non-string key {bad!r}.")
    flat_keys = [k.replace(" ", "") for k in keys] if any(" " in k for k in keys) else keys
    if {len(k) for k in flat_keys} - {width}:
        bad = next(k for k, f in zip(keys, flat_keys, strict=True) if len(f) != width)
        raise ProviderResultError(
            f"Node {node_id!r} returned key {bad!r} of {len(bad.replace(' ', ''))} bits; "
            f"the circuit has {width} classical bits."
        )
    if set("".join(flat_keys)) - {"0", "1"}:
        bad = next(k for k, f in zip(keys, flat_keys, strict=True) if f.strip("01"))
        raise ProviderResultError(f"Node {node_id!r} returned a non-binary key {bad!r}.")
    for key, value in zip(keys, values, strict=True):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ProviderResultError(f"Node {node_id!r} returned a non-integer count {value!r} for {key!r}.")
        if value < 0:
            raise ProviderResultError(f"Node {node_id!r} returned a negative count {value} for {key!r}.")
    total = int(sum(values))
    if total != shots:
        raise ProviderResultError(f"Node {node_id!r} returned counts summing to {total}, expected {shots} shots.")
    out: dict[str, int] = {}
    for key, value in zip(flat_keys, values, strict=True):
        if value:
            out[key] = out.get(key, 0) + int(value)
    return out


def normalize_all(raw: Sequence[Any], *, width: int, shots: int, node_id: str) -> list[dict[str, int]]:
    """:func:`normalize_counts` over a batch, with a fast path for counts that are already normal.

    A sweep's bindings share a small set of outcomes, so each distinct key is checked once. A
    plain ``dict`` whose keys are all ``width`` binary digits and whose values are positive
    ``int`` summing to ``shots`` is what :func:`normalize_counts` would return, and is kept as
    it is; anything else (spaces in keys, zero or numpy counts, any defect) goes through
    :func:`normalize_counts`, which normalizes it or raises naming the node and the defect.
    """
    good: set[str] = set()
    out: list[dict[str, int]] = []
    for counts in raw:
        if type(counts) is dict and counts:
            new = counts.keys() - good
            if all(type(k) is str and len(k) == width and not k.strip("01") for k in new):
                good |= new
                values = counts.values()
                if set(map(type, values)) == {int} and min(values) > 0 and sum(values) == shots:
                    out.append(counts)
                    continue
        out.append(normalize_counts(counts, width=width, shots=shots, node_id=node_id))
    return out


def bind_parameters(circuit: QuantumCircuit, binding: Mapping[str, float]) -> QuantumCircuit:
    """``circuit`` with its parameters bound by name (``{"theta": 0.3}``)."""
    by_name = {p.name: p for p in circuit.parameters}
    return circuit.assign_parameters({by_name[k]: v for k, v in binding.items()})
