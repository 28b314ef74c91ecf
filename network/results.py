"""What a run returns: :class:`QVMResult`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from network.cutting.precision import PrecisionReport
from network.execution import ShardResult
from network.node_providers import QVMMode
from network.planning import ShardPlan, Strategy

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["QVMResult"]


@dataclass
class QVMResult:
    """The answer to one :class:`~network.spec.VirtualCircuitSpec`.

    Attributes:
        counts: Counts over the original circuit's classical bits, in Qiskit's key format.
            Empty for a DRY_RUN.
        shots: Total shots.
        mode: The mode it ran in.
        plan: The shard plan (strategy, shards, node per shard, estimates).
        shard_results: One entry per shard that ran.
        timings: Seconds per stage: ``plan``, ``execute``, ``reconstruct``, ``total``.
        seed: The base seed; rerunning the spec with it reproduces the counts.
        approximate: True when any shard ran on an approximate node.
        emulated: True when any shard ran on a stand-in device (a GPU node on the CPU).
        notes: Human-readable remarks (emulation, approximation, dropped qubits).
        name: The spec's label.
        metadata: Copied from the spec.
        observables: The observables' labels, when the spec had observables.
        expectation_values: Their estimates, in order.
        standard_errors: The estimates' standard errors.
        cut: The cut plan as run (cuts, overhead, pieces, subexperiments, shots), for cut runs.
        reconstructed: True when the counts are samples of a distribution reconstructed from cut
            subexperiments (not direct measurements of the whole circuit).
        quasi_distribution: For reconstructed counts, the quasi-probability estimate over all
            qubits (qubit 0 rightmost; entries may be negative). Kept in memory and written to the
            store as ``quasi_distribution.parquet``, not in ``to_dict``.
        precision: For a ``target_precision`` run: whether the target was reached or the shot
            budget spent, the rounds and shots used (:class:`~network.cutting.precision.PrecisionReport`).
    """

    counts: dict[str, int]
    shots: int
    mode: QVMMode
    plan: ShardPlan
    shard_results: list[ShardResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    approximate: bool = False
    emulated: bool = False
    notes: list[str] = field(default_factory=list)
    name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    storage_url: str | None = None
    observables: list[str] = field(default_factory=list)
    expectation_values: list[float] | None = None
    standard_errors: list[float] | None = None
    cut: dict[str, Any] | None = None
    reconstructed: bool = False
    quasi_distribution: dict[str, float] | None = field(default=None, repr=False)
    precision: PrecisionReport | None = None

    @property
    def run_key(self) -> str:
        """Identity of the run (see :attr:`ShardPlan.run_key`)."""
        return self.plan.run_key

    @property
    def failovers(self) -> list[dict[str, Any]]:
        """Shards that moved off a failing node: ``{"shard_id", "from", "to"}``."""
        return [
            {"shard_id": r.shard_id, "from": r.extra["failover_from"], "to": r.node_id}
            for r in self.shard_results
            if r.extra.get("failover_from")
        ]

    @property
    def strategy(self) -> Strategy:
        return self.plan.strategy

    @property
    def estimated_cost(self) -> float:
        return self.plan.estimated_cost

    @property
    def executed(self) -> bool:
        return self.mode is not QVMMode.DRY_RUN

    def probabilities(self) -> dict[str, float]:
        """Counts divided by shots."""
        total = sum(self.counts.values()) or 1
        return {k: v / total for k, v in self.counts.items()}

    def most_frequent(self, k: int = 10) -> list[tuple[str, int]]:
        """The ``k`` most frequent outcomes, ties broken by key."""
        return sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def shards_dataframe(self) -> pd.DataFrame:
        """One row per shard: node, width, shots, estimates and, once run, time and device."""
        import pandas as pd

        by_id = {r.shard_id: r for r in self.shard_results}
        rows = []
        for shard in self.plan.shards:
            node = self.plan.node(shard.node_id)
            ran = by_id.get(shard.shard_id)
            rows.append(
                {
                    "shard_id": shard.shard_id,
                    "node_id": shard.node_id,
                    "provider": node.provider_key,
                    "method": node.method,
                    "qubits": shard.width,
                    "clbits": len(shard.clbits),
                    "shots": shard.shots,
                    "seed": shard.seed,
                    "exact": shard.exact,
                    "estimated_seconds": shard.estimated_seconds,
                    "estimated_cost": shard.estimated_cost,
                    "seconds": ran.seconds if ran else None,
                    "device": ran.device if ran else node.device,
                    "emulated": ran.emulated if ran else None,
                    "job_id": ran.job_id if ran else None,
                }
            )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict; :meth:`from_dict` inverts it."""
        return {
            "name": self.name,
            "run_key": self.run_key,
            "storage_url": self.storage_url,
            "observables": list(self.observables),
            "expectation_values": self.expectation_values,
            "standard_errors": self.standard_errors,
            "cut": self.cut,
            "reconstructed": self.reconstructed,
            "precision": None if self.precision is None else self.precision.to_dict(),
            "counts": dict(self.counts),
            "shots": self.shots,
            "mode": self.mode.value,
            "seed": self.seed,
            "strategy": self.plan.strategy.value,
            "approximate": self.approximate,
            "emulated": self.emulated,
            "estimated_cost": self.estimated_cost,
            "timings": dict(self.timings),
            "notes": list(self.notes),
            "metadata": dict(self.metadata),
            "plan": self.plan.to_dict(),
            "shard_results": [r.to_dict() for r in self.shard_results],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QVMResult:
        return cls(
            counts={str(k): int(v) for k, v in data["counts"].items()},
            shots=int(data["shots"]),
            mode=QVMMode(data["mode"]),
            plan=ShardPlan.from_dict(data["plan"]),
            shard_results=[ShardResult.from_dict(r) for r in data.get("shard_results", [])],
            timings={k: float(v) for k, v in data.get("timings", {}).items()},
            seed=int(data["seed"]),
            approximate=bool(data["approximate"]),
            emulated=bool(data["emulated"]),
            notes=list(data.get("notes", [])),
            name=str(data.get("name", "")),
            metadata=dict(data.get("metadata", {})),
            storage_url=data.get("storage_url"),
            observables=list(data.get("observables", [])),
            expectation_values=data.get("expectation_values"),
            standard_errors=data.get("standard_errors"),
            cut=data.get("cut"),
            reconstructed=bool(data.get("reconstructed", False)),
            precision=None if data.get("precision") is None else PrecisionReport.from_dict(data["precision"]),
        )

    @classmethod
    def from_json(cls, text: str) -> QVMResult:
        return cls.from_dict(json.loads(text))

    def __repr__(self) -> str:
        flags = [
            f
            for f, on in (
                ("approximate", self.approximate),
                ("emulated", self.emulated),
                ("reconstructed", self.reconstructed),
            )
            if on
        ]
        return (
            f"QVMResult(strategy={self.strategy.value}, shards={len(self.plan.shards)}, shots={self.shots}, "
            f"outcomes={len(self.counts)}, mode={self.mode.value}{', ' + ', '.join(flags) if flags else ''})"
        )
