"""Driver B: the run-circuit flow runs a ``target_precision`` spec's rounds as Prefect tasks, each
round's shards new shards under the run's key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from qiskit import qasm2
from qiskit.quantum_info import SparsePauliOp, Statevector

from flows import RunCircuitParameters, run_circuit
from network.storage import ResultStore
from tests.network.test_target_precision import chain

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_the_flow_runs_rounds_to_the_target(tmp_path: Path) -> None:
    qc = chain()
    cluster = tmp_path / "small.yaml"
    cluster.write_text("nodes:\n  - provider: local_cpu\n    n_nodes: 2\n    max_qubits: 5\n")
    store_url = (tmp_path / "results").as_uri()
    params = RunCircuitParameters(
        circuit=qasm2.dumps(qc), shots=4000, seed=3, cluster=str(cluster), storage=store_url,
        observables=["ZZZZZZZZ"], target_precision=0.02,
    )  # fmt: skip
    summary = run_circuit(params)
    report = summary["precision"]
    assert report["reached"] and report["stopped_by"] == "target" and len(report["rounds"]) >= 2
    truth = float(Statevector(qc).expectation_value(SparsePauliOp("ZZZZZZZZ")).real)
    error = summary["standard_errors"][0]
    assert error <= 0.02 and abs(summary["expectation_values"][0] - truth) <= 4 * error + 1e-3
    # every round's shards were stored under the run's key, like the pilot's
    store = ResultStore(store_url)
    later = [s["shard_id"] for s in report["shards"]]
    assert later and all(store.load_shard_result(summary["run_key"], i) is not None for i in later)
    stored = store.read_result(summary["run_key"])
    assert stored.precision is not None and stored.precision.to_dict() == report
    # a re-run reads every round back and reports the same
    again = run_circuit(params)
    assert again["precision"] == report and again["expectation_values"] == summary["expectation_values"]


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_the_form_refuses_a_bad_target(bad: float) -> None:
    with pytest.raises(ValidationError, match="target_precision"):
        RunCircuitParameters(circuit="OPENQASM 2.0;", observables=["Z"], target_precision=bad)
