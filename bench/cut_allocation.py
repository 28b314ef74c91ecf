"""Shot allocation benchmark: cut subexperiments' shots in proportion to |QPD coefficient| vs evenly.

The QVM runs each distinct subexperiment circuit once and shares a budget of S shots per
subexperiment among them (``network.cutting.share_shots``). ``proportional`` (the default) gives
each circuit shots in proportion to the summed magnitude of the QPD coefficients of the terms
that use it (qiskit-addon-cutting issue 532); ``uniform`` gives every circuit the same. Both
spend exactly the same total.

Two circuits, each cut in two by the planner (``DistributedQVM.plan`` with ``observables=``):

* **cx**: ``bench.cutting``'s 24-qubit ``joined_halves`` (two 12-qubit halves joined by two CX;
  Z on qubits 10-13) on four 12-qubit ``local_cpu`` nodes. A CX cut's six coefficients are all
  +-1/2, so proportional shares follow only how many subexperiments each distinct circuit
  stands for.
* **rzz**: two 6-qubit halves (random ``ry`` layers, CX brickwork) joined by two ``rzz(0.2)``
  gates (Z on qubits 4-7), on two 6-qubit nodes. An RZZ(t) cut's coefficients are
  cos^2(t/2), sin^2(t/2) and four of |sin t|/2: at t = 0.2 about 0.99, 0.01 and 0.1, so
  proportional shares are very unequal.

For each circuit and allocation the cut is planned once
(``VirtualCircuitSpec(shot_allocation=...)``); then its shards (one per distinct subexperiment) run
through the QVM's executor and reconstructor ``--repeat`` times per allocation (interleaved,
reseeded ``seed``, ``seed+1``...), and the spread of the estimates over the repetitions is each
allocation's empirical standard deviation. Printed beside it: the exact
standard deviation, from every subexperiment's exact value (``bench.cutting.exact_std``;
``--skip-prediction`` skips it), and the mean bootstrap standard error the QVM reports.

Result: the variance gain, uniform variance / proportional variance (empirical), one line per
circuit; the issue sets no number, so it passes when the gain is at least 1 (proportional is no
worse).

Run: ``python -m bench.cut_allocation [--repeat N] [--shots S] [--skip-prediction] [--strict]``
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp, Statevector

from bench.common import Verdicts, base_parser, environment, result_line, table
from bench.cutting import HALF, OBSERVED, exact_std, joined_halves, subexperiment_means, z_string

RZZ_HALF = 6
RZZ_ANGLE = 0.2
RZZ_OBSERVED = (4, 5, 6, 7)
GAIN_TARGET = 1.0


def rzz_halves(seed: int, theta: float = RZZ_ANGLE) -> QuantumCircuit:
    """Two ``RZZ_HALF``-qubit halves, each 2 x (random ``ry`` on every qubit, CX brickwork), joined
    after each layer by ``rzz(theta)`` across the middle, then a last random ``ry`` layer."""
    rng = np.random.default_rng(seed)
    n = 2 * RZZ_HALF
    qc = QuantumCircuit(n, name=f"rzz_halves2x{RZZ_HALF}")
    for layer in range(2):
        for q in range(n):
            qc.ry(float(rng.uniform(0.2, 2.9)), q)
        for offset in (0, RZZ_HALF):
            for start in (layer % 2, 1 - layer % 2):
                for j in range(start, RZZ_HALF - 1, 2):
                    qc.cx(offset + j, offset + j + 1)
        qc.rzz(theta, RZZ_HALF - 1, RZZ_HALF)
    for q in range(n):
        qc.ry(float(rng.uniform(0.2, 2.9)), q)
    return qc


def reseeded(plan: Any, seed: int) -> Any:
    """The same plan (same cuts, same shards) with every seed derived from ``seed``, as a plan of that seed."""
    from network.circuits import derive_seed

    shards = tuple(replace(s, seed=derive_seed(seed, "shard", s.shard_id)) for s in plan.shards)
    return replace(plan, seed=seed, shards=shards)


def compare(name: str, qc: QuantumCircuit, observed: tuple[int, ...], width: int, n_nodes: int, args: Any) -> float:
    """Print one circuit's comparison and return the empirical variance gain."""
    from network.cutting import ShotAllocation, block_problem
    from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
    from network.node_providers import ClusterBuilder

    registry = ClusterBuilder().add("local_cpu", n_nodes=n_nodes, max_qubits=width).build()
    qvm = DistributedQVM(registry, shots=args.shots)
    observable = SparsePauliOp([z_string(qc.num_qubits, observed)])
    plans = {
        a: qvm.plan(
            VirtualCircuitSpec(
                circuit_object=qc, observables=[observable], max_sampling_overhead=math.inf, seed=args.seed,
                shot_allocation=a.value,
            )
        )
        for a in ShotAllocation
    }  # fmt: skip
    plan = plans[ShotAllocation.PROPORTIONAL]
    block = plan.cuts[0]
    problems = {a: block_problem(qc, p.cuts[0], circuit_hash=p.circuit_hash) for a, p in plans.items()}
    subexperiments, coefficients = (
        problems[ShotAllocation.PROPORTIONAL].subexperiments,
        problems[ShotAllocation.PROPORTIONAL].coefficients,
    )
    exact = float(Statevector(qc).expectation_value(observable).real)
    magnitudes = sorted({round(abs(float(c)), 5) for c, _ in coefficients})
    cuts = ", ".join(f"{c.kind} at gate {c.index}" for c in block.cuts)
    print(
        f"\n== {name}: {qc.num_qubits} qubits, {len(block.cuts)} cut(s) ({cuts}), sampling overhead "
        f"{block.sampling_overhead:.4g}; {sum(block.subexperiments.values())} subexperiments; Z on qubits "
        f"{', '.join(map(str, observed))}; exact {exact:+.6f} =="
    )
    print(f"|coefficient| values: {', '.join(f'{m:g}' for m in magnitudes)}")

    splits = {a: problems[a].split for a in ShotAllocation}
    predicted: dict[ShotAllocation, float] = {}
    if not args.skip_prediction:
        means = subexperiment_means(subexperiments)
        c = np.array([float(w) for w, _ in coefficients])
        if not math.isclose(float(np.sum(c * np.prod(list(means.values()), axis=0))), exact, abs_tol=1e-9):
            raise RuntimeError(f"{name}: the subexperiments' exact values do not reproduce the exact value")
        for allocation, split in splits.items():
            ids = [np.array([split.index[(lab, i)] for i in range(len(cs))]) for lab, cs in subexperiments.items()]
            shots = [np.array(split.shots)[u] for u in ids]
            predicted[allocation] = exact_std(coefficients, list(means.values()), ids, shots)

    # every repetition: the planned shards (one per distinct subexperiment) through the executor, reseeded
    values: dict[ShotAllocation, list[float]] = {a: [] for a in ShotAllocation}
    reported: dict[ShotAllocation, list[float]] = {a: [] for a in ShotAllocation}
    for r in range(args.repeat):
        order = list(ShotAllocation) if r % 2 == 0 else list(ShotAllocation)[::-1]
        for allocation in order:
            run_plan = reseeded(plans[allocation], args.seed + r)
            results = qvm.executor.run_plan(run_plan, qc)
            rebuilt = qvm.reconstructor.reconstruct(run_plan, results, qc)
            assert rebuilt.expectation_values is not None and rebuilt.standard_errors is not None
            values[allocation].append(rebuilt.expectation_values[0])
            reported[allocation].append(rebuilt.standard_errors[0])

    rows = [["allocation", "shots per circuit", "mean", "std (one run)", "predicted std", "mean reported SE", "z"]]
    stds = {}
    for allocation in ShotAllocation:
        split, vals = splits[allocation], values[allocation]
        stds[allocation] = statistics.stdev(vals)
        mean = statistics.fmean(vals)
        rows.append(
            [
                str(allocation),
                f"{min(split.shots)} to {max(split.shots)} ({len(split.circuits)} circuits)",
                f"{mean:+.5f}",
                f"{stds[allocation]:.5f}",
                f"{predicted[allocation]:.5f}" if predicted else "n/a",
                f"{statistics.fmean(reported[allocation]):.5f}",
                f"{(mean - exact) / (stds[allocation] / math.sqrt(args.repeat)):+.2f}",
            ]
        )
    print(table(rows))
    gain = (stds[ShotAllocation.UNIFORM] / stds[ShotAllocation.PROPORTIONAL]) ** 2
    exact_gain = (
        f"{(predicted[ShotAllocation.UNIFORM] / predicted[ShotAllocation.PROPORTIONAL]) ** 2:.3f}"
        if predicted
        else "n/a"
    )
    print(
        f"variance gain (uniform / proportional): {gain:.3f} over {args.repeat} runs each (a ratio of two "
        f"variances, uncertain by about {200 / math.sqrt(args.repeat - 1):.0f}%); exact {exact_gain}. "
        f"z = (mean - exact) / (std / sqrt(runs))."
    )
    return gain


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0], repeat=200)
    parser.add_argument("--shots", type=int, default=1000, help="shots per subexperiment (default 1000)")
    parser.add_argument(
        "--skip-prediction", action="store_true", help="skip the exact standard deviations (statevectors)"
    )
    args = parser.parse_args(argv)
    if args.repeat < 8:
        parser.error("--repeat must be at least 8: the standard deviations are the spread over the repetitions")
    verdicts = Verdicts(args.strict)
    print(f"# bench.cut_allocation  ({environment()})")
    print(f"# repeat={args.repeat} seed={args.seed} shots={args.shots} per subexperiment; allocations interleaved")
    gains = {
        "cx": compare("cx", joined_halves(args.seed), OBSERVED, HALF, 4, args),
        "rzz": compare(f"rzz (t = {RZZ_ANGLE})", rzz_halves(args.seed), RZZ_OBSERVED, RZZ_HALF, 2, args),
    }
    print("\n== results (variance gain = uniform variance / proportional variance; PASS when >= target) ==")
    for name, gain in gains.items():
        verdicts.add(result_line(f"cut_allocation_{name}", gain, GAIN_TARGET, higher=True))
    verdicts.exit()


if __name__ == "__main__":
    main()
