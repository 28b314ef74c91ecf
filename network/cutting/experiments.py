"""Cut subexperiments, generated once per distinct circuit, and the shots each one gets.

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

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import PauliList

from network.circuits import analyze_circuit

__all__ = [
    "MIN_CIRCUIT_SHOTS",
    "ShotAllocation",
    "SubexperimentShots",
    "allocate_shots",
    "count_distinct",
    "generate_experiments",
    "outcome_bits",
    "share_shots",
]

#: Fewest shots a distinct circuit gets (fewer only when the budget cannot give every circuit that
#: many); below it no standard error is reported.
MIN_CIRCUIT_SHOTS = 8


class ShotAllocation(StrEnum):
    """How :func:`run_cut` shares a plan's shot budget among its distinct circuits.

    ``PROPORTIONAL`` gives each circuit shots in proportion to the summed magnitude of the QPD
    coefficients of the terms that use it (qiskit-addon-cutting issue 532); ``UNIFORM`` gives
    every circuit the same.
    """

    PROPORTIONAL = "proportional"
    UNIFORM = "uniform"


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


def outcome_bits(keys: Sequence[str], width: int) -> np.ndarray:
    """Outcome keys as a (keys, width) 0/1 matrix whose column ``j`` is clbit ``j``.

    Keys are Qiskit-style bitstrings (clbit 0 rightmost; spaces between registers allowed) or hex
    (``"0x3"``).

    Raises:
        ValueError: A key of another width.
    """
    flat = [format(int(k, 16), f"0{width}b") if k.startswith("0x") else k.replace(" ", "") for k in keys]
    bad = next((k for k, f in zip(keys, flat, strict=True) if len(f) != width), None)
    if bad is not None:
        raise ValueError(f"Outcome key {bad!r} does not have the subexperiment's {width} classical bits.")
    chars = np.frombuffer("".join(flat).encode("ascii"), dtype=np.uint8).reshape(len(flat), width)
    return (chars[:, ::-1] == ord("1")).astype(np.int64)


def count_distinct(subexperiments: Mapping[Hashable, list[QuantumCircuit]]) -> int:
    """Distinct circuit objects among the subexperiments (what :func:`generate_experiments` built)."""
    return sum(len({id(c) for c in circuits}) for circuits in subexperiments.values())


def allocate_shots(weights: Sequence[float] | np.ndarray, total: int, minimum: int) -> list[int]:
    """Share ``total`` shots among circuits in proportion to ``weights``, at least ``minimum`` each.

    Circuits whose proportional share falls below ``minimum`` get exactly ``minimum``, and the
    rest of the budget is shared among the others in proportion to their weights (repeated
    until no share falls below it). Shares are rounded by largest remainder, so they sum to
    ``total`` exactly. All-zero weights share evenly.

    Raises:
        ValueError: ``minimum`` shots for every circuit exceed ``total``.
    """
    w = np.asarray(weights, dtype=float)
    n = len(w)
    if n == 0 or minimum * n > total:
        raise ValueError(f"Cannot give {n} circuit(s) at least {minimum} shots each from {total}.")
    if not w.sum() > 0:
        w = np.ones(n)
    held = np.zeros(n, dtype=bool)  # circuits held at the minimum
    while True:
        free = ~held
        share = np.where(free, (total - minimum * held.sum()) * w / w[free].sum(), minimum)
        low = free & (share < minimum + 1e-6)
        if not low.any() or low.sum() == free.sum():
            break
        held |= low
    shots = np.floor(share).astype(np.int64)
    shots[held] = minimum
    left = total - int(shots.sum())
    order = np.argsort(np.floor(share) - share, kind="stable")  # largest remainder first, ties by index
    shots[order[:left]] += 1
    return [int(x) for x in shots]


@dataclass(frozen=True)
class SubexperimentShots:
    """The distinct circuits of a cut's subexperiments and the shots of each.

    Attributes:
        circuits: Distinct circuits: identical subexperiments of a subcircuit merged, never
            across subcircuits (the reconstruction multiplies their estimates, which must stay
            independent).
        labels: Subcircuit label of each.
        index: Distinct circuit of each ``(label, subexperiment index)``.
        weights: Summed |coefficient| of the terms that use each.
        shots: Shots of each.
    """

    circuits: list[QuantumCircuit]
    labels: list[str]
    index: dict[tuple[Any, int], int]
    weights: np.ndarray
    shots: list[int]

    def allocate(self, total: int, allocation: ShotAllocation | str) -> SubexperimentShots:
        """The same circuits with ``total`` shots shared by ``allocation`` (see :func:`share_shots`).

        Raises:
            ValueError: ``allocation`` is not a :class:`ShotAllocation` value.
        """
        proportional = ShotAllocation(allocation) is ShotAllocation.PROPORTIONAL
        shares = self.weights if proportional else np.ones(len(self.circuits))
        return replace(self, shots=allocate_shots(shares, total, min(MIN_CIRCUIT_SHOTS, total // len(self.circuits))))


def share_shots(
    subexperiments: Mapping[Any, Sequence[QuantumCircuit]],
    coefficients: Sequence[tuple[float, Any]],
    total: int,
    allocation: ShotAllocation | str = ShotAllocation.PROPORTIONAL,
) -> SubexperimentShots:
    """Merge identical subexperiments and share ``total`` shots among the distinct circuits.

    A circuit's weight is the summed |coefficient| of the terms that use it: the library orders a
    label's subexperiments term by term and, within a term, one per commuting observable group
    of that label, so subexperiment ``i`` belongs to term ``i // groups``. ``PROPORTIONAL``
    shares in proportion to the weights, ``UNIFORM`` evenly; either way every circuit gets at
    least ``MIN_CIRCUIT_SHOTS`` shots (fewer only when the budget cannot give every circuit that
    many).

    Why proportional: a circuit's estimate enters the result multiplied by its terms'
    coefficients and by the other subcircuits' estimates (each at most 1 in magnitude), so its
    share of the variance is at most ``weight**2 / shots`` (first order). Shots in proportion
    to the weights minimize the sum of those bounds, ``(sum of weights)**2 / total``; by
    Cauchy-Schwarz that is never above the even share's, and far below it when the
    coefficients are unequal (with the minimum, :func:`allocate_shots` gives the allocation that
    minimizes the bound subject to it). The bound is not the variance: where the terms sharing a
    circuit cancel, or the other subcircuits' estimates are small, the gain can be smaller.

    Raises:
        ValueError: ``allocation`` is not a :class:`ShotAllocation` value.
    """
    unique: dict[tuple[str, str], int] = {}
    circuits: list[QuantumCircuit] = []
    labels: list[str] = []
    index: dict[tuple[Any, int], int] = {}
    hashes: dict[int, str] = {}  # generate_experiments shares identical circuits: hash each object once
    for label, circs in subexperiments.items():
        for i, circ in enumerate(circs):
            digest = hashes.get(id(circ))
            if digest is None:
                digest = hashes[id(circ)] = analyze_circuit(circ).circuit_hash
            key = (str(label), digest)
            if key not in unique:
                unique[key] = len(circuits)
                circuits.append(circ)
                labels.append(str(label))
            index[(label, i)] = unique[key]
    weights = np.zeros(len(circuits))
    for label, circs in subexperiments.items():
        groups = len(circs) // len(coefficients)
        for i in range(len(circs)):
            weights[index[(label, i)]] += abs(float(coefficients[i // groups][0]))
    return SubexperimentShots(circuits, labels, index, weights, []).allocate(total, allocation)
