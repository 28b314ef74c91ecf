"""``custom_rest``: nodes behind any HTTP service that speaks the QCOS REST protocol.

The protocol (the reference server, :mod:`providers.custom_rest.server`, implements it)::

    POST {base}/run-circuit   {"qasm": str, "shots": int, "seed": int | null, "job_key": str}
         -> the job document below
    GET  {base}/jobs/{job_id}
         -> {"job_id": str, "status": "QUEUED" | "RUNNING" | "COMPLETED" | "FAILED" | "CANCELLED",
             "counts": {bitstring: int}   (once COMPLETED), "error": str   (once FAILED)}
    POST {base}/jobs/{job_id}/cancel
         -> the job document: CANCELLED, or its final status if it finished first
    GET  {base}/capabilities
         -> {"max_qubits": int, "basis_gates": [str], "cost_per_shot": float,
             "cost_per_task": float, "cost_per_second": float}      (every key optional)

A repeated ``job_key`` returns the job it first created (unless that job was cancelled: then it
starts a new one), so a retried or re-run submission is never paid for twice. An unknown job id is
HTTP 404. A cancelled job does not run, or its result is discarded; a server that cannot cancel
answers 404, 405 or 501, and the job then counts as possibly still running. Job ids are at most 256
letters, digits and ``._:/@+=-``, starting with a letter or digit, with no ``.`` or ``..`` segment
(they are stored, and sent back quoted as one path segment under ``jobs/``).

Count keys are in Qiskit order (classical bit 0 rightmost), one character per classical bit of the
submitted circuit, and the counts sum to the shots. Anything else (a body that is not JSON, keys of
the wrong width or not binary, negative or fractional counts, a wrong total, a body over
``max_response_bytes``, an unusable job id or one holding the bearer token) is rejected with
:class:`~network.errors.ProviderResultError` naming the node and the defect.

Every call is idempotent (submissions by ``job_key``), so HTTP 408, 429, 500, 502, 503 and 504 are
transient: a ``Retry-After`` header (seconds or an HTTP date) on them is honoured by repeating the
request after it, up to three times and :data:`MAX_RETRY_AFTER` seconds of waiting in one call (and
never past the deadline of the job being waited for); then, as for a server that is unreachable or
does not deliver a whole response (status line, headers and body) within ``connect_timeout +
read_timeout`` seconds, :class:`~network.errors.TransientExecutionError` goes to the executor, which
retries within its :class:`~network.execution.RetryPolicy`. Other statuses (501 included) are
permanent. Past a node's ``job_timeout`` the job is cancelled with the call above.

Modes: LIVE talks to the endpoint (and fetches ``/capabilities`` in :meth:`CustomRestProvider.prepare`
for whatever the cluster file does not declare); EMULATED runs on local Aer and sends nothing;
DRY_RUN contacts nothing. The bearer token comes from a
:class:`~blocks.credentials.RestEndpointCredentials` block named by ``credentials``, else from the
environment variable ``token_env`` (default ``QCOS_REST_TOKEN``); it never enters a spec, a log line,
a result, a job id, an error message or the repr of the provider's caches. Requests go through the
HTTP(S) proxy that ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` name for the endpoint, unless
``NO_PROXY`` exempts it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import ssl
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpcore
import httpx

from network.circuits import normalize_counts
from network.errors import (
    ClusterConfigError,
    ExecutionError,
    JobTimeoutError,
    NodeUnavailableError,
    ProviderResultError,
    QVMError,
    TransientExecutionError,
)
from network.execution import check_job_id
from network.node_providers import JobStatus, NodeJob, NodeProvider, QPUNodeSpec, QVMMode

if TYPE_CHECKING:
    from qiskit import QuantumCircuit

    from providers.aer import LocalCPUProvider

__all__ = [
    "CustomRestProvider",
    "UnknownJobError",
    "circuit_to_qasm",
    "DEFAULT_TOKEN_ENV",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "EMULATOR",
    "MAX_RETRY_AFTER",
    "TRANSIENT_STATUS",
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
#: HTTP statuses worth retrying (every call of the protocol is idempotent): a request timeout,
#: throttling, a server error and gateways that lost their upstream. 501 and the other 5xx are permanent.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: Most seconds one call waits in all for the ``Retry-After`` of transient responses before it gives
#: the transient error to the executor (a longer ``Retry-After`` is not waited for here).
MAX_RETRY_AFTER = 60.0
#: Most requests one call repeats after a ``Retry-After``.
_RETRY_AFTER_TRIES = 3

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

    def redact(self, text: str, limit: int = _MAX_QUOTE) -> str:
        """``text`` with the token (if a server echoed it) masked, then cut to ``limit`` characters."""
        secret = self.secret
        if secret:
            text = text.replace(secret, "***")
        return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class _Block:
    """What a ``RestEndpointCredentials`` block gives: ``headers`` may hold the token, kept out of reprs."""

    base_url: str | None
    timeout: float | None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


class _JobDeadlineReached(TransientExecutionError):
    """A request cut short at the deadline of the job being waited for (:meth:`CustomRestProvider.wait`)."""


# -- one deadline for a whole HTTP exchange ---------------------------------------------------------
#
# httpx's read timeout bounds each socket read and restarts with every byte, so a server that drips
# its status line and headers would hold a request forever. Every connect, read and write of the
# transport below is instead cut to what is left of the exchange's deadline, kept per thread (a
# request runs wholly in its caller's thread).

_EXCHANGE = threading.local()  # .deadline: monotonic time the current exchange ends by; .job_deadline: see wait()


@contextlib.contextmanager
def _exchange_deadline(deadline: float) -> Iterator[None]:
    previous = getattr(_EXCHANGE, "deadline", None)
    _EXCHANGE.deadline = deadline
    try:
        yield
    finally:
        _EXCHANGE.deadline = previous


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` cut to what is left of this thread's exchange deadline.

    Raises:
        expired: The deadline has passed (an httpcore timeout, mapped to httpx's by the transport).
    """
    deadline = getattr(_EXCHANGE, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the exchange deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        timeout = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's socket backend, its connections wrapped in :class:`_DeadlineStream`."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        timeout = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """httpcore's exceptions raised as httpx's of the same name, as httpx's own transport does."""
    try:
        yield
    except Exception as exc:
        for cls in type(exc).__mro__:
            mapped = getattr(httpx, cls.__name__, None) if cls.__module__.startswith("httpcore") else None
            if isinstance(mapped, type) and issubclass(mapped, httpx.TransportError):
                raise mapped(str(exc)) from exc
        raise


class _DeadlineBody(httpx.SyncByteStream):
    """A response body read through :class:`_DeadlineStream`, its errors raised as httpx's."""

    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class _DeadlineTransport(httpx.BaseTransport):
    """httpx's default transport (same limits, certificates and proxy), on :class:`_DeadlineBackend`;
    waiting for a pooled connection ends by the exchange deadline too.

    Args:
        proxy: The HTTP(S) proxy to go through (:func:`_env_proxy`), or ``None``.
    """

    def __init__(self, proxy: str | None = None) -> None:
        pool: dict[str, Any] = {
            "ssl_context": httpx.create_ssl_context(),
            "max_connections": 100,
            "max_keepalive_connections": 20,
            "keepalive_expiry": 5.0,
            "network_backend": _DeadlineBackend(),
        }
        if proxy is None:
            self._pool: httpcore.ConnectionPool = httpcore.ConnectionPool(**pool)
        else:
            via = httpx.Proxy(proxy)
            url = httpcore.URL(scheme=via.url.raw_scheme, host=via.url.raw_host, port=via.url.port, target=b"/")
            self._pool = httpcore.HTTPProxy(proxy_url=url, proxy_auth=via.raw_auth, **pool)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.SyncByteStream):
            raise TypeError("the custom_rest transport is synchronous")
        with _as_httpx_errors():
            timeouts = dict(request.extensions.get("timeout", {}))
            timeouts["pool"] = _bounded(timeouts.get("pool"), httpcore.PoolTimeout)
            url = httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            )
            extensions = {**request.extensions, "timeout": timeouts}
            core = httpcore.Request(
                request.method, url, headers=request.headers.raw, content=request.stream, extensions=extensions
            )
            response = self._pool.handle_request(core)
        if not isinstance(response.stream, Iterable):  # pragma: no cover - httpcore's sync pool
            raise TypeError("the custom_rest transport is synchronous")
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_DeadlineBody(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


def _env_proxy(base_url: str) -> str | None:
    """The proxy that ``HTTP_PROXY``, ``HTTPS_PROXY`` or ``ALL_PROXY`` names for ``base_url``, unless
    ``NO_PROXY`` exempts its host (as :mod:`urllib.request` reads them), or ``None``.

    Raises:
        NodeUnavailableError: The proxy is not an http:// or https:// URL (SOCKS is not supported).
    """
    proxies = urllib.request.getproxies()
    parts = urlsplit(base_url)
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.netloc):
        return None
    proxy = proxy if "://" in proxy else f"http://{proxy}"
    scheme = urlsplit(proxy).scheme
    if scheme not in ("http", "https"):
        raise NodeUnavailableError(
            f"The environment names a {scheme}:// proxy for {base_url}; custom_rest nodes go through http:// "
            "or https:// proxies only (set NO_PROXY to reach the endpoint directly)."
        )
    return proxy


def _retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delay-seconds, or an HTTP date), or ``None``
    when it is absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _job_path(job_id: str, node: QPUNodeSpec, endpoint: _Endpoint, action: str = "") -> str:
    """The request path of ``job_id``: one quoted segment under ``jobs/``, then ``/{action}`` if given.

    Raises:
        ProviderResultError: ``job_id`` is not usable (:func:`_checked_job_id`); no request is sent.
    """
    _checked_job_id(job_id, node, endpoint)
    return f"jobs/{quote(job_id, safe='')}" + (f"/{action}" if action else "")


def _checked_job_id(job_id: object, node: QPUNodeSpec, endpoint: _Endpoint, where: str | None = None) -> str:
    """``job_id`` if it holds no bearer token and is safe to store and to put in a URL
    (:func:`~network.execution.check_job_id`).

    Args:
        where: The request whose response holds the id; ``None`` for an id about to be requested.

    Raises:
        ProviderResultError: It is not; the message masks the token and quotes at most 60 characters.
    """
    secret = endpoint.secret
    if secret and isinstance(job_id, str) and secret in job_id:
        defect = "contains the bearer token"
    else:
        try:
            return check_job_id(job_id, node)
        except ProviderResultError:
            defect = (
                "is not usable (expected up to 256 letters, digits and '._:/@+=-', starting with a letter or digit, "
                "no '.' or '..' segment)"
            )
    shown = endpoint.redact(repr(job_id), 60)
    if where is None:
        message = f"Node {node.node_id!r}: job id {shown} {defect}; no request was sent."
    else:
        message = f"Node {node.node_id!r}: {where} returned job id {shown}, which {defect}; it was not stored."
    raise ProviderResultError(message)


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
        self._blocks: dict[str, _Block] = {}
        self._salt = secrets.token_bytes(16)  # keys the client cache by a keyed hash of the headers, not the token
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
        """Submit, wait for the job (within the node's job deadline) and return its validated counts
        (sweeps and direct calls).

        Raises:
            ExecutionError: The job failed; the message names the node and quotes the server.
            JobTimeoutError: The job did not finish within :meth:`job_deadline`; it was cancelled at
                the endpoint, or the message says that cancelling it failed.
            ProviderResultError: The counts do not match the circuit.
            TransientExecutionError: The endpoint could not be reached or stalled.
        """
        if node_spec.emulates is not None:
            return self._emulate(circuit, shots, node_spec, seed)
        timeout = self.job_deadline(node_spec)
        deadline = None if timeout is None else time.monotonic() + timeout
        job = self.submit(circuit, shots, node_spec, seed=seed)
        try:
            job = self.wait(job, node_spec, interval=0.05, max_interval=2.0, deadline=deadline)
        except JobTimeoutError as late:
            job = self._cancel_late(job, node_spec, late)
        counts = self.counts_of(job, node_spec)
        return normalize_counts(counts, width=circuit.num_clbits, shots=shots, node_id=node_spec.node_id)

    def _cancel_late(self, job: NodeJob, node_spec: QPUNodeSpec, late: JobTimeoutError) -> NodeJob:
        """Cancel ``job``, past its deadline in :meth:`execute`; returns it only if it finished meanwhile.

        Raises:
            JobTimeoutError: Always otherwise, saying whether the cancellation was confirmed.
        """
        try:
            final = self.cancel(job, node_spec)
        except QVMError as exc:
            message = f"{late} Cancelling it failed ({exc}); it may still run."
            raise JobTimeoutError(message, job_id=job.job_id) from late
        if final.status is JobStatus.COMPLETED:
            return final
        outcome = "it was cancelled" if final.status.done else "its cancellation is not confirmed"
        raise JobTimeoutError(f"{late} {outcome.capitalize()} ({final.status.value}).", job_id=job.job_id) from late

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
            ExecutionError: The server refused the circuit (4xx, 501...), or it cannot be written as OpenQASM.
            ProviderResultError: The response is not a job, or its job id is unusable or holds the token.
            TransientExecutionError: The endpoint could not be reached, stalled, or kept asking to retry.
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
        """GET the job's current state.

        Raises:
            ProviderResultError: The job id is unusable (no request is sent), or so is the response.
            UnknownJobError: The endpoint does not know the job.
            TransientExecutionError: The endpoint could not be reached, stalled, or kept asking to retry.
        """
        if job.status.done:
            return job
        return self._get_job(job.job_id, node_spec)

    def wait(
        self,
        job: NodeJob,
        node_spec: QPUNodeSpec,
        *,
        interval: float = 0.5,
        max_interval: float = 5.0,
        deadline: float | None = None,
    ) -> NodeJob:
        """Poll ``job`` until it is done (:meth:`NodeProvider.wait`). Each poll's request, and any
        ``Retry-After`` pause, also ends by ``deadline`` (the last look after it aside), so a stalled
        or throttling endpoint cannot hold the job past its node's ``job_timeout``.

        Raises:
            JobTimeoutError: The job was not done by ``deadline``, or a poll was cut short by it; the
                job is not cancelled here.
            TransientExecutionError: A poll failed before the deadline.
        """
        previous = getattr(_EXCHANGE, "job_deadline", None)
        _EXCHANGE.job_deadline = deadline
        try:
            return super().wait(job, node_spec, interval=interval, max_interval=max_interval, deadline=deadline)
        except TransientExecutionError as exc:
            if deadline is None or not (isinstance(exc, _JobDeadlineReached) or time.monotonic() >= deadline):
                raise
            raise JobTimeoutError(
                f"Node {node_spec.node_id!r}: job {job.job_id} did not finish by its deadline; the last poll failed: "
                f"{exc}",
                job_id=job.job_id,
            ) from exc
        finally:
            _EXCHANGE.job_deadline = previous

    def cancel(self, job: NodeJob, node_spec: QPUNodeSpec) -> NodeJob:
        """POST ``jobs/{job_id}/cancel`` and return the job it answers: CANCELLED, or its final
        status if it finished first. A finished job (an emulated one is born finished) is returned
        as it is.

        Raises:
            UnknownJobError: The endpoint does not know the job, or does not implement cancellation
                (HTTP 404): it may still run.
            ExecutionError: The endpoint refused (HTTP 405, 501...).
            ProviderResultError: The job id is unusable (nothing is sent), or the response is not
                this job.
            TransientExecutionError: The endpoint could not be reached, stalled, or kept asking to retry.
        """
        if job.status.done:
            return job
        endpoint = self._endpoint(node_spec)
        path = _job_path(job.job_id, node_spec, endpoint, "cancel")
        where = f"POST {path}"
        final = self._job(self._request(node_spec, endpoint, "POST", path), node_spec, endpoint, where)
        if final.job_id != job.job_id:
            raise ProviderResultError(f"Node {node_spec.node_id!r}: {where} returned job {final.job_id!r} instead.")
        return final

    def attach(self, job_id: str, node_spec: QPUNodeSpec) -> NodeJob:
        """Re-attach to ``job_id`` (from the ledger) with one GET.

        Raises:
            UnknownJobError: The endpoint does not know the job (a ``LookupError``: the shard is
                submitted again, under the same job key).
            LookupError: The node runs emulated, where jobs do not outlive the process.
            ProviderResultError: The job id is unusable (no request is sent), or so is the response.
        """
        if node_spec.emulates is not None:
            raise LookupError(f"Node {node_spec.node_id!r} runs emulated; job {job_id!r} is not kept.")
        return self._get_job(job_id, node_spec)

    def _get_job(self, job_id: str, node_spec: QPUNodeSpec) -> NodeJob:
        endpoint = self._endpoint(node_spec)
        path = _job_path(job_id, node_spec, endpoint)
        job = self._job(self._request(node_spec, endpoint, "GET", path), node_spec, endpoint, f"GET {path}")
        if job.job_id != job_id:
            raise ProviderResultError(f"Node {node_spec.node_id!r}: GET {path} returned job {job.job_id!r} instead.")
        return job

    def is_transient(self, error: BaseException) -> bool:
        """Connection failures, timeouts and HTTP 408/429/500/502/503/504 are transient; the rest is not."""
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
        headers: Mapping[str, str] = {}
        timeout: float | None = None
        block_name = options.get("credentials")
        if block_name:
            block = self._block(node, block_name)
            base_url = base_url or block.base_url
            headers, timeout = block.headers, block.timeout
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
            headers=dict(headers),
        )

    def _block(self, node: QPUNodeSpec, name: str) -> _Block:
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
        block = _Block(kwargs.get("base_url"), kwargs.get("timeout"), dict(kwargs.get("headers", {})))
        with self._lock:
            self._blocks[name] = block
        return block

    def _client(self, endpoint: _Endpoint) -> httpx.Client:
        """The endpoint's client, cached under a keyed hash of its headers (the token stays out of reprs).

        Raises:
            NodeUnavailableError: The environment names a proxy other than http(s) for the endpoint.
        """
        headers = json.dumps(sorted(endpoint.headers.items())).encode()
        key = (
            endpoint.base_url,
            hmac.new(self._salt, headers, hashlib.sha256).hexdigest()[:16],
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
                    transport=_DeadlineTransport(_env_proxy(endpoint.base_url)),
                )
        return client

    def _request(self, node: QPUNodeSpec, endpoint: _Endpoint, method: str, path: str, *, body: Any = None) -> Any:
        """One call: returns the decoded JSON body of a 2xx response.

        A transient status with a ``Retry-After`` is requested again after it, up to
        ``_RETRY_AFTER_TRIES`` times and :data:`MAX_RETRY_AFTER` seconds of waiting in all, never
        past the deadline of the job being waited for.

        Raises:
            TransientExecutionError: Network failure, no whole response within the deadline
                (:meth:`_exchange`), or an HTTP status in :data:`TRANSIENT_STATUS`.
            UnknownJobError: HTTP 404 on a job.
            ExecutionError: Any other non-2xx status.
            ProviderResultError: An oversized or non-JSON body.
        """
        where = f"{method} {endpoint.base_url}/{path}"
        waited = 0.0
        tries = 0
        while True:
            status, retry_after, data = self._exchange(node, endpoint, method, path, body, where)
            if 200 <= status < 300:
                break
            error = self._status_error(node, endpoint, where, status, data, path)
            delay = _retry_after(retry_after) if isinstance(error, TransientExecutionError) else None
            if delay is None:
                raise error
            job_deadline = getattr(_EXCHANGE, "job_deadline", None)
            if job_deadline is not None and time.monotonic() + delay >= job_deadline:
                raise TransientExecutionError(f"{error} (Retry-After: {delay:g} s, past the job's deadline)")
            if tries >= _RETRY_AFTER_TRIES or waited + delay > MAX_RETRY_AFTER:
                raise TransientExecutionError(
                    f"{error} (Retry-After: {delay:g} s; {tries} retries after {waited:g} s of waiting in this call, "
                    f"at most {_RETRY_AFTER_TRIES} and {MAX_RETRY_AFTER:g} s)"
                )
            log.info("%s -> HTTP %d, Retry-After %g s: waiting, then asking again", where, status, delay)
            time.sleep(delay)
            waited += delay
            tries += 1
        try:
            return json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
            snippet = endpoint.redact(data.decode("utf-8", "replace"), 80)
            raise ProviderResultError(
                f"Node {node.node_id!r}: {where} returned a body that is not JSON: {snippet!r}."
            ) from None

    def _exchange(
        self, node: QPUNodeSpec, endpoint: _Endpoint, method: str, path: str, body: Any, where: str
    ) -> tuple[int, str | None, bytes]:
        """One HTTP exchange: its status, ``Retry-After`` header and body.

        Connecting, sending, the status line, the headers and the body all end by one deadline,
        ``connect_timeout + read_timeout`` seconds on (or the job's deadline while :meth:`wait`
        polls, when that comes first). The body is streamed and reading stops past
        ``max_response_bytes``. httpx exceptions are not chained: they hold the request, and so
        its Authorization header.

        Raises:
            TransientExecutionError: Network failure or the deadline passed.
            ExecutionError: Any other transport failure.
            ProviderResultError: An oversized body.
        """
        limit = endpoint.max_response_bytes
        budget = endpoint.connect_timeout + endpoint.read_timeout
        start = time.monotonic()
        deadline = start + budget
        job_deadline: float | None = getattr(_EXCHANGE, "job_deadline", None)
        by_job = job_deadline is not None and start < job_deadline < deadline
        if job_deadline is not None and by_job:
            deadline = job_deadline

        def timed_out(detail: str) -> TransientExecutionError:
            if by_job:
                return _JobDeadlineReached(
                    f"Node {node.node_id!r}: {where} timed out: no whole response by the job's deadline{detail}."
                )
            return TransientExecutionError(
                f"Node {node.node_id!r}: {where} timed out: no whole response within {budget:g} s "
                f"(connect_timeout + read_timeout){detail}."
            )

        try:
            with _exchange_deadline(deadline), self._client(endpoint).stream(method, path, json=body) as response:
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
                        raise timed_out(": the body was still arriving")
                    chunks.append(chunk)
                status, retry_after = response.status_code, response.headers.get("retry-after")
        except httpx.HTTPError as exc:
            detail = f" ({type(exc).__name__}: {endpoint.redact(str(exc))})"
            if time.monotonic() >= deadline - 0.05:  # cut by the deadline (a socket timeout ends at most this early)
                raise timed_out(detail) from None
            kind = TransientExecutionError if self.is_transient(exc) else ExecutionError
            how = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
            raise kind(f"Node {node.node_id!r}: {where} {how}{detail}.") from None
        log.debug("%s -> HTTP %d, %d bytes", where, status, size)
        return status, retry_after, b"".join(chunks)

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
        """The error a non-2xx status stands for: transient for :data:`TRANSIENT_STATUS`, the server's
        message quoted (token masked)."""
        try:
            decoded = json.loads(data)
            message = decoded.get("detail") or decoded.get("error") if isinstance(decoded, dict) else None
        except (ValueError, RecursionError):
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
        job_id = _checked_job_id(job_id, node, endpoint, where)
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
