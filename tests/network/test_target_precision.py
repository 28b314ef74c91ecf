"""Shots to a target precision: ``VirtualCircuitSpec(target_precision=...)`` runs a cut's expectation
values in rounds (a pilot, then Neyman-allocated rounds as new shards through the one executor)
until every standard error is under the target or the shot budget is spent, and says which."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp, Statevector

from network.cutting import block_problem, precision
from network.cutting.experiments import MIN_CIRCUIT_SHOTS
from network.cutting.precision import PILOT_SHOTS, VARIANCE_GROUPS, PrecisionReport, circuit_variances, next_round
from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import ExecutionError, SpecError
from network.execution import ShardResult
from network.node_providers import ClusterBuilder, QPUNodeSpec
from network.planning import Strategy
from network.results import QVMResult
from network.storage import ResultStore
from providers.aer import LocalCPUProvider
from tests.network.test_cut_qvm import chain as cut_qvm_chain
from tests.network.test_joint_cuts import wire_circuit

OBSERVABLES = ["ZZZZZZZZ", "IIIZZIII"]


def chain(n: int = 8, seed: int = 1) -> QuantumCircuit:
    """Random ``ry`` layers around a CX chain: connected, one gate cut per split."""
    return cut_qvm_chain(n, seed, measure=False)


def exact_values(qc: QuantumCircuit, labels: list[str]) -> list[float]:
    state = Statevector(qc)
    return [float(state.expectation_value(SparsePauliOp(label)).real) for label in labels]


class Crash(Exception):
    pass


class CountingCPU(LocalCPUProvider):
    """Aer on the CPU that counts the circuits it runs, and dies once ``crash_after`` circuits ran."""

    key = "counting_cpu"

    def __init__(self) -> None:
        super().__init__()
        self.circuits = 0
        self.calls = 0
        self.crash_after: int | None = None

    def execute_batch(self, circuits: Any, shots: Any, node_spec: QPUNodeSpec, *, seeds: Any) -> list[dict[str, int]]:
        if self.crash_after is not None and self.circuits >= self.crash_after:
            raise Crash()
        self.calls += 1
        self.circuits += len(circuits)
        return super().execute_batch(circuits, shots, node_spec, seeds=seeds)

    def execute(self, circuit: Any, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None) -> dict[str, int]:
        return self.execute_batch([circuit], [shots], node_spec, seeds=[seed])[0]


def cluster(provider: Any = "local_cpu") -> Any:
    return ClusterBuilder().add(provider, n_nodes=2, max_qubits=5).build()


def test_the_target_is_reached_in_rounds_of_new_shards_with_values_near_the_exact_ones() -> None:
    qc = chain()
    done: list[ShardResult] = []
    spec = VirtualCircuitSpec(circuit_object=qc, observables=OBSERVABLES, shots=4000, seed=11, target_precision=0.02)
    result = DistributedQVM(cluster()).run(spec, on_shard_done=done.append)
    report = result.precision
    assert result.strategy is Strategy.CUT and report is not None
    assert report.reached and report.stopped_by == "target"
    assert result.standard_errors is not None and result.expectation_values is not None
    assert all(e <= 0.02 for e in result.standard_errors)
    for value, error, exact in zip(
        result.expectation_values, result.standard_errors, exact_values(qc, OBSERVABLES), strict=True
    ):
        assert abs(value - exact) < 4 * error + 1e-3
    # a pilot, then at least one round; every round's shots are new shards, run through the executor
    pilot = result.plan.shards
    assert all(s.shots == PILOT_SHOTS for s in pilot)
    assert len(report.rounds) >= 2 and report.rounds[0]["shards"] == [s.shard_id for s in pilot]
    later = [i for r in report.rounds[1:] for i in r["shards"]]
    assert later == [s["shard_id"] for s in report.shards] == list(range(len(pilot), len(pilot) + len(later)))
    assert len(done) == len(result.shard_results) == len(pilot) + len(later)
    assert sorted(r.shard_id for r in result.shard_results) == list(range(len(pilot) + len(later)))
    assert {s["block"] for s in report.shards} == {0} and all(s["shots"] >= MIN_CIRCUIT_SHOTS for s in report.shards)
    # shots as run: every round together, per distinct circuit; far under the budget
    assert report.total_shots == sum(r.shots for r in result.shard_results) == sum(report.circuit_shots)
    assert report.total_shots == sum(r["shots"] for r in report.rounds)
    assert report.budget == result.plan.cuts[0].total_shots and report.total_shots < report.budget
    assert result.cut is not None and result.cut["shot_allocation"]["method"] == "target_precision"
    assert result.cut["shot_allocation"]["total_shots"] == report.total_shots
    assert any(n.startswith("Target precision 0.02: reached after") for n in result.notes)
    # the report travels with the result
    again = QVMResult.from_json(result.to_json())
    assert again.precision == report


def test_a_budget_spent_before_the_target_is_reported() -> None:
    qc = chain(seed=3)
    spec = VirtualCircuitSpec(circuit_object=qc, observables=OBSERVABLES[0], shots=300, seed=2, target_precision=1e-4)
    result = DistributedQVM(cluster()).run(spec)
    report = result.precision
    assert report is not None and not report.reached and report.stopped_by == "budget"
    assert report.total_shots == report.budget == result.plan.cuts[0].total_shots
    assert len(report.rounds) >= 2 and result.standard_errors is not None and result.standard_errors[0] > 1e-4
    assert any("the shot budget is spent" in n for n in result.notes)
    assert result.to_dict()["precision"]["stopped_by"] == "budget"


def test_a_budget_smaller_than_the_pilot_runs_once() -> None:
    spec = VirtualCircuitSpec(circuit_object=chain(), observables=OBSERVABLES[0], shots=8, seed=2, target_precision=0.5)
    result = DistributedQVM(cluster()).run(spec)
    report = result.precision
    assert report is not None and len(report.rounds) == 1 and report.total_shots <= report.budget
    assert [s.shots for s in result.plan.shards] == list(result.plan.cuts[0].circuit_shots)


@pytest.mark.parametrize("bad", [0, -0.1, math.nan, math.inf, "0.01", True, [0.1]])
def test_a_bad_target_is_refused_naming_it(bad: Any) -> None:
    with pytest.raises(SpecError, match="target_precision must be a positive, finite number") as info:
        VirtualCircuitSpec(circuit_object=chain(), observables="Z" * 8, target_precision=bad)
    assert repr(bad) in str(info.value)


def test_a_target_without_observables_is_refused() -> None:
    qc = chain()
    qc.measure_all()
    with pytest.raises(SpecError, match=r"target_precision=0\.01 applies to expectation values"):
        VirtualCircuitSpec(circuit_object=qc, target_precision=0.01)


def test_a_dry_run_shows_the_pilot_round() -> None:
    spec = VirtualCircuitSpec(circuit_object=chain(), observables="Z" * 8, shots=1000, seed=4, target_precision=0.01)
    result = DistributedQVM(cluster(), mode="dry_run").run(spec)
    assert all(s.shots == PILOT_SHOTS for s in result.plan.shards)
    assert any(n.startswith("Target precision 0.01: a pilot round of") for n in result.notes)


def test_a_crash_between_rounds_then_a_rerun_runs_no_finished_round_again(tmp_path: Path) -> None:
    provider = CountingCPU()
    registry = cluster(provider)
    store = ResultStore(tmp_path.as_uri())
    spec = VirtualCircuitSpec(
        circuit_object=chain(), observables=OBSERVABLES, shots=4000, seed=5, target_precision=0.02
    )
    pilot = len(DistributedQVM(registry).plan(spec).shards)
    provider.crash_after = pilot  # the pilot runs, the next round dies
    with pytest.raises(ExecutionError, match="Crash"):
        DistributedQVM(registry, store=store).run(spec)
    assert provider.circuits == pilot
    provider.crash_after = None
    result = DistributedQVM(registry, store=store).run(spec)
    report = result.precision
    assert report is not None and report.reached and len(report.rounds) >= 2
    assert pilot == len(result.plan.shards)
    assert provider.circuits == len(result.shard_results)  # every shard ran once, the pilot's before the crash
    assert [r.shard_id for r in result.shard_results if r.extra.get("reused")] == list(range(pilot))
    # a plain re-run of the finished run runs nothing and reports the same
    before = provider.circuits
    again = DistributedQVM(registry, store=store).run(spec)
    assert provider.circuits == before
    assert again.precision == report and again.expectation_values == result.expectation_values
    assert again.run_key == result.run_key
    # and the same seeded spec without a target is a run of its own (the full budget at once)
    plain = DistributedQVM(registry, store=store).run(
        VirtualCircuitSpec(circuit_object=chain(), observables=OBSERVABLES, shots=4000, seed=5)
    )
    assert plain.precision is None and plain.run_key != result.run_key
    assert sum(s.shots for s in plain.plan.shards) == report.budget


def test_rounds_follow_each_circuits_share_of_the_variance() -> None:
    """Neyman: circuit ``u`` should end with shots in proportion to ``sqrt(V[u])``."""
    variances = np.array([[4.0], [1.0], [0.0]])
    held = [64, 64, 64]
    extra = next_round(variances, held, target=0.05, budget_left=10**6)
    total = np.array(held) + np.array(extra)
    assert extra[2] == 0  # a deterministic circuit gets no more shots
    # Neyman: 3600 shots in all, 2400 and 1200; from a pilot, 80 % of the way
    assert total[0] / total[1] == pytest.approx(2.0, rel=0.01)
    assert total[:2].sum() == pytest.approx(128 + 0.8 * (3600 - 128), abs=3)
    # from closer, all the way: the predicted error is the target
    extra = next_round(variances, [2000, 1000, 64], target=0.05, budget_left=10**6)
    total = np.array([2000, 1000, 64]) + np.array(extra)
    predicted = (variances[:2, 0] / total[:2]).sum()
    assert predicted == pytest.approx(0.05**2, rel=0.01)
    # the budget caps a round; circuits that get shots get at least the minimum
    capped = next_round(variances, held, target=0.05, budget_left=100)
    assert sum(capped) == 100
    small = next_round(np.array([[1.0], [1e-6]]), [64, 64], target=0.1, budget_left=10**6)
    assert all(x == 0 or x >= MIN_CIRCUIT_SHOTS for x in small)


def test_a_measured_error_above_the_prediction_still_grows_the_shots() -> None:
    """When the first-order prediction says the target is met but the measured error does not."""
    extra = next_round(np.array([[0.0], [0.0]]), [100, 100], target=0.01, budget_left=10**6, standard_errors=[0.02])
    assert extra == [300, 300]


def test_the_report_reads_back() -> None:
    report = PrecisionReport(target=0.1, reached=True, stopped_by="target", budget=10, total_shots=5)
    assert PrecisionReport.from_dict(report.to_dict()) == report


def test_jointly_decomposed_cuts_reach_the_target_too() -> None:
    qc = wire_circuit()
    labels = ["ZZIXZ", "IZIIZ"]
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=3).build()
    spec = VirtualCircuitSpec(circuit_object=qc, observables=labels, shots=4000, seed=7, target_precision=0.03)
    result = DistributedQVM(registry).run(spec)
    assert result.cut is not None and result.cut["joint"] == "wires"
    report = result.precision
    assert report is not None and report.reached and len(report.rounds) >= 2
    assert result.expectation_values is not None and result.standard_errors is not None
    exact = exact_values(qc, labels)
    for value, error, expected in zip(result.expectation_values, result.standard_errors, exact, strict=True):
        assert error <= 0.03 and abs(value - expected) < 4 * error + 1e-3


def test_variances_of_many_circuits_are_estimated_in_bounded_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """One reconstruction per circuit, or per group of circuits past VARIANCE_GROUPS: either way
    the error they predict at the shots held is the measured one."""
    qc = chain(10, seed=2)
    registry = ClusterBuilder().add("local_cpu", n_nodes=3, max_qubits=4).build()
    spec = VirtualCircuitSpec(circuit_object=qc, observables=["Z" * 10, "IIIIZZIIII"], shots=2000, seed=3)
    result = DistributedQVM(registry).run(spec)
    plan = result.plan
    block = plan.cuts[0]
    problem = block_problem(qc, block, circuit_hash=plan.circuit_hash)
    by_id = {r.shard_id: r for r in result.shard_results}
    raw = [by_id[s.shard_id].counts for s in plan.block_shards(0)]
    shots = np.array([sum(c.values()) for c in raw])
    assert result.standard_errors is not None and len(raw) < VARIANCE_GROUPS
    each = circuit_variances(problem, block, raw, 1)
    monkeypatch.setattr(precision, "VARIANCE_GROUPS", 6)
    grouped = circuit_variances(problem, block, raw, 1)
    for variances in (each, grouped):
        assert variances.shape == (len(raw), 2) and np.all(variances >= 0)
        predicted = np.sqrt((variances / shots[:, None]).sum(axis=0))
        assert predicted == pytest.approx(result.standard_errors, rel=0.25)
    assert not np.allclose(each, grouped)
