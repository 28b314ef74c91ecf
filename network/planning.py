"""Shard planning: where each part of a circuit runs. Pure: no I/O, no SDK, deterministic.

The planner owns every strategy; the facade and the flows make no planning decision. Strategies,
cheapest exact first, chosen by a small cost model (:class:`~network.costs.CostModel`):

* ``WHOLE``: the circuit (its measured part) fits one node; the best node is exact first, then
  fastest by estimate, then cheapest.
* ``SHOT_SPLIT``: the same circuit on several equivalent nodes, shots divided, when the cost model
  says it finishes sooner (per-shot work: mid-circuit measurements, resets, control flow).
* ``PARTITION``: independent components of the qubit interaction graph packed into shards, one
  sub-circuit per shard. Exact: the blocks share no operation, so samples join shot by shot.
* ``CUT``: partition, then cut per component. Components that fit an exact node run as partition
  shards; each component wider than every exact node is cut (:mod:`network.cutting`) into a
  :class:`~network.cutting.CutBlock` whose distinct subexperiments are shards like any other; its
  distribution is reconstructed on its own and joined shot by shot with the rest. Expectation values
  (``observables=``) are one block over the whole circuit. A component no cut within the bounds can
  take goes whole to an allowed approximate (MPS) node.

A circuit no strategy can place raises :class:`~network.errors.PlanningError` naming the widest
component and the node capacities.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from network.circuits import CircuitAnalysis, ClbitLayout, Component, derive_seed
from network.costs import CostModel
from network.cutting.decomposition import BlockKind, CutBlock
from network.errors import CircuitCompileError, PlanningError
from network.node_providers import QPUNodeSpec, QPURegistry, describe_capacities
from network.pricing import GateCounts, gate_counts

if TYPE_CHECKING:
    from qiskit import QuantumCircuit

    from network.cutting.decomposition import BlockProblem
    from network.spec import VirtualCircuitSpec

__all__ = [
    "Strategy",
    "Shard",
    "ShardPlan",
    "CostModel",
    "ShardPlanner",
    "node_identity",
    "one_cpu_node_per_host",
    "plan_key",
]


class Strategy(StrEnum):
    WHOLE = "whole"
    SHOT_SPLIT = "shot_split"
    PARTITION = "partition"
    CUT = "cut"


@dataclass(frozen=True)
class Shard:
    """One unit of work on one node: a sub-circuit (or the whole circuit), a cut subexperiment, or a
    batch of a sweep's bindings.

    Attributes:
        shard_id: Index in the plan.
        node_id: Node that runs it.
        qubits: Original qubit indices of the sub-circuit, in its qubit order (empty for a cut
            subexperiment or a sweep batch).
        clbits: Original classical-bit indices, in the sub-circuit's bit order.
        shots: Shots this shard takes (per binding for a sweep batch).
        seed: Simulator seed, derived from the plan seed and the shard id.
        whole_circuit: Run the original circuit unchanged (no sub-circuit is built).
        exact: False when the node is approximate.
        estimated_seconds: Cost-model estimate of the run time.
        estimated_cost: Price estimate from the node's per-shot and per-task prices.
        n_ops: Operations in the shard (barriers, delays, measurements excluded).
        block: The cut block (index into ``ShardPlan.cuts``) whose subexperiment this is.
        circuit_index: Which of the block's distinct subexperiments (see
            :func:`~network.cutting.block_problem`).
        n_qubits: Width of a circuit that is not a sub-circuit of the original (a subexperiment).
        bindings: A sweep batch: bindings ``start:stop`` of the sweep.
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
    block: int | None = None
    circuit_index: int | None = None
    n_qubits: int | None = None
    bindings: tuple[int, int] | None = None

    @property
    def width(self) -> int:
        return self.n_qubits if self.n_qubits is not None else len(self.qubits)

    @property
    def kind(self) -> str:
        """``"subexperiment"``, ``"sweep"``, ``"whole"`` or ``"part"``."""
        if self.block is not None:
            return "subexperiment"
        if self.bindings is not None:
            return "sweep"
        return "whole" if self.whole_circuit else "part"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
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
        for name in ("block", "circuit_index", "n_qubits"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.bindings is not None:
            out["bindings"] = list(self.bindings)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Shard:
        values = dict(data)
        values["qubits"] = tuple(values["qubits"])
        values["clbits"] = tuple(values["clbits"])
        if values.get("bindings") is not None:
            start, stop = values["bindings"]
            values["bindings"] = (int(start), int(stop))
        return cls(**values)


@dataclass(frozen=True)
class ShardPlan:
    """A complete, serializable plan. ``to_json()`` is what a dry run prints.

    Attributes:
        cuts: The cut blocks; a shard whose ``block`` is set runs one of their subexperiments.
        mode: The mode the plan runs in (``emulated``, ``live``...), part of the run key: an
            emulated run's stored shards are never a live run's.
    """

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
    cuts: tuple[CutBlock, ...] = ()
    mode: str = ""

    @property
    def n_clbits(self) -> int:
        return self.layout.n_clbits

    @property
    def run_key(self) -> str:
        """Identity of this run: the same circuit, shots, seed, shard layout, nodes and mode give the
        same key.

        The ledger and the shard cache are keyed by it, so a retry, a flow-run retry or a fresh
        run of the same seeded spec on the same cluster finds what an earlier attempt submitted;
        a run on other nodes (another cluster with the same node names, another mode) never does.
        """
        shards = [
            (s.node_id, s.qubits, s.clbits, s.shots, s.seed)
            + ((s.block, s.circuit_index) if s.block is not None else ())
            for s in self.shards
        ]
        parts: tuple[Any, ...] = (self.circuit_hash, self.strategy.value, self.shots, self.seed, shards)
        if self.cuts:
            parts += (tuple(b.problem_key for b in self.cuts),)
        parts += (node_identity(self.nodes), self.mode)
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]

    @property
    def observables(self) -> list[str]:
        """The labels of the observables an expectation plan estimates (empty for counts)."""
        return [label for b in self.cuts if b.kind is BlockKind.EXPECTATION for label in b.observable_labels()]

    def block_shards(self, block_id: int) -> list[Shard]:
        """The shards of one cut block, in subexperiment order."""
        return sorted((s for s in self.shards if s.block == block_id), key=lambda s: s.circuit_index or 0)

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
            "cuts": [b.to_dict() for b in self.cuts],
            "mode": self.mode,
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
            cuts=tuple(CutBlock.from_dict(b) for b in data.get("cuts", ())),
            mode=str(data.get("mode", "")),
        )


def node_identity(nodes: Sequence[QPUNodeSpec]) -> str:
    """What runs the jobs, as one string: each node's provider, method, device, exactness, stand-in,
    host and options (prices, widths and timeouts aside, so re-pricing a node keeps its runs)."""
    return json.dumps(
        sorted(
            [n.node_id, n.provider_key, n.method, n.device, n.exact, n.emulates, n.host, dict(n.options)] for n in nodes
        ),
        sort_keys=True,
        default=str,
    )


def plan_key(spec: VirtualCircuitSpec, nodes: Sequence[QPUNodeSpec], shots: int) -> str:
    """Identity of a planning request: the circuit, every option that shapes the plan, and the nodes.

    A store keeps the plan of each seeded request under it, so a re-run of the same spec on the same
    cluster reuses the plan (and so its run key, ledger and stored shards) even where planning is
    not reproducible to the last bit (a cut search stopped by its time budget).
    """
    observables = [] if spec.observables is None else [(op.paulis.to_labels(), op.coeffs.real.tolist()) for op in
                                                        spec.observables]  # fmt: skip
    text = json.dumps(
        [
            spec.analysis.circuit_hash, spec.shots or shots, spec.seed, spec.strategy, spec.allow_approximate,
            spec.max_cost, observables, spec.max_sampling_overhead, spec.max_subexperiments, spec.shot_allocation,
            *([] if spec.joint_cuts else ["separate cuts"]),
            [n.to_dict() for n in sorted(nodes, key=lambda n: n.node_id)],
        ],
        sort_keys=True, default=str,
    )  # fmt: skip
    return "plan-" + hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class _Assignment:
    """One shard to be: where it runs, what it runs, and its estimates."""

    node: QPUNodeSpec
    qubits: tuple[int, ...]
    clbits: tuple[int, ...]
    shots: int
    whole: bool
    seconds: float
    n_ops: int
    block: int | None = None
    circuit_index: int | None = None
    n_qubits: int | None = None
    gates: GateCounts | None = None  # of the circuit the shard runs, for bills by gate-shot or HQC

    def price(self) -> float:
        return self.node.price(self.shots, self.seconds, gates=self.gates)


@dataclass(frozen=True)
class _Candidate:
    strategy: Strategy
    assignments: tuple[_Assignment, ...]
    seconds: float
    cost: float
    approximate: bool
    blocks: tuple[CutBlock, ...] = ()
    notes: tuple[str, ...] = ()
    layout: ClbitLayout | None = None


_PREFERENCE = {Strategy.WHOLE: 0, Strategy.PARTITION: 1, Strategy.SHOT_SPLIT: 2, Strategy.CUT: 3}


@dataclass
class _Loads:
    """Work already placed, per node and per host, for longest-processing-time placement."""

    host_cores: int
    host_count: dict[str, int]
    node: dict[str, float] = field(default_factory=dict)
    host: dict[str, float] = field(default_factory=dict)
    placed: list[tuple[QPUNodeSpec, float]] = field(default_factory=list)

    def finish(self, node: QPUNodeSpec, seconds: float) -> float:
        cores = min(self.host_cores, self.host_count.get(node.host, 1))
        return max(self.node.get(node.node_id, 0.0) + seconds, (self.host.get(node.host, 0.0) + seconds) / cores)

    def add(self, node: QPUNodeSpec, seconds: float) -> None:
        self.node[node.node_id] = self.node.get(node.node_id, 0.0) + seconds
        self.host[node.host] = self.host.get(node.host, 0.0) + seconds
        self.placed.append((node, seconds))


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
        """Choose a strategy and shard the circuit: whole, shot split, partition, or partition then
        cut (and expectation values by cutting).

        Args:
            spec: The circuit and its options.
            registry: The cluster (or just its node specs), as the nodes run in this mode.
            shots: Shots when ``spec.shots`` is unset (default 1024).
            seed: Base seed when ``spec.seed`` is unset; otherwise one derived from the circuit.

        Raises:
            PlanningError: No strategy fits (the message names the widest component and the node
                capacities), a cut exceeds its bounds (it quotes the overhead, the subexperiments and
                the alternatives), or every plan exceeds ``spec.max_cost``.
            CircuitCompileError: Expectation values of a circuit whose measurements cannot be deferred.
        """
        nodes = tuple(registry.nodes if isinstance(registry, QPURegistry) else registry)
        if not nodes:
            raise PlanningError("The cluster has no nodes.")
        total_shots = spec.shots or shots or 1024
        analysis = spec.analysis
        base_seed = spec.seed if spec.seed is not None else seed
        if base_seed is None:
            base_seed = int(analysis.circuit_hash[:8], 16) & 0x7FFF_FFFF
        if spec.observables is not None:
            expectation = self._expectation(spec, nodes, total_shots, base_seed)
            return self._materialize(self._affordable(spec, [expectation])[0], analysis, total_shots, base_seed, nodes)

        usable = [n for n in nodes if n.exact or spec.allow_approximate]
        candidates: list[_Candidate] = []
        reasons: list[str] = []
        forced = Strategy(spec.strategy) if spec.strategy else None
        failure: PlanningError | None = None
        if forced in (None, Strategy.CUT):
            try:
                cut = self._cut(spec, nodes, total_shots, base_seed, forced is Strategy.CUT)
            except PlanningError as exc:
                cut, failure = str(exc), exc
            if isinstance(cut, str):
                reasons.append(f"cut: {cut}")
            else:
                candidates.append(cut)  # first: ties go to it (its notes say why it cut or did not)
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
            if failure is not None:  # the cut's own refusal names the numbers and the alternatives
                others = [r for r in reasons if not r.startswith("cut: ")]
                message = self._explain(analysis, nodes, spec, others, cut_tried=True)
                raise type(failure)(f"{message} Cutting: {failure}") from failure
            raise PlanningError(self._explain(analysis, nodes, spec, reasons))
        best = self._affordable(spec, candidates)[0]
        return self._materialize(best, analysis, total_shots, base_seed, nodes)

    def _affordable(self, spec: VirtualCircuitSpec, candidates: Sequence[_Candidate]) -> list[_Candidate]:
        """Candidates best first, those over ``spec.max_cost`` dropped.

        Raises:
            PlanningError: Every candidate exceeds the budget; the cheapest is quoted.
        """
        ranked = sorted(candidates, key=lambda c: (c.approximate, round(c.seconds, 4), c.cost, _PREFERENCE[c.strategy]))
        if spec.max_cost is None:
            return ranked
        affordable = [c for c in ranked if c.cost <= spec.max_cost + 1e-12]
        if not affordable:
            cheapest = min(ranked, key=lambda c: c.cost)
            raise PlanningError(
                f"Every plan exceeds the budget max_cost={spec.max_cost:g}: the cheapest, "
                f"{cheapest.strategy.value}, is estimated at {cheapest.cost:g} "
                f"({_cost_breakdown(cheapest)}). Raise max_cost, lower the shots, or use cheaper nodes."
            )
        return affordable

    # -- candidates -------------------------------------------------------------------------

    def _fits(self, nodes: Sequence[QPUNodeSpec], width: int) -> list[QPUNodeSpec]:
        return [n for n in nodes if n.max_qubits >= width]

    def _rank(self, node: QPUNodeSpec, seconds: float, shots: int, gates: GateCounts) -> tuple[Any, ...]:
        return (not node.exact, round(node.price(shots, seconds, gates=gates), 9), round(seconds, 6))

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
        gates = _gates(n_ops, n_multi, analysis.n_clbits)
        scored = []
        for node in fit:
            secs = self.cost_model.shard_seconds(
                node, width=width, n_ops=n_ops, n_multi=n_multi, shots=shots, dynamic=dynamic
            )
            scored.append((self._rank(node, secs, shots, gates), node, secs))
        _, node, secs = min(scored, key=lambda t: t[0])
        cost = node.price(shots, secs, gates=gates)
        clbits = tuple(range(analysis.n_clbits))
        return _Candidate(
            Strategy.WHOLE,
            (_Assignment(node, qubits, clbits, shots, whole, secs, n_ops, gates=gates),),
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
        lead = whole.assignments[0].node
        qubits, is_whole = whole.assignments[0].qubits, whole.assignments[0].whole
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
            gates = _gates(n_ops, n_multi, len(clbits))
            assignments.append(_Assignment(node, qubits, clbits, s, is_whole, secs, n_ops, gates=gates))
            cost += node.price(s, secs, gates=gates)
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
        loads = self._loads(nodes)
        placed = self._place_groups(groups, nodes, shots, loads)
        if isinstance(placed, str):
            return placed
        assignments = sorted(placed, key=lambda a: a.qubits[0])
        cost = sum(a.price() for a in assignments)
        approximate = any(not a.node.exact for a in assignments)
        return _Candidate(
            Strategy.PARTITION, tuple(assignments), self.cost_model.makespan(loads.placed), cost, approximate
        )

    def _loads(self, nodes: Sequence[QPUNodeSpec]) -> _Loads:
        count: dict[str, int] = {}
        for n in nodes:
            count[n.host] = count.get(n.host, 0) + 1
        return _Loads(self.cost_model.host_cores, count)

    def _place_groups(
        self, groups: Sequence[Sequence[Component]], nodes: Sequence[QPUNodeSpec], shots: int, loads: _Loads
    ) -> list[_Assignment] | str:
        """Groups of components onto nodes, longest processing time first: each goes where it finishes
        earliest, exact nodes always before approximate ones."""
        sized = []
        for group in groups:
            width = sum(c.width for c in group)
            fit = self._fits(nodes, width)
            if not fit:
                widest = max((n.max_qubits for n in nodes), default=0)
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
        for _, group, fit in sized:
            exact_fit = [n for n in fit if n.exact] or fit
            width = sum(c.width for c in group)
            n_ops = sum(c.n_ops for c in group)
            n_multi = sum(c.n_multi for c in group)
            dynamic = any(c.dynamic for c in group)
            gates = _gates(n_ops, n_multi, sum(len(c.clbits) for c in group))
            options = []
            for node in exact_fit:
                secs = self.cost_model.shard_seconds(
                    node, width=width, n_ops=n_ops, n_multi=n_multi, shots=shots, dynamic=dynamic
                )
                options.append((loads.finish(node, secs), node.price(shots, secs, gates=gates), secs, node))
            _, _, secs, node = min(options, key=lambda t: (t[0], loads.node.get(t[3].node_id, 0.0), t[1]))
            loads.add(node, secs)
            qubits = tuple(q for c in sorted(group, key=lambda c: c.qubits[0]) for q in c.qubits)
            clbits = tuple(sorted(b for c in group for b in c.clbits))
            assignments.append(_Assignment(node, qubits, clbits, shots, False, secs, n_ops, gates=gates))
        return assignments

    def _cut(
        self, spec: VirtualCircuitSpec, nodes: Sequence[QPUNodeSpec], shots: int, seed: int, forced: bool
    ) -> _Candidate | str:
        """Partition, then cut per component: components that fit an exact node are partition shards,
        each one wider than every exact node becomes a cut block (or goes whole to an allowed MPS
        node when no cut is within the bounds).

        Raises:
            PlanningError: A component cannot be cut within the bounds and no MPS node may take it.
        """
        from network.cutting import plan_block

        analysis = spec.analysis
        exact_width = max((n.max_qubits for n in nodes if n.exact), default=0)
        if analysis.splittable:
            comps = list(analysis.active_components)
        else:  # classical variables couple every bit: the circuit is one block
            active = self._active(analysis)
            comps = [Component(tuple(range(analysis.n_qubits)), tuple(range(analysis.n_clbits)), active[1],
                               active[2], active[3])]  # fmt: skip
        wide = [c for c in comps if c.width > exact_width]
        if not wide:
            widest = max((c.width for c in comps), default=0)
            why = (
                f"every component fits an exact node (widest component {widest} qubits, widest exact node "
                f"{exact_width})"
            )
            return f"strategy 'cut' was forced, but {why}: nothing to cut" if forced else why
        usable = [n for n in nodes if n.exact or spec.allow_approximate]
        loads = self._loads(usable)
        narrow = [c for c in comps if c.width <= exact_width]
        assignments: list[_Assignment] = []
        if narrow:
            placed = self._place_groups(self._merge_small(narrow, min(self.merge_width, exact_width)), usable,
                                        shots, loads)  # fmt: skip
            if isinstance(placed, str):
                return placed
            assignments += placed
        by_id = {n.node_id: n for n in nodes}
        blocks: list[CutBlock] = []
        notes: list[str] = []
        budget = spec.plan_time_budget / len(wide)
        for comp in wide:
            try:
                choice = plan_block(
                    spec.circuit, circuit_hash=analysis.circuit_hash, block_id=len(blocks),
                    kind=BlockKind.DISTRIBUTION, qubits=comp.qubits, clbits=comp.clbits, nodes=nodes, shots=shots,
                    seed=seed, max_overhead=spec.max_sampling_overhead, max_subexperiments=spec.max_subexperiments,
                    time_budget=budget, allow_approximate=spec.allow_approximate, allocation=spec.shot_allocation,
                    cost_model=self.cost_model, joint=spec.joint_cuts,
                )  # fmt: skip
            except CircuitCompileError as exc:
                mps = [n for n in usable if not n.exact and n.max_qubits >= comp.width]
                if not mps:
                    raise PlanningError(
                        f"The {comp.width}-qubit component on qubits {_span(comp.qubits)} is wider than every exact "
                        f"node, so its counts would be reconstructed from cut subexperiments, which needs its "
                        f"mid-circuit measurements deferred: {exc} Add an approximate MPS node of at least "
                        f"{comp.width} qubits (local_gpu_mps) or an exact node that holds it."
                    ) from exc
                notes.append(f"Approximate: the {comp.width}-qubit component ran whole on the MPS node "
                             f"{mps[0].node_id}: its measurements cannot be deferred for cutting ({exc})")  # fmt: skip
                assignments.append(self._on_node(comp, mps[0], shots, loads))
                continue
            notes += choice.notes
            if choice.block is None:
                assert choice.approximate_node is not None
                assignments.append(self._on_node(comp, by_id[choice.approximate_node], shots, loads))
                continue
            assert choice.problem is not None
            blocks.append(choice.block)
            assignments += self._subexperiments(choice.block, choice.problem, by_id, loads)
            notes.insert(len(blocks) - 1, choice.block.summary())
        cost = sum(a.price() for a in assignments)
        approximate = any(not a.node.exact for a in assignments)
        strategy = Strategy.CUT if blocks else Strategy.PARTITION if len(assignments) > 1 else Strategy.WHOLE
        return _Candidate(
            strategy, tuple(assignments), self.cost_model.makespan(loads.placed), cost, approximate,
            tuple(blocks), tuple(notes),
        )  # fmt: skip

    def _on_node(self, comp: Component, node: QPUNodeSpec, shots: int, loads: _Loads) -> _Assignment:
        secs = self.cost_model.shard_seconds(
            node, width=comp.width, n_ops=comp.n_ops, n_multi=comp.n_multi, shots=shots, dynamic=comp.dynamic
        )
        loads.add(node, secs)
        gates = _gates(comp.n_ops, comp.n_multi, len(comp.clbits))
        return _Assignment(node, comp.qubits, comp.clbits, shots, False, secs, comp.n_ops, gates=gates)

    def _subexperiments(
        self, block: CutBlock, problem: BlockProblem, nodes: Mapping[str, QPUNodeSpec], loads: _Loads
    ) -> list[_Assignment]:
        """One shard per distinct subexperiment, spread over the nodes that hold its piece."""
        out = []
        split = problem.split
        for i, (circuit, label, shots) in enumerate(zip(split.circuits, split.labels, split.shots, strict=True)):
            choices = block.nodes[label]
            node = nodes[choices[i % len(choices)]]
            n_ops, n_multi = _ops(circuit)
            secs = self.cost_model.shard_seconds(
                node, width=circuit.num_qubits, n_ops=n_ops, n_multi=n_multi, shots=shots, dynamic=bool(block.cuts)
            )
            loads.add(node, secs)
            out.append(_Assignment(node, (), (), shots, False, secs, n_ops, block.block_id, i, circuit.num_qubits,
                                   gate_counts(circuit)))  # fmt: skip
        return out

    def _expectation(self, spec: VirtualCircuitSpec, nodes: Sequence[QPUNodeSpec], shots: int, seed: int) -> _Candidate:
        """Expectation values: one block over the whole circuit (uncut when it fits a node)."""
        from network.cutting import plan_block

        analysis = spec.analysis
        choice = plan_block(
            spec.circuit, circuit_hash=analysis.circuit_hash, block_id=0, kind=BlockKind.EXPECTATION,
            qubits=tuple(range(analysis.n_qubits)), clbits=(), observables=spec.observables, nodes=nodes, shots=shots,
            seed=seed, max_overhead=spec.max_sampling_overhead, max_subexperiments=spec.max_subexperiments,
            time_budget=spec.plan_time_budget, allow_approximate=spec.allow_approximate,
            allocation=spec.shot_allocation, cost_model=self.cost_model, joint=spec.joint_cuts,
        )  # fmt: skip
        block, problem = choice.block, choice.problem
        assert block is not None and problem is not None  # an expectation block always is one
        usable = [n for n in nodes if n.exact or spec.allow_approximate]
        loads = self._loads(usable)
        assignments = self._subexperiments(block, problem, {n.node_id: n for n in nodes}, loads)
        return _Candidate(
            Strategy.CUT if block.cuts else Strategy.WHOLE,
            tuple(assignments),
            self.cost_model.makespan(loads.placed),
            sum(a.price() for a in assignments),
            block.approximate,
            (block,),
            (block.summary(), *block.notes),
            ClbitLayout(0, ()),
        )

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
        for i, a in enumerate(cand.assignments):
            shards.append(
                Shard(
                    shard_id=i,
                    node_id=a.node.node_id,
                    qubits=a.qubits,
                    clbits=a.clbits,
                    shots=a.shots,
                    seed=derive_seed(seed, "shard", i),
                    whole_circuit=a.whole,
                    exact=a.node.exact,
                    estimated_seconds=a.seconds,
                    estimated_cost=a.price(),
                    n_ops=a.n_ops,
                    block=a.block,
                    circuit_index=a.circuit_index,
                    n_qubits=a.n_qubits,
                )
            )
        used = {s.node_id for s in shards}
        notes = list(cand.notes)
        if analysis.unmeasured_qubits and not any(b.kind is BlockKind.EXPECTATION for b in cand.blocks):
            notes.append(f"{analysis.unmeasured_qubits} qubit(s) are never measured and do not affect the counts.")
        if cand.cost > 0 and any(a.node.billing is not None for a in cand.assignments):
            notes.append(f"Estimated cost {cand.cost:.6g} by node: {_cost_breakdown(cand, limit=8)}")
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
            layout=cand.layout if cand.layout is not None else analysis.layout,
            approximate=cand.approximate,
            estimated_seconds=cand.seconds,
            estimated_cost=cand.cost,
            nodes=tuple(n for n in nodes if n.node_id in used),
            notes=tuple(notes),
            cuts=cand.blocks,
        )

    def _explain(
        self,
        analysis: CircuitAnalysis,
        nodes: Sequence[QPUNodeSpec],
        spec: VirtualCircuitSpec,
        reasons: Sequence[str],
        *,
        cut_tried: bool = False,
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
                f"Its widest independent component has {widest.width} qubits (qubits {span}); the widest "
                f"usable node holds {largest} qubits. Node capacities: {caps}."
            )
        if spec.strategy:
            parts.append(f"Strategy forced to {spec.strategy!r}.")
        if not spec.allow_approximate:
            parts.append("Approximate nodes are excluded (allow_approximate=False).")
        if too_wide and widest is not None and not cut_tried:
            parts.append(
                "Let the planner cut it (no forced strategy, or strategy='cut'), add a node with at least "
                f"{widest.width} qubits, or an approximate matrix-product-state node (local_gpu_mps)."
            )
        if reasons:
            parts.append("Strategies tried: " + "; ".join(reasons) + ".")
        return " ".join(parts)


def _ops(circuit: QuantumCircuit) -> tuple[int, int]:
    """Operations (measurements and barriers excluded) and multi-qubit operations of a circuit."""
    n_ops = n_multi = 0
    for inst in circuit.data:
        if inst.operation.name in ("measure", "barrier"):
            continue
        n_ops += 1
        n_multi += len(inst.qubits) > 1
    return n_ops, n_multi


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


def _gates(n_ops: int, n_multi: int, n_clbits: int) -> GateCounts:
    """What a bill by gate-shot or HQC counts in a shard, from what the planner knows: its operations,
    the multi-qubit ones among them, and its classical bits (one measurement each)."""
    return GateCounts(one_qubit=n_ops - n_multi, two_qubit=n_multi, measurements=n_clbits)


def _cost_breakdown(cand: _Candidate, limit: int | None = None) -> str:
    """How a candidate's cost adds up, per node (nodes with a billing shape: per distinct program)."""
    by_node: dict[str, tuple[QPUNodeSpec, int, float, int]] = {}
    billed: dict[tuple[str, int, float, GateCounts | None], tuple[QPUNodeSpec, int]] = {}
    for a in cand.assignments:
        if a.node.billing is not None:  # per program: its minimum, slices and credits are per task
            key = (a.node.node_id, a.shots, a.seconds, a.gates)
            billed[key] = (a.node, billed.get(key, (a.node, 0))[1] + 1)
            continue
        node, shots, secs, tasks = by_node.get(a.node.node_id, (a.node, 0, 0.0, 0))
        by_node[a.node.node_id] = (node, shots + a.shots, secs + a.seconds, tasks + 1)
    parts = [node.price_breakdown(shots, secs, tasks=tasks) for node, shots, secs, tasks in by_node.values()]
    parts += [
        node.price_breakdown(shots * tasks, secs * tasks, tasks=tasks, gates=gates)
        for (_, shots, secs, gates), (node, tasks) in billed.items()
    ]
    if limit is not None and len(parts) > limit:
        parts = [*parts[:limit], f"and {len(parts) - limit} more"]
    return "; ".join(parts)


def _split_evenly(total: int, k: int) -> list[int]:
    base, extra = divmod(total, k)
    return [base + (1 if i < extra else 0) for i in range(k)]


def _span(qubits: Sequence[int]) -> str:
    if list(qubits) == list(range(qubits[0], qubits[0] + len(qubits))):
        return f"{qubits[0]}..{qubits[-1]}"
    shown = ", ".join(map(str, qubits[:8]))
    return f"{shown}{', ...' if len(qubits) > 8 else ''}"
