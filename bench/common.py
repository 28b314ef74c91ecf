"""Shared helpers for the benchmark scripts: circuits, timing and the ``RESULT`` line.

The machine these run on is small and noisy (two cores), so every measurement is the best of
several repetitions after a warm-up, and comparisons that matter are interleaved (A B A B ...)
so drift hits both sides alike. Nothing here asserts anything: the scripts print, and exit
non-zero only under ``--strict``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qiskit import QuantumCircuit

__all__ = [
    "Timing",
    "added_line",
    "base_parser",
    "block_circuit",
    "block_circuits",
    "brickwork_circuit",
    "environment",
    "fmt_seconds",
    "interleave",
    "measure",
    "prefect_server",
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
# A real Prefect server
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def server_process(
    home: Path, *, settings: Mapping[str, str] | None = None, timeout: float = 180.0
) -> Iterator[tuple[str, Path]]:
    """Run ``prefect server start`` on 127.0.0.1 and a free port until the block exits.

    Its ``PREFECT_HOME`` is ``home/server``, its output goes to ``home/server.log``; no analytics,
    no UI, and nothing of this process's ``PREFECT_*`` environment reaches it (``settings`` are
    extra ``PREFECT_*`` variables for it). Yields the API URL and the log's path; on exit the
    server's whole process group is stopped.

    Raises:
        RuntimeError: the server exited, or did not answer ``/api/health`` within ``timeout`` s.
    """
    exe = Path(sys.executable).with_name("prefect")
    command = [str(exe) if exe.exists() else (shutil.which("prefect") or "prefect")]
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    server_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    server_env.update(
        PREFECT_HOME=str(home / "server"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
    )
    server_env.update(settings or {})
    log_path = home / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*command, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=server_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, stopped as a whole below
        )
    try:
        started = time.perf_counter()
        while not _healthy(url):
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"prefect server not healthy after {timeout:.0f} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.25)
        print(f"# prefect server at {url} (started in {time.perf_counter() - started:.1f} s)", flush=True)
        yield url, log_path
    finally:
        _stop_group(proc)


@contextlib.contextmanager
def prefect_server(*, timeout: float = 180.0, settings: Mapping[str, str] | None = None) -> Iterator[str]:
    """Start ``prefect server start`` on a free local port (:func:`server_process`) and point this
    process at it.

    The server gets its own temporary ``PREFECT_HOME`` (so a fresh SQLite database), no
    analytics and no UI. This process's ``PREFECT_API_URL`` and ``PREFECT_HOME`` are set in the
    environment before Prefect is imported, so flows called in-process run against that server
    (a real API round trip for every flow run, task run, state change and artifact), and task
    results persisted by Prefect land in the temporary folder. ``settings`` are extra
    ``PREFECT_*`` variables for the server only. Yields the API URL; on exit the server is
    stopped and the folder removed.

    Raises:
        RuntimeError: Prefect is already imported (its settings would not follow), or the
            server did not answer ``/api/health`` within ``timeout`` seconds.
    """
    if "prefect" in sys.modules:
        raise RuntimeError("prefect_server() must run before anything imports prefect")
    home = Path(tempfile.mkdtemp(prefix="qcos-bench-prefect-"))
    saved = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME")}
    try:
        with server_process(home, settings=settings, timeout=timeout) as (url, _):
            os.environ["PREFECT_API_URL"] = url
            os.environ["PREFECT_HOME"] = str(home / "client")
            yield url
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(home, ignore_errors=True)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left after 15 s."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; make sure no child of the group outlives it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


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


def result_line(name: str, ratio: float, target: float, *, bound: bool = False, higher: bool = False) -> bool:
    """Print ``RESULT <name> ratio=<x> target=<t> PASS|FAIL`` and return whether it passed.

    Every ratio is *benchmark time / anchor time* (lower is better); it passes when
    ``ratio <= target``. ``higher`` flips that for throughput ratios (passes when
    ``ratio >= target``). ``bound`` marks a ratio that is only an upper bound (the anchor hit its
    time limit); an upper bound that meets the target still proves the target.
    """
    passed = ratio >= target if higher else ratio <= target
    if bound:
        print(
            f"# {name}: the ratio below is an upper bound (the anchor was stopped at its time limit); "
            "a FAIL here is inconclusive: raise the limit"
        )
    print(f"RESULT {name} ratio={ratio:.4g} target={target:g} {'PASS' if passed else 'FAIL'}")
    return passed


def added_line(name: str, added: float, target: float) -> bool:
    """Print ``RESULT <name> added=<seconds> target=<t> PASS|FAIL`` (passes when ``added <= target``)."""
    passed = added <= target
    print(f"RESULT {name} added={added:.3f} target={target:g} {'PASS' if passed else 'FAIL'}")
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
