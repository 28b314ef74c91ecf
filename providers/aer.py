"""Local Qiskit Aer providers: ``local_cpu``, ``local_gpu_aer`` and ``local_gpu_mps``.

* ``local_cpu``: Aer statevector on the CPU (``method="matrix_product_state"`` makes it an
  approximate MPS node).
* ``local_gpu_aer``: Aer statevector on a CUDA GPU (the ``qiskit-aer-gpu`` build).
* ``local_gpu_mps``: Aer matrix product state, for wide, weakly entangled circuits. Circuits of
  any width run: they go straight to the simulator, never through ``transpile``, whose target
  caps Aer at 63 qubits.

On a machine without a GPU, EMULATED mode runs the GPU nodes on the CPU with the same method and
the same declared limits, and the result says so; LIVE mode raises
:class:`~network.errors.NodeUnavailableError` instead.

Mid-circuit measurements (a qubit measured, then acted on again) make Aer simulate every shot
separately, at about 25 us a shot however small the circuit. Statevector nodes defer them
instead: each becomes a CX onto a fresh ancilla qubit measured at the end (the principle of
deferred measurement; the outcomes have the same joint distribution), so Aer simulates once and
samples. Circuits where that does not apply (classical control flow, resets, too many ancillas)
run with Aer's shot branching.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from network.compilation import aer_basis, translate
from network.errors import ExecutionError, NodeUnavailableError
from network.node_providers import NodeProvider, QPUNodeSpec, QVMMode
from providers.gpu import default_statevector_qubits, memory_qubits

if TYPE_CHECKING:
    from qiskit import QuantumCircuit

__all__ = ["LocalCPUProvider", "LocalGPUAerProvider", "LocalGPUMPSProvider", "aer_devices", "defer_measurements"]

_STATEVECTOR = "statevector"
_MPS = "matrix_product_state"
_METHODS = (_STATEVECTOR, _MPS)
#: Aer run options a cluster file may set per node group.
_RUN_OPTIONS = frozenset(
    {
        "precision",
        "max_parallel_threads",
        "max_parallel_shots",
        "max_parallel_experiments",
        "fusion_enable",
        "fusion_threshold",
        "statevector_parallel_threshold",
        "matrix_product_state_max_bond_dimension",
        "matrix_product_state_truncation_threshold",
        "mps_sample_measure_algorithm",
        "blocking_enable",
        "blocking_qubits",
        "shot_branching_enable",
        "shot_branching_sampling_enable",
        # GPU builds (qiskit-aer-gpu)
        "cuStateVec_enable",
        "target_gpus",
        "batched_shots_gpu",
        "batched_shots_gpu_max_qubits",
        "num_threads_per_device",
    }
)


@functools.lru_cache(maxsize=1)
def aer_devices() -> tuple[str, ...]:
    """Devices the installed Aer build can use, e.g. ``("CPU",)`` or ``("CPU", "GPU")``."""
    from qiskit_aer import AerSimulator

    return tuple(AerSimulator().available_devices())


class _AerProvider(NodeProvider):
    """Shared machinery: node building, option checks, execution and count conversion."""

    requires = ("qiskit_aer",)
    extra = None  # qiskit-aer is a core dependency
    method: str = _STATEVECTOR
    device: str = "CPU"
    default_max_qubits: int | None = None

    def build_nodes(
        self,
        n_nodes: int = 1,
        max_qubits: int | None = None,
        *,
        method: str | None = None,
        cost_per_shot: float = 0.0,
        cost_per_task: float = 0.0,
        cost_per_second: float = 0.0,
        work_pool: str | None = None,
        tags: list[str] | tuple[str, ...] = (),
        host: str = "local",
        **options: Any,
    ) -> list[QPUNodeSpec]:
        """Build ``n_nodes`` identical nodes.

        Args:
            n_nodes: How many nodes.
            max_qubits: Declared width limit (default: what fits in half of this machine's memory
                for statevector nodes, 1000 for MPS nodes).
            method: ``statevector`` or ``matrix_product_state`` (``local_cpu`` only).
            cost_per_shot: Price per shot (usually 0 locally).
            cost_per_task: Price per submission.
            cost_per_second: Price per second of simulation (a rented machine).
            work_pool: Prefect work pool that runs these nodes' shards.
            tags: Labels for filtering.
            host: Nodes on the same host share its cores.
            **options: Aer run options (``precision``, ``max_parallel_threads``...).
        """
        from network.errors import ClusterConfigError

        chosen = method or self.method
        if chosen not in _METHODS:
            raise ClusterConfigError(
                f"Provider {self.key!r}: unknown method {chosen!r}; choose one of {', '.join(_METHODS)}."
            )
        if method is not None and method != self.method and self.key != "local_cpu":
            raise ClusterConfigError(
                f"Provider {self.key!r} always uses method {self.method!r}; got method={method!r}."
            )
        unknown = sorted(set(options) - _RUN_OPTIONS)
        if unknown:
            raise ClusterConfigError(
                f"Provider {self.key!r}: unknown option(s) {', '.join(unknown)}. "
                f"Known Aer options: {', '.join(sorted(_RUN_OPTIONS))}."
            )
        if max_qubits is None:
            if chosen == _MPS:
                max_qubits = 1000
            else:
                width = 8 if options.get("precision") == "single" else 16
                max_qubits = self.default_max_qubits or self._default_width(width)
        return self.make_nodes(
            n_nodes,
            max_qubits=max_qubits,
            exact=chosen == _STATEVECTOR,
            method=chosen,
            device=self.device,
            cost_per_shot=cost_per_shot,
            cost_per_task=cost_per_task,
            cost_per_second=cost_per_second,
            work_pool=work_pool,
            tags=tuple(tags),
            host=host,
            options=options,
        )

    def _default_width(self, bytes_per_amplitude: int) -> int:
        """Half of host memory; for a statevector on a visible GPU, 80 % of the smallest GPU's memory."""
        if self.device == "GPU" and self.method == _STATEVECTOR:
            return default_statevector_qubits(bytes_per_amplitude)
        return memory_qubits(bytes_per_amplitude)

    @classmethod
    def live_status(cls) -> str | None:
        if cls.device != "GPU" or cls.method != _STATEVECTOR or "GPU" in aer_devices():
            return None
        return f"the installed Aer has no GPU ({', '.join(aer_devices())}): EMULATED runs on the CPU"

    def prepare(self, node_spec: QPUNodeSpec, mode: QVMMode) -> QPUNodeSpec:
        if node_spec.device != "GPU":
            return node_spec
        devices = aer_devices()
        if "GPU" in devices:
            return node_spec
        if mode in (QVMMode.EMULATED, QVMMode.DRY_RUN):
            return replace(node_spec, device="CPU", emulates="GPU")
        raise NodeUnavailableError(
            f"Node {node_spec.node_id!r} ({self.key}) needs a GPU, but the installed Aer reports only "
            f"{', '.join(devices)}. Install the CUDA build of Aer in its own environment "
            "(bash deployments/gpu_env.sh; README, 'GPU nodes') or run with mode=QVMMode.EMULATED to "
            "emulate it on the CPU."
        )

    supports_batch = True

    def execute(
        self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None
    ) -> dict[str, int]:
        return self._run([circuit], shots, node_spec, seed)[0]

    def execute_batch(
        self,
        circuits: Sequence[QuantumCircuit],
        shots: Sequence[int],
        node_spec: QPUNodeSpec,
        *,
        seeds: Sequence[int | None],
    ) -> list[dict[str, int]]:
        """One Aer call per distinct shot count, experiments spread over the host's cores.

        Aer holds the GIL while it simulates, so threads cannot run two Aer calls at once; its
        own parallel experiments can. Aer seeds experiment ``i`` of a call from the call's seed
        (the first circuit's), so a batch is reproducible as a whole.
        """
        out: list[dict[str, int] | None] = [None] * len(circuits)
        groups: dict[int, list[int]] = {}
        for i, n in enumerate(shots):
            groups.setdefault(n, []).append(i)
        for n, idx in groups.items():
            counts = self._run([circuits[i] for i in idx], n, node_spec, seeds[idx[0]])
            for i, c in zip(idx, counts, strict=True):
                out[i] = c
        return [c for c in out if c is not None]

    def execute_sweep(
        self,
        circuit: QuantumCircuit,
        bindings: Sequence[Mapping[str, float]],
        shots: int,
        node_spec: QPUNodeSpec,
        *,
        seed: int | None = None,
    ) -> list[dict[str, int]]:
        """All bindings in one Aer call through its native ``parameter_binds``."""
        params = list(circuit.parameters)
        binds = [{p: [float(b[p.name]) for b in bindings] for p in params}]
        return self._run([circuit], shots, node_spec, seed, parameter_binds=binds, n_results=len(bindings))

    def _run(
        self,
        circuits: Sequence[QuantumCircuit],
        shots: int,
        node_spec: QPUNodeSpec,
        seed: int | None,
        *,
        parameter_binds: list[dict[Any, list[float]]] | None = None,
        n_results: int | None = None,
    ) -> list[dict[str, int]]:
        from qiskit_aer import AerSimulator

        options: dict[str, Any] = dict(node_spec.options)
        threads = options.pop("threads", None)  # the executor's share of the host's cores
        if threads and "max_parallel_threads" not in options:
            options["max_parallel_threads"] = threads
        experiments = n_results or len(circuits)
        if experiments > 1 and "max_parallel_experiments" not in options:
            options["max_parallel_experiments"] = min(experiments, os.cpu_count() or 1)
        options.setdefault("method", node_spec.method)
        options["device"] = node_spec.device
        basis = aer_basis(options["method"])
        target = f"Aer on node {node_spec.node_id!r}"
        to_run = [translate(circuit, basis, target=target) for circuit in circuits]
        if options["method"] == _STATEVECTOR:
            bytes_per_amplitude = 8 if options.get("precision") == "single" else 16
            limit = memory_qubits(bytes_per_amplitude)
            deferred = [defer_measurements(circuit, shots, limit) for circuit in to_run]
            # deferred feed-forward becomes controlled gates, which may need translating again
            to_run = [translate(circuit, basis, target=target) for circuit, _ in deferred]
            if any(dynamic for _, dynamic in deferred):
                options.setdefault("shot_branching_enable", True)
                options.setdefault("shot_branching_sampling_enable", True)
        backend = AerSimulator(**options)
        run_options: dict[str, Any] = {"shots": shots}
        if seed is not None:
            run_options["seed_simulator"] = seed
        if parameter_binds is not None:
            run_options["parameter_binds"] = parameter_binds
        try:
            result = backend.run(to_run, **run_options).result()
        except Exception as exc:  # Aer raises AerError, QiskitError, RuntimeError...
            raise ExecutionError(f"Aer failed on node {node_spec.node_id!r}: {exc}") from exc
        if not result.success:
            failed = [r for r in result.results if not r.success]
            detail = failed[0].status if failed else result.status
            raise ExecutionError(f"Aer failed on node {node_spec.node_id!r}: {detail}")
        out = []
        expanded = list(circuits) * (len(result.results) // len(circuits))
        # Hex key -> bitstring, per width: the experiments of a sweep share their outcomes, so
        # each distinct key is converted once.
        binary: dict[int, dict[str, str]] = {}
        for circuit, exp in zip(expanded, result.results, strict=True):
            width = circuit.num_clbits
            if width == 0:
                out.append({"": shots})
                continue
            # Raw counts are hex over memory slots (= clbit index), so loose bits and any
            # register layout come back complete; get_counts() would drop bits outside registers.
            raw = exp.data.counts
            keys = binary.setdefault(width, {})
            for key in raw.keys() - keys.keys():
                keys[key] = format(int(key, 16), f"0{width}b")
            if set(map(type, raw.values())) <= {int}:  # Aer's counts are ints: no conversion needed
                out.append(dict(zip(map(keys.__getitem__, raw), raw.values(), strict=True)))
            else:
                out.append({keys[key]: int(value) for key, value in raw.items()})
        return out


def defer_measurements(circuit: QuantumCircuit, shots: int, max_qubits: int) -> tuple[QuantumCircuit, bool]:
    """Replace mid-circuit measurements, resets of used qubits and classical control by unitary
    gates on ancillas, with every measurement at the end (:func:`network.compilation.unitary_form`).

    A measurement is mid-circuit when a later instruction other than a measurement, barrier or
    delay acts on its qubit; it becomes ``cx(qubit, ancilla)`` and the ancilla is measured at the
    end. A reset of a used qubit swaps it with a fresh ancilla; an ``if``/``else`` becomes its
    bodies' gates controlled on the qubits that hold the bits it tests. The joint distribution
    of the classical bits is unchanged, and all measurements are final, so a simulator evolves
    the state once and samples the shots.

    The circuit is returned unchanged when nothing is mid-circuit, when it holds something that
    cannot be deferred (``while`` loops, ``switch``, classical variables, Aer save
    instructions...), when the ``k`` ancillas would make it wider than ``max_qubits``, or when
    ``2**k`` exceeds ``shots`` (then simulating shot by shot is no dearer).

    Args:
        circuit: The circuit to run.
        shots: Shots it will run.
        max_qubits: Widest circuit the simulator may hold.

    Returns:
        The circuit to simulate, and whether it still has mid-circuit measurements.
    """
    from network.compilation import needs_deferral, unitary_form, with_terminal_measurements
    from network.errors import CircuitCompileError

    if not needs_deferral(circuit):
        return circuit, False
    try:
        form = unitary_form(circuit, max_ancillas=max(0, max_qubits - circuit.num_qubits))
    except CircuitCompileError:
        return circuit, True
    if 2**form.ancillas > shots:
        return circuit, True
    return with_terminal_measurements(circuit, form), False


class LocalCPUProvider(_AerProvider):
    """Aer statevector (or MPS with ``method=``) on this machine's CPU."""

    key = "local_cpu"
    description = "Qiskit Aer on the CPU (statevector; method=matrix_product_state for MPS)"


class LocalGPUAerProvider(_AerProvider):
    """Aer statevector on a CUDA GPU."""

    key = "local_gpu_aer"
    description = "Qiskit Aer statevector on a CUDA GPU (emulated on the CPU where none exists)"
    device = "GPU"


class LocalGPUMPSProvider(_AerProvider):
    """Aer matrix product state, declared on a GPU host; approximate."""

    key = "local_gpu_mps"
    description = "Qiskit Aer matrix product state for wide circuits (approximate)"
    method = _MPS
    device = "GPU"
