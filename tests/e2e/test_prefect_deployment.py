"""End to end: a real `prefect server start`, work pools, `prefect deploy --all`, process workers,
a run-circuit triggered through the API as the UI would, and the result in a real S3 server (moto).

Run it alone with `pytest -m e2e`. It takes about a minute (server start, deploy, worker, flow run).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from qiskit import qasm2
from qiskit.quantum_info import SparsePauliOp, Statevector

from providers.custom_rest.server import AerBackend, create_app, serve_in_background
from tests.network.test_cut_qvm import chain

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _api(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One call to the server's REST API, retried as Prefect's own client retries (docs/production.md):
    503 (a SQLite server answers "database is locked" under load), 429, 502, 408 and dropped
    connections, backing off 1, 2, 4 ... s for up to about two minutes; then the last answer."""
    delay = 1.0
    deadline = time.monotonic() + 120
    while True:
        try:
            response = httpx.request(method, url, **kwargs)
        except (httpx.TimeoutException, httpx.NetworkError):
            if time.monotonic() > deadline:
                raise
        else:
            if response.status_code not in (408, 429, 502, 503) or time.monotonic() > deadline:
                return response
        time.sleep(delay)
        delay = min(delay * 2, 16.0)


class _Processes:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [*args], cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run([*args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def prefect_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_Processes, str]]:
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and not k.startswith("AWS_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PWD=str(REPO),
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_PREFETCH_SECONDS="1",
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
        PREFECT_RESULTS_PERSIST_BY_DEFAULT="true",
        PREFECT_LOCAL_STORAGE_PATH=str(home / "storage"),
        QCOS_RESULTS_URL=(home / "local-results").as_uri(),
    )
    procs = _Processes(env, home)
    try:
        procs.start("server", str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port))
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (home / "server.log").read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        yield procs, api
    finally:
        procs.stop()
        shutil.rmtree(home, ignore_errors=True)


def _wait_for_flow_run(api: str, flow_run_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = _api("GET", f"{api}/flow_runs/{flow_run_id}", timeout=10).json()
        state = run.get("state") or {}
        if state.get("type") in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
            return run
        time.sleep(1)
    raise AssertionError(f"flow run {flow_run_id} did not finish in {timeout} s (last state: {state})")


@pytest.fixture(scope="module")
def deployed(prefect_stack: tuple[_Processes, str], s3_server: Any) -> tuple[_Processes, str, str]:
    """Blocks registered, a storage block on the moto endpoint (its own bucket), pools, every
    deployment, and workers for the qcos and cloud-qpu pools."""
    procs, api = prefect_stack
    s3_bucket = s3_server.create_bucket("qcos-e2e")
    prefect = str(BIN / "prefect")
    procs.run(prefect, "block", "register", "-m", "blocks")
    # the storage block a user would save in the UI: moto endpoint, credentials in an AwsCredentials block
    procs.run(
        str(BIN / "python"),
        "-c",
        "from prefect_aws import AwsCredentials\n"
        "from blocks import QCOSResultStorage\n"
        f"creds = AwsCredentials(aws_access_key_id={s3_server.key!r}, aws_secret_access_key={s3_server.secret!r}, "
        f"region_name={s3_server.region!r})\n"
        "creds.save('moto-creds', overwrite=True)\n"
        f"QCOSResultStorage(url='s3://{s3_bucket}/qcos', endpoint_url={s3_server.endpoint_url!r}, "
        f"region_name={s3_server.region!r}, aws_credentials=creds).save('moto-results', overwrite=True)\n",
    )
    procs.run("bash", "deployments/create_pools.sh")
    procs.run(prefect, "--no-prompt", "deploy", "--all", timeout=180)
    procs.start("worker-qcos", "bash", "deployments/start_worker.sh", "qcos")
    procs.start("worker-cloud-qpu", "bash", "deployments/start_worker.sh", "cloud-qpu")
    return procs, api, s3_bucket


def _stored_result(s3_server: Any, bucket: str, name: str) -> dict[str, Any]:
    """The result a run named ``name`` wrote to the bucket (``result.json`` under ``qcos/runs/``)."""
    s3 = s3_server.client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="qcos/runs/").get("Contents", [])]
    stored = [json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys
              if k.endswith("/result.json")]  # fmt: skip
    return next(r for r in stored if r["name"] == name)


def _run_circuit(api: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Start run-circuit through the API, as the UI's Run button does, and wait for it."""
    deployment = _api("GET", f"{api}/deployments/name/run-circuit/run-circuit", timeout=10).json()
    created = _api(
        "POST",
        f"{api}/deployments/{deployment['id']}/create_flow_run",
        json={"parameters": {"params": parameters}},
        timeout=10,
    )
    assert created.status_code in (200, 201), created.text
    return _wait_for_flow_run(api, created.json()["id"])


def test_ui_triggered_run_lands_in_s3(deployed: tuple[_Processes, str, str], s3_server: Any) -> None:
    procs, api, s3_bucket = deployed

    # a cluster where one node group is served by the cloud-qpu pool: its shards go through the
    # execute-shards/cloud-qpu deployment, the rest run in the run-circuit flow itself
    cluster = procs.logs / "cluster.yaml"
    cluster.write_text(
        "nodes:\n"
        "  - provider: local_cpu\n    n_nodes: 1\n    max_qubits: 8\n"
        "  - provider: local_cpu\n    name: remote\n    n_nodes: 1\n    max_qubits: 8\n    host: qpu-site\n"
        "    work_pool: cloud-qpu\n"
    )
    qasm = (REPO / "examples" / "nightly" / "bell_pairs.qasm").read_text()
    run = _run_circuit(
        api,
        {"circuit": qasm, "shots": 3000, "seed": 11, "cluster": str(cluster), "storage": "moto-results",
         "strategy": "partition", "name": "e2e"},
    )  # fmt: skip
    logs = {p.name: p.read_text(errors="replace")[-2500:] for p in procs.logs.glob("worker-*.log")}
    assert run["state"]["type"] == "COMPLETED", f"{run['state']}\n{logs}"

    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.key,
        aws_secret_access_key=s3_server.secret,
        region_name=s3_server.region,
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="qcos/runs/").get("Contents", [])]
    results = [k for k in keys if k.endswith("/result.json") and json.loads(
        s3.get_object(Bucket=s3_bucket, Key=k)["Body"].read())["name"] == "e2e"]  # fmt: skip
    assert len(results) == 1, keys
    run_dir = results[0].rsplit("/", 1)[0]
    assert f"{run_dir}/counts.parquet" in keys and f"{run_dir}/plan.json" in keys
    stored = json.loads(s3.get_object(Bucket=s3_bucket, Key=results[0])["Body"].read())
    assert sum(stored["counts"].values()) == 3000
    assert stored["strategy"] == "partition"
    nodes = {r["node_id"] for r in stored["shard_results"]}
    assert "remote-0" in nodes and "local_cpu-0" in nodes  # one pool-routed shard, one in-flow
    # the pool ran as its own deployment's flow run
    children = _api(
        "POST", f"{api}/flow_runs/filter", json={"flow_runs": {"name": {"like_": "cloud-qpu-"}}}, timeout=10
    ).json()
    assert children and all(c["state"]["type"] == "COMPLETED" for c in children)
    # no secret in any stored object
    for key in keys:
        body = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
        assert s3_server.secret.encode() not in body


def test_cut_subexperiments_reach_the_pool_and_a_rerun_after_a_failure_pays_once(
    deployed: tuple[_Processes, str, str], s3_server: Any
) -> None:
    """A connected 8-qubit circuit on 5-qubit HTTP QPU nodes served by the cloud-qpu pool: its cut
    subexperiments are shards of the plan, sent to execute-shards/cloud-qpu (a real worker) and
    submitted to the reference server, which counts what a client would pay for. The first run fails
    while polling (the service's job endpoint errs); a re-run of the same seeded spec re-attaches
    through the ledger in S3: one job per distinct subexperiment in all."""
    procs, api, s3_bucket = deployed
    app = create_app(AerBackend(max_qubits=6), run_async=True)
    real_get = app.state.jobs.get
    failing = {"on": True}

    def get(job_id: str) -> Any:
        if failing["on"]:
            raise RuntimeError("job store unavailable")  # the server answers 500
        return real_get(job_id)

    app.state.jobs.get = get
    with serve_in_background(app) as url:
        cluster = procs.logs / "rest.yaml"
        cluster.write_text(
            "nodes:\n"
            f"  - provider: custom_rest\n    base_url: {url}\n    n_nodes: 2\n    max_qubits: 5\n"
            "    work_pool: cloud-qpu\n"
        )
        qasm = (REPO / "examples" / "nightly" / "ghz8.qasm").read_text()
        parameters = {"circuit": qasm, "shots": 2000, "seed": 5, "cluster": str(cluster), "storage": "moto-results",
                      "mode": "live", "name": "e2e-cut"}  # fmt: skip
        first = _run_circuit(api, parameters)
        assert first["state"]["type"] == "FAILED", first["state"]
        paid = app.state.jobs.submissions
        assert paid >= 1
        failing["on"] = False
        second = _run_circuit(api, parameters)
        logs = {p.name: p.read_text(errors="replace")[-2500:] for p in procs.logs.glob("worker-*.log")}
        assert second["state"]["type"] == "COMPLETED", f"{second['state']}\n{logs}"
    result = _stored_result(s3_server, s3_bucket, "e2e-cut")
    assert result["strategy"] == "cut" and result["reconstructed"] and sum(result["counts"].values()) == 2000
    subexperiments = [s for s in result["plan"]["shards"] if s.get("block") is not None]
    assert len(subexperiments) == len(result["plan"]["shards"]) >= 2
    assert app.state.jobs.submissions == len(subexperiments)  # a job per distinct subexperiment, never twice
    top = sorted(result["counts"].items(), key=lambda kv: -kv[1])[:2]
    assert {k for k, _ in top} == {"00000000", "11111111"}


def test_target_precision_rounds_reach_the_pool_each_round_a_child_run_of_its_own(
    deployed: tuple[_Processes, str, str], s3_server: Any
) -> None:
    """Expectation values to a target precision on HTTP QPU nodes of the cloud-qpu pool: the pilot
    and every later round go to execute-shards/cloud-qpu (a real worker) as child runs of their own,
    each round's shards submitted to the reference server once."""
    procs, api, s3_bucket = deployed
    app = create_app(AerBackend(max_qubits=6), run_async=True)
    with serve_in_background(app) as url:
        cluster = procs.logs / "rest-rounds.yaml"
        cluster.write_text(
            "nodes:\n"
            f"  - provider: custom_rest\n    base_url: {url}\n    n_nodes: 2\n    max_qubits: 5\n"
            "    work_pool: cloud-qpu\n"
        )
        circuit = chain(8, seed=1, measure=False)
        parameters = {"circuit": qasm2.dumps(circuit), "shots": 2000, "seed": 7, "cluster": str(cluster),
                      "storage": "moto-results", "mode": "live", "name": "e2e-rounds", "observables": ["Z" * 8],
                      "target_precision": 0.03}  # fmt: skip
        run = _run_circuit(api, parameters)
        logs = {p.name: p.read_text(errors="replace")[-2500:] for p in procs.logs.glob("worker-*.log")}
        assert run["state"]["type"] == "COMPLETED", f"{run['state']}\n{logs}"
    result = _stored_result(s3_server, s3_bucket, "e2e-rounds")
    report = result["precision"]
    assert len(report["rounds"]) >= 2, report  # a pilot, then at least one round of new shards
    shards = len(result["plan"]["shards"]) + len(report["shards"])
    assert app.state.jobs.submissions == shards  # every round's shards ran, each once
    exact = Statevector(circuit).expectation_value(SparsePauliOp("Z" * 8)).real
    assert report["reached"] and abs(result["expectation_values"][0] - exact) <= 4 * result["standard_errors"][0]


def test_an_interval_schedule_fires_and_the_run_completes(deployed: tuple[_Processes, str, str]) -> None:
    """The scheduler creates runs from a schedule and a worker completes them (with SQLAlchemy 2.1
    prefect 3.8's scheduler failed every loop and no schedule ever fired)."""
    procs, api, _ = deployed
    deployment = _api("GET", f"{api}/deployments/name/nightly-benchmarks/nightly", timeout=10).json()
    created = _api(
        "POST",
        f"{api}/deployments/{deployment['id']}/schedules",
        json=[{"schedule": {"interval": 10.0}, "active": True, "parameters": {"params": {"shots": 128}}}],
        timeout=10,
    )
    assert created.status_code in (200, 201), created.text
    schedule_id = created.json()[0]["id"]
    deadline = time.monotonic() + 180
    run = None
    try:
        while time.monotonic() < deadline and run is None:
            runs = _api(
                "POST",
                f"{api}/flow_runs/filter",
                json={"deployments": {"id": {"any_": [deployment["id"]]}}, "flow_runs": {"state": {"type": {
                    "any_": ["COMPLETED", "FAILED", "CRASHED"]}}}},
                timeout=10,
            ).json()  # fmt: skip
            scheduled = [r for r in runs if r.get("auto_scheduled")]
            run = scheduled[0] if scheduled else None
            time.sleep(2)
    finally:
        _api("DELETE", f"{api}/deployments/{deployment['id']}/schedules/{schedule_id}", timeout=10)
    logs = {p.name: p.read_text(errors="replace")[-2000:] for p in procs.logs.glob("*.log")}
    assert run is not None, f"no scheduled run finished in 180 s\n{logs.get('server.log', '')}"
    assert run["state"]["type"] == "COMPLETED", f"{run['state']}\n{logs}"
    server_log = (procs.logs / "server.log").read_text(errors="replace")
    assert "Can't evaluate bulk DML statement" not in server_log


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def test_runs_of_a_dead_worker_are_marked_crashed_and_a_stuck_cancel_completes(
    deployed: tuple[_Processes, str, str],
) -> None:
    """A worker and its flow processes are killed (SIGKILL) while two runs wait on a QPU: the shipped
    automations mark the one left alone Crashed (so Retry works) and finish the Cancel asked of the
    other, instead of "Running" and "Cancelling" forever."""
    import threading

    procs, api, _ = deployed
    procs.run(str(BIN / "python"), "deployments/automations.py", "--within", "40")
    _api("POST", f"{api}/work_pools/", json={"name": "crash", "type": "process"}, timeout=10)
    flow = _api("GET", f"{api}/flows/name/run-circuit", timeout=10).json()
    deployment = _api(
        "POST",
        f"{api}/deployments/",
        json={
            "name": "crash", "flow_id": flow["id"], "work_pool_name": "crash",
            "entrypoint": "flows/run_circuit.py:run_circuit", "path": str(REPO),
            "pull_steps": [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}],
            "job_variables": {"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}},
        },
        timeout=10,
    ).json()  # fmt: skip
    gate = threading.Event()

    class Held(AerBackend):
        def run(self, circuit: Any, shots: int, seed: int | None) -> dict[str, int]:
            gate.wait(timeout=300)
            return super().run(circuit, shots, seed)

    app = create_app(Held(max_qubits=6), run_async=True)
    worker = procs.start("worker-crash", "bash", "deployments/start_worker.sh", "crash")
    with serve_in_background(app) as url:
        cluster = procs.logs / "held.yaml"
        cluster.write_text(
            f"nodes:\n  - provider: custom_rest\n    base_url: {url}\n    n_nodes: 2\n    max_qubits: 6\n"
        )
        qasm = (REPO / "examples" / "nightly" / "bell_pairs.qasm").read_text()
        ids = []
        for seed, name in enumerate(("crash-a", "crash-b")):
            params = {"circuit": qasm, "shots": 100, "seed": seed, "cluster": str(cluster), "mode": "live",
                      "name": name, "storage": (procs.logs / "crash").as_uri(), "strategy": "whole"}  # fmt: skip
            made = _api(
                "POST",
                f"{api}/deployments/{deployment['id']}/create_flow_run",
                json={"parameters": {"params": params}},
                timeout=10,
            )
            assert made.status_code in (200, 201), made.text
            ids.append(made.json()["id"])
        # both runs wait on their QPU jobs and have sent a heartbeat
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            beats = _api(
                "POST",
                f"{api}/events/filter",
                json={"filter": {"event": {"name": ["prefect.flow-run.heartbeat"]},
                                 "any_resource": {"id": [f"prefect.flow-run.{i}" for i in ids]}}, "limit": 50},
                timeout=10,
            ).json().get("events", [])  # fmt: skip
            beating = {e["resource"]["prefect.resource.id"] for e in beats}
            if len(beating) == 2 and app.state.jobs.submissions >= 2:
                break
            time.sleep(2)
        else:
            log = (procs.logs / "worker-crash.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"the runs never waited on their jobs with heartbeats\n{log}")
        for pid in [*_descendants(worker.pid), worker.pid]:  # the worker and its flow processes die at once
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        cancel = _api(
            "POST",
            f"{api}/flow_runs/{ids[1]}/set_state",
            json={"state": {"type": "CANCELLING"}, "force": True},
            timeout=10,
        )
        assert cancel.status_code in (200, 201), cancel.text
        deadline = time.monotonic() + 150
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = {i: _api("GET", f"{api}/flow_runs/{i}", timeout=10).json()["state"]["type"] for i in ids}
            if states[ids[0]] == "CRASHED" and states[ids[1]] == "CANCELLED":
                break
            time.sleep(2)
        gate.set()
    assert states == {ids[0]: "CRASHED", ids[1]: "CANCELLED"}, states
