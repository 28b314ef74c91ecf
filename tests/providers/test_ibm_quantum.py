"""The ``ibm_quantum`` provider: EMULATED on the SDK's fake backends, LIVE against a local stand-in of IBM Quantum.

The LIVE tests run the real qiskit-ibm-runtime client (``QiskitRuntimeService``, its REST session and
IAM authentication, ``Batch``, ``SamplerV2``, ``RuntimeJobV2``, result decoding) against
:class:`IBMStandIn`, an HTTP server on 127.0.0.1 that speaks the endpoints the SDK uses (IAM token,
backends, sessions, jobs, results) and runs each job on the fake backend's noisy simulator. The SDK
reaches it through its own settings: ``url`` (an ``experimental`` URL is used as the API base as it
is), ``IAM_URL``, and ``QISKIT_FUNCTIONS_EXPERIMENTAL`` (which skips the IBM Cloud instance search).
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Clbit

pytest.importorskip("qiskit_ibm_runtime")

from qiskit.primitives import BackendSamplerV2
from qiskit.primitives.containers import BitArray, DataBin, PrimitiveResult, SamplerPubResult
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder
from qiskit_ibm_runtime.fake_provider import FakeManilaV2

from network.distributed_qvm import DistributedQVM, QVMMode, SweepSpec, VirtualCircuitSpec
from network.errors import (
    ClusterConfigError,
    ExecutionError,
    JobTimeoutError,
    NodeUnavailableError,
    ProviderResultError,
    TransientExecutionError,
)
from network.execution import RetryPolicy
from network.node_providers import (
    ClusterBuilder,
    JobStatus,
    NodeJob,
    QPUNodeSpec,
    get_provider,
)
from network.storage import ResultStore
from providers.ibm_quantum import IBMQuantumProvider, fake_backend_names, join_registers
from providers.prices import lookup_price
from tests.conftest import SWEEP_QASM
from tests.network.test_cut_pipeline import narrow_chain

TOKEN = "tok-SECRET-5f1d9c2e7a"
CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/abc123:inst-1::"
BACKEND = "ibm_manila"  # FakeManilaV2: 5 qubits, a fast noise model
FAST = RetryPolicy(attempts=2, base_delay=0.0, jitter=0.0, grace=0.0)
_ACCOUNT_VARS = ("QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_URL", "QISKIT_IBM_CHANNEL")


class Crash(BaseException):
    """Stands for the process dying (not an Exception: nothing may catch and handle it)."""


# ---------------------------------------------------------------------------------------------
# The stand-in
# ---------------------------------------------------------------------------------------------


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@dataclass
class _Job:
    payload: dict[str, Any]
    result: str
    status_reads: int = 0
    cancelled: bool = False


@dataclass
class IBMStandIn:
    """IBM Quantum's IAM and Runtime endpoints on 127.0.0.1, backed by FakeManilaV2's simulator.

    Jobs report Queued, then Running, and complete after ``polls_to_finish`` status reads; ``POST
    /jobs/{id}/cancel`` cancels one that has not completed (409 otherwise). Knobs: ``fail_jobs``
    (jobs end Failed), ``malformed`` (results lack the circuit's register), ``reject_jobs`` (POST
    /jobs answers 400).
    """

    polls_to_finish: int = 2
    fail_jobs: bool = False
    malformed: bool = False
    reject_jobs: bool = False
    jobs: dict[str, _Job] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self.fake = FakeManilaV2()
        self.lock = threading.Lock()
        self._ids = itertools.count()
        self._tokens: set[str] = set()

    @property
    def url(self) -> str:
        """The account URL: the SDK uses an ``experimental`` URL as the API base unchanged."""
        return f"http://127.0.0.1:{self.port}/experimental/api/v1"

    @property
    def submissions(self) -> int:
        return len(self.jobs)

    def reset(self) -> None:
        with self.lock:
            self.jobs.clear()
            self.sessions.clear()
            self.requests.clear()
        self.polls_to_finish = 2
        self.fail_jobs = self.malformed = self.reject_jobs = False

    @contextmanager
    def running(self) -> Iterator[IBMStandIn]:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()

    # -- endpoints ---------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: bytes, auth: str) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((method, path))
        if path == "/identity/token":
            # IAM issues a token for any key; only TOKEN's has access to the instance. (An IAM refusal would
            # stall the SDK's token manager for 60 s before its next try.)
            now = int(time.time())
            token = ".".join([_b64({"alg": "HS256"}), _b64({"iat": now, "exp": now + 3600}), "c2ln"])
            if parse_qs(body.decode()).get("apikey") == [TOKEN]:
                self._tokens.add(token)
            return 200, {"access_token": token, "refresh_token": "r", "token_type": "Bearer", "expires_in": 3600}
        if auth.removeprefix("Bearer ") not in self._tokens:
            return 401, {"errors": [{"message": "Unauthorized", "code": 1000}]}
        route = path.removeprefix("/experimental/api/v1")
        if route == "/backends":
            return 200, {"devices": [{"name": BACKEND}]}
        if m := re.fullmatch(r"/backends/([^/]+)/(configuration|properties|status)", route):
            if m[1] != BACKEND:
                return 404, {"errors": [{"message": "backend not found", "code": 1216}]}
            return 200, self._backend_document(m[2])
        if route == "/instances/usage":
            return 200, {"usage_limit_reached": False}
        if route == "/sessions" and method == "POST":
            sid = f"batch-{next(self._ids)}"
            self.sessions[sid] = {**json.loads(body), "state": "open", "accepting_jobs": True}
            return 200, {"id": sid}
        if m := re.fullmatch(r"/sessions/([^/]+)(/close)?", route):
            session = self.sessions[m[1]]
            if method == "GET":
                return 200, {"id": m[1], **session}
            session.update(state="closed", accepting_jobs=False)
            return 204, None
        if route == "/jobs" and method == "POST":
            return self._submit(json.loads(body))
        if route == "/jobs":
            return 200, self._list_jobs(query)
        if (m := re.fullmatch(r"/jobs/([^/]+)/cancel", route)) and method == "POST":
            job = self.jobs.get(m[1])
            if job is None:
                return 404, {"errors": [{"message": f"Job {m[1]} not found", "code": 1291}]}
            if job.status_reads > self.polls_to_finish and not job.cancelled:
                return 409, {"errors": [{"message": "Job already completed", "code": 3204}]}
            job.cancelled = True
            return 204, None
        if m := re.fullmatch(r"/jobs/([^/]+)(/results)?", route):
            job = self.jobs.get(m[1])
            if job is None:
                return 404, {"errors": [{"message": f"Job {m[1]} not found", "code": 1291}]}
            if m[2]:
                return 200, job.result
            job.status_reads += 1
            return 200, self._job_document(m[1], job, with_params=query.get("exclude_params") != ["true"])
        return 404, {"errors": [{"message": f"no route {method} {path}", "code": 0}]}

    def _backend_document(self, kind: str) -> dict[str, Any]:
        if kind == "status":
            return {
                "backend_name": BACKEND,
                "backend_version": "1.0",
                "operational": True,
                "pending_jobs": 0,
                "status_msg": "active",
            }
        filename = self.fake.conf_filename if kind == "configuration" else self.fake.props_filename
        document = json.loads((Path(self.fake.dirname) / filename).read_text())
        return {**document, "backend_name": BACKEND}

    def _submit(self, payload: dict[str, Any]) -> tuple[int, Any]:
        if self.reject_jobs:
            return 400, {"errors": [{"message": "Circuit contains an instruction not in the target", "code": 1517}]}
        session = payload.get("session_id")
        if session is not None and not self.sessions[session]["accepting_jobs"]:
            return 400, {"errors": [{"message": f"Session {session} is closed", "code": 1217}]}
        params = json.loads(json.dumps(payload["params"]), cls=RuntimeDecoder)
        pubs = [tuple(pub) for pub in params["pubs"]]
        if self.malformed:
            bits = BitArray.from_samples(["1"] * pubs[0][2], num_bits=3)
            result: Any = PrimitiveResult([SamplerPubResult(DataBin(wrong=bits))])
        else:
            result = BackendSamplerV2(backend=self.fake, options={"seed_simulator": 11}).run(pubs).result()
        job_id = f"job-{next(self._ids)}"
        with self.lock:
            self.jobs[job_id] = _Job(payload, json.dumps(result, cls=RuntimeEncoder))
        return 200, {"id": job_id, "backend": BACKEND}

    def _job_document(self, job_id: str, job: _Job, *, with_params: bool) -> dict[str, Any]:
        if job.cancelled:
            state = {"status": "Cancelled"}
        elif self.fail_jobs:
            state = {"status": "Failed", "reason": "Job exceeded the circuit depth limit", "reason_code": 1519}
        elif job.status_reads <= self.polls_to_finish:
            state = {"status": "Queued" if job.status_reads == 1 else "Running"}
        else:
            state = {"status": "Completed"}
        document = {
            "id": job_id,
            "backend": BACKEND,
            "state": state,
            "status": state["status"],
            "program": {"id": job.payload["program_id"]},
            "session_id": job.payload.get("session_id"),
            "tags": job.payload.get("tags", []),
            "created": "2025-06-01T00:00:00Z",
        }
        if with_params:
            document["params"] = job.payload["params"]
        return document

    def _list_jobs(self, query: dict[str, list[str]]) -> dict[str, Any]:
        tags = set(query.get("tags", []))
        backend = query.get("backend", [None])[0]
        found = [
            self._job_document(jid, job, with_params=False)
            for jid, job in reversed(self.jobs.items())
            if tags <= set(job.payload.get("tags", [])) and backend in (None, job.payload.get("backend"))
        ]
        limit = int(query.get("limit", ["20"])[0])
        return {"jobs": found[:limit], "count": len(found)}


def _handler(state: IBMStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, payload = state.handle(
                self.command, parts.path, parse_qs(parts.query), body, self.headers.get("Authorization", "")
            )
            data = b"" if payload is None else (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

    return Handler


@pytest.fixture(scope="module")
def server() -> Iterator[IBMStandIn]:
    with IBMStandIn().running() as running:
        yield running


@pytest.fixture
def standin(server: IBMStandIn, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> IBMStandIn:
    """The stand-in, reset, with the SDK's account variables pointing at it and no saved account."""
    server.reset()
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("IAM_URL", f"http://127.0.0.1:{server.port}")
    monkeypatch.setenv("QISKIT_FUNCTIONS_EXPERIMENTAL", "1")
    monkeypatch.setenv("QISKIT_IBM_TOKEN", TOKEN)
    monkeypatch.setenv("QISKIT_IBM_INSTANCE", CRN)
    monkeypatch.setenv("QISKIT_IBM_URL", server.url)
    monkeypatch.setenv("QISKIT_IBM_CHANNEL", "ibm_quantum_platform")
    return server


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _bell() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def _bell_pairs(n: int) -> QuantumCircuit:
    """``n`` independent Bell pairs, measured with ``measure_all`` (one register over all pairs)."""
    qc = QuantumCircuit(2 * n)
    for k in range(n):
        qc.h(2 * k)
        qc.cx(2 * k, 2 * k + 1)
    qc.measure_all()
    return qc


def _live_node(provider: IBMQuantumProvider, **options: Any) -> QPUNodeSpec:
    return provider.prepare(provider.build_nodes(backend=BACKEND, **options)[0], QVMMode.LIVE)


def _wait(provider: IBMQuantumProvider, job: NodeJob, spec: QPUNodeSpec) -> tuple[NodeJob, list[JobStatus]]:
    seen = [job.status]
    while not job.status.done:
        job = provider.poll(job, spec)
        seen.append(job.status)
    return job, seen


def _correlated(counts: dict[str, int]) -> float:
    """Share of shots where each Bell pair (bits 2k, 2k+1) agrees."""

    def agree(key: str) -> bool:
        bits = key[::-1]
        return all(bits[i] == bits[i + 1] for i in range(0, len(bits), 2))

    return sum(n for k, n in counts.items() if agree(k)) / sum(counts.values())


# ---------------------------------------------------------------------------------------------
# Cluster building and prices
# ---------------------------------------------------------------------------------------------


def test_nodes_take_width_family_and_price_from_the_backends_fake() -> None:
    provider = get_provider("ibm_quantum")
    eagle = provider.build_nodes(n_nodes=2, backend="ibm_brisbane")
    heron = provider.build_nodes(target="ibm_torino", cost_per_second=2.5, tags=["prod"])[0]
    assert [n.node_id for n in eagle] == ["ibm_quantum-0", "ibm_quantum-1"]
    assert (eagle[0].max_qubits, eagle[0].method, eagle[0].device, eagle[0].exact) == (127, "ibm_eagle", "QPU", True)
    price = lookup_price("ibm_quantum", "ibm_eagle")
    assert price is not None and eagle[0].cost_per_second == price.per_second > 0
    assert (heron.max_qubits, heron.method, heron.cost_per_second, heron.tags) == (133, "ibm_heron", 2.5, ("prod",))
    assert heron.options == {"backend": "ibm_torino", "optimization_level": 1, "execution_mode": "batch"}
    assert "ibm_brisbane" in fake_backend_names() and "ibm_manila" in fake_backend_names()


def test_backends_without_a_fake_need_a_width_and_cost_nothing_unless_priced(caplog: pytest.LogCaptureFixture) -> None:
    provider = IBMQuantumProvider()
    with pytest.raises(ClusterConfigError, match=r"give max_qubits=.*ibm_brisbane"):
        provider.build_nodes(backend="ibm_nowhere")
    with caplog.at_level(logging.WARNING, logger="providers.ibm_quantum"):
        node = provider.build_nodes(backend="ibm_nowhere", max_qubits=156, emulator="fake_manila")[0]
    assert (node.max_qubits, node.cost_per_second, node.method) == (156, 0.0, "ibm_qpu")
    assert "no list price" in caplog.text
    # the emulator is narrower than the declared width: the emulated node says so
    emulated = provider.prepare(node, QVMMode.EMULATED)
    assert emulated.max_qubits == 5 and emulated.emulates == "fake_manila (noise model of ibm_nowhere)"
    with pytest.raises(NodeUnavailableError, match=r"no fake backend for 'ibm_nowhere'.*ibm_brisbane"):
        provider.prepare(provider.build_nodes(backend="ibm_nowhere", max_qubits=10)[0], QVMMode.EMULATED)


def test_bad_arguments_are_rejected_without_echoing_values() -> None:
    provider = IBMQuantumProvider()
    with pytest.raises(ClusterConfigError, match="needs backend="):
        provider.build_nodes()
    with pytest.raises(ClusterConfigError, match="optimization_level must be"):
        provider.build_nodes(backend=BACKEND, optimization_level=5)
    with pytest.raises(ClusterConfigError, match="execution_mode must be"):
        provider.build_nodes(backend=BACKEND, options={"execution_mode": "session"})
    with pytest.raises(ClusterConfigError, match="unknown option"):
        provider.build_nodes(backend=BACKEND, options={"shots": 5})
    with pytest.raises(ClusterConfigError) as info:
        ClusterBuilder().add("ibm_quantum", backend=BACKEND, token=TOKEN).build()
    assert "IBMQuantumCredentials" in str(info.value) and TOKEN not in str(info.value)


# ---------------------------------------------------------------------------------------------
# EMULATED: fake backends with their noise models
# ---------------------------------------------------------------------------------------------


def test_emulated_bell_pair_runs_on_the_fake_with_its_noise() -> None:
    registry = ClusterBuilder().add("ibm_quantum", backend=BACKEND).build()
    qvm = DistributedQVM(registry, mode=QVMMode.EMULATED, shots=2000)
    result = qvm.run(VirtualCircuitSpec(circuit_object=_bell(), seed=5))
    assert qvm.run(VirtualCircuitSpec(circuit_object=_bell(), seed=5)).counts == result.counts  # seeded
    assert sum(result.counts.values()) == 2000
    assert 0.85 < _correlated(result.counts) < 1.0  # the noise model flips a few shots
    assert abs(result.counts.get("00", 0) - result.counts.get("11", 0)) < 300
    assert result.emulated and any("fake_manila (noise model of ibm_manila)" in n for n in result.notes)


def test_bit_order_and_registers_follow_qiskit() -> None:
    provider = IBMQuantumProvider()
    node = provider.prepare(provider.build_nodes(backend=BACKEND)[0], QVMMode.EMULATED)
    x0 = QuantumCircuit(2, 2)
    x0.x(0)
    x0.measure([0, 1], [0, 1])
    # three registers declared out of clbit order, and a loose clbit
    a, b = ClassicalRegister(1, "a"), ClassicalRegister(2, "b")
    loose = Clbit()
    mixed = QuantumCircuit(QuantumRegister(4), [loose])
    mixed.add_register(b)
    mixed.add_register(a)
    mixed.x([1, 3])
    mixed.measure([0, 1, 2, 3], [a[0], b[0], b[1], loose])  # clbits: loose=0, b0=1, b1=2, a0=3
    assert [mixed.find_bit(c).index for c in (loose, b[0], b[1], a[0])] == [0, 1, 2, 3]
    counts = provider.execute_batch([x0, mixed], [400, 400], node, seeds=[3, 3])
    assert max(counts[0], key=counts[0].__getitem__) == "01"
    # q1 -> b0 (clbit 1), q3 -> loose (clbit 0): key over clbits 3..0 is "0011"
    assert max(counts[1], key=counts[1].__getitem__) == "0011"


def test_join_registers_places_each_register_bit_on_its_clbit() -> None:
    data = DataBin(
        hi=BitArray.from_samples(["10", "10", "01"], num_bits=2), lo=BitArray.from_samples(["1", "0", "1"], num_bits=1)
    )
    layout = (("hi", (3, 1)), ("lo", (0,)))  # hi[0] -> clbit 3, hi[1] -> clbit 1; clbit 2 unmeasured
    assert join_registers(data, layout, width=4, shots=3, node_id="n") == {"0011": 1, "0010": 1, "1001": 1}
    with pytest.raises(ProviderResultError, match="no data for classical register 'c'"):
        join_registers(data, (("c", (0,)),), width=1, shots=3, node_id="n")
    with pytest.raises(ProviderResultError, match="returned 3 shots for register 'lo', expected 4"):
        join_registers(data, (("lo", (0,)),), width=1, shots=4, node_id="n")


def test_emulated_estimator_on_the_fake() -> None:
    provider = IBMQuantumProvider()
    node = provider.prepare(provider.build_nodes(backend=BACKEND)[0], QVMMode.EMULATED)
    values, errors = provider.estimate(_bell(), ["ZZ", "XX", "ZI"], node, precision=0.02, seed=1)
    assert values[0] > 0.8 and values[1] > 0.8 and abs(values[2]) < 0.15
    assert all(0 < e < 0.05 for e in errors)


# ---------------------------------------------------------------------------------------------
# LIVE: the real SDK against the stand-in
# ---------------------------------------------------------------------------------------------


def test_live_submit_poll_result_and_attach_by_id(standin: IBMStandIn) -> None:
    provider = IBMQuantumProvider()
    node = _live_node(provider, max_execution_time=60)
    assert node.emulates is None and node.max_qubits == 5
    x0 = QuantumCircuit(2, 2)
    x0.h(1)
    x0.x(0)
    x0.measure([0, 1], [0, 1])
    job = provider.submit(x0, 300, node, seed=1, job_key="run-a/0")
    assert job.job_id in standin.jobs and job.status is JobStatus.QUEUED
    done, seen = _wait(provider, job, node)
    assert seen[-3:] == [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.COMPLETED]
    assert done.counts is not None and sum(done.counts.values()) == 300
    assert sum(n for k, n in done.counts.items() if k.endswith("1")) > 270  # bit 0 is rightmost
    # the ISA circuit of the backend went out: only its basis gates, on its 5 physical qubits
    payload = standin.jobs[job.job_id].payload
    ((circuit, _, shots),) = json.loads(json.dumps(payload["params"]["pubs"]), cls=RuntimeDecoder)
    assert shots == 300 and circuit.num_qubits == 5
    assert set(circuit.count_ops()) <= {"rz", "sx", "x", "cx", "measure", "barrier"} and "h" not in circuit.count_ops()
    assert {"qcos", "qcos-node:ibm_quantum-0", "qcos-job:run-a/0"} <= set(payload["tags"])
    assert payload["cost"] == 60  # max_execution_time caps the QPU time the job may bill
    # a fresh provider (a new process) re-attaches from the id alone and reads the same counts
    fresh = IBMQuantumProvider()
    again = fresh.attach(job.job_id, _live_node(fresh))
    assert again.status is JobStatus.COMPLETED and again.counts == done.counts
    with pytest.raises(LookupError):
        fresh.attach("job-unknown", node)
    assert standin.submissions == 1


def test_live_shards_share_one_batch_and_a_closed_batch_is_replaced(standin: IBMStandIn) -> None:
    provider = IBMQuantumProvider()
    registry = ClusterBuilder().add(provider, n_nodes=3, backend=BACKEND, max_qubits=2).build()
    spec = VirtualCircuitSpec(circuit_object=_bell_pairs(3), seed=3, strategy="partition")
    result = DistributedQVM(registry, mode=QVMMode.LIVE, shots=500).run(spec)
    assert len(result.plan.shards) == 3 == standin.submissions
    assert sum(result.counts.values()) == 500 and _correlated(result.counts) > 0.8
    assert len(standin.sessions) == 1 and next(iter(standin.sessions.values()))["mode"] == "batch"
    assert {job.payload["session_id"] for job in standin.jobs.values()} == set(standin.sessions)
    assert {r.job_id for r in result.shard_results} == set(standin.jobs)
    # the service closes the batch (its max_time is over): the next job opens a new one
    (first,) = standin.sessions
    standin.sessions[first].update(state="closed", accepting_jobs=False)
    again = DistributedQVM(registry, mode=QVMMode.LIVE, shots=100).run(
        VirtualCircuitSpec(circuit_object=_bell(), seed=4)
    )
    (second,) = set(standin.sessions) - {first}
    assert standin.submissions == 3 + len(again.plan.shards)
    assert {standin.jobs[r.job_id].payload["session_id"] for r in again.shard_results} == {second}
    provider.close()
    assert all(s["state"] == "closed" for s in standin.sessions.values())


def test_job_mode_submits_without_a_batch(standin: IBMStandIn) -> None:
    provider = IBMQuantumProvider()
    registry = ClusterBuilder().add(provider, backend=BACKEND, execution_mode="job").build()
    DistributedQVM(registry, mode=QVMMode.LIVE, shots=100).run(VirtualCircuitSpec(circuit_object=_bell(), seed=1))
    assert standin.submissions == 1 and not standin.sessions
    assert [job.payload.get("session_id") for job in standin.jobs.values()] == [None]


def test_crash_then_rerun_reattaches_and_submits_each_shard_once(
    standin: IBMStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ResultStore((tmp_path / "store").as_uri())
    spec = VirtualCircuitSpec(circuit_object=_bell_pairs(3), seed=7, strategy="partition")
    dying = IBMQuantumProvider()
    registry = ClusterBuilder().add(dying, n_nodes=3, backend=BACKEND, max_qubits=2).build()

    def crash(job: NodeJob, node: QPUNodeSpec) -> NodeJob:
        raise Crash()

    monkeypatch.setattr(dying, "poll", crash)
    with pytest.raises(Crash):
        DistributedQVM(registry, mode=QVMMode.LIVE, shots=200, store=store, max_workers=1).run(spec)
    assert standin.submissions == 1
    crashed = set(standin.jobs)
    # a new process: a fresh provider with the same cluster and store
    fresh = IBMQuantumProvider()
    registry = ClusterBuilder().add(fresh, n_nodes=3, backend=BACKEND, max_qubits=2).build()
    result = DistributedQVM(registry, mode=QVMMode.LIVE, shots=200, store=store, max_workers=1).run(spec)
    assert standin.submissions == 3 == len(result.plan.shards)
    ledger = store.read_ledger(result.run_key)
    assert [e.status.value for e in ledger] == ["COMPLETED"] * 3
    assert {e.job_id for e in ledger} == set(standin.jobs) and crashed <= {e.job_id for e in ledger}
    assert all(e.attempts == 1 for e in ledger)
    assert _correlated(result.counts) > 0.7


def test_a_job_already_tagged_with_the_key_is_reattached_not_paid_twice(standin: IBMStandIn) -> None:
    provider = IBMQuantumProvider()
    node = _live_node(provider)
    first = provider.submit(_bell(), 100, node, job_key="run-b/2")
    # the response was lost and the executor retries in another process
    fresh = IBMQuantumProvider()
    second = fresh.submit(_bell(), 100, _live_node(fresh), job_key="run-b/2")
    assert second.job_id == first.job_id and standin.submissions == 1
    done, _ = _wait(fresh, second, node)
    assert done.counts is not None and sum(done.counts.values()) == 100
    # a failed job with the key is not reused
    standin.fail_jobs = True
    failed, _ = _wait(provider, provider.submit(_bell(), 100, node, job_key="run-c/0"), node)
    assert failed.status is JobStatus.FAILED and "circuit depth limit" in (failed.error or "")
    provider.submit(_bell(), 100, node, job_key="run-c/0")
    assert standin.submissions == 3


def test_live_failures_are_permanent_and_named(standin: IBMStandIn) -> None:
    provider = IBMQuantumProvider()
    registry = ClusterBuilder().add(provider, backend=BACKEND).build()
    spec = VirtualCircuitSpec(circuit_object=_bell(), seed=2)
    standin.reject_jobs = True
    with pytest.raises(ExecutionError, match="not in the target") as info:
        DistributedQVM(registry, mode=QVMMode.LIVE, shots=100, retry=FAST).run(spec)
    assert not isinstance(info.value, TransientExecutionError) and "ibm_quantum-0" in str(info.value)
    standin.reject_jobs, standin.fail_jobs = False, True
    with pytest.raises(ExecutionError, match="circuit depth limit"):
        DistributedQVM(registry, mode=QVMMode.LIVE, shots=100, retry=FAST).run(spec)
    assert standin.submissions == 1  # the rejected POST made no job; the failed job was not retried


def test_malformed_results_raise_provider_result_error(standin: IBMStandIn) -> None:
    standin.malformed = True
    registry = ClusterBuilder().add("ibm_quantum", backend=BACKEND).build()
    with pytest.raises(ProviderResultError, match=r"ibm_quantum-0.*no data for classical register 'meas'"):
        DistributedQVM(registry, mode=QVMMode.LIVE, shots=50, retry=FAST).run(
            VirtualCircuitSpec(circuit_object=_bell(), seed=1)
        )


def test_live_refuses_without_credentials_and_never_falls_back(
    standin: IBMStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in _ACCOUNT_VARS:
        monkeypatch.delenv(name)
    registry = ClusterBuilder().add("ibm_quantum", backend=BACKEND).build()
    with pytest.raises(NodeUnavailableError, match=r"LIVE mode needs IBM Quantum credentials.*never falls back"):
        DistributedQVM(registry, mode=QVMMode.LIVE, shots=10).run(VirtualCircuitSpec(circuit_object=_bell(), seed=1))
    assert standin.requests == []


def test_a_rejected_token_is_reported_without_the_token(
    standin: IBMStandIn, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "tok-WRONG-0b9e44c1"
    monkeypatch.setenv("QISKIT_IBM_TOKEN", wrong)
    registry = ClusterBuilder().add("ibm_quantum", backend=BACKEND).build()
    with caplog.at_level(logging.INFO), pytest.raises(NodeUnavailableError, match="not available") as info:
        DistributedQVM(registry, mode=QVMMode.LIVE, shots=10).run(VirtualCircuitSpec(circuit_object=_bell(), seed=1))
    assert wrong not in str(info.value) and wrong not in caplog.text
    assert not any(path.endswith("/jobs") for _, path in standin.requests)


def test_dry_run_contacts_nothing(standin: IBMStandIn) -> None:
    calls: list[str | None] = []

    def factory(credentials: str | None) -> Any:
        calls.append(credentials)
        raise AssertionError("DRY_RUN must not open a service")

    provider = IBMQuantumProvider(service_factory=factory)
    registry = ClusterBuilder().add(provider, n_nodes=2, backend="ibm_brisbane", credentials="ibm-prod").build()
    result = DistributedQVM(registry, mode=QVMMode.DRY_RUN, shots=1000).run(
        VirtualCircuitSpec(circuit_object=_bell(), seed=1)
    )
    assert result.counts == {} and result.plan.shards
    assert calls == [] and standin.requests == []


def test_injected_service_factory_gets_the_credentials_option(standin: IBMStandIn) -> None:
    from qiskit_ibm_runtime import QiskitRuntimeService

    asked: list[str | None] = []

    def factory(credentials: str | None) -> Any:
        asked.append(credentials)
        return QiskitRuntimeService(channel="ibm_quantum_platform", token=TOKEN, instance=CRN, url=standin.url)

    provider = IBMQuantumProvider(service_factory=factory)
    registry = ClusterBuilder().add(provider, n_nodes=2, backend=BACKEND, credentials="ibm-lab").build()
    result = DistributedQVM(registry, mode=QVMMode.LIVE, shots=100).run(
        VirtualCircuitSpec(circuit_object=_bell(), seed=1)
    )
    assert asked == ["ibm-lab"] and sum(result.counts.values()) == 100  # one service for both nodes


def test_secrets_stay_out_of_reprs_plans_results_and_logs(
    standin: IBMStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    provider = IBMQuantumProvider()
    registry = ClusterBuilder().add(provider, backend=BACKEND).build()
    with caplog.at_level(logging.INFO):
        result = DistributedQVM(registry, mode=QVMMode.LIVE, shots=100).run(
            VirtualCircuitSpec(circuit_object=_bell(), seed=1)
        )
    node = provider.prepare(registry.node("ibm_quantum-0"), QVMMode.LIVE)
    texts = [repr(provider), repr(node), json.dumps(result.plan.to_dict()), repr(result), caplog.text]
    texts += [json.dumps(r.to_dict()) for r in result.shard_results]
    assert all(TOKEN not in text for text in texts)


def test_transient_and_permanent_sdk_errors() -> None:
    from qiskit_ibm_runtime.api.exceptions import RequestsApiError
    from qiskit_ibm_runtime.exceptions import (
        IBMInputValueError,
        IBMNotAuthorizedError,
        IBMRuntimeError,
        RuntimeJobFailureError,
        RuntimeJobTimeoutError,
    )
    from requests.exceptions import ConnectionError as RequestsConnectionError

    def wrapped(status: int) -> IBMRuntimeError:
        # what QiskitRuntimeService._run raises for an HTTP error of POST /jobs
        try:
            try:
                raise RequestsApiError("boom", status)
            except RequestsApiError as ex:
                raise IBMRuntimeError(f"Failed to run program: {ex}") from None
        except IBMRuntimeError as outer:
            return outer

    provider = IBMQuantumProvider()
    transient = [
        RuntimeJobTimeoutError("timed out"),
        RequestsApiError("busy", 503),
        RequestsApiError("slow down", 429),
        RequestsApiError("no response"),
        RequestsConnectionError("reset"),
        wrapped(502),
        TimeoutError(),
    ]
    permanent = [
        IBMInputValueError("bad circuit"),
        IBMNotAuthorizedError("401"),
        RequestsApiError("not found", 404),
        wrapped(400),
        RuntimeJobFailureError("job failed"),
        ValueError("nope"),
    ]
    assert [provider.is_transient(e) for e in transient] == [True] * len(transient)
    assert [provider.is_transient(e) for e in permanent] == [False] * len(permanent)


@pytest.mark.usefixtures("prefect_harness")
def test_live_with_a_credentials_block(standin: IBMStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import SecretStr

    from blocks import IBMQuantumCredentials

    for name in _ACCOUNT_VARS:
        monkeypatch.delenv(name)
    IBMQuantumCredentials(token=SecretStr(TOKEN), instance=CRN, url=standin.url).save("ibm-standin", overwrite=True)
    registry = ClusterBuilder().add("ibm_quantum", backend=BACKEND, credentials="ibm-standin").build()
    result = DistributedQVM(registry, mode=QVMMode.LIVE, shots=100).run(
        VirtualCircuitSpec(circuit_object=_bell(), seed=1)
    )
    assert sum(result.counts.values()) == 100 and standin.submissions == 1
    missing = ClusterBuilder().add("ibm_quantum", backend=BACKEND, credentials="no-such-block").build()
    with pytest.raises(NodeUnavailableError, match="no-such-block"):
        DistributedQVM(missing, mode=QVMMode.LIVE, shots=10).run(VirtualCircuitSpec(circuit_object=_bell(), seed=1))


def test_unmeasured_circuits_have_one_empty_outcome() -> None:
    provider = IBMQuantumProvider()
    node = provider.prepare(provider.build_nodes(backend=BACKEND)[0], QVMMode.EMULATED)
    qc = QuantumCircuit(1)
    qc.h(0)
    job = provider.submit(qc, 10, node)
    assert job.status is JobStatus.COMPLETED and job.counts == {"": 10}
    assert provider.execute_batch([qc], [7], node, seeds=[None]) == [{"": 7}]


# ---------------------------------------------------------------------------------------------
# Several circuits per Sampler job
# ---------------------------------------------------------------------------------------------


def _pubs(standin: IBMStandIn, job_id: str) -> list[Any]:
    return list(json.loads(json.dumps(standin.jobs[job_id].payload["params"]["pubs"]), cls=RuntimeDecoder))


def test_cut_subexperiments_share_sampler_jobs_and_a_rerun_pays_nothing(standin: IBMStandIn, tmp_path: Path) -> None:
    store = ResultStore((tmp_path / "store").as_uri())
    spec = VirtualCircuitSpec(circuit_object=narrow_chain(6), seed=8, shots=2000)
    # one job per subexperiment: the count before batching
    single = ClusterBuilder().add(IBMQuantumProvider(), backend=BACKEND, max_qubits=4, circuits_per_job=1).build()
    before = DistributedQVM(single, mode=QVMMode.LIVE).run(spec)
    n_shards, jobs_before = len(before.plan.shards), standin.submissions
    assert n_shards > 4 and jobs_before == n_shards
    standin.reset()
    registry = ClusterBuilder().add(IBMQuantumProvider(), backend=BACKEND, max_qubits=4).build()
    result = DistributedQVM(registry, mode=QVMMode.LIVE, store=store).run(spec)
    # one job per shot count (Runtime deprecated PUBs of different shots in one job), all PUBs in it
    distinct = {s.shots for s in result.plan.shards}
    assert standin.submissions == len(distinct) < n_shards
    assert sorted(len(_pubs(standin, j)) for j in standin.jobs) == sorted(
        sum(s.shots == n for s in result.plan.shards) for n in distinct
    )
    assert all(len({pub[2] for pub in _pubs(standin, j)}) == 1 for j in standin.jobs)
    ledger = store.read_ledger(result.run_key)
    assert all(e.batch_index is not None for e in ledger) and len({e.job_id for e in ledger}) == len(distinct)
    assert result.reconstructed and sum(result.counts.values()) == sum(before.counts.values())
    # a re-run of the same spec re-attaches to the jobs: nothing is submitted or paid again
    again = DistributedQVM(ClusterBuilder().add(IBMQuantumProvider(), backend=BACKEND, max_qubits=4).build(),
                           mode=QVMMode.LIVE, store=store).run(spec)  # fmt: skip
    assert standin.submissions == len(distinct) and again.counts == result.counts


def test_sweep_bindings_share_jobs_within_circuits_per_job(standin: IBMStandIn, tmp_path: Path) -> None:
    registry = ClusterBuilder().add(IBMQuantumProvider(), backend=BACKEND, circuits_per_job=4).build()
    sweep = SweepSpec(qasm=SWEEP_QASM, grid={"theta": [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]}, shots=100, seed=2)
    result = DistributedQVM(registry, mode=QVMMode.LIVE, store=(tmp_path / "s").as_uri()).run_sweep(sweep)
    assert len(result.frame) == 7 and standin.submissions == 2  # 4 + 3 bindings
    assert sorted(len(_pubs(standin, j)) for j in standin.jobs) == [3, 4]


def test_a_multi_pub_job_keeps_each_circuits_registers_and_unmeasured_ones(standin: IBMStandIn) -> None:
    provider = IBMQuantumProvider()
    node = _live_node(provider)
    x1 = QuantumCircuit(2, 2)
    x1.x(1)
    x1.measure([0, 1], [0, 1])
    idle = QuantumCircuit(1)
    idle.h(0)
    job = provider.submit_many([x1, idle, _bell()], [100] * 3, node, seeds=[1, 2, 3], job_key="run-m/0-2")
    done, _ = _wait(provider, job, node)
    assert done.status is JobStatus.COMPLETED and done.counts is None and done.batch_counts is not None
    first, second, third = done.batch_counts
    assert sum(first.values()) == 100 and max(first, key=first.__getitem__) == "10"
    assert second == {"": 100} and sum(third.values()) == 100
    # another process re-attaches to the job from its id and reads the same three results
    fresh = IBMQuantumProvider()
    assert fresh.attach(job.job_id, _live_node(fresh)).batch_counts == done.batch_counts
    # and a repeated submission with the key is the same job
    assert provider.submit_many([x1, idle, _bell()], [100] * 3, node, seeds=[1, 2, 3],
                                job_key="run-m/0-2").job_id == job.job_id  # fmt: skip
    assert standin.submissions == 1


def test_a_job_past_its_timeout_is_cancelled_on_runtime(standin: IBMStandIn) -> None:
    standin.polls_to_finish = 10**6  # never completes
    registry = ClusterBuilder().add(IBMQuantumProvider(), backend=BACKEND, job_timeout=1.0).build()
    qvm = DistributedQVM(registry, mode=QVMMode.LIVE, shots=100, retry=FAST)
    with pytest.raises(JobTimeoutError, match="cancelled"):
        qvm.run(VirtualCircuitSpec(circuit_object=_bell(), seed=1))
    (job,) = standin.jobs.values()
    assert (
        job.cancelled and ("POST", f"/experimental/api/v1/jobs/{next(iter(standin.jobs))}/cancel") in standin.requests
    )
