from __future__ import annotations

import pytest
from qiskit import QuantumCircuit

from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import CircuitParseError, QVMError, SpecError
from network.node_providers import QPURegistry

BELL_QASM2 = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0], q[1];
measure q -> c;
"""

BELL_QASM3 = """OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
cx q[0], q[1];
c = measure q;
"""


def _bell() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


@pytest.mark.parametrize("shots", [0, -5, 2.5, "100", True])
def test_bad_shots_are_rejected_with_the_value(shots: object) -> None:
    with pytest.raises(SpecError, match="shots must be a positive integer") as info:
        VirtualCircuitSpec(circuit_object=_bell(), shots=shots)  # type: ignore[arg-type]
    assert repr(shots) in str(info.value)


@pytest.mark.parametrize("shots", [0, -1])
def test_qvm_default_shots_are_validated(cpu_cluster: QPURegistry, shots: int) -> None:
    with pytest.raises(SpecError, match=str(shots)):
        DistributedQVM(cpu_cluster, shots=shots)


def test_invalid_qasm_raises_a_typed_error_with_the_parser_message() -> None:
    with pytest.raises(CircuitParseError, match="Invalid OpenQASM 2") as info:
        VirtualCircuitSpec(qasm="OPENQASM 2.0;\nqreg q[2];\nfoo q[0];\n")
    assert isinstance(info.value, ValueError) and isinstance(info.value, QVMError)
    assert "foo" in str(info.value)
    with pytest.raises(CircuitParseError, match="OpenQASM 3"):
        VirtualCircuitSpec(qasm="OPENQASM 3.0;\nqubit[2] q;\nnotagate q[0];\n")
    with pytest.raises(CircuitParseError):
        VirtualCircuitSpec(qasm="   ")


def test_qubit_count_mismatch_quotes_both_numbers() -> None:
    with pytest.raises(SpecError, match=r"n_logical_qubits \(12\).*has 2 qubits"):
        VirtualCircuitSpec(n_logical_qubits=12, circuit_object=_bell())
    with pytest.raises(SpecError, match=r"\(3\).*has 2 qubits"):
        VirtualCircuitSpec(n_logical_qubits=3, qasm=BELL_QASM2)


@pytest.mark.parametrize("text", [BELL_QASM2, BELL_QASM3])
def test_qasm2_and_qasm3_parse(text: str) -> None:
    spec = VirtualCircuitSpec(n_logical_qubits=2, qasm=text)
    assert spec.circuit.num_qubits == 2 and spec.circuit.num_clbits == 2
    assert spec.analysis.active_components[0].qubits == (0, 1)


def test_exactly_one_circuit_input_and_measurements_required() -> None:
    with pytest.raises(SpecError, match="exactly one"):
        VirtualCircuitSpec()
    with pytest.raises(SpecError, match="exactly one"):
        VirtualCircuitSpec(circuit_object=_bell(), qasm=BELL_QASM2)
    with pytest.raises(SpecError, match="QuantumCircuit"):
        VirtualCircuitSpec(circuit_object="not a circuit")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="no classical bits"):
        VirtualCircuitSpec(circuit_object=QuantumCircuit(2))


def test_bad_seed_and_strategy() -> None:
    with pytest.raises(SpecError, match="seed"):
        VirtualCircuitSpec(circuit_object=_bell(), seed=-1)
    with pytest.raises(SpecError, match="'diagonal'"):
        VirtualCircuitSpec(circuit_object=_bell(), strategy="diagonal")
