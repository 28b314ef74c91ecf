"""``custom_rest``: nodes behind any HTTP service that speaks the QCOS REST protocol.

The protocol (the reference server, :mod:`providers.custom_rest.server`, implements it)::

    POST {base}/run-circuit   {"qasm": str, "shots": int, "seed": int | null, "job_key": str}
    GET  {base}/jobs/{job_id}
         -> {"job_id": str, "status": "QUEUED" | "RUNNING" | "COMPLETED" | "FAILED",
             "counts": {bitstring: int}   (once COMPLETED), "error": str   (once FAILED)}
    GET  {base}/capabilities
         -> {"max_qubits": int, "basis_gates": [str], "cost_per_shot": float,
             "cost_per_task": float, "cost_per_second": float}      (every key optional)

A repeated ``job_key`` returns the job it first created, so a retried or re-run submission is never
paid for twice. Count keys are in Qiskit order (classical bit 0 rightmost), one character per
classical bit of the submitted circuit, and the counts sum to the shots. Anything else (a body that
is not JSON, keys of the wrong width or not binary, negative or fractional counts, a wrong total, a
body over ``max_response_bytes``) is rejected with :class:`~network.errors.ProviderResultError`
naming the node and the defect; a stalled or unreachable server raises
:class:`~network.errors.TransientExecutionError`, which the executor retries.

Modes: LIVE talks to the endpoint (and fetches ``/capabilities`` in :meth:`CustomRestProvider.prepare`
for whatever the cluster file does not declare); EMULATED runs on local Aer and sends nothing;
DRY_RUN contacts nothing. The bearer token comes from a
:class:`~blocks.credentials.RestEndpointCredentials` block named by ``credentials``, else from the
environment variable ``token_env`` (default ``QCOS_REST_TOKEN``); it never enters a spec, a log line,
a result or an error message.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from network.circuits import normalize_counts
from network.errors import (
    ClusterConfigError,
    ExecutionError,
    NodeUnavailableError,
    ProviderResultError,
    QVMError,
    TransientExecutionError,
)
from network.node_providers import JobStatus, NodeJob, NodeProvider, QPUNodeSpec, QVMMode

if TYPE_CHECKING:
    import httpx
    from qiskit import QuantumCircuit

    from providers.aer import LocalCPUProvider

__all__ = [
    "CustomRestProvider",
    "UnknownJobError",
    "circuit_to_qasm",
    "DEFAULT_TOKEN_ENV",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "EMULATOR",
]

log = logging.getLogger(__name__)

#: Environment variable holding the bearer token when no credentials block is named.
DEFAULT_TOKEN_ENV = "QCOS_REST_TOKEN"
#: Largest response body accepted; the client stops reading past it.
DEFAULT_MAX_RESPONSE_BYTES = 16 * 2**20
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0
#: What the ``emulates`` field of a node says in EMULATED mode.
EMULATOR = "aer (stand-in for custom_rest endpoint)"
#: HTTP statuses worth retrying: throttling and gateways that lost their upstream.
TRANSIENT_STATUS = frozenset({429, 502, 503, 504})

_OPTION_KEYS = (
    "base_url",
    "credentials",
    "token_env",
    "connect_timeout",
    "read_timeout",
    "max_response_bytes",
    "basis_gates",
)
#: Spec fields (and the ``basis_gates`` option) that LIVE mode reads from ``/capabilities``
#: when the cluster file leaves them out.
_CAPABILITIES = ("max_qubits", "cost_per_shot", "cost_per_task", "cost_per_second", "basis_gates")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COUNT_KEY = re.compile(r"^[01 ]*$")
_MAX_QUOTE = 300  # characters of a server's message quoted in an error


class UnknownJobError(ExecutionError, LookupError):
    """The endpoint does not know a job id (HTTP 404); the executor then submits the shard again."""


@dataclass(frozen=True)
class _Endpoint:
    """Where and how to reach one node's service. ``headers`` may hold the token: never logged."""

    base_url: str
    connect_timeout: float
    read_timeout: float
    max_response_bytes: int
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def secret(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ") or None

    def redact(self, text: str) -> str:
        """``text`` cut to a quotable length, with the token (if a server echoed it) masked."""
        secret = self.secret
        if secret:
            text = text.replace(secret, "***")
        return text if len(text) <= _MAX_QUOTE else text[:_MAX_QUOTE] + "..."


def circuit_to_qasm(circuit: QuantumCircuit) -> str:
    """OpenQASM 2 for ``circuit`` (OpenQASM 3 where 2 cannot express it), bit order preserved.

    A parser numbers classical bits in the order their registers are declared, which is not the
    circuit's order when bits sit outside registers, in several registers, or in registers listing
    them out of order. Such circuits are first rewritten onto one register ``q`` and one register
    ``c`` (bit ``i`` becomes ``c[i]``), so the server's count keys index the circuit's own bits.

    Raises:
        ExecutionError: The circuit tests a register in a condition and its bits are laid out as
            above: no rewriting keeps both the condition and the bit order.
    """
    from qiskit import qasm2, qasm3

    plain = _plain_layout(circuit)
    try:
        return qasm2.dumps(plain)
    except qasm2.QASM2ExportError:
        return qasm3.dumps(plain)


def _plain_layout(circuit: QuantumCircuit) -> QuantumCircuit:
    from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister

    def in_register_order(registers: Sequence[Sequence[Any]], bits: Sequence[Any]) -> bool:
        return [bit for register in registers for bit in register] == list(bits)

    if in_register_order(circuit.qregs, circuit.qubits) and in_register_order(circuit.cregs, circuit.clbits):
        return circuit
    n, m = circuit.num_qubits, circuit.num_clbits
    registers = [QuantumRegister(n, "q"), *([ClassicalRegister(m, "c")] if m else [])]
    out = QuantumCircuit(*registers, name=circuit.name, global_phase=circuit.global_phase)
    try:
        out.compose(circuit, qubits=out.qubits, clbits=out.clbits, inplace=True)
    except Exception as exc:  # qiskit raises CircuitError, or DAGCircuitError through control flow
        raise ExecutionError(f"The circuit cannot be written as OpenQASM with its bit order kept: {exc}") from exc
    if out.num_clbits != m or len(out.cregs) != len(registers) - 1:  # compose added a register a condition tests
        raise ExecutionError(
            "The circuit tests a classical register in a condition while its bits lie outside registers or out "
            "of register order; OpenQASM cannot keep both. Put every classical bit in registers declared in bit "
            "order (e.g. QuantumCircuit(n, m)) and try again."
        )
    return out


class CustomRestProvider(NodeProvider):
    """Nodes served over HTTP by any service speaking the QCOS REST protocol (see the module docstring).

    One provider instance keeps one ``httpx.Client`` per endpoint (connection reuse across polls)
    and each endpoint's capabilities once fetched; :meth:`close` closes the clients.
    """

    key = "custom_rest"
    description = "Any HTTP service speaking the QCOS REST protocol (reference server: providers.custom_rest.server)"
    requires = ("httpx",)
    extra = None  # httpx is a core dependency
    remote = True

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._clients: dict[tuple[Any, ...], httpx.Client] = {}
        self._blocks: dict[str, dict[str, Any]] = {}
        self._capabilities: dict[str, dict[str, Any]] = {}
        self._emulator: LocalCPUProvider | None = None

    # -- cluster file -----------------------------------------------------------------------------

    def build_nodes(
        self,
        n_nodes: int = 1,
        max_qubits: int | None = None,
        *,
        base_url: str | None = None,
        credentials: str | None = None,
        token_env: str | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_response_bytes: int | None = None,
        basis_gates: Sequence[str] | None = None,
        device: str = "QPU",
        exact: bool = True,
        method: str = "rest",
        cost_per_shot: float | None = None,
        cost_per_task: float | None = None,
        cost_per_second: float | None = None,
        work_pool: str | None = None,
        tags: Sequence[str] = (),
        host: str | None = None,
        options: Mapping[str, Any] | None = None,
        **unknown: Any,
    ) -> list[QPUNodeSpec]:
        """Build ``n_nodes`` nodes served by one endpoint.

        Args:
            n_nodes: How many nodes (each may run one shard at a time).
            max_qubits: Widest circuit the endpoint takes. Left out: the endpoint's ``max_qubits``
                in LIVE mode, what Aer can hold on this machine in EMULATED and DRY_RUN modes.
            base_url: The service, e.g. ``https://qpu.example.org/api`` (default: the block's).
            credentials: Name of a saved ``RestEndpointCredentials`` block (URL, token, timeout).
            token_env: Environment variable holding the bearer token when no block is named
                (default ``QCOS_REST_TOKEN``; unset means no authentication unless named here).
            connect_timeout: Seconds to connect (default: the block's timeout, else 10).
            read_timeout: Seconds a response may take (default: the block's timeout, else 30).
            max_response_bytes: Largest response body accepted (default 16 MiB).
            basis_gates: Gates the endpoint accepts; circuits are translated to them before
                sending (default: the endpoint's ``basis_gates`` in LIVE mode, else as written).
            device: ``QPU`` (default), or ``GPU``/``CPU`` for a remote simulator: the planner's time model.
            exact: False for an approximate remote simulator.
            method: Label of the hardware family or simulation method.
            cost_per_shot: Price per shot (default: the endpoint's, in LIVE mode; else 0).
            cost_per_task: Price per submission (same default).
            cost_per_second: Price per second of device time (same default).
            work_pool: Prefect work pool whose workers run these nodes' shards.
            tags: Labels for filtering.
            host: Label grouping nodes that share a machine (default: the endpoint's host).
            options: The connection keywords above as one mapping (a cluster file's ``options:``).
            **unknown: Refused with the list of known arguments.

        Raises:
            ClusterConfigError: No endpoint, an invalid value, or an unknown argument or option.
        """
        if unknown:
            raise ClusterConfigError(
                f"Provider {self.key!r}: unknown argument(s) {', '.join(sorted(unknown))}. Known: n_nodes, "
                f"max_qubits, {', '.join(_OPTION_KEYS)}, device, exact, method, cost_per_shot, cost_per_task, "
                "cost_per_second, work_pool, tags, host, options."
            )
        given = {
            "base_url": base_url,
            "credentials": credentials,
            "token_env": token_env,
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "max_response_bytes": max_response_bytes,
            "basis_gates": basis_gates,
        }
        merged = self._merge_options({k: v for k, v in given.items() if v is not None}, options or {})
        declared = {
            "max_qubits": max_qubits,
            "cost_per_shot": cost_per_shot,
            "cost_per_task": cost_per_task,
            "cost_per_second": cost_per_second,
            "basis_gates": merged.get("basis_gates"),
        }
        from_server = [name for name in _CAPABILITIES if declared[name] is None]
        if from_server:
            merged["from_server"] = from_server
        if max_qubits is None:
            from providers.gpu import memory_qubits

            max_qubits = memory_qubits()
        if host is None:
            host = urlsplit(merged["base_url"]).netloc if "base_url" in merged else f"block:{merged['credentials']}"
        return self.make_nodes(
            n_nodes,
            max_qubits=max_qubits,
            exact=exact,
            method=method,
            device=device,
            cost_per_shot=cost_per_shot or 0.0,
            cost_per_task=cost_per_task or 0.0,
            cost_per_second=cost_per_second or 0.0,
            work_pool=work_pool,
            tags=tuple(tags),
            host=host,
            options=merged,
        )

    def _merge_options(self, given: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - set(_OPTION_KEYS))
        if unknown:
            raise ClusterConfigError(
                f"Provider {self.key!r}: unknown option(s) {', '.join(unknown)}. Known: {', '.join(_OPTION_KEYS)}."
            )
        merged = dict(options)
        for name, value in given.items():
            if name in merged and merged[name] != value:
                raise ClusterConfigError(
                    f"Provider {self.key!r}: {name} is given twice, as {value!r} and in options as {merged[name]!r}."
                )
            merged[name] = value
        if not merged.get("base_url") and not merged.get("credentials"):
            raise ClusterConfigError(
                f"Provider {self.key!r} needs base_url= (the service's URL) or credentials= (the name of a "
                "RestEndpointCredentials block holding it)."
            )
        self._check_options(merged)
        if merged.get("basis_gates") is not None:
            merged["basis_gates"] = list(merged["basis_gates"])
        return merged

    def _check_options(self, options: Mapping[str, Any]) -> None:
        def fail(name: str, expected: str) -> None:
            raise ClusterConfigError(f"Provider {self.key!r}: {name} must be {expected}, got {options[name]!r}.")

        if "base_url" in options:
            parts = urlsplit(str(options["base_url"]))
            if parts.username or parts.password:
                raise ClusterConfigError(
                    f"Provider {self.key!r}: put the token in a credentials block or token_env, not in base_url."
                )
            if parts.scheme not in ("http", "https") or not parts.netloc:
                fail("base_url", "an http:// or https:// URL")
        for name in ("credentials", "token_env"):
            if name in options and (not isinstance(options[name], str) or not options[name].strip()):
                fail(name, "a non-empty string")
        if "token_env" in options and not _ENV_NAME.match(options["token_env"]):
            fail("token_env", "an environment variable name")
        for name in ("connect_timeout", "read_timeout"):
            value = options.get(name)
            if name in options and (
                isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0
            ):
                fail(name, "a positive number of seconds")
        size = options.get("max_response_bytes")
        if "max_response_bytes" in options and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            fail("max_response_bytes", "a positive integer")
        gates = options.get("basis_gates")
        if gates is not None and (
            isinstance(gates, str)
            or not isinstance(gates, Sequence)
            or not all(isinstance(g, str) and g for g in gates)
        ):
            fail("basis_gates", "a list of gate names")

    # -- modes ------------------------------------------------------------------------------------

    def prepare(self, node_spec: QPUNodeSpec, mode: QVMMode) -> QPUNodeSpec:
        """DRY_RUN: the spec as declared. EMULATED: marked as running on local Aer. LIVE: the
        credentials resolved and, for what the cluster file leaves out, the endpoint's capabilities.

        Raises:
            NodeUnavailableError: LIVE mode and the credentials cannot be loaded, or the endpoint's
                capabilities cannot be read; nothing falls back to a simulator.
        """
        if mode is QVMMode.DRY_RUN:
            return node_spec
        if mode is QVMMode.EMULATED:
            return replace(node_spec, emulates=EMULATOR)
        endpoint = self._endpoint(node_spec)
        wanted = node_spec.options.get("from_server", ())
        if not wanted:
            return node_spec
        caps = self._fetch_capabilities(node_spec, endpoint)
        fields = {name: caps[name] for name in wanted if name in caps and name != "basis_gates"}
        options = dict(node_spec.options)
        if "basis_gates" in wanted and "basis_gates" in caps:
            options["basis_gates"] = caps["basis_gates"]
        return replace(node_spec, **fields, options=options)

    def _fetch_capabilities(self, node: QPUNodeSpec, endpoint: _Endpoint) -> dict[str, Any]:
        with self._lock:
            cached = self._capabilities.get(endpoint.base_url)
        if cached is not None:
            return cached
        try:
            payload = self._request(node, endpoint, "GET", "capabilities")
        except QVMError as exc:
            raise NodeUnavailableError(
                f"{exc} Node {node.node_id!r} needs the endpoint's capabilities in LIVE mode "
                "(declare max_qubits, basis_gates and the costs in the cluster file to skip them)."
            ) from exc
        caps = self._check_capabilities(node, endpoint, payload)
        with self._lock:
            self._capabilities[endpoint.base_url] = caps
        return caps

    @staticmethod
    def _check_capabilities(node: QPUNodeSpec, endpoint: _Endpoint, payload: Any) -> dict[str, Any]:
        def bad(what: str) -> NodeUnavailableError:
            return NodeUnavailableError(
                f"Node {node.node_id!r}: GET capabilities at {endpoint.base_url} returned {what}; "
                "fix the server or declare the value in the cluster file."
            )

        if not isinstance(payload, dict):
            raise bad(f"JSON {type(payload).__name__}, not an object")
        caps: dict[str, Any] = {}
        width = payload.get("max_qubits")
        if width is not None:
            if isinstance(width, bool) or not isinstance(width, int) or width < 1:
                raise bad(f"max_qubits {endpoint.redact(repr(width))}, not a positive integer")
            caps["max_qubits"] = width
        for name in ("cost_per_shot", "cost_per_task", "cost_per_second"):
            value = payload.get(name)
            if value is not None:
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int | float)
                    or not math.isfinite(value)
                    or value < 0
                ):
                    raise bad(f"{name} {endpoint.redact(repr(value))}, not a number >= 0")
                caps[name] = float(value)
        gates = payload.get("basis_gates")
        if gates is not None:
            if not isinstance(gates, list) or not all(isinstance(g, str) and g for g in gates):
                raise bad("basis_gates that are not a list of gate names")
            caps["basis_gates"] = gates
        return caps

    # -- jobs -------------------------------------------------------------------------------------

    def execute(
        self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None
    ) -> dict[str, int]:
        """Submit, wait for the job and return its validated counts (sweeps and direct calls).

        Raises:
            ExecutionError: The job failed; the message names the node and quotes the server.
            ProviderResultError: The counts do not match the circuit.
            TransientExecutionError: The endpoint could not be reached or stalled.
        """
        if node_spec.emulates is not None:
            return self._emulate(circuit, shots, node_spec, seed)
        job = self.wait(self.submit(circuit, shots, node_spec, seed=seed), node_spec, interval=0.05, max_interval=2.0)
        counts = self.counts_of(job, node_spec)
        return normalize_counts(counts, width=circuit.num_clbits, shots=shots, node_id=node_spec.node_id)

    def submit(
        self,
        circuit: QuantumCircuit,
        shots: int,
        node_spec: QPUNodeSpec,
        *,
        seed: int | None = None,
        job_key: str | None = None,
    ) -> NodeJob:
        """POST the circuit as OpenQASM with ``job_key`` as the idempotency key.

        Raises:
            ExecutionError: The server refused the circuit (4xx), or it cannot be written as OpenQASM.
            ProviderResultError: The response is not a job.
            TransientExecutionError: The endpoint could not be reached, stalled, or asked to retry.
        """
        if node_spec.emulates is not None:
            counts = self._emulate(circuit, shots, node_spec, seed)
            return NodeJob(f"emulated-{uuid.uuid4().hex}", node_spec.node_id, JobStatus.COMPLETED, counts=counts)
        endpoint = self._endpoint(node_spec)
        body = {
            "qasm": self._qasm(circuit, node_spec),
            "shots": shots,
            "seed": seed,
            "job_key": job_key or f"adhoc-{uuid.uuid4().hex}",
        }
        payload = self._request(node_spec, endpoint, "POST", "run-circuit", body=body)
        return self._job(payload, node_spec, endpoint, "POST run-circuit")

    def poll(self, job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        """GET the job's current state."""
        if job.status.done:
            return job
        return self._get_job(job.job_id, node_spec)

    def attach(self, job_id: str, node_spec: QPUNodeSpec) -> NodeJob:
        """Re-attach to ``job_id`` (from the ledger) with one GET.

        Raises:
            UnknownJobError: The endpoint does not know the job (a ``LookupError``: the shard is
                submitted again, under the same job key).
            LookupError: The node runs emulated, where jobs do not outlive the process.
        """
        if node_spec.emulates is not None:
            raise LookupError(f"Node {node_spec.node_id!r} runs emulated; job {job_id!r} is not kept.")
        return self._get_job(job_id, node_spec)

    def _get_job(self, job_id: str, node_spec: QPUNodeSpec) -> NodeJob:
        endpoint = self._endpoint(node_spec)
        path = f"jobs/{quote(job_id, safe='')}"
        job = self._job(self._request(node_spec, endpoint, "GET", path), node_spec, endpoint, f"GET {path}")
        if job.job_id != job_id:
            raise ProviderResultError(
                f"Node {node_spec.node_id!r}: GET {path} returned job {endpoint.redact(job.job_id)!r} instead."
            )
        return job

    def is_transient(self, error: BaseException) -> bool:
        """Connection failures, timeouts and HTTP 429/502/503/504 are transient; the rest is not."""
        import httpx

        if isinstance(error, TransientExecutionError | ConnectionError | TimeoutError):
            return True
        if isinstance(error, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
            return True
        if isinstance(error, httpx.HTTPStatusError):
            return error.response.status_code in TRANSIENT_STATUS
        return False

    def close(self) -> None:
        """Close the HTTP clients (they reopen on the next request)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    # -- internals --------------------------------------------------------------------------------

    def _emulate(self, circuit: QuantumCircuit, shots: int, node: QPUNodeSpec, seed: int | None) -> dict[str, int]:
        from providers.aer import LocalCPUProvider

        with self._lock:
            if self._emulator is None:
                self._emulator = LocalCPUProvider()
            emulator = self._emulator
        local = replace(node, device="CPU", method="statevector", options={}, emulates=None)
        return emulator.execute(circuit, shots, local, seed=seed)

    def _qasm(self, circuit: QuantumCircuit, node: QPUNodeSpec) -> str:
        gates = node.options.get("basis_gates")
        if gates:
            from network.compilation import translate
            from network.errors import CircuitCompileError

            try:  # cached per distinct circuit and basis
                circuit = translate(circuit, [*gates, "measure", "reset", "barrier"], target=f"node {node.node_id!r}")
            except CircuitCompileError as exc:
                raise ExecutionError(
                    f"Node {node.node_id!r}: the circuit cannot be translated to its basis gates "
                    f"({', '.join(gates)}): {exc}"
                ) from exc
        try:
            return circuit_to_qasm(circuit)
        except ExecutionError as exc:
            raise ExecutionError(f"Node {node.node_id!r}: {exc}") from exc
        except Exception as exc:  # qasm2/qasm3 exporter errors
            raise ExecutionError(f"Node {node.node_id!r}: the circuit cannot be written as OpenQASM: {exc}") from exc

    def _endpoint(self, node: QPUNodeSpec) -> _Endpoint:
        """Resolve URL, token and limits; loads the credentials block once per provider."""
        options = node.options
        base_url = options.get("base_url")
        headers: dict[str, str] = {}
        timeout: float | None = None
        block_name = options.get("credentials")
        if block_name:
            kwargs = self._block_kwargs(node, block_name)
            base_url = base_url or kwargs["base_url"]
            headers = dict(kwargs.get("headers", {}))
            timeout = kwargs.get("timeout")
        else:
            variable = options.get("token_env", DEFAULT_TOKEN_ENV)
            token = os.environ.get(variable, "").strip()
            if token:
                headers = {"Authorization": f"Bearer {token}"}
            elif "token_env" in options:
                raise NodeUnavailableError(
                    f"Node {node.node_id!r}: environment variable {variable} (token_env) is unset or empty."
                )
        return _Endpoint(
            base_url=str(base_url).rstrip("/"),
            connect_timeout=float(options.get("connect_timeout") or timeout or DEFAULT_CONNECT_TIMEOUT),
            read_timeout=float(options.get("read_timeout") or timeout or DEFAULT_READ_TIMEOUT),
            max_response_bytes=int(options.get("max_response_bytes") or DEFAULT_MAX_RESPONSE_BYTES),
            headers=headers,
        )

    def _block_kwargs(self, node: QPUNodeSpec, name: str) -> dict[str, Any]:
        with self._lock:
            cached = self._blocks.get(name)
        if cached is not None:
            return cached
        try:
            from blocks import RestEndpointCredentials, load_block

            kwargs = load_block(RestEndpointCredentials, name).client_kwargs()
        except Exception as exc:  # BlockNotFoundError, an unreachable Prefect API, a missing secret
            raise NodeUnavailableError(
                f"Node {node.node_id!r}: could not load the RestEndpointCredentials block {name!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        with self._lock:
            self._blocks[name] = kwargs
        return kwargs

    def _client(self, endpoint: _Endpoint) -> httpx.Client:
        import httpx

        key = (
            endpoint.base_url,
            tuple(sorted(endpoint.headers.items())),
            endpoint.connect_timeout,
            endpoint.read_timeout,
        )
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = httpx.Client(
                    base_url=endpoint.base_url + "/",
                    headers=dict(endpoint.headers),
                    timeout=httpx.Timeout(endpoint.read_timeout, connect=endpoint.connect_timeout),
                    follow_redirects=False,  # a redirect could carry the token to another host
                )
        return client

    def _request(self, node: QPUNodeSpec, endpoint: _Endpoint, method: str, path: str, *, body: Any = None) -> Any:
        """One HTTP exchange; returns the decoded JSON body of a 2xx response.

        The body is streamed and reading stops past ``max_response_bytes``. httpx exceptions are
        not chained: they hold the request, and so its Authorization header.

        Raises:
            TransientExecutionError: Network failure, timeout, or HTTP 429/502/503/504.
            UnknownJobError: HTTP 404 on a job.
            ExecutionError: Any other non-2xx status.
            ProviderResultError: An oversized or non-JSON body.
        """
        import httpx

        where = f"{method} {endpoint.base_url}/{path}"
        limit = endpoint.max_response_bytes
        deadline = time.monotonic() + endpoint.connect_timeout + endpoint.read_timeout
        try:
            with self._client(endpoint).stream(method, path, json=body) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise self._too_large(node, where, limit, f"declares {declared} bytes")
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise self._too_large(node, where, limit, f"ran past {limit} bytes")
                    if time.monotonic() > deadline:
                        raise TransientExecutionError(
                            f"Node {node.node_id!r}: {where} timed out: the body was still arriving after "
                            f"{endpoint.connect_timeout + endpoint.read_timeout:g} s."
                        )
                    chunks.append(chunk)
                status = response.status_code
        except httpx.HTTPError as exc:
            kind = TransientExecutionError if self.is_transient(exc) else ExecutionError
            timed_out = " timed out" if isinstance(exc, httpx.TimeoutException) else " failed"
            raise kind(
                f"Node {node.node_id!r}: {where}{timed_out} ({type(exc).__name__}: {endpoint.redact(str(exc))})."
            ) from None
        data = b"".join(chunks)
        log.debug("%s -> HTTP %d, %d bytes", where, status, size)
        if not 200 <= status < 300:
            raise self._status_error(node, endpoint, where, status, data, path)
        try:
            return json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
            snippet = endpoint.redact(data[:80].decode("utf-8", "replace"))
            raise ProviderResultError(
                f"Node {node.node_id!r}: {where} returned a body that is not JSON: {snippet!r}."
            ) from None

    @staticmethod
    def _too_large(node: QPUNodeSpec, where: str, limit: int, how: str) -> ProviderResultError:
        return ProviderResultError(
            f"Node {node.node_id!r}: the response to {where} {how}, over the limit of {limit} bytes "
            "(max_response_bytes); it was not read."
        )

    @staticmethod
    def _status_error(
        node: QPUNodeSpec, endpoint: _Endpoint, where: str, status: int, data: bytes, path: str
    ) -> ExecutionError:
        try:
            decoded = json.loads(data)
            message = decoded.get("detail") or decoded.get("error") if isinstance(decoded, dict) else None
        except ValueError:
            message = None
        text = message if isinstance(message, str) else data.decode("utf-8", "replace").strip()
        detail = f": {endpoint.redact(text)}" if text else ""
        message = f"Node {node.node_id!r}: {where} returned HTTP {status}{detail}"
        if status == 404 and path.startswith("jobs/"):
            return UnknownJobError(message)
        if status in TRANSIENT_STATUS:
            return TransientExecutionError(message)
        if status in (401, 403):
            return ExecutionError(f"{message} (check the token of the credentials block or token_env)")
        return ExecutionError(message)

    @staticmethod
    def _job(payload: Any, node: QPUNodeSpec, endpoint: _Endpoint, where: str) -> NodeJob:
        """A :class:`NodeJob` from a job response, checked for shape; the executor checks the counts
        against the circuit (width, total) with :func:`~network.circuits.normalize_counts`."""

        def bad(what: str) -> ProviderResultError:
            return ProviderResultError(f"Node {node.node_id!r}: {where} returned {what}.")

        if not isinstance(payload, dict):
            raise bad(f"JSON {type(payload).__name__}, not a job object")
        job_id = payload.get("job_id")
        if not isinstance(job_id, str) or not job_id.strip():
            raise bad("no job_id")
        raw_status = payload.get("status")
        try:
            status = JobStatus(raw_status if isinstance(raw_status, str) else "")
        except ValueError:
            allowed = ", ".join(s.value for s in JobStatus)
            raise bad(f"an unknown status {endpoint.redact(repr(raw_status))} (expected one of {allowed})") from None
        counts = payload.get("counts")
        if status is JobStatus.COMPLETED:
            if not isinstance(counts, dict):
                raise bad(f"a COMPLETED job without a counts object (counts: {endpoint.redact(repr(counts))})")
            odd = next((k for k in counts if not _COUNT_KEY.match(k)), None)
            if odd is not None:  # quoted here, redacted, rather than by the executor's check
                raise bad(f"a non-binary key {endpoint.redact(repr(odd))}")
            return NodeJob(job_id, node.node_id, status, counts=counts)
        if status is JobStatus.FAILED:
            error = payload.get("error")
            text = endpoint.redact(str(error)) if error else "the server gave no error message"
            return NodeJob(job_id, node.node_id, status, error=f"the server reports: {text}")
        return NodeJob(job_id, node.node_id, status)
