"""Qiskit's primitives over a cluster: code written for ``SamplerV2`` and ``EstimatorV2`` runs on the
distributed QVM by changing only the line that makes the primitive.

    sampler = QVMSampler(registry)            # instead of StatevectorSampler() or Aer's SamplerV2()
    estimator = QVMEstimator(registry)        # instead of StatevectorEstimator()

Each PUB is coerced by Qiskit's own containers (parameter values broadcast as ``BindingsArray`` does,
observables as ``ObservablesArray``), and each of its bindings becomes one
:class:`~network.spec.VirtualCircuitSpec` through :class:`~network.distributed_qvm.DistributedQVM`, so
every strategy applies underneath: a PUB wider than the nodes is partitioned or cut, and the
estimator's values of a cut circuit are the cut's reconstructed expectation values. Results are
Qiskit's ``PrimitiveResult`` of ``SamplerPubResult`` (one ``BitArray`` per classical register, in
the circuit's register names) or ``PubResult`` (``evs`` and ``stds``), with metadata that names each
binding's plan, strategy, nodes and estimated cost.

Precision: the estimator runs ``ceil((norm / precision)^2)`` shots per binding, ``norm`` the largest sum
of |coefficients| among the binding's observables (the standard error of a mean of ``norm``-bounded
outcomes), at most ``max_shots``; the reported ``stds`` are the QVM's own standard errors (for a cut:
its bootstrap errors, which include the sampling overhead).
"""

from __future__ import annotations

import math
import secrets
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from qiskit.primitives import (
    BaseEstimatorV2,
    BaseSamplerV2,
    DataBin,
    PrimitiveJob,
    PrimitiveResult,
    PubResult,
    SamplerPubResult,
)
from qiskit.primitives.containers import BitArray
from qiskit.primitives.containers.estimator_pub import EstimatorPub, EstimatorPubLike
from qiskit.primitives.containers.sampler_pub import SamplerPub, SamplerPubLike
from qiskit.quantum_info import SparsePauliOp

from network.circuits import ClbitLayout, derive_seed
from network.distributed_qvm import DistributedQVM
from network.node_providers import QPURegistry, QVMMode
from network.results import QVMResult
from network.spec import VirtualCircuitSpec

__all__ = ["QVMEstimator", "QVMSampler"]

#: Precision the estimator aims for when neither ``run`` nor the PUB sets one.
DEFAULT_PRECISION = 0.015625
#: Most shots one estimator binding takes, whatever precision is asked.
DEFAULT_MAX_SHOTS = 1_000_000


def _qvm(target: QPURegistry | DistributedQVM, mode: QVMMode | str) -> DistributedQVM:
    if isinstance(target, DistributedQVM):
        return target
    return DistributedQVM(target, mode=mode)


def _plan_metadata(result: QVMResult) -> dict[str, Any]:
    """What a binding ran on, for a PUB result's metadata."""
    plan = result.plan
    return {
        "run_key": result.run_key,
        "strategy": plan.strategy.value,
        "shards": len(plan.shards),
        "nodes": sorted({s.node_id for s in plan.shards}),
        "estimated_cost": plan.estimated_cost,
        "approximate": result.approximate,
        "emulated": result.emulated,
        "reconstructed": result.reconstructed,
        "seed": result.seed,
        "cut": None
        if result.cut is None
        else {k: result.cut[k] for k in ("sampling_overhead", "cuts") if k in result.cut},
    }


class _QVMPrimitive:
    def __init__(self, target: QPURegistry | DistributedQVM, *, mode: QVMMode | str, seed: int | None) -> None:
        self.qvm = _qvm(target, mode)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            from network.errors import SpecError

            raise SpecError(f"seed must be a non-negative integer or None, got {seed!r}.")
        self._seed = seed

    @property
    def seed(self) -> int | None:
        """Base seed of every run (``None``: a fresh one per call to ``run``)."""
        return self._seed

    def _job_seed(self) -> int:
        return self._seed if self._seed is not None else secrets.randbits(31)


class QVMSampler(_QVMPrimitive, BaseSamplerV2):
    """``SamplerV2`` over a cluster.

    Args:
        target: The cluster (a registry from ``ClusterBuilder().build()``) or a configured
            :class:`DistributedQVM` (its mode, store and retry policy then apply).
        default_shots: Shots of a PUB that sets none when ``run`` sets none.
        seed: Base seed: the same seed and PUBs give the same samples. ``None``: a fresh seed per
            ``run``, recorded in each PUB result's metadata.
        mode: Mode of the QVM built from a registry (``EMULATED`` by default).
    """

    def __init__(
        self,
        target: QPURegistry | DistributedQVM,
        *,
        default_shots: int = 1024,
        seed: int | None = None,
        mode: QVMMode | str = QVMMode.EMULATED,
    ) -> None:
        super().__init__(target, mode=mode, seed=seed)
        self._default_shots = default_shots

    @property
    def default_shots(self) -> int:
        return self._default_shots

    def run(
        self, pubs: Iterable[SamplerPubLike], *, shots: int | None = None
    ) -> PrimitiveJob[PrimitiveResult[SamplerPubResult]]:
        coerced = [SamplerPub.coerce(pub, shots if shots is not None else self._default_shots) for pub in pubs]
        if any(not pub.circuit.cregs for pub in coerced):
            warnings.warn(  # as Qiskit's samplers do
                "One of your circuits has no output classical registers and so the result will be empty. "
                "Did you mean to add measurement instructions?",
                UserWarning,
                stacklevel=2,
            )
        job: PrimitiveJob[PrimitiveResult[SamplerPubResult]] = PrimitiveJob(self._run, coerced, self._job_seed())
        job._submit()
        return job

    def _run(self, pubs: Sequence[SamplerPub], seed: int) -> PrimitiveResult[SamplerPubResult]:
        return PrimitiveResult(
            [self._run_pub(pub, derive_seed(seed, "pub", i)) for i, pub in enumerate(pubs)],
            metadata={"version": 2, "seed": seed},
        )

    def _run_pub(self, pub: SamplerPub, seed: int) -> SamplerPubResult:
        circuit = pub.circuit
        bound = pub.parameter_values.bind_all(circuit)
        registers = [(reg.name, [circuit.find_bit(b).index for b in reg]) for reg in circuit.cregs]
        arrays = {
            name: np.zeros((*bound.shape, pub.shots, math.ceil(len(bits) / 8)), dtype=np.uint8)
            for name, bits in registers
        }
        runs = []
        for index, one in np.ndenumerate(bound):
            binding_seed = derive_seed(seed, "binding", *index)
            if circuit.num_clbits == 0:
                continue  # nothing to sample: empty registers (Qiskit warns as its samplers do)
            result = self.qvm.run(VirtualCircuitSpec(circuit_object=one, shots=pub.shots, seed=binding_seed))
            runs.append(_plan_metadata(result))
            samples = _samples(result.counts, ClbitLayout.of(one), pub.shots, binding_seed)
            for name, bits in registers:
                arrays[name][index] = _pack(samples, bits)
        data = {name: BitArray(arrays[name], len(bits)) for name, bits in registers}
        return SamplerPubResult(
            DataBin(**data, shape=pub.shape),
            metadata={"shots": pub.shots, "circuit_metadata": circuit.metadata, "qvm": runs},
        )


def _samples(counts: Mapping[str, int], layout: ClbitLayout, shots: int, seed: int) -> np.ndarray:
    """The counts as ``shots`` rows of bits (column ``j`` is classical bit ``j``) in a seeded random
    order: the QVM reports counts, a ``BitArray`` holds shots, and registers must stay paired shot by
    shot."""
    n = layout.n_clbits
    keys = list(counts)
    flat = [layout.unformat(k) for k in keys]
    rows = np.array([[int(f[n - 1 - j]) for j in range(n)] for f in flat], dtype=np.uint8).reshape(len(keys), n)
    order = np.repeat(np.arange(len(keys)), [counts[k] for k in keys])
    np.random.default_rng(seed).shuffle(order)
    if len(order) != shots:
        from network.errors import ExecutionError

        raise ExecutionError(f"The QVM returned {len(order)} samples for {shots} shots.")
    return rows[order]


def _pack(samples: np.ndarray, bits: Sequence[int]) -> np.ndarray:
    """One register's bits of every shot, packed big-endian as ``BitArray`` holds them."""
    columns = samples[:, list(reversed(bits))] if bits else np.zeros((samples.shape[0], 0), dtype=np.uint8)
    pad = -len(bits) % 8
    padded = np.pad(columns, ((0, 0), (pad, 0)))
    return np.packbits(padded, axis=-1)


class QVMEstimator(_QVMPrimitive, BaseEstimatorV2):
    """``EstimatorV2`` over a cluster.

    Args:
        target: The cluster (a registry) or a configured :class:`DistributedQVM`.
        default_precision: Target standard error when neither ``run`` nor the PUB sets one.
        max_shots: Most shots one binding may take, whatever the precision.
        seed: Base seed (``None``: a fresh one per ``run``).
        mode: Mode of the QVM built from a registry (``EMULATED`` by default).
    """

    def __init__(
        self,
        target: QPURegistry | DistributedQVM,
        *,
        default_precision: float = DEFAULT_PRECISION,
        max_shots: int = DEFAULT_MAX_SHOTS,
        seed: int | None = None,
        mode: QVMMode | str = QVMMode.EMULATED,
    ) -> None:
        super().__init__(target, mode=mode, seed=seed)
        self._default_precision = default_precision
        self._max_shots = max_shots

    @property
    def default_precision(self) -> float:
        return self._default_precision

    def run(
        self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None
    ) -> PrimitiveJob[PrimitiveResult[PubResult]]:
        chosen = precision if precision is not None else self._default_precision
        coerced = [EstimatorPub.coerce(pub, chosen) for pub in pubs]
        for pub in coerced:
            pub.validate()
        job: PrimitiveJob[PrimitiveResult[PubResult]] = PrimitiveJob(self._run, coerced, self._job_seed())
        job._submit()
        return job

    def _run(self, pubs: Sequence[EstimatorPub], seed: int) -> PrimitiveResult[PubResult]:
        return PrimitiveResult(
            [self._run_pub(pub, derive_seed(seed, "pub", i)) for i, pub in enumerate(pubs)],
            metadata={"version": 2, "seed": seed},
        )

    def shots_for(self, precision: float, norm: float) -> int:
        """Shots for a standard error of ``precision`` on observables whose |coefficients| sum to
        ``norm`` at most, capped at ``max_shots``."""
        if precision <= 0:
            return self._max_shots
        return max(1, min(self._max_shots, math.ceil((max(norm, 1e-12) / precision) ** 2)))

    def _run_pub(self, pub: EstimatorPub, seed: int) -> PubResult:
        circuit = pub.circuit
        bound = pub.parameter_values.bind_all(circuit)  # shape of the parameters
        observables = pub.observables
        shape = np.broadcast_shapes(observables.shape, bound.shape)
        obs_items = np.empty(observables.shape, dtype=object)
        for index in np.ndindex(observables.shape):
            obs_items[index] = observables[index]
        obs_b = np.broadcast_to(obs_items, shape)
        evs = np.zeros(shape)
        stds = np.zeros(shape)
        # one QVM run per distinct binding, with every observable that binding is asked for
        wanted: dict[tuple[int, ...], list[tuple[tuple[int, ...], SparsePauliOp]]] = {}
        for index in np.ndindex(shape):
            source = _source_index(index, bound.shape, shape)
            wanted.setdefault(source, []).append((index, _pauli_op(obs_b[index], circuit.num_qubits)))
        runs = []
        for source, items in wanted.items():
            one = bound[source]  # final measurements are ignored by the QVM's expectation values
            norm = max(float(np.abs(op.coeffs).sum()) for _, op in items)
            shots = self.shots_for(pub.precision, norm)
            result = self.qvm.run(
                VirtualCircuitSpec(
                    circuit_object=one,
                    observables=[op for _, op in items],
                    shots=shots,
                    seed=derive_seed(seed, "binding", *source),
                )
            )
            assert result.expectation_values is not None and result.standard_errors is not None
            for (index, _), value, error in zip(items, result.expectation_values, result.standard_errors, strict=True):
                evs[index] = value
                stds[index] = error
            runs.append({**_plan_metadata(result), "shots": shots, "binding": list(source)})
        return PubResult(
            DataBin(evs=evs, stds=stds, shape=shape),
            metadata={"target_precision": pub.precision, "circuit_metadata": circuit.metadata, "qvm": runs},
        )


def _source_index(index: tuple[int, ...], source_shape: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The index of ``source_shape`` that broadcasting maps to ``index`` of ``shape``."""
    offset = len(shape) - len(source_shape)
    return tuple(0 if size == 1 else index[offset + k] for k, size in enumerate(source_shape))


def _pauli_op(item: Any, num_qubits: int) -> SparsePauliOp:
    """An ``ObservablesArray`` element (``{pauli label: coefficient}``) as a ``SparsePauliOp``."""
    if isinstance(item, SparsePauliOp):
        return item
    labels = list(item) or ["I" * num_qubits]
    coeffs = [float(np.real(item[k])) for k in item] or [0.0]
    return SparsePauliOp(labels, coeffs)
