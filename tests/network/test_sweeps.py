from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter

from network.distributed_qvm import DistributedQVM, SweepSpec
from network.errors import PlanningError, SpecError
from network.node_providers import ClusterBuilder
from network.sweeps import grid_bindings, plan_sweep
from tests.stats import assert_matches

QASM = """OPENQASM 3.0;
include "stdgates.inc";
input float[64] theta;
input float[64] phi;
qubit[2] q;
bit[2] c;
ry(theta) q[0];
ry(phi) q[1];
c = measure q;
"""


def _exact(theta: float, phi: float) -> dict[str, float]:
    p0, p1 = math.sin(theta / 2) ** 2, math.sin(phi / 2) ** 2
    return {f"{b1}{b0}": (p1 if b1 else 1 - p1) * (p0 if b0 else 1 - p0) for b0 in (0, 1) for b1 in (0, 1)}


def test_grid_sweep_matches_exact_distributions_per_binding() -> None:
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=4).build()
    sweep = SweepSpec(qasm=QASM, grid={"theta": [0.0, 1.0, 2.5], "phi": [0.3, 3.0]}, shots=8000, seed=3)
    result = DistributedQVM(registry).run_sweep(sweep)
    frame = result.frame
    assert len(frame) == 6 and list(frame["binding"]) == list(range(6))
    for row in frame.itertuples():
        assert_matches(json.loads(row.counts), _exact(row.theta, row.phi), what=f"binding {row.binding}")
        assert row.parity == pytest.approx(math.cos(row.theta) * math.cos(row.phi), abs=0.06)
    again = DistributedQVM(registry).run_sweep(sweep).frame
    assert list(again["counts"]) == list(frame["counts"])


def test_default_sweep_path_binds_circuits_for_custom_providers() -> None:
    from tests.network.test_node_providers import CoinFlipProvider

    theta = Parameter("theta")
    qc = QuantumCircuit(1)
    qc.rx(theta, 0)
    qc.measure_all()
    registry = ClusterBuilder().add(CoinFlipProvider(), n_nodes=1, max_qubits=2).build()
    frame = DistributedQVM(registry).run_sweep(SweepSpec(circuit_object=qc, bindings=[{"theta": 0.1}] * 3)).frame
    assert len(frame) == 3 and set(frame["node_id"]) == {"coin_flip-0"}


def test_sweeps_spread_over_hosts_in_contiguous_batches() -> None:
    registry = (
        ClusterBuilder()
        .add("local_cpu", n_nodes=2, max_qubits=4, host="a", name="a")
        .add("local_cpu", n_nodes=1, max_qubits=4, host="b", name="b")
        .build()
    )
    sweep = SweepSpec(qasm=QASM, bindings=[{"theta": i / 10, "phi": 0.0} for i in range(10)])
    plan = plan_sweep(sweep, registry, seed=0)
    assert [(s.node_id, s.bindings) for s in plan.shards] == [("a-0", (0, 5)), ("b-0", (5, 10))]
    # a remote node's jobs hold one circuit: one binding per shard, each its own ledgered job
    single = plan_sweep(sweep, registry, seed=0, single={"b-0"})
    assert [s.bindings for s in single.shards if s.node_id == "b-0"] == [(i, i + 1) for i in range(5, 10)]
    assert single.run_key != plan.run_key and len({s.seed for s in single.shards}) == len(single.shards)


def test_bad_sweeps() -> None:
    with pytest.raises(SpecError, match=r"missing \['phi'\]"):
        SweepSpec(qasm=QASM, bindings=[{"theta": 1.0}])
    with pytest.raises(SpecError, match=r"unknown \['gamma'\]"):
        SweepSpec(qasm=QASM, bindings=[{"theta": 1.0, "phi": 1.0, "gamma": 2.0}])
    with pytest.raises(SpecError, match="finite number"):
        SweepSpec(qasm=QASM, bindings=[{"theta": float("nan"), "phi": 1.0}])
    with pytest.raises(SpecError, match="no parameters"):
        qc = QuantumCircuit(1)
        qc.measure_all()
        SweepSpec(circuit_object=qc, bindings=[{}])
    with pytest.raises(SpecError, match="non-empty list"):
        grid_bindings({"theta": []})
    registry = ClusterBuilder().add("local_cpu", n_nodes=1, max_qubits=1).build()
    with pytest.raises(PlanningError, match="2-qubit sweep circuit"):
        plan_sweep(SweepSpec(qasm=QASM, grid={"theta": [1.0], "phi": [1.0]}), registry)


def test_the_same_sweep_on_another_cluster_or_mode_is_stored_apart(tmp_path: Path) -> None:
    """The same circuit, grid and seed on two clusters and in two modes: its own run key and table
    each (before, all wrote the same parquet path)."""
    from network.storage import ResultStore

    store = ResultStore((tmp_path / "s").as_uri())
    sweep = SweepSpec(qasm=QASM, grid={"theta": [0.0, 1.0], "phi": [0.5]}, seed=4, shots=100)
    cpu = ClusterBuilder().add("local_cpu", n_nodes=1, max_qubits=4).build()
    gpu = ClusterBuilder().add("local_gpu_aer", n_nodes=1, max_qubits=4).build()
    runs = [(cpu, "emulated"), (gpu, "emulated"), (cpu, "live")]
    urls = {DistributedQVM(registry, mode=mode, store=store).run_sweep(sweep).table_url for registry, mode in runs}
    assert len(urls) == 3 and len(store.run_keys("sweep-")) == 3
