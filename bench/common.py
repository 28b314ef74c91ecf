"""Shared helpers for the benchmark scripts: circuits, timing and the ``RESULT`` line.

The machine these run on is small and noisy (two cores), so every measurement is the best of
several repetitions after a warm-up, and comparisons that matter are interleaved (A B A B ...)
so drift hits both sides alike. Nothing here asserts anything: the scripts print, and exit
non-zero only under ``--strict``.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit import QuantumCircuit

__all__ = [
    "Timing",
    "base_parser",
    "block_circuit",
    "block_circuits",
    "brickwork_circuit",
    "environment",
    "fmt_seconds",
    "interleave",
    "measure",
    "result_line",
    "table",
    "Verdicts",
]


# ---------------------------------------------------------------------------------------------
# Circuits
# ---------------------------------------------------------------------------------------------


def _layer_angles(rng: np.random.Generator, n_blocks: int, block_size: int, depth: int) -> np.ndarray:
    """Angles indexed ``[layer, block, qubit-in-block, (ry, rz)]``, drawn once for the whole circuit."""
    return rng.uniform(0.0, 2.0 * math.pi, size=(depth, n_blocks, block_size, 2))


def _append_layer(qc: QuantumCircuit, offset: int, block_size: int, angles: np.ndarray, layer: int) -> None:
    """One layer of one block: ``ry`` and ``rz`` on every qubit, then a CX brickwork row."""
    for j in range(block_size):
        qc.ry(float(angles[j, 0]), offset + j)
        qc.rz(float(angles[j, 1]), offset + j)
    for j in range(layer % 2, block_size - 1, 2):  # even pairs on even layers, odd pairs on odd ones
        qc.cx(offset + j, offset + j + 1)


def block_circuit(
    n_blocks: int, block_size: int, depth: int, *, seed: int = 1234, measure: bool = True
) -> QuantumCircuit:
    """``n_blocks`` independent brickwork blocks of ``block_size`` qubits side by side.

    Each of the ``depth`` layers applies random ``ry`` and ``rz`` to every qubit, then CX on
    neighbouring pairs inside each block, alternating even and odd pairs. No gate crosses a block
    boundary, so the blocks are independent components. ``measure_all`` when ``measure``.
    """
    angles = _layer_angles(np.random.default_rng(seed), n_blocks, block_size, depth)
    qc = QuantumCircuit(n_blocks * block_size, name=f"blocks{n_blocks}x{block_size}d{depth}")
    for layer in range(depth):
        for b in range(n_blocks):
            _append_layer(qc, b * block_size, block_size, angles[layer, b], layer)
    if measure:
        qc.measure_all()
    return qc


def block_circuits(
    n_blocks: int, block_size: int, depth: int, *, seed: int = 1234, measure: bool = True
) -> list[QuantumCircuit]:
    """The blocks of :func:`block_circuit` (same seed, same angles) as separate circuits."""
    angles = _layer_angles(np.random.default_rng(seed), n_blocks, block_size, depth)
    out = []
    for b in range(n_blocks):
        qc = QuantumCircuit(block_size, name=f"block{b}")
        for layer in range(depth):
            _append_layer(qc, 0, block_size, angles[layer, b], layer)
        if measure:
            qc.measure_all()
        out.append(qc)
    return out


def brickwork_circuit(n_qubits: int, depth: int, *, seed: int = 1234, measure: bool = True) -> QuantumCircuit:
    """One connected brickwork block of ``n_qubits`` (a single-block :func:`block_circuit`)."""
    return block_circuit(1, n_qubits, depth, seed=seed, measure=measure)


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Wall times of the timed repetitions (warm-ups excluded) and the value of the best one."""

    label: str
    samples: list[float] = field(default_factory=list)
    best_value: Any = None

    @property
    def best(self) -> float:
        return min(self.samples) if self.samples else math.nan

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    def add(self, seconds: float, value: Any) -> None:
        if not self.samples or seconds < self.best:
            self.best_value = value
        self.samples.append(seconds)

    def describe(self) -> str:
        n = len(self.samples)
        return f"best {fmt_seconds(self.best)}  median {fmt_seconds(self.median)}  (n={n})"


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def measure(label: str, fn: Callable[[], Any], *, repeat: int, warmup: int = 1) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``repeat`` times timed."""
    for _ in range(warmup):
        fn()
    timing = Timing(label)
    for _ in range(max(1, repeat)):
        timing.add(*_timed(fn))
    return timing


def interleave(fns: Mapping[str, Callable[[], Any]], *, repeat: int, warmup: int = 1) -> dict[str, Timing]:
    """Time several functions in turn (A B A B ...) so slow drift affects them equally.

    Each round alternates which function goes first, so none always runs on a cold (or warm)
    cache right after the other.
    """
    items = list(fns.items())
    for _ in range(warmup):
        for _, fn in items:
            fn()
    timings = {label: Timing(label) for label, _ in items}
    for r in range(max(1, repeat)):
        order = items if r % 2 == 0 else items[::-1]
        for label, fn in order:
            timings[label].add(*_timed(fn))
    return timings


def fmt_seconds(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    if seconds >= 1.0:
        return f"{seconds:.3f} s"
    return f"{seconds * 1e3:.1f} ms"


# ---------------------------------------------------------------------------------------------
# Command line and verdicts
# ---------------------------------------------------------------------------------------------


def base_parser(description: str, *, repeat: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeat", type=int, default=repeat, help=f"timed repetitions, best kept (default {repeat})")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs (default 1)")
    parser.add_argument("--seed", type=int, default=1234, help="seed for circuits and simulators (default 1234)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    return parser


def environment() -> str:
    """One line describing the machine and library versions, printed at the top of each run."""
    import qiskit
    import qiskit_aer

    return (
        f"python {platform.python_version()}, qiskit {qiskit.__version__}, qiskit-aer {qiskit_aer.__version__}, "
        f"{os.cpu_count()} cpu(s), {platform.machine()}"
    )


def result_line(name: str, ratio: float, target: float, *, bound: bool = False) -> bool:
    """Print ``RESULT <name> ratio=<x> target=<t> PASS|FAIL`` and return whether it passed.

    Every ratio is *benchmark time / anchor time* (lower is better); it passes when
    ``ratio <= target``. ``bound`` marks a ratio that is only an upper bound (the anchor hit its
    time limit); an upper bound that meets the target still proves the target.
    """
    passed = ratio <= target
    if bound:
        print(
            f"# {name}: the ratio below is an upper bound (the anchor was stopped at its time limit); "
            "a FAIL here is inconclusive: raise the limit"
        )
    print(f"RESULT {name} ratio={ratio:.4g} target={target:g} {'PASS' if passed else 'FAIL'}")
    return passed


@dataclass
class Verdicts:
    """Collects pass/fail results and turns them into the exit status."""

    strict: bool
    results: list[bool] = field(default_factory=list)

    def add(self, passed: bool) -> None:
        self.results.append(passed)

    def exit(self) -> None:
        sys.stdout.flush()
        sys.exit(1 if self.strict and not all(self.results) else 0)


def table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)
