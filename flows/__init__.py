"""Prefect flows: driver B of the design. They wrap the pure stages of ``network``; no logic lives
only here. ``DistributedQVM.run`` (driver A) needs no server; these flows are for deployments,
schedules, the UI, retries and sweeps."""

from flows.execute_shards import execute_shards
from flows.models import ExecuteShardsRequest, RunCircuitParameters, RunSweepParameters
from flows.nightly import nightly_benchmarks
from flows.run_circuit import run_circuit
from flows.run_sweep import run_sweep

__all__ = [
    "run_circuit",
    "run_sweep",
    "execute_shards",
    "nightly_benchmarks",
    "RunCircuitParameters",
    "RunSweepParameters",
    "ExecuteShardsRequest",
]
