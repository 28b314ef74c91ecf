"""Prefect flows: driver B of the design. They wrap the pure stages of ``network``; no logic lives
only here. ``DistributedQVM.run`` (driver A) needs no server; these flows are for deployments,
schedules, the UI, retries and sweeps."""

from flows.logs import install_run_logging

install_run_logging()  # retries, failovers and re-attachments in the Prefect UI

from flows.execute_shards import execute_shards  # noqa: E402
from flows.models import ExecuteShardsRequest, RunCircuitParameters, RunSweepParameters  # noqa: E402
from flows.nightly import nightly_benchmarks  # noqa: E402
from flows.run_circuit import run_circuit  # noqa: E402
from flows.run_sweep import run_sweep  # noqa: E402

__all__ = [
    "run_circuit",
    "run_sweep",
    "execute_shards",
    "nightly_benchmarks",
    "RunCircuitParameters",
    "RunSweepParameters",
    "ExecuteShardsRequest",
]
