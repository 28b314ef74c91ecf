"""The ``qcos`` command line: run or plan an OpenQASM file on a cluster, list providers.

::

    qcos run circuit.qasm --shots 4000 --seed 1 --cluster cluster.yaml
    qcos plan circuit.qasm --cluster cluster.yaml --json
    qcos providers

Human-readable output goes to stdout (plan table, summary, top outcomes) and the progress bar to
stderr. With ``--json`` stdout holds exactly one JSON document (``QVMResult.to_json()`` or
``ShardPlan.to_json()``) and nothing else.

Every error the QVM raises on purpose (:class:`~network.errors.QVMError`), every usage error and
an unreadable input file end the command with one line ``error: <message>`` on stderr and exit
status 2. Set ``QCOS_DEBUG=1`` to see the traceback of an unexpected failure.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from network import __version__
from network.errors import ExecutionError, NodeUnavailableError, QVMError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from network.distributed_qvm import DistributedQVM
    from network.execution import ShardResult
    from network.node_providers import QPURegistry
    from network.planning import ShardPlan
    from network.results import QVMResult
    from network.spec import VirtualCircuitSpec

__all__ = ["cli", "main", "abbreviate_key"]

#: Exit status of bad input: usage errors, unreadable files, invalid specs, clusters and plans.
EXIT_BAD_INPUT = 2
#: Exit status of a failure while running (a shard failed, a node is unavailable) or a bug.
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130

_MODES = ("emulated", "live", "dry_run")
#: Shard rows shown before the plan table is cut short.
_MAX_SHARD_ROWS = 40

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Error handling
# ---------------------------------------------------------------------------------------------


def _one_line(message: str) -> str:
    return " ".join(str(message).split()) or "unknown error"


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {_one_line(message)}", err=True)
    sys.exit(code)


class _QcosGroup(click.Group):
    """A group whose ``main`` turns every expected failure into ``error: <message>`` and exit 2.

    ``CliRunner.invoke`` calls ``main`` too, so tests see exactly what a shell sees.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except (ExecutionError, NodeUnavailableError) as exc:
            _fail(str(exc), EXIT_INTERNAL)
        except QVMError as exc:
            _fail(str(exc), EXIT_BAD_INPUT)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            _fail(exc.format_message() + hint, EXIT_BAD_INPUT)
        except click.ClickException as exc:
            _fail(exc.format_message(), EXIT_BAD_INPUT)
        except (click.Abort, KeyboardInterrupt, EOFError):
            _fail("interrupted", EXIT_INTERRUPTED)
        except Exception as exc:
            if os.environ.get("QCOS_DEBUG"):
                raise
            _fail(
                f"unexpected {type(exc).__name__}: {exc} (set QCOS_DEBUG=1 to see the traceback)",
                EXIT_INTERNAL,
            )
        sys.exit(rv if isinstance(rv, int) else 0)


# ---------------------------------------------------------------------------------------------
# Formatting helpers
# ---------------------------------------------------------------------------------------------


def _fmt_seconds(seconds: float) -> str:
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    if seconds < 60.0:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(seconds, 60.0)
    if minutes < 60:
        return f"{int(minutes)} min {secs:02.0f} s"
    hours, minutes = divmod(minutes, 60.0)
    return f"{int(hours)} h {int(minutes):02d} min"


def _fmt_cost(cost: float) -> str:
    return "0" if cost == 0 else f"{cost:.4g}"


def _fmt_ranges(indices: Sequence[int], limit: int = 3) -> str:
    """``0-19`` or ``0-3, 8-11, ...`` for a list of indices."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    parts = [f"{a}-{b}" if b > a else str(a) for a, b in runs[:limit]]
    return ", ".join(parts) + (", ..." if len(runs) > limit else "")


def abbreviate_key(key: str, limit: int) -> str:
    """Shorten an outcome key to ``limit`` characters by eliding the middle (``0110…1001``).

    Keys of several registers (separated by spaces) are shortened register by register, so the
    separators stay where they are.
    """
    if len(key) <= limit:
        return key
    parts = key.split(" ")
    if len(parts) > 1:
        room = max(limit - (len(parts) - 1), len(parts) * 5)
        total = sum(len(p) for p in parts)
        return " ".join(abbreviate_key(p, max(5, room * len(p) // total)) for p in parts)
    keep = max(limit - 1, 2)
    head = (keep + 1) // 2
    tail = keep - head
    return f"{key[:head]}…{key[len(key) - tail :]}"


def _key_legend(plan: ShardPlan) -> str:
    layout = plan.layout
    if layout.registers and layout.qiskit_style:
        regs = " ".join(f"{name}[{len(bits) - 1}..0]" for name, bits in reversed(layout.registers))
        return f"key = {regs}, bit 0 rightmost"
    return f"key = {layout.n_clbits} classical bits, bit 0 rightmost"


_METHOD_SHORT = {"statevector": "statevector", "matrix_product_state": "MPS"}


def _node_label(plan: ShardPlan, node_id: str) -> str:
    """``provider / method (device)`` of a planned node, e.g. ``local_gpu_mps / MPS ≈ (GPU→CPU)``."""
    try:
        node = plan.node(node_id)
    except KeyError:
        return "?"
    method = _METHOD_SHORT.get(node.method, node.method)
    approx = "" if node.exact else " ≈"
    device = node.device if node.emulates is None else f"{node.emulates}→{node.device}"
    return f"{node.provider_key} / {method}{approx} ({device})"


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _print_plan(console: Console, plan: ShardPlan, registry: QPURegistry | None = None) -> None:
    shards = plan.shards
    header = Text()
    header.append("Plan: ", style="bold")
    header.append(plan.strategy.value, style="bold cyan")
    header.append(
        f" · {len(shards)} shard{'s' if len(shards) != 1 else ''} · {plan.n_qubits} qubits"
        f" · {plan.shots} shots · seed {plan.seed}"
    )
    console.print(header)
    estimate = Text()
    estimate.append("Estimate: ", style="bold")
    estimate.append(f"{_fmt_seconds(plan.estimated_seconds)}, cost {_fmt_cost(plan.estimated_cost)}")
    estimate.append(" · approximate" if plan.approximate else " · exact", style="yellow" if plan.approximate else "")
    console.print(estimate)
    if registry is not None:
        console.print(Text(f"Cluster: {registry.capacities()}", style="dim"))
    for note in plan.notes:
        console.print(Text(f"  • {note}", style="yellow"))

    # Wide terminals get roomier columns and each shard's qubit ranges; 80 columns still fit.
    wide = console.width >= 110
    table = Table(
        box=box.SIMPLE_HEAD,
        header_style="bold",
        pad_edge=False,
        show_edge=False,
        padding=(0, 1 if wide else 0),
        collapse_padding=True,
    )
    table.add_column("Shard", justify="right", no_wrap=True)
    table.add_column("Node", style="cyan", no_wrap=True)
    table.add_column("Provider / method", min_width=16)
    table.add_column("Qubits", justify="right", no_wrap=True)
    table.add_column("Clbits", justify="right", no_wrap=True)
    table.add_column("Shots", justify="right", no_wrap=True)
    table.add_column("Est. time", justify="right", no_wrap=True)
    table.add_column("Est. cost", justify="right", no_wrap=True)
    for shard in shards[:_MAX_SHARD_ROWS]:
        qubits = str(shard.width)
        if shard.block is not None:  # a cut subexperiment: which block, which distinct circuit
            qubits += f" [dim](cut {shard.block} #{shard.circuit_index})[/dim]"
        elif wide:
            qubits += f" [dim]({_fmt_ranges(shard.qubits, limit=2)})[/dim]"
        table.add_row(
            str(shard.shard_id),
            escape(shard.node_id),
            escape(_node_label(plan, shard.node_id)),
            qubits,
            "-" if shard.block is not None else str(len(shard.clbits)),
            str(shard.shots),
            _fmt_seconds(shard.estimated_seconds),
            _fmt_cost(shard.estimated_cost),
        )
    if len(shards) > _MAX_SHARD_ROWS:
        more = len(shards) - _MAX_SHARD_ROWS
        table.add_row("…", f"[dim]{more} more[/dim]", *([""] * 6))
    console.print(table)


def _print_result(console: Console, result: QVMResult, top: int, full_keys: bool, seed_drawn: bool) -> None:
    console.print()
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("Circuit", escape(result.name or "-"))
    summary.add_row("Mode", result.mode.value)
    summary.add_row("Strategy", f"[cyan]{result.strategy.value}[/cyan] ({len(result.plan.shards)} shard(s))")
    summary.add_row("Shots", str(result.shots))
    if result.executed:
        summary.add_row("Outcomes", f"{len(result.counts)} distinct")
    summary.add_row(
        "Seed", f"{result.seed} (drawn; pass --seed {result.seed} to reproduce)" if seed_drawn else str(result.seed)
    )
    stages = ("plan", "execute", "reconstruct", "total")
    timings = " · ".join(f"{k} {_fmt_seconds(result.timings[k])}" for k in stages if k in result.timings)
    summary.add_row("Timings", timings or "-")
    if result.approximate:
        exact = "[yellow]no (approximate nodes ran)[/yellow]"
    elif result.reconstructed:
        exact = "in expectation: counts sampled from a distribution reconstructed from cut subexperiments"
    else:
        exact = "yes"
    summary.add_row("Exact", exact)
    summary.add_row("Emulated", "[yellow]yes (see notes)[/yellow]" if result.emulated else "no")
    if result.cut is not None:
        summary.add_row(
            "Cutting",
            f"{len(result.cut['cuts'])} cut(s), overhead {result.cut['sampling_overhead']:g}, "
            f"{result.cut.get('executed_circuits', '?')} subexperiment circuit(s) run",
        )
    if result.storage_url:
        summary.add_row("Stored", escape(result.storage_url))
    console.print(summary)
    for note in result.notes:
        console.print(Text(f"  • {note}", style="yellow"))
    if result.expectation_values is not None:
        values = Table(title="Expectation values")
        values.add_column("Observable")
        values.add_column("Value", justify="right")
        values.add_column("Std. error", justify="right")
        errors = result.standard_errors or [float("nan")] * len(result.expectation_values)
        for label, value, error in zip(result.observables, result.expectation_values, errors, strict=True):
            values.add_row(escape(label), f"{value:.6f}", f"{error:.6f}")
        console.print(values)
    if not result.counts:
        return

    n_bits = result.plan.n_clbits
    shown = result.most_frequent(top)
    table = Table(
        title=f"Top {len(shown)} of {len(result.counts)} outcome(s)",
        show_edge=False,
        header_style="bold",
        pad_edge=False,
        title_justify="left",
    )
    table.add_column("#", justify="right", style="dim")
    table.add_column("Outcome", style="bold", overflow="fold")
    table.add_column("Count", justify="right")
    table.add_column("Probability", justify="right")
    limit = max(24, console.width - 36)
    for rank, (key, count) in enumerate(shown, 1):
        shown_key = key if full_keys else abbreviate_key(key, limit)
        table.add_row(str(rank), shown_key, str(count), f"{count / max(result.shots, 1):.4f}")
    console.print()
    console.print(table)
    legend = _key_legend(result.plan)
    if not full_keys and any(len(key) > limit for key, _ in shown):
        legend += "; … marks elided bits (--full-keys shows them)"
    if shown and shown[0][1] == 1 and len(result.counts) > 1:
        legend += f"; every outcome above occurred once ({n_bits}-bit outcomes rarely repeat)"
    console.print(Text(legend, style="dim"))


# ---------------------------------------------------------------------------------------------
# Shared setup
# ---------------------------------------------------------------------------------------------


def _read_spec(path: Path, shots: int, seed: int | None, observables: Sequence[str] = ()) -> VirtualCircuitSpec:
    from network.spec import VirtualCircuitSpec

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise click.ClickException(f"QASM file '{path}' does not exist.") from None
    except IsADirectoryError:
        raise click.ClickException(f"'{path}' is a directory, not a QASM file.") from None
    except UnicodeDecodeError:
        raise click.ClickException(f"QASM file '{path}' is not UTF-8 text.") from None
    except OSError as exc:
        raise click.ClickException(f"Cannot read QASM file '{path}': {exc.strerror or exc}.") from None
    return VirtualCircuitSpec(qasm=text, shots=shots, seed=seed, name=path.stem, observables=list(observables) or None)


def _build_registry(cluster: Path | None) -> QPURegistry:
    from network.node_providers import ClusterBuilder

    if cluster is not None:
        return ClusterBuilder.from_yaml(cluster).build()
    return ClusterBuilder().add("local_cpu", n_nodes=os.cpu_count() or 1).build()


def _make_qvm(cluster: Path | None, mode: str, shots: int, store: str | None = None) -> DistributedQVM:
    from network.distributed_qvm import DistributedQVM

    return DistributedQVM(_build_registry(cluster), mode=mode, shots=shots, store=store)


def _progress(console: Console) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

_file_argument = click.argument(
    "file", metavar="FILE.qasm", type=click.Path(dir_okay=False, path_type=Path), required=True
)
_shots_option = click.option(
    "--shots", type=int, default=1024, show_default=True, help="Shots to sample (a positive integer)."
)
_seed_option = click.option(
    "--seed", type=int, default=None, help="Base seed; the same seed gives the same counts. Default: random."
)
_cluster_option = click.option(
    "--cluster",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE.yaml",
    help="Cluster definition (see examples/cluster.yaml). Default: one local_cpu node per CPU core.",
)
_mode_option = click.option(
    "--mode",
    type=click.Choice(_MODES, case_sensitive=False),
    default="emulated",
    show_default=True,
    help="emulated: nothing leaves this machine (absent GPUs are emulated on the CPU); "
    "live: real devices only; dry_run: plan and estimate, run nothing.",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print only the JSON document on stdout.")


@click.group(cls=_QcosGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="qcos")
@click.option("-v", "--verbose", is_flag=True, help="Log what the QVM does to stderr.")
def cli(verbose: bool) -> None:
    """QCOS distributed quantum virtual machine: run one circuit across many nodes."""
    if verbose:
        from rich.logging import RichHandler

        logging.basicConfig(
            level=logging.WARNING,
            format="%(message)s",
            handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
        )
        for name in ("network", "providers"):  # the QVM's own logs, not Qiskit's per-pass chatter
            logging.getLogger(name).setLevel(logging.INFO)


def _spec_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The arguments ``run`` and ``plan`` share: the file, shots, seed, cluster, mode and --json."""
    for decorate in reversed(
        (_file_argument, _shots_option, _seed_option, _cluster_option, _mode_option, _json_option)
    ):
        func = decorate(func)
    return func


@cli.command()
@_spec_options
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="Outcomes to list.")
@click.option(
    "--full-keys", is_flag=True, help="Show whole outcome bitstrings (wrapped) instead of eliding the middle."
)
@click.option(
    "--observable",
    "observables",
    multiple=True,
    metavar="PAULI",
    help="Estimate <PAULI> (e.g. ZZIIIIII; qubit 0 rightmost) instead of sampling counts; repeatable. "
    "Circuits wider than every node are cut.",
)
@click.option(
    "--store",
    metavar="URL",
    default=None,
    envvar="QCOS_STORE",
    help="Persist the run to this fsspec URL (file:///..., s3://bucket/prefix; env QCOS_STORE).",
)
def run(
    file: Path,
    shots: int,
    seed: int | None,
    cluster: Path | None,
    mode: str,
    as_json: bool,
    top: int,
    full_keys: bool,
    observables: tuple[str, ...],
    store: str | None,
) -> None:
    """Plan, execute and reconstruct FILE.qasm (OpenQASM 2 or 3) on the cluster."""
    spec = _read_spec(file, shots, seed, observables)
    qvm = _make_qvm(cluster, mode, shots, store)
    out = Console()
    err = Console(stderr=True)
    # In --json mode stdout is for the document alone; the progress bar shows on a terminal only.
    show_progress = not as_json or err.is_terminal
    progress = _progress(err)
    task: list[TaskID] = []

    def on_plan(plan: ShardPlan) -> None:
        if not as_json:
            _print_plan(out, plan, qvm.registry)
        if show_progress and qvm.mode.value != "dry_run":
            task.append(progress.add_task("Running shards", total=len(plan.shards)))
            progress.start()

    def on_shard_done(result: ShardResult) -> None:
        if task:
            progress.update(task[0], advance=1, description=f"Shard {result.shard_id} done on {result.node_id}")

    try:
        result = qvm.run(spec, on_plan=on_plan, on_shard_done=on_shard_done)
    finally:
        if task:  # stop() of a bar never started would still print a blank line
            progress.update(task[0], description="Shards")
            progress.stop()
    if as_json:
        click.echo(result.to_json())
        return
    _print_result(out, result, top, full_keys, seed_drawn=seed is None)


@cli.command()
@_spec_options
def plan(file: Path, shots: int, seed: int | None, cluster: Path | None, mode: str, as_json: bool) -> None:
    """Show how FILE.qasm would be sharded and what it would cost; run nothing."""
    spec = _read_spec(file, shots, seed)
    qvm = _make_qvm(cluster, mode, shots)
    shard_plan = qvm.plan(spec)
    if as_json:
        click.echo(shard_plan.to_json())
        return
    out = Console()
    _print_plan(out, shard_plan, qvm.registry)
    if seed is None:
        out.print(
            Text(
                "Seed derived from the circuit for this plan; 'qcos run' draws a fresh one unless --seed is given.",
                style="dim",
            )
        )


@cli.command()
@_json_option
def providers(as_json: bool) -> None:
    """List the node providers installed and whether each one loads."""
    from network.errors import ProviderUnavailableError, UnknownProviderError
    from network.node_providers import available_providers, provider_class

    rows: list[dict[str, Any]] = []
    for key in available_providers():
        description, error, live = "", None, None
        try:
            cls = provider_class(key)
            description = cls.description
            cls.check_dependencies()
            live = cls.live_status()
        except (ProviderUnavailableError, UnknownProviderError) as exc:
            error = _one_line(str(exc))
        rows.append({"key": key, "description": description, "ok": error is None, "error": error, "live": live})
    stale = _stale_price_warnings()
    if as_json:
        import json

        click.echo(json.dumps(rows))
        for line in stale:  # stdout stays the JSON list
            click.echo(line, err=True)
        return
    table = Table(title="Node providers", title_justify="left", header_style="bold", show_edge=False, pad_edge=False)
    table.add_column("Provider", style="cyan", no_wrap=True)
    table.add_column("Description")
    table.add_column("Status")
    for row in rows:
        if not row["ok"]:
            status = f"[red]{escape(row['error'])}[/red]"
        elif row["live"]:
            status = f"[yellow]OK, no LIVE here: {escape(row['live'])}[/yellow]"
        else:
            status = "[green]OK[/green]"
        table.add_row(escape(row["key"]), escape(row["description"] or "-"), status)
    if not rows:
        table.add_row("-", "no provider is registered under the 'qcos.providers' entry-point group", "")
    Console().print(table)
    for line in stale:
        click.echo(line)


def _stale_price_warnings() -> list[str]:
    """One warning per row of the price table read more than a year ago (by its own date)."""
    from providers.prices import MAX_AGE_DAYS, stale_prices

    return [
        f"warning: the price of {provider} {target} was read {price.as_of} ({age} days ago, more than "
        f"{MAX_AGE_DAYS}) from {price.source}: check it, then update providers/prices.py or price the node "
        "group in the cluster file."
        for provider, target, price, age in stale_prices()
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``qcos`` script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="qcos")


if __name__ == "__main__":
    main()
