"""Overhead benchmark: one 22-qubit circuit on one node through the QVM vs Aer called directly.

The circuit (random ``ry``/``rz`` layers with a CX brickwork, depth 20, ``measure_all``) fits a
single ``local_cpu`` node, so the QVM plans WHOLE and hands the original circuit to Aer. What is
measured is everything the QVM adds around that call: spec validation, circuit analysis,
planning, count conversion and validation, reconstruction. Anchor: ``AerSimulator().run(qc,
shots=..., seed_simulator=...).result().get_counts()`` in the same process. The two are
interleaved (A B B A A B ...) and the best of each is kept.

Target: qvm / aer <= 1.05.

Run: ``python -m bench.overhead [--repeat N] [--shots S] [--strict]``
"""

from __future__ import annotations

from typing import Any

from bench.common import (
    Verdicts,
    base_parser,
    brickwork_circuit,
    environment,
    fmt_seconds,
    interleave,
    result_line,
    table,
)

N_QUBITS = 22
DEPTH = 20
TARGET = 1.05


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0], repeat=7)
    parser.add_argument("--shots", type=int, default=4096, help="shots per run (default 4096)")
    args = parser.parse_args(argv)
    verdicts = Verdicts(args.strict)

    from qiskit_aer import AerSimulator

    from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
    from network.node_providers import ClusterBuilder

    print(f"# bench.overhead  ({environment()})")
    print(f"# repeat={args.repeat} warmup={args.warmup} seed={args.seed}; interleaved, best-of-N kept")
    qc = brickwork_circuit(N_QUBITS, DEPTH, seed=args.seed)
    ops = sum(v for k, v in qc.count_ops().items() if k not in ("measure", "barrier"))
    print(f"\n== {N_QUBITS} qubits, depth {DEPTH} ({ops} gates), {args.shots} shots, one local_cpu node ==")

    registry = ClusterBuilder().add("local_cpu", n_nodes=1, max_qubits=24).build()
    qvm = DistributedQVM(registry, shots=args.shots)

    def via_qvm() -> Any:
        return qvm.run(VirtualCircuitSpec(circuit_object=qc, seed=args.seed))

    def direct() -> Any:
        return AerSimulator().run(qc, shots=args.shots, seed_simulator=args.seed).result().get_counts()

    timings = interleave({"qvm": via_qvm, "aer": direct}, repeat=args.repeat, warmup=args.warmup)
    qvm_t, aer_t = timings["qvm"], timings["aer"]
    rows = [["contender", "best", "median", "x aer"]]
    for t in (qvm_t, aer_t):
        rows.append([t.label, fmt_seconds(t.best), fmt_seconds(t.median), f"{t.best / aer_t.best:.4f}"])
    print(table(rows))
    result = qvm_t.best_value
    if sum(result.counts.values()) != args.shots:
        raise RuntimeError("QVM counts do not sum to the shots")
    tm = result.timings
    print(
        f"qvm: {result.plan.strategy.value} on {result.plan.shards[0].node_id}; best run: "
        f"plan {fmt_seconds(tm['plan'])}, execute {fmt_seconds(tm['execute'])}, "
        f"reconstruct {fmt_seconds(tm['reconstruct'])}, total {fmt_seconds(tm['total'])}"
    )
    print(f"overhead (best qvm - best aer): {fmt_seconds(qvm_t.best - aer_t.best)}")

    print("\n== results (ratio = qvm time / aer time; PASS when ratio <= target) ==")
    verdicts.add(result_line("overhead_vs_aer", qvm_t.best / aer_t.best, TARGET))
    verdicts.exit()


if __name__ == "__main__":
    main()
