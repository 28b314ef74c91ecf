"""A local stand-in for an Azure Quantum workspace: the REST calls azure-quantum 3.12 makes, and blob storage.

It serves, on ``http://127.0.0.1:{port}``:

* ``POST .../workspaces/{ws}/storage/sasUri``: a container "SAS URL" pointing back at this server
  (path-style, ``/{account}/{container}``, as the Azure SDK reads URLs on an IP address);
* ``PUT/GET /{account}/{container}/{blob}``: block blobs (the input the SDK uploads, the output it downloads);
* ``PUT .../jobs/{id}`` (create; 409 for an existing id), ``GET .../jobs/{id}``, ``GET .../jobs`` (list).

Every data-plane call must carry the workspace's API key in ``x-ms-quantum-api-key`` (401 otherwise).
A created job is "executed" at once by decoding its input (IonQ JSON, OpenQASM 2, Quil) into a Qiskit
circuit and sampling it with Aer; its output blob is written in the target's output format (IonQ's
histogram, Quantinuum's shots per register, Rigetti's ``ro`` readout) and revealed after
``polls_until_done`` status reads, so clients see Waiting, Executing, then Succeeded.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, qasm2
from qiskit.quantum_info import Statevector
from qiskit_aer import AerSimulator

__all__ = ["AzureQuantumStandIn", "ionq_to_circuit", "quil_to_circuit"]

SUBSCRIPTION = "00000000-0000-4000-8000-000000000001"
ACCOUNT = "standinstorage"
_SAS = "sv=2024-01-01&se=2099-01-01T00%3A00%3A00Z&sr=c&sp=racwl&sig=standin-signature"
_WS_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Quantum/"
    r"workspaces/(?P<ws>[^/]+)/(?P<rest>.*)$"
)


@dataclass
class _Job:
    details: dict[str, Any]
    output: bytes | None = None
    error: dict[str, str] | None = None
    reads: int = 0


@dataclass
class AzureQuantumStandIn:
    """The stand-in server's state; use :meth:`running` to serve it.

    Attributes:
        api_key: The key every data-plane request must carry.
        polls_until_done: Job status reads before a job reports its final state.
        corrupt_output: When set, the next executed job's output blob is these bytes.
        fail_jobs: Jobs end Failed (the input is still decoded and checked).
        submissions: Jobs created (a create that meets an existing id does not count).
        requests: ``(method, path)`` of every request, for tests to inspect.
    """

    api_key: str
    resource_group: str = "qcos-rg"
    workspace: str = "qcos-ws"
    polls_until_done: int = 2
    corrupt_output: bytes | None = None
    fail_jobs: bool = False
    submissions: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)
    jobs: dict[str, _Job] = field(default_factory=dict)
    blobs: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seed: int = 1234

    @contextmanager
    def running(self) -> Iterator[AzureQuantumStandIn]:
        """Serve on a free port of 127.0.0.1 until the block ends."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{server.server_address[1]}/"
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="azure-standin", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)

    def make_workspace(self) -> Any:
        """An ``azure.quantum.Workspace`` on this server, authenticated by the API key (no Azure AD)."""
        from azure.core.credentials import AzureKeyCredential
        from azure.quantum import Workspace

        # The SDK builds the data-plane URL from the region unless a connection string names one, and
        # its connection-string pattern only accepts *.quantum.azure.com: pass the endpoint the way
        # Workspace.from_connection_string does.
        return Workspace(
            subscription_id=SUBSCRIPTION,
            resource_group=self.resource_group,
            name=self.workspace,
            location="eastus",
            credential=AzureKeyCredential(self.api_key),
            _quantum_endpoint=self.url,
        )

    # ---------------------------------------------------------------- jobs

    def create_job(self, job_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if job_id in self.jobs:
                return 409, _error("Conflict", f"A job with id {job_id} already exists.")
            now = _iso()
            details = {**body, "id": job_id, "status": "Waiting", "creationTime": now, "itemType": "Job"}
            job = _Job(details)
            self.jobs[job_id] = job
            self.submissions += 1
            seed = self._seed + self.submissions
            corrupt, self.corrupt_output = self.corrupt_output, None
        try:
            output = self._execute(details, seed)
        except Exception as exc:  # the input could not be decoded or run: the job fails, as on Azure
            job.error = {"code": "InvalidInputData", "message": f"{type(exc).__name__}: {exc}"}
        else:
            job.output = corrupt if corrupt is not None else output
            if self.fail_jobs:
                job.error = {"code": "ExecutionFailed", "message": "the stand-in was told to fail this job"}
        return 201, dict(details)

    def read_job(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return None
            job.reads += 1
            details = job.details
            if job.reads >= self.polls_until_done and details["status"] not in ("Succeeded", "Failed"):
                self._finish(job_id, job)
            elif job.reads >= 1 and details["status"] == "Waiting":
                details.update(status="Executing", beginExecutionTime=_iso())
            return dict(details)

    def _finish(self, job_id: str, job: _Job) -> None:
        details = job.details
        details["endExecutionTime"] = _iso()
        if job.error is not None:
            details.update(status="Failed", errorData=job.error)
            return
        container = f"job-{job_id}"
        self.blobs[f"{container}/rawOutputData"] = (job.output or b"", "application/json")
        details.update(status="Succeeded", outputDataUri=f"{self.url}{ACCOUNT}/{container}/rawOutputData?{_SAS}")

    def _execute(self, details: dict[str, Any], seed: int) -> bytes:
        """Run the job's input and return its output blob in the target's output format."""
        data = self._blob_at(details["inputDataUri"])
        fmt = details["inputDataFormat"]
        shots = int(details["inputParams"]["shots"])
        simulator = ".qpu." not in details["target"]
        if fmt == "ionq.circuit.v1":
            program = json.loads(data)
            circuit = ionq_to_circuit(program)
            if simulator:  # IonQ's simulator returns exact probabilities
                probs = Statevector(circuit).probabilities()
                histogram = {str(i): float(p) for i, p in enumerate(probs) if p > 1e-12}
            else:  # a QPU returns the fraction of shots of each state
                measured = circuit.copy()
                measured.measure_all()
                counts = _sample(measured, shots, seed)
                histogram = {str(int(k, 2)): n / shots for k, n in counts.items()}
            return json.dumps({"histogram": histogram}).encode()
        if fmt == "honeywell.openqasm.v1":
            circuit = qasm2.loads(data.decode(), custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
            memory = _memory(circuit, shots, seed)
            out = {}
            for reg in circuit.cregs:
                idx = [circuit.find_bit(b).index for b in reg]
                out[reg.name] = ["".join(m[-1 - i] for i in reversed(idx)) for m in memory]
            return json.dumps(out).encode()
        if fmt == "rigetti.quil.v1":
            circuit = quil_to_circuit(data.decode())
            memory = _memory(circuit, shots, seed)
            return json.dumps({"ro": [[int(m[-1 - i]) for i in range(circuit.num_clbits)] for m in memory]}).encode()
        raise ValueError(f"the stand-in cannot run input format {fmt!r}")

    def _blob_at(self, uri: str) -> bytes:
        path = urlsplit(uri).path.removeprefix(f"/{ACCOUNT}/")
        with self._lock:
            return self.blobs[path][0]


def ionq_to_circuit(program: dict[str, Any]) -> QuantumCircuit:
    """An IonQ ``qis`` JSON circuit as a Qiskit circuit (no measurements: IonQ measures every qubit)."""
    qc = QuantumCircuit(int(program["qubits"]))
    single = {"h", "x", "y", "z", "s", "t", "rx", "ry", "rz"}
    for gate in program["circuit"]:
        name, targets, controls = gate["gate"], gate["targets"], gate.get("controls", [])
        if controls:
            if name != "x" or len(controls) != 1:
                raise ValueError(f"unsupported controlled gate {gate}")
            qc.cx(controls[0], targets[0])
        elif name in single:
            getattr(qc, name)(*([gate["rotation"]] if "rotation" in gate else []), targets[0])
        elif name in ("si", "ti"):
            getattr(qc, name[0] + "dg")(targets[0])
        elif name == "swap":
            qc.swap(*targets)
        else:
            raise ValueError(f"unsupported IonQ gate {gate}")
    return qc


_QUIL_LINE = re.compile(r"^(?P<op>[A-Z]+)(?:\((?P<params>[^)]*)\))?\s+(?P<args>.*)$")


def quil_to_circuit(text: str) -> QuantumCircuit:
    """The Quil subset QCOS writes (DECLARE ro, standard gates, MEASURE, RESET) as a Qiskit circuit."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    declared = re.fullmatch(r"DECLARE ro BIT\[(\d+)\]", lines[0]) if lines else None
    if declared is None:
        raise ValueError(f"expected 'DECLARE ro BIT[n]', got {lines[:1]}")
    body = [_QUIL_LINE.match(line) for line in lines[1:]]
    if any(m is None for m in body):
        raise ValueError(f"unparsable Quil line in {lines}")
    n_qubits = 1 + max((int(q) for m in body if m for q in re.findall(r"(?<!\[)\b\d+\b(?!\])", m["args"])), default=0)
    qc = QuantumCircuit(QuantumRegister(n_qubits, "q"), ClassicalRegister(int(declared.group(1)), "ro"))
    names = {"H": "h", "X": "x", "Y": "y", "Z": "z", "S": "s", "T": "t", "RX": "rx", "RY": "ry", "RZ": "rz"}
    for m in body:
        assert m is not None
        op, args = m["op"], m["args"].split()
        params = [float(p) for p in m["params"].split(",")] if m["params"] else []
        if op == "MEASURE":
            qc.measure(int(args[0]), int(re.fullmatch(r"ro\[(\d+)\]", args[1]).group(1)))  # type: ignore[union-attr]
        elif op == "RESET":
            qc.reset(int(args[0]))
        elif op in names:
            getattr(qc, names[op])(*params, int(args[0]))
        elif op in ("CNOT", "CZ", "SWAP"):
            getattr(qc, {"CNOT": "cx", "CZ": "cz", "SWAP": "swap"}[op])(int(args[0]), int(args[1]))
        else:
            raise ValueError(f"unsupported Quil instruction {op}")
    return qc


def _sample(circuit: QuantumCircuit, shots: int, seed: int) -> dict[str, int]:
    result = AerSimulator().run(circuit, shots=shots, seed_simulator=seed).result()
    return {k.replace(" ", ""): int(v) for k, v in result.get_counts().items()}


def _memory(circuit: QuantumCircuit, shots: int, seed: int) -> list[str]:
    """Each shot's classical bits as one flat string, bit 0 rightmost."""
    result = AerSimulator().run(circuit, shots=shots, seed_simulator=seed, memory=True).result()
    width = circuit.num_clbits
    return [format(int(h, 16), f"0{width}b") for h in result.data(0)["memory"]]


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _handler(state: AzureQuantumStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read :attr:`AzureQuantumStandIn.requests` instead."""

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_HEAD(self) -> None:
            self._dispatch("HEAD")

        def _dispatch(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with state._lock:
                state.requests.append((method, parts.path))
            if parts.path.startswith(f"/{ACCOUNT}/"):
                self._blob(method, parts.path.removeprefix(f"/{ACCOUNT}/"), parse_qs(parts.query), body)
                return
            match = _WS_PATH.match(parts.path)
            if match is None or match["ws"] != state.workspace or match["rg"] != state.resource_group:
                self._json(404, _error("WorkspaceNotFound", f"No workspace at {parts.path}."))
                return
            if self.headers.get("x-ms-quantum-api-key") != state.api_key:
                self._json(401, _error("Unauthorized", "Missing or wrong API key."))
                return
            self._workspace(method, match["rest"], body)

        def _workspace(self, method: str, rest: str, body: bytes) -> None:
            if method == "POST" and rest == "storage/sasUri":
                request = json.loads(body)
                blob = f"/{request['blobName']}" if request.get("blobName") else ""
                self._json(200, {"sasUri": f"{state.url}{ACCOUNT}/{request['containerName']}{blob}?{_SAS}"})
            elif rest.startswith("jobs/") and method == "PUT":
                status, payload = state.create_job(rest.removeprefix("jobs/"), json.loads(body))
                self._json(status, payload)
            elif rest.startswith("jobs/") and method == "GET":
                details = state.read_job(rest.removeprefix("jobs/"))
                if details is None:
                    self._json(404, _error("JobNotFound", f"No job {rest.removeprefix('jobs/')}."))
                else:
                    self._json(200, details)
            elif rest == "jobs" and method == "GET":
                with state._lock:
                    listed = [dict(job.details) for job in state.jobs.values()]
                self._json(200, {"value": listed, "nextLink": None})
            else:
                self._json(404, _error("NotFound", f"The stand-in does not serve {method} {rest}."))

        def _blob(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> None:
            if method == "PUT" and "restype" in query:  # create container
                self._send(201, b"", {})
            elif method == "PUT":
                with state._lock:
                    state.blobs[path] = (body, self.headers.get("x-ms-blob-content-type") or "")
                self._send(201, b"", {"Content-MD5": ""})
            elif path not in state.blobs:
                self._send(404, b"", {"x-ms-error-code": "BlobNotFound"})
            else:
                with state._lock:
                    data, content_type = state.blobs[path]
                headers = {"x-ms-blob-type": "BlockBlob", "Content-Type": content_type or "application/octet-stream"}
                requested = self.headers.get("x-ms-range") or self.headers.get("Range")
                if requested and data:
                    start, _, end = requested.removeprefix("bytes=").partition("-")
                    first, last = int(start), min(int(end or len(data) - 1), len(data) - 1)
                    headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
                    self._send(206, data[first : last + 1], headers, head=method == "HEAD")
                else:
                    self._send(200, data, headers, head=method == "HEAD")

        def _json(self, status: int, payload: Any) -> None:
            headers = {"Content-Type": "application/json"}
            if status >= 400:
                headers["x-ms-error-code"] = payload["error"]["code"]
            self._send(status, json.dumps(payload).encode(), headers)

        def _send(self, status: int, data: bytes, headers: dict[str, str], *, head: bool = False) -> None:
            self.send_response(status)
            for name, value in {
                "ETag": '"0x1"',
                "Last-Modified": formatdate(usegmt=True),
                "x-ms-request-id": "standin",
                "x-ms-version": "2024-01-01",
                **headers,
            }.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)

    return Handler
