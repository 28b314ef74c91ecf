"""The scheduled experiment run: a small benchmark circuit set, every night, results persisted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.models import RunCircuitParameters
from flows.run_circuit import run_circuit

__all__ = ["nightly_benchmarks", "BENCHMARK_DIR"]

BENCHMARK_DIR = Path(__file__).resolve().parents[1] / "examples" / "nightly"


@flow(name="nightly-benchmarks")
def nightly_benchmarks(
    cluster: str | None = None, storage: str | None = None, shots: int = 4096, seed: int = 20261124
) -> list[dict[str, Any]]:
    """Run every ``examples/nightly/*.qasm`` circuit through ``run-circuit`` (as subflows)."""
    logger = get_run_logger()
    files = sorted(BENCHMARK_DIR.glob("*.qasm"))
    if not files:
        raise FileNotFoundError(f"No benchmark circuits in {BENCHMARK_DIR}.")
    summaries = []
    for path in files:
        params = RunCircuitParameters(
            circuit=path.read_text(encoding="utf-8"), shots=shots, seed=seed, cluster=cluster, storage=storage,
            name=f"nightly {path.stem}",
        )  # fmt: skip
        summary = run_circuit(params)
        logger.info("%s -> %s", path.name, summary["storage_url"])
        summaries.append({"circuit": path.name, **summary})
    return summaries
