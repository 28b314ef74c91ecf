"""The scheduled experiment run: a small benchmark circuit set, every night, results persisted, and
a trend over the nights.

Each scheduled run draws a fresh seed (recorded) unless one is given, so every night is new work:
its own run keys, its own results folders, nothing reused from an earlier night. Each night's
figures go to the store as a table under ``runs/nightly-<UTC time>-<seed>/tables/nightly.parquet``;
the trend artifact reads the last nights' tables back and shows them as a table and a plot.
"""

from __future__ import annotations

import base64
import io
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from qiskit import QuantumCircuit

from flows.common import resolve_store
from flows.models import NightlyParameters, RunCircuitParameters, block_name
from flows.run_circuit import run_circuit
from network.circuits import derive_seed, parse_qasm
from network.storage import ResultStore

__all__ = ["nightly_benchmarks", "BENCHMARK_DIR", "circuit_fidelity", "trend_frame", "HISTORY_PREFIX"]

BENCHMARK_DIR = Path(__file__).resolve().parents[1] / "examples" / "nightly"
#: Run-key prefix of each night's table of figures.
HISTORY_PREFIX = "nightly-"
#: What the schedule runs with.
DEFAULTS = NightlyParameters()
#: Widest circuit whose exact distribution the nightly run computes for its fidelity figure.
MAX_EXACT_QUBITS = 16


def circuit_fidelity(circuit: QuantumCircuit, counts: dict[str, int]) -> float | None:
    """Hellinger fidelity of ``counts`` to the circuit's exact distribution, when it is a unitary
    followed by final measurements on at most :data:`MAX_EXACT_QUBITS` qubits (else ``None``)."""
    from qiskit.quantum_info import Statevector, hellinger_fidelity

    if circuit.num_qubits > MAX_EXACT_QUBITS or not counts:
        return None
    measured: dict[int, int] = {}  # clbit -> qubit
    body = circuit.copy_empty_like()
    for inst in circuit.data:
        name = inst.operation.name
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        if name == "measure":
            measured[circuit.find_bit(inst.clbits[0]).index] = qubits[0]
        elif name == "barrier":
            continue
        elif set(qubits) & set(measured.values()) or inst.clbits or inst.is_control_flow():
            return None  # a gate after a measurement of its qubit, or classical control: not a simple case
        else:
            body.append(inst)
    if sorted(measured) != list(range(circuit.num_clbits)) or len(circuit.cregs) > 1:
        return None
    exact = Statevector(body.remove_final_measurements(inplace=False)).probabilities_dict(
        qargs=[measured[c] for c in range(circuit.num_clbits)]
    )
    return float(hellinger_fidelity({k.replace(" ", ""): v for k, v in counts.items()}, exact))


def trend_frame(store: ResultStore, nights: int) -> Any:
    """The last ``nights`` nights' figures, one row per night and circuit (a pandas DataFrame)."""
    import pandas as pd

    frames = []
    for key in store.run_keys(HISTORY_PREFIX)[-nights:]:
        try:
            frames.append(store.read_table(key, "nightly"))
        except Exception:  # a night that died before writing its table
            continue
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True).sort_values(["started", "circuit"], ignore_index=True)


def _trend_png(frame: Any) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_fid) = plt.subplots(1, 2, figsize=(10, 3.5), dpi=100)
    for circuit, rows in frame.groupby("circuit"):
        x = list(range(len(rows)))
        labels = [str(s)[:10] for s in rows["started"]]
        ax_time.plot(x, rows["total_seconds"], marker="o", label=circuit)
        if rows["fidelity"].notna().any():
            ax_fid.plot(x, rows["fidelity"], marker="o", label=circuit)
        ax_time.set_xticks(x, labels, rotation=45, fontsize=7)
        ax_fid.set_xticks(x, labels, rotation=45, fontsize=7)
    ax_time.set_title("run time (s)")
    ax_fid.set_title("Hellinger fidelity to exact")
    ax_time.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _publish_trend(frame: Any, nights: int) -> None:
    columns = ["started", "seed", "circuit", "strategy", "shards", "total_seconds", "execute_seconds", "fidelity"]
    rows = [
        {k: (None if v != v else v) for k, v in row.items()}  # NaN (no fidelity) as an empty cell
        for row in frame[columns].tail(200).to_dict(orient="records")
    ]
    create_table_artifact(table=rows, key="qcos-nightly-trend", description=f"The last {nights} nights' figures")
    png = base64.b64encode(_trend_png(frame)).decode()
    lines = [
        f"# Nightly benchmarks: the last {frame['started'].nunique()} night(s)",
        "",
        f"![trend](data:image/png;base64,{png})",
        "",
        "| circuit | nights | last run time (s) | best (s) | last fidelity |",
        "|---|---|---|---|---|",
    ]
    for circuit, rows_of in frame.groupby("circuit"):
        last = rows_of.iloc[-1]
        fidelity = "-" if last["fidelity"] != last["fidelity"] else f"{last['fidelity']:.4f}"
        lines.append(
            f"| {circuit} | {len(rows_of)} | {last['total_seconds']:.3f} | {rows_of['total_seconds'].min():.3f} | "
            f"{fidelity} |"
        )
    create_markdown_artifact(markdown="\n".join(lines), key="qcos-nightly-trend-plot", description="Nightly trend")


@flow(name="nightly-benchmarks", validate_parameters=True)
def nightly_benchmarks(params: NightlyParameters = DEFAULTS) -> list[dict[str, Any]]:
    """Run every ``examples/nightly/*.qasm`` circuit through ``run-circuit`` (as subflows), record the
    night's figures and publish the trend over the last nights.

    Args:
        params: The cluster, the storage, the shots, the seed (empty: a fresh one every night) and how
            many nights the trend shows; the schedule runs with every default.
    """
    import pandas as pd

    cluster, storage, shots, seed, nights = params.cluster, params.storage, params.shots, params.seed, params.nights
    logger = get_run_logger()
    files = sorted(BENCHMARK_DIR.glob("*.qasm"))
    if not files:
        raise FileNotFoundError(f"No benchmark circuits in {BENCHMARK_DIR}.")
    night_seed = seed if seed is not None else secrets.randbits(31)
    started = datetime.now(UTC)
    logger.info("night seed %d (%s)", night_seed, "given" if seed is not None else "drawn afresh")
    store = resolve_store(storage)
    summaries, rows = [], []
    for path in files:
        text = path.read_text(encoding="utf-8")
        summary = run_circuit(
            RunCircuitParameters(
                circuit=text, shots=shots, seed=derive_seed(night_seed, path.stem), cluster=block_name(cluster),
                storage=block_name(storage), name=f"nightly {path.stem}",
            )
        )  # fmt: skip
        logger.info("%s -> %s", path.name, summary["storage_url"])
        summaries.append({"circuit": path.name, **summary})
        result = store.read_result(summary["run_key"])
        rows.append(
            {
                "started": started.isoformat(timespec="seconds"),
                "seed": night_seed,
                "circuit": path.stem,
                "run_key": summary["run_key"],
                "strategy": summary["strategy"],
                "shards": summary["shards"],
                "total_seconds": float(result.timings.get("total", float("nan"))),
                "execute_seconds": float(result.timings.get("execute", float("nan"))),
                "fidelity": circuit_fidelity(parse_qasm(text), result.counts),
            }
        )
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    store.write_table(f"{HISTORY_PREFIX}{stamp}-{night_seed}", "nightly", pd.DataFrame(rows))
    _publish_trend(trend_frame(store, nights), nights)
    return summaries
