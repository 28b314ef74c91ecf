"""Turning shard results back into the circuit's answer. Pure.

* WHOLE and SHOT_SPLIT: counts over the same bits, summed.
* PARTITION: every shard sampled an independent block, so a full-width sample is one sample of
  each block side by side. Shards report counts, not shot order, so each shard's samples are put
  in a seeded random order and joined shot by shot; the joint is exact because the blocks are
  independent. Bits no shard writes (never measured) read 0, as on any simulator.

Keys follow Qiskit: bit 0 rightmost, registers in reverse declaration order separated by spaces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from network.circuits import ClbitLayout, derive_seed
from network.errors import ExecutionError
from network.execution import ShardResult
from network.planning import ShardPlan, Strategy

__all__ = ["ClassicalReconstructor"]


class ClassicalReconstructor:
    """Recombines shard results into counts over the original circuit's classical bits."""

    def reconstruct_counts(self, plan: ShardPlan, results: Sequence[ShardResult]) -> dict[str, int]:
        """Counts keyed in the original circuit's format.

        Raises:
            ExecutionError: Results are missing, duplicated or do not match the plan.
        """
        by_id = {r.shard_id: r for r in results}
        missing = [s.shard_id for s in plan.shards if s.shard_id not in by_id]
        if missing or len(by_id) != len(results):
            raise ExecutionError(
                f"Cannot reconstruct: results for shard(s) {missing} are missing "
                f"({len(results)} results for {len(plan.shards)} shards)."
            )
        for shard in plan.shards:
            got = by_id[shard.shard_id].shots
            if got != shard.shots:
                raise ExecutionError(f"Shard {shard.shard_id} returned {got} shots; the plan has {shard.shots}.")
        layout = plan.layout
        if plan.strategy is Strategy.PARTITION:
            flat = self._join(plan, by_id)
        else:
            flat = {}
            for shard in plan.shards:
                for key, value in by_id[shard.shard_id].counts.items():
                    flat[key] = flat.get(key, 0) + value
        return _format(flat, layout)

    def _join(self, plan: ShardPlan, by_id: Mapping[int, ShardResult]) -> dict[str, int]:
        n = plan.n_clbits
        shots = plan.shots
        full = np.zeros((shots, n), dtype=np.uint8)
        for shard in plan.shards:
            counts = by_id[shard.shard_id].counts
            if not shard.clbits:
                continue
            keys = sorted(counts)  # order-independent: stored results come back with sorted keys
            bits = _keys_to_bits(keys, len(shard.clbits))  # (unique, m), column j = shard bit j
            outcome = np.repeat(np.arange(len(keys)), [counts[k] for k in keys])
            rng = np.random.default_rng(derive_seed(plan.seed, "join", shard.shard_id))
            rng.shuffle(outcome)
            full[:, list(shard.clbits)] = bits[outcome]
        return _rows_to_counts(full)

    def reconstruct(self, plan: ShardPlan, results: Sequence[ShardResult]) -> dict[str, int]:
        """Alias of :meth:`reconstruct_counts` (the QVM facade wraps it in a QVMResult)."""
        return self.reconstruct_counts(plan, results)


def _keys_to_bits(keys: Sequence[str], width: int) -> np.ndarray:
    """Rows of bits, column ``j`` = classical bit ``j`` (keys have bit 0 rightmost)."""
    if not keys:
        return np.zeros((0, width), dtype=np.uint8)
    raw = np.frombuffer("".join(keys).encode("ascii"), dtype=np.uint8).reshape(len(keys), width)
    return (raw[:, ::-1] - ord("0")).astype(np.uint8)


def _rows_to_counts(full: np.ndarray) -> dict[str, int]:
    """Count identical rows; return flat keys (bit 0 rightmost)."""
    shots, n = full.shape
    if n == 0:
        return {"": shots}
    packed = np.packbits(full, axis=1)
    view = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1])))
    _uniq, first, counts = np.unique(view.ravel(), return_index=True, return_counts=True)
    rows = full[first][:, ::-1] + ord("0")
    text = rows.astype(np.uint8).tobytes().decode("ascii")
    return {text[i * n : (i + 1) * n]: int(c) for i, c in enumerate(counts)}


def _format(flat: Mapping[str, int], layout: ClbitLayout) -> dict[str, int]:
    if layout.is_identity or not layout.qiskit_style:
        return dict(flat)
    return {layout.format(key): value for key, value in flat.items()}
