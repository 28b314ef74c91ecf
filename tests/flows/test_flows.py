"""The Prefect flows call the same stages as DistributedQVM.run: same plan, same counts."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.states import Completed, Failed
from qiskit import QuantumCircuit

from blocks import BlockNotFoundError
from flows import RunCircuitParameters, RunSweepParameters, run_circuit, run_sweep
from flows.tasks import transient_only, unit_cache_key
from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import ExecutionError, TransientExecutionError
from network.node_providers import (
    ClusterBuilder,
    JobStatus,
    NodeJob,
    NodeProvider,
    QPUNodeSpec,
    register_provider,
    unregister_provider,
)
from network.storage import ResultStore
from tests.conftest import SWEEP_QASM

REPO = Path(__file__).resolve().parents[2]
BLOCKS_QASM = (REPO / "examples" / "nightly" / "blocks_4x6.qasm").read_text()

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def cluster_file(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text("nodes:\n  - provider: local_cpu\n    n_nodes: 4\n    max_qubits: 12\n")
    return path


def _artifact(key: str) -> Any:
    """The newest artifact with ``key`` (every run of the session publishes under the same keys)."""
    from prefect.client.schemas.sorting import ArtifactSort

    async def read() -> Any:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                sort=ArtifactSort.CREATED_DESC,
                limit=1,
            )
            return found[0] if found else None

    import anyio

    return anyio.run(read)


def test_run_circuit_flow_matches_the_in_process_driver(tmp_path: Path, cluster_file: Path) -> None:
    store_url = (tmp_path / "results").as_uri()
    params = RunCircuitParameters(
        circuit=BLOCKS_QASM, shots=3000, seed=21, cluster=str(cluster_file), storage=store_url
    )
    summary = run_circuit(params)
    direct = DistributedQVM(ClusterBuilder.from_yaml(cluster_file).build(), shots=3000).run(
        VirtualCircuitSpec(qasm=BLOCKS_QASM, seed=21)
    )
    assert summary["run_key"] == direct.run_key and summary["strategy"] == "partition"
    stored = ResultStore(store_url).read_result(summary["run_key"])
    assert stored.counts == direct.counts
    assert stored.storage_url == summary["storage_url"]
    table = ResultStore(store_url).read_table(summary["run_key"], "counts")
    assert int(table["count"].sum()) == 3000
    # artifacts in the UI: summary (with the embedded histogram), shard table, progress, image
    md = _artifact("qcos-summary")
    assert md is not None and "partition" in md.data and "data:image/png;base64," in md.data
    shards = _artifact("qcos-shards")
    assert shards is not None and len(json.loads(shards.data)) == len(stored.plan.shards)
    progress = _artifact("qcos-shards-progress")
    assert progress is not None and float(progress.data) == pytest.approx(100.0)
    image = _artifact("qcos-histogram")
    assert image is not None and image.data.startswith("data:image/png;base64,")  # renders in the browser
    assert ResultStore(store_url).read_file(summary["run_key"], "histogram.png").startswith(b"\x89PNG")


def test_dry_run_flow_stores_the_plan_only(tmp_path: Path, cluster_file: Path) -> None:
    store_url = (tmp_path / "results").as_uri()
    summary = run_circuit(
        RunCircuitParameters(circuit=BLOCKS_QASM, seed=1, mode="dry_run", cluster=str(cluster_file), storage=store_url)
    )
    store = ResultStore(store_url)
    assert summary["dry_run"] and store.read_plan(summary["run_key"]) is not None
    assert not store.has_result(summary["run_key"])


def test_unknown_cluster_block_is_named(tmp_path: Path) -> None:
    with pytest.raises(BlockNotFoundError, match="no-such-cluster"):
        run_circuit(RunCircuitParameters(circuit=BLOCKS_QASM, cluster="no-such-cluster", storage=str(tmp_path)))


def test_run_sweep_flow_writes_one_row_per_binding(tmp_path: Path, cluster_file: Path) -> None:
    store_url = (tmp_path / "results").as_uri()
    params = RunSweepParameters(
        circuit=SWEEP_QASM, grid={"theta": [0.0, 1.0, 2.0, 3.0]}, shots=500, seed=3, cluster=str(cluster_file),
        storage=store_url,
    )  # fmt: skip
    summary = run_sweep(params)
    frame = ResultStore(store_url).read_table(summary["run_key"], "sweep")
    assert list(frame["theta"]) == [0.0, 1.0, 2.0, 3.0]
    assert json.loads(frame["counts"][0]) == {"00": 500}
    assert set(json.loads(frame["counts"][3])) <= {"00", "11"}
    with pytest.raises(ValueError, match="exactly one of grid, bindings or bindings_file"):
        RunSweepParameters(circuit=SWEEP_QASM)


def test_sweep_bindings_from_a_file(tmp_path: Path, cluster_file: Path) -> None:
    (tmp_path / "b.csv").write_text("theta\n0.0\n3.14159\n")
    store_url = (tmp_path / "results").as_uri()
    summary = run_sweep(
        RunSweepParameters(
            circuit=SWEEP_QASM, bindings_file=str(tmp_path / "b.csv"), shots=200, seed=1,
            cluster=str(cluster_file), storage=store_url,
        )
    )  # fmt: skip
    frame = ResultStore(store_url).read_table(summary["run_key"], "sweep")
    assert list(frame["theta"]) == [0.0, 3.14159] and json.loads(frame["counts"][0]) == {"00": 200}
    from network.errors import SpecError

    (tmp_path / "bad.json").write_text('{"theta": 1}')
    with pytest.raises(SpecError, match="list of"):
        run_sweep(RunSweepParameters(circuit=SWEEP_QASM, bindings_file=str(tmp_path / "bad.json"), storage=store_url))


class CountingQPU(NodeProvider):
    """A remote provider whose jobs live 'server-side' (class state shared by every instance,
    as the flow's tasks each build their own registry)."""

    key = "counting_qpu"
    remote = True
    submissions: ClassVar[int] = 0
    attaches: ClassVar[int] = 0
    fail_polls: ClassVar[bool] = False
    jobs: ClassVar[dict[str, dict[str, int]]] = {}
    _ids = itertools.count()
    _lock = threading.Lock()

    def build_nodes(self, n_nodes: int = 1, max_qubits: int = 8, **_: Any) -> list[QPUNodeSpec]:
        return self.make_nodes(n_nodes, max_qubits=max_qubits, device="QPU", method="counting")

    def execute(self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None):
        raise AssertionError("remote")

    def submit(self, circuit, shots, node_spec, *, seed=None, job_key=None):  # type: ignore[no-untyped-def]
        with CountingQPU._lock:
            CountingQPU.submissions += 1
            job_id = f"cq-{next(CountingQPU._ids)}"
            CountingQPU.jobs[job_id] = {"0" * circuit.num_clbits: shots}
        return NodeJob(job_id, node_spec.node_id, JobStatus.QUEUED)

    def poll(self, job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        if CountingQPU.fail_polls:
            raise ExecutionError("result download failed: the service returned 500 (permanent)")
        return NodeJob(job.job_id, job.node_id, JobStatus.COMPLETED, counts=CountingQPU.jobs[job.job_id])

    def attach(self, job_id: str, node_spec: QPUNodeSpec) -> NodeJob:
        if job_id not in CountingQPU.jobs:
            raise LookupError(job_id)
        CountingQPU.attaches += 1
        return NodeJob(job_id, node_spec.node_id, JobStatus.RUNNING)


def test_failed_flow_rerun_reattaches_instead_of_paying_twice(tmp_path: Path) -> None:
    register_provider("counting_qpu", CountingQPU)
    try:
        cluster = tmp_path / "qpu.yaml"
        cluster.write_text("nodes:\n  - provider: counting_qpu\n    n_nodes: 4\n")
        params = RunCircuitParameters(
            circuit=BLOCKS_QASM, shots=100, seed=5, cluster=str(cluster), storage=(tmp_path / "r").as_uri()
        )
        CountingQPU.fail_polls = True
        with pytest.raises(ExecutionError, match="permanent"):
            run_circuit(params)
        first_wave = CountingQPU.submissions  # every shard was submitted, then the flow failed
        assert first_wave == 4
        CountingQPU.fail_polls = False
        summary = run_circuit(params)
        # the re-run re-attached to the recorded jobs: submissions equal the number of shards
        assert CountingQPU.submissions == summary["shards"] == 4
        assert CountingQPU.attaches == first_wave
    finally:
        unregister_provider("counting_qpu")


def test_retry_condition_accepts_transient_errors_only() -> None:
    assert transient_only(None, None, Failed(data=TransientExecutionError("node went away")))
    assert transient_only(None, None, Failed(data=TimeoutError("slow")))
    assert not transient_only(None, None, Failed(data=ExecutionError("invalid circuit")))
    assert not transient_only(None, None, Completed(data=1))


def test_run_circuit_flow_estimates_observables_with_cuts(tmp_path: Path) -> None:
    from qiskit.quantum_info import SparsePauliOp, Statevector

    from network.circuits import parse_qasm

    cluster = tmp_path / "small.yaml"
    cluster.write_text("nodes:\n  - provider: local_cpu\n    n_nodes: 2\n    max_qubits: 5\n")
    qasm = (REPO / "examples" / "nightly" / "ghz8.qasm").read_text().replace("measure q -> c;", "")
    store_url = (tmp_path / "results").as_uri()
    summary = run_circuit(
        RunCircuitParameters(
            circuit=qasm, shots=4000, seed=2, cluster=str(cluster), storage=store_url, observables=["ZIIIIIIZ"]
        )
    )
    truth = float(Statevector(parse_qasm(qasm).remove_final_measurements(inplace=False)).expectation_value(
        SparsePauliOp("ZIIIIIIZ")).real)  # fmt: skip
    assert summary["strategy"] == "cut" and summary["cut"]["cuts"]
    assert abs(summary["expectation_values"][0] - truth) <= 4 * summary["standard_errors"][0] + 1e-9
    stored = ResultStore(store_url).read_result(summary["run_key"])
    assert stored.expectation_values == summary["expectation_values"]
    md = _artifact("qcos-summary")
    assert md is not None and "ZIIIIIIZ" in md.data


def test_run_circuit_flow_reconstructs_counts_of_a_cut_circuit(tmp_path: Path) -> None:
    cluster = tmp_path / "small.yaml"
    cluster.write_text("nodes:\n  - provider: local_cpu\n    n_nodes: 2\n    max_qubits: 5\n")
    store_url = (tmp_path / "results").as_uri()
    qasm = (REPO / "examples" / "nightly" / "ghz8.qasm").read_text()
    summary = run_circuit(
        RunCircuitParameters(circuit=qasm, shots=4000, seed=3, cluster=str(cluster), storage=store_url)
    )
    assert summary["strategy"] == "cut" and summary["reconstructed"] is True
    top = dict(summary["top"])
    assert top.get("00000000", 0) + top.get("11111111", 0) > 0.95 * 4000
    stored = ResultStore(store_url).read_result(summary["run_key"])
    assert stored.reconstructed and sum(stored.counts.values()) == 4000
    assert list((tmp_path / "results").rglob("quasi_distribution.parquet"))


def test_scheduled_nights_draw_fresh_seeds_keep_their_history_and_show_a_trend(
    tmp_path: Path, cluster_file: Path
) -> None:
    """What the schedule runs (no seed given): each night is new work with its own results; a trend
    artifact reads the nights back. A given seed repeats a night exactly (and reuses its shards)."""
    from flows.models import NightlyParameters
    from flows.nightly import BENCHMARK_DIR, HISTORY_PREFIX, nightly_benchmarks, trend_frame

    store_url = (tmp_path / "results").as_uri()
    night = NightlyParameters(cluster=str(cluster_file), storage=store_url, shots=200)
    first = nightly_benchmarks(night)
    second = nightly_benchmarks(night)
    circuits = len(list(BENCHMARK_DIR.glob("*.qasm")))
    assert len(first) == len(second) == circuits
    assert {s["run_key"] for s in first}.isdisjoint(s["run_key"] for s in second)  # nothing reused, nothing overwritten
    store = ResultStore(store_url)
    assert len(store.run_keys(HISTORY_PREFIX)) == 2 and len(store.list_runs()) == 2 * circuits
    trend = trend_frame(store, 30)
    assert len(trend) == 2 * circuits and trend["seed"].nunique() == 2
    ghz = trend[trend["circuit"] == "ghz8"]
    assert (ghz["fidelity"] > 0.95).all()  # a figure that measures the run, not only its time
    table = _artifact("qcos-nightly-trend")
    plot = _artifact("qcos-nightly-trend-plot")
    assert table is not None and len(json.loads(table.data)) == 2 * circuits
    assert plot is not None and "data:image/png;base64," in plot.data


def test_shards_for_a_pool_without_a_worker_fail_with_a_clear_message(tmp_path: Path) -> None:
    """A node routed to a work pool no worker polls: the run does not wait forever; past pool_timeout
    the child run is cancelled and the error names the pool and the command that starts a worker."""
    import anyio
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.objects import StateType

    async def deploy() -> None:
        async with get_client() as client:
            await client.create_work_pool(WorkPoolCreate(name="nobody", type="process"))
            flow_id = await client.create_flow_from_name("execute-shards")
            await client.create_deployment(
                flow_id=flow_id, name="nobody", work_pool_name="nobody",
                entrypoint="flows/execute_shards.py:execute_shards", path=str(REPO),
            )  # fmt: skip

    anyio.run(deploy)
    cluster = tmp_path / "pooled.yaml"
    cluster.write_text("nodes:\n  - provider: local_cpu\n    n_nodes: 1\n    max_qubits: 8\n    work_pool: nobody\n")
    params = RunCircuitParameters(
        circuit=(REPO / "examples" / "nightly" / "bell_pairs.qasm").read_text(), shots=100, seed=1,
        cluster=str(cluster), storage=(tmp_path / "r").as_uri(), pool_timeout=2,
    )  # fmt: skip
    with pytest.raises(ExecutionError, match=r"No worker of work pool 'nobody' .* within pool_timeout=2 s") as info:
        run_circuit(params)
    assert "bash deployments/start_worker.sh nobody" in str(info.value)

    async def children() -> list[Any]:
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

        async with get_client() as client:
            return await client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["nobody"]))
            )

    runs = anyio.run(children)
    assert runs and all(r.state.type is StateType.CANCELLED for r in runs)


class BlinkingQPU(CountingQPU):
    """A remote QPU whose first submission meets a gateway timeout (a transient error)."""

    key = "blinking_qpu"
    blinks: ClassVar[int] = 1

    def submit(self, circuit, shots, node_spec, *, seed=None, job_key=None):  # type: ignore[no-untyped-def]
        if BlinkingQPU.blinks > 0:
            BlinkingQPU.blinks -= 1
            raise TimeoutError("gateway timeout")
        return super().submit(circuit, shots, node_spec, seed=seed, job_key=job_key)


def test_retries_of_the_core_appear_in_the_flow_runs_logs(tmp_path: Path) -> None:
    """The executor logs with the standard logging module; inside a flow run its lines reach the run's
    logs in the Prefect UI, and the summary artifact says what was retried."""
    from prefect.client.schemas.filters import LogFilter

    register_provider("blinking_qpu", BlinkingQPU)
    try:
        cluster = tmp_path / "blink.yaml"
        cluster.write_text("nodes:\n  - provider: blinking_qpu\n    n_nodes: 1\n")
        params = RunCircuitParameters(
            circuit=(REPO / "examples" / "nightly" / "bell_pairs.qasm").read_text(), shots=50, seed=9,
            cluster=str(cluster), storage=(tmp_path / "r").as_uri(), strategy="whole",
        )  # fmt: skip
        state = run_circuit(params, return_state=True)
    finally:
        unregister_provider("blinking_qpu")
    flow_run_id = state.state_details.flow_run_id

    async def logs() -> list[str]:
        # this run's logs only (the session's server holds every earlier test's, past one page)
        async with get_client() as client:
            found = await client.read_logs(log_filter=LogFilter(flow_run_id={"any_": [flow_run_id]}), limit=200)
            return [entry.message for entry in found]

    import anyio

    def retried(messages: list[str]) -> bool:
        return any("transient error (try 1), retrying" in m and "gateway timeout" in m for m in messages)

    deadline = time.monotonic() + 30  # logs reach the API in batches
    messages = anyio.run(logs)
    while not retried(messages) and time.monotonic() < deadline:
        time.sleep(0.5)
        messages = anyio.run(logs)
    assert retried(messages), messages[-20:]
    summary = _artifact("qcos-summary")
    assert summary is not None and "1 transient error(s) retried on 1 shard(s)" in summary.data


def test_the_cache_key_of_a_large_unit_stays_a_valid_file_name() -> None:
    """Prefect persists a unit's result in a file named by its cache key: a unit of 1,000 shards
    once made a key of 3,900 characters ("File name too long", its result not persisted)."""
    few = unit_cache_key(None, {"run_key": "r" * 24, "mode": "emulated", "shard_ids": [0, 1, 2]})  # type: ignore[arg-type]
    assert few == f"qcos-{'r' * 24}-emulated-0-1-2"
    keys = {
        unit_cache_key(None, {"run_key": "r" * 24, "mode": "emulated", "shard_ids": ids})  # type: ignore[arg-type]
        for ids in (list(range(1000)), list(range(1, 1001)), list(range(999)))
    }
    assert len(keys) == 3 and all(len(key) < 100 for key in keys)


def test_run_circuit_flow_cuts_jointly_and_the_form_can_turn_it_off(tmp_path: Path) -> None:
    """Two CX between two 4-qubit chains, as OpenQASM, on 6-qubit nodes (room for the ancillas): the
    flow's tasks run the joint decomposition's subexperiments (49); joint_cuts=False gives 81."""
    import numpy as np
    from qiskit import QuantumCircuit, qasm2
    from qiskit.quantum_info import SparsePauliOp, Statevector

    rng = np.random.default_rng(5)
    qc = QuantumCircuit(8)
    for layer in range(2):
        for q in range(8):
            qc.ry(float(rng.uniform(0.2, 2.9)), q)
        for offset in (0, 4):
            for j in range(offset, offset + 3):
                qc.cx(j, j + 1)
        qc.cx(3, 4) if layer == 0 else qc.cx(4, 3)
    cluster = tmp_path / "roomy.yaml"
    cluster.write_text("nodes:\n  - provider: local_cpu\n    n_nodes: 2\n    max_qubits: 6\n")
    store_url = (tmp_path / "results").as_uri()
    common = dict(circuit=qasm2.dumps(qc), shots=1000, seed=4, cluster=str(cluster), storage=store_url,
                  observables=["IIZZZZII"])  # fmt: skip
    summary = run_circuit(RunCircuitParameters(**common))
    truth = float(Statevector(qc).expectation_value(SparsePauliOp("IIZZZZII")).real)
    assert summary["cut"]["joint"] == "gates" and summary["cut"]["sampling_overhead"] == 49
    assert abs(summary["expectation_values"][0] - truth) <= 4 * summary["standard_errors"][0]
    separate = run_circuit(RunCircuitParameters(**common, joint_cuts=False))
    assert separate["cut"]["joint"] == "" and separate["cut"]["sampling_overhead"] == 81
