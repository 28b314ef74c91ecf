"""The memoized subexperiment generator reproduces qiskit-addon-cutting's own, circuit for circuit."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import PauliList

from network.cutting.experiments import count_distinct, generate_experiments


def _problem(kind: str) -> tuple[dict, dict]:
    from qiskit_addon_cutting import cut_wires, expand_observables, partition_problem
    from qiskit_addon_cutting.instructions import CutWire

    qc = QuantumCircuit(4)
    for q in range(4):
        qc.ry(0.3 + q, q)
    qc.cx(0, 1)
    qc.rzz(0.4, 1, 2)  # crosses the cut
    qc.cx(2, 3)
    if kind == "wire":
        qc.append(CutWire(), [1])
    qc.cx(1, 2)  # crosses the cut
    qc.ry(0.2, 1)
    observables = PauliList(["ZZZZ", "XIIX", "IYZI"])
    if kind == "wire":
        expanded_circuit = cut_wires(qc)
        labels = "AABB" + "B"  # the Move's new qubit sits with the second piece
        problem = partition_problem(expanded_circuit, labels, expand_observables(observables, qc, expanded_circuit))
    else:
        problem = partition_problem(qc, "AABB", observables)
    return problem.subcircuits, problem.subobservables


@pytest.mark.parametrize("kind", ["gates", "wire"])
def test_same_subexperiments_and_coefficients_as_the_library(kind: str) -> None:
    from qiskit_addon_cutting import generate_cutting_experiments

    subcircuits, subobservables = _problem(kind)
    theirs, their_coefficients = generate_cutting_experiments(subcircuits, subobservables, np.inf)
    ours, our_coefficients = generate_experiments(subcircuits, subobservables)
    assert our_coefficients == their_coefficients
    assert set(ours) == set(theirs)
    for label in theirs:
        assert len(ours[label]) == len(theirs[label])
        assert all(a == b for a, b in zip(ours[label], theirs[label], strict=True)), label
    # identical circuits are built once and shared
    assert count_distinct(ours) < sum(len(c) for c in ours.values())
