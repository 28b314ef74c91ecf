"""Artifacts shown in the Prefect UI: a markdown summary, a shard table, a counts histogram and
a progress bar updated as shards finish."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

from prefect.artifacts import (
    create_image_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from network.planning import ShardPlan
from network.results import QVMResult
from network.storage import ResultStore

__all__ = ["Progress", "publish_plan", "publish_result", "histogram_png"]


class Progress:
    """A progress artifact advanced as shards finish.

    Each update is an API call: the artifact moves at most every ``interval`` seconds (and always at
    100 %), so a run of 1,000 small shards does not spend most of its time on its progress bar.
    """

    def __init__(self, total: int, description: str, *, interval: float = 1.0) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.interval = interval
        self.id = create_progress_artifact(progress=0.0, key="qcos-shards-progress", description=description)
        self._shown = 0.0
        self._last = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.done += n
        percent = round(100.0 * min(self.done, self.total) / self.total, 1)
        now = time.monotonic()
        if percent > self._shown and (percent >= 100.0 or now - self._last >= self.interval):
            update_progress_artifact(artifact_id=self.id, progress=percent)  # type: ignore[arg-type]
            self._shown, self._last = percent, now


def shard_rows(plan: ShardPlan) -> list[dict[str, Any]]:
    rows = []
    for shard in plan.shards:
        node = plan.node(shard.node_id)
        rows.append(
            {
                "shard": shard.shard_id,
                "kind": shard.kind,
                "node": shard.node_id,
                "provider": node.provider_key,
                "method": node.method,
                "work_pool": node.work_pool or "",
                "qubits": shard.width,
                "shots": shard.shots,
                "exact": shard.exact,
                "est_seconds": round(shard.estimated_seconds, 4),
                "est_cost": shard.estimated_cost,
            }
        )
    return rows


def publish_plan(plan: ShardPlan, label: str) -> None:
    create_table_artifact(table=shard_rows(plan), key="qcos-shards", description=f"Shards of {label}")


def histogram_png(counts: dict[str, int], top: int = 20) -> bytes:
    """A bar chart of the ``top`` most frequent outcomes, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    labels = [k if len(k) <= 24 else f"{k[:10]}…{k[-10:]}" for k, _ in items]
    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    ax.bar(range(len(items)), [v for _, v in items], color="#3b6fb6")
    ax.set_xticks(range(len(items)), labels, rotation=70, fontsize=7, family="monospace")
    ax.set_ylabel("count")
    ax.set_title(f"Top {len(items)} of {len(counts)} outcomes")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def publish_result(result: QVMResult, store: ResultStore | None) -> None:
    plan = result.plan
    timings = " · ".join(f"{k} {v:.3f} s" for k, v in result.timings.items())
    nodes = sorted({r.node_id for r in result.shard_results} or {s.node_id for s in plan.shards})
    lines = [
        f"# {result.name or 'run'}",
        "",
        "| | |",
        "|---|---|",
        f"| strategy | {plan.strategy.value} |",
        f"| shards | {len(plan.shards)} on {len({s.node_id for s in plan.shards})} node(s) |",
        f"| nodes | {', '.join(nodes)} |",
        f"| shots | {result.shots} |",
        f"| mode | {result.mode.value} |",
        f"| seed | {result.seed} |",
        f"| estimated cost | {result.estimated_cost:g} |",
        f"| timings | {timings} |",
        f"| exact | {'no (approximate)' if result.approximate else 'yes'} |",
        f"| emulated | {'yes' if result.emulated else 'no'} |",
        f"| run key | `{result.run_key}` |",
        f"| stored at | {result.storage_url or '-'} |",
    ]
    if result.notes:
        lines += ["", *[f"- {n}" for n in result.notes]]
    if result.expectation_values is not None:
        errors = result.standard_errors or [float("nan")] * len(result.expectation_values)
        lines += ["", "| observable | value | std. error |", "|---|---|---|"]
        lines += [
            f"| `{o}` | {v:.6f} | {e:.6f} |"
            for o, v, e in zip(result.observables, result.expectation_values, errors, strict=True)
        ]
    if result.counts:
        top = result.most_frequent(10)
        lines += ["", "| outcome | count |", "|---|---|", *[f"| `{k}` | {v} |" for k, v in top]]
        png = histogram_png(result.counts)
        embedded = f"data:image/png;base64,{base64.b64encode(png).decode()}"
        lines += ["", f"![counts histogram]({embedded})"]
        stored = store.write_file(result.run_key, "histogram.png", png) if store is not None else None
        # the UI renders an image artifact in the browser: a file:// or s3:// URL would be a broken
        # image there, so the artifact carries the picture itself; the stored copy is named below it
        create_image_artifact(
            image_url=embedded,
            key="qcos-histogram",
            description=f"Counts histogram{f' (stored at {stored})' if stored else ''}",
        )
    create_markdown_artifact(markdown="\n".join(lines), key="qcos-summary", description="Run summary")
