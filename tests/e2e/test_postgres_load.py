"""End to end: the production database setup under load. PostgreSQL started with
`deployments/postgres_server.sh` (a throwaway cluster on 127.0.0.1 and a free port), a real
`prefect server start` on it, and 20 `run-circuit` flow runs at once (`bench.load`, the flow called
in-process from 20 threads, with the workers' client retry settings, heartbeats and the crash
automation): all of them complete. Both servers are stopped at the end, also on failure.

Skipped where PostgreSQL's server binaries (initdb, pg_ctl, postgres) are missing. About 45 s here.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.load import POSTGRES_SCRIPT, postgres_database, postgres_unavailable, prefect_server

REPO = Path(__file__).resolve().parents[2]
RUNS = 20
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture
def pg_data(tmp_path: Path) -> Iterator[Path]:
    """An empty folder for the cluster: under tmp_path, except as root. PostgreSQL refuses to run as
    root, so the script runs it as an unprivileged OS user, which cannot enter pytest's temporary
    folders (mode 0700); as root the cluster goes to a folder of its own under /tmp, removed after."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(f"PostgreSQL is not available: {reason}")
    if os.geteuid() != 0:
        yield tmp_path / "postgres"
        return
    path = Path(tempfile.mkdtemp(prefix="qcos-e2e-pg-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _rows(database_url: str, table: str) -> int:
    import asyncio

    import asyncpg

    async def count() -> int:
        connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return int(await connection.fetchval(f"SELECT count(*) FROM {table}"))
        finally:
            await connection.close()

    return asyncio.run(count())


def test_twenty_concurrent_runs_complete_on_postgres(pg_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "QCOS_PG_"))}
    with (
        postgres_database(pg_data) as database_url,
        prefect_server(tmp_path / "prefect", database_url=database_url) as server,
    ):
        pg_port = int(database_url.rsplit(":", 1)[1].split("/")[0])
        assert database_url.startswith("postgresql+asyncpg://") and "@127.0.0.1:" in database_url
        done = subprocess.run(
            [sys.executable, "-m", "bench.load", "--api-url", server.api_url, "--server-log", str(server.log),
             "--database", "postgres", "--runs", str(RUNS), "--shards", "0", "--no-sequential", "--json", str(out)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=420,
        )  # fmt: skip
        log = server.log.read_text(errors="replace")
        assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}\n{log[-3000:]}"
        report = json.loads(out.read_text())
        concurrent = report["concurrent"]
        assert (concurrent["runs"], concurrent["completed"]) == (RUNS, RUNS), f"{concurrent}\n{done.stdout}"
        assert concurrent["failed"] == 0 and concurrent["crashed"] == 0, concurrent
        assert concurrent["server_states"] == {"COMPLETED": RUNS}, concurrent
        # the server's own view of every run the load started (the warm-up run included)
        runs = httpx.post(
            f"{server.api_url}/flow_runs/filter", json={"flow_runs": {"tags": {"all_": ["qcos-load"]}}}, timeout=30
        ).json()
        assert len(runs) == RUNS + 1 and {r["state"]["type"] for r in runs} == {"COMPLETED"}
        assert _rows(database_url, "flow_run") == RUNS + 1  # they are in PostgreSQL
        assert _listening(pg_port)
    # both servers are gone
    assert not _listening(pg_port)
    status = subprocess.run(
        ["bash", str(POSTGRES_SCRIPT), "status"],
        env={**env, "QCOS_PG_DATA": str(pg_data), "QCOS_PG_PORT": str(pg_port)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 3, status.stdout + status.stderr
    assert not _listening(int(server.api_url.rsplit(":", 1)[1].split("/")[0]))
