"""Shard planning: where each part of a circuit runs. Pure: no I/O, no SDK, deterministic.

Strategies, cheapest exact first, chosen by a small cost model:

* ``WHOLE``: the circuit (its measured part) fits one node; the best node is exact first, then
  fastest by estimate, then cheapest.
* ``SHOT_SPLIT``: the same circuit on several equivalent nodes, shots divided, when the cost model
  says it finishes sooner (per-shot work: mid-circuit measurements, resets, control flow).
* ``PARTITION``: independent components of the qubit interaction graph packed into shards, one
  sub-circuit per shard. Exact: the blocks share no operation, so samples join shot by shot.

A circuit no strategy can place raises :class:`~network.errors.PlanningError` naming the widest
component and the node capacities.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from network.circuits import CircuitAnalysis, ClbitLayout, Component, derive_seed
from network.errors import PlanningError
from network.node_providers import QPUNodeSpec, QPURegistry, describe_capacities

if TYPE_CHECKING:
    from network.spec import VirtualCircuitSpec

__all__ = ["Strategy", "Shard", "ShardPlan", "CostModel", "ShardPlanner", "one_cpu_node_per_host"]


class Strategy(StrEnum):
    WHOLE = "whole"
    SHOT_SPLIT = "shot_split"
    PARTITION = "partition"
    CUT = "cut"


@dataclass(frozen=True)
class Shard:
    """One unit of work: a sub-circuit (or the whole circuit) on one node.

    Attributes:
        shard_id: Index in the plan.
        node_id: Node that runs it.
        qubits: Original qubit indices of the sub-circuit, in its qubit order.
        clbits: Original classical-bit indices, in the sub-circuit's bit order.
        shots: Shots this shard takes.
        seed: Simulator seed, derived from the plan seed and the shard id.
        whole_circuit: Run the original circuit unchanged (no sub-circuit is built).
        exact: False when the node is approximate.
        estimated_seconds: Cost-model estimate of the run time.
        estimated_cost: Price estimate from the node's per-shot and per-task prices.
        n_ops: Operations in the shard (barriers, delays, measurements excluded).
    """

    shard_id: int
    node_id: str
    qubits: tuple[int, ...]
    clbits: tuple[int, ...]
    shots: int
    seed: int
    whole_circuit: bool
    exact: bool
    estimated_seconds: float
    estimated_cost: float
    n_ops: int = 0

    @property
    def width(self) -> int:
        return len(self.qubits)

    def to_dict(self) -> dict[str, Any]:
        return {
            "shard_id": self.shard_id,
            "node_id": self.node_id,
            "qubits": list(self.qubits),
            "clbits": list(self.clbits),
            "shots": self.shots,
            "seed": self.seed,
            "whole_circuit": self.whole_circuit,
            "exact": self.exact,
            "estimated_seconds": self.estimated_seconds,
            "estimated_cost": self.estimated_cost,
            "n_ops": self.n_ops,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Shard:
        values = dict(data)
        values["qubits"] = tuple(values["qubits"])
        values["clbits"] = tuple(values["clbits"])
        return cls(**values)


@dataclass(frozen=True)
class ShardPlan:
    """A complete, serializable plan. ``to_json()`` is what a dry run prints."""

    strategy: Strategy
    shards: tuple[Shard, ...]
    shots: int
    seed: int
    circuit_hash: str
    n_qubits: int
    layout: ClbitLayout
    approximate: bool
    estimated_seconds: float
    estimated_cost: float
    nodes: tuple[QPUNodeSpec, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def n_clbits(self) -> int:
        return self.layout.n_clbits

    @property
    def run_key(self) -> str:
        """Identity of this run: the same circuit, shots, seed and shard layout give the same key.

        The ledger and the shard cache are keyed by it, so a retry, a flow-run retry or a fresh
        run of the same seeded spec on the same cluster finds what an earlier attempt submitted.
        """
        shards = [(s.node_id, s.qubits, s.clbits, s.shots, s.seed) for s in self.shards]
        text = repr((self.circuit_hash, self.strategy.value, self.shots, self.seed, shards))
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def node(self, node_id: str) -> QPUNodeSpec:
        for spec in self.nodes:
            if spec.node_id == node_id:
                return spec
        raise KeyError(node_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy.value,
            "shots": self.shots,
            "seed": self.seed,
            "circuit_hash": self.circuit_hash,
            "n_qubits": self.n_qubits,
            "layout": self.layout.to_dict(),
            "approximate": self.approximate,
            "estimated_seconds": self.estimated_seconds,
            "estimated_cost": self.estimated_cost,
            "nodes": [n.to_dict() for n in self.nodes],
            "notes": list(self.notes),
            "shards": [s.to_dict() for s in self.shards],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardPlan:
        return cls(
            strategy=Strategy(data["strategy"]),
            shards=tuple(Shard.from_dict(s) for s in data["shards"]),
            shots=int(data["shots"]),
            seed=int(data["seed"]),
            circuit_hash=str(data["circuit_hash"]),
            n_qubits=int(data["n_qubits"]),
            layout=ClbitLayout.from_dict(data["layout"]),
            approximate=bool(data["approximate"]),
            estimated_seconds=float(data["estimated_seconds"]),
            estimated_cost=float(data["estimated_cost"]),
            nodes=tuple(QPUNodeSpec.from_dict(n) for n in data.get("nodes", ())),
            notes=tuple(data.get("notes", ())),
        )


@dataclass(frozen=True)
class CostModel:
    """Rough run-time estimates, good enough to rank plans (not to promise deadlines).

    Statevector: ``ops * 2**width * sv_seconds_per_amp_op`` (divided by ``gpu_speedup`` on a GPU),
    times the shots when the circuit is dynamic (the simulator then re-runs it per shot), plus
    sampling. Matrix product states: cubic in an estimated bond dimension. QPUs: per shot.

    Attributes:
        host_cores: Cores of each host; local nodes share them.
    """

    task_overhead_s: float = 0.002
    sv_seconds_per_amp_op: float = 2.0e-9
    gpu_speedup: float = 25.0
    mps_seconds_per_chi3: float = 4.0e-9
    mps_max_bond: int = 256
    sample_seconds_per_shot_bit: float = 2.0e-8
    qpu_seconds_per_shot: float = 1.0e-3
    host_cores: int = field(default_factory=lambda: os.cpu_count() or 1)

    def shard_seconds(
        self, node: QPUNodeSpec, *, width: int, n_ops: int, n_multi: int, shots: int, dynamic: bool
    ) -> float:
        sample = shots * max(width, 1) * self.sample_seconds_per_shot_bit
        if node.device == "QPU":
            return self.task_overhead_s + shots * self.qpu_seconds_per_shot
        if node.exact:
            evolve = max(n_ops, 1) * (2.0**width) * self.sv_seconds_per_amp_op
            if node.device == "GPU":
                evolve /= self.gpu_speedup
        else:
            depth_proxy = n_multi / max(width, 1)
            chi = min(2.0 ** min(width / 2, depth_proxy), float(self.mps_max_bond))
            evolve = max(n_ops, 1) * width * (chi**3) * self.mps_seconds_per_chi3 / max(width, 1)
        if dynamic:
            evolve *= shots
        return self.task_overhead_s + evolve + sample

    def makespan(self, loads: Iterable[tuple[QPUNodeSpec, float]]) -> float:
        """Finish time when nodes run in parallel and nodes of one host share its cores."""
        per_node: dict[str, float] = {}
        per_host: dict[str, float] = {}
        host_nodes: dict[str, set[str]] = {}
        for node, seconds in loads:
            per_node[node.node_id] = per_node.get(node.node_id, 0.0) + seconds
            if node.device == "QPU":
                continue
            per_host[node.host] = per_host.get(node.host, 0.0) + seconds
            host_nodes.setdefault(node.host, set()).add(node.node_id)
        longest = max(per_node.values(), default=0.0)
        shared = max(
            (total / min(self.host_cores, len(host_nodes[host])) for host, total in per_host.items()),
            default=0.0,
        )
        return max(longest, shared)


@dataclass(frozen=True)
class _Candidate:
    strategy: Strategy
    assignments: tuple[tuple[QPUNodeSpec, tuple[int, ...], tuple[int, ...], int, bool, float, int], ...]
    seconds: float
    cost: float
    approximate: bool


_PREFERENCE = {Strategy.WHOLE: 0, Strategy.PARTITION: 1, Strategy.SHOT_SPLIT: 2, Strategy.CUT: 3}


class ShardPlanner:
    """Plans a :class:`~network.spec.VirtualCircuitSpec` onto a :class:`QPURegistry`.

    Args:
        cost_model: Estimates used to rank candidate plans.
        merge_width: Small components are packed together into shards up to this width, so a
            circuit of many tiny blocks does not become thousands of tasks.
        shot_split_gain: SHOT_SPLIT is chosen only when estimated at least this many times faster
            than running on one node.
    """

    def __init__(
        self, cost_model: CostModel | None = None, *, merge_width: int = 12, shot_split_gain: float = 1.3
    ) -> None:
        self.cost_model = cost_model or CostModel()
        self.merge_width = merge_width
        self.shot_split_gain = shot_split_gain

    def plan(
        self,
        spec: VirtualCircuitSpec,
        registry: QPURegistry | Sequence[QPUNodeSpec],
        *,
        shots: int | None = None,
        seed: int | None = None,
    ) -> ShardPlan:
        """Choose a strategy and shard the circuit.

        Args:
            spec: The circuit and its options.
            registry: The cluster (or just its node specs).
            shots: Shots when ``spec.shots`` is unset (default 1024).
            seed: Base seed when ``spec.seed`` is unset; otherwise one derived from the circuit.

        Raises:
            PlanningError: No strategy fits; the message names the widest component and the
                node capacities.
        """
        nodes = tuple(registry.nodes if isinstance(registry, QPURegistry) else registry)
        if not nodes:
            raise PlanningError("The cluster has no nodes.")
        total_shots = spec.shots or shots or 1024
        analysis = spec.analysis
        base_seed = spec.seed if spec.seed is not None else seed
        if base_seed is None:
            base_seed = int(analysis.circuit_hash[:8], 16) & 0x7FFF_FFFF
        usable = [n for n in nodes if n.exact or spec.allow_approximate]

        candidates: list[_Candidate] = []
        reasons: list[str] = []
        forced = Strategy(spec.strategy) if spec.strategy else None
        builders = {
            Strategy.WHOLE: self._whole,
            Strategy.SHOT_SPLIT: self._shot_split,
            Strategy.PARTITION: self._partition,
        }
        for strategy, build in builders.items():
            if forced is not None and strategy is not forced:
                continue
            result = build(analysis, usable, total_shots, strategy is forced)
            if isinstance(result, str):
                reasons.append(f"{strategy.value}: {result}")
            else:
                candidates.append(result)
        if not candidates:
            raise PlanningError(self._explain(analysis, nodes, spec, reasons))

        ranked = sorted(candidates, key=lambda c: (c.approximate, round(c.seconds, 4), c.cost, _PREFERENCE[c.strategy]))
        if spec.max_cost is not None:
            affordable = [c for c in ranked if c.cost <= spec.max_cost + 1e-12]
            if not affordable:
                cheapest = min(ranked, key=lambda c: c.cost)
                raise PlanningError(
                    f"Every plan exceeds the budget max_cost={spec.max_cost:g}: the cheapest, "
                    f"{cheapest.strategy.value}, is estimated at {cheapest.cost:g} "
                    f"({_cost_breakdown(cheapest)}). Raise max_cost, lower the shots, or use cheaper nodes."
                )
            ranked = affordable
        best = ranked[0]
        return self._materialize(best, analysis, total_shots, base_seed, nodes)

    # -- candidates -------------------------------------------------------------------------

    def _fits(self, nodes: Sequence[QPUNodeSpec], width: int) -> list[QPUNodeSpec]:
        return [n for n in nodes if n.max_qubits >= width]

    def _rank(self, node: QPUNodeSpec, seconds: float, shots: int) -> tuple[Any, ...]:
        return (not node.exact, round(node.price(shots, seconds), 9), round(seconds, 6))

    def _active(self, analysis: CircuitAnalysis) -> tuple[tuple[int, ...], int, int, bool]:
        """Measured qubits and their totals: operations, multi-qubit operations, dynamic."""
        comps = analysis.active_components
        return (
            tuple(sorted(q for c in comps for q in c.qubits)),
            sum(c.n_ops for c in comps),
            sum(c.n_multi for c in comps),
            any(c.dynamic for c in comps),
        )

    def _whole_target(
        self, analysis: CircuitAnalysis, nodes: Sequence[QPUNodeSpec]
    ) -> tuple[tuple[int, ...], bool, list[QPUNodeSpec]] | str:
        """Qubits a single node must hold: all of them if a node can, else only measured ones."""
        full = self._fits(nodes, analysis.n_qubits)
        if full:
            return tuple(range(analysis.n_qubits)), True, full
        qubits = self._active(analysis)[0]
        fit = self._fits(nodes, len(qubits))
        if not fit:
            widest = max((n.max_qubits for n in nodes), default=0)
            return f"needs {len(qubits)} qubits, the widest usable node has {widest}"
        return qubits, False, fit

    def _whole(
        self, analysis: CircuitAnalysis, nodes: Sequence[QPUNodeSpec], shots: int, forced: bool = False
    ) -> _Candidate | str:
        target = self._whole_target(analysis, nodes)
        if isinstance(target, str):
            return target
        qubits, whole, fit = target
        active, n_ops, n_multi, dynamic = self._active(analysis)
        width = len(active)  # simulators drop idle qubits themselves
        scored = []
        for node in fit:
            secs = self.cost_model.shard_seconds(
                node, width=width, n_ops=n_ops, n_multi=n_multi, shots=shots, dynamic=dynamic
            )
            scored.append((self._rank(node, secs, shots), node, secs))
        _, node, secs = min(scored, key=lambda t: t[0])
        cost = node.price(shots, secs)
        clbits = tuple(range(analysis.n_clbits))
        return _Candidate(
            Strategy.WHOLE,
            ((node, qubits, clbits, shots, whole, secs, n_ops),),
            secs,
            cost,
            not node.exact,
        )

    def _shot_split(
        self, analysis: CircuitAnalysis, nodes: Sequence[QPUNodeSpec], shots: int, forced: bool = False
    ) -> _Candidate | str:
        whole = self._whole(analysis, nodes, shots)
        if isinstance(whole, str):
            return whole
        lead = whole.assignments[0][0]
        qubits, is_whole = whole.assignments[0][1], whole.assignments[0][4]
        group = [
            n
            for n in nodes
            if (n.provider_key, n.method, n.device, n.exact)
            == (lead.provider_key, lead.method, lead.device, lead.exact)
            and n.max_qubits >= len(qubits)
        ]
        if not forced:
            # A CPU simulator already spreads shots over its host's cores: splitting shots only
            # pays across hosts (or devices).
            group = one_cpu_node_per_host(group)
        if len(group) < 2 or shots < 2:
            return f"needs two equivalent nodes and two shots (found {len(group)} like {lead.node_id})"
        active, n_ops, n_multi, dynamic = self._active(analysis)
        width = len(active)
        best: tuple[float, int] | None = None
        for k in range(len(group) if forced else 2, min(len(group), shots) + 1):
            parts = _split_evenly(shots, k)
            loads = [
                (
                    group[i],
                    self.cost_model.shard_seconds(
                        group[i], width=width, n_ops=n_ops, n_multi=n_multi, shots=s, dynamic=dynamic
                    ),
                )
                for i, s in enumerate(parts)
            ]
            span = self.cost_model.makespan(loads)
            if best is None or span < best[0] - 1e-12:
                best = (span, k)
        assert best is not None
        span, k = best
        if not forced and span * self.shot_split_gain > whole.seconds:
            return f"not faster than one node (estimated {span:.3g}s vs {whole.seconds:.3g}s)"
        clbits = tuple(range(analysis.n_clbits))
        assignments = []
        cost = 0.0
        for i, s in enumerate(_split_evenly(shots, k)):
            node = group[i]
            secs = self.cost_model.shard_seconds(
                node, width=width, n_ops=n_ops, n_multi=n_multi, shots=s, dynamic=dynamic
            )
            assignments.append((node, qubits, clbits, s, is_whole, secs, n_ops))
            cost += node.price(s, secs)
        return _Candidate(Strategy.SHOT_SPLIT, tuple(assignments), span, cost, not lead.exact)

    def _partition(
        self, analysis: CircuitAnalysis, nodes: Sequence[QPUNodeSpec], shots: int, forced: bool = False
    ) -> _Candidate | str:
        comps = analysis.active_components
        if not analysis.splittable:
            return "the circuit uses classical variables, which couple all its bits"
        if len(comps) < 2:
            return "the measured qubits form a single connected component"
        if not nodes:
            return "no usable nodes"
        widest_node = max(n.max_qubits for n in nodes)
        groups = [[c] for c in comps] if forced else self._merge_small(comps, min(self.merge_width, widest_node))
        if len(groups) < 2:
            return "all components fit in one small shard"
        # Longest-processing-time first: each group goes where it finishes earliest,
        # exact nodes always before approximate ones.
        loads: list[tuple[QPUNodeSpec, float]] = []
        node_load: dict[str, float] = {}
        host_load: dict[str, float] = {}
        host_count: dict[str, int] = {}
        for n in nodes:
            host_count[n.host] = host_count.get(n.host, 0) + 1
        sized = []
        for group in groups:
            width = sum(c.width for c in group)
            fit = self._fits(nodes, width)
            if not fit:
                widest = max(n.max_qubits for n in nodes) if nodes else 0
                return f"a component of {width} qubits fits no node (widest usable: {widest})"
            ref = self.cost_model.shard_seconds(
                fit[0],
                width=width,
                n_ops=sum(c.n_ops for c in group),
                n_multi=sum(c.n_multi for c in group),
                shots=shots,
                dynamic=any(c.dynamic for c in group),
            )
            sized.append((ref, group, fit))
        sized.sort(key=lambda t: (-t[0], t[1][0].qubits[0]))
        assignments = []
        cost = 0.0
        approximate = False
        for _, group, fit in sized:
            exact_fit = [n for n in fit if n.exact] or fit
            width = sum(c.width for c in group)
            n_ops = sum(c.n_ops for c in group)
            n_multi = sum(c.n_multi for c in group)
            dynamic = any(c.dynamic for c in group)
            options = []
            for node in exact_fit:
                secs = self.cost_model.shard_seconds(
                    node, width=width, n_ops=n_ops, n_multi=n_multi, shots=shots, dynamic=dynamic
                )
                cores = min(self.cost_model.host_cores, host_count[node.host])
                finish = max(node_load.get(node.node_id, 0.0) + secs, (host_load.get(node.host, 0.0) + secs) / cores)
                options.append((finish, node.price(shots, secs), secs, node))
            finish, price, secs, node = min(options, key=lambda t: (t[0], node_load.get(t[3].node_id, 0.0), t[1]))
            node_load[node.node_id] = node_load.get(node.node_id, 0.0) + secs
            host_load[node.host] = host_load.get(node.host, 0.0) + secs
            loads.append((node, secs))
            qubits = tuple(q for c in sorted(group, key=lambda c: c.qubits[0]) for q in c.qubits)
            clbits = tuple(sorted(b for c in group for b in c.clbits))
            assignments.append((node, qubits, clbits, shots, False, secs, n_ops))
            cost += price
            approximate = approximate or not node.exact
        assignments.sort(key=lambda a: a[1][0])
        return _Candidate(Strategy.PARTITION, tuple(assignments), self.cost_model.makespan(loads), cost, approximate)

    def _merge_small(self, comps: Sequence[Component], limit: int) -> list[list[Component]]:
        big = [[c] for c in comps if c.width > limit]
        small = sorted((c for c in comps if c.width <= limit), key=lambda c: c.qubits[0])
        merged: list[list[Component]] = []
        current: list[Component] = []
        width = 0
        for comp in small:  # first-fit in qubit order keeps shards contiguous and stable
            if current and width + comp.width > limit:
                merged.append(current)
                current, width = [], 0
            current.append(comp)
            width += comp.width
        if current:
            merged.append(current)
        return big + merged

    # -- output -----------------------------------------------------------------------------

    def _materialize(
        self,
        cand: _Candidate,
        analysis: CircuitAnalysis,
        shots: int,
        seed: int,
        nodes: Sequence[QPUNodeSpec],
    ) -> ShardPlan:
        shards = []
        for i, (node, qubits, clbits, s, whole, secs, n_ops) in enumerate(cand.assignments):
            shards.append(
                Shard(
                    shard_id=i,
                    node_id=node.node_id,
                    qubits=qubits,
                    clbits=clbits,
                    shots=s,
                    seed=derive_seed(seed, "shard", i),
                    whole_circuit=whole,
                    exact=node.exact,
                    estimated_seconds=secs,
                    estimated_cost=node.price(s, secs),
                    n_ops=n_ops,
                )
            )
        used = {s.node_id for s in shards}
        notes = []
        if analysis.unmeasured_qubits:
            notes.append(f"{analysis.unmeasured_qubits} qubit(s) are never measured and do not affect the counts.")
        if cand.approximate:
            approx = sum(1 for s in shards if not s.exact)
            notes.append(
                f"Approximate: {approx} of {len(shards)} shard(s) run on an approximate (matrix product state) node."
            )
        return ShardPlan(
            strategy=cand.strategy,
            shards=tuple(shards),
            shots=shots,
            seed=seed,
            circuit_hash=analysis.circuit_hash,
            n_qubits=analysis.n_qubits,
            layout=analysis.layout,
            approximate=cand.approximate,
            estimated_seconds=cand.seconds,
            estimated_cost=cand.cost,
            nodes=tuple(n for n in nodes if n.node_id in used),
            notes=tuple(notes),
        )

    def _explain(
        self,
        analysis: CircuitAnalysis,
        nodes: Sequence[QPUNodeSpec],
        spec: VirtualCircuitSpec,
        reasons: Sequence[str],
    ) -> str:
        widest = analysis.widest
        caps = describe_capacities(nodes)
        usable = [n for n in nodes if n.exact or spec.allow_approximate]
        largest = max((n.max_qubits for n in usable), default=0)
        parts = [f"Cannot place a {analysis.n_qubits}-qubit circuit on this cluster."]
        too_wide = widest is not None and widest.width > largest
        if widest is not None:
            span = _span(widest.qubits)
            parts.append(
                f"Its widest independent component has {widest.width} qubits ({span}); the widest "
                f"usable node holds {largest} qubits. Node capacities: {caps}."
            )
        if spec.strategy:
            parts.append(f"Strategy forced to {spec.strategy!r}.")
        if not spec.allow_approximate:
            parts.append("Approximate nodes are excluded (allow_approximate=False).")
        if too_wide and widest is not None:
            parts.append(
                "Let the planner cut it (no forced strategy, or strategy='cut'), add a node with at least "
                f"{widest.width} qubits, or an approximate matrix-product-state node (local_gpu_mps)."
            )
        if reasons:
            parts.append("Strategies tried: " + "; ".join(reasons) + ".")
        return " ".join(parts)


def one_cpu_node_per_host(nodes: Sequence[QPUNodeSpec]) -> list[QPUNodeSpec]:
    """Keep the first CPU node of each host (plus every GPU and QPU node), in order.

    A CPU simulator already spreads one call over its host's cores, so several CPU nodes of
    one host add no parallelism to work that one call can take (shots, sweep bindings).
    """
    hosts: set[str] = set()
    out = []
    for node in nodes:
        if node.device == "CPU":
            if node.host in hosts:
                continue
            hosts.add(node.host)
        out.append(node)
    return out


def _cost_breakdown(cand: _Candidate) -> str:
    parts = []
    for node, _, _, shots, _, secs, _ in cand.assignments:
        parts.append(node.price_breakdown(shots, secs))
    return "; ".join(parts)


def _split_evenly(total: int, k: int) -> list[int]:
    base, extra = divmod(total, k)
    return [base + (1 if i < extra else 0) for i in range(k)]


def _span(qubits: Sequence[int]) -> str:
    if list(qubits) == list(range(qubits[0], qubits[0] + len(qubits))):
        return f"qubits {qubits[0]}..{qubits[-1]}"
    shown = ", ".join(map(str, qubits[:8]))
    return f"qubits {shown}{', ...' if len(qubits) > 8 else ''}"
