"""GPU statevector benchmark: time per gate layer against the memory-bandwidth bound and Aer on the CPU.

A *layer* is ``bench.common``'s brickwork layer on ``n`` qubits: ``ry`` and ``rz`` on every qubit, then CX
on alternating neighbouring pairs, so ``2n + floor((n - parity) / 2)`` gates.

Contenders, at each width (default 26, 28, 30 and 32 qubits):

* ``custatevec``: ``local_gpu_cuquantum``'s engine with fusion off, one ``custatevecApplyMatrix`` per gate.
* ``custatevec+fusion``: the same engine on the provider's fused ops (one pass per CX pair).
* ``aer-gpu``: Aer statevector with ``device="GPU"`` (``qiskit-aer-gpu``; its own fusion, the default).
* ``aer-cpu``: Aer statevector on the CPU, up to ``--cpu-max-qubits`` (the speed-up's anchor).

Engine contenders time the gate loop alone (state allocated beforehand, device synchronised at the
end). Aer is timed around whole runs of ``L`` and ``2L`` layers, and ``(T(2L) - T(L)) / L`` is its time
per layer, so allocation, transfers and sampling cancel out.

The bound: an unfused gate reads and writes the whole state once, ``2 * 2**n * b`` bytes (``b`` = 16 in
double precision, 8 in single). Divided by the bandwidth of a device-to-device copy measured in the same
run (read plus written bytes per second), times the gates of a layer, that is the least time a layer of
one-pass-per-gate kernels can take. ``fraction = bound / measured``: 1.0 is copy speed for every gate; a
fused engine makes fewer passes than gates and can pass 1. For cuStateVec the table also gives the
fraction against its own passes (ops after fusion), the memory efficiency of each kernel.

Without a GPU (or with ``--cpu``) the same measurement runs on the CPU at 18 to 22 qubits: the NumPy
engine that emulates ``local_gpu_cuquantum``, Aer on the CPU, and a NumPy copy as the bandwidth. That
checks the script; the GPU figures need a GPU.

Targets (ours; the issue asks for the figures): unfused cuStateVec reaches at least half the bound at
the widest width run (``higher``), and Aer GPU and fused cuStateVec take at most a tenth of Aer CPU's
time per layer at the widest width both ran. A CPU run prints only the first, for the NumPy engine.

Run: ``python -m bench.gpu [--qubits 26 28 30 32] [--layers 2] [--precision double|single] [--cpu]
[--cpu-max-qubits 30] [--json out.json] [--strict]``
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bench.common import Verdicts, base_parser, brickwork_circuit, environment, fmt_seconds, result_line, table

FRACTION_TARGET = 0.5
SPEEDUP_TARGET = 0.1


@dataclass
class Row:
    """The measurements at one width (seconds per layer; None where a contender did not run)."""

    n_qubits: int
    state_bytes: int
    gates_per_layer: float
    fused_ops_per_layer: float
    bound_s: float
    per_layer: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def layer_circuit(n: int, layers: int, seed: int) -> Any:
    return brickwork_circuit(n, layers, seed=seed, measure=False)


def gates_per_layer(n: int, layers: int) -> float:
    return (2 * n * layers + sum(len(range(layer % 2, n - 1, 2)) for layer in range(layers))) / layers


# ---------------------------------------------------------------------------------------------
# Bandwidth
# ---------------------------------------------------------------------------------------------


def gpu_copy_bandwidth(nbytes: int = 4 << 30, repeat: int = 10) -> float:
    """Bytes read plus written per second by a device-to-device copy (best of ``repeat``)."""
    import cupy as cp

    a = cp.ones(nbytes // 8, dtype=cp.float64)
    b = cp.empty_like(a)
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    b[...] = a  # warm-up
    best = math.inf
    for _ in range(repeat):
        start.record()
        b[...] = a
        stop.record()
        stop.synchronize()
        best = min(best, cp.cuda.get_elapsed_time(start, stop) / 1e3)
    del a, b
    cp.get_default_memory_pool().free_all_blocks()
    return 2 * nbytes / best


def gpu_peak_bandwidth() -> float | None:
    """The data sheet's figure from the driver's memory clock and bus width (None where not reported)."""
    try:
        import cupy as cp

        rt = cp.cuda.runtime
        device = cp.cuda.Device().id
        clock_khz = rt.deviceGetAttribute(rt.cudaDevAttrMemoryClockRate, device)
        bus_bits = rt.deviceGetAttribute(rt.cudaDevAttrGlobalMemoryBusWidth, device)
        return 2 * clock_khz * 1e3 * bus_bits / 8 if clock_khz and bus_bits else None
    except Exception:
        return None


def cpu_copy_bandwidth(nbytes: int = 1 << 30, repeat: int = 5) -> float:
    a = np.ones(nbytes // 8)
    b = np.empty_like(a)
    np.copyto(b, a)
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - start)
    return 2 * nbytes / best


# ---------------------------------------------------------------------------------------------
# Contenders: each returns seconds per layer
# ---------------------------------------------------------------------------------------------


def engine_per_layer(
    make: Callable[[int], Any], n: int, layers: int, dtype: Any, *, fuse: bool, seed: int, repeat: int
) -> tuple[float, float]:
    """(seconds per layer, ops per layer) of an engine applying ``layers`` layers, best of ``repeat``."""
    from providers.cuquantum import compile_circuit

    compiled = compile_circuit(layer_circuit(n, layers, seed), fuse=fuse).cast(dtype)
    engine = make(n)
    try:
        sync = getattr(engine, "synchronize", lambda: None)
        for op in compiled.ops[: max(1, len(compiled.ops) // layers)]:  # warm-up: one layer's kernels
            engine.apply(op)
        sync()
        best = math.inf
        for _ in range(repeat):
            start = time.perf_counter()
            for op in compiled.ops:
                engine.apply(op)
            sync()
            best = min(best, time.perf_counter() - start)
    finally:
        engine.close()
    return best / layers, len(compiled.ops) / layers


def aer_per_layer(n: int, layers: int, device: str, precision: str, seed: int, repeat: int) -> float:
    """Aer's time per layer from whole runs of ``layers`` and ``2 * layers`` layers."""
    from qiskit_aer import AerSimulator

    backend = AerSimulator(method="statevector", device=device, precision=precision)

    def run(depth: int) -> float:
        qc = layer_circuit(n, depth, seed)
        qc.measure_all()
        best = math.inf
        for i in range(repeat + 1):  # the first is a warm-up
            start = time.perf_counter()
            result = backend.run(qc, shots=1, seed_simulator=seed).result()
            elapsed = time.perf_counter() - start
            if not result.success:
                raise RuntimeError(result.results[0].status if result.results else result.status)
            if i:
                best = min(best, elapsed)
        return best

    short, long = run(layers), run(2 * layers)
    return max(long - short, 1e-9) / layers


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0], repeat=3)
    parser.add_argument("--qubits", type=int, nargs="+", help="widths (default 26 28 30 32; 18 20 22 with --cpu)")
    parser.add_argument("--layers", type=int, default=2, help="layers per timed run L (Aer also runs 2L; default 2)")
    parser.add_argument("--precision", choices=("double", "single"), default="double")
    parser.add_argument("--cpu", action="store_true", help="measure the CPU stand-ins (automatic without a GPU)")
    parser.add_argument("--cpu-max-qubits", type=int, default=30, help="widest Aer CPU anchor (default 30)")
    parser.add_argument("--skip", nargs="*", default=[], help="contenders to leave out (e.g. aer-cpu)")
    parser.add_argument("--json", help="also write the measurements to this file")
    args = parser.parse_args(argv)
    verdicts = Verdicts(args.strict)

    from providers.aer import aer_devices
    from providers.cuquantum import PRECISIONS, CuStateVecEngine, NumpyEngine, cuquantum_status
    from providers.gpu import cuda_devices

    dtype = PRECISIONS[args.precision]
    itemsize = np.dtype(dtype).itemsize
    missing = cuquantum_status()
    on_gpu = not args.cpu and missing is None
    aer_gpu = "GPU" in aer_devices()
    print(f"# bench.gpu  ({environment()})")
    if on_gpu:
        gpu = cuda_devices()[0]
        bandwidth = gpu_copy_bandwidth()
        peak = gpu_peak_bandwidth()
        where = gpu.describe()
        widths = args.qubits or [26, 28, 30, 32]
        engines: dict[str, tuple[Callable[[int], Any], bool]] = {
            "custatevec": (lambda n: CuStateVecEngine(n, dtype), False),
            "custatevec+fusion": (lambda n: CuStateVecEngine(n, dtype), True),
        }
        peak_text = f", data-sheet peak {peak / 1e12:.2f} TB/s" if peak else ""
        print(f"# {where}: device-to-device copy {bandwidth / 1e12:.2f} TB/s (read + write){peak_text}")
        if not aer_gpu:
            print(f"# aer-gpu skipped: the installed Aer reports {aer_devices()} (bash deployments/gpu_env.sh)")
    else:
        reason = "--cpu" if args.cpu else missing
        print(f"# no GPU run ({reason}): measuring the CPU stand-ins; these figures say nothing about a GPU")
        bandwidth = cpu_copy_bandwidth()
        peak = None
        where = "CPU (NumPy engine)"
        widths = args.qubits or [18, 20, 22]
        engines = {
            "numpy": (lambda n: NumpyEngine(n, dtype), False),
            "numpy+fusion": (lambda n: NumpyEngine(n, dtype), True),
        }
        print(f"# host copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write)")
    print(f"# precision={args.precision} ({itemsize} bytes an amplitude), L={args.layers}, repeat={args.repeat}")

    rows: list[Row] = []
    for n in widths:
        state = (1 << n) * itemsize
        gates = gates_per_layer(n, args.layers)
        bound = gates * 2 * state / bandwidth
        row = Row(n, state, gates, 0.0, bound)
        print(f"\n== {n} qubits: state {_size(state)}, {gates:g} gates a layer, bound {fmt_seconds(bound)} ==")
        for name, (make, fuse) in engines.items():
            if name in args.skip:
                continue
            try:
                seconds, ops = engine_per_layer(
                    make, n, args.layers, dtype, fuse=fuse, seed=args.seed, repeat=args.repeat
                )
                row.per_layer[name] = seconds
                if fuse:
                    row.fused_ops_per_layer = ops
            except Exception as exc:  # out of memory at the widest widths, mostly
                row.per_layer[name] = None
                row.errors[name] = f"{type(exc).__name__}: {exc}"
            print(f"  {name}: {_cell(row.per_layer[name], bound)}", flush=True)
        aer_runs = [("aer-gpu", "GPU", on_gpu and aer_gpu), ("aer-cpu", "CPU", n <= args.cpu_max_qubits)]
        for name, device, wanted in aer_runs:
            if not wanted or name in args.skip:
                continue
            try:
                row.per_layer[name] = aer_per_layer(n, args.layers, device, args.precision, args.seed, args.repeat)
            except Exception as exc:
                row.per_layer[name] = None
                row.errors[name] = f"{type(exc).__name__}: {exc}"
            print(f"  {name}: {_cell(row.per_layer[name], bound)}", flush=True)
        rows.append(row)

    names = list(dict.fromkeys(k for r in rows for k in r.per_layer))
    header = ["qubits", "state", "gates/layer", "bound/layer", *names]
    lines = [header]
    for r in rows:
        lines.append(
            [str(r.n_qubits), _size(r.state_bytes), f"{r.gates_per_layer:g}", fmt_seconds(r.bound_s)]
            + [_cell(r.per_layer.get(k), r.bound_s) for k in names]
        )
    print("\n== seconds per layer (fraction of the bound) ==")
    print(table(lines))
    fused = [k for k in names if k.endswith("+fusion")]
    for r in rows:
        for k in fused:
            t = r.per_layer.get(k)
            if t:
                passes = r.fused_ops_per_layer * 2 * r.state_bytes / bandwidth
                print(
                    f"{r.n_qubits} qubits, {k}: {r.fused_ops_per_layer:.1f} passes a layer; "
                    f"fraction of their bound {passes / t:.2f}"
                )
        for k, msg in r.errors.items():
            print(f"{r.n_qubits} qubits, {k} did not run: {msg}")

    print("\n== results ==")
    base = "custatevec" if on_gpu else "numpy"
    widest = next((r for r in reversed(rows) if r.per_layer.get(base)), None)
    if widest is not None:
        seconds = widest.per_layer[base]
        assert seconds is not None
        verdicts.add(
            result_line(
                f"{base}_fraction_of_bound_{widest.n_qubits}q", widest.bound_s / seconds, FRACTION_TARGET, higher=True
            )
        )
    for fast in ("aer-gpu", "custatevec+fusion") if on_gpu else ():
        both = [r for r in rows if r.per_layer.get(fast) and r.per_layer.get("aer-cpu")]
        if both:
            r = both[-1]
            gpu_t, cpu_t = r.per_layer[fast], r.per_layer["aer-cpu"]
            assert gpu_t is not None and cpu_t is not None
            verdicts.add(result_line(f"{fast}_vs_aer_cpu_{r.n_qubits}q", gpu_t / cpu_t, SPEEDUP_TARGET))
    if args.json:
        payload = {
            "device": where,
            "copy_bandwidth_bytes_per_s": bandwidth,
            "peak_bandwidth_bytes_per_s": peak,
            "precision": args.precision,
            "layers": args.layers,
            "environment": environment(),
            "rows": [asdict(r) for r in rows],
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
        print(f"# wrote {args.json}")
    verdicts.exit()


def _size(nbytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes / 2**10:.3g} KiB"


def _cell(seconds: float | None, bound: float) -> str:
    if not seconds:
        return "n/a"
    return f"{fmt_seconds(seconds)} ({bound / seconds:.2f})"


if __name__ == "__main__":
    main()
