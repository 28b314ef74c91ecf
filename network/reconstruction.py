"""Turning shard results back into the circuit's answer. Pure.

* WHOLE and SHOT_SPLIT: counts over the same bits, summed.
* PARTITION: every shard sampled an independent block, so a full-width sample is one sample of
  each block side by side. Shards report counts, not shot order, so each shard's samples are put
  in a seeded random order and joined shot by shot; the joint is exact because the blocks are
  independent. Bits no shard writes (never measured) read 0, as on any simulator.
* CUT: each cut block is rebuilt from its subexperiments' counts
  (:func:`~network.cutting.reconstruct_block`): a distribution block gives ``shots`` samples over
  its classical bits, joined shot by shot with the partition shards as above; an expectation block
  gives the observables' values with standard errors.

Keys follow Qiskit: bit 0 rightmost, registers in reverse declaration order separated by spaces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from network.circuits import ClbitLayout, derive_seed
from network.cutting.decomposition import BlockKind
from network.cutting.reconstruction import BlockEstimate
from network.errors import ExecutionError
from network.execution import ShardResult
from network.planning import ShardPlan, Strategy

if TYPE_CHECKING:
    from qiskit import QuantumCircuit

__all__ = ["ClassicalReconstructor", "Reconstruction", "summarize_cuts"]


@dataclass
class Reconstruction:
    """What the shard results of a plan give back.

    Attributes:
        counts: Counts over the original circuit's classical bits, in Qiskit's key format (empty for
            expectation values).
        expectation_values: The observables' estimates, for an expectation plan.
        standard_errors: Their bootstrap standard errors.
        blocks: Each cut block's estimate (counts, quasi-distribution, negative mass, values).
        notes: What the reconstruction did, in words.
    """

    counts: dict[str, int]
    expectation_values: list[float] | None = None
    standard_errors: list[float] | None = None
    blocks: list[BlockEstimate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def reconstructed(self) -> bool:
        """True when some counts are samples of a distribution rebuilt from cut subexperiments."""
        return any(b.block.kind is BlockKind.DISTRIBUTION for b in self.blocks)

    def cut_summary(self) -> dict[str, Any] | None:
        """The cut blocks as run (``QVMResult.cut``, see :func:`summarize_cuts`)."""
        return summarize_cuts([b.to_dict() for b in self.blocks])

    def quasi_distribution(self, n_qubits: int) -> dict[str, float] | None:
        """The quasi-distribution over every qubit, when one distribution block covers the circuit."""
        dist = [b for b in self.blocks if b.block.kind is BlockKind.DISTRIBUTION]
        if len(dist) != 1 or dist[0].quasi is None or len(dist[0].block.qubits) != n_qubits:
            return None
        return dist[0].quasi.to_dict()


class ClassicalReconstructor:
    """Recombines shard results into counts over the original circuit's classical bits, or into the
    observables' values."""

    def reconstruct(
        self, plan: ShardPlan, results: Sequence[ShardResult], circuit: QuantumCircuit | None = None
    ) -> Reconstruction:
        """The plan's answer from its shard results.

        Args:
            plan: The plan.
            results: One result per shard.
            circuit: The circuit the plan was made for; needed when the plan cuts (each block's
                subexperiments are rebuilt from it, see :func:`~network.cutting.block_problem`).

        Raises:
            ExecutionError: Results are missing, duplicated or do not match the plan, or a cut plan
                comes without its circuit.
        """
        by_id = self._check(plan, results)
        if not plan.cuts:
            return Reconstruction(self._counts(plan, by_id))
        if circuit is None:
            raise ExecutionError(f"Plan {plan.run_key} cuts the circuit: reconstructing it needs the circuit.")
        from network.cutting import block_problem, reconstruct_block

        estimates = []
        for block in plan.cuts:
            problem = block_problem(circuit, block, circuit_hash=plan.circuit_hash)
            raw = [by_id[s.shard_id].counts for s in plan.block_shards(block.block_id)]
            estimates.append(reconstruct_block(problem, block, raw, shots=plan.shots, seed=plan.seed))
        out = Reconstruction({}, blocks=estimates)
        expectation = [e for e in estimates if e.expectations is not None]
        if expectation:
            assert expectation[0].expectations is not None
            out.expectation_values = list(expectation[0].expectations.values)
            out.standard_errors = list(expectation[0].expectations.standard_errors)
            return out
        parts = [(s.clbits, by_id[s.shard_id].counts, derive_seed(plan.seed, "join", s.shard_id))
                 for s in plan.shards if s.block is None]  # fmt: skip
        parts += [(e.block.clbits, e.counts, derive_seed(plan.seed, "join-block", e.block.block_id)) for e in estimates]
        out.counts = _format(_join(parts, plan.n_clbits, plan.shots), plan.layout)
        for e in estimates:
            out.notes.append(
                f"Counts reconstructed from cut subexperiments for the {len(e.block.qubits)}-qubit block on qubits "
                f"{_span(e.block.qubits)} ({e.executed_circuits} distinct circuits): {plan.shots} samples of the "
                f"nearest probability distribution to the quasi-distribution estimate (its negative mass "
                f"{e.negative_mass:.3g})."
            )
        if len(parts) > 1:
            out.notes.append(
                f"The {len(parts)} independent parts were joined shot by shot into full bitstrings (exact: they share "
                "no operation)."
            )
        return out

    def reconstruct_counts(
        self, plan: ShardPlan, results: Sequence[ShardResult], circuit: QuantumCircuit | None = None
    ) -> dict[str, int]:
        """Counts keyed in the original circuit's format (see :meth:`reconstruct`).

        Raises:
            ExecutionError: Results are missing, duplicated or do not match the plan.
        """
        return self.reconstruct(plan, results, circuit).counts

    @staticmethod
    def _check(plan: ShardPlan, results: Sequence[ShardResult]) -> dict[int, ShardResult]:
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
        return by_id

    def _counts(self, plan: ShardPlan, by_id: Mapping[int, ShardResult]) -> dict[str, int]:
        if plan.strategy is Strategy.PARTITION:
            parts = [(s.clbits, by_id[s.shard_id].counts, derive_seed(plan.seed, "join", s.shard_id))
                     for s in plan.shards]  # fmt: skip
            flat = _join(parts, plan.n_clbits, plan.shots)
        else:
            flat = {}
            for shard in plan.shards:
                for key, value in by_id[shard.shard_id].counts.items():
                    flat[key] = flat.get(key, 0) + value
        return _format(flat, plan.layout)


def summarize_cuts(blocks: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Cut blocks as one dict: the block itself when there is one; with several, each under
    ``blocks``, with every cut, the largest overhead and the circuits run (when known) in total."""
    if not blocks:
        return None
    if len(blocks) == 1:
        return dict(blocks[0])
    out: dict[str, Any] = {
        "blocks": [dict(b) for b in blocks],
        "cuts": [c for b in blocks for c in b["cuts"]],
        "sampling_overhead": max(b["sampling_overhead"] for b in blocks),
    }
    if all("executed_circuits" in b for b in blocks):
        out["executed_circuits"] = sum(b["executed_circuits"] for b in blocks)
    return out


def _join(parts: Sequence[tuple[Sequence[int], Mapping[str, int], int]], n: int, shots: int) -> dict[str, int]:
    """Independent parts' samples side by side: each part's samples in a seeded random order (results
    report counts, not shot order), part ``(clbits, counts, seed)`` filling its classical bits."""
    if len(parts) == 1 and tuple(parts[0][0]) == tuple(range(n)):
        return dict(parts[0][1])
    full = np.zeros((shots, n), dtype=np.uint8)
    for clbits, counts, seed in parts:
        if not clbits:
            continue
        keys = sorted(counts)  # order-independent: stored results come back with sorted keys
        bits = _keys_to_bits(keys, len(clbits))  # (unique, m), column j = part bit j
        outcome = np.repeat(np.arange(len(keys)), [counts[k] for k in keys])
        np.random.default_rng(seed).shuffle(outcome)
        full[:, list(clbits)] = bits[outcome]
    return _rows_to_counts(full)


def _span(qubits: Sequence[int]) -> str:
    if list(qubits) == list(range(qubits[0], qubits[0] + len(qubits))):
        return f"{qubits[0]}..{qubits[-1]}"
    return ", ".join(map(str, qubits[:8])) + (", ..." if len(qubits) > 8 else "")


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
