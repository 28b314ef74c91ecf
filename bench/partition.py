"""PARTITION benchmark: eight independent blocks through the QVM vs MPS and vs hand-split Aer.

Deep case (the targets): 128 qubits as 8 blocks of 16, depth 40, ``measure_all``, 4096 shots, on
``ClusterBuilder().add("local_cpu", n_nodes=8, max_qubits=25)``, timed through the full
``DistributedQVM.run`` with a fresh :class:`VirtualCircuitSpec` each time (so the circuit analysis
counts). Anchors, measured in the same run:

* MPS: Aer ``matrix_product_state`` on the whole circuit, run once (about 100 s here).
  Target: the QVM at least 50x faster (ratio qvm/mps <= 0.02).
* ideal: the eight blocks as separate 16-qubit circuits straight on Aer statevector, the best of
  one parallel batch, serial calls, and a thread pool of single-thread simulators.
  Target: the QVM within 1.25x (ratio qvm/ideal <= 1.25).

Shallow case (no target, printed for honesty): 8 blocks of 20 qubits, depth 10, where MPS is cheap.

Run: ``python -m bench.partition [--repeat N] [--skip-mps] [--mps-timeout S] [--strict]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    Timing,
    Verdicts,
    base_parser,
    block_circuit,
    block_circuits,
    environment,
    fmt_seconds,
    interleave,
    result_line,
    table,
)

SHOTS = 4096
TARGET_VS_MPS = 1 / 50  # qvm / mps
TARGET_VS_IDEAL = 1.25  # qvm / ideal


@dataclass(frozen=True)
class Case:
    name: str
    n_blocks: int
    block_size: int
    depth: int

    @property
    def n_qubits(self) -> int:
        return self.n_blocks * self.block_size

    def describe(self) -> str:
        return f"{self.n_qubits} qubits = {self.n_blocks} x {self.block_size}, depth {self.depth}, {SHOTS} shots"


DEEP = Case("deep", 8, 16, 40)
SHALLOW = Case("shallow", 8, 20, 10)


# ---------------------------------------------------------------------------------------------
# The contenders
# ---------------------------------------------------------------------------------------------


def qvm_runner(case: Case, seed: int) -> tuple[Any, Any]:
    """``(fn, qvm)``: ``fn()`` runs the whole circuit through ``DistributedQVM.run``."""
    from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
    from network.node_providers import ClusterBuilder

    registry = ClusterBuilder().add("local_cpu", n_nodes=8, max_qubits=25).build()
    qvm = DistributedQVM(registry, shots=SHOTS)
    qc = block_circuit(case.n_blocks, case.block_size, case.depth, seed=seed)

    def run() -> Any:
        return qvm.run(VirtualCircuitSpec(circuit_object=qc, seed=seed))

    return run, qvm


def ideal_runners(case: Case, seed: int) -> dict[str, Any]:
    """The blocks run straight on Aer statevector, three ways of using the cores."""
    from qiskit_aer import AerSimulator

    blocks = block_circuits(case.n_blocks, case.block_size, case.depth, seed=seed)
    cores = os.cpu_count() or 1

    def batch() -> Any:
        sim = AerSimulator(max_parallel_experiments=cores)
        result = sim.run(blocks, shots=SHOTS, seed_simulator=seed).result()
        return [result.get_counts(i) for i in range(len(blocks))]

    def serial() -> Any:
        sim = AerSimulator()
        return [sim.run(b, shots=SHOTS, seed_simulator=seed + i).result().get_counts() for i, b in enumerate(blocks)]

    def one_thread(item: tuple[int, Any]) -> Any:
        i, block = item
        sim = AerSimulator(max_parallel_threads=1)
        return sim.run(block, shots=SHOTS, seed_simulator=seed + i).result().get_counts()

    def threads() -> Any:
        with ThreadPoolExecutor(max_workers=cores, thread_name_prefix="ideal") as pool:
            return list(pool.map(one_thread, enumerate(blocks)))

    return {"ideal (a) batch": batch, "ideal (b) serial": serial, "ideal (c) threads": threads}


def time_mps(n_blocks: int, block_size: int, depth: int, seed: int) -> float:
    """Seconds for one Aer MPS run of the whole circuit (after a tiny warm-up of Aer itself)."""
    from qiskit import QuantumCircuit
    from qiskit_aer import AerSimulator

    qc = block_circuit(n_blocks, block_size, depth, seed=seed)
    tiny = QuantumCircuit(2)
    tiny.h(0)
    tiny.cx(0, 1)
    tiny.measure_all()
    AerSimulator(method="matrix_product_state").run(tiny, shots=16).result()
    start = time.perf_counter()
    result = AerSimulator(method="matrix_product_state").run(qc, shots=SHOTS, seed_simulator=seed).result()
    seconds = time.perf_counter() - start
    if not result.success:
        raise RuntimeError(f"MPS run failed: {result.status}")
    return seconds


def mps_anchor(case: Case, seed: int, timeout: float | None) -> tuple[float, bool]:
    """``(seconds, is_lower_bound)``. With ``timeout``, runs in a subprocess killed at the limit."""
    if timeout is None:
        return time_mps(case.n_blocks, case.block_size, case.depth, seed), False
    code = (
        "from bench.partition import time_mps; "
        f"print('MPS_SECONDS', time_mps({case.n_blocks}, {case.block_size}, {case.depth}, {seed}))"
    )
    root = Path(__file__).resolve().parent.parent
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:  # subprocess.run has already killed and reaped the child
        return max(timeout, time.perf_counter() - start), True
    for line in done.stdout.splitlines():
        if line.startswith("MPS_SECONDS"):
            return float(line.split()[1]), False
    raise RuntimeError(f"MPS subprocess failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def check_qvm_result(result: Any, case: Case) -> str:
    total = sum(result.counts.values())
    widths = {len(k.replace(" ", "")) for k in result.counts}
    if total != SHOTS or widths != {case.n_qubits}:
        raise RuntimeError(f"QVM result looks wrong: {total} shots, key widths {sorted(widths)}")
    plan = result.plan
    t = result.timings
    return (
        f"{plan.strategy.value}, {len(plan.shards)} shards on {len({s.node_id for s in plan.shards})} nodes; "
        f"best run: plan {fmt_seconds(t['plan'])}, execute {fmt_seconds(t['execute'])}, "
        f"reconstruct {fmt_seconds(t['reconstruct'])}, total {fmt_seconds(t['total'])}"
    )


def run_case(case: Case, args: argparse.Namespace, repeat: int) -> tuple[Timing, Timing]:
    """Interleave the QVM with the three ideal variants; return (qvm, best ideal)."""
    qvm_fn, _ = qvm_runner(case, args.seed)
    fns = {"qvm": qvm_fn, **ideal_runners(case, args.seed)}
    timings = interleave(fns, repeat=repeat, warmup=args.warmup)
    qvm = timings.pop("qvm")
    ideal = min(timings.values(), key=lambda t: t.best)
    rows = [["contender", "best", "median", "x ideal"]]
    for t in [qvm, *timings.values()]:
        rows.append([t.label, fmt_seconds(t.best), fmt_seconds(t.median), f"{t.best / ideal.best:.3f}"])
    print(table(rows))
    print(f"qvm: {check_qvm_result(qvm.best_value, case)}")
    print(f"ideal = {ideal.label}: {fmt_seconds(ideal.best)}")
    return qvm, ideal


def print_mps(case: Case, qvm: Timing, args: argparse.Namespace) -> tuple[float, bool] | None:
    if args.skip_mps:
        print("MPS anchor skipped (--skip-mps)")
        return None
    print(f"MPS anchor: one run of Aer matrix_product_state on all {case.n_qubits} qubits ...", flush=True)
    seconds, bound = mps_anchor(case, args.seed, args.mps_timeout)
    shown = f">= {fmt_seconds(seconds)} (stopped at --mps-timeout)" if bound else fmt_seconds(seconds)
    speedup = seconds / qvm.best
    print(f"MPS: {shown}; qvm is {'>= ' if bound else ''}{speedup:.1f}x faster")
    return seconds, bound


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0], repeat=7)
    parser.add_argument("--skip-mps", action="store_true", help="skip the (slow) MPS anchor")
    parser.add_argument(
        "--mps-timeout",
        type=float,
        default=None,
        help="run MPS in a subprocess and give up after this many seconds (reports a lower bound)",
    )
    parser.add_argument("--skip-shallow", action="store_true", help="skip the shallow (no-target) case")
    parser.add_argument(
        "--shallow-repeat", type=int, default=3, help="timed repetitions for the shallow case (default 3)"
    )
    args = parser.parse_args(argv)
    verdicts = Verdicts(args.strict)
    print(f"# bench.partition  ({environment()})")
    print(
        f"# repeat={args.repeat} (shallow {args.shallow_repeat}) warmup={args.warmup} seed={args.seed}; "
        "interleaved, best-of-N kept"
    )

    print(f"\n== deep: {DEEP.describe()} ==")
    qvm, ideal = run_case(DEEP, args, args.repeat)

    if not args.skip_shallow:
        print(f"\n== shallow (no target): {SHALLOW.describe()} ==")
        s_qvm, s_ideal = run_case(SHALLOW, args, args.shallow_repeat)
        s_mps = print_mps(SHALLOW, s_qvm, args)
        if s_mps is not None:
            print(f"shallow: qvm/mps = {s_qvm.best / s_mps[0]:.3g}, qvm/ideal = {s_qvm.best / s_ideal.best:.3f}")

    print("\n== deep: MPS anchor ==")
    mps = print_mps(DEEP, qvm, args)

    print("\n== results (ratio = qvm time / anchor time; PASS when ratio <= target) ==")
    print(f"deep qvm {fmt_seconds(qvm.best)} vs ideal {fmt_seconds(ideal.best)} ({ideal.label})")
    if mps is not None:
        mps_seconds, bound = mps
        print(f"deep qvm {fmt_seconds(qvm.best)} vs MPS {fmt_seconds(mps_seconds)}: target qvm >= 50x faster")
        verdicts.add(result_line("partition_vs_mps", qvm.best / mps_seconds, TARGET_VS_MPS, bound=bound))
    verdicts.add(result_line("partition_vs_ideal", qvm.best / ideal.best, TARGET_VS_IDEAL))
    verdicts.exit()


if __name__ == "__main__":
    main()
