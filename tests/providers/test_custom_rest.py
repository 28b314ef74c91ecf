"""The ``custom_rest`` provider against its reference server and against a scripted adversarial server.

Both servers run on 127.0.0.1 in this process: the reference server (FastAPI + uvicorn, backed by Aer)
for the protocol's happy paths, and a tiny ``http.server`` whose replies each test scripts for every
defect a real endpoint could return.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Clbit

from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import (
    ClusterConfigError,
    ExecutionError,
    JobTimeoutError,
    NodeUnavailableError,
    ProviderResultError,
    TransientExecutionError,
)
from network.execution import NodeFailedError, RetryPolicy
from network.node_providers import ClusterBuilder, JobStatus, NodeJob, QPUNodeSpec, QVMMode
from network.storage import ResultStore
from providers.aer import LocalCPUProvider
from providers.custom_rest import CustomRestProvider
from providers.custom_rest.client import EMULATOR, UnknownJobError, circuit_to_qasm
from providers.custom_rest.server import AerBackend, create_app, serve_in_background
from tests.providers.conformance import ProviderConformance
from tests.stats import assert_matches

FAST = RetryPolicy(attempts=2, base_delay=0.0, jitter=0.0, grace=0.0)
TOKEN = "tkn-5ecret-Qx7PzL9"
NODE = "custom_rest-0"


class Crash(BaseException):
    """Stands for the client process dying (nothing may catch it)."""


def bell() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def two_bells() -> QuantumCircuit:
    qc = QuantumCircuit(4)
    qc.h([0, 2])
    qc.cx(0, 1)
    qc.cx(2, 3)
    qc.measure_all()
    return qc


def live_node(url: str, **kwargs: Any) -> dict[str, Any]:
    """Build arguments declaring everything, so LIVE prepare reads no capabilities."""
    args: dict[str, Any] = {
        "base_url": url,
        "max_qubits": 4,
        "cost_per_shot": 0.0,
        "cost_per_task": 0.0,
        "cost_per_second": 0.0,
        "basis_gates": [],
    }
    return {**args, **kwargs}


class CountingBackend(AerBackend):
    """Aer that counts the capability documents it hands out."""

    def __init__(self, max_qubits: int, **kwargs: Any) -> None:
        super().__init__(max_qubits, **kwargs)
        self.capability_reads = 0

    def capabilities(self) -> dict[str, Any]:
        self.capability_reads += 1
        return super().capabilities()


class GatedBackend(AerBackend):
    """Aer that holds each job until ``gate`` opens, so QUEUED and RUNNING can be seen; ``runs``
    counts the jobs it ran."""

    def __init__(self) -> None:
        super().__init__(max_qubits=6)
        self.gate = threading.Event()
        self.runs = 0

    def run(self, circuit: QuantumCircuit, shots: int, seed: int | None) -> dict[str, int]:
        self.gate.wait(timeout=30)
        self.runs += 1
        return super().run(circuit, shots, seed)


@pytest.fixture
def reference() -> Iterator[Callable[..., Any]]:
    """Start reference servers: ``reference(backend=..., token=..., run_async=...) -> (url, app)``."""
    stack: list[Any] = []

    def start(backend: Any = None, **kwargs: Any) -> tuple[str, Any]:
        app = create_app(backend or AerBackend(max_qubits=6), **kwargs)
        context = serve_in_background(app)
        url = context.__enter__()
        stack.append((context, backend))
        return url, app

    yield start
    for context, backend in reversed(stack):
        if isinstance(backend, GatedBackend):
            backend.gate.set()
        context.__exit__(None, None, None)


# -- scripted adversarial server ------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted response.

    ``stall``: never answer. ``stream``: no Content-Length, the body runs until the connection closes.
    ``drip``: the body one byte at a time, slowly (each read is quick, the whole is not).
    ``drip_head``: the status line and headers one byte every 0.2 s, never ending (for 10 s at most).
    """

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    stall: bool = False
    stream: bool = False
    drip: bool = False
    drip_head: bool = False

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)  # when the request arrived


class Scripted:
    """An HTTP server whose replies come from ``script(method, path, body)``; it records every request."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.release = threading.Event()
        self.script: Callable[[str, str, Any], Reply] = lambda m, p, b: Reply(500, {"detail": "unscripted"})
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                owner.requests.append(Seen(self.command, self.path, dict(self.headers), body))
                reply = owner.script(self.command, self.path, body)
                if reply.stall:
                    owner.release.wait(timeout=20)
                    return
                if reply.drip_head:
                    head = f"HTTP/1.1 {reply.status} OK\r\nContent-Type: application/json\r\nX-Drip: ".encode()
                    stop = time.monotonic() + 10
                    try:
                        for byte in itertools.chain(head, itertools.repeat(ord("a"))):
                            if time.monotonic() > stop or owner.release.wait(0.2):
                                break
                            self.wfile.write(bytes([byte]))
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client gave up, as it should
                    self.close_connection = True
                    return
                data = reply.payload()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if not reply.stream:
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    step = 1 if reply.drip else 65536
                    for start in range(0, len(data), step):
                        self.wfile.write(data[start : start + step])
                        if reply.drip:
                            self.wfile.flush()
                            time.sleep(0.05)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading, as it should past its limit

            do_GET = do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    server = Scripted()
    yield server
    server.close()


def completed(counts: Any, job_id: str = "j-1") -> Reply:
    return Reply(200, {"job_id": job_id, "status": "COMPLETED", "counts": counts})


def assert_nothing_stored(root: Path) -> None:
    assert list(root.rglob("plan.json")), "the run never started"
    assert not list(root.rglob("shards/*.json"))
    assert not list(root.rglob("result.json"))


# -- happy paths through the reference server -------------------------------------------------------


def test_bell_pair_live_through_the_reference_server(reference: Any, tmp_path: Path) -> None:
    url, app = reference()
    registry = ClusterBuilder().add("custom_rest", base_url=url).build()
    store = ResultStore(tmp_path.as_uri())
    result = DistributedQVM(registry, mode=QVMMode.LIVE, shots=2000, store=store).run(
        VirtualCircuitSpec(circuit_object=bell(), seed=5)
    )
    assert set(result.counts) <= {"00", "11"} and sum(result.counts.values()) == 2000
    assert_matches(result.counts, {"00": 0.5, "11": 0.5})
    assert not result.emulated
    assert app.state.jobs.submissions == len(result.plan.shards) == 1
    [shard] = result.shard_results
    assert app.state.jobs.get(shard.job_id)["status"] == "COMPLETED"  # the server's own job id
    assert [e.status.value for e in store.read_ledger(result.run_key)] == ["COMPLETED"]
    # capabilities filled what the cluster file left out
    assert result.plan.nodes[0].max_qubits == 6


def test_capabilities_fill_only_what_the_cluster_file_leaves_out(reference: Any) -> None:
    backend = CountingBackend(5, basis_gates=["rz", "sx", "x", "cz"], cost_per_shot=0.01, cost_per_task=0.3)
    url, _ = reference(backend)
    registry = (
        ClusterBuilder()
        .add("custom_rest", name="auto", base_url=url)
        .add("custom_rest", name="declared", base_url=url, max_qubits=3, cost_per_task=1.0)
        .build()
    )
    qvm = DistributedQVM(registry, mode="live", shots=500)
    nodes = qvm.prepared_nodes()
    auto, declared = nodes["auto-0"], nodes["declared-0"]
    assert (auto.max_qubits, auto.cost_per_shot, auto.cost_per_task, auto.device) == (5, 0.01, 0.3, "QPU")
    assert auto.options["basis_gates"] == ["rz", "sx", "x", "cz"]
    assert (declared.max_qubits, declared.cost_per_shot, declared.cost_per_task) == (3, 0.01, 1.0)
    # the server refuses gates outside its basis; the client translates the circuit first
    with httpx.Client(base_url=url) as raw:
        refused = raw.post(
            "/run-circuit", json={"qasm": circuit_to_qasm(bell()), "shots": 10, "seed": 1, "job_key": "raw"}
        )
    assert refused.status_code == 400 and "h" in refused.json()["detail"]
    result = qvm.run(VirtualCircuitSpec(circuit_object=bell(), seed=2))
    assert set(result.counts) <= {"00", "11"} and sum(result.counts.values()) == 500
    # capabilities are read once per endpoint and provider, not once per node or run
    qvm.prepared_nodes()
    assert backend.capability_reads == 1


def test_idempotent_job_key_and_conflicting_reuse(reference: Any) -> None:
    url, app = reference()
    provider = CustomRestProvider()
    [node] = provider.build_nodes(**live_node(url))
    node = provider.prepare(node, QVMMode.LIVE)
    first = provider.submit(bell(), 100, node, seed=1, job_key="run-a/0")
    again = provider.submit(bell(), 100, node, seed=1, job_key="run-a/0")
    assert first.job_id == again.job_id and app.state.jobs.submissions == 1
    assert first.status is JobStatus.COMPLETED and sum((first.counts or {}).values()) == 100
    other = QuantumCircuit(2)
    other.x(0)
    other.measure_all()
    with pytest.raises(ExecutionError, match="HTTP 409: job_key was already used") as info:
        provider.submit(other, 100, node, seed=1, job_key="run-a/0")
    assert not provider.is_transient(info.value) and not isinstance(info.value, TransientExecutionError)
    assert app.state.jobs.submissions == 1
    provider.close()


def test_async_jobs_are_polled_and_reattached_from_their_id(reference: Any) -> None:
    backend = GatedBackend()
    url, app = reference(backend, run_async=True)
    provider = CustomRestProvider()
    [node] = provider.build_nodes(**live_node(url))
    job = provider.submit(bell(), 300, node, seed=4, job_key="async/0")
    assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING) and job.counts is None
    job = provider.poll(job, node)
    assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
    backend.gate.set()
    deadline = time.monotonic() + 30
    while not job.status.done and time.monotonic() < deadline:
        time.sleep(0.02)
        job = provider.poll(job, node)
    assert job.status is JobStatus.COMPLETED and sum((job.counts or {}).values()) == 300
    # a fresh provider (another process) re-attaches from the id alone
    fresh = CustomRestProvider()
    attached = fresh.attach(job.job_id, node)
    assert (attached.job_id, attached.status, attached.counts) == (job.job_id, JobStatus.COMPLETED, job.counts)
    with pytest.raises(LookupError, match="HTTP 404"):
        fresh.attach("no-such-job", node)
    assert app.state.jobs.submissions == 1
    # execute() waits for the job itself and validates the counts
    assert sum(fresh.execute(bell(), 50, node, seed=1).values()) == 50
    provider.close()
    fresh.close()


def test_crash_while_polling_then_rerun_reattaches(reference: Any, tmp_path: Path, monkeypatch: Any) -> None:
    backend = GatedBackend()
    url, app = reference(backend, run_async=True)
    registry = ClusterBuilder().add("custom_rest", n_nodes=2, base_url=url, max_qubits=2).build()
    provider = registry.provider(NODE)
    store = ResultStore(tmp_path.as_uri())
    spec = VirtualCircuitSpec(circuit_object=two_bells(), seed=11, strategy="partition")

    def die(*args: Any, **kwargs: Any) -> Any:
        raise Crash()

    monkeypatch.setattr(provider, "poll", die)
    with pytest.raises(Crash):
        DistributedQVM(registry, mode="live", shots=400, store=store, max_workers=1).run(spec)
    assert app.state.jobs.submissions == 1
    monkeypatch.undo()
    backend.gate.set()
    result = DistributedQVM(registry, mode="live", shots=400, store=store, max_workers=1).run(spec)
    assert len(result.plan.shards) == 2 == app.state.jobs.submissions
    assert set(result.counts) <= {"0000", "0011", "1100", "1111"} and sum(result.counts.values()) == 400
    ledger = store.read_ledger(result.run_key)
    assert [e.status.value for e in ledger] == ["COMPLETED"] * 2 and all(e.attempts == 1 for e in ledger)


def test_crash_after_the_server_accepted_but_before_the_ledger_knew(
    reference: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    url, app = reference()
    registry = ClusterBuilder().add("custom_rest", base_url=url).build()
    provider = registry.provider(NODE)
    real_submit = provider.submit
    store = ResultStore(tmp_path.as_uri())
    spec = VirtualCircuitSpec(circuit_object=bell(), seed=3)

    def submit_then_die(*args: Any, **kwargs: Any) -> Any:
        real_submit(*args, **kwargs)
        raise Crash()

    monkeypatch.setattr(provider, "submit", submit_then_die)
    with pytest.raises(Crash):
        DistributedQVM(registry, mode="live", shots=100, store=store).run(spec)
    monkeypatch.undo()
    result = DistributedQVM(registry, mode="live", shots=100, store=store).run(spec)
    # the ledger had no job id; the same job key made the server return the job it already ran
    assert app.state.jobs.submissions == 1 == len(result.plan.shards)


def test_bit_order_is_qiskits(reference: Any) -> None:
    url, _ = reference()
    registry = ClusterBuilder().add("custom_rest", base_url=url).build()
    qvm = DistributedQVM(registry, mode="live", shots=50)
    qc = QuantumCircuit(3, 3)
    qc.x(0)
    qc.measure([0, 1, 2], [0, 1, 2])
    assert qvm.run(VirtualCircuitSpec(circuit_object=qc, seed=1)).counts == {"001": 50}
    # several registers come back space-separated, as Qiskit prints them
    regs = QuantumCircuit(QuantumRegister(3, "q"), ClassicalRegister(2, "a"), ClassicalRegister(1, "b"))
    regs.x(2)
    regs.measure([0, 1, 2], [0, 1, 2])
    assert qvm.run(VirtualCircuitSpec(circuit_object=regs, seed=1)).counts == {"1 00": 50}


def _layouts() -> dict[str, QuantumCircuit]:
    """Deterministic circuits whose classical bits a QASM parser would number differently."""
    out = {}
    loose = [Clbit(), Clbit()]
    qc = QuantumCircuit(QuantumRegister(4, "q"), loose, ClassicalRegister(2, "c"))
    qc.x([0, 3])
    qc.measure([0, 1, 2, 3], [0, 1, 2, 3])
    out["loose bits before a register"] = qc
    bits = [Clbit() for _ in range(3)]
    qc = QuantumCircuit(QuantumRegister(3, "q"), bits, ClassicalRegister(name="r", bits=[bits[2], bits[0]]))
    qc.x(0)
    qc.measure([0, 1, 2], [0, 1, 2])
    out["register listing bits out of order"] = qc
    bits = [Clbit() for _ in range(3)]
    qc = QuantumCircuit(
        QuantumRegister(3, "q"), ClassicalRegister(name="a", bits=bits[:2]), ClassicalRegister(name="b", bits=bits[1:])
    )
    qc.x([0, 1])
    qc.measure([0, 1, 2], [0, 1, 2])
    out["overlapping registers"] = qc
    qc = QuantumCircuit(3, 2)
    qc.x([0, 2])
    qc.measure(0, 1)
    qc.measure_all()
    out["measure_all after a register"] = qc
    a, b = ClassicalRegister(2, "a"), ClassicalRegister(1, "b")
    qc = QuantumCircuit(QuantumRegister(3, "q"), b, a)
    qc.x([0, 1])
    qc.measure([0, 1], [1, 2])
    with qc.if_test((a, 3)):
        qc.x(2)
    qc.measure(2, 0)
    out["register condition (OpenQASM 3)"] = qc
    return out


@pytest.mark.parametrize("layout", list(_layouts()))
def test_classical_layouts_keep_their_bit_order(reference: Any, layout: str) -> None:
    url, _ = reference()
    circuit = _layouts()[layout]
    provider = CustomRestProvider()
    [node] = provider.build_nodes(**live_node(url))
    local = LocalCPUProvider().execute(circuit, 20, QPUNodeSpec("cpu", "local_cpu", 4), seed=1)
    assert len(local) == 1 and provider.execute(circuit, 20, node, seed=1) == local
    provider.close()


def test_circuits_whose_bit_order_qasm_cannot_keep_are_refused() -> None:
    bits = [Clbit() for _ in range(2)]
    reg = ClassicalRegister(name="r", bits=[bits[1], bits[0]])
    qc = QuantumCircuit(QuantumRegister(2, "q"), bits, reg)
    qc.measure([0, 1], [0, 1])
    with qc.if_test((reg, 1)):
        qc.x(0)
    with pytest.raises(ExecutionError, match="tests a classical register in a condition"):
        circuit_to_qasm(qc)


# -- modes -----------------------------------------------------------------------------------------


def test_emulated_runs_on_local_aer_and_sends_nothing(scripted: Scripted) -> None:
    registry = ClusterBuilder().add("custom_rest", base_url=scripted.url, max_qubits=4).build()
    qvm = DistributedQVM(registry, mode="emulated", shots=2000)
    assert qvm.prepared_nodes()[NODE].emulates == EMULATOR
    result = qvm.run(VirtualCircuitSpec(circuit_object=bell(), seed=3))
    assert_matches(result.counts, {"00": 0.5, "11": 0.5})
    assert result.emulated and result.shard_results[0].emulated
    assert scripted.requests == []
    with pytest.raises(LookupError, match="runs emulated"):
        registry.provider(NODE).attach(result.shard_results[0].job_id, qvm.prepared_nodes()[NODE])


def test_dry_run_contacts_nothing(scripted: Scripted, monkeypatch: Any) -> None:
    loads: list[str] = []
    monkeypatch.setattr("blocks.load_block", lambda cls, name: loads.append(name))
    registry = (
        ClusterBuilder()
        .add("custom_rest", name="url", base_url=scripted.url)
        .add("custom_rest", name="block", credentials="rest-prod")
        .build()
    )
    result = DistributedQVM(registry, mode="dry_run", shots=100).run(VirtualCircuitSpec(circuit_object=bell()))
    assert result.counts == {} and result.plan.shards
    assert scripted.requests == [] and loads == []


def test_live_never_falls_back_to_a_simulator(scripted: Scripted) -> None:
    dead = scripted.url
    scripted.close()
    registry = ClusterBuilder().add("custom_rest", base_url=dead, connect_timeout=1.0).build()
    with pytest.raises(NodeUnavailableError, match=rf"{NODE}.*capabilities.*declare max_qubits"):
        DistributedQVM(registry, mode="live").run(VirtualCircuitSpec(circuit_object=bell()))
    declared = ClusterBuilder().add("custom_rest", **live_node(dead, connect_timeout=1.0)).build()
    with pytest.raises(TransientExecutionError, match=rf"{NODE}.*run-circuit failed \(ConnectError"):
        DistributedQVM(declared, mode="live", retry=FAST).run(VirtualCircuitSpec(circuit_object=bell()))


# -- malformed results: typed errors naming the node and the defect, nothing stored -----------------


def _oversized() -> Reply:
    return Reply(200, b'{"job_id": "j-1", "status": "COMPLETED", "pad": "' + b"x" * 300_000 + b'"}')


DEFECTS: dict[str, tuple[Callable[[], Reply], type[Exception], str]] = {
    "not json": (lambda: Reply(200, b"<html>502 upstream</html>"), ProviderResultError, "not JSON"),
    "nested json": (lambda: Reply(200, b"[" * 60_000), ProviderResultError, "not JSON"),
    "wrong width": (lambda: completed({"0": 60, "1": 40}), ProviderResultError, "key '0' of 1 bits"),
    "non-binary key": (lambda: completed({"0x": 60, "11": 40}), ProviderResultError, "non-binary key '0x'"),
    "negative count": (lambda: completed({"00": 140, "11": -40}), ProviderResultError, "negative count -40"),
    "fractional count": (lambda: completed({"00": 60.5, "11": 39.5}), ProviderResultError, "non-integer count 60.5"),
    "string count": (lambda: completed({"00": "60", "11": 40}), ProviderResultError, "non-integer count '60'"),
    "wrong total": (lambda: completed({"00": 60, "11": 39}), ProviderResultError, "summing to 99, expected 100"),
    "oversized, declared": (_oversized, ProviderResultError, r"declares \d+ bytes, over the limit of 65536"),
    "oversized, streamed": (
        lambda: Reply(200, _oversized().body, stream=True),
        ProviderResultError,
        "ran past 65536 bytes",
    ),
    "stall": (lambda: Reply(stall=True), TransientExecutionError, "timed out"),
    "drip": (lambda: Reply(body=completed({"00": 100}).body, drip=True), TransientExecutionError, "timed out"),
    "failed job": (
        lambda: Reply(200, {"job_id": "j-1", "status": "FAILED", "error": "calibration lost"}),
        ExecutionError,
        "the server reports: calibration lost",
    ),
    "unknown status": (lambda: Reply(200, {"job_id": "j-1", "status": "DONE"}), ProviderResultError, "'DONE'"),
    "no job id": (lambda: Reply(200, {"status": "QUEUED"}), ProviderResultError, "no job_id"),
    "no counts": (
        lambda: Reply(200, {"job_id": "j-1", "status": "COMPLETED"}),
        ProviderResultError,
        "without a counts",
    ),
    "not an object": (lambda: Reply(200, [1, 2]), ProviderResultError, "JSON list, not a job object"),
}


@pytest.mark.parametrize("via", ["submit", "poll"])
@pytest.mark.parametrize("defect", list(DEFECTS))
def test_a_malformed_response_is_rejected_and_nothing_is_stored(
    scripted: Scripted, tmp_path: Path, defect: str, via: str
) -> None:
    make_reply, error, message = DEFECTS[defect]

    def script(method: str, path: str, body: Any) -> Reply:
        if via == "poll" and method == "POST":
            return Reply(200, {"job_id": "j-1", "status": "QUEUED"})
        return make_reply()

    scripted.script = script
    slow = defect in ("stall", "drip")
    timeouts = {"connect_timeout": 0.2, "read_timeout": 0.3} if slow else {"read_timeout": 10.0}
    registry = (
        ClusterBuilder().add("custom_rest", **live_node(scripted.url, max_response_bytes=65536, **timeouts)).build()
    )
    store = ResultStore(tmp_path.as_uri())
    qvm = DistributedQVM(registry, mode="live", shots=100, store=store, retry=FAST)
    with pytest.raises(error, match=message) as info:
        qvm.run(VirtualCircuitSpec(circuit_object=bell(), seed=1))
    assert NODE in str(info.value)
    transient = isinstance(info.value, TransientExecutionError)
    assert transient == slow
    # permanent defects are not retried; a stalled job is re-attached from the ledger, not resubmitted
    expected = {("submit", False): 1, ("poll", False): 2, ("submit", True): 2, ("poll", True): 3}
    assert len(scripted.requests) == expected[via, transient]
    assert sum(r.method == "POST" for r in scripted.requests) == (2 if (via, transient) == ("submit", True) else 1)
    assert_nothing_stored(tmp_path)


def test_http_statuses_are_classified(scripted: Scripted) -> None:
    provider = CustomRestProvider()
    [node] = provider.build_nodes(**live_node(scripted.url))
    replies = iter([Reply(503, {"detail": "maintenance"}), completed({"00": 5, "11": 5})])
    scripted.script = lambda m, p, b: next(replies)
    registry = ClusterBuilder().add(provider, **live_node(scripted.url)).build()
    result = DistributedQVM(registry, mode="live", shots=10, retry=FAST).run(VirtualCircuitSpec(circuit_object=bell()))
    assert sum(result.counts.values()) == 10 and len(scripted.requests) == 2  # 503 retried once
    statuses = ((429, True), (502, True), (504, True), (500, True), (408, True), (400, False), (422, False))
    for status, transient in (*statuses, (501, False), (505, False)):

        def refuse(method: str, path: str, body: Any, status: int = status) -> Reply:
            return Reply(status, {"detail": f"status {status}"})

        scripted.script = refuse
        with pytest.raises(ExecutionError, match=rf"{NODE}.*HTTP {status}: status {status}") as info:
            provider.submit(bell(), 10, node, job_key="k")
        assert isinstance(info.value, TransientExecutionError) == transient == provider.is_transient(info.value)
    request = httpx.Request("GET", "http://x")
    assert provider.is_transient(httpx.ConnectError("refused", request=request))
    assert provider.is_transient(httpx.ReadTimeout("slow", request=request))
    for status, transient in ((503, True), (429, True), (500, True), (501, False), (404, False), (401, False)):
        response = httpx.Response(status, request=request)
        error = httpx.HTTPStatusError("x", request=request, response=response)
        assert provider.is_transient(error) == transient
    assert not provider.is_transient(ValueError("bad circuit"))
    provider.close()


def test_a_server_error_is_retried_and_a_persistent_one_ends_typed(scripted: Scripted) -> None:
    registry = ClusterBuilder().add("custom_rest", **live_node(scripted.url)).build()
    spec = VirtualCircuitSpec(circuit_object=bell(), seed=1)
    replies = iter([Reply(500, {"detail": "database hiccup"}), completed({"00": 5, "11": 5})])
    scripted.script = lambda m, p, b: next(replies)
    result = DistributedQVM(registry, mode="live", shots=10, retry=FAST).run(spec)
    assert sum(result.counts.values()) == 10 and result.shard_results[0].extra["retries"] == 1
    assert scripted.requests[0].body["job_key"] == scripted.requests[1].body["job_key"]  # idempotent
    # a server that keeps failing: bounded by the retry policy, then a typed error naming the node
    scripted.requests.clear()
    scripted.script = lambda m, p, b: Reply(500, {"detail": "down for good"})
    with pytest.raises(NodeFailedError, match=rf"{NODE}.*failed 2 time\(s\).*HTTP 500: down for good"):
        DistributedQVM(registry, mode="live", shots=10, retry=FAST).run(spec)
    assert len(scripted.requests) == 2
    # 501: the server does not implement the call, which no retry changes
    scripted.requests.clear()
    scripted.script = lambda m, p, b: Reply(501, {"detail": "not implemented"})
    with pytest.raises(ExecutionError, match=rf"{NODE}.*HTTP 501: not implemented") as info:
        DistributedQVM(registry, mode="live", shots=10, retry=FAST).run(spec)
    assert not isinstance(info.value, TransientExecutionError) and len(scripted.requests) == 1


def test_retry_after_is_honoured(scripted: Scripted) -> None:
    registry = ClusterBuilder().add("custom_rest", **live_node(scripted.url)).build()
    replies = iter([Reply(429, {"detail": "slow down"}, headers={"Retry-After": "1"}), completed({"00": 5, "11": 5})])
    scripted.script = lambda m, p, b: next(replies)
    result = DistributedQVM(registry, mode="live", shots=10, retry=FAST).run(VirtualCircuitSpec(circuit_object=bell()))
    assert sum(result.counts.values()) == 10 and len(scripted.requests) == 2
    assert scripted.requests[1].at - scripted.requests[0].at >= 0.95
    provider = CustomRestProvider()
    [node] = provider.build_nodes(**live_node(scripted.url))
    # an HTTP date (whole seconds: two seconds on is at least one away)
    scripted.requests.clear()
    later = formatdate(time.time() + 2, usegmt=True)
    replies = iter([Reply(503, {"detail": "maintenance"}, headers={"Retry-After": later}), completed({"00": 10})])
    scripted.script = lambda m, p, b: next(replies)
    assert provider.submit(bell(), 10, node, job_key="k").status is JobStatus.COMPLETED
    assert scripted.requests[1].at - scripted.requests[0].at >= 0.95
    # longer than a call waits: the transient error goes to the executor at once, saying so
    scripted.requests.clear()
    scripted.script = lambda m, p, b: Reply(429, {"detail": "come back later"}, headers={"Retry-After": "3600"})
    start = time.monotonic()
    with pytest.raises(TransientExecutionError, match=rf"{NODE}.*HTTP 429: come back later \(Retry-After: 3600 s"):
        provider.submit(bell(), 10, node, job_key="k")
    assert time.monotonic() - start < 5 and len(scripted.requests) == 1
    # asked again and again: a bounded number of tries in one call
    scripted.requests.clear()
    scripted.script = lambda m, p, b: Reply(503, {"detail": "busy"}, headers={"Retry-After": "0"})
    with pytest.raises(TransientExecutionError, match=r"HTTP 503: busy \(Retry-After: 0 s; 3 retries"):
        provider.submit(bell(), 10, node, job_key="k")
    assert len(scripted.requests) == 4
    provider.close()


def test_headers_that_drip_time_out_within_the_request_deadline(scripted: Scripted, tmp_path: Path) -> None:
    scripted.script = lambda m, p, b: Reply(drip_head=True)
    # each byte comes well within read_timeout, which alone would never fire
    timeouts = {"connect_timeout": 0.2, "read_timeout": 0.5}
    registry = ClusterBuilder().add("custom_rest", **live_node(scripted.url, **timeouts)).build()
    qvm = DistributedQVM(registry, mode="live", shots=100, store=ResultStore(tmp_path.as_uri()), retry=FAST)
    start = time.monotonic()
    with pytest.raises(
        TransientExecutionError, match=rf"{NODE}.*run-circuit timed out: no whole response within 0.7 s"
    ):
        qvm.run(VirtualCircuitSpec(circuit_object=bell(), seed=1))
    assert time.monotonic() - start < 5
    assert len(scripted.requests) == 2  # one per try of the retry policy
    assert_nothing_stored(tmp_path)


def test_polls_that_stall_end_at_the_job_timeout_and_the_job_is_cancelled(scripted: Scripted, tmp_path: Path) -> None:
    def script(method: str, path: str, body: Any) -> Reply:
        if path == "/run-circuit":
            return Reply(200, {"job_id": "j-1", "status": "QUEUED"})
        if path == "/jobs/j-1/cancel":
            return Reply(200, {"job_id": "j-1", "status": "CANCELLED"})
        return Reply(stall=True)

    scripted.script = script
    # read_timeout is the default 30 s: the job's deadline, not the request's, ends the stalled poll
    registry = ClusterBuilder().add("custom_rest", **live_node(scripted.url), job_timeout=0.5).build()
    store = ResultStore(tmp_path.as_uri())
    start = time.monotonic()
    with pytest.raises(JobTimeoutError, match=rf"{NODE}.*job_timeout of 0.5 s; it was cancelled at the provider"):
        DistributedQVM(registry, mode="live", shots=100, store=store, retry=FAST).run(
            VirtualCircuitSpec(circuit_object=bell(), seed=1)
        )
    assert time.monotonic() - start < 5
    calls = [(r.method, r.path) for r in scripted.requests]
    assert calls[0] == ("POST", "/run-circuit") and calls[-1] == ("POST", "/jobs/j-1/cancel")
    assert set(calls[1:-1]) == {("GET", "/jobs/j-1")}
    [run] = [p.name for p in (tmp_path / "runs").iterdir()]
    [entry] = store.read_ledger(run)
    assert entry.status.value == "CANCELLED"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"max_qubits": 0}, "max_qubits 0, not a positive integer"),
        ({"max_qubits": 8, "cost_per_shot": -0.5}, "cost_per_shot -0.5, not a number >= 0"),
        ({"basis_gates": "cx,rz"}, "basis_gates that are not a list"),
        ([8], "JSON list, not an object"),
    ],
)
def test_malformed_capabilities_make_the_node_unavailable(scripted: Scripted, document: Any, message: str) -> None:
    scripted.script = lambda m, p, b: Reply(200, document)
    registry = ClusterBuilder().add("custom_rest", base_url=scripted.url).build()
    with pytest.raises(NodeUnavailableError, match=rf"{NODE}.*{message}"):
        DistributedQVM(registry, mode="live").prepared_nodes()
    assert [(r.method, r.path) for r in scripted.requests] == [("GET", "/capabilities")]


# -- credentials -----------------------------------------------------------------------------------


def test_bearer_token_from_env_or_block_is_sent_and_never_leaks(
    reference: Any, tmp_path: Path, monkeypatch: Any, caplog: Any
) -> None:
    from blocks import RestEndpointCredentials

    caplog.set_level(logging.DEBUG)
    url, app = reference(token=TOKEN)
    store = ResultStore(tmp_path.as_uri())
    # without the token: refused, permanently, and the message says where to look
    anonymous = ClusterBuilder().add("custom_rest", base_url=url).build()
    with pytest.raises(NodeUnavailableError, match="HTTP 401.*check the token") as refused:
        DistributedQVM(anonymous, mode="live").run(VirtualCircuitSpec(circuit_object=bell()))
    # from the environment (default variable, then a named one)
    monkeypatch.setenv("QCOS_REST_TOKEN", TOKEN)
    from_env = ClusterBuilder().add("custom_rest", base_url=url).build()
    result = DistributedQVM(from_env, mode="live", shots=64, store=store).run(VirtualCircuitSpec(circuit_object=bell()))
    assert sum(result.counts.values()) == 64
    monkeypatch.delenv("QCOS_REST_TOKEN")
    named = ClusterBuilder().add("custom_rest", base_url=url, token_env="MY_QPU_TOKEN").build()
    with pytest.raises(NodeUnavailableError, match="MY_QPU_TOKEN"):
        DistributedQVM(named, mode="live").prepared_nodes()
    # from a credentials block named in the cluster file
    block = RestEndpointCredentials(base_url=url, token=SecretStr(TOKEN), timeout_seconds=5)
    monkeypatch.setattr("blocks.load_block", lambda cls, name: block if name == "rest-prod" else None)
    from_block = ClusterBuilder().add("custom_rest", credentials="rest-prod").build()
    qvm = DistributedQVM(from_block, mode="live", shots=32, store=store)
    block_result = qvm.run(VirtualCircuitSpec(circuit_object=bell(), seed=2))
    assert sum(block_result.counts.values()) == 32 and app.state.jobs.submissions == 2
    wrong = ClusterBuilder().add("custom_rest", credentials="missing").build()
    with pytest.raises(NodeUnavailableError, match="could not load the RestEndpointCredentials block 'missing'"):
        DistributedQVM(wrong, mode="live").prepared_nodes()
    # the token is nowhere: specs, plans, results, stored files, errors, logs
    texts = [
        repr(from_block),
        json.dumps(from_block.to_dict()),
        repr(qvm.prepared_nodes()),
        result.to_json(),
        block_result.to_json(),
        str(refused.value),
        caplog.text,
        *(p.read_bytes().decode("latin-1") for p in tmp_path.rglob("*") if p.is_file()),
    ]
    assert all(TOKEN not in text for text in texts)


def test_a_server_echoing_the_token_has_it_masked(scripted: Scripted, monkeypatch: Any) -> None:
    monkeypatch.setenv("QCOS_REST_TOKEN", TOKEN)
    provider = CustomRestProvider()
    [node] = provider.build_nodes(**live_node(scripted.url))
    scripted.script = lambda m, p, b: Reply(400, {"detail": f"bad token Bearer {TOKEN}"})
    with pytest.raises(ExecutionError) as info:
        provider.submit(bell(), 10, node, job_key="k")
    assert scripted.requests[-1].headers["Authorization"] == f"Bearer {TOKEN}"
    scripted.script = lambda m, p, b: completed({TOKEN: 10})
    with pytest.raises(ProviderResultError, match="non-binary key") as keyed:
        provider.submit(bell(), 10, node, job_key="k")
    scripted.script = lambda m, p, b: Reply(200, {"job_id": "j", "status": "FAILED", "error": TOKEN})
    failed = provider.submit(bell(), 10, node, job_key="k")
    for text in (str(info.value), str(keyed.value), failed.error or ""):
        assert TOKEN not in text and "***" in text
    provider.close()


def test_a_job_id_holding_the_token_is_refused_and_stored_nowhere(
    scripted: Scripted, tmp_path: Path, monkeypatch: Any, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("QCOS_REST_TOKEN", TOKEN)
    registry = ClusterBuilder().add("custom_rest", **live_node(scripted.url)).build()
    store = ResultStore(tmp_path.as_uri())
    spec = VirtualCircuitSpec(circuit_object=bell(), seed=1)
    scripted.script = lambda m, p, b: completed({"00": 60, "11": 40}, job_id=f"job-{TOKEN}")
    with pytest.raises(
        ProviderResultError, match=rf"{NODE}.*job id 'job-\*\*\*', which contains the bearer token"
    ) as refused:
        DistributedQVM(registry, mode="live", shots=100, store=store, retry=FAST).run(spec)
    assert_nothing_stored(tmp_path)
    provider = CustomRestProvider()
    [node] = provider.build_nodes(**live_node(scripted.url))
    errors = [str(refused.value)]
    # a failed job's id, a polled job's id, an id to poll or cancel: refused alike, nothing sent for the last
    scripted.script = lambda m, p, b: Reply(200, {"job_id": TOKEN, "status": "FAILED", "error": "x"})
    with pytest.raises(ProviderResultError, match="contains the bearer token") as failed:
        provider.submit(bell(), 100, node, job_key="k")
    scripted.script = lambda m, p, b: Reply(200, {"job_id": f"{TOKEN}-2", "status": "RUNNING"})
    with pytest.raises(ProviderResultError, match="contains the bearer token") as polled:
        provider.poll(NodeJob("j-1", NODE, JobStatus.RUNNING), node)
    sent = len(scripted.requests)
    for call in (provider.attach, lambda i, n: provider.cancel(NodeJob(i, NODE, JobStatus.RUNNING), n)):
        with pytest.raises(ProviderResultError, match="contains the bearer token; no request was sent") as info:
            call(f"j-{TOKEN}", node)
        errors.append(str(info.value))
    assert len(scripted.requests) == sent
    errors += [str(failed.value), str(polled.value)]

    # a server echoing the token in every other field: the run succeeds, the token is nowhere
    def echo(method: str, path: str, body: Any) -> Reply:
        if method == "POST":
            return Reply(200, {"job_id": "j-1", "status": "QUEUED", "note": TOKEN}, headers={"X-Echo": TOKEN})
        return Reply(200, {"job_id": "j-1", "status": "COMPLETED", "counts": {"00": 100}, "extra": {"t": TOKEN}})

    scripted.script = echo
    result = DistributedQVM(registry, mode="live", shots=100, store=store, retry=FAST).run(spec)
    assert result.counts == {"00": 100} and result.shard_results[0].job_id == "j-1"
    stored = [p.read_bytes().decode("latin-1") for p in tmp_path.rglob("*") if p.is_file()]
    # (httpcore's own DEBUG trace prints response headers as received, the echoed one included)
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpcore"))
    assert stored and all(TOKEN not in text for text in [*errors, result.to_json(), logged, *stored])
    assert all("***" in text for text in errors)
    provider.close()


@pytest.mark.parametrize("job_id", ["..", ".", "../capabilities", "a/../b", "x y", "é", "a" * 300])
def test_a_job_id_never_leaves_the_jobs_path(scripted: Scripted, job_id: str) -> None:
    provider = CustomRestProvider()
    [node] = provider.build_nodes(**live_node(scripted.url))
    scripted.script = lambda m, p, b: Reply(200, {"job_id": job_id, "status": "QUEUED"})
    with pytest.raises(
        ProviderResultError, match=rf"{NODE}': POST run-circuit returned job id .*, which is not usable"
    ):
        provider.submit(bell(), 10, node, job_key="k")
    job = NodeJob(job_id, NODE, JobStatus.RUNNING)
    calls = (
        lambda: provider.attach(job_id, node),
        lambda: provider.poll(job, node),
        lambda: provider.cancel(job, node),
    )
    for call in calls:
        with pytest.raises(ProviderResultError, match=rf"{NODE}': job id .* is not usable .*; no request was sent"):
            call()
    assert [(r.method, r.path) for r in scripted.requests] == [("POST", "/run-circuit")]
    provider.close()


def test_a_job_id_is_sent_as_one_quoted_path_segment(scripted: Scripted) -> None:
    provider = CustomRestProvider()
    [node] = provider.build_nodes(**live_node(scripted.url))
    arn = "arn:aws:braket:us-east-1:1234:quantum-task/ab-12"
    scripted.script = lambda m, p, b: Reply(200, {"job_id": arn, "status": "RUNNING"})
    assert provider.attach(arn, node).job_id == arn
    assert scripted.requests[-1].path == "/jobs/arn%3Aaws%3Abraket%3Aus-east-1%3A1234%3Aquantum-task%2Fab-12"
    provider.close()


def test_the_token_is_in_no_repr_of_the_provider(scripted: Scripted, monkeypatch: Any) -> None:
    from blocks import RestEndpointCredentials

    block = RestEndpointCredentials(base_url=scripted.url, token=SecretStr(TOKEN), timeout_seconds=5)
    monkeypatch.setattr("blocks.load_block", lambda cls, name: block)
    monkeypatch.setenv("QCOS_REST_TOKEN", TOKEN)
    provider = CustomRestProvider()
    [from_env] = provider.build_nodes(**live_node(scripted.url))
    [from_block] = provider.build_nodes(**{**live_node(scripted.url), "base_url": None}, credentials="rest-prod")
    scripted.script = lambda m, p, b: completed({"00": 10})
    for key, node in (("a", from_env), ("b", from_block)):
        assert provider.submit(bell(), 10, node, job_key=key).status is JobStatus.COMPLETED
    assert [r.headers["Authorization"] for r in scripted.requests] == [f"Bearer {TOKEN}"] * 2
    assert len(provider._clients) == 2 and provider._blocks
    texts = [
        repr(provider),
        repr(vars(provider)),
        repr(provider._clients),
        repr(provider._blocks),
        repr(provider._endpoint(from_block)),
        *(repr(vars(client)) for client in provider._clients.values()),
    ]
    assert all(TOKEN not in text for text in texts)
    provider.close()


def test_requests_go_through_the_proxy_the_environment_names(scripted: Scripted, monkeypatch: Any) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", scripted.url)
    provider = CustomRestProvider()
    [node] = provider.build_nodes(**live_node("http://qpu.example.invalid:9/api"))
    scripted.script = lambda m, p, b: completed({"00": 10})
    assert provider.submit(bell(), 10, node, job_key="k").status is JobStatus.COMPLETED
    assert scripted.requests[-1].path == "http://qpu.example.invalid:9/api/run-circuit"
    monkeypatch.setenv("NO_PROXY", "qpu.example.invalid")
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1")
    other = CustomRestProvider()
    with pytest.raises(ExecutionError, match=r"\(ConnectError"):  # straight to the (unresolvable) endpoint
        other.submit(bell(), 10, node, job_key="k")
    monkeypatch.delenv("NO_PROXY")
    with pytest.raises(NodeUnavailableError, match="socks5:// proxy"):
        CustomRestProvider().submit(
            bell(), 10, replace(node, options={**node.options, "base_url": "https://q.invalid"})
        )
    provider.close()
    other.close()


# -- cancellation ----------------------------------------------------------------------------------


def _until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_the_reference_server_cancels_queued_and_running_jobs(reference: Any) -> None:
    backend = GatedBackend()
    url, app = reference(backend, run_async=True)
    provider = CustomRestProvider()
    [node] = provider.build_nodes(**live_node(url))
    running = provider.submit(bell(), 10, node, seed=1, job_key="a")
    queued = provider.submit(bell(), 20, node, seed=1, job_key="b")
    _until(lambda: provider.poll(running, node).status is JobStatus.RUNNING, "the first job never ran")
    assert provider.poll(queued, node).status is JobStatus.QUEUED
    for job in (queued, running):
        cancelled = provider.cancel(job, node)
        assert (cancelled.job_id, cancelled.status, cancelled.counts) == (job.job_id, JobStatus.CANCELLED, None)
    backend.gate.set()
    last = provider.submit(bell(), 30, node, seed=1, job_key="c")
    _until(lambda: provider.poll(last, node).status is JobStatus.COMPLETED, "the last job never finished")
    # the running job's result was discarded, the queued one never ran
    assert [provider.poll(j, node).status for j in (running, queued)] == [JobStatus.CANCELLED] * 2
    assert backend.runs == 2 and app.state.jobs.submissions == 3
    # a finished job stays as it is; an unknown one is a LookupError; a done job is not sent
    finished = provider.cancel(NodeJob(last.job_id, NODE, JobStatus.RUNNING), node)
    assert finished.status is JobStatus.COMPLETED and sum((finished.counts or {}).values()) == 30
    with pytest.raises(UnknownJobError, match=rf"{NODE}.*jobs/nope/cancel returned HTTP 404"):
        provider.cancel(NodeJob("nope", NODE, JobStatus.RUNNING), node)
    done = NodeJob("emulated-1", NODE, JobStatus.COMPLETED, counts={"00": 1})
    assert provider.cancel(done, node) is done
    # a cancelled job's key starts a new job; a finished one's returns it
    again = provider.submit(bell(), 20, node, seed=1, job_key="b")
    assert (
        again.job_id != queued.job_id and provider.submit(bell(), 30, node, seed=1, job_key="c").job_id == last.job_id
    )
    assert app.state.jobs.submissions == 4
    provider.close()


def test_a_job_past_its_job_timeout_is_cancelled_on_the_server(reference: Any, tmp_path: Path) -> None:
    backend = GatedBackend()
    url, app = reference(backend, run_async=True)
    registry = ClusterBuilder().add("custom_rest", **live_node(url), job_timeout=0.5).build()
    store = ResultStore(tmp_path.as_uri())
    spec = VirtualCircuitSpec(circuit_object=bell(), seed=4)
    start = time.monotonic()
    with pytest.raises(
        JobTimeoutError, match=rf"{NODE}.*job_timeout of 0.5 s; it was cancelled at the provider"
    ) as info:
        DistributedQVM(registry, mode="live", shots=100, store=store, retry=FAST).run(spec)
    assert time.monotonic() - start < 10
    job_id = info.value.job_id
    assert job_id and app.state.jobs.get(job_id)["status"] == "CANCELLED" and app.state.jobs.submissions == 1
    [run] = [p.name for p in (tmp_path / "runs").iterdir()]
    [entry] = store.read_ledger(run)
    assert (entry.job_id, entry.status.value) == (job_id, "CANCELLED")
    # the device finishing later does not revive it; a re-run submits afresh and completes
    backend.gate.set()
    _until(lambda: backend.runs == 1, "the cancelled job never left the device")
    result = DistributedQVM(registry, mode="live", shots=100, store=store, retry=FAST).run(spec)
    assert sum(result.counts.values()) == 100 and result.shard_results[0].job_id != job_id
    assert app.state.jobs.get(job_id)["status"] == "CANCELLED" and app.state.jobs.submissions == 2


def test_execute_waits_within_the_job_timeout_and_cancels(reference: Any) -> None:
    backend = GatedBackend()
    url, app = reference(backend, run_async=True)
    provider = CustomRestProvider()
    [node] = provider.build_nodes(**live_node(url))
    node = replace(node, job_timeout=0.5)
    start = time.monotonic()
    with pytest.raises(JobTimeoutError, match=rf"{NODE}.*at its deadline\. It was cancelled \(CANCELLED\)") as info:
        provider.execute(bell(), 10, node, seed=1)
    assert time.monotonic() - start < 5
    assert app.state.jobs.get(info.value.job_id)["status"] == "CANCELLED" and app.state.jobs.submissions == 1
    provider.close()


# -- cluster file and server validation ------------------------------------------------------------


def test_build_arguments_are_checked() -> None:
    provider = CustomRestProvider()
    with pytest.raises(ClusterConfigError, match="needs base_url="):
        provider.build_nodes()
    with pytest.raises(ClusterConfigError, match="not in base_url"):
        provider.build_nodes(base_url="https://user:pw@qpu.example.org")
    with pytest.raises(ClusterConfigError, match="http:// or https://"):
        provider.build_nodes(base_url="qpu.example.org")
    with pytest.raises(ClusterConfigError, match="unknown option.*tokn"):
        provider.build_nodes(options={"base_url": "http://h", "tokn": "x"})
    with pytest.raises(ClusterConfigError, match="unknown argument.*shotz"):
        provider.build_nodes(base_url="http://h", shotz=3)
    with pytest.raises(ClusterConfigError, match="given twice"):
        provider.build_nodes(base_url="http://a", options={"base_url": "http://b"})
    with pytest.raises(ClusterConfigError, match="read_timeout must be a positive number"):
        provider.build_nodes(base_url="http://h", read_timeout=0)
    with pytest.raises(ClusterConfigError, match="token_env must be an environment variable name"):
        provider.build_nodes(base_url="http://h", token_env="not a name")
    nodes = ClusterBuilder.from_yaml(
        "nodes:\n  - provider: custom_rest\n    n_nodes: 2\n    options: {base_url: 'http://q.example:9/api/'}\n"
        "    max_qubits: 20\n    cost_per_shot: 0.001\n    tags: [qpu]\n"
    ).build()
    spec = nodes.node("custom_rest-1")
    assert (spec.max_qubits, spec.device, spec.exact, spec.host, spec.cost_per_shot) == (
        20,
        "QPU",
        True,
        "q.example:9",
        0.001,
    )
    assert spec.options["from_server"] == ["cost_per_task", "cost_per_second", "basis_gates"]


def test_reference_server_validates_its_input(reference: Any) -> None:
    url, app = reference(token=TOKEN, max_request_bytes=4096)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    wide = QuantumCircuit(7, 7)
    wide.measure(range(7), range(7))
    with httpx.Client(base_url=url, headers=auth) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert httpx.get(f"{url}/capabilities").status_code == 401
        assert client.get("/capabilities").json()["max_qubits"] == 6

        def post(**body: Any) -> httpx.Response:
            return client.post("/run-circuit", json={"shots": 10, "job_key": "k", **body})

        bad = post(qasm="OPENQASM 2.0; qreg q[1]; foo q[0];")
        assert bad.status_code == 400 and "Invalid OpenQASM 2" in bad.json()["detail"]
        too_wide = post(qasm=circuit_to_qasm(wide))
        assert too_wide.status_code == 400 and "7 qubits; this server takes at most 6" in too_wide.json()["detail"]
        no_shots = post(qasm=circuit_to_qasm(bell()), shots=0)
        assert no_shots.status_code == 400 and "shots" in no_shots.json()["detail"]
        huge = client.post("/run-circuit", content=b"x" * 5000)
        assert huge.status_code == 413
        missing = client.get("/jobs/nope")
        assert missing.status_code == 404
        qasm3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nbit[1] c;\nx q[0];\nc[0] = measure q[0];\n'
        done = post(qasm=qasm3, job_key="q3")
        assert done.json()["status"] == "COMPLETED" and done.json()["counts"] == {"1": 10}
    assert app.state.jobs.submissions == 1


def test_the_server_command_runs() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "providers.custom_rest",
        "--port",
        str(port),
        "--max-qubits",
        "5",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                caps = httpx.get(f"http://127.0.0.1:{port}/capabilities", timeout=1).json()
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        assert caps == {"max_qubits": 5, "cost_per_shot": 0.0, "cost_per_task": 0.0}
    finally:
        process.terminate()
        process.wait(timeout=30)
    bad = subprocess.run([*command[:3], "--token-env", "QCOS_TEST_UNSET_VAR"], capture_output=True, text=True)
    assert bad.returncode == 2 and "QCOS_TEST_UNSET_VAR is unset or empty" in bad.stderr


class TestCustomRestConformance(ProviderConformance):
    """The live HTTP path against the reference server (Aer behind it) on 127.0.0.1."""

    key = "custom_rest"
    mode = QVMMode.LIVE

    @pytest.fixture
    def node_arguments(self, reference: Callable[..., Any]) -> dict[str, Any]:
        url, _ = reference(backend=AerBackend(max_qubits=8))
        return {"base_url": url}


def test_a_failed_job_is_submitted_again_under_a_key_of_its_own(reference: Any, tmp_path: Path) -> None:
    """The device fails the first job; re-running the seeded spec submits a new job (attempt 2, its own
    idempotency key) instead of being handed the failed one back by the service."""

    class FailsOnce(AerBackend):
        failures = 1

        def run(self, circuit: QuantumCircuit, shots: int, seed: int | None) -> dict[str, int]:
            if FailsOnce.failures:
                FailsOnce.failures -= 1
                raise RuntimeError("calibration lost")
            return super().run(circuit, shots, seed)

    url, app = reference(FailsOnce(max_qubits=6))
    registry = ClusterBuilder().add("custom_rest", base_url=url).build()
    store = ResultStore(tmp_path.as_uri())
    spec = VirtualCircuitSpec(circuit_object=bell(), seed=12)
    with pytest.raises(ExecutionError, match="calibration lost"):
        DistributedQVM(registry, mode="live", shots=100, store=store, retry=FAST).run(spec)
    result = DistributedQVM(registry, mode="live", shots=100, store=store, retry=FAST).run(spec)
    assert set(result.counts) <= {"00", "11"} and app.state.jobs.submissions == 2
    (entry,) = store.read_ledger(result.run_key)
    assert entry.attempts == 2 and entry.job_key.endswith("~2") and entry.status.value == "COMPLETED"
