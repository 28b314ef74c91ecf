"""Parameter sweeps: one parameterized circuit, many bindings, batched per node.

Pure planning (:func:`plan_sweep`): each batch of bindings is a shard (``Shard.bindings``) that the
one executor runs like any other (ledger, retries, failover, host slots, progress);
:func:`sweep_inputs` says what each shard runs and :func:`sweep_frame` turns the results into one
row per binding.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import operator
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from qiskit import QuantumCircuit

from network.circuits import ClbitLayout, analyze_circuit, derive_seed, parse_qasm
from network.errors import ExecutionError, PlanningError, SpecError
from network.execution import ShardResult, SweepInput
from network.node_providers import QPUNodeSpec, QPURegistry, describe_capacities
from network.planning import Shard, node_identity, one_cpu_node_per_host
from network.spec import validate_shots

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SweepSpec", "SweepPlan", "plan_sweep", "sweep_inputs", "sweep_frame", "grid_bindings"]

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
    (``{name: [values]}``, expanded to its cartesian product). ``max_cost`` refuses a sweep whose
    estimated price exceeds it before anything runs.

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
    max_cost: float | None = None
    values: tuple[tuple[float, ...], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if (self.circuit_object is None) == (self.qasm is None):
            raise SpecError("Give exactly one of circuit_object= or qasm=.")
        if (self.bindings is None) == (self.grid is None):
            raise SpecError("Give exactly one of bindings= or grid=.")
        validate_shots(self.shots)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise SpecError(f"seed must be a non-negative integer or None, got {self.seed!r}.")
        if self.max_cost is not None and (
            isinstance(self.max_cost, bool) or not isinstance(self.max_cost, int | float) or not self.max_cost >= 0
        ):
            raise SpecError(f"max_cost must be a number >= 0 or None, got {self.max_cost!r}.")
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
class SweepPlan:
    """Where a sweep's bindings run: one shard per batch of bindings (``Shard.bindings``).

    Attributes:
        sweep_key: Identity of the sweep (circuit, bindings, shots, seed).
        shards: Batches of bindings, each on one node; a remote node's batches hold one binding
            each (one ledgered job per binding).
        shots: Shots per binding.
        seed: Base seed of the batches.
        approximate: True when the bindings run on approximate nodes.
        nodes: The nodes used, as planned.
    """

    sweep_key: str
    shards: tuple[Shard, ...]
    shots: int
    seed: int
    approximate: bool
    nodes: tuple[QPUNodeSpec, ...] = ()
    mode: str = ""

    @property
    def run_key(self) -> str:
        """Identity of this run of the sweep (the sweep, where its batches run, the nodes and the mode):
        the ledger's key and the folder its table is stored in, so the same sweep on another cluster or
        in another mode never shares them."""
        layout = [(s.node_id, s.bindings, s.seed) for s in self.shards]
        text = repr((self.sweep_key, layout, node_identity(self.nodes), self.mode))
        return "sweep-" + hashlib.sha256(text.encode()).hexdigest()[:20]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sweep_key": self.sweep_key,
            "shots": self.shots,
            "seed": self.seed,
            "approximate": self.approximate,
            "mode": self.mode,
            "nodes": [n.to_dict() for n in self.nodes],
            "shards": [s.to_dict() for s in self.shards],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepPlan:
        return cls(
            str(data["sweep_key"]),
            tuple(Shard.from_dict(s) for s in data["shards"]),
            int(data["shots"]),
            int(data["seed"]),
            bool(data["approximate"]),
            tuple(QPUNodeSpec.from_dict(n) for n in data.get("nodes", ())),
            str(data.get("mode", "")),
        )


def plan_sweep(
    sweep: SweepSpec,
    registry: QPURegistry | Sequence[QPUNodeSpec],
    *,
    seed: int | None = None,
    max_batch: int = 2048,
    single: Collection[str] = (),
) -> SweepPlan:
    """Spread the bindings over the nodes that fit, in contiguous batches (one shard each).

    Exact nodes first. CPU simulators already spread one batch over their host's cores, so one
    CPU node per host takes part; GPU and QPU nodes each take their own share.

    Args:
        sweep: The sweep.
        registry: The cluster, or its nodes as they run in this mode.
        seed: Base seed when ``sweep.seed`` is unset.
        max_batch: Most bindings in one batch.
        single: Nodes whose jobs hold one circuit (remote providers): their batches hold one binding,
            so each binding is one ledgered job.

    Raises:
        PlanningError: No node is wide enough, or the estimate exceeds ``sweep.max_cost``.
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
    shards: list[Shard] = []
    for k in range(shares):
        node = chosen[k]
        size = 1 if node.node_id in single else max(1, min(per_node, max_batch))
        for start in range(k * per_node, min(total, (k + 1) * per_node), size):
            stop = min(total, start + size, (k + 1) * per_node)
            i = len(shards)
            shards.append(
                Shard(
                    shard_id=i, node_id=node.node_id, qubits=(), clbits=(), shots=sweep.shots,
                    seed=derive_seed(base_seed, "sweep", i), whole_circuit=True, exact=node.exact,
                    estimated_seconds=0.0, estimated_cost=node.price(sweep.shots * (stop - start), tasks=1),
                    bindings=(start, stop),
                )
            )  # fmt: skip
    used = {s.node_id for s in shards}
    cost = sum(s.estimated_cost for s in shards)
    if sweep.max_cost is not None and cost > sweep.max_cost + 1e-12:
        raise PlanningError(
            f"The sweep is estimated at {cost:g} ({len(shards)} task(s), {sweep.n_bindings} binding(s) x {sweep.shots} "
            f"shots), above the budget max_cost={sweep.max_cost:g}. Raise max_cost, lower the shots or the bindings, "
            "or use cheaper nodes."
        )
    return SweepPlan(
        sweep.sweep_key, tuple(shards), sweep.shots, base_seed, not exact, tuple(n for n in nodes if n.node_id in used)
    )


def sweep_inputs(sweep: SweepSpec, shards: Sequence[Shard]) -> dict[int, SweepInput]:
    """What each sweep shard runs: the circuit and its bindings, by shard id."""
    names = sweep.parameter_names
    out = {}
    for shard in shards:
        assert shard.bindings is not None
        start, stop = shard.bindings
        out[shard.shard_id] = SweepInput(
            sweep.circuit, [dict(zip(names, v, strict=True)) for v in sweep.values[start:stop]]
        )
    return out


class _ParitySigns(dict[str, int]):
    """``(-1) ** (number of 1s)`` per key, computed once per distinct key."""

    def __missing__(self, key: str) -> int:
        sign = self[key] = (-1) ** key.count("1")
        return sign


def sweep_frame(sweep: SweepSpec, plan: SweepPlan, results: Sequence[ShardResult]) -> pd.DataFrame:
    """One row per binding: parameters, counts (JSON), Z-parity expectation, node, batch time.

    Raises:
        ExecutionError: A shard has no result, or a result holds the wrong number of bindings.
    """
    import pandas as pd

    by_shard = {r.shard_id: r for r in results}
    layout = ClbitLayout.of(sweep.circuit)
    # Flat keys already are the printed keys unless the registers reorder them: decide once.
    fmt = None if layout.is_identity or not layout.qiskit_style else layout.format
    encode = json.JSONEncoder(sort_keys=True).encode  # what json.dumps(..., sort_keys=True) does
    signs = _ParitySigns()
    names = sweep.parameter_names
    shots = sweep.shots
    rows: list[dict[str, Any]] = []
    for shard in plan.shards:
        assert shard.bindings is not None
        start, stop = shard.bindings
        result = by_shard.get(shard.shard_id)
        if result is None:
            raise ExecutionError(f"Sweep shard {shard.shard_id} (bindings {start}:{stop}) has no result.")
        per_binding = result.binding_counts if result.binding_counts is not None else [result.counts]
        if len(per_binding) != stop - start:
            raise ExecutionError(
                f"Sweep shard {shard.shard_id} returned {len(per_binding)} results for {stop - start} bindings."
            )
        seconds = result.seconds / max(1, stop - start)
        node_id = result.node_id
        for offset, counts in enumerate(per_binding):
            index = start + offset
            row: dict[str, Any] = {"binding": index}
            row.update(zip(names, sweep.values[index], strict=True))
            row["counts"] = encode(counts if fmt is None else {fmt(k): v for k, v in counts.items()})
            row["parity"] = sum(map(operator.mul, map(signs.__getitem__, counts), counts.values())) / shots
            row["shots"] = shots
            row["node_id"] = node_id
            row["seconds"] = seconds
            rows.append(row)
    return pd.DataFrame(rows).sort_values("binding", ignore_index=True)
