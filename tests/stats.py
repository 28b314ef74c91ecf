"""Statistical helpers: exact distributions and shot-noise bounds for comparing counts."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import Statevector

from network.circuits import ClbitLayout

#: Probability that a correct sampler fails a TVD check (McDiarmid bound).
FAILURE_PROBABILITY = 1e-9


def exact_distribution(circuit: QuantumCircuit) -> dict[str, float]:
    """Exact distribution of the count keys of a circuit whose measurements are all terminal."""
    body = circuit.copy_empty_like()
    measured: dict[int, int] = {}
    for inst in circuit.data:
        if inst.name == "measure":
            q = circuit.find_bit(inst.qubits[0]).index
            c = circuit.find_bit(inst.clbits[0]).index
            measured[c] = q
        elif inst.name in ("barrier", "delay"):
            continue
        else:
            assert not any(circuit.find_bit(q).index in measured.values() for q in inst.qubits), (
                "exact_distribution needs terminal measurements"
            )
            body.append(inst)
    probs = Statevector(body).probabilities()
    layout = ClbitLayout.of(circuit)
    n = circuit.num_clbits
    out: dict[str, float] = {}
    for index in np.flatnonzero(probs > 1e-14):
        flat = ["0"] * n
        for c, q in measured.items():
            flat[n - 1 - c] = "1" if (int(index) >> q) & 1 else "0"
        key = layout.format("".join(flat))
        out[key] = out.get(key, 0.0) + float(probs[index])
    return out


def tvd(counts: Mapping[str, int], exact: Mapping[str, float]) -> float:
    shots = sum(counts.values())
    keys = set(counts) | set(exact)
    return 0.5 * sum(abs(counts.get(k, 0) / shots - exact.get(k, 0.0)) for k in keys)


def tvd_tolerance(exact: Mapping[str, float], shots: int) -> float:
    """Bound on the TVD of ``shots`` samples from ``exact``, failing with tiny probability.

    E[TVD] <= 1/2 sum_i sqrt(p_i (1 - p_i) / N); the TVD changes by at most 1/N per sample, so by
    McDiarmid it exceeds its mean by t with probability at most exp(-2 N t^2).
    """
    mean = 0.5 * sum(math.sqrt(p * (1 - p) / shots) for p in exact.values())
    return mean + math.sqrt(math.log(1 / FAILURE_PROBABILITY) / (2 * shots))


def assert_matches(counts: Mapping[str, int], exact: Mapping[str, float], *, what: str = "counts") -> None:
    shots = sum(counts.values())
    distance = tvd(counts, exact)
    bound = tvd_tolerance(exact, shots)
    assert distance <= bound, f"{what}: TVD {distance:.4f} exceeds the shot-noise bound {bound:.4f} ({shots} shots)"
    unexpected = [k for k in counts if k not in exact]
    assert not unexpected, f"{what}: outcomes with zero exact probability: {unexpected[:5]}"


def assert_same_distribution(a: Mapping[str, int], b: Mapping[str, int], *, what: str = "counts") -> None:
    """Two samplers agree: the TVD of their empirical distributions is within two-sample shot noise.

    The expected TVD is bounded with the pooled frequencies, 1/2 sum_i sqrt(p_i (1 - p_i) (1/Na + 1/Nb));
    each sample moves the TVD by at most 1/Na or 1/Nb, so McDiarmid adds
    sqrt(log(1/delta) (1/Na + 1/Nb) / 2).
    """
    na, nb = sum(a.values()), sum(b.values())
    keys = set(a) | set(b)
    pooled = {k: (a.get(k, 0) + b.get(k, 0)) / (na + nb) for k in keys}
    scale = 1 / na + 1 / nb
    mean = 0.5 * sum(math.sqrt(p * (1 - p) * scale) for p in pooled.values())
    bound = mean + math.sqrt(math.log(1 / FAILURE_PROBABILITY) * scale / 2)
    distance = 0.5 * sum(abs(a.get(k, 0) / na - b.get(k, 0) / nb) for k in keys)
    assert distance <= bound, (
        f"{what}: TVD {distance:.4f} between the samplers exceeds {bound:.4f} ({na} vs {nb} shots)"
    )
