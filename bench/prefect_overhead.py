"""Prefect overhead: the ``run-circuit`` flow against a real local server vs the in-process driver.

A ``prefect server start`` subprocess (temporary ``PREFECT_HOME``, no UI, no analytics) runs for
the whole benchmark; this process points ``PREFECT_API_URL`` at it and calls the flow
in-process, so every flow run, task run, state change, log batch and artifact is a real API
round trip. The circuit: 22 qubits, random ``ry``/``rz`` layers with a CX brickwork, depth 12,
``measure_all``, as OpenQASM 2 text, on a cluster file with one ``local_cpu`` node of 24 qubits
(the plan is WHOLE, one shard).

* flow: ``run_circuit(RunCircuitParameters(circuit=qasm, shots=2048, seed=s, cluster=<yaml>,
  storage=<file:// URL>))``: plan task, execute task, reconstruct task, persist task, artifacts
  (shard table, progress, markdown summary with the histogram, histogram image).
* anchor: ``DistributedQVM(registry, shots=2048, store=ResultStore(<file:// URL>)).run(
  VirtualCircuitSpec(qasm=qasm, seed=s))``: the same stages in-process, and it persists too.

Every call uses a new seed, so neither side can reuse a stored shard result (and Prefect's
task cache, keyed on the run key, never hits). One warm-up call of each, then interleaved
repetitions; the best of each is kept.

Target: best flow time - best qvm time <= 1.5 s (``prefect_overhead added=<s>``); the ratio
flow / qvm is printed too.

Run: ``python -m bench.prefect_overhead [--repeat N] [--shots S] [--strict]``
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    Verdicts,
    added_line,
    base_parser,
    brickwork_circuit,
    environment,
    fmt_seconds,
    interleave,
    prefect_server,
    table,
)

N_QUBITS = 22
DEPTH = 12
NODE_QUBITS = 24
TARGET_ADDED = 1.5


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0], repeat=5)
    parser.add_argument("--shots", type=int, default=2048, help="shots per run (default 2048)")
    args = parser.parse_args(argv)
    verdicts = Verdicts(args.strict)

    from qiskit import qasm2

    print(f"# bench.prefect_overhead  ({environment()})")
    print(f"# repeat={args.repeat} warmup={args.warmup} seed={args.seed}; interleaved, best-of-N kept")
    qc = brickwork_circuit(N_QUBITS, DEPTH, seed=args.seed)
    qasm = qasm2.dumps(qc)
    ops = sum(v for k, v in qc.count_ops().items() if k not in ("measure", "barrier"))

    with tempfile.TemporaryDirectory(prefix="qcos-bench-") as tmp, prefect_server():
        import prefect

        from flows import RunCircuitParameters, run_circuit
        from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
        from network.node_providers import ClusterBuilder
        from network.storage import ResultStore

        print(f"# prefect {prefect.__version__}")
        cluster = Path(tmp, "cluster.yaml")
        cluster.write_text(f"nodes:\n  - provider: local_cpu\n    n_nodes: 1\n    max_qubits: {NODE_QUBITS}\n")
        flow_store = Path(tmp, "flow-results").as_uri()
        qvm_store = Path(tmp, "qvm-results").as_uri()
        registry = ClusterBuilder.from_yaml(cluster).build()
        qvm = DistributedQVM(registry, shots=args.shots, store=ResultStore(qvm_store))
        print(
            f"\n== {N_QUBITS} qubits, depth {DEPTH} ({ops} gates, {len(qasm)} chars of QASM), {args.shots} shots, "
            f"one local_cpu node of {NODE_QUBITS} qubits =="
        )
        seeds = itertools.count(args.seed)  # a new seed per call: nothing stored can be reused

        def via_flow() -> Any:
            params = RunCircuitParameters(
                circuit=qasm, shots=args.shots, seed=next(seeds), cluster=str(cluster), storage=flow_store
            )
            return run_circuit(params)

        def via_qvm() -> Any:
            return qvm.run(VirtualCircuitSpec(qasm=qasm, seed=next(seeds)))

        timings = interleave({"flow": via_flow, "qvm": via_qvm}, repeat=args.repeat, warmup=args.warmup)

    flow_t, qvm_t = timings["flow"], timings["qvm"]
    rows = [["contender", "best", "median", "x qvm"]]
    for t in (flow_t, qvm_t):
        rows.append([t.label, fmt_seconds(t.best), fmt_seconds(t.median), f"{t.best / qvm_t.best:.3f}"])
    print(table(rows))
    summary, result = flow_t.best_value, qvm_t.best_value
    if summary.get("shards") != 1 or sum(result.counts.values()) != args.shots:
        raise RuntimeError(f"unexpected results: flow {summary}, qvm {sum(result.counts.values())} shots")
    fm, qm = summary["timings"], result.timings
    print(
        f"flow (best run), as the flow measures itself: plan {fmt_seconds(fm['plan'])}, execute "
        f"{fmt_seconds(fm['execute'])}, reconstruct {fmt_seconds(fm['reconstruct'])}, to reconstruct "
        f"{fmt_seconds(fm['total'])}; the rest of the call is persist, artifacts and the flow run itself"
    )
    print(
        f"qvm (best run): plan {fmt_seconds(qm['plan'])}, execute {fmt_seconds(qm['execute'])}, "
        f"reconstruct {fmt_seconds(qm['reconstruct'])}, persist {fmt_seconds(qm.get('persist', float('nan')))}"
    )
    added = flow_t.best - qvm_t.best
    print(f"added by the flow (best flow - best qvm): {fmt_seconds(added)}")

    print("\n== results (added = best flow - best qvm, in seconds; PASS when added <= target) ==")
    print(f"# ratio flow / qvm = {flow_t.best / qvm_t.best:.4g} (printed for reference; no target)")
    verdicts.add(added_line("prefect_overhead", added, TARGET_ADDED))
    verdicts.exit()


if __name__ == "__main__":
    main()
