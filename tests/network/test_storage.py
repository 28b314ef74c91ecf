"""ResultStore against a local folder and a real S3 endpoint (moto on 127.0.0.1): the same tests run on both."""

from __future__ import annotations

import os
import posixpath
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from qiskit import QuantumCircuit

from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import ExecutionError, StorageError
from network.execution import LedgerEntry, LedgerStatus
from network.node_providers import ClusterBuilder, JobStatus, NodeJob, NodeProvider, QPUNodeSpec
from network.planning import ShardPlan, Strategy
from network.results import QVMResult
from network.storage import ResultStore, default_results_url
from tests.conftest import random_block_circuit
from tests.s3server import S3Server

StoreFactory = Callable[..., ResultStore]


@pytest.fixture(params=["file", "s3"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Opens the test's store; ``fresh=True`` gives a separate filesystem instance, as another process has."""
    if request.param == "file":
        url, options = (tmp_path / "results").as_uri(), {}
    else:
        server: S3Server = request.getfixturevalue("aws_sandbox")
        url, options = f"s3://{request.getfixturevalue('s3_bucket')}/qcos", server.storage_options()

    def open_(fresh: bool = False) -> ResultStore:
        return ResultStore(url, storage_options={**options, "skip_instance_cache": True} if fresh else options)

    return open_


@pytest.fixture
def store(open_store: StoreFactory) -> ResultStore:
    return open_store()


def _blocks_spec(seed: int = 5) -> VirtualCircuitSpec:
    qc = random_block_circuit(2, 5, 3, seed=1)  # 10 qubits: two independent 5-qubit blocks
    qc.measure_all()
    # forced: unforced, the planner packs both blocks into one 10-qubit shard that no 8-qubit node takes
    return VirtualCircuitSpec(circuit_object=qc, seed=seed, strategy="partition")


def _run(store: ResultStore, spec: VirtualCircuitSpec | None = None) -> QVMResult:
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=8).build()
    return DistributedQVM(registry, shots=500, store=store).run(spec or _blocks_spec())


def _all_files(store: ResultStore) -> list[str]:
    return [str(p) for p in store.fs.find(store.root)]


# -- runs -------------------------------------------------------------------------------------------


def test_a_run_round_trips_through_the_store(store: ResultStore) -> None:
    result = _run(store)
    key = result.run_key
    assert result.strategy is Strategy.PARTITION
    assert result.storage_url == store.run_url(key) == f"{store.url}/runs/{key}"

    loaded = store.read_result(key)
    assert loaded.counts == result.counts
    stored, returned = loaded.to_dict(), result.to_dict()
    # the returned result also times the persisting itself, which the stored copy cannot hold
    assert stored.pop("timings").items() <= returned.pop("timings").items()
    assert stored == returned
    assert store.has_result(key)
    assert store.list_runs() == [key]

    counts = store.read_table(key, "counts")
    assert list(counts.columns) == ["bitstring", "count"]
    assert dict(zip(counts["bitstring"], counts["count"], strict=True)) == result.counts
    assert int(counts["count"].sum()) == result.shots == 500

    plan = store.read_plan(key)
    assert isinstance(plan, ShardPlan)
    assert plan.to_dict() == result.plan.to_dict()
    assert plan.run_key == key

    shard_files = sorted(posixpath.basename(p) for p in store.fs.glob(f"{store.root}/runs/{key}/shards/*.json"))
    assert shard_files == [f"{r.shard_id}.json" for r in result.shard_results] == ["0.json", "1.json"]
    for shard in result.shard_results:
        saved = store.load_shard_result(key, shard.shard_id)
        assert saved is not None
        assert saved.to_dict() == shard.to_dict()


def test_missing_runs_and_objects_are_storage_errors(store: ResultStore) -> None:
    assert store.list_runs() == []
    assert not store.has_result("nothing-here")
    assert store.read_plan("nothing-here") is None
    assert store.load_shard_result("nothing-here", 0) is None
    with pytest.raises(StorageError, match=r"No completed run 'nothing-here'"):
        store.read_result("nothing-here")
    with pytest.raises(StorageError, match=r"No table 'sweep'"):
        store.read_table("nothing-here", "sweep")
    with pytest.raises(StorageError, match=r"No file 'plot.png'"):
        store.read_file("nothing-here", "plot.png")


def test_runs_written_by_another_process_are_listed(open_store: StoreFactory) -> None:
    reader = open_store()
    reader.write_file("unfinished", "notes.txt", b"x")
    reader.ledger().record(LedgerEntry("r1", 0, "n-0", "p", "r1/0", job_id="job-0"))
    assert reader.list_runs() == []  # listings are now in s3fs's cache
    assert [e.job_id for e in reader.read_ledger("r1")] == ["job-0"]

    writer = open_store(fresh=True)  # its own filesystem instance and listing cache, as in another process
    assert writer.fs is not reader.fs
    result = _run(writer)
    writer.ledger().record(LedgerEntry("r1", 1, "n-1", "p", "r1/1", job_id="job-1"))
    assert reader.list_runs() == [result.run_key]
    assert [e.job_id for e in reader.read_ledger("r1")] == ["job-0", "job-1"]


def test_rerunning_a_seeded_spec_reuses_stored_shards(open_store: StoreFactory) -> None:
    first = _run(open_store())
    second = _run(open_store(fresh=True))
    assert second.run_key == first.run_key
    assert second.counts == first.counts
    assert any("reused" in note for note in second.notes), second.notes
    assert not any("reused" in note for note in first.notes)
    assert all(r.extra.get("reused") for r in second.shard_results)
    assert [r.counts for r in second.shard_results] == [r.counts for r in first.shard_results]


# -- ledger -----------------------------------------------------------------------------------------


def test_ledger_records_and_reads_entries(store: ResultStore) -> None:
    ledger = store.ledger()
    assert ledger.get("run-1", 10) is None
    late = LedgerEntry("run-1", 10, "ibm-0", "ibm", "run-1/10", job_id="job-b", status=LedgerStatus.SUBMITTED)
    early = LedgerEntry("run-1", 2, "ibm-1", "ibm", "run-1/2", attempts=1)
    ledger.record(late)
    ledger.record(early)
    assert ledger.get("run-1", 10) == late
    assert ledger.get("run-1", 2) == early
    assert store.read_ledger("run-1") == [early, late]  # by shard id, not by name

    late.status, late.attempts = LedgerStatus.COMPLETED, 2
    ledger.record(late)
    entry = ledger.get("run-1", 10)
    assert entry is not None and entry.status is LedgerStatus.COMPLETED and entry.attempts == 2
    assert len(store.read_ledger("run-1")) == 2
    assert store.read_ledger("run-2") == []


class RemoteZeros(NodeProvider):
    """A remote-style provider: jobs are queued, polled, and always measure all zeros."""

    key = "remote_zeros"
    remote = True

    def __init__(self) -> None:
        super().__init__()
        self.submitted: list[str | None] = []

    def build_nodes(self, n_nodes: int = 1, max_qubits: int = 8, **_: Any) -> list[QPUNodeSpec]:
        return self.make_nodes(n_nodes, max_qubits=max_qubits, device="QPU", method="zeros")

    def execute(self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None):
        raise AssertionError("submit/poll are used")

    def submit(self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, *, seed=None, job_key=None):
        self.submitted.append(job_key)
        counts = {"0" * circuit.num_clbits: shots}
        return NodeJob(f"job-{len(self.submitted)}", node_spec.node_id, JobStatus.QUEUED, counts=counts)

    def poll(self, job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        job.status = JobStatus.COMPLETED
        return job


def test_remote_jobs_are_recorded_in_the_stores_ledger(store: ResultStore) -> None:
    provider = RemoteZeros()
    registry = ClusterBuilder().add(provider, n_nodes=1).build()
    qc = QuantumCircuit(2)
    qc.measure_all()
    result = DistributedQVM(registry, shots=10, store=store).run(VirtualCircuitSpec(circuit_object=qc, seed=2))
    entries = store.read_ledger(result.run_key)
    assert [(e.shard_id, e.job_id, e.status) for e in entries] == [(0, "job-1", LedgerStatus.COMPLETED)]
    assert entries[0].job_key == f"{result.run_key}/0" == provider.submitted[0]


# -- tables and files -------------------------------------------------------------------------------


def test_tables_and_files_round_trip(store: ResultStore) -> None:
    frame = pd.DataFrame({"theta": [0.0, 0.5, 1.0], "shots": [10, 20, 30], "label": ["a", "b", "c"]})
    url = store.write_table("run-1", "sweep", frame)
    assert url == f"{store.run_url('run-1')}/tables/sweep.parquet"
    pd.testing.assert_frame_equal(store.read_table("run-1", "sweep"), frame)

    data = bytes(range(256)) * 3
    url = store.write_file("run-1", "histogram.png", data)
    assert url == f"{store.run_url('run-1')}/files/histogram.png"
    assert store.read_file("run-1", "histogram.png") == data
    store.write_file("run-1", "histogram.png", b"replaced")
    assert store.read_file("run-1", "histogram.png") == b"replaced"
    # artifacts alone do not make a completed run
    assert store.list_runs() == []


@pytest.mark.parametrize("bad", ["../x", "", "a/b", ".hidden", "x" * 200, "run key"])
def test_invalid_run_keys_are_refused(store: ResultStore, bad: str) -> None:
    with pytest.raises(StorageError, match="Invalid run key"):
        store.read_result(bad)
    with pytest.raises(StorageError, match="Invalid run key"):
        store.write_file(bad, "a.txt", b"x")
    with pytest.raises(StorageError, match="Invalid run key"):
        store.ledger().record(LedgerEntry(bad, 0, "n", "p", "k"))
    assert _all_files(store) == []


@pytest.mark.parametrize("bad", ["../x", "", "a/b", "../../../../../../etc/passwd"])
def test_invalid_object_names_are_refused(store: ResultStore, bad: str) -> None:
    frame = pd.DataFrame({"a": [1]})
    for call in (
        lambda: store.write_file("run-1", bad, b"x"),
        lambda: store.read_file("run-1", bad),
        lambda: store.write_table("run-1", bad, frame),
        lambda: store.read_table("run-1", bad),
    ):
        with pytest.raises(StorageError, match="Invalid object name"):
            call()
    assert _all_files(store) == []


# -- URLs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["ftp://x", "ftp://user:hunter2@example.com/x", "http://example.com/r"])
def test_unsupported_schemes_are_refused(url: str) -> None:
    with pytest.raises(StorageError, match="Unsupported storage URL") as info:
        ResultStore(url)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("url", ["s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/prefix", "s3://AKIAEXAMPLE@bucket/prefix"])
def test_credentials_in_the_url_are_refused(url: str) -> None:
    with pytest.raises(StorageError, match="not in the URL") as info:
        ResultStore(url)
    assert "wJalrXUtnFEMI" not in str(info.value)


def test_default_url_honours_xdg_data_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QCOS_RESULTS_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    expected = (tmp_path / "qcos" / "results").resolve().as_uri()
    assert default_results_url() == expected
    assert ResultStore().url == expected
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_results_url() == (tmp_path / "home" / ".local" / "share" / "qcos" / "results").resolve().as_uri()


def test_default_url_honours_qcos_results_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "ignored"))
    monkeypatch.setenv("QCOS_RESULTS_URL", "memory://qcos-default-url-test")
    assert default_results_url() == "memory://qcos-default-url-test"
    assert ResultStore().url == "memory://qcos-default-url-test"


def test_a_plain_path_is_a_file_url(tmp_path: Path) -> None:
    store = ResultStore(str(tmp_path / "r"))
    assert store.url == (tmp_path / "r").resolve().as_uri()
    store.write_file("run-1", "a.txt", b"x")
    assert (tmp_path / "r" / "runs" / "run-1" / "files" / "a.txt").read_bytes() == b"x"


# -- atomicity --------------------------------------------------------------------------------------


def _leftovers(root: Path) -> list[str]:
    return [name for _, _, files in os.walk(root) for name in files if name.endswith(".tmp")]


def test_a_failed_local_rename_keeps_the_old_content(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store = ResultStore(tmp_path.as_uri())
    store.write_file("run-1", "data.bin", b"old")

    def fail_replace(src: Any, dst: Any) -> None:
        raise OSError("disk vanished")

    monkeypatch.setattr(os, "replace", fail_replace)
    with pytest.raises(StorageError, match=r"Could not write .*data\.bin: OSError: disk vanished"):
        store.write_file("run-1", "data.bin", b"new content")
    with pytest.raises(StorageError):
        store.write_file("run-1", "fresh.bin", b"new content")
    monkeypatch.undo()
    assert store.read_file("run-1", "data.bin") == b"old"
    assert not (tmp_path / "runs" / "run-1" / "files" / "fresh.bin").exists()
    assert _leftovers(tmp_path) == []


def test_a_write_that_dies_midway_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store = ResultStore(tmp_path.as_uri())

    def fail_fsync(fd: int) -> None:
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", fail_fsync)
    with pytest.raises(StorageError, match="I/O error"):
        store.write_table("run-1", "sweep", pd.DataFrame({"a": range(1000)}))
    monkeypatch.undo()
    assert not (tmp_path / "runs" / "run-1" / "tables" / "sweep.parquet").exists()
    assert _leftovers(tmp_path) == []


class FailsOnWideShards(NodeProvider):
    """Runs 2-qubit shards (all zeros) and fails permanently on anything wider."""

    key = "fails_wide"

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.widths: list[int] = []

    def build_nodes(self, n_nodes: int = 1, max_qubits: int = 3, **_: Any) -> list[QPUNodeSpec]:
        return self.make_nodes(n_nodes, max_qubits=max_qubits)

    def execute(self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None):
        with self.lock:
            self.widths.append(circuit.num_qubits)
        if circuit.num_qubits > 2:
            raise ValueError("calibration data lost")
        return {"0" * circuit.num_clbits: shots}


def _two_component_spec() -> VirtualCircuitSpec:
    qc = QuantumCircuit(5)
    qc.h(0)
    qc.cx(0, 1)
    qc.h(2)
    qc.cx(2, 3)
    qc.cx(3, 4)
    qc.measure_all()
    return VirtualCircuitSpec(circuit_object=qc, seed=9, strategy="partition")


def test_a_run_that_fails_mid_run_leaves_no_result(store: ResultStore) -> None:
    provider = FailsOnWideShards()
    registry = ClusterBuilder().add(provider, n_nodes=2, max_qubits=3).build()
    plans: list[ShardPlan] = []
    qvm = DistributedQVM(registry, shots=100, store=store, failover=False)
    with pytest.raises(ExecutionError, match="calibration data lost"):
        qvm.run(_two_component_spec(), on_plan=plans.append)
    assert 3 in provider.widths
    key = plans[0].run_key
    assert store.read_plan(key) is not None  # the run got as far as storing its plan
    assert not store.has_result(key)
    with pytest.raises(StorageError, match="no result.json"):
        store.read_result(key)
    assert store.list_runs() == []
    assert not any(p.endswith("result.json") for p in _all_files(store))


def test_a_run_that_fails_while_persisting_leaves_no_result(
    store: ResultStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_write_table(*args: Any, **kwargs: Any) -> str:
        raise StorageError("bucket went read-only")

    monkeypatch.setattr(store, "write_table", broken_write_table)
    plans: list[ShardPlan] = []
    registry = ClusterBuilder().add("local_cpu", n_nodes=2, max_qubits=8).build()
    with pytest.raises(StorageError, match="read-only"):
        DistributedQVM(registry, shots=100, store=store).run(_blocks_spec(), on_plan=plans.append)
    key = plans[0].run_key
    assert store.load_shard_result(key, 0) is not None
    assert not store.has_result(key)
    assert store.list_runs() == []


# -- secrets ----------------------------------------------------------------------------------------


def test_no_stored_object_contains_the_secret(s3_store: ResultStore, s3_bucket: str, aws_sandbox: S3Server) -> None:
    result = _run(s3_store)
    secret = aws_sandbox.secret
    objects = aws_sandbox.objects(s3_bucket)
    assert f"qcos/runs/{result.run_key}/result.json" in objects
    assert len(objects) >= 5
    for key, body in objects.items():
        assert secret.encode() not in body, key
        assert aws_sandbox.key.encode() not in body, key
    for text in (repr(s3_store), str(s3_store.url), repr(result), result.to_json(), str(result.storage_url)):
        assert secret not in text


def test_an_object_store_outage_mid_run_is_a_storage_error_not_the_nodes(tmp_path: Path) -> None:
    """A real S3 endpoint (its own moto server) that goes away while two nodes run their shards: the
    run fails with StorageError naming the store, not an ExecutionError blaming the nodes."""
    import threading

    from moto.server import ThreadedMotoServer

    from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
    from network.errors import ExecutionError, StorageError
    from network.node_providers import ClusterBuilder, NodeProvider, QPUNodeSpec
    from tests.conftest import random_block_circuit
    from tests.s3server import S3Server

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3 = S3Server(endpoint_url=f"http://{host}:{port}", key="outage-key", secret="outage-secret")
    bucket = s3.create_bucket("outage")
    options = {**s3.storage_options(), "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1}}
    store = ResultStore(f"s3://{bucket}/qcos", storage_options=options)
    both_running = threading.Barrier(2, timeout=30)
    lock = threading.Lock()
    stopped: list[bool] = []

    class Sim(NodeProvider):
        """Two nodes on two hosts; once both are running, the object store goes down."""

        key = "outage_sim"

        def build_nodes(self, n_nodes: int = 1, **kwargs: Any) -> list[QPUNodeSpec]:
            return [QPUNodeSpec(f"sim-{i}", self.key, max_qubits=8, host=f"h{i}") for i in range(n_nodes)]

        def execute(self, circuit: Any, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None) -> dict:
            both_running.wait()
            with lock:
                if not stopped:
                    server.stop()
                    stopped.append(True)
            return {"0" * circuit.num_clbits: shots}

    registry = ClusterBuilder().add(Sim(), n_nodes=2).build()
    qc = random_block_circuit(4, 2, 2, seed=1)
    qc.measure_all()
    try:
        with pytest.raises(StorageError, match=f"The result store failed for 2 unit.*s3://{bucket}") as info:
            DistributedQVM(registry, store=store).run(
                VirtualCircuitSpec(circuit_object=qc, seed=3, strategy="partition", shots=10)
            )
        assert not isinstance(info.value, ExecutionError)
    finally:
        if not stopped:
            server.stop()
