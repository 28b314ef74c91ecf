"""Planning benchmark: a 1000-qubit, 100,000-gate circuit planned on a mixed cluster.

The circuit: 10 blocks of 100 qubits; 100,000 gates drawn at random, 70% single-qubit ``rz``/``ry``
on a random qubit, 30% ``cx`` between a random qubit and a neighbour at most 3 places away in
the same block (so the 10 blocks are the components); then every qubit measured into its own
clbit (1000 clbits). Cluster: 8 ``local_cpu`` x 25 qubits + 1 ``local_gpu_mps`` x 1000 qubits.

Timed: creating the :class:`VirtualCircuitSpec` and ``ShardPlanner().plan(spec, registry)``,
which includes the one-pass circuit analysis (a fresh spec each repetition, so nothing is
cached). Not timed: building the circuit.

Anchor: the 1 s budget. Ratio = planning time / 1 s; target <= 1.0.

Second part, the public corpus (``tests/data/corpus``: MQT Bench 2.3, every family at the ``alg``
and ``indep`` levels, widths 4-10 and the three larger fixed-size families, plus the hand-written
OpenQASM and the Qiskit circuit-library circuits): every circuit planned on three clusters of
``tests.corpus`` (roomy exact nodes; two exact nodes that force cuts; the same plus an MPS node),
for counts and for three observables. Timed: ``DistributedQVM.plan`` (strategy choice, cut search,
subexperiment generation), warm (the spec, with its compile stage, is built first and timed
apart as "compile"). A typed refusal counts as a plan (its time is the time to refuse). Printed:
median, 90th percentile and maximum, the slowest circuits, and how many exceed 1 s.
Ratio = slowest plan / 1 s; target <= 1.0.

Run: ``python -m bench.plan [--repeat N] [--strict] [--corpus-only | --no-corpus]``
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
from qiskit import QuantumCircuit

from bench.common import Verdicts, base_parser, environment, fmt_seconds, measure, result_line

N_BLOCKS = 10
BLOCK = 100
N_GATES = 100_000
CX_FRACTION = 0.3
CX_REACH = 3
BUDGET_S = 1.0


def planning_circuit(seed: int) -> QuantumCircuit:
    """10 independent 100-qubit blocks, 100,000 random gates, all 1000 qubits measured."""
    rng = np.random.default_rng(seed)
    n = N_BLOCKS * BLOCK
    qc = QuantumCircuit(n, n, name="plan1000")
    kinds = rng.random(N_GATES)
    qubits = rng.integers(0, n, N_GATES)
    angles = rng.uniform(0.0, 2.0 * np.pi, N_GATES)
    hops = rng.integers(1, CX_REACH + 1, N_GATES)
    for kind, q, angle, hop in zip(kinds.tolist(), qubits.tolist(), angles.tolist(), hops.tolist(), strict=True):
        if kind < CX_FRACTION:
            base = q - q % BLOCK
            local = q % BLOCK
            # a neighbour inside the block, to the right when there is room, else to the left
            other = local + hop if local + hop < BLOCK else local - hop
            qc.cx(q, base + other)
        elif kind < CX_FRACTION + (1 - CX_FRACTION) / 2:
            qc.rz(angle, q)
        else:
            qc.ry(angle, q)
    qc.measure(range(n), range(n))
    return qc


def corpus_plans(verdicts: Verdicts) -> None:
    """Plan every corpus circuit on the three corpus clusters, for counts and for observables."""
    import statistics
    import time

    from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
    from network.errors import QVMError
    from tests.corpus import _measured, cases, cut_cluster, observables_for, roomy_cluster

    rows: list[tuple[float, str]] = []
    compile_times: list[float] = []
    refused = 0
    unreadable = 0
    clusters = {
        "roomy": roomy_cluster,
        "cut": cut_cluster,
        "cut+mps": lambda n: cut_cluster(n, mps=True),
    }
    all_cases = cases()
    warm = DistributedQVM(cut_cluster(4))  # imports and first-call costs out of the timings
    with contextlib.suppress(QVMError):
        warm.plan(VirtualCircuitSpec(circuit_object=_measured(all_cases[0].load()), seed=1))
    for case in all_cases:
        try:
            circuit = case.load()
        except QVMError:
            unreadable += 1
            continue
        n = circuit.num_qubits
        for observe in (False, True):
            t0 = time.perf_counter()
            try:
                if observe:
                    spec = VirtualCircuitSpec(circuit_object=circuit, observables=observables_for(n, case.name), seed=1)
                else:
                    spec = VirtualCircuitSpec(circuit_object=_measured(circuit), seed=1)
            except QVMError:
                unreadable += 1
                break
            compile_times.append(time.perf_counter() - t0)
            for name, cluster in clusters.items():
                qvm = DistributedQVM(cluster(n))
                t0 = time.perf_counter()
                try:
                    qvm.plan(spec)
                except QVMError:
                    refused += 1
                rows.append((time.perf_counter() - t0, f"{case.name} on {name}{' (observables)' if observe else ''}"))
    times = sorted(t for t, _ in rows)
    print(f"\n== public corpus: {len(all_cases)} circuits, {len(rows)} plans on 3 clusters (counts, observables) ==")
    print(f"unreadable or opaque (typed refusal before planning): {unreadable}; plans refused (typed): {refused}")
    print(
        f"compile (spec + lowering): median {fmt_seconds(statistics.median(compile_times))}, "
        f"max {fmt_seconds(max(compile_times))}"
    )
    p90 = times[int(0.9 * (len(times) - 1))]
    print(
        f"plan: median {fmt_seconds(statistics.median(times))}, p90 {fmt_seconds(p90)}, max {fmt_seconds(times[-1])}; "
        f"{sum(t > BUDGET_S for t in times)} of {len(times)} above {fmt_seconds(BUDGET_S)}"
    )
    print("slowest plans:")
    for seconds, label in sorted(rows, reverse=True)[:5]:
        print(f"  {fmt_seconds(seconds):>9s}  {label}")
    verdicts.add(result_line("plan_corpus_slowest", times[-1] / BUDGET_S, 1.0))


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0], repeat=7)
    parser.add_argument("--corpus-only", action="store_true", help="only the public corpus part")
    parser.add_argument("--no-corpus", action="store_true", help="skip the public corpus part")
    args = parser.parse_args(argv)
    verdicts = Verdicts(args.strict)
    if args.corpus_only:
        print(f"# bench.plan  ({environment()})")
        corpus_plans(verdicts)
        verdicts.exit()
        return

    from network.node_providers import ClusterBuilder
    from network.planning import ShardPlanner
    from network.spec import VirtualCircuitSpec

    print(f"# bench.plan  ({environment()})")
    print(f"# repeat={args.repeat} warmup={args.warmup} seed={args.seed}; best-of-N kept")
    qc = planning_circuit(args.seed)
    ops = qc.count_ops()
    registry = (
        ClusterBuilder()
        .add("local_cpu", n_nodes=8, max_qubits=25)
        .add("local_gpu_mps", n_nodes=1, max_qubits=1000)
        .build()
    )
    print(
        f"\n== {qc.num_qubits} qubits, {qc.num_clbits} clbits, {len(qc.data)} instructions "
        f"({', '.join(f'{k} {v}' for k, v in sorted(ops.items()))}) on {registry.capacities()} =="
    )
    planner = ShardPlanner()

    def plan() -> Any:
        return planner.plan(VirtualCircuitSpec(circuit_object=qc), registry)

    timing = measure("plan", plan, repeat=args.repeat, warmup=args.warmup)
    result = timing.best_value
    print(f"plan (spec + analysis + planning): {timing.describe()}")
    widths = sorted({s.width for s in result.shards})
    print(
        f"plan: {result.strategy.value}, {len(result.shards)} shard(s) of width {widths} on "
        f"{sorted({s.node_id for s in result.shards})}, approximate={result.approximate}"
    )
    print(f"budget: {fmt_seconds(BUDGET_S)}")

    print("\n== results (ratio = planning time / 1 s budget; PASS when ratio <= target) ==")
    verdicts.add(result_line("plan_1000q_100kgates", timing.best / BUDGET_S, 1.0))
    if not args.no_corpus:
        corpus_plans(verdicts)
    verdicts.exit()


if __name__ == "__main__":
    main()
