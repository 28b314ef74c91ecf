"""Reference server of the QCOS REST node protocol, backed by Qiskit Aer.

Run it::

    python -m providers.custom_rest.server --host 127.0.0.1 --port 8765 [--max-qubits N]
        [--token-env VAR] [--async] [--basis-gates rz,sx,x,cz] [--cost-per-shot X] [--cost-per-task Y]

and point a ``custom_rest`` node at ``http://127.0.0.1:8765``. The protocol is described in
:mod:`providers.custom_rest.client`.

To put your own QPU or GPU simulator behind it, write a class with the three methods of
:class:`Backend` (``capabilities``, ``validate``, ``run``; :class:`AerBackend` is the model) and
serve ``create_app(YourBackend())`` with uvicorn. The job table, idempotent job keys, input
validation, bearer-token check and count format stay as they are.

Jobs live in memory: a restart forgets them (clients then get 404 on re-attach and submit again).
With ``--async`` jobs queue for one worker thread and the POST returns at once (``QUEUED``);
without it the POST runs the circuit and returns the finished job. ``POST /jobs/{job_id}/cancel``
cancels a job: a queued one never runs; a running one is not interrupted (the backend has no way
to), but its result is discarded and it stays ``CANCELLED``. A cancelled job's ``job_key`` may be
submitted again: it starts a new job.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from network.circuits import parse_qasm
from network.errors import CircuitParseError
from network.node_providers import JobStatus, QPUNodeSpec

if TYPE_CHECKING:
    from qiskit import QuantumCircuit

__all__ = ["Backend", "AerBackend", "JobTable", "create_app", "serve_in_background", "main"]

log = logging.getLogger(__name__)

MAX_SHOTS = 10_000_000
DEFAULT_MAX_REQUEST_BYTES = 16 * 2**20
#: Instructions every backend takes besides its gates.
_NON_GATES = frozenset(
    {
        "measure",
        "barrier",
        "reset",
        "delay",
        "if_else",
        "while_loop",
        "for_loop",
        "switch_case",
        "break_loop",
        "continue_loop",
    }
)


class Backend(Protocol):
    """What the server needs from a device. Replace :class:`AerBackend` with your own."""

    def capabilities(self) -> dict[str, Any]:
        """The ``/capabilities`` document: ``max_qubits``, ``basis_gates``, prices (all optional)."""
        ...

    def validate(self, circuit: QuantumCircuit) -> None:
        """Raise ``ValueError`` with a message for a circuit the device cannot take (answered with 400)."""
        ...

    def run(self, circuit: QuantumCircuit, shots: int, seed: int | None) -> dict[str, int]:
        """Run and return counts: keys over all classical bits, bit 0 rightmost, summing to ``shots``.

        An exception marks the job FAILED with its message.
        """
        ...


class AerBackend:
    """Qiskit Aer statevector on this machine.

    Args:
        max_qubits: Widest circuit accepted (default: what fits in half of this machine's memory).
        basis_gates: When given, circuits with other gates are refused (as a QPU would).
        cost_per_shot: Price advertised per shot.
        cost_per_task: Price advertised per job.
    """

    def __init__(
        self,
        max_qubits: int | None = None,
        *,
        basis_gates: Sequence[str] | None = None,
        cost_per_shot: float = 0.0,
        cost_per_task: float = 0.0,
    ) -> None:
        from providers.aer import LocalCPUProvider
        from providers.gpu import memory_qubits

        self.max_qubits = max_qubits or memory_qubits()
        self.basis_gates = list(basis_gates) if basis_gates else None
        self.cost_per_shot = cost_per_shot
        self.cost_per_task = cost_per_task
        self._aer = LocalCPUProvider()
        self._spec = QPUNodeSpec(node_id="aer-backend", provider_key="local_cpu", max_qubits=self.max_qubits)

    def capabilities(self) -> dict[str, Any]:
        caps: dict[str, Any] = {
            "max_qubits": self.max_qubits,
            "cost_per_shot": self.cost_per_shot,
            "cost_per_task": self.cost_per_task,
        }
        if self.basis_gates:
            caps["basis_gates"] = self.basis_gates
        return caps

    def validate(self, circuit: QuantumCircuit) -> None:
        if circuit.num_qubits > self.max_qubits:
            raise ValueError(
                f"The circuit has {circuit.num_qubits} qubits; this server takes at most {self.max_qubits}."
            )
        if self.basis_gates:
            extra = sorted(operation_names(circuit) - set(self.basis_gates) - _NON_GATES)
            if extra:
                raise ValueError(
                    f"Gate(s) {', '.join(extra)} are not in this server's basis ({', '.join(self.basis_gates)})."
                )

    def run(self, circuit: QuantumCircuit, shots: int, seed: int | None) -> dict[str, int]:
        from qiskit import transpile
        from qiskit_aer import AerSimulator

        target = AerSimulator().target
        if operation_names(circuit) - set(target.operation_names) - _NON_GATES:
            # gates the QASM file defines itself: Aer knows them only decomposed
            circuit = transpile(circuit, target=target, optimization_level=0)
        return self._aer.execute(circuit, shots, self._spec, seed=seed)


def operation_names(circuit: QuantumCircuit) -> set[str]:
    """Names of every instruction in ``circuit``, control-flow bodies included."""
    names: set[str] = set()
    for instruction in circuit.data:
        names.add(instruction.name)
        for block in getattr(instruction.operation, "blocks", ()):
            names |= operation_names(block)
    return names


@dataclass
class Job:
    """One job of the table. ``fingerprint`` identifies the request a ``job_key`` was first used with."""

    job_id: str
    job_key: str
    fingerprint: str
    status: JobStatus = JobStatus.QUEUED
    counts: dict[str, int] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"job_id": self.job_id, "status": self.status.value}
        if self.status is JobStatus.COMPLETED:
            data["counts"] = self.counts
        if self.status is JobStatus.FAILED:
            data["error"] = self.error
        return data


class JobTable:
    """Jobs in memory, keyed by id and by idempotency key.

    Args:
        backend: Runs the circuits.
        run_async: Queue jobs for one worker thread instead of running them in the request.

    Attributes:
        submissions: Jobs created (repeated job keys do not count, but that of a cancelled job starts a new
            one): what a client would pay for.
    """

    def __init__(self, backend: Backend, *, run_async: bool = False) -> None:
        self.backend = backend
        self.run_async = run_async
        self.submissions = 0
        self._jobs: dict[str, Job] = {}
        self._by_key: dict[str, str] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qcos-rest-job") if run_async else None

    def submit(self, job_key: str, fingerprint: str, circuit: QuantumCircuit, shots: int, seed: int | None) -> Job:
        """The job ``job_key`` names, created (and started) if new or if that job was cancelled.

        Raises:
            KeyError: ``job_key`` was used before for a different request.
        """
        with self._lock:
            known = self._by_key.get(job_key)
            if known is not None:
                job = self._jobs[known]
                if job.fingerprint != fingerprint:
                    raise KeyError(job_key)
                if job.status is not JobStatus.CANCELLED:
                    return job
            job = Job(uuid.uuid4().hex, job_key, fingerprint)
            self._jobs[job.job_id] = job
            self._by_key[job_key] = job.job_id
            self.submissions += 1
        if self._pool is not None:
            self._pool.submit(self._run, job, circuit, shots, seed)
        else:
            self._run(job, circuit, shots, seed)
        return job

    def _run(self, job: Job, circuit: QuantumCircuit, shots: int, seed: int | None) -> None:
        with self._lock:
            if job.status is JobStatus.CANCELLED:  # cancelled while queued: it never runs
                return
            job.status = JobStatus.RUNNING
        try:
            counts = self.backend.run(circuit, shots, seed)
        except Exception as exc:  # the device's failure is the job's, reported to the client
            log.warning("job %s failed: %s", job.job_id, exc)
            with self._lock:
                if job.status is not JobStatus.CANCELLED:
                    job.status, job.error = JobStatus.FAILED, f"{type(exc).__name__}: {exc}"
            return
        with self._lock:
            if job.status is JobStatus.CANCELLED:  # cancelled while running: the result is discarded
                log.info("job %s was cancelled while running; its result is discarded", job.job_id)
                return
            job.status, job.counts = JobStatus.COMPLETED, counts

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Cancel a job that has not finished; returns its protocol document (``CANCELLED``, or
        its final status if it finished first), or ``None`` for an unknown id."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if not job.status.done:
                job.status = JobStatus.CANCELLED
                log.info("job %s cancelled", job.job_id)
            return job.to_dict()

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job's protocol document, or ``None``."""
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else job.to_dict()

    def view(self, job: Job) -> dict[str, Any]:
        """``job``'s protocol document, read under the table's lock."""
        with self._lock:
            return job.to_dict()

    def close(self) -> None:
        """Stop the worker; queued jobs are dropped (the table lives in memory only)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


class RunRequest(BaseModel):
    """Body of ``POST /run-circuit``."""

    qasm: str = Field(..., min_length=1, description="OpenQASM 2 or 3 source with measurements.")
    shots: int = Field(..., ge=1, le=MAX_SHOTS, description="Shots to run.")
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1, description="Simulator seed; null: random.")
    job_key: str = Field(..., min_length=1, max_length=512, description="Idempotency key: repeated, same job.")


def create_app(
    backend: Backend | None = None,
    *,
    token: str | None = None,
    run_async: bool = False,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
) -> FastAPI:
    """The protocol as a FastAPI app; ``app.state.jobs`` is its :class:`JobTable`.

    Args:
        backend: The device (default: :class:`AerBackend`).
        token: Bearer token every request but ``/health`` must carry; ``None``: no authentication.
        run_async: Run jobs in a worker thread (QUEUED/RUNNING are observable) instead of in the request.
        max_request_bytes: Larger request bodies are refused with 413.
    """
    table = JobTable(backend or AerBackend(), run_async=run_async)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        table.close()

    app = FastAPI(title="QCOS REST node (reference)", lifespan=lifespan)
    app.state.jobs = table

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'body'}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": f"Invalid request: {problems}"}, status_code=400)

    @app.middleware("http")
    async def _limit_size(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_request_bytes:
            return JSONResponse({"detail": f"Request body over {max_request_bytes} bytes."}, status_code=413)
        return await call_next(request)

    def authorize(request: Request) -> None:
        if token is None:
            return
        supplied = request.headers.get("authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "Missing or wrong bearer token.", headers={"WWW-Authenticate": "Bearer"})

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/capabilities", dependencies=[Depends(authorize)])
    def capabilities() -> dict[str, Any]:
        return table.backend.capabilities()

    @app.post("/run-circuit", dependencies=[Depends(authorize)])
    def run_circuit(body: RunRequest) -> dict[str, Any]:
        try:
            circuit = parse_qasm(body.qasm)
            table.backend.validate(circuit)
        except (CircuitParseError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from exc
        fingerprint = hashlib.sha256(f"{body.shots}\0{body.seed}\0{body.qasm}".encode()).hexdigest()
        try:
            job = table.submit(body.job_key, fingerprint, circuit, body.shots, body.seed)
        except KeyError:
            raise HTTPException(409, "job_key was already used for a different circuit, shots or seed.") from None
        return table.view(job)

    @app.get("/jobs/{job_id}", dependencies=[Depends(authorize)])
    def get_job(job_id: str) -> dict[str, Any]:
        found = table.get(job_id)
        if found is None:
            raise HTTPException(404, f"No job {job_id!r} on this server.")
        return found

    @app.post("/jobs/{job_id}/cancel", dependencies=[Depends(authorize)])
    def cancel_job(job_id: str) -> dict[str, Any]:
        found = table.cancel(job_id)
        if found is None:
            raise HTTPException(404, f"No job {job_id!r} on this server.")
        return found

    return app


@contextmanager
def serve_in_background(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` from a daemon thread (tests, notebooks); yields its base URL, stops on exit.

    ``port=0`` takes a free port.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="qcos-rest-server")
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"The REST server did not start on {host}:{sock.getsockname()[1]}.")
            time.sleep(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m providers.custom_rest.server --help``."""
    parser = argparse.ArgumentParser(
        prog="python -m providers.custom_rest.server",
        description="Reference QCOS REST node backed by Qiskit Aer.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on (default 127.0.0.1).")
    parser.add_argument("--port", type=int, default=8765, help="Port (default 8765).")
    parser.add_argument("--max-qubits", type=int, default=None, help="Widest circuit accepted (default: memory).")
    parser.add_argument(
        "--token-env", default=None, metavar="VAR", help="Require 'Authorization: Bearer $VAR' on every request."
    )
    parser.add_argument("--async", dest="run_async", action="store_true", help="Queue jobs; POST returns at once.")
    parser.add_argument("--basis-gates", default=None, help="Comma-separated gates; circuits with others get 400.")
    parser.add_argument("--cost-per-shot", type=float, default=0.0, help="Price advertised per shot.")
    parser.add_argument("--cost-per-task", type=float, default=0.0, help="Price advertised per job.")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    if args.max_qubits is not None and args.max_qubits < 1:
        parser.error("--max-qubits must be a positive integer")
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env, "").strip()
        if not token:
            parser.error(f"environment variable {args.token_env} is unset or empty")
    gates = [g.strip() for g in args.basis_gates.split(",") if g.strip()] if args.basis_gates else None
    backend = AerBackend(
        args.max_qubits, basis_gates=gates, cost_per_shot=args.cost_per_shot, cost_per_task=args.cost_per_task
    )
    app = create_app(backend, token=token, run_async=args.run_async)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
