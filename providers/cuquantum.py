"""NVIDIA cuStateVec statevector nodes: ``local_gpu_cuquantum``.

A node is one CUDA GPU holding the whole state in device memory (a CuPy array) and evolving it with
cuStateVec (``cuquantum-python``): ``custatevecApplyMatrix`` for every gate, then cuStateVec's sampler
for the shots. The pieces:

* :func:`compile_circuit` turns a Qiskit circuit into :class:`GateOp` values, the arguments of
  ``custatevecApplyMatrix``: a row-major matrix whose index bit ``j`` is ``targets[j]`` (Qiskit's own
  little-endian order, so ``Gate.to_matrix()`` is used as it is), optional control qubits with their
  values, and the final measurements. Gates on one or two qubits are fused: runs of one-qubit gates
  are folded into the neighbouring two-qubit gate, and consecutive gates on the same pair into one
  matrix, so a brickwork layer costs one pass over the state per pair instead of one per gate.
  Mid-circuit measurements, resets of used qubits and if/else feed-forward are deferred onto
  ancillas first (:func:`providers.aer.defer_measurements`); what cannot be deferred (while loops,
  switch statements, classical variables) is refused with the instruction named.
* :class:`CuStateVecEngine` runs the ops on a GPU. Amplitudes are complex128 by default
  (``precision="double"``, 16 bytes each) or complex64 (``precision="single"``, 8 bytes); cuStateVec
  computes in the same precision.
* :class:`NumpyEngine` is the same contract on the CPU with NumPy: the same ops, the same sampler
  (inverse CDF over the basis-state index in ascending order, one random number per shot, as
  cuStateVec's ``RANDNUM_ORDER`` output). EMULATED runs use it on machines without a GPU, so the
  compile, measurement-mapping and counting code is the code a GPU node runs.

Sampling is reproducible: shot ``i`` uses the ``i``-th number of ``numpy.random.default_rng(seed)``,
on the GPU and in the emulation alike. Counts come back in Qiskit order (classical bit 0 rightmost),
over all the circuit's classical bits.

Node limits: ``max_qubits`` defaults to the widest state that fits in 80 % of the node's GPU memory
(:func:`providers.gpu.statevector_qubits`): an 80 GB H100 holds 32 qubits in single precision and
31 in double, a 141 GB H200 33 and 32. On a machine without a GPU the default is what fits in half
of host memory, as for Aer. A declared width the GPU cannot hold is refused before anything runs.
Nodes are spread over the visible GPUs (node ``i`` on GPU ``i mod count``, or ``gpus=[...]``); nodes
that share a GPU take turns on it.

Modes: EMULATED uses the GPU when there is one and cuQuantum is installed, else :class:`NumpyEngine`
(the result says the node was emulated); LIVE raises :class:`~network.errors.NodeUnavailableError`
naming what is missing; DRY_RUN touches nothing.

Install: ``pip install 'qcos[cuquantum-cu13]'`` on a CUDA 13 driver, ``'qcos[cuquantum-cu12]'`` on
CUDA 12 (``providers.gpu.cuquantum_extra()`` says which this machine needs).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from network.errors import ExecutionError, NodeCapacityError, NodeUnavailableError, ProviderUnavailableError
from network.node_providers import NodeProvider, QPUNodeSpec, QVMMode, install_hint
from providers.gpu import cuda_devices, cuquantum_extra, default_statevector_qubits, statevector_qubits

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit.circuit import CircuitInstruction

__all__ = [
    "CuQuantumProvider",
    "GateOp",
    "CompiledCircuit",
    "compile_circuit",
    "Engine",
    "NumpyEngine",
    "CuStateVecEngine",
    "simulate",
    "counts_from_samples",
    "cuquantum_status",
    "PRECISIONS",
]

#: ``precision`` option -> amplitude dtype.
PRECISIONS: dict[str, type[np.complexfloating[Any, Any]]] = {"single": np.complex64, "double": np.complex128}
#: Instructions that do nothing to the state.
_IGNORED = frozenset({"barrier", "delay", "global_phase"})
#: Gates wider than this are expanded through their definition rather than ``to_matrix()``.
_MATRIX_QUBITS = 3
#: Controlled gates up to this width take their controlled block from the full matrix.
_BLOCK_QUBITS = 8
#: Shots per cuStateVec sampler call (its shot count is a uint32; host buffers stay small).
_SAMPLE_CHUNK = 1 << 20
_SWAP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=complex)
_DEVICE_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@dataclass(frozen=True)
class GateOp:
    """One ``custatevecApplyMatrix`` call.

    Attributes:
        matrix: ``2**k x 2**k`` complex matrix, row-major; index bit ``j`` is ``targets[j]``.
        targets: The ``k`` target qubits.
        controls: Control qubits (the matrix acts where each has its value in ``control_values``).
        control_values: 0 or 1 per control.
    """

    matrix: np.ndarray
    targets: tuple[int, ...]
    controls: tuple[int, ...] = ()
    control_values: tuple[int, ...] = ()

    @property
    def qubits(self) -> tuple[int, ...]:
        return self.targets + self.controls


@dataclass(frozen=True)
class CompiledCircuit:
    """A circuit as cuStateVec runs it.

    Attributes:
        n_qubits: Width of the state.
        n_clbits: Classical bits of the counts' keys.
        ops: The gates, fused, in order.
        measured: ``(qubit, clbit)`` for each classical bit written, in clbit order.
        source_gates: Gates of the input circuit (before fusion), for reports.
    """

    n_qubits: int
    n_clbits: int
    ops: tuple[GateOp, ...]
    measured: tuple[tuple[int, int], ...]
    source_gates: int = 0

    def cast(self, dtype: Any) -> CompiledCircuit:
        """The same ops with C-contiguous matrices of ``dtype`` (what the engines read)."""
        ops = tuple(replace(op, matrix=np.ascontiguousarray(op.matrix, dtype=dtype)) for op in self.ops)
        return replace(self, ops=ops)


def compile_circuit(circuit: QuantumCircuit, *, fuse: bool = True) -> CompiledCircuit:
    """Translate ``circuit`` into cuStateVec gate applications and final measurements.

    Args:
        circuit: A circuit whose measurements are all final (defer mid-circuit ones first) and whose
            parameters are bound.
        fuse: Fold one- and two-qubit gates together (see the module docstring).

    Raises:
        ExecutionError: An instruction cannot run on a statevector without branching (classical
            control flow, a reset or a gate after its qubit was measured) or has unbound parameters;
            the message names it.
    """
    qubit_index = {q: i for i, q in enumerate(circuit.qubits)}
    clbit_index = {c: i for i, c in enumerate(circuit.clbits)}
    fuser = _Fuser(fuse)
    measured: dict[int, int] = {}
    done: set[int] = set()  # measured qubits: nothing may act on them any more
    touched: set[int] = set()
    gates = 0

    def visit(instruction: CircuitInstruction, qubits: tuple[int, ...]) -> None:
        nonlocal gates
        op = instruction.operation
        name = op.name
        if name in _IGNORED:
            return
        where = f"{name!r} on qubit(s) {list(qubits)}"
        if name == "measure":
            raise ExecutionError(f"A measurement inside a composite instruction ({where}) is not supported.")
        if name == "reset":
            if qubits[0] in touched:
                raise ExecutionError(
                    f"cuStateVec nodes cannot reset a qubit that was already used ({where}); "
                    "only resets at the start of a circuit (no-ops) are accepted."
                )
            return
        if getattr(op, "blocks", None):
            raise ExecutionError(f"cuStateVec nodes do not run classical control flow ({where}).")
        hit = sorted(set(qubits) & done)
        if hit:
            raise ExecutionError(f"Instruction {where} acts on qubit(s) {hit} after they were measured.")
        if _parameterized(op):
            raise ExecutionError(
                f"Gate {where} has unbound parameters {[str(p) for p in op.params]}; bind them first "
                "(circuit.assign_parameters) or run a parameter sweep."
            )
        touched.update(qubits)
        gate = None
        definition = getattr(op, "definition", None)
        # wide composite gates go through their definition; a matrix is cheaper up to three qubits,
        # for unitaries, and for controlled gates (their controlled block)
        if len(qubits) <= _MATRIX_QUBITS or name == "unitary" or _controls(op) is not None or definition is None:
            try:
                gate = _gate_op(op, qubits)
            except Exception as exc:  # Qiskit raises CircuitError, TypeError... for operations without a matrix
                if definition is None:
                    raise ExecutionError(f"cuStateVec nodes cannot apply {where}: {exc}") from exc
        if gate is None:
            assert definition is not None  # the matrix failed only where a definition exists
            inner = {q: qubits[i] for i, q in enumerate(definition.qubits)}
            for sub in definition.data:
                visit(sub, tuple(inner[q] for q in sub.qubits))
            return
        gates += 1
        fuser.add(gate)

    for instruction in circuit.data:
        qubits = tuple(qubit_index[q] for q in instruction.qubits)
        if instruction.name == "measure":
            qubit, clbit = qubits[0], clbit_index[instruction.clbits[0]]
            measured[clbit] = qubit
            done.add(qubit)
            continue
        visit(instruction, qubits)
    return CompiledCircuit(
        n_qubits=circuit.num_qubits,
        n_clbits=circuit.num_clbits,
        ops=fuser.finish(),
        measured=tuple(sorted(((q, c) for c, q in measured.items()), key=lambda qc: qc[1])),
        source_gates=gates,
    )


def _parameterized(op: Any) -> bool:
    from qiskit.circuit import ParameterExpression

    check = getattr(op, "is_parameterized", None)
    if check is not None:
        return bool(check())
    base = getattr(op, "base_op", None)  # AnnotatedOperation
    if base is not None:
        return _parameterized(base)
    return any(isinstance(p, ParameterExpression) and p.parameters for p in getattr(op, "params", ()))


def _controls(op: Any) -> tuple[int, int, Any] | None:
    """``(number of controls, control state, base operation)`` of a controlled operation, else None."""
    from qiskit.circuit import AnnotatedOperation, ControlledGate, ControlModifier

    if isinstance(op, ControlledGate):
        return int(op.num_ctrl_qubits), int(op.ctrl_state), op.base_gate
    if isinstance(op, AnnotatedOperation) and len(op.modifiers) == 1 and isinstance(op.modifiers[0], ControlModifier):
        return int(op.modifiers[0].num_ctrl_qubits), int(op.modifiers[0].ctrl_state), op.base_op
    return None


def _matrix(op: Any) -> np.ndarray:
    """The unitary of ``op``: its own ``to_matrix()``, else through ``Operator`` (definitions, annotations)."""
    try:
        return np.asarray(op.to_matrix(), dtype=complex)
    except Exception:  # no matrix of its own (composite gates, AnnotatedOperation)
        from qiskit.quantum_info import Operator

        return np.asarray(Operator(op).data, dtype=complex)


def _gate_op(op: Any, qubits: tuple[int, ...]) -> GateOp:
    """The ``GateOp`` of one gate: a full matrix up to two qubits, a controlled block above."""
    k = len(qubits)
    controlled = _controls(op) if k > 2 else None
    if controlled is None:
        return GateOp(_matrix(op), targets=qubits)
    nc, state, base = controlled
    values = tuple((state >> i) & 1 for i in range(nc))
    block = None
    if k <= _BLOCK_QUBITS:
        # the block of the full matrix where the controls (low index bits) hold their values; exact
        # also for gates whose base gate drops a phase (CU's gamma)
        try:
            full = _matrix(op)
            idx = [state | (t << nc) for t in range(2 ** (k - nc))]
            block = full[np.ix_(idx, idx)]
        except Exception:
            block = None
    if block is None:
        block = _matrix(base)
    return GateOp(block, targets=qubits[nc:], controls=qubits[:nc], control_values=values)


@dataclass
class _Fuser:
    """Folds gates on at most two qubits into fewer, denser matrices (see :func:`compile_circuit`)."""

    enabled: bool
    ops: list[GateOp] = field(default_factory=list)
    last: dict[int, int] = field(default_factory=dict)  # qubit -> index of the last op acting on it
    pending: dict[int, np.ndarray] = field(default_factory=dict)  # one-qubit gates not yet placed

    def add(self, gate: GateOp) -> None:
        if not self.enabled:
            self._append(gate)
            return
        if len(gate.targets) == 1 and not gate.controls:
            q = gate.targets[0]
            prior = self.pending.get(q)
            self.pending[q] = gate.matrix if prior is None else gate.matrix @ prior
            return
        if gate.controls or len(gate.targets) > 2:
            for q in gate.qubits:
                if q in self.pending:
                    self._append(GateOp(self.pending.pop(q), targets=(q,)))
            self._append(gate)
            return
        matrix = gate.matrix
        for position, q in enumerate(gate.targets):
            if q in self.pending:
                matrix = matrix @ _expand(self.pending.pop(q), position, len(gate.targets))
        j = self.last.get(gate.targets[0])
        if j is not None and all(self.last.get(q) == j for q in gate.targets):
            prev = self.ops[j]
            if not prev.controls and set(prev.targets) == set(gate.targets):
                aligned = matrix if prev.targets == gate.targets else _SWAP @ matrix @ _SWAP
                self.ops[j] = replace(prev, matrix=aligned @ prev.matrix)
                return
        self._append(replace(gate, matrix=matrix))

    def _append(self, gate: GateOp) -> None:
        self.ops.append(gate)
        for q in gate.qubits:
            self.last[q] = len(self.ops) - 1

    def finish(self) -> tuple[GateOp, ...]:
        for q, matrix in sorted(self.pending.items()):
            j = self.last.get(q)
            prev = self.ops[j] if j is not None else None
            if j is not None and prev is not None and not prev.controls and len(prev.targets) <= 2:
                # nothing after op j touches q, so q's trailing gates may join it
                position = prev.targets.index(q)
                self.ops[j] = replace(prev, matrix=_expand(matrix, position, len(prev.targets)) @ prev.matrix)
            else:
                self._append(GateOp(matrix, targets=(q,)))
        self.pending.clear()
        return tuple(self.ops)


def _expand(matrix: np.ndarray, position: int, k: int) -> np.ndarray:
    """A one-qubit ``matrix`` on index bit ``position`` of a ``k``-qubit (k <= 2) operator."""
    if k == 1:
        return matrix
    eye = np.eye(2, dtype=matrix.dtype)
    return np.kron(eye, matrix) if position == 0 else np.kron(matrix, eye)  # kron(a, b): a on the high bit


# ---------------------------------------------------------------------------------------------
# Engines
# ---------------------------------------------------------------------------------------------


class Engine(Protocol):
    """A statevector in ``|0...0>`` that takes :class:`GateOp` values and samples bitstrings."""

    name: str

    def apply(self, op: GateOp) -> None: ...

    def sample(self, bit_ordering: Sequence[int], randnums: np.ndarray) -> np.ndarray:
        """One int64 per random number: bit ``i`` is the value of qubit ``bit_ordering[i]``."""
        ...

    def statevector(self) -> np.ndarray: ...

    def close(self) -> None: ...


class NumpyEngine:
    """The cuStateVec contract on the CPU with NumPy (EMULATED runs, and the reference in tests)."""

    name = "numpy"

    def __init__(self, n_qubits: int, dtype: Any = np.complex128) -> None:
        self.n_qubits = n_qubits
        self.state = np.zeros(1 << n_qubits, dtype=dtype)
        self.state[0] = 1

    def apply(self, op: GateOp) -> None:
        if not op.controls and self._apply_to_a_run(op):
            return
        n = self.n_qubits
        psi = self.state.reshape((2,) * n)  # axis a is qubit n - 1 - a
        index: list[Any] = [slice(None)] * n
        for qubit, value in zip(op.controls, op.control_values, strict=True):
            index[n - 1 - qubit] = value
        sub = psi[tuple(index)]  # a view without the control axes
        remaining = [q for q in range(n - 1, -1, -1) if q not in op.controls]
        k = len(op.targets)
        axes = [remaining.index(t) for t in reversed(op.targets)]  # matrix row axis 0 is targets[k-1]
        tensor = op.matrix.astype(self.state.dtype, copy=False).reshape((2,) * (2 * k))
        out = np.tensordot(tensor, sub, axes=(list(range(k, 2 * k)), axes))
        sub[...] = np.moveaxis(out, list(range(k)), axes)

    def _apply_to_a_run(self, op: GateOp) -> bool:
        """One matrix product for a gate on qubits ``t .. t+k-1`` (what fusion mostly makes); False otherwise.

        The state is a stack of ``2**k x 2**t`` blocks; below ``t = 3`` the blocks are too thin for a fast
        product, so the gate acts as ``U (x) I`` on the low ``k + t`` bits instead. Either takes a layer of
        ``bench.gpu --cpu`` in under half the time of the general contraction below.
        """
        k, low = len(op.targets), min(op.targets)
        if sorted(op.targets) != list(range(low, low + k)):
            return False
        matrix = _as_run_matrix(op.matrix, op.targets, low).astype(self.state.dtype, copy=False)
        if low < 3:
            if low:
                matrix = np.kron(matrix, np.eye(1 << low, dtype=matrix.dtype))
            self.state = (self.state.reshape(-1, matrix.shape[0]) @ matrix.T).reshape(-1)
        else:
            self.state = np.matmul(matrix, self.state.reshape(-1, 1 << k, 1 << low)).reshape(-1)
        return True

    def sample(self, bit_ordering: Sequence[int], randnums: np.ndarray) -> np.ndarray:
        cdf = np.cumsum(np.abs(self.state.astype(np.complex128)) ** 2)
        picked = np.searchsorted(cdf, np.asarray(randnums, dtype=np.float64) * cdf[-1], side="right")
        return _gather_bits(np.minimum(picked, cdf.size - 1).astype(np.int64), bit_ordering)

    def statevector(self) -> np.ndarray:
        return self.state.copy()

    def close(self) -> None:
        self.state = np.zeros(0, dtype=self.state.dtype)


def _as_run_matrix(matrix: np.ndarray, targets: Sequence[int], low: int) -> np.ndarray:
    """``matrix`` (index bit ``j`` is ``targets[j]``) with index bit ``j`` on qubit ``low + j`` instead."""
    k = len(targets)
    if list(targets) == list(range(low, low + k)):
        return matrix
    # axis a of the (2,)*k row tensor is index bit k-1-a
    order = [k - 1 - list(targets).index(low + k - 1 - a) for a in range(k)]
    tensor = matrix.reshape((2,) * (2 * k)).transpose(order + [k + i for i in order])
    return tensor.reshape(matrix.shape)


def _gather_bits(indices: np.ndarray, bit_ordering: Sequence[int]) -> np.ndarray:
    out = np.zeros_like(indices)
    for i, qubit in enumerate(bit_ordering):
        out |= ((indices >> qubit) & 1) << i
    return out


def _gpu_modules() -> tuple[Any, Any, Any]:
    """``(cupy, custatevec bindings, cuquantum)``, or ProviderUnavailableError with the install hint."""
    hint = install_hint(cuquantum_extra())
    try:
        import cupy
    except ImportError as exc:
        raise ProviderUnavailableError(f"CuPy could not be imported ({exc}). {hint}") from exc
    try:
        import cuquantum
    except ImportError as exc:  # not installed, or one of its own dependencies is missing: say which
        raise ProviderUnavailableError(f"cuquantum-python could not be imported ({exc}). {hint}") from exc
    try:
        from cuquantum.bindings import custatevec
    except ImportError:
        try:  # cuquantum-python before 25.03
            from cuquantum import custatevec
        except ImportError as exc:
            raise ProviderUnavailableError(f"cuquantum-python has no cuStateVec bindings ({exc}). {hint}") from exc
    return cupy, custatevec, cuquantum


class CuStateVecEngine:
    """A statevector on one CUDA GPU, evolved by ``custatevecApplyMatrix`` and sampled by cuStateVec.

    Raises:
        ProviderUnavailableError: CuPy or cuquantum-python is missing.
        NodeCapacityError: The state does not fit in the device's free memory.
    """

    name = "custatevec"

    def __init__(self, n_qubits: int, dtype: Any = np.complex128, device: int = 0) -> None:
        cp, cusv, cuquantum = _gpu_modules()
        self._cp, self._cusv = cp, cusv
        self.n_qubits = n_qubits
        self.dtype = np.dtype(dtype)
        single = self.dtype == np.complex64
        self._data_type = cuquantum.cudaDataType.CUDA_C_32F if single else cuquantum.cudaDataType.CUDA_C_64F
        self._compute = cuquantum.ComputeType.COMPUTE_32F if single else cuquantum.ComputeType.COMPUTE_64F
        self._device = cp.cuda.Device(device)
        self._workspace: Any = None
        self._workspace_size = 0
        self._sizes: dict[tuple[int, int], int] = {}
        with self._device:
            free, _total = cp.cuda.runtime.memGetInfo()
            need = (1 << n_qubits) * self.dtype.itemsize
            if need > free:
                raise NodeCapacityError(
                    f"A {n_qubits}-qubit {self.dtype.name} state takes {need / 2**30:.2f} GiB; "
                    f"GPU {device} has {free / 2**30:.2f} GiB free."
                )
            self.state = cp.zeros(1 << n_qubits, dtype=self.dtype)
            self.state[0] = 1
            self._handle = cusv.create()

    def _scratch(self, size: int) -> int:
        if size > self._workspace_size:
            self._workspace = self._cp.cuda.alloc(size)
            self._workspace_size = size
        return int(self._workspace.ptr) if size else 0

    def apply(self, op: GateOp) -> None:
        cusv = self._cusv
        matrix = op.matrix if op.matrix.dtype == self.dtype else op.matrix.astype(self.dtype)
        matrix = np.ascontiguousarray(matrix)
        k, c = len(op.targets), len(op.controls)
        with self._device:
            size = self._sizes.get((k, c))
            if size is None:
                size = self._sizes[(k, c)] = cusv.apply_matrix_get_workspace_size(
                    self._handle, self._data_type, self.n_qubits, matrix.ctypes.data, self._data_type,
                    cusv.MatrixLayout.ROW, 0, k, c, self._compute,
                )  # fmt: skip
            cusv.apply_matrix(
                self._handle, self.state.data.ptr, self._data_type, self.n_qubits,
                matrix.ctypes.data, self._data_type, cusv.MatrixLayout.ROW, 0,
                list(op.targets), k, list(op.controls) if c else 0, list(op.control_values) if c else 0, c,
                self._compute, self._scratch(size), size,
            )  # fmt: skip

    def sample(self, bit_ordering: Sequence[int], randnums: np.ndarray) -> np.ndarray:
        cusv = self._cusv
        randnums = np.ascontiguousarray(randnums, dtype=np.float64)
        shots = int(randnums.size)
        out = np.empty(shots, dtype=np.int64)
        with self._device:
            sampler, size = cusv.sampler_create(
                self._handle, self.state.data.ptr, self._data_type, self.n_qubits, min(shots, _SAMPLE_CHUNK)
            )
            try:
                cusv.sampler_preprocess(self._handle, sampler, self._scratch(size), size)
                for start in range(0, shots, _SAMPLE_CHUNK):
                    n = min(_SAMPLE_CHUNK, shots - start)
                    cusv.sampler_sample(
                        self._handle, sampler, out[start:].ctypes.data, list(bit_ordering), len(bit_ordering),
                        randnums[start:].ctypes.data, n, cusv.SamplerOutput.RANDNUM_ORDER,
                    )  # fmt: skip
            finally:
                cusv.sampler_destroy(sampler)
        return out

    def statevector(self) -> np.ndarray:
        with self._device:
            return self._cp.asnumpy(self.state)

    def synchronize(self) -> None:
        self._device.synchronize()

    def close(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        with self._device:
            if handle is not None:
                self._cusv.destroy(handle)
            self.state = None
            self._workspace = None
            self._cp.get_default_memory_pool().free_all_blocks()


def simulate(compiled: CompiledCircuit, engine: Engine, shots: int, seed: int | None = None) -> dict[str, int]:
    """Run ``compiled`` on ``engine`` and sample ``shots`` shots; the engine is closed afterwards."""
    try:
        for op in compiled.ops:
            engine.apply(op)
        qubits = [q for q, _ in compiled.measured]
        if not qubits or shots == 0:
            return {"0" * compiled.n_clbits: shots} if shots else {}
        randnums = np.random.default_rng(seed).random(shots)
        samples = engine.sample(qubits, randnums)
    finally:
        engine.close()
    return counts_from_samples(samples, [c for _, c in compiled.measured], compiled.n_clbits)


def counts_from_samples(samples: np.ndarray, clbits: Sequence[int], n_clbits: int) -> dict[str, int]:
    """Counts keyed in Qiskit order from sampled ints whose bit ``i`` is the value for ``clbits[i]``.

    Classical bits no measurement writes read 0.
    """
    values, counts = np.unique(samples, return_counts=True)
    out: dict[str, int] = {}
    contiguous = list(clbits) == list(range(len(clbits)))
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        if contiguous:
            key = format(value, f"0{n_clbits}b") if n_clbits else ""
        else:
            chars = ["0"] * n_clbits
            for i, clbit in enumerate(clbits):
                if (value >> i) & 1:
                    chars[n_clbits - 1 - clbit] = "1"
            key = "".join(chars)
        out[key] = int(count)
    return out


# ---------------------------------------------------------------------------------------------
# Provider
# ---------------------------------------------------------------------------------------------


def cuquantum_status(gpu: int = 0) -> str | None:
    """Why this machine cannot run cuStateVec nodes on GPU ``gpu``, or None when it can."""
    devices = cuda_devices()
    if not devices:
        return "no CUDA GPU is visible to this process (CuPy and nvidia-smi found none)"
    if gpu >= len(devices):
        return f"GPU {gpu} was asked for, but only {len(devices)} are visible"
    try:
        _gpu_modules()
    except ProviderUnavailableError as exc:
        return str(exc)
    return None


def _device_lock(gpu: int) -> threading.Lock:
    with _LOCKS_GUARD:
        return _DEVICE_LOCKS.setdefault(gpu, threading.Lock())


class CuQuantumProvider(NodeProvider):
    """cuStateVec statevector on a CUDA GPU (:class:`NumpyEngine` on the CPU where none exists)."""

    key = "local_gpu_cuquantum"
    description = (
        "NVIDIA cuStateVec statevector on a CUDA GPU via cuquantum-python and CuPy "
        "(emulated on the CPU where none exists)"
    )
    extra = None  # the SDK is needed only on GPU machines: EMULATED runs without it

    @classmethod
    def live_status(cls) -> str | None:
        missing = cuquantum_status()
        return None if missing is None else f"{missing}: EMULATED runs on the CPU"

    def build_nodes(
        self,
        n_nodes: int = 1,
        max_qubits: int | None = None,
        *,
        precision: str = "double",
        gpus: Sequence[int] | None = None,
        fusion: bool = True,
        cost_per_shot: float = 0.0,
        cost_per_task: float = 0.0,
        cost_per_second: float = 0.0,
        work_pool: str | None = None,
        tags: Sequence[str] = (),
        host: str = "local",
        **unknown: Any,
    ) -> list[QPUNodeSpec]:
        """Build ``n_nodes`` GPU statevector nodes.

        Args:
            n_nodes: How many nodes; node ``i`` runs on ``gpus[i % len(gpus)]``.
            max_qubits: Declared width (default: what the GPU's memory holds, see the module docstring).
            precision: ``double`` (complex128, 16 bytes an amplitude) or ``single`` (complex64, 8).
            gpus: CUDA device ordinals to use (default: every visible GPU, or GPU 0 where none is).
            fusion: Fold one- and two-qubit gates into fewer matrices.
            cost_per_shot: Price per shot.
            cost_per_task: Price per submission.
            cost_per_second: Price per second (a rented GPU).
            work_pool: Prefect work pool that runs these nodes' shards (``gpu`` on a GPU host).
            tags: Labels for filtering.
            host: The machine the GPUs are in.

        Raises:
            ClusterConfigError: An unknown argument or precision, or GPU ordinals that are not
                non-negative integers.
        """
        from network.errors import ClusterConfigError

        if unknown:
            raise ClusterConfigError(
                f"Provider {self.key!r}: unknown argument(s) {', '.join(sorted(unknown))}. Known: n_nodes, "
                "max_qubits, precision, gpus, fusion, cost_per_shot, cost_per_task, cost_per_second, work_pool, "
                "tags, host."
            )
        if precision not in PRECISIONS:
            raise ClusterConfigError(
                f"Provider {self.key!r}: unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}."
            )
        chosen = list(gpus) if gpus is not None else [d.index for d in cuda_devices()] or [0]
        if not chosen or any(isinstance(g, bool) or not isinstance(g, int) or g < 0 for g in chosen):
            raise ClusterConfigError(f"Provider {self.key!r}: gpus must be CUDA device ordinals (>= 0), got {gpus!r}.")
        if not isinstance(fusion, bool):
            raise ClusterConfigError(f"Provider {self.key!r}: fusion must be true or false, got {fusion!r}.")
        if max_qubits is None:
            used = chosen[:n_nodes] if isinstance(n_nodes, int) and n_nodes > 0 else chosen
            max_qubits = default_statevector_qubits(np.dtype(PRECISIONS[precision]).itemsize, used)
        nodes = self.make_nodes(
            n_nodes,
            max_qubits=max_qubits,
            exact=True,
            method="statevector",
            device="GPU",
            cost_per_shot=cost_per_shot,
            cost_per_task=cost_per_task,
            cost_per_second=cost_per_second,
            work_pool=work_pool,
            tags=tuple(tags),
            host=host,
            mid_circuit=False,  # one statevector per circuit: mid-circuit measurements are deferred onto ancillas
            options={"precision": precision, "fusion": fusion},
        )
        return [replace(node, options={**node.options, "gpu": chosen[i % len(chosen)]}) for i, node in enumerate(nodes)]

    def prepare(self, node_spec: QPUNodeSpec, mode: QVMMode) -> QPUNodeSpec:
        gpu = int(node_spec.options.get("gpu", 0))
        missing = cuquantum_status(gpu)
        if missing is None:
            device = cuda_devices()[gpu]
            width = np.dtype(PRECISIONS[node_spec.options.get("precision", "double")]).itemsize
            holds = statevector_qubits(device.total_bytes, width)
            if node_spec.max_qubits > holds and mode is not QVMMode.DRY_RUN:
                raise NodeUnavailableError(
                    f"Node {node_spec.node_id!r} declares max_qubits={node_spec.max_qubits}, but "
                    f"{device.describe()} holds at most {holds} qubits in "
                    f"{node_spec.options.get('precision', 'double')} precision; lower max_qubits."
                )
            return node_spec
        if mode in (QVMMode.EMULATED, QVMMode.DRY_RUN):
            return replace(node_spec, device="CPU", emulates="GPU")
        raise NodeUnavailableError(
            f"Node {node_spec.node_id!r} ({self.key}) needs a CUDA GPU with cuQuantum: {missing}. "
            "Run with mode=QVMMode.EMULATED to emulate it on the CPU."
        )

    def execute(
        self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None
    ) -> dict[str, int]:
        from providers.aer import defer_measurements

        if circuit.num_qubits > node_spec.max_qubits:
            raise NodeCapacityError(
                f"Node {node_spec.node_id!r} holds {node_spec.max_qubits} qubits; the circuit needs "
                f"{circuit.num_qubits}."
            )
        # every deferrable mid-circuit measurement is deferred: this simulator never branches per shot;
        # the ancillas must fit the node too, or nothing is deferred
        deferred, dynamic = defer_measurements(circuit, 1 << 62, node_spec.max_qubits)
        if dynamic:
            raise ExecutionError(
                f"Node {node_spec.node_id!r}: the circuit measures qubits mid-circuit in a way that cannot be "
                "deferred (while loops, switch statements, classical variables, or too few spare qubits); run it "
                "on an Aer node."
            )
        try:
            compiled = compile_circuit(deferred, fuse=bool(node_spec.options.get("fusion", True)))
        except ExecutionError as exc:
            raise ExecutionError(f"Node {node_spec.node_id!r}: {exc}") from exc
        dtype = PRECISIONS[node_spec.options.get("precision", "double")]
        compiled = compiled.cast(dtype)
        if node_spec.device != "GPU":
            return simulate(compiled, NumpyEngine(compiled.n_qubits, dtype), shots, seed)
        gpu = int(node_spec.options.get("gpu", 0))
        with _device_lock(gpu):
            try:
                engine = CuStateVecEngine(compiled.n_qubits, dtype, gpu)
                return simulate(compiled, engine, shots, seed)
            except (NodeCapacityError, ProviderUnavailableError):
                raise
            except Exception as exc:  # cuStateVecError, CUDARuntimeError, OutOfMemoryError
                raise ExecutionError(f"cuStateVec failed on node {node_spec.node_id!r}: {exc}") from exc
