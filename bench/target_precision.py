"""Shots to a target precision: ``target_precision`` rounds vs the whole budget shared uniformly or proportionally.

``VirtualCircuitSpec(target_precision=T)`` runs a cut's expectation values in rounds: a pilot of
64 shots per distinct subexperiment, then rounds of new shards whose shots follow each circuit's
estimated share of the variance (Neyman allocation, ``network.cutting.precision``), until every
standard error is at most ``T`` or the budget is spent. Without it, the whole budget runs at once,
shared ``"uniform"``-ly or ``"proportional"``-ly to |QPD coefficient|.

The question: how many shots does each need to reach a standard error of ``T``? Two circuits,
both cut in two by the planner (those of ``bench.cut_allocation``):

* **cx**: ``bench.cutting``'s 24-qubit ``joined_halves`` (two 12-qubit halves joined by two CX;
  Z on qubits 10-13) on four 12-qubit ``local_cpu`` nodes; target 0.02.
* **rzz**: two 6-qubit halves joined by two ``rzz(0.2)`` (Z on qubits 4-7), on two 6-qubit
  nodes; unequal QPD coefficients; target 0.005.

Measured in the same run, ``--repeat`` seeds each:

* **uniform / proportional** (the anchors): runs at ``--shots`` per subexperiment; the shots
  needed for ``T`` are their total times (mean reported standard error / T)^2 (the variance of a
  fixed allocation falls as 1 / shots). Then each runs again at that budget (rounded up to whole
  shots per subexperiment) to check the error it reports there.
* **target_precision**: runs with ``target_precision=T`` and a budget of ``10x`` the
  proportional need; the shots it used, its rounds, whether it reached the target.

Beside them (``--skip-prediction`` skips it): each allocation's exact standard error, from every
subexperiment's exact value (``bench.cutting.exact_std``); for target_precision, that of each
run's final shots per circuit. A run that stops as soon as its *reported* error is under ``T``
can stop on a low estimate; the exact error of its final allocation says whether it really got
there, and ``shots x (exact error / T)^2`` is what that allocation needs for ``T`` exactly.

Result: ``target_precision shots / proportional shots`` and ``/ uniform shots`` (mean over the
seeds; lower is better); the issue sets no number, so each passes when it is at most 1.

Run: ``python -m bench.target_precision [--repeat N] [--shots S] [--skip-prediction] [--strict]``
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp, Statevector

from bench.common import Verdicts, base_parser, environment, result_line, table
from bench.cut_allocation import RZZ_HALF, RZZ_OBSERVED, rzz_halves
from bench.cutting import HALF, OBSERVED, exact_std, joined_halves, subexperiment_means, z_string

RATIO_TARGET = 1.0
BUDGET_FACTOR = 10


@dataclass
class Runs:
    """One contender's runs: shots used, values, reported errors, rounds, exact errors."""

    shots: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    reached: list[bool] = field(default_factory=list)
    exact: list[float] = field(default_factory=list)


def compare(
    name: str, qc: QuantumCircuit, observed: tuple[int, ...], width: int, n_nodes: int, target: float, args: Any
) -> dict[str, float]:
    """Print one circuit's comparison; return target_precision shots over each anchor's."""
    from network.cutting import block_problem
    from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
    from network.node_providers import ClusterBuilder

    registry = ClusterBuilder().add("local_cpu", n_nodes=n_nodes, max_qubits=width).build()
    observable = SparsePauliOp([z_string(qc.num_qubits, observed)])
    exact_value = float(Statevector(qc).expectation_value(observable).real)

    def spec(shots: int, seed: int, **kw: Any) -> Any:
        return VirtualCircuitSpec(
            circuit_object=qc, observables=[observable], shots=shots, seed=seed, max_sampling_overhead=math.inf, **kw
        )

    qvm = DistributedQVM(registry)
    plan = qvm.plan(spec(args.shots, args.seed))
    block = plan.cuts[0]
    problem = block_problem(qc, block, circuit_hash=plan.circuit_hash)
    n_sub = sum(block.subexperiments.values())
    cuts = ", ".join(f"{c.kind} at gate {c.index}" for c in block.cuts)
    print(
        f"\n== {name}: {qc.num_qubits} qubits, {len(block.cuts)} cut(s) ({cuts}), sampling overhead "
        f"{block.sampling_overhead:.4g}{', joint ' + block.joint if block.joint else ''}; {n_sub} subexperiments, "
        f"{len(problem.circuits)} distinct circuits; Z on qubits {', '.join(map(str, observed))}; exact "
        f"{exact_value:+.6f}; target standard error {target:g} =="
    )

    exact_of = None
    if not args.skip_prediction and problem.joint is None:
        means = subexperiment_means(problem.subexperiments)
        mean_list = list(means.values())
        ids = [np.array([problem.split.index[(lab, i)] for i in range(len(cs))]) for lab, cs in means.items()]

        def exact_of(circuit_shots: list[int]) -> float:
            per = np.asarray(circuit_shots)
            return exact_std(problem.coefficients, mean_list, ids, [per[u] for u in ids])

    def run(contender: Runs, s: Any) -> None:
        result = DistributedQVM(registry).run(s)
        assert result.expectation_values is not None and result.standard_errors is not None
        cut = result.cut or {}
        circuit_shots = list(cut["shot_allocation"]["circuit_shots"])
        contender.shots.append(sum(circuit_shots))
        contender.values.append(result.expectation_values[0])
        contender.errors.append(result.standard_errors[0])
        report = result.precision
        contender.rounds.append(len(report.rounds) if report is not None else 1)
        contender.reached.append(report.reached if report is not None else result.standard_errors[0] <= target)
        if exact_of is not None:
            contender.exact.append(exact_of(circuit_shots))

    seeds = [args.seed + r for r in range(args.repeat)]
    pilots = {a: Runs() for a in ("uniform", "proportional")}
    for r, seed in enumerate(seeds):  # interleaved
        for a in ("uniform", "proportional") if r % 2 == 0 else ("proportional", "uniform"):
            run(pilots[a], spec(args.shots, seed, shot_allocation=a))
    need = {
        a: statistics.fmean(runs.shots) * statistics.fmean(e**2 for e in runs.errors) / target**2
        for a, runs in pilots.items()
    }
    at_need = {a: Runs() for a in pilots}
    tp = Runs()
    budget = math.ceil(BUDGET_FACTOR * need["proportional"] / n_sub)
    for r, seed in enumerate(seeds):
        order = ("uniform", "proportional", "tp") if r % 2 == 0 else ("tp", "proportional", "uniform")
        for a in order:
            if a == "tp":
                run(tp, spec(budget, seed, target_precision=target))
            else:
                run(at_need[a], spec(math.ceil(need[a] / n_sub), seed + 10_000, shot_allocation=a))

    rows = [["contender", "shots", "rounds", "reached", "mean value", "std of values", "mean reported SE", "exact SE"]]

    def row(label: str, runs: Runs) -> list[str]:
        return [
            label,
            f"{statistics.fmean(runs.shots):,.0f}",
            f"{statistics.fmean(runs.rounds):.1f}",
            f"{sum(runs.reached)}/{len(runs.reached)}",
            f"{statistics.fmean(runs.values):+.5f}",
            f"{statistics.stdev(runs.values):.5f}",
            f"{statistics.fmean(runs.errors):.5f}",
            f"{statistics.fmean(runs.exact):.5f}" if runs.exact else "n/a",
        ]

    for a in pilots:
        rows.append(row(f"{a} at --shots {args.shots}", pilots[a]))
    for a in at_need:
        rows.append(row(f"{a} at its need", at_need[a]))
    rows.append(row(f"target_precision={target:g}", tp))
    print(table(rows))
    print(
        "needed for the target (mean shots x mean reported SE^2 / target^2): "
        + ", ".join(f"{a} {need[a]:,.0f}" for a in need)
    )
    if exact_of is not None:
        exact_need = {a: statistics.fmean(runs.shots) * (statistics.fmean(runs.exact) / target) ** 2
                      for a, runs in pilots.items()}  # fmt: skip
        tp_exact_need = statistics.fmean(s * (e / target) ** 2 for s, e in zip(tp.shots, tp.exact, strict=True))
        print(
            "needed from the exact errors: "
            + ", ".join(f"{a} {exact_need[a]:,.0f}" for a in exact_need)
            + f", target_precision's final allocations {tp_exact_need:,.0f} "
            f"(ratio to proportional {tp_exact_need / exact_need['proportional']:.3f}, "
            f"to uniform {tp_exact_need / exact_need['uniform']:.3f})"
        )
    used = statistics.fmean(tp.shots)
    print(
        f"target_precision used {used:,.0f} shots on average (budget {budget * n_sub:,}), "
        f"{statistics.fmean(tp.rounds):.1f} rounds, reached the target in {sum(tp.reached)} of {len(tp.reached)} runs"
    )
    return {a: used / need[a] for a in need}


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0], repeat=8)
    parser.add_argument("--shots", type=int, default=1000, help="anchors' shots per subexperiment (default 1000)")
    parser.add_argument("--cx-target", type=float, default=0.02, help="target standard error, cx (default 0.02)")
    parser.add_argument("--rzz-target", type=float, default=0.005, help="target standard error, rzz (default 0.005)")
    parser.add_argument("--skip-prediction", action="store_true", help="skip the exact standard errors (statevectors)")
    args = parser.parse_args(argv)
    if args.repeat < 2:
        parser.error("--repeat must be at least 2")
    verdicts = Verdicts(args.strict)
    print(f"# bench.target_precision  ({environment()})")
    print(
        f"# repeat={args.repeat} seed={args.seed} anchor shots={args.shots} per subexperiment; contenders interleaved"
    )
    ratios = {
        "cx": compare("cx", joined_halves(args.seed), OBSERVED, HALF, 4, args.cx_target, args),
        "rzz": compare("rzz (t = 0.2)", rzz_halves(args.seed), RZZ_OBSERVED, RZZ_HALF, 2, args.rzz_target, args),
    }
    print("\n== results (target_precision shots / anchor shots to reach the same standard error; lower is better) ==")
    for name, by_anchor in ratios.items():
        for anchor, ratio in by_anchor.items():
            verdicts.add(result_line(f"target_precision_{name}_vs_{anchor}", ratio, RATIO_TARGET))
    verdicts.exit()


if __name__ == "__main__":
    main()
