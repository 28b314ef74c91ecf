"""Cutting benchmark: a 24-qubit circuit cut in two, through the QVM vs the library's tutorial workflow.

The circuit is two 12-qubit halves (random ``ry`` layers and a CX brickwork inside each half)
joined by two CX gates across the middle; the observable is Z on qubits 10-13, two on each side
of the join. Three contenders, each measured in the same process:

* **qvm**: ``DistributedQVM(registry, shots=S).run(VirtualCircuitSpec(circuit_object=qc,
  observables=[...], seed=...))`` on four ``local_cpu`` nodes of 12 qubits, timed end to end
  (circuit analysis, cut search, subexperiments, execution, reconstruction, bootstrap errors).
  Its budget is S shots per subexperiment; it runs identical subexperiments of a label once, so
  it shares the budget among fewer circuits, in proportion to their summed |QPD coefficient|
  (for CX cuts, whose coefficients all have the same magnitude, in proportion to how many
  subexperiments each one stands for).
* **tutorial**: qiskit-addon-cutting's "gate cutting to reduce circuit width" tutorial run
  serially: ``partition_problem`` with one label per half (the same two gate cuts),
  ``generate_cutting_experiments(num_samples=np.inf)``, one ``qiskit_aer.primitives.SamplerV2``
  job per subcircuit label, one after another (each label its own seed), then
  ``reconstruct_expectation_values``. No transpilation: Aer runs the subexperiments as they are,
  simulating those with a mid-circuit measurement shot by shot. (The QVM does not transpile
  either, but its Aer provider defers mid-circuit measurements onto ancilla qubits, so Aer
  simulates each circuit once and samples: ``providers.aer.defer_measurements``.) S shots per
  subexperiment: the same total as the QVM's.
* **statevector**: ``AerSimulator(method="statevector")`` with ``save_expectation_value`` on the
  whole 24 qubits: the exact value, and a time printed without a target.

qvm and tutorial run interleaved, ``--repeat`` times each with seeds ``seed``, ``seed+1``...
(warm-ups take the first seeds); the best time of each is kept, and the spread of their values
over the timed repetitions is the empirical standard error of one run (the fair comparison:
same circuit, same total shots). The QVM's own (bootstrap) standard error is printed beside
it, and so is each side's exact standard error, computed from every subexperiment's exact value
(``--skip-prediction`` skips it).

Targets: qvm / tutorial time <= 0.5 (``cutting_vs_tutorial``) and qvm std / tutorial std <= 1.0
(``cutting_stderr``).

Run: ``python -m bench.cutting [--repeat N] [--shots S] [--sv-repeat N] [--skip-prediction] [--strict]``
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from bench.common import (
    Verdicts,
    base_parser,
    environment,
    fmt_seconds,
    interleave,
    measure,
    result_line,
    table,
)

if TYPE_CHECKING:
    from network.cutting import SubexperimentShots

HALF = 12
LAYERS = 2
OBSERVED = (10, 11, 12, 13)  # Z on these qubits: two on each side of the join
TIME_TARGET = 0.5
STDERR_TARGET = 1.0


def joined_halves(seed: int) -> QuantumCircuit:
    """Two ``HALF``-qubit halves, each ``LAYERS`` x (random ``ry`` on every qubit, CX brickwork),
    joined after each layer by one CX across the middle (``LAYERS`` joining gates), then a last
    random ``ry`` on every qubit."""
    rng = np.random.default_rng(seed)
    n = 2 * HALF
    qc = QuantumCircuit(n, name=f"halves2x{HALF}")
    for layer in range(LAYERS):
        for q in range(n):
            qc.ry(float(rng.uniform(0.2, 2.9)), q)
        for offset in (0, HALF):
            for start in (layer % 2, 1 - layer % 2):  # both rows of the brickwork
                for j in range(start, HALF - 1, 2):
                    qc.cx(offset + j, offset + j + 1)
        # the joining gates, alternating direction: (11, 12), then (12, 11)
        if layer % 2 == 0:
            qc.cx(HALF - 1, HALF)
        else:
            qc.cx(HALF, HALF - 1)
    for q in range(n):
        qc.ry(float(rng.uniform(0.2, 2.9)), q)
    return qc


def z_string(n_qubits: int, qubits: tuple[int, ...]) -> str:
    """Pauli label with Z on ``qubits`` (qubit 0 is the rightmost letter)."""
    letters = ["I"] * n_qubits
    for q in qubits:
        letters[n_qubits - 1 - q] = "Z"
    return "".join(letters)


def tutorial_workflow(qc: QuantumCircuit, observable: SparsePauliOp, shots: int, seed: int) -> float:
    """The library tutorial's workflow, each subcircuit's jobs run one label after another."""
    from qiskit_addon_cutting import generate_cutting_experiments, partition_problem, reconstruct_expectation_values
    from qiskit_aer.primitives import SamplerV2

    labels = "A" * HALF + "B" * (qc.num_qubits - HALF)
    problem = partition_problem(circuit=qc, partition_labels=labels, observables=observable.paulis)
    subexperiments, coefficients = generate_cutting_experiments(
        circuits=problem.subcircuits, observables=problem.subobservables, num_samples=np.inf
    )
    results = {}
    for k, (label, circuits) in enumerate(subexperiments.items()):  # serially, one label after another
        results[label] = SamplerV2(seed=label_seed(seed, k)).run(circuits, shots=shots).result()
    terms = reconstruct_expectation_values(results, coefficients, problem.subobservables)
    return float(np.real(np.dot(terms, observable.coeffs)))


def label_seed(seed: int, k: int) -> int:
    """An independent Aer seed for subcircuit ``k``.

    One seed for every label would be wrong: Aer seeds experiment ``i`` of a job from the job's
    seed alone, so experiment ``i`` of label A and of label B, whose estimates the
    reconstruction multiplies, would draw the same random numbers (a measured bias of about
    -0.018 on this circuit, 5 standard errors over 40 runs).
    """
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0] & 0x7FFF_FFFF)


def tutorial_problem(
    qc: QuantumCircuit, observable: SparsePauliOp
) -> tuple[dict[Any, list[QuantumCircuit]], Any, float]:
    """The tutorial's subexperiments, coefficients and sampling overhead, without running them."""
    from qiskit_addon_cutting import generate_cutting_experiments, partition_problem

    labels = "A" * HALF + "B" * (qc.num_qubits - HALF)
    problem = partition_problem(circuit=qc, partition_labels=labels, observables=observable.paulis)
    subexperiments, coefficients = generate_cutting_experiments(
        circuits=problem.subcircuits, observables=problem.subobservables, num_samples=np.inf
    )
    return subexperiments, coefficients, float(np.prod([b.overhead for b in problem.bases]))


def parity_mean(circuit: QuantumCircuit) -> float:
    """Exact mean of (-1)^(sum of all measured bits) of a subexperiment, mid-circuit measurements
    included: statevector simulation that follows both outcomes of every measurement.

    For a Z-string observable this is the subexperiment's exact expectation value as the
    library's reconstruction uses it (observable parity times QPD-measurement parity).
    """
    from qiskit.quantum_info import Statevector

    n = circuit.num_qubits
    branches = [(Statevector.from_int(0, 2**n), 1)]  # (unnormalized state, sign of the bits so far)
    for instruction in circuit.data:
        op = instruction.operation
        qubits = [circuit.find_bit(q).index for q in instruction.qubits]
        if op.name == "barrier":
            continue
        if op.name == "measure":
            one = ((np.arange(2**n) >> qubits[0]) & 1).astype(bool)
            split = []
            for state, sign in branches:
                for bit, keep in ((0, ~one), (1, one)):
                    data = np.where(keep, state.data, 0)
                    if np.vdot(data, data).real > 1e-15:
                        split.append((Statevector(data), -sign if bit else sign))
            branches = split
        else:
            branches = [(state.evolve(op, qubits), sign) for state, sign in branches]
    return float(sum(sign * np.vdot(state.data, state.data).real for state, sign in branches))


def subexperiment_means(subexperiments: dict[Any, list[QuantumCircuit]]) -> dict[Any, np.ndarray]:
    """:func:`parity_mean` of every subexperiment, by label (identical circuits computed once)."""
    from network.circuits import analyze_circuit

    cache: dict[str, float] = {}
    out = {}
    for label, circs in subexperiments.items():
        values = []
        for circ in circs:
            key = analyze_circuit(circ).circuit_hash
            if key not in cache:
                cache[key] = parity_mean(circ)
            values.append(cache[key])
        out[label] = np.array(values)
    return out


def exact_std(coefficients: Any, means: list[np.ndarray], ids: list[np.ndarray], shots: list[np.ndarray]) -> float:
    """Exact standard deviation of ``sum_t c_t prod_l a_lt``, one commuting observable group per label.

    ``a_lt`` is label ``l``'s estimate for term ``t``: the mean of ``shots[l][t]`` outcomes of +-1
    with mean ``means[l][t]`` (variance ``(1 - mean^2) / shots``), taken from circuit
    ``ids[l][t]``. Terms whose ids are equal share one estimate; the labels are independent. The
    variance of the sum follows from ``E[a_ls a_lt]`` for every pair of terms.
    """
    c = np.array([float(w) for w, _ in coefficients])
    second = np.ones((len(c), len(c)))
    first = np.ones(len(c))
    for m, u, n in zip(means, ids, shots, strict=True):
        same = u[:, None] == u[None, :]
        second *= np.outer(m, m) + same * ((1.0 - m**2) / n)[:, None]
        first *= m
    return math.sqrt(float(np.sum(np.outer(c, c) * (second - np.outer(first, first)))))


def predicted_stds(
    subexperiments: dict[Any, list[QuantumCircuit]], coefficients: Any, qvm: SubexperimentShots, tutorial_shots: int
) -> tuple[float, float, float]:
    """(exact value, qvm std, tutorial std) of one run, from the exact subexperiment values.

    The tutorial's estimates are all independent, ``tutorial_shots`` each; the QVM's come from
    its distinct circuits (``qvm``: identical subexperiments share one estimate) with their
    allocated shots.
    """
    means = subexperiment_means(subexperiments)
    c = np.array([float(w) for w, _ in coefficients])
    exact = float(np.sum(c * np.prod(list(means.values()), axis=0)))
    qvm_ids = [np.array([qvm.index[(label, i)] for i in range(len(circs))]) for label, circs in subexperiments.items()]
    qvm_shots = [np.array(qvm.shots)[ids] for ids in qvm_ids]
    tut_ids = [np.arange(len(circs)) for circs in subexperiments.values()]
    tut_shots = [np.full(len(circs), tutorial_shots) for circs in subexperiments.values()]
    mean_list = list(means.values())
    return (
        exact,
        exact_std(coefficients, mean_list, qvm_ids, qvm_shots),
        exact_std(coefficients, mean_list, tut_ids, tut_shots),
    )


def statevector_value(qc: QuantumCircuit, observable: SparsePauliOp) -> float:
    """Exact expectation value from Aer statevector on the whole circuit."""
    from qiskit_aer import AerSimulator

    circuit = qc.copy()
    circuit.save_expectation_value(observable, list(range(qc.num_qubits)))
    result = AerSimulator(method="statevector").run(circuit).result()
    return float(np.real(result.data()["expectation_value"]))


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0], repeat=24)
    parser.add_argument(
        "--shots",
        type=int,
        default=1000,
        help="shots per subexperiment, on both sides (default 1000)",
    )
    parser.add_argument("--sv-repeat", type=int, default=3, help="timed statevector runs (default 3)")
    parser.add_argument(
        "--skip-prediction", action="store_true", help="skip the exact standard errors (~1 s of 12-qubit statevectors)"
    )
    args = parser.parse_args(argv)
    if args.repeat < 8:
        parser.error("--repeat must be at least 8: the standard errors are the spread over the repetitions")
    verdicts = Verdicts(args.strict)

    from network.cutting import ShotAllocation, share_shots
    from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
    from network.node_providers import ClusterBuilder

    print(f"# bench.cutting  ({environment()})")
    print(
        f"# repeat={args.repeat} warmup={args.warmup} seed={args.seed}; interleaved, best-of-N kept; "
        f"call r of each side (warm-ups first) uses seed {args.seed}+r"
    )
    qc = joined_halves(args.seed)
    label = z_string(qc.num_qubits, OBSERVED)
    observable = SparsePauliOp([label])
    ops = sum(qc.count_ops().values())
    print(
        f"\n== {qc.num_qubits} qubits = 2 halves of {HALF} joined by {LAYERS} CX ({ops} gates); "
        f"observable Z on qubits {', '.join(map(str, OBSERVED))} =="
    )

    # --- exact value and the statevector time (no target) ----------------------------------
    sv = measure("statevector", lambda: statevector_value(qc, observable), repeat=args.sv_repeat, warmup=0)
    exact = float(sv.best_value)
    print(f"exact (Aer statevector, 24 qubits): {exact:+.6f}   time {sv.describe()}")

    # --- QVM shape: cuts, subexperiments, executed circuits -> equal shot budgets -----------
    registry = ClusterBuilder().add("local_cpu", n_nodes=4, max_qubits=HALF).build()
    probe = DistributedQVM(registry, shots=args.shots).run(
        VirtualCircuitSpec(circuit_object=qc, observables=[label], seed=args.seed)
    )
    cut = probe.cut or {}
    n_sub = sum(cut["subexperiments"].values())
    n_exec = int(cut["executed_circuits"])
    tut_experiments, tut_coefficients, tut_overhead = tutorial_problem(qc, observable)
    tut_sub = sum(len(c) for c in tut_experiments.values())
    if tut_sub != n_sub or not math.isclose(tut_overhead, cut["sampling_overhead"]):
        raise RuntimeError(
            f"the tutorial's partition ({tut_sub} subexperiments, overhead {tut_overhead:g}) differs from the "
            f"QVM's ({n_sub}, {cut['sampling_overhead']:g}): the comparison would not be like for like"
        )
    shots = tutorial_shots = args.shots
    total = shots * n_sub
    if cut["shot_allocation"]["total_shots"] != total:
        raise RuntimeError(f"the QVM's budget is {cut['shot_allocation']['total_shots']} shots, not {total}")
    qvm_split = share_shots(tut_experiments, tut_coefficients, total, ShotAllocation(cut["shot_allocation"]["method"]))
    if len(qvm_split.circuits) != n_exec:
        raise RuntimeError(
            f"the tutorial's subexperiments hold {len(qvm_split.circuits)} distinct circuits, the QVM ran {n_exec}"
        )
    print(
        f"cuts: {len(cut['cuts'])} ({', '.join(f'{k} at gate {i}' for k, i in cut['cuts'])}), "
        f"sampling overhead {cut['sampling_overhead']:g}; subexperiments {n_sub} "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(cut['subexperiments'].items()))})"
    )
    print(
        f"qvm: 4 x local_cpu (12 qubits); runs {n_exec} distinct subexperiments, {min(qvm_split.shots)} to "
        f"{max(qvm_split.shots)} shots each ({cut['shot_allocation']['method']} to |coefficient|) = {total} shots"
    )
    print(f"tutorial: runs all {n_sub} subexperiments x {tutorial_shots} shots = {tutorial_shots * n_sub} shots")
    predicted: tuple[float, float, float] | None = None
    if not args.skip_prediction:
        predicted = predicted_stds(tut_experiments, tut_coefficients, qvm_split, tutorial_shots)
        if not math.isclose(predicted[0], exact, abs_tol=1e-9):
            print(f"# prediction skipped: the subexperiments' exact values give {predicted[0]:+.9f}, not {exact:+.9f}")
            predicted = None

    # --- qvm vs tutorial, interleaved; every call takes the next seed ------------------------
    qvm = DistributedQVM(registry, shots=shots)
    runs: dict[str, list[Any]] = {"qvm": [], "tutorial": []}

    def seeded(name: str, fn: Callable[[int], Any]) -> Callable[[], Any]:
        def call() -> Any:
            seed = args.seed + len(runs[name])  # warm-ups first, then the timed repetitions
            value = fn(seed)
            runs[name].append(value)
            return value

        return call

    def via_qvm(seed: int) -> Any:
        return qvm.run(VirtualCircuitSpec(circuit_object=qc, observables=[label], seed=seed))

    def via_tutorial(seed: int) -> float:
        return tutorial_workflow(qc, observable, tutorial_shots, seed)

    timings = interleave(
        {"qvm": seeded("qvm", via_qvm), "tutorial": seeded("tutorial", via_tutorial)},
        repeat=args.repeat,
        warmup=args.warmup,
    )
    qvm_results = runs["qvm"][args.warmup :]
    qvm_values = [r.expectation_values[0] for r in qvm_results]
    qvm_reported = [r.standard_errors[0] for r in qvm_results]
    tut_values = runs["tutorial"][args.warmup :]
    qvm_t, tut_t = timings["qvm"], timings["tutorial"]

    rows = [["contender", "best", "median", "x tutorial", "x statevector"]]
    for t in (qvm_t, tut_t, sv):
        rows.append(
            [
                t.label,
                fmt_seconds(t.best),
                fmt_seconds(t.median),
                f"{t.best / tut_t.best:.3f}",
                f"{t.best / sv.best:.3f}",
            ]
        )
    print(table(rows))
    tm = qvm_t.best_value.timings
    print(
        f"qvm best run: plan {fmt_seconds(tm['plan'])}, execute {fmt_seconds(tm['execute'])}, "
        f"reconstruct {fmt_seconds(tm['reconstruct'])}, total {fmt_seconds(tm['total'])}"
    )

    r = len(qvm_values)
    qvm_std = statistics.stdev(qvm_values)
    tut_std = statistics.stdev(tut_values)
    reported = statistics.fmean(qvm_reported)
    print(f"\n== estimates over {r} repetitions (exact {exact:+.6f}) ==")
    rows = [["contender", "mean", "std (one run)", "predicted std", "mean - exact", "(mean - exact) / (std/sqrt(R))"]]
    for k, (name, values, std) in enumerate((("qvm", qvm_values, qvm_std), ("tutorial", tut_values, tut_std))):
        mean = statistics.fmean(values)
        rows.append(
            [
                name,
                f"{mean:+.5f}",
                f"{std:.5f}",
                "n/a" if predicted is None else f"{predicted[1 + k]:.5f}",
                f"{mean - exact:+.5f}",
                f"{(mean - exact) / (std / math.sqrt(r)):+.2f}",
            ]
        )
    print(table(rows))
    if predicted is not None:
        print(
            f"predicted std: exact, from every subexperiment's exact value (statevector, both outcomes of each "
            f"mid-circuit measurement); qvm / tutorial predicted = {predicted[1] / predicted[2]:.3f}"
        )
    print(
        f"qvm's own standard error (bootstrap, mean over runs): {reported:.5f} "
        f"(x {reported / qvm_std:.3f} the empirical std); the std of a std from {r} runs is uncertain "
        f"by about {100 / math.sqrt(2 * (r - 1)):.0f}%"
    )
    speed = "faster" if qvm_t.best < sv.best else "slower"
    print(
        f"qvm / statevector time: {qvm_t.best / sv.best:.3f} (no target; the QVM is {speed} here: the statevector "
        f"updates 2^{qc.num_qubits} amplitudes per gate, the cut pieces 2^{HALF}, but the QVM pays "
        f"{n_exec} circuits and {total} shots)"
    )

    print("\n== results (time ratio = qvm / tutorial, stderr ratio = qvm std / tutorial std; PASS when <= target) ==")
    verdicts.add(result_line("cutting_vs_tutorial", qvm_t.best / tut_t.best, TIME_TARGET))
    verdicts.add(result_line("cutting_stderr", qvm_std / tut_std, STDERR_TARGET))
    verdicts.exit()


if __name__ == "__main__":
    main()
