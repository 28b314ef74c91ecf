"""Parameter sweeps: one parameterized circuit, many bindings, batched per node.

Pure planning (:func:`plan_sweep`) and one execution step (:func:`run_sweep_batch`) that both
drivers call; :func:`sweep_frame` turns the results into one row per binding.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import operator
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from qiskit import QuantumCircuit

from network.circuits import ClbitLayout, analyze_circuit, derive_seed, normalize_counts, parse_qasm
from network.errors import ExecutionError, PlanningError, QVMError, SpecError
from network.node_providers import QPUNodeSpec, QPURegistry, describe_capacities
from network.planning import one_cpu_node_per_host
from network.spec import validate_shots

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SweepSpec", "SweepBatch", "SweepPlan", "plan_sweep", "run_sweep_batch", "sweep_frame", "grid_bindings"]

#: Most bindings a sweep may hold (a grid multiplies quickly).
MAX_BINDINGS = 1_000_000


def grid_bindings(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """The cartesian product of a grid ``{"theta": [...], "phi": [...]}``, in row-major order."""
    if not grid:
        raise SpecError("A sweep grid needs at least one parameter.")
    names = list(grid)
    for name in names:
        values = grid[name]
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise SpecError(f"Grid values for {name!r} must be a non-empty list of numbers, got {values!r}.")
    size = math.prod(len(grid[n]) for n in names)
    if size > MAX_BINDINGS:
        raise SpecError(f"The grid has {size} points, more than the limit of {MAX_BINDINGS}.")
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(grid[n] for n in names))]


@dataclass(frozen=True, eq=False)
class SweepSpec:
    """A parameterized circuit and the bindings to run it with.

    Give ``circuit_object`` or ``qasm`` (OpenQASM 3 ``input float`` parameters become circuit
    parameters), and ``bindings`` (a list of ``{name: value}``) or ``grid``
    (``{name: [values]}``, expanded to its cartesian product).

    Raises:
        SpecError: No parameters, a binding that misses or adds a parameter, a non-finite value,
            bad shots or seed.
    """

    circuit_object: QuantumCircuit | None = None
    qasm: str | None = None
    bindings: Sequence[Mapping[str, float]] | None = None
    grid: Mapping[str, Sequence[float]] | None = None
    shots: int = 1024
    seed: int | None = None
    name: str | None = None
    allow_approximate: bool = True
    values: tuple[tuple[float, ...], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if (self.circuit_object is None) == (self.qasm is None):
            raise SpecError("Give exactly one of circuit_object= or qasm=.")
        if (self.bindings is None) == (self.grid is None):
            raise SpecError("Give exactly one of bindings= or grid=.")
        validate_shots(self.shots)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise SpecError(f"seed must be a non-negative integer or None, got {self.seed!r}.")
        circuit = self.circuit
        if circuit.num_clbits == 0:
            raise SpecError("The circuit has no classical bits, so there is nothing to sample; add measurements.")
        names = self.parameter_names
        if not names:
            raise SpecError("The circuit has no parameters to sweep.")
        rows = grid_bindings(self.grid) if self.grid is not None else list(self.bindings or [])
        if not rows:
            raise SpecError("A sweep needs at least one binding.")
        if len(rows) > MAX_BINDINGS:
            raise SpecError(f"{len(rows)} bindings is more than the limit of {MAX_BINDINGS}.")
        name_set = set(names)
        getter = operator.itemgetter(*names) if len(names) > 1 else (lambda row: (row[names[0]],))
        values = []
        for i, row in enumerate(rows):
            # Fast path (plain dicts of floats, the usual case): C-level key and type checks.
            if type(row) is dict and row.keys() == name_set:
                vals = getter(row)
                if all(type(v) is float for v in vals) and all(map(math.isfinite, vals)):
                    values.append(vals)
                    continue
            values.append(self._checked_row(i, row, names, name_set))
        object.__setattr__(self, "values", tuple(values))

    @staticmethod
    def _checked_row(i: int, row: Any, names: list[str], name_set: set[str]) -> tuple[float, ...]:
        """One binding as floats in parameter order, with the error naming what is wrong."""
        if not isinstance(row, Mapping):
            raise SpecError(f"Binding {i} must be a mapping of parameter names to numbers, got {row!r}.")
        missing = [n for n in names if n not in row]
        extra = sorted(set(row) - name_set)
        if missing or extra:
            raise SpecError(
                f"Binding {i} {dict(row)!r} does not match the circuit's parameters {names}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {extra}" if extra else "")
                + "."
            )
        vals = []
        for n in names:
            v = row[n]
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise SpecError(f"Binding {i}: {n} must be a finite number, got {v!r}.")
            vals.append(float(v))
        return tuple(vals)

    @cached_property
    def circuit(self) -> QuantumCircuit:
        if self.circuit_object is not None:
            if not isinstance(self.circuit_object, QuantumCircuit):
                raise SpecError(f"circuit_object must be a QuantumCircuit, got {type(self.circuit_object).__name__}.")
            return self.circuit_object
        assert self.qasm is not None
        return parse_qasm(self.qasm)

    @cached_property
    def parameter_names(self) -> list[str]:
        return [p.name for p in self.circuit.parameters]

    @property
    def n_bindings(self) -> int:
        return len(self.values)

    @cached_property
    def sweep_key(self) -> str:
        """Identity of the sweep: circuit, bindings, shots and seed."""
        digest = hashlib.sha256()
        digest.update(analyze_circuit(self.circuit).circuit_hash.encode())
        digest.update(repr((self.parameter_names, self.values, self.shots, self.seed)).encode())
        return "sweep-" + digest.hexdigest()[:20]


@dataclass(frozen=True)
class SweepBatch:
    """Bindings ``start:stop`` on one node, run in one provider call."""

    batch_id: int
    node_id: str
    start: int
    stop: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SweepPlan:
    sweep_key: str
    batches: tuple[SweepBatch, ...]
    shots: int
    seed: int
    approximate: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "sweep_key": self.sweep_key,
            "shots": self.shots,
            "seed": self.seed,
            "approximate": self.approximate,
            "batches": [b.to_dict() for b in self.batches],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepPlan:
        return cls(
            str(data["sweep_key"]),
            tuple(SweepBatch(**b) for b in data["batches"]),
            int(data["shots"]),
            int(data["seed"]),
            bool(data["approximate"]),
        )


def plan_sweep(
    sweep: SweepSpec, registry: QPURegistry | Sequence[QPUNodeSpec], *, seed: int | None = None, max_batch: int = 2048
) -> SweepPlan:
    """Spread the bindings over the nodes that fit, in contiguous batches.

    Exact nodes first. CPU simulators already spread one batch over their host's cores, so one
    CPU node per host takes part; GPU and QPU nodes each take their own share.

    Raises:
        PlanningError: No node is wide enough.
    """
    nodes = tuple(registry.nodes if isinstance(registry, QPURegistry) else registry)
    width = sweep.circuit.num_qubits
    fit = [n for n in nodes if n.max_qubits >= width and (n.exact or sweep.allow_approximate)]
    if not fit:
        raise PlanningError(
            f"No node can take the {width}-qubit sweep circuit. Node capacities: {describe_capacities(nodes)}."
        )
    exact = [n for n in fit if n.exact]
    chosen = one_cpu_node_per_host(exact or fit)
    base_seed = sweep.seed if sweep.seed is not None else (seed if seed is not None else 0)
    total = sweep.n_bindings
    shares = max(1, min(len(chosen), total))
    per_node = math.ceil(total / shares)
    size = max(1, min(per_node, max_batch))
    batches = []
    for i, start in enumerate(range(0, total, size)):
        node = chosen[(start // per_node) % len(chosen)]
        batches.append(SweepBatch(i, node.node_id, start, min(total, start + size), derive_seed(base_seed, "sweep", i)))
    return SweepPlan(sweep.sweep_key, tuple(batches), sweep.shots, base_seed, not exact)


def run_sweep_batch(
    sweep: SweepSpec, batch: SweepBatch, registry: QPURegistry, node: QPUNodeSpec | None = None
) -> dict[str, Any]:
    """Run one batch on its node; returns ``{"batch_id", "node_id", "seconds", "counts": [...]}``."""
    node = node or registry.node(batch.node_id)
    provider = registry.provider(batch.node_id)
    if sweep.circuit.num_qubits > node.max_qubits:
        raise ExecutionError(f"Sweep circuit is wider than node {node.node_id!r} ({node.max_qubits} qubits).")
    bindings = [dict(zip(sweep.parameter_names, v, strict=True)) for v in sweep.values[batch.start : batch.stop]]
    start = time.perf_counter()
    try:
        raw = provider.execute_sweep(sweep.circuit, bindings, sweep.shots, node, seed=batch.seed)
    except QVMError:
        raise
    except Exception as exc:
        raise ExecutionError(f"Sweep batch {batch.batch_id} failed on node {node.node_id!r}: {exc}") from exc
    seconds = time.perf_counter() - start
    if len(raw) != len(bindings):
        raise ExecutionError(f"Node {node.node_id!r} returned {len(raw)} results for {len(bindings)} bindings.")
    counts = _normalize_all(raw, width=sweep.circuit.num_clbits, shots=sweep.shots, node_id=node.node_id)
    return {"batch_id": batch.batch_id, "node_id": node.node_id, "seconds": seconds, "counts": counts}


def _normalize_all(raw: Sequence[Any], *, width: int, shots: int, node_id: str) -> list[dict[str, int]]:
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


class _ParitySigns(dict[str, int]):
    """``(-1) ** (number of 1s)`` per key, computed once per distinct key."""

    def __missing__(self, key: str) -> int:
        sign = self[key] = (-1) ** key.count("1")
        return sign


def sweep_frame(sweep: SweepSpec, plan: SweepPlan, batch_results: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per binding: parameters, counts (JSON), Z-parity expectation, node, batch time."""
    import pandas as pd

    by_batch = {int(r["batch_id"]): r for r in batch_results}
    layout = ClbitLayout.of(sweep.circuit)
    # Flat keys already are the printed keys unless the registers reorder them: decide once.
    fmt = None if layout.is_identity or not layout.qiskit_style else layout.format
    encode = json.JSONEncoder(sort_keys=True).encode  # what json.dumps(..., sort_keys=True) does
    signs = _ParitySigns()
    names = sweep.parameter_names
    shots = sweep.shots
    rows: list[dict[str, Any]] = []
    for batch in plan.batches:
        result = by_batch.get(batch.batch_id)
        if result is None:
            raise ExecutionError(f"Sweep batch {batch.batch_id} has no result.")
        per_binding = result["seconds"] / max(1, batch.stop - batch.start)
        node_id = result["node_id"]
        for offset, counts in enumerate(result["counts"]):
            index = batch.start + offset
            row: dict[str, Any] = {"binding": index}
            row.update(zip(names, sweep.values[index], strict=True))
            row["counts"] = encode(counts if fmt is None else {fmt(k): v for k, v in counts.items()})
            row["parity"] = sum(map(operator.mul, map(signs.__getitem__, counts), counts.values())) / shots
            row["shots"] = shots
            row["node_id"] = node_id
            row["seconds"] = per_binding
            rows.append(row)
    return pd.DataFrame(rows).sort_values("binding", ignore_index=True)
