"""Run-time and price estimates that rank plans (pure: no I/O).

Both the shard planner and the cut search price their candidates with :class:`CostModel`, so a cut
plan and a partition plan are compared on the same scale.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from network.node_providers import QPUNodeSpec

__all__ = ["CostModel"]


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
