"""Shots to a target precision: a cut's expectation values estimated in rounds. Pure.

``VirtualCircuitSpec(target_precision=...)`` runs an expectation block's distinct subexperiments
in rounds instead of spending the whole shot budget at once:

1. A pilot round: every distinct circuit gets :data:`PILOT_SHOTS` shots (the whole budget, shared
   as the spec's ``shot_allocation`` says, when that is less than a pilot).
2. After each round the counts of every round so far are merged per distinct circuit and the
   block is reconstructed as usual (values and bootstrap standard errors). If every standard
   error is at most the target, or the budget is spent, the run stops and says which.
3. Otherwise :func:`circuit_variances` estimates, for every circuit ``u`` and observable ``o``,
   ``V[u, o]``: the variance one shot of ``u`` adds to ``o``'s estimate, so that
   ``sum_u V[u, o] / n_u`` is ``o``'s squared standard error. That is the circuit's
   |coefficient| weight times its outcomes' standard deviation, squared, with the products of
   the other pieces' estimates included (first order), read from the reconstruction itself.
4. :func:`next_round` shares the next shots Neyman-style: circuit ``u``'s total in proportion to
   ``sqrt(sum_o V[u, o])``, enough of them that every observable's predicted standard error
   reaches the target; a circuit that already holds more than its share keeps it. Circuits that
   get shots in a round get at least :data:`~network.cutting.experiments.MIN_CIRCUIT_SHOTS`;
   the round never spends more than the budget left. Each round's shots are new shards. A round
   that starts from under half the predicted need goes 80 % of the way (a pilot's prediction is
   noisy; an overshoot wastes more shots than one more round costs).

:func:`circuit_variances` needs no model of the reconstruction (library terms or joint cuts
alike): it reconstructs the block once per circuit with every *other* circuit's counts multiplied
by :data:`_STILL` (their frequencies, hence the estimate, unchanged; their bootstrap spread
negligible), so the bootstrap standard error that comes back is circuit ``u``'s share alone.
Past :data:`VARIANCE_GROUPS` circuits it takes consecutive circuits together, so a round costs at
most that many reconstructions.

The pipeline (:meth:`network.pipeline.Pipeline.run`) runs the rounds, each through the driver and
the executor like any other shards, under the run's key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from network.circuits import derive_seed
from network.cutting.decomposition import BlockProblem, CutBlock
from network.cutting.experiments import MIN_CIRCUIT_SHOTS, allocate_shots

__all__ = [
    "MAX_ROUNDS",
    "PILOT_SHOTS",
    "PrecisionReport",
    "VARIANCE_GROUPS",
    "circuit_variances",
    "merge_counts",
    "next_round",
]

#: Shots each distinct circuit gets in the pilot round.
PILOT_SHOTS = 64
#: Most rounds a run takes (the pilot included); each one reconstructs the block once per circuit.
MAX_ROUNDS = 10
#: A round whose shots held are under this fraction of the predicted need goes :data:`STEP` of the
#: way (the prediction rests on few shots, and overshooting wastes more than one round more costs).
EARLY = 0.5
STEP = 0.8
#: Most reconstructions :func:`circuit_variances` makes (one per circuit up to this many circuits).
VARIANCE_GROUPS = 48
#: Factor on the other circuits' counts in :func:`circuit_variances`: their bootstrap spread shrinks
#: by its square root, to about a thousandth of their share.
_STILL = 10**6


@dataclass
class PrecisionReport:
    """How a ``target_precision`` run went (``QVMResult.precision``).

    Attributes:
        target: The standard error asked for.
        reached: True when every value's standard error is at most ``target``.
        stopped_by: ``"target"`` (reached), ``"budget"`` (the shot budget is spent) or
            ``"rounds"`` (:data:`MAX_ROUNDS` run).
        budget: The shot budget (``shots`` per subexperiment, for every subexperiment).
        total_shots: Shots run, every round together.
        rounds: Per round: ``round``, ``shots``, ``shards`` (their ids) and the largest
            ``standard_error`` after it.
        circuit_shots: Shots of each distinct circuit, every round together.
        standard_errors: The final standard errors.
        shards: The shards of the rounds after the pilot (as ``Shard.to_dict``); the pilot's are
            the plan's.
    """

    target: float
    reached: bool = False
    stopped_by: str = ""
    budget: int = 0
    total_shots: int = 0
    rounds: list[dict[str, Any]] = field(default_factory=list)
    circuit_shots: list[int] = field(default_factory=list)
    standard_errors: list[float] = field(default_factory=list)
    shards: list[dict[str, Any]] = field(default_factory=list)

    def note(self) -> str:
        """One sentence for the result's notes."""
        worst = max(self.standard_errors, default=float("nan"))
        head = (
            f"Target precision {self.target:g}: "
            + ("reached" if self.reached else f"not reached (largest standard error {worst:.3g})")
            + f" after {len(self.rounds)} round(s), {self.total_shots:,} of a budget of {self.budget:,} shots"
        )
        if self.stopped_by == "budget" and not self.reached:
            return head + "; the shot budget is spent (raise shots= for a larger one)."
        if self.stopped_by == "rounds":
            return head + f"; stopped after the most rounds a run takes ({MAX_ROUNDS})."
        return head + "."

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "reached": self.reached,
            "stopped_by": self.stopped_by,
            "budget": self.budget,
            "total_shots": self.total_shots,
            "rounds": [dict(r) for r in self.rounds],
            "circuit_shots": list(self.circuit_shots),
            "standard_errors": list(self.standard_errors),
            "shards": [dict(s) for s in self.shards],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrecisionReport:
        return cls(
            target=float(data["target"]),
            reached=bool(data.get("reached", False)),
            stopped_by=str(data.get("stopped_by", "")),
            budget=int(data.get("budget", 0)),
            total_shots=int(data.get("total_shots", 0)),
            rounds=[dict(r) for r in data.get("rounds", [])],
            circuit_shots=[int(s) for s in data.get("circuit_shots", [])],
            standard_errors=[float(e) for e in data.get("standard_errors", [])],
            shards=[dict(s) for s in data.get("shards", [])],
        )


def merge_counts(parts: Sequence[Mapping[str, int]]) -> dict[str, int]:
    """Counts of one circuit from several rounds, summed."""
    out: dict[str, int] = {}
    for counts in parts:
        for key, value in counts.items():
            out[key] = out.get(key, 0) + int(value)
    return out


def circuit_variances(
    problem: BlockProblem,
    block: CutBlock,
    raw: Sequence[Mapping[str, int]],
    seed: int,
) -> np.ndarray:
    """``V[u, o]``: the variance one shot of circuit ``u`` adds to observable ``o``'s estimate
    (``raw[u]``: circuit ``u``'s counts, every round merged), shape ``(circuits, observables)``.

    Circuit ``u``'s bootstrap standard error alone, squared, times its shots: the block is
    reconstructed with the other circuits' counts multiplied by :data:`_STILL`. Past
    :data:`VARIANCE_GROUPS` circuits, consecutive circuits are taken together (one
    reconstruction per group, so the cost stays bounded) and a group's share is split among its
    circuits in proportion to their squared |coefficient| weight.
    """
    from network.cutting.reconstruction import reconstruct_block

    n = len(raw)
    shots = np.array([sum(counts.values()) for counts in raw], dtype=float)
    weights = np.asarray(problem.split.weights, dtype=float)
    if weights.shape != (n,) or not np.all(weights > 0):
        weights = np.ones(n)
    still = [{k: int(v) * _STILL for k, v in counts.items()} for counts in raw]
    out: np.ndarray | None = None
    for g, members in enumerate(np.array_split(np.arange(n), min(n, VARIANCE_GROUPS))):
        mixed = list(still)
        for u in members:
            mixed[u] = dict(raw[u])
        estimate = reconstruct_block(problem, block, mixed, shots=0, seed=derive_seed(seed, "precision", g))
        assert estimate.expectations is not None
        errors = np.nan_to_num(np.asarray(estimate.expectations.standard_errors, dtype=float))
        if out is None:
            out = np.zeros((n, errors.size))
        # sum_u V[u] / n_u = error**2 over the group, V[u] in proportion to weight**2
        share = weights[members] ** 2
        scale = errors**2 / (share / shots[members]).sum()
        out[members] = share[:, None] * scale[None, :]
    return np.zeros((0, 0)) if out is None else out


def next_round(
    variances: np.ndarray,
    shots: Sequence[int],
    target: float,
    budget_left: int,
    *,
    standard_errors: Sequence[float] = (),
) -> list[int]:
    """Shots of each circuit in the next round (0: none), at most ``budget_left`` in all.

    Each observable's ``V[:, o]`` is first scaled so that the prediction at the shots held,
    ``sum_u V[u, o] / n_u``, is its measured standard error squared (the bootstrap's, which also
    sees the product terms beyond first order). Then circuit ``u`` should hold ``N * w_u / W``
    shots after the round, ``w_u = sqrt(sum_o V[u, o])``, ``W = sum_u w_u`` (Neyman), ``N`` the
    fewest that bring every observable's predicted variance under ``target**2``. A circuit already
    above its share keeps its shots and its variance is counted as fixed (repeated until no share
    falls below the shots held). While the shots held are under :data:`EARLY` of that total, the
    round goes :data:`STEP` of the way: a prediction from a pilot is noisy, and the top-up after a
    round that fell short costs fewer shots than an overshoot. When the prediction says the target
    is met but the measured errors say otherwise, every circuit's shots grow by
    ``(largest error / target)**2``. Circuits that get shots get at least ``MIN_CIRCUIT_SHOTS``.
    """
    v = np.clip(np.asarray(variances, dtype=float), 0.0, None)
    held = np.asarray(shots, dtype=float)
    n = len(held)
    if budget_left <= 0 or n == 0:
        return [0] * n
    tau2 = target**2
    measured = np.array([e if math.isfinite(e) else 0.0 for e in standard_errors], dtype=float)
    predicted = (v / held[:, None]).sum(axis=0)
    if measured.size == v.shape[1]:  # calibrate each observable's variances to its measured error
        scale = np.divide(measured**2, predicted, out=np.ones_like(predicted), where=predicted > 0)
        v = v * scale[None, :]
    w = np.sqrt(v.sum(axis=1))
    want = held.copy()
    if w.sum() > 0:
        fixed = w <= 0  # circuits whose shots stay as they are
        for _ in range(n + 1):
            free = ~fixed
            if not free.any():
                break
            room = tau2 - (v[fixed] / held[fixed, None]).sum(axis=0)  # per observable, what the free ones may add
            if np.any(room <= 0):
                break
            wf = w[free].sum()
            need = v[free] / w[free, None]  # sum_u V[u,o] / w_u, per observable
            total = float(np.max(wf * need.sum(axis=0) / room))
            share = np.where(free, total * w / wf, held)
            low = free & (share < held)
            if not low.any():
                want = np.maximum(share, held)
                break
            fixed |= low
    worst = max((float(e) for e in standard_errors if math.isfinite(e)), default=0.0)
    if want.sum() <= held.sum() + 0.5 and worst > target:
        want = held * (worst / target) ** 2
    elif held.sum() < EARLY * want.sum():  # a prediction from few shots: go most of the way, then top up
        want = held + STEP * (want - held)
    extra = np.ceil(np.maximum(want - held, 0.0))
    extra = np.where((extra > 0) & (extra < MIN_CIRCUIT_SHOTS), MIN_CIRCUIT_SHOTS, extra)
    if extra.sum() > budget_left:
        extra = np.array(allocate_shots(extra, budget_left, 0), dtype=float)
    return [int(x) for x in extra]
