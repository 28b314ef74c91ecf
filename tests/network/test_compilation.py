"""The compile stage: lowering composite gates, per-node translation, deferred measurement."""

from __future__ import annotations

import math

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, qasm2
from qiskit.circuit.classical import expr
from qiskit.circuit.library import MCXGate, QFTGate, UnitaryGate
from qiskit.quantum_info import Operator, SparsePauliOp, Statevector, random_unitary

from network.compilation import (
    LOWERED_GATES,
    aer_basis,
    is_lowered,
    lower_circuit,
    translate,
    unitary_form,
    with_terminal_measurements,
)
from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import CircuitCompileError, QVMError, library_errors
from network.node_providers import ClusterBuilder
from tests.conftest import undeferrable_circuit
from tests.stats import assert_matches, exact_distribution, exact_expectation


def _composite() -> QuantumCircuit:
    qc = QuantumCircuit(5)
    qc.h(range(5))
    qc.append(QFTGate(3), [0, 1, 2])
    qc.append(MCXGate(3), [1, 2, 3, 4])
    qc.append(UnitaryGate(random_unitary(4, seed=7)), [3, 0])
    return qc


def test_composite_gates_lower_to_standard_two_qubit_gates_with_the_same_unitary() -> None:
    qc = _composite()
    lowered = lower_circuit(qc)
    assert is_lowered(lowered) and not is_lowered(qc)
    assert all(i.is_standard_gate() and len(i.qubits) <= 2 for i in lowered.data)
    assert {i.name for i in lowered.data} <= LOWERED_GATES
    assert Operator(lowered).equiv(Operator(qc))


def test_cheap_two_qubit_gates_are_kept_as_they_are() -> None:
    qc = QuantumCircuit(3)
    qc.cp(0.1, 0, 1)
    qc.rzz(0.2, 1, 2)
    qc.swap(0, 2)
    assert lower_circuit(qc) is qc  # already lowered: nothing rebuilt, cp(0.1) never becomes CX gates


def test_lowering_keeps_classical_bits_and_measurements_exactly() -> None:
    qr = QuantumRegister(4, "q")
    a, b = ClassicalRegister(1, "a"), ClassicalRegister(3, "b")
    qc = QuantumCircuit(qr, a, b)
    qc.append(QFTGate(4), qr)
    qc.measure(qr[0], b[2])
    qc.measure(qr[3], a[0])
    qc.measure(qr[1], b[0])
    lowered = lower_circuit(qc)
    assert [r.name for r in lowered.cregs] == ["a", "b"] and lowered.clbits == qc.clbits
    measured = [(lowered.find_bit(i.qubits[0]).index, lowered.find_bit(i.clbits[0]).index) for i in lowered.data
                if i.name == "measure"]  # fmt: skip
    assert sorted(measured) == [(0, 3), (1, 1), (3, 0)]  # commuting measurements may be reordered
    assert exact_distribution(lowered) == pytest.approx(exact_distribution(qc))


def test_a_custom_gate_named_like_an_aer_instruction_runs() -> None:
    """OpenQASM's ``gate unitary a { x a; }`` is not Aer's ``unitary``; it used to reach Aer as one."""
    text = """OPENQASM 2.0; include "qelib1.inc";
    gate unitary a { x a; }
    gate cu_ a, b { cx a, b; unitary b; }
    qreg q[3]; creg c[3];
    unitary q[0]; cu_ q[0], q[1]; ccx q[0], q[1], q[2];
    measure q -> c;"""
    registry = ClusterBuilder().add("local_cpu", n_nodes=1, max_qubits=8).build()
    result = DistributedQVM(registry).run(VirtualCircuitSpec(qasm=text, shots=100, seed=1))
    assert result.counts == {"001": 100}  # x, then cx and x undo q1, so the Toffoli does not fire


def test_an_opaque_gate_is_refused_with_its_name() -> None:
    text = (
        'OPENQASM 2.0; include "qelib1.inc"; opaque mystery a, b; qreg q[2]; creg c[2]; '
        "mystery q[0], q[1]; measure q -> c;"
    )
    with pytest.raises(CircuitCompileError, match=r"'mystery', which has no definition"):
        VirtualCircuitSpec(qasm=text)


def test_translation_for_a_node_is_cached_and_idempotent() -> None:
    qc = QuantumCircuit(2, 2)
    qc.ch(0, 1)  # Aer has no native ch
    qc.iswap(0, 1)
    qc.measure([0, 1], [0, 1])
    basis = aer_basis("statevector")
    assert "ch" not in basis and "cx" in basis
    first = translate(qc, basis, target="test node")
    assert {i.name for i in first.data} <= basis | {"measure"}
    assert translate(qc, basis, target="test node") is first  # once per distinct circuit and basis
    assert translate(first, basis) is first  # already in the basis
    assert Operator(first.remove_final_measurements(inplace=False)).equiv(
        Operator(qc.remove_final_measurements(inplace=False))
    )
    with pytest.raises(CircuitCompileError, match="no definition"):
        opaque = qasm2.loads("OPENQASM 2.0; opaque g a; qreg q[1]; g q[0];")
        translate(opaque, basis)


def _dynamic() -> QuantumCircuit:
    """Mid-circuit measurement, feed-forward on a bit, on a register and on an XOR, else, reset."""
    q = QuantumRegister(4, "q")
    m, f = ClassicalRegister(2, "m"), ClassicalRegister(3, "f")
    qc = QuantumCircuit(q, m, f)
    qc.h(0)
    qc.ry(1.1, 1)
    qc.cx(0, 2)
    qc.measure(0, m[0])
    qc.measure(1, m[1])
    with qc.if_test((m[0], 1)):
        qc.x(0)  # measure-and-flip: a reset by feed-forward
    with qc.if_test((m, 3)) as otherwise:
        qc.h(3)
    with otherwise:
        qc.ry(0.4, 3)
    with qc.if_test(expr.equal(expr.bit_xor(m[0], m[1]), True)):
        qc.rz(0.3, 2)
        qc.h(2)
    qc.reset(1)
    qc.ry(0.8, 1)
    qc.cx(1, 3)
    qc.measure(1, f[0])
    qc.measure(2, f[1])
    qc.measure(3, f[2])
    return qc


def test_deferred_measurement_keeps_the_exact_distribution() -> None:
    qc = _dynamic()
    form = unitary_form(lower_circuit(qc))
    assert form.dynamic and form.deferred == 2 and form.resets == 1 and form.conditions == 3
    assert not any(i.name in ("measure", "reset") or i.is_control_flow() for i in form.circuit.data)
    deferred = with_terminal_measurements(qc, form)
    assert exact_distribution(deferred) == pytest.approx(exact_distribution(qc), abs=1e-9)


def test_deferred_measurement_keeps_expectation_values() -> None:
    qc = _dynamic()
    qc_without_final = qc.copy()
    form = unitary_form(lower_circuit(qc_without_final), coherent_reads=True)
    state = Statevector(form.circuit)
    for label in ["IIXZ", "ZXII", "XIIX", "IYZI"]:
        padded = SparsePauliOp("I" * form.ancillas + label)
        assert state.expectation_value(padded).real == pytest.approx(exact_expectation(qc, label), abs=1e-9)


def test_dynamic_circuits_on_a_node_and_cut_match_exact_branching() -> None:
    qc = _dynamic()
    exact = exact_distribution(qc)
    roomy = ClusterBuilder().add("local_cpu", n_nodes=1, max_qubits=12).build()
    assert_matches(DistributedQVM(roomy).run(VirtualCircuitSpec(circuit_object=qc, shots=20_000, seed=2)).counts, exact)


def test_what_cannot_be_deferred_is_refused_with_a_typed_error() -> None:
    with pytest.raises(CircuitCompileError, match="'while_loop' block cannot be deferred"):
        unitary_form(undeferrable_circuit())


def test_library_panics_become_typed_errors() -> None:
    class PanicException(BaseException):  # what pyo3 raises from a Rust panic
        pass

    with pytest.raises(QVMError, match="Qiskit panicked: boom") as info, library_errors(CircuitCompileError, "testing"):
        raise PanicException("boom")
    assert isinstance(info.value.__cause__, PanicException)
    with pytest.raises(KeyboardInterrupt), library_errors(CircuitCompileError, "while testing"):
        raise KeyboardInterrupt


def test_unitary_form_of_terminal_measurements_adds_nothing() -> None:
    qc = QuantumCircuit(3, 3)
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    qc.measure([0, 1, 2], [2, 0, 1])
    form = unitary_form(qc)
    assert form.ancillas == 0 and not form.dynamic and form.clbit_sources == (1, 2, 0)
    assert math.isclose(float(np.abs(Statevector(form.circuit).data[0]) ** 2), 0.5)
