"""No strategy can exceed a budget or pay twice: per strategy (whole, shot split, partition, cut,
expectation values, sweep), a budget below the estimate is refused before anything is submitted,
and a crash mid-run followed by a re-run pays once per job, counted at the service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit

from network.distributed_qvm import DistributedQVM, SweepSpec, VirtualCircuitSpec
from network.errors import PlanningError
from network.node_providers import ClusterBuilder, QPURegistry
from network.planning import Strategy
from network.storage import ResultStore
from tests.conftest import SWEEP_QASM, random_block_circuit
from tests.network.test_cut_pipeline import CrashingQPU, narrow_chain
from tests.network.test_reattach import Crash


def _blocks() -> QuantumCircuit:
    qc = random_block_circuit(3, 2, 2, seed=6)
    qc.measure_all()
    return qc


def _observed() -> QuantumCircuit:
    return narrow_chain(8, seed=3).remove_final_measurements(inplace=False)


#: name -> (what to run, strategy expected, nodes' width)
CASES: dict[str, tuple[Callable[[], Any], Strategy | None, int]] = {
    "whole": (
        lambda: VirtualCircuitSpec(circuit_object=_blocks(), seed=1, strategy="whole", shots=60),
        Strategy.WHOLE,
        8,
    ),
    "shot_split": (
        lambda: VirtualCircuitSpec(circuit_object=_blocks(), seed=2, strategy="shot_split", shots=60),
        Strategy.SHOT_SPLIT,
        8,
    ),
    "partition": (
        lambda: VirtualCircuitSpec(circuit_object=_blocks(), seed=3, strategy="partition", shots=60),
        Strategy.PARTITION,
        8,
    ),
    "cut": (lambda: VirtualCircuitSpec(circuit_object=narrow_chain(), seed=4, shots=60), Strategy.CUT, 5),
    "expectation": (
        lambda: VirtualCircuitSpec(circuit_object=_observed(), observables="Z" * 8, seed=5, shots=60),
        Strategy.CUT,
        5,
    ),
    "sweep": (
        lambda: SweepSpec(qasm=SWEEP_QASM, grid={"theta": list(np.linspace(0, 3, 5))}, shots=60, seed=6),
        None,
        5,
    ),
}


def _cluster(provider: CrashingQPU, width: int, **prices: float) -> QPURegistry:
    return ClusterBuilder().add(provider, n_nodes=3, max_qubits=width, **prices).build()


def _run(qvm: DistributedQVM, work: Any) -> Any:
    return qvm.run_sweep(work) if isinstance(work, SweepSpec) else qvm.run(work)


@pytest.mark.parametrize("case", list(CASES))
def test_a_budget_below_the_estimate_is_refused_before_anything_is_paid(case: str) -> None:
    make, strategy, width = CASES[case]
    provider = CrashingQPU()
    registry = _cluster(provider, width, cost_per_task=0.3, cost_per_shot=0.01)
    work = make()
    if isinstance(work, SweepSpec):
        expensive = SweepSpec(qasm=SWEEP_QASM, grid={"theta": list(np.linspace(0, 3, 5))}, shots=60, seed=6, max_cost=1)
        with pytest.raises(PlanningError, match=r"estimated at 4\.5 .* above the budget max_cost=1"):
            DistributedQVM(registry).run_sweep(expensive)
    else:
        plan = DistributedQVM(registry).plan(work)
        assert plan.strategy is strategy and plan.estimated_cost == pytest.approx(
            sum(0.3 + 0.01 * s.shots for s in plan.shards)
        )
        from dataclasses import replace

        with pytest.raises(PlanningError, match="exceeds the budget max_cost"):
            DistributedQVM(registry).run(replace(work, max_cost=plan.estimated_cost / 2))
    assert provider.submissions == 0


@pytest.mark.parametrize("case", list(CASES))
def test_a_crash_then_a_rerun_pays_once_per_job(case: str, tmp_path: Path) -> None:
    make, strategy, width = CASES[case]
    provider = CrashingQPU()
    registry = _cluster(provider, width)
    store = ResultStore(tmp_path.as_uri())
    provider.crash_after = 1  # the process dies at its first wait for a result
    with pytest.raises(Crash):
        _run(DistributedQVM(registry, store=store), make())
    assert provider.submissions >= 1
    provider.crash_after = None
    result = _run(DistributedQVM(registry, store=store), make())
    jobs = len(result.plan.shards)
    assert provider.submissions == jobs  # each job paid once, across the crash and the re-run
    if strategy is not None:
        assert result.strategy is strategy
    _run(DistributedQVM(registry, store=store), make())  # and a plain re-run of the finished run pays nothing
    assert provider.submissions == jobs
