"""Cut subexperiments, generated once per distinct circuit.

qiskit-addon-cutting's ``generate_cutting_experiments`` builds one circuit per QPD term, piece and
commuting observable group, decomposing the QPD gates afresh for each. A piece's circuit depends
only on the maps of the cuts that touch it, so most terms repeat circuits another term already
built (a CX gate cut has six terms but fewer distinct one-sided operations). :func:`generate_experiments`
returns exactly the library's output, same order, same coefficients, with each distinct circuit
built once and shared by every term that uses it; planning a cut then costs time in proportion to
the distinct circuits, not to the terms.

It uses the library's own building blocks (its QPD weights, decomposition and measurement
helpers); ``tests/network/test_cut_experiments.py`` checks it against the library's function.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import PauliList

__all__ = ["generate_experiments", "count_distinct"]


def generate_experiments(
    subcircuits: Mapping[Hashable, QuantumCircuit], observables: Mapping[Hashable, PauliList]
) -> tuple[dict[Hashable, list[QuantumCircuit]], list[tuple[float, Any]]]:
    """Every QPD term's subexperiments (all terms, no sampling), as the library orders them.

    Args:
        subcircuits: The partitioned problem's subcircuits, by label.
        observables: Their sub-observables, by label.

    Returns:
        Subexperiments per label (entry ``t * groups + j`` for term ``t`` and observable group
        ``j``; identical entries are the same object) and the coefficient of each term.
    """
    from qiskit_addon_cutting.cutting_experiments import (
        _append_measurement_circuit,
        _append_measurement_register,
        _consolidate_resets,
        _get_bases_by_partition,
        _get_mapping_ids_by_partition,
        _remove_final_resets,
        _remove_resets_in_zero_state,
    )
    from qiskit_addon_cutting.qpd import decompose_qpd_instructions, generate_qpd_weights
    from qiskit_addon_cutting.utils.observable_grouping import ObservableCollection

    gate_ids, map_ids_by_label = _get_mapping_ids_by_partition(dict(subcircuits))
    bases = _get_bases_by_partition(dict(subcircuits), gate_ids)
    groups = {label: ObservableCollection(obs).groups for label, obs in observables.items()}
    weights = generate_qpd_weights(bases, num_samples=np.inf)
    kappa = np.prod([basis.kappa for basis in bases])
    total = sum(value[0] for value in weights.values())
    ordered = sorted(weights.items(), key=lambda item: item[1][0], reverse=True)  # as the library sorts

    built: dict[tuple[Hashable, Any, int], QuantumCircuit] = {}
    out: dict[Hashable, list[QuantumCircuit]] = {label: [] for label in observables}
    coefficients: list[tuple[float, Any]] = []
    for map_ids, (redundancy, weight_type) in ordered:
        coefficient = np.prod([basis.coeffs[m] for basis, m in zip(bases, map_ids, strict=True)])
        coefficients.append(((redundancy / total) * (kappa * np.sign(coefficient)), weight_type))
        for label in observables:
            own = tuple(map_ids[j] for j in map_ids_by_label[label])
            sides = _sides(subcircuits[label], gate_ids[label], own)
            for j, group in enumerate(groups[label]):
                key = (label, sides, j)
                circuit = built.get(key)
                if circuit is None:
                    circuit = _append_measurement_register(subcircuits[label], group)
                    decompose_qpd_instructions(circuit, gate_ids[label], own, inplace=True)
                    _append_measurement_circuit(circuit, group, inplace=True)
                    _remove_resets_in_zero_state(circuit)
                    _remove_final_resets(circuit)
                    _consolidate_resets(circuit)
                    built[key] = circuit
                out[label].append(circuit)
    return out, coefficients


def _sides(circuit: QuantumCircuit, gate_ids: list[list[int]], map_ids: tuple[int, ...]) -> tuple[Any, ...]:
    """What each of the piece's QPD gates becomes under ``map_ids``: its own side of the map.

    Two terms that give every QPD gate of the piece the same operations build the same circuit.
    """
    out = []
    for (index,), m in zip(gate_ids, map_ids, strict=True):
        op = circuit.data[index].operation
        ops = op.basis.maps[m][op.qubit_id]
        out.append(tuple((g.name, tuple(_param_key(p) for p in g.params)) for g in ops))
    return tuple(out)


def _param_key(value: Any) -> Any:
    """A hashable, exact stand-in for a gate parameter (a number, or a matrix of a general
    two-qubit decomposition's ``UnitaryGate``)."""
    if isinstance(value, np.ndarray):
        return (value.shape, value.dtype.str, value.tobytes())
    try:
        return float(value)
    except (TypeError, ValueError):
        return repr(value)


def count_distinct(subexperiments: Mapping[Hashable, list[QuantumCircuit]]) -> int:
    """Distinct circuit objects among the subexperiments (what :func:`generate_experiments` built)."""
    return sum(len({id(c) for c in circuits}) for circuits in subexperiments.values())
