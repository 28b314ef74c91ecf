"""Statistical helpers: exact distributions and shot-noise bounds for comparing counts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import Statevector

from network.circuits import ClbitLayout

#: Probability that a correct sampler fails a TVD check (McDiarmid bound).
FAILURE_PROBABILITY = 1e-9


Branch = tuple[float, Statevector, tuple[int, ...]]


def branch(circuit: QuantumCircuit, stop: int | None = None, *, skip: frozenset[int] = frozenset()) -> list[Branch]:
    """Exact branching of ``circuit``'s first ``stop`` instructions: ``(probability, state, bits)``.

    Independent of the QVM's compiler: gates evolve a ``Statevector`` through their own matrices or
    definitions; every measurement and reset (except the top-level instructions in ``skip``) splits
    the state into its outcomes with their probabilities; ``if``/``else`` blocks run in the branches
    whose bits satisfy them (bits, registers or classical expressions).
    """
    from qiskit.circuit import ClassicalRegister, Clbit

    def measure(item: Branch, q: int, c: int | None, reset: bool) -> list[Branch]:
        p, state, bits = item
        out = []
        probs = state.probabilities([q])
        for outcome in (0, 1):
            if probs[outcome] < 1e-14:
                continue
            projector = np.zeros((2, 2))
            projector[outcome, outcome] = 1 / math.sqrt(probs[outcome])
            collapsed = state.evolve(projector, [q])
            if reset and outcome:
                collapsed = collapsed.evolve(np.array([[0, 1], [1, 0]]), [q])
            new_bits = bits if c is None else (*bits[:c], outcome, *bits[c + 1 :])
            out.append((p * probs[outcome], collapsed, new_bits))
        return out

    def holds(condition: Any, bits: tuple[int, ...], outer: dict[Any, int]) -> bool:
        if isinstance(condition, tuple):
            target, value = condition
            if isinstance(target, Clbit):
                return bits[outer[target]] == int(value)
            assert isinstance(target, ClassicalRegister)
            return sum(bits[outer[b]] << i for i, b in enumerate(target)) == int(value)
        return bool(_value(condition, bits, outer))

    def run(block: QuantumCircuit, qmap: list[int], cmap: list[int], states: list[Branch], top: bool) -> list[Branch]:
        bq = {bit: qmap[i] for i, bit in enumerate(block.qubits)}
        bc = {bit: cmap[i] for i, bit in enumerate(block.clbits)}
        data = block.data if not top or stop is None else block.data[:stop]
        for index, inst in enumerate(data):
            name = inst.name
            qs = [bq[q] for q in inst.qubits]
            cs = [bc[c] for c in inst.clbits]
            if name in ("barrier", "delay") or (top and index in skip):
                continue
            if name in ("measure", "reset"):
                states = [b for s in states for b in measure(s, qs[0], cs[0] if cs else None, name == "reset")]
            elif name == "if_else":
                op = inst.operation
                outer = dict(zip(inst.clbits, cs, strict=True))
                yes = [s for s in states if holds(op.condition, s[2], outer)]
                no = [s for s in states if not holds(op.condition, s[2], outer)]
                yes = run(op.blocks[0], qs, cs, yes, False)
                if len(op.blocks) > 1 and op.blocks[1] is not None:
                    no = run(op.blocks[1], qs, cs, no, False)
                states = yes + no
            elif name == "while_loop":
                op = inst.operation
                outer = dict(zip(inst.clbits, cs, strict=True))
                done: list[Branch] = []
                for _ in range(64):  # a loop still running after 64 passes has negligible weight here
                    done += [s for s in states if not holds(op.condition, s[2], outer)]
                    states = [s for s in states if holds(op.condition, s[2], outer)]
                    if not states:
                        break
                    states = run(op.blocks[0], qs, cs, states, False)
                assert not states, "a while loop ran 64 passes in the reference"
                states = done
            else:
                assert not inst.is_control_flow(), f"the reference cannot branch over {name!r}"
                states = [(p, state.evolve(inst.operation, qs), bits) for p, state, bits in states]
            assert len(states) <= 1 << 14, "too many branches for an exact reference"
        return states

    start: list[Branch] = [(1.0, Statevector.from_int(0, 2**circuit.num_qubits), (0,) * circuit.num_clbits)]
    return run(circuit, list(range(circuit.num_qubits)), list(range(circuit.num_clbits)), start, True)


def exact_distribution(circuit: QuantumCircuit) -> dict[str, float]:
    """Exact distribution of a circuit's count keys, by exact branching (:func:`branch`); the
    measurements that end the circuit are read off each branch's final probabilities at once."""
    qindex = {bit: i for i, bit in enumerate(circuit.qubits)}
    cindex = {bit: i for i, bit in enumerate(circuit.clbits)}
    data = list(circuit.data)
    tail = len(data)
    while tail and data[tail - 1].name in ("measure", "barrier", "delay"):
        tail -= 1
    finals = [inst for inst in data[tail:] if inst.name == "measure"]
    layout = ClbitLayout.of(circuit)
    n = circuit.num_clbits
    final_map = [(qindex[inst.qubits[0]], cindex[inst.clbits[0]]) for inst in finals]
    measured_qubits = sorted({q for q, _ in final_map})
    out: dict[str, float] = {}
    for p, state, bits in branch(circuit, tail):
        probs = state.probabilities(measured_qubits) if measured_qubits else np.ones(1)
        for index in np.flatnonzero(probs > 1e-14):
            value = {q: (int(index) >> k) & 1 for k, q in enumerate(measured_qubits)}
            final = list(bits)
            for q, c in final_map:  # in order: a bit written twice keeps the last value
                final[c] = value[q]
            flat = "".join(str(final[n - 1 - j]) for j in range(n))
            key = layout.format(flat)
            out[key] = out.get(key, 0.0) + p * float(probs[index])
    return out


def exact_expectation(circuit: QuantumCircuit, observable: Any) -> float:
    """Exact expectation value of ``observable`` after ``circuit``, final measurements ignored.

    A measurement is final (Qiskit's sense) when no later operation acts on its qubit and no later
    condition reads its bit; every other measurement and reset collapses the state as it would.
    """
    from qiskit.quantum_info import SparsePauliOp

    op = SparsePauliOp(observable) if isinstance(observable, str) else observable
    data = list(circuit.data)
    busy: set[Any] = set()
    read: set[Any] = set()
    final: set[int] = set()
    for index in range(len(data) - 1, -1, -1):
        inst = data[index]
        if inst.name == "measure":
            if inst.qubits[0] not in busy and inst.clbits[0] not in read:
                final.add(index)
        elif inst.name not in ("barrier", "delay"):
            busy.update(inst.qubits)
            if inst.is_control_flow():
                read.update(inst.clbits)
    return float(sum(p * state.expectation_value(op).real for p, state, _ in branch(circuit, skip=frozenset(final))))


def _value(node: Any, bits: tuple[int, ...], outer: dict[Any, int]) -> int:
    """A classical expression's value (bits and registers read from ``bits``), for the reference."""
    import operator

    from qiskit.circuit.classical import expr

    kind = type(node).__name__
    if kind == "Var":
        from qiskit.circuit import Clbit

        if isinstance(node.var, Clbit):
            return bits[outer[node.var]]
        return sum(bits[outer[b]] << i for i, b in enumerate(node.var))
    if kind == "Value":
        return int(node.value)
    if kind == "Cast":
        inner = _value(node.operand, bits, outer)
        return int(bool(inner)) if type(node.type).__name__ == "Bool" else inner
    if kind == "Index":
        return (_value(node.target, bits, outer) >> _value(node.index, bits, outer)) & 1
    if kind == "Unary":
        inner = _value(node.operand, bits, outer)
        if node.op is expr.Unary.Op.LOGIC_NOT:
            return int(not inner)
        width = getattr(node.type, "width", None)
        return ((1 << width) - 1) ^ inner if width else int(not inner)
    ops = {
        "BIT_AND": operator.and_, "BIT_OR": operator.or_, "BIT_XOR": operator.xor, "EQUAL": operator.eq,
        "NOT_EQUAL": operator.ne, "LESS": operator.lt, "LESS_EQUAL": operator.le, "GREATER": operator.gt,
        "GREATER_EQUAL": operator.ge, "LOGIC_AND": lambda a, b: bool(a) and bool(b),
        "LOGIC_OR": lambda a, b: bool(a) or bool(b),
    }  # fmt: skip
    assert kind == "Binary", f"the reference cannot evaluate {node}"
    return int(ops[node.op.name](_value(node.left, bits, outer), _value(node.right, bits, outer)))


def tvd(counts: Mapping[str, int], exact: Mapping[str, float]) -> float:
    shots = sum(counts.values())
    keys = set(counts) | set(exact)
    return 0.5 * sum(abs(counts.get(k, 0) / shots - exact.get(k, 0.0)) for k in keys)


def tvd_tolerance(exact: Mapping[str, float], shots: int) -> float:
    """Bound on the TVD of ``shots`` samples from ``exact``, failing with tiny probability.

    E[TVD] <= 1/2 sum_i sqrt(p_i (1 - p_i) / N); the TVD changes by at most 1/N per sample, so by
    McDiarmid it exceeds its mean by t with probability at most exp(-2 N t^2).
    """
    mean = 0.5 * sum(math.sqrt(p * (1 - p) / shots) for p in exact.values())
    return mean + math.sqrt(math.log(1 / FAILURE_PROBABILITY) / (2 * shots))


def assert_matches(counts: Mapping[str, int], exact: Mapping[str, float], *, what: str = "counts") -> None:
    shots = sum(counts.values())
    distance = tvd(counts, exact)
    bound = tvd_tolerance(exact, shots)
    assert distance <= bound, f"{what}: TVD {distance:.4f} exceeds the shot-noise bound {bound:.4f} ({shots} shots)"
    unexpected = [k for k in counts if k not in exact]
    assert not unexpected, f"{what}: outcomes with zero exact probability: {unexpected[:5]}"


def assert_same_distribution(a: Mapping[str, int], b: Mapping[str, int], *, what: str = "counts") -> None:
    """Two samplers agree: the TVD of their empirical distributions is within two-sample shot noise.

    The expected TVD is bounded with the pooled frequencies, 1/2 sum_i sqrt(p_i (1 - p_i) (1/Na + 1/Nb));
    each sample moves the TVD by at most 1/Na or 1/Nb, so McDiarmid adds
    sqrt(log(1/delta) (1/Na + 1/Nb) / 2).
    """
    na, nb = sum(a.values()), sum(b.values())
    keys = set(a) | set(b)
    pooled = {k: (a.get(k, 0) + b.get(k, 0)) / (na + nb) for k in keys}
    scale = 1 / na + 1 / nb
    mean = 0.5 * sum(math.sqrt(p * (1 - p) * scale) for p in pooled.values())
    bound = mean + math.sqrt(math.log(1 / FAILURE_PROBABILITY) * scale / 2)
    distance = 0.5 * sum(abs(a.get(k, 0) / na - b.get(k, 0) / nb) for k in keys)
    assert distance <= bound, (
        f"{what}: TVD {distance:.4f} between the samplers exceeds {bound:.4f} ({na} vs {nb} shots)"
    )


def cut_tvd_tolerance(
    exact: Mapping[str, float], *, total_shots: int, overhead: float, sampled: int, outcomes: int
) -> float:
    """Bound on the TVD of counts sampled from a distribution reconstructed from cut subexperiments.

    The quasi-probability estimate p(x) = sum_t c_t prod_l q_tl(x_l) spends ``total_shots`` on its
    subexperiments, shared in proportion to |c_t|, and kappa^2 = ``overhead`` = (sum |c_t|)^2. Each
    shot moves the estimate by at most 2 |c_t| / N_t in L1, so by McDiarmid its L1 error exceeds its
    mean by t with probability at most exp(-t^2 N / (2 kappa^2)); the mean is at most
    sqrt(K kappa^2 / N) over the K = ``outcomes`` possible outcomes (Cauchy-Schwarz over outcomes,
    each variance bounded by the terms' c_t^2 P(x) / N_t). The TVD is half the L1 error; the other
    half is allowed for the move to the nearest probability distribution, and the final
    ``sampled`` counts add the usual multinomial bound.
    """
    k = max(outcomes, 1)
    n = max(total_shots, 1)
    l1 = math.sqrt(k * overhead / n) + math.sqrt(2 * overhead * math.log(1 / FAILURE_PROBABILITY) / n)
    return l1 + tvd_tolerance(exact, sampled)
