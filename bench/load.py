"""Load: concurrent ``run-circuit`` flow runs and a 1,000-shard run against a real Prefect server.

The outside tester's finding: 20 flow runs at once on the default SQLite server gave 503 "database
is locked" answers and 2 of 20 runs crashed. This script measures the same load on the database
you choose, against a real ``prefect server start`` it starts on 127.0.0.1 (its own temporary
``PREFECT_HOME``, no UI, no analytics):

* ``--database sqlite`` (default): the server's own SQLite file, as ``prefect server start`` has it.
* ``--database postgres``: a throwaway PostgreSQL cluster started with
  ``deployments/postgres_server.sh db`` (a data directory under /tmp, a free port, 127.0.0.1),
  stopped and removed at the end; the server gets ``PREFECT_API_DATABASE_CONNECTION_URL``.
* ``--api-url URL``: a server that is already running (nothing is started; ``--server-log`` names
  its log, to count its errors).

Two ways to load it (``--via``):

* ``thread`` (default): the flow called in-process (as ``bench.prefect_overhead`` does) from 20
  threads at once. Every flow run, task run, state change, log batch and artifact is a real API
  round trip, and nothing else stands between the load and the database: no worker polling, no
  process start (20 flow-run processes spend most of this 2-core machine on imports). It is quick
  and isolates the database, so the e2e test uses it too. The runs get what deployment runs get:
  the client retry settings ``deployments/start_worker.sh`` exports (read from it; Prefect's own
  with ``--prefect-defaults``), a heartbeat every 30 s and the crash automation of
  ``deployments/automations.py`` (``--no-automations``: neither).
* ``worker``: the outside tester's setup. ``run-circuit`` deployed from ``prefect.yaml``
  (``prefect block register``, ``deployments/create_pools.sh``, ``prefect deploy``), one process
  worker started with ``deployments/start_worker.sh qcos`` (a process per flow run), runs created
  through the REST API as the UI's Run button does. Slower, but it has the requests a worker makes
  (polling, submitting, labels) that can fail too.

Measured, for the chosen database:

1. warm-up: one run (imports, the first matplotlib figure), untimed.
2. concurrent: ``--runs`` (20) flow runs started together, small circuits of a few shards each
   (``examples/nightly/bell_pairs.qasm``: 3 shards, ``blocks_4x6.qasm``: 4 shards, forced to
   ``strategy="partition"``) on a cluster of 4 ``local_cpu`` nodes of 12 qubits.
3. sequential (the anchor): the same runs one after another (``--no-sequential`` skips it).
4. big: one run of ``--shards`` (1,000) shards: 1,000 independent Bell pairs (2,000 qubits),
   ``strategy="partition"`` (which does not merge small components); the plan is checked to have
   exactly that many shards. Its anchor is the in-process driver (``DistributedQVM``) on the same spec.

Printed: runs completed, failed and crashed (a run whose flow call raised, or whose final state is
Crashed), the final states the server holds, server errors (HTTP 5xx in the server's access log,
how many of the errors it answered 503 for were "database is locked"), client retries (by status
code, or "exception" for timeouts and dropped connections), error records logged by the clients,
and wall times. Then (``<db>`` is ``sqlite`` or ``postgres``, with ``_worker`` via a worker):

* ``RESULT load_failed_runs_<db> ratio=(runs that did not complete) / runs target=0``
* ``RESULT load_concurrency_<db> ratio=concurrent wall / sequential wall target=1``
* ``RESULT load_1000_shards_<db> ratio=flow wall / in-process driver wall target=3``

Run: ``python -m bench.load [--database sqlite|postgres] [--via thread|worker] [--runs N] [--shards N]
[--no-sequential] [--prefect-defaults] [--json FILE] [--strict]``
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    Verdicts,
    _free_port,
    _stop_group,
    base_parser,
    environment,
    fmt_seconds,
    result_line,
    server_process,
    table,
)

REPO = Path(__file__).resolve().parents[1]
POSTGRES_SCRIPT = REPO / "deployments" / "postgres_server.sh"
START_WORKER = REPO / "deployments" / "start_worker.sh"
AUTOMATIONS = REPO / "deployments" / "automations.py"
HEARTBEAT_SECONDS = "30"  # prefect.yaml's PREFECT_FLOWS_HEARTBEAT_FREQUENCY for every deployment
SMALL_CIRCUITS = (REPO / "examples/nightly/bell_pairs.qasm", REPO / "examples/nightly/blocks_4x6.qasm")
CLUSTER_YAML = "nodes:\n  - provider: local_cpu\n    n_nodes: 4\n    max_qubits: 12\n"
TARGET_CONCURRENCY = 1.0
TARGET_BIG = 3.0
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

__all__ = [
    "LoadReport",
    "PrefectServer",
    "big_circuit",
    "client_retry_defaults",
    "count_client_log",
    "count_server_errors",
    "postgres_database",
    "postgres_unavailable",
    "prefect_server",
    "run_load",
    "run_load_via_worker",
]


# ---------------------------------------------------------------------------------------------
# Servers: PostgreSQL (through deployments/postgres_server.sh) and `prefect server start`
# ---------------------------------------------------------------------------------------------


def postgres_unavailable() -> str | None:
    """Why ``deployments/postgres_server.sh`` cannot run PostgreSQL here (``None`` when it can)."""
    if shutil.which("bash") is None:
        return "bash not found"
    done = subprocess.run(["bash", str(POSTGRES_SCRIPT), "check"], capture_output=True, text=True, timeout=60)
    return None if done.returncode == 0 else (done.stderr.strip() or done.stdout.strip() or "check failed")


def _postgres_env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QCOS_PG_")}
    env.update(QCOS_PG_DATA=str(data_dir), QCOS_PG_PORT=str(port), QCOS_PG_HOST="127.0.0.1")
    return env


def _kill_postmaster(data_dir: Path) -> None:
    """Last resort when ``pg_ctl stop`` did not finish: SIGQUIT (immediate shutdown), then SIGKILL."""
    pid_file = data_dir / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(pid_file.read_text().splitlines()[0])
        if b"postgres" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return  # a stale file: that process is gone, and the number may be another's now
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            os.kill(pid, sig)
            for _ in range(50):
                os.kill(pid, 0)  # raises once it is gone
                time.sleep(0.1)


@contextlib.contextmanager
def postgres_database(data_dir: Path | None = None, *, port: int | None = None) -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1, started with ``deployments/postgres_server.sh db``.

    ``data_dir`` (created if missing, it must be empty) holds the cluster; by default a new
    directory under the system's temporary folder, removed at the end. As root the script runs
    PostgreSQL as an unprivileged OS user, which must be able to enter every parent of
    ``data_dir`` (a folder made by ``tempfile.mkdtemp`` in /tmp is fine). Yields the
    ``postgresql+asyncpg://`` URL; on exit PostgreSQL is stopped (``stop``; killed if that fails).

    Raises:
        RuntimeError: the script failed (its output is in the message).
    """
    own = data_dir is None
    path = Path(tempfile.mkdtemp(prefix="qcos-pg-")) if data_dir is None else data_dir
    env = _postgres_env(path, port or _free_port())
    try:
        done = subprocess.run(
            ["bash", str(POSTGRES_SCRIPT), "db"], env=env, capture_output=True, text=True, timeout=180
        )
        if done.returncode != 0 or not done.stdout.strip():
            raise RuntimeError(f"postgres_server.sh db failed ({done.returncode}):\n{done.stderr[-3000:]}")
        yield done.stdout.strip().splitlines()[-1]
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(["bash", str(POSTGRES_SCRIPT), "stop"], env=env, capture_output=True, timeout=90)
        _kill_postmaster(path)
        if own:
            shutil.rmtree(path, ignore_errors=True)


@dataclass
class PrefectServer:
    """A running ``prefect server start``: its API URL and the file its output goes to."""

    api_url: str
    log: Path
    database: str


@contextlib.contextmanager
def prefect_server(
    home: Path,
    *,
    database_url: str | None = None,
    settings: Mapping[str, str] | None = None,
    timeout: float = 180.0,
) -> Iterator[PrefectServer]:
    """``prefect server start`` on 127.0.0.1 and a free port, its ``PREFECT_HOME`` under ``home``.

    SQLite (its own file under ``home``) unless ``database_url`` names another database. The server
    logs at INFO (one access-log line per request, so 5xx answers can be counted) and logs the
    errors it answers 503 for (``PREFECT_SERVER_LOG_RETRYABLE_ERRORS``). Nothing of this process's
    ``PREFECT_*`` environment reaches it. Yields a :class:`PrefectServer`; on exit its whole
    process group is stopped.

    Raises:
        RuntimeError: the server exited, or did not answer ``/api/health`` within ``timeout`` s.
    """
    env = {"PREFECT_SERVER_LOGGING_LEVEL": "INFO", "PREFECT_SERVER_LOG_RETRYABLE_ERRORS": "true"}
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    env.update(settings or {})
    with server_process(home, settings=env, timeout=timeout) as (url, log_path):
        yield PrefectServer(url, log_path, "postgres" if database_url else "sqlite")


_ACCESS = re.compile(r'"[A-Z]+ (\S+) HTTP/[\d.]+" (\d{3})')


def count_server_errors(log: Path, *, start: int = 0) -> dict[str, Any]:
    """Errors in a server log from byte ``start`` on: 5xx answers by status (from the access log),
    the requests answered 503 for a retryable database error, and "database is locked" errors."""
    text = log.read_bytes()[start:].decode(errors="replace") if log.exists() else ""
    statuses: Counter[str] = Counter()
    routes: Counter[str] = Counter()
    for match in _ACCESS.finditer(text):
        if match.group(2).startswith("5"):
            statuses[match.group(2)] += 1
            routes[re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "{id}", match.group(1))] += 1
    # each error the server answered 503 for: its log record up to the next record's timestamp
    record = r"Encountered retryable exception in request:\n(.*?)(?=^\d\d:\d\d:\d\d|\Z)"
    retryable = re.findall(record, text, flags=re.S | re.M)
    return {
        "http_5xx": sum(statuses.values()),
        "by_status": dict(statuses),
        "by_route": dict(routes.most_common(5)),
        "retryable_db_errors": len(retryable),
        "database_is_locked": sum("database is locked" in r for r in retryable),
        "internal_errors": text.count("Encountered exception in request"),
    }


# ---------------------------------------------------------------------------------------------
# Client side
# ---------------------------------------------------------------------------------------------


def client_retry_defaults() -> dict[str, str]:
    """The ``PREFECT_CLIENT_*`` defaults ``deployments/start_worker.sh`` exports when unset.

    Read from the script (its ``client_default NAME VALUE`` lines) so the benchmark and the test
    run what the workers run.
    """
    pattern = re.compile(r"^client_default (PREFECT_CLIENT_\w+) (\S+)$", re.MULTILINE)
    return dict(pattern.findall(START_WORKER.read_text()))


class _ClientCounter(logging.Handler):
    """Counts the Prefect client's retries (its debug lines) and passes on what was shown before."""

    def __init__(self, passthrough: int) -> None:
        super().__init__(logging.DEBUG)
        self.passthrough = passthrough
        self.retries: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Another attempt will be made" in message:
            match = re.search(r"status code (\d+)", message)
            with self._count_lock:
                self.retries[match.group(1) if match else "exception"] += 1
        if record.levelno >= self.passthrough:
            logging.getLogger().handle(record)


class _ErrorCounter(logging.Handler):
    """Counts the records of level ERROR and above that reach the root logger (flow and task runs
    log theirs there too), by logger."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.by_logger: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._count_lock:
            self.by_logger[record.name] += 1


@dataclass
class _Counts:
    retries: Counter[str]
    errors: Counter[str]


@contextlib.contextmanager
def _client_counts() -> Iterator[_Counts]:
    """Client retries and error records logged in this process while the block runs."""
    logger = logging.getLogger("prefect.client")
    # the root logger, and Prefect's internal one (its services: events and log batches), which does not propagate
    error_loggers = [logging.getLogger(), logging.getLogger("prefect._internal")]
    level, propagate = logger.level, logger.propagate
    retries, errors = _ClientCounter(logger.getEffectiveLevel()), _ErrorCounter()
    logger.addHandler(retries)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for each in error_loggers:
        each.addHandler(errors)
    try:
        yield _Counts(retries.retries, errors.by_logger)
    finally:
        for each in error_loggers:
            each.removeHandler(errors)
        logger.removeHandler(retries)
        logger.setLevel(level)
        logger.propagate = propagate


@dataclass
class RunRecord:
    """One flow call: its final state as the engine returned it, or what it raised."""

    label: str
    seconds: float
    state: str | None = None
    error: str | None = None

    @property
    def outcome(self) -> str:
        # a flow call that raised never reached a final state of its own: the run crashed
        return "CRASHED" if self.error is not None else (self.state or "UNKNOWN")


@dataclass
class Phase:
    """A batch of flow runs (concurrent or in turn) and what it cost."""

    name: str
    wall: float
    records: list[RunRecord]
    server_states: dict[str, int] = field(default_factory=dict)
    server_errors: dict[str, Any] = field(default_factory=dict)
    client_retries: dict[str, int] = field(default_factory=dict)
    client_errors: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> int:
        return sum(r.outcome == outcome for r in self.records)

    def summary(self) -> dict[str, Any]:
        return {
            "runs": len(self.records),
            "completed": self.count("COMPLETED"),
            "failed": self.count("FAILED"),
            "crashed": self.count("CRASHED"),
            "other": sum(r.outcome not in {"COMPLETED", "FAILED", "CRASHED"} for r in self.records),
            "wall_seconds": round(self.wall, 3),
            "run_seconds_max": round(max((r.seconds for r in self.records), default=0.0), 3),
            "server_states": self.server_states,
            "server_errors": self.server_errors,
            "client_retries": self.client_retries,
            "client_errors_logged": self.client_errors,
            "errors": [f"{r.label}: {r.error}" for r in self.records if r.error][:5],
        }


@dataclass
class LoadReport:
    database: str
    phases: list[Phase]
    big: dict[str, Any] | None = None
    via: str = "thread"

    @property
    def label(self) -> str:
        return self.database if self.via == "thread" else f"{self.database}_{self.via}"

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        phases = {p.name: p.summary() for p in self.phases}
        return {"database": self.database, "via": self.via, **phases, "big": self.big}


def big_circuit(blocks: int) -> str:
    """``blocks`` independent Bell pairs (``2 * blocks`` qubits), measured, as OpenQASM 2."""
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{2 * blocks}];", f"creg c[{2 * blocks}];"]
    for b in range(blocks):
        lines += [f"h q[{2 * b}];", f"cx q[{2 * b}],q[{2 * b + 1}];"]
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def _size(path: Path | None) -> int:
    return path.stat().st_size if path is not None and path.exists() else 0


def _drain(timeout: float = 60.0) -> None:
    """Send the log batches and events still queued while the server is up: left for the exit, they
    meet a stopped server and the client retries each (about a minute) before giving up."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=timeout)


def _server_states(api_url: str, tag: str) -> dict[str, int]:
    """Final (or not) state types of the flow runs carrying ``tag``, as the server holds them."""
    import httpx

    states: Counter[str] = Counter()
    offset = 0
    while True:
        answer = httpx.post(
            f"{api_url}/flow_runs/filter",
            json={"flow_runs": {"tags": {"all_": [tag]}}, "limit": 200, "offset": offset},
            timeout=30,
        )
        answer.raise_for_status()
        page = answer.json()
        states.update((run.get("state") or {}).get("type", "NONE") for run in page)
        if len(page) < 200:
            return dict(states)
        offset += len(page)


def _close_phase(result: Phase, api_url: str, tag: str, server_log: Path | None, log_start: int) -> Phase:
    """Add what the server holds and logged for a phase's runs (tagged ``tag``), and print its wall."""
    result.server_states = _server_states(api_url, tag)
    if server_log is not None:
        time.sleep(0.5)  # the last access-log lines
        result.server_errors = count_server_errors(server_log, start=log_start)
    print(f"# {result.name}: {len(result.records)} run(s) in {fmt_seconds(result.wall)}", flush=True)
    return result


def run_load(
    api_url: str,
    work: Path,
    *,
    database: str,
    runs: int = 20,
    shots: int = 1024,
    seed: int = 1234,
    sequential: bool = True,
    shards: int = 1000,
    server_log: Path | None = None,
    client_settings: Mapping[str, str] | None = None,
    automations: bool = True,
) -> LoadReport:
    """Point this process at ``api_url`` and run the load (see the module docstring).

    Must run before anything imports Prefect (its settings are read from the environment then).
    ``client_settings`` are set in the environment unless already set there. With ``automations``
    the runs are watched as deployment runs are: a heartbeat every 30 s (as ``prefect.yaml`` sets)
    and the automations of ``deployments/automations.py`` (a run silent for 90 s is marked Crashed).
    """
    if "prefect" in sys.modules:
        raise RuntimeError("run_load() must run before anything imports prefect")
    work.mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_API_URL"] = api_url
    os.environ["PREFECT_HOME"] = str(work / "client")
    for key, value in (client_settings or {}).items():
        os.environ.setdefault(key, value)
    if automations:
        os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", HEARTBEAT_SECONDS)

    import prefect
    from prefect import tags

    from flows import RunCircuitParameters, run_circuit

    print(f"# prefect {prefect.__version__}; client: " + ", ".join(
        f"{k}={os.environ.get(k, '(prefect default)')}" for k in (
            "PREFECT_CLIENT_MAX_RETRIES", "PREFECT_CLIENT_RETRY_JITTER_FACTOR", "PREFECT_CLIENT_RETRY_EXTRA_CODES")
    ), flush=True)  # fmt: skip
    if automations:
        installed = runpy.run_path(str(AUTOMATIONS))["install"]()
        print(f"# automations: {', '.join(installed)}; heartbeat every {HEARTBEAT_SECONDS} s", flush=True)
    cluster = work / "cluster.yaml"
    cluster.write_text(CLUSTER_YAML)
    store = (work / "results").as_uri()
    small = [p.read_text() for p in SMALL_CIRCUITS]
    seeds = iter(range(seed, seed + 10_000_000))
    report = LoadReport(database, [])

    def call(label: str, qasm: str, tag: str) -> RunRecord:
        params = RunCircuitParameters(
            circuit=qasm, shots=shots, seed=next(seeds), cluster=str(cluster), storage=store,
            strategy="partition", name=label,
        )  # fmt: skip
        started = time.perf_counter()
        try:
            with tags("qcos-load", tag):
                state = run_circuit(params, return_state=True)
            return RunRecord(label, time.perf_counter() - started, state=state.type.value)
        except Exception as exc:  # the flow call itself failed: an API or engine error, not the flow's
            return RunRecord(label, time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}"[:500])

    def phase(name: str, count: int, *, concurrent: bool) -> Phase:
        tag = f"load-{name}-{uuid.uuid4().hex[:8]}"
        jobs = [(f"{name}-{i}", small[i % len(small)]) for i in range(count)]
        log_start = _size(server_log)
        with _client_counts() as counts:
            started = time.perf_counter()
            if concurrent:
                barrier = threading.Barrier(count)

                def together(job: tuple[str, str]) -> RunRecord:
                    barrier.wait(timeout=120)
                    return call(job[0], job[1], tag)

                with ThreadPoolExecutor(max_workers=count, thread_name_prefix="load") as pool:
                    records = list(pool.map(together, jobs))
            else:
                records = [call(label, qasm, tag) for label, qasm in jobs]
            wall = time.perf_counter() - started
        result = Phase(name, wall, records, client_retries=dict(counts.retries), client_errors=dict(counts.errors))
        return _close_phase(result, api_url, tag, server_log, log_start)

    phase("warmup", 1, concurrent=False)  # imports, the first figure: untimed
    report.phases.append(phase("concurrent", runs, concurrent=True))
    if sequential:
        report.phases.append(phase("sequential", runs, concurrent=False))
    if shards:
        report.big = _big_run(call, shards, shots=shots, seed=seed, work=work, server_log=server_log, api_url=api_url)
    _drain()
    return report


def _big_run(
    call: Callable[[str, str, str], RunRecord],
    shards: int,
    *,
    shots: int,
    seed: int,
    work: Path,
    server_log: Path | None,
    api_url: str,
    client_log: Path | None = None,
) -> dict[str, Any]:
    """One flow run of ``shards`` shards, and the in-process driver on the same spec as its anchor.

    ``client_log``: where the flow run's process logs (worker mode), to count its retries and errors.
    """
    from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
    from network.node_providers import ClusterBuilder
    from network.storage import ResultStore

    qasm = big_circuit(shards)
    registry = ClusterBuilder.from_yaml(work / "cluster.yaml").build()
    spec = VirtualCircuitSpec(qasm=qasm, strategy="partition", seed=seed)
    plan = DistributedQVM(registry, mode="dry_run").run(spec).plan
    if len(plan.shards) != shards:
        raise RuntimeError(f"the big circuit planned {len(plan.shards)} shards, not {shards}")
    tag = f"load-big-{uuid.uuid4().hex[:8]}"
    log_start, client_start = _size(server_log), _size(client_log)
    with _client_counts() as counts:
        record = call(f"big-{shards}", qasm, tag)
    retries, errors = (
        (counts.retries, counts.errors) if client_log is None else count_client_log(client_log, start=client_start)
    )
    started = time.perf_counter()
    qvm = DistributedQVM(registry, shots=shots, store=ResultStore((work / "qvm").as_uri()))
    result = qvm.run(VirtualCircuitSpec(qasm=qasm, strategy="partition", seed=seed + 1))
    anchor = time.perf_counter() - started
    if len(result.plan.shards) != shards:
        raise RuntimeError(f"the in-process run had {len(result.plan.shards)} shards, not {shards}")
    out: dict[str, Any] = {
        "shards": shards,
        "qubits": 2 * shards,
        "outcome": record.outcome,
        "error": record.error,
        "flow_seconds": round(record.seconds, 3),
        "qvm_seconds": round(anchor, 3),
        "server_states": _server_states(api_url, tag),
        "client_retries": dict(retries),
        "client_errors_logged": dict(errors),
    }
    if server_log is not None:
        out["server_errors"] = count_server_errors(server_log, start=log_start)
    print(f"# big: {shards} shards, flow {fmt_seconds(record.seconds)} ({record.outcome}), "
          f"in-process {fmt_seconds(anchor)}", flush=True)  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------
# Through a deployment and a process worker (--via worker): the tester's setup
# ---------------------------------------------------------------------------------------------


def count_client_log(log: Path, *, start: int = 0) -> tuple[Counter[str], Counter[str]]:
    """Client retries (by status code, or "exception") and ERROR records (by logger) in the log of
    a worker, which carries its flow runs' output; the flow runs log ``prefect.client`` at DEBUG."""
    text = log.read_bytes()[start:].decode(errors="replace") if log.exists() else ""
    retries: Counter[str] = Counter()
    for line in text.splitlines():
        if "Another attempt will be made" in line:
            match = re.search(r"status code (\d+)", line)
            retries[match.group(1) if match else "exception"] += 1
    record = r"^\S+ \| ERROR +\| (?:\S+ +\| )?(Flow run|Task run|[\w.]+)"  # the debug format names the thread too
    errors = Counter(m.group(1) for m in re.finditer(record, text, flags=re.M))
    return retries, errors


def run_load_via_worker(
    api_url: str,
    work: Path,
    *,
    database: str,
    runs: int = 20,
    shots: int = 1024,
    seed: int = 1234,
    sequential: bool = True,
    shards: int = 1000,
    server_log: Path | None = None,
    prefect_defaults: bool = False,
    automations: bool = True,
    timeout: float = 1200.0,
) -> LoadReport:
    """The load as the outside tester ran it: ``run-circuit`` deployed from ``prefect.yaml``, one
    process worker started with ``deployments/start_worker.sh qcos`` (each flow run its own
    process, with the script's client retry settings unless ``prefect_defaults``), runs created
    through the REST API as the UI does, and waited for. ``deployments/create_pools.sh`` makes the
    pools and, with ``automations``, the crash automation (the deployment sends heartbeats).
    Nothing here imports Prefect.
    """
    import httpx

    work.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    prefect = str(bin_dir / "prefect") if (bin_dir / "prefect").exists() else "prefect"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PWD=str(REPO),  # prefect.yaml's pull step: the flow code is read from this checkout
        PREFECT=prefect,
        PREFECT_API_URL=api_url,
        PREFECT_HOME=str(work / "client"),
        PREFECT_WORKER_QUERY_SECONDS="2",
        PREFECT_LOGGING_LOGGERS_PREFECT_CLIENT_LEVEL="DEBUG",  # each retry is a line in the worker's log
    )
    if prefect_defaults:  # start_worker.sh leaves settings that are set alone
        env.update(PREFECT_CLIENT_MAX_RETRIES="5", PREFECT_CLIENT_RETRY_JITTER_FACTOR="0.2")

    def setup(*args: str) -> None:
        done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")

    started = time.perf_counter()
    setup(prefect, "block", "register", "-m", "blocks")
    if automations:
        setup("bash", "deployments/create_pools.sh")
    else:
        setup(prefect, "work-pool", "create", "qcos", "--type", "process")
    setup(prefect, "--no-prompt", "deploy", "--name", "run-circuit")
    deployment = httpx.get(f"{api_url}/deployments/name/run-circuit/run-circuit", timeout=30).json()["id"]
    worker_log = work / "worker.log"
    with open(worker_log, "wb") as log:
        worker = subprocess.Popen(
            ["bash", "deployments/start_worker.sh", "qcos"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    print(f"# deployed run-circuit and started a worker in {fmt_seconds(time.perf_counter() - started)}", flush=True)
    cluster = work / "cluster.yaml"
    cluster.write_text(CLUSTER_YAML)
    store = (work / "results").as_uri()
    small = [p.read_text() for p in SMALL_CIRCUITS]
    seeds = iter(range(seed, seed + 10_000_000))
    report = LoadReport(database, [], via="worker")

    max_retries = int(env.get("PREFECT_CLIENT_MAX_RETRIES") or client_retry_defaults()["PREFECT_CLIENT_MAX_RETRIES"])
    refused: Counter[str] = Counter()  # the trigger's own 5xx answers (what the UI's Run button would get)

    def submit(label: str, qasm: str, tag: str) -> tuple[str, float]:
        """Create a run as the UI does; answers 503 are retried as Prefect's client does (2**n s)."""
        params = {"circuit": qasm, "shots": shots, "seed": next(seeds), "cluster": str(cluster), "storage": store,
                  "strategy": "partition", "name": label}  # fmt: skip
        at = time.perf_counter()
        for attempt in range(max_retries + 1):
            created = httpx.post(
                f"{api_url}/deployments/{deployment}/create_flow_run",
                json={"parameters": {"params": params}, "tags": ["qcos-load", tag]},
                timeout=120,
            )
            if created.status_code not in (429, 502, 503) or attempt == max_retries:
                break
            refused[str(created.status_code)] += 1
            time.sleep(2 ** (attempt + 1) * random.uniform(0.8, 1.2))
        created.raise_for_status()
        return created.json()["id"], at

    def wait(submitted: dict[str, tuple[str, float]]) -> list[RunRecord]:
        """Poll until every run is final (or ``timeout``); a run still going then is reported as such."""
        done: dict[str, RunRecord] = {}
        deadline = time.perf_counter() + timeout
        while len(done) < len(submitted) and time.perf_counter() < deadline:
            time.sleep(1.0)
            with contextlib.suppress(httpx.HTTPError, ValueError):
                found = httpx.post(
                    f"{api_url}/flow_runs/filter",
                    json={"flow_runs": {"id": {"any_": [i for i in submitted if i not in done]}}},
                    timeout=30,
                ).json()
                for run in found:
                    state = run.get("state") or {}
                    if state.get("type") in FINAL:
                        label, at = submitted[run["id"]]
                        done[run["id"]] = RunRecord(label, time.perf_counter() - at, state=state["type"])
                        if state["type"] != "COMPLETED":
                            print(f"#   {label}: {state['type']}: {(state.get('message') or '')[:300]}", flush=True)
        for run_id, (label, at) in submitted.items():
            if run_id not in done:
                done[run_id] = RunRecord(label, time.perf_counter() - at, state="NOT FINISHED")
        return [done[i] for i in submitted]

    def call(label: str, qasm: str, tag: str) -> RunRecord:
        run_id, at = submit(label, qasm, tag)
        return wait({run_id: (label, at)})[0]

    def phase(name: str, count: int, *, concurrent: bool) -> Phase:
        tag = f"load-{name}-{uuid.uuid4().hex[:8]}"
        jobs = [(f"{name}-{i}", small[i % len(small)]) for i in range(count)]
        log_start, client_start = _size(server_log), _size(worker_log)
        began = time.perf_counter()
        records: list[RunRecord] = []
        submitted: dict[str, tuple[str, float]] = {}
        for label, qasm in jobs:
            try:
                run_id, at = submit(label, qasm, tag)
            except httpx.HTTPStatusError as exc:  # refused even after the retries: the run never existed
                print(f"#   {label}: not created: {exc.response.status_code}", flush=True)
                records.append(RunRecord(label, 0.0, state="NOT CREATED"))
                continue
            if concurrent:
                submitted[run_id] = (label, at)
            else:
                records += wait({run_id: (label, at)})
        records += wait(submitted) if submitted else []
        wall = time.perf_counter() - began
        retries, errors = count_client_log(worker_log, start=client_start)
        retries.update({f"trigger {code}": n for code, n in refused.items()})
        refused.clear()
        result = Phase(name, wall, records, client_retries=dict(retries), client_errors=dict(errors))
        return _close_phase(result, api_url, tag, server_log, log_start)

    try:
        phase("warmup", 1, concurrent=False)
        report.phases.append(phase("concurrent", runs, concurrent=True))
        if sequential:
            report.phases.append(phase("sequential", runs, concurrent=False))
        if shards:
            report.big = _big_run(
                call, shards, shots=shots, seed=seed, work=work, server_log=server_log, api_url=api_url,
                client_log=worker_log,
            )  # fmt: skip
    finally:
        _stop_group(worker)
    return report


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _errors_cell(errors: Mapping[str, Any]) -> str:
    if not errors:
        return "n/a"
    return f"{errors['http_5xx']} ({errors['database_is_locked']} locked)"


def _print_report(report: LoadReport, verdicts: Verdicts) -> None:
    db = report.label
    rows = [["phase", "runs", "completed", "failed", "crashed", "wall", "slowest run", "server 5xx", "client retries",
             "errors logged"]]  # fmt: skip
    for p in report.phases:
        s = p.summary()
        rows.append([
            p.name, str(s["runs"]), str(s["completed"]), str(s["failed"]), str(s["crashed"]), fmt_seconds(p.wall),
            fmt_seconds(s["run_seconds_max"]), _errors_cell(p.server_errors), str(sum(p.client_retries.values())),
            str(sum(p.client_errors.values())),
        ])  # fmt: skip
    if report.big:
        b = report.big
        outcome = b["outcome"]
        rows.append([
            f"big ({b['shards']} shards)", "1", str(int(outcome == "COMPLETED")), str(int(outcome == "FAILED")),
            str(int(outcome not in {"COMPLETED", "FAILED"})), fmt_seconds(b["flow_seconds"]), "",
            _errors_cell(b.get("server_errors", {})), str(sum(b["client_retries"].values())),
            str(sum(b["client_errors_logged"].values())),
        ])  # fmt: skip
    print(f"\n== {report.database}, via {report.via}: runs, outcomes and errors ==")
    print(table(rows))
    for p in report.phases:
        print(f"# {p.name}: final states on the server {p.server_states}; client retries by cause {p.client_retries}"
              f"; errors logged by logger {p.client_errors}")  # fmt: skip
        if p.server_errors.get("http_5xx"):
            print(f"#   server 5xx by status {p.server_errors['by_status']}, by route {p.server_errors['by_route']}")
        for line in p.summary()["errors"]:
            print(f"#   {line}")
    if report.big:
        b = report.big
        print(f"# big: in-process driver {fmt_seconds(b['qvm_seconds'])}; states {b['server_states']}; errors logged "
              f"by logger {b['client_errors_logged']}" + (f"; error {b['error']}" if b["error"] else ""))  # fmt: skip

    print("\n== results ==")
    concurrent = report.phase("concurrent")
    if concurrent is not None:
        s = concurrent.summary()
        bad = s["runs"] - s["completed"]
        print(f"# load_failed_runs: runs that did not complete / runs (anchor: the {s['runs']} runs started)")
        verdicts.add(result_line(f"load_failed_runs_{db}", bad / max(1, s["runs"]), 0.0))
    sequential = report.phase("sequential")
    if concurrent is not None and sequential is not None:
        print("# load_concurrency: concurrent wall / sequential wall (same runs in turn, same server)")
        verdicts.add(result_line(f"load_concurrency_{db}", concurrent.wall / sequential.wall, TARGET_CONCURRENCY))
    if report.big:
        print("# load_1000_shards: flow wall / in-process driver wall (same spec, same cluster)")
        ratio = report.big["flow_seconds"] / report.big["qvm_seconds"]
        if report.big["outcome"] != "COMPLETED":
            ratio = float("inf")
        verdicts.add(result_line(f"load_{report.big['shards']}_shards_{db}", ratio, TARGET_BIG))


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0], repeat=1)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite",
                        help="the server's database (default sqlite)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=20, help="concurrent flow runs (default 20)")
    parser.add_argument("--shards", type=int, default=1000, help="shards of the big run (default 1000; 0 skips it)")
    parser.add_argument("--shots", type=int, default=1024, help="shots per run (default 1024)")
    parser.add_argument("--no-sequential", action="store_true", help="skip the sequential anchor")
    parser.add_argument("--via", choices=("thread", "worker"), default="thread",
                        help="thread: the flow called in-process from a thread per run (default); worker: "
                        "deployed, run by a process worker (a process per run), created through the API")  # fmt: skip
    parser.add_argument("--api-url", help="use this running server instead of starting one")
    parser.add_argument("--server-log", type=Path, help="with --api-url: the server's log, to count its errors")
    parser.add_argument("--prefect-defaults", action="store_true",
                        help="keep Prefect's client retry settings (not deployments/start_worker.sh's)")  # fmt: skip
    parser.add_argument("--no-automations", action="store_true",
                        help="no heartbeats and no crash automation (deployment runs have both)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("--keep-server-log", type=Path, help="copy the log of the server it started to this file")
    args = parser.parse_args(argv)
    verdicts = Verdicts(args.strict)
    client = {} if args.prefect_defaults else client_retry_defaults()

    print(f"# bench.load  ({environment()})")
    print(
        f"# database={args.database} via={args.via} runs={args.runs} shards={args.shards} shots={args.shots} "
        f"seed={args.seed}; client retries: {'prefect defaults' if args.prefect_defaults else client}"
    )
    with tempfile.TemporaryDirectory(prefix="qcos-bench-load-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        if args.api_url:
            api_url, server_log = args.api_url, args.server_log
        else:
            database_url = None
            if args.database == "postgres":
                reason = postgres_unavailable()
                if reason:
                    parser.error(f"--database postgres: {reason}")
                database_url = stack.enter_context(postgres_database())
                print("# PostgreSQL started with deployments/postgres_server.sh db", flush=True)
            server = stack.enter_context(prefect_server(work / "server", database_url=database_url))
            api_url, server_log = server.api_url, server.log
        if args.via == "worker":
            report = run_load_via_worker(
                api_url, work / "client", database=args.database, runs=args.runs, shots=args.shots, seed=args.seed,
                sequential=not args.no_sequential, shards=args.shards, server_log=server_log,
                prefect_defaults=args.prefect_defaults, automations=not args.no_automations,
            )  # fmt: skip
        else:
            report = run_load(
                api_url, work / "client", database=args.database, runs=args.runs, shots=args.shots, seed=args.seed,
                sequential=not args.no_sequential, shards=args.shards, server_log=server_log, client_settings=client,
                automations=not args.no_automations,
            )  # fmt: skip
        if args.keep_server_log and server_log is not None and not args.api_url:
            shutil.copyfile(server_log, args.keep_server_log)
    _print_report(report, verdicts)
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2))
    verdicts.exit()


if __name__ == "__main__":
    main()
