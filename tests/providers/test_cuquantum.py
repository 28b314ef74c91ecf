"""local_gpu_cuquantum: gate translation, fusion, the sampler contract, counts, modes and errors.

Everything but the ``gpu``-marked tests runs on the CPU: the NumPy engine follows cuStateVec's
contract (row-major matrices with ``targets[0]`` the least significant index bit, inverse-CDF
sampling in random-number order), so the translation and counting code is the code a GPU node runs.
The ``gpu`` tests run cuStateVec itself where a CUDA GPU and cuquantum-python are present.
"""

from __future__ import annotations

import pickle
import sys
import types
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, ClassVar

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import MCXGate, RYGate, UGate, UnitaryGate
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import Statevector, random_unitary

from network.distributed_qvm import DistributedQVM, QVMMode, VirtualCircuitSpec
from network.errors import (
    ClusterConfigError,
    ExecutionError,
    NodeCapacityError,
    NodeUnavailableError,
    ProviderUnavailableError,
)
from network.node_providers import ClusterBuilder, get_provider
from providers import cuquantum, gpu
from providers.cuquantum import (
    CuQuantumProvider,
    GateOp,
    NumpyEngine,
    compile_circuit,
    counts_from_samples,
    cuquantum_status,
    simulate,
)
from providers.gpu import GPUDevice
from tests.conftest import random_block_circuit, undeferrable_circuit
from tests.providers.conformance import ProviderConformance
from tests.stats import assert_matches, assert_same_distribution, exact_distribution

GPU_MISSING = cuquantum_status()
needs_gpu = pytest.mark.skipif(GPU_MISSING is not None, reason=f"cuStateVec unavailable: {GPU_MISSING}")


def _evolve(circuit: QuantumCircuit, *, fuse: bool = True, dtype: type = np.complex128) -> np.ndarray:
    compiled = compile_circuit(circuit, fuse=fuse).cast(dtype)
    engine = NumpyEngine(compiled.n_qubits, dtype)
    for op in compiled.ops:
        engine.apply(op)
    return engine.statevector()


def _zoo() -> QuantumCircuit:
    """Gates that take every path of the translation: controls with a control state, CU's phase,
    a composite gate, a 4-qubit unitary, a wide MCX, SWAPs both ways round."""
    qc = QuantumCircuit(7)
    qc.h(range(7))
    qc.append(RYGate(0.7).control(2, ctrl_state="01", annotated=False), [0, 3, 5])
    qc.append(UGate(0.3, 0.2, 0.1).control(1, annotated=False), [4, 1])
    qc.append(RYGate(0.2).control(2, ctrl_state="10", annotated=True), [6, 1, 2])  # an AnnotatedOperation
    qc.cu(0.4, 0.5, 0.6, 0.9, 2, 6)  # gamma = 0.9 lives outside the base gate
    sub = QuantumCircuit(4, name="block")
    sub.cx(0, 3)
    sub.rzz(0.3, 1, 2)
    sub.ccx(3, 2, 0)
    qc.append(sub.to_gate(), [6, 0, 2, 4])
    qc.append(UnitaryGate(random_unitary(16, seed=3)), [5, 1, 3, 0])
    qc.append(MCXGate(5, ctrl_state=0b10110), [0, 1, 2, 3, 4, 6])
    qc.swap(1, 5)
    qc.swap(5, 1)
    qc.cswap(3, 2, 6)
    qc.rzz(0.8, 6, 2)
    qc.cx(2, 6)
    qc.t(2)
    return qc


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("seed", range(12))
def test_random_circuits_reproduce_the_statevector(seed: int, fuse: bool) -> None:
    qc = random_circuit(6, 10, max_operands=3, seed=seed)
    assert np.allclose(_evolve(qc, fuse=fuse), Statevector(qc).data, atol=1e-10)


@pytest.mark.parametrize("fuse", [True, False])
def test_every_gate_path_reproduces_the_statevector(fuse: bool) -> None:
    qc = _zoo()
    assert np.allclose(_evolve(qc, fuse=fuse), Statevector(qc).data, atol=1e-10)
    single = _evolve(qc, fuse=fuse, dtype=np.complex64)
    assert single.dtype == np.complex64
    assert np.allclose(single, Statevector(qc).data, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_gates_on_a_run_of_qubits_in_any_order(dtype: Any) -> None:
    # runs starting at 0..5 take both fast paths (U (x) I below qubit 3, a stacked product above), and each
    # target order permutes the matrix; the reference is the general contraction and Qiskit
    n = 8
    qc = QuantumCircuit(n)
    qc.h(range(n))
    for low in range(6):
        for k, order in ((1, [0]), (2, [1, 0]), (3, [2, 0, 1]), (3, [0, 1, 2])):
            qc.append(UnitaryGate(random_unitary(1 << k, seed=10 * low + k)), [low + i for i in order])
    compiled = compile_circuit(qc, fuse=False)
    runs = NumpyEngine(n, dtype)
    general = NumpyEngine(n, dtype)
    for op in compiled.ops:
        runs.apply(op)
        psi = general.state.reshape((2,) * n)  # the general path, as controlled gates take it
        axes = [n - 1 - t for t in reversed(op.targets)]
        k = len(op.targets)
        out = np.tensordot(op.matrix.astype(dtype).reshape((2,) * (2 * k)), psi, axes=(list(range(k, 2 * k)), axes))
        psi[...] = np.moveaxis(out, list(range(k)), axes)
    tolerance = 1e-10 if dtype == np.complex128 else 1e-5
    assert runs.state.dtype == dtype
    assert np.allclose(runs.statevector(), general.statevector(), atol=tolerance)
    assert np.allclose(runs.statevector(), Statevector(qc).data, atol=tolerance)


def test_controlled_gates_use_controls_not_dense_matrices() -> None:
    qc = QuantumCircuit(5)
    qc.append(MCXGate(3, ctrl_state="101"), [0, 1, 2, 4])
    (op,) = compile_circuit(qc).ops
    assert op.targets == (4,) and op.controls == (0, 1, 2)
    assert op.control_values == (1, 0, 1)  # ctrl_state bit i is control qubit i
    assert np.allclose(op.matrix, [[0, 1], [1, 0]])


def test_fusion_folds_a_brickwork_layer_into_one_pass_per_pair() -> None:
    n, layers = 8, 5
    qc = QuantumCircuit(n)
    for layer in range(layers):
        for q in range(n):
            qc.rx(0.1 * q + layer, q)
            qc.rz(0.2 * q, q)
        for q in range(layer % 2, n - 1, 2):
            qc.cx(q, q + 1)
    compiled = compile_circuit(qc)
    pairs = sum(len(range(layer % 2, n - 1, 2)) for layer in range(layers))
    assert compiled.source_gates == layers * 2 * n + pairs
    # every one-qubit gate joins a neighbouring pair: one op per CX
    assert len(compiled.ops) == pairs
    assert all(len(op.targets) == 2 and not op.controls for op in compiled.ops)
    assert len(compile_circuit(qc, fuse=False).ops) == compiled.source_gates
    assert np.allclose(_evolve(qc), Statevector(qc).data, atol=1e-10)


def test_gates_on_the_same_pair_merge_either_way_round() -> None:
    qc = QuantumCircuit(3)
    qc.cx(0, 1)
    qc.h(1)
    qc.cz(1, 0)
    qc.swap(0, 1)
    qc.x(2)
    compiled = compile_circuit(qc)
    assert [op.targets for op in compiled.ops] == [(0, 1), (2,)]
    assert np.allclose(_evolve(qc), Statevector(qc).data)


def test_sampler_is_the_inverse_cdf_in_random_number_order() -> None:
    # cuStateVec's own sampler example: this state, these numbers, bit ordering [0, 1]. Cumulative
    # probabilities over the index are 0, .01, .03, .08, .16, .34, .59, 1: 0.1 falls in index 4
    # (bits 0 and 1 read 00), 0.8 in 7 (11), 0.4 in 6 (10), 0.6 in 7 (11), 0.2 in 5 (01).
    state = np.array([0, 0.1j, 0.1 + 0.1j, 0.1 + 0.2j, 0.2 + 0.2j, 0.3 + 0.3j, 0.3 + 0.4j, 0.4 + 0.5j])
    engine = NumpyEngine(3)
    engine.state[:] = state
    out = engine.sample([0, 1], np.array([0.1, 0.8, 0.4, 0.6, 0.2]))
    assert out.tolist() == [0b00, 0b11, 0b10, 0b11, 0b01]
    # qubit 2 alone: 0.1 and 0.15 fall in index 4 (qubit 2 reads 1), 0.05 in index 3 (0)
    assert engine.sample([2], np.array([0.1, 0.15, 0.05])).tolist() == [1, 1, 0]


def test_counts_from_samples_places_loose_clbits() -> None:
    samples = np.array([0b01, 0b01, 0b10])
    assert counts_from_samples(samples, [3, 0], 5) == {"01000": 2, "00001": 1}
    assert counts_from_samples(samples, [0, 1], 2) == {"01": 2, "10": 1}


@pytest.mark.parametrize("precision", ["double", "single"])
def test_qvm_runs_emulated_nodes_on_the_numpy_engine(precision: str) -> None:
    registry = ClusterBuilder().add("local_gpu_cuquantum", n_nodes=2, max_qubits=12, precision=precision).build()
    qc = random_block_circuit(1, 7, 4, seed=5)
    qc.measure_all()
    result = DistributedQVM(registry, mode=QVMMode.EMULATED, shots=20_000).run(
        VirtualCircuitSpec(circuit_object=qc, seed=3)
    )
    assert_matches(result.counts, exact_distribution(qc), what=f"cuquantum {precision}")
    assert not result.approximate
    if GPU_MISSING is not None:
        assert result.emulated and result.shard_results[0].device == "CPU"
        assert "emulated" in " ".join(result.notes)


def test_counts_agree_with_aer_cpu() -> None:
    qc = random_block_circuit(1, 8, 5, seed=11)
    qc.measure_all()
    spec = VirtualCircuitSpec(circuit_object=qc, seed=7)
    ours = DistributedQVM(ClusterBuilder().add("local_gpu_cuquantum", max_qubits=10).build(), shots=40_000).run(spec)
    aer = DistributedQVM(ClusterBuilder().add("local_cpu", max_qubits=10).build(), shots=40_000).run(spec)
    assert_same_distribution(ours.counts, aer.counts, what="cuquantum vs Aer CPU")


def test_mid_circuit_measurements_are_deferred() -> None:
    qc = QuantumCircuit(2, 3)
    qc.h(0)
    qc.measure(0, 0)
    qc.cx(0, 1)  # acts on qubit 0 after its measurement
    qc.h(0)
    qc.measure(0, 1)
    qc.measure(1, 2)
    registry = ClusterBuilder().add("local_gpu_cuquantum", max_qubits=4).build()
    result = DistributedQVM(registry, shots=20_000).run(VirtualCircuitSpec(circuit_object=qc, seed=9))
    # clbit 0 = clbit 2 (the CX copied the outcome), clbit 1 is a fair coin
    assert_matches(result.counts, {"000": 0.25, "010": 0.25, "101": 0.25, "111": 0.25})


def test_leading_resets_are_no_ops() -> None:
    qc = QuantumCircuit(2)
    qc.reset([0, 1])
    qc.x(1)
    qc.measure_all()
    assert simulate(compile_circuit(qc), NumpyEngine(2), 10, seed=1) == {"10": 10}


def test_untranslatable_circuits_fail_with_the_instruction_named() -> None:
    provider = CuQuantumProvider()
    (node,) = provider.build_nodes(max_qubits=6)
    node = provider.prepare(node, QVMMode.EMULATED)

    # resets, feed-forward and measure-then-reset are deferred onto ancillas (see providers.aer.defer_measurements)
    reset = QuantumCircuit(1, 1)
    reset.x(0)
    reset.reset(0)
    reset.measure(0, 0)
    assert provider.execute(reset, 10, node, seed=1) == {"0": 10}

    flow = QuantumCircuit(2, 2)
    flow.h(0)
    flow.measure(0, 0)
    with flow.if_test((flow.clbits[0], 1)):
        flow.x(1)
    flow.measure(1, 1)
    assert set(provider.execute(flow, 200, node, seed=2)) == {"00", "11"}

    reuse = QuantumCircuit(1, 2)
    reuse.h(0)
    reuse.measure(0, 0)
    reuse.reset(0)
    reuse.h(0)
    reuse.measure(0, 1)
    assert set(provider.execute(reuse, 400, node, seed=3)) == {"00", "01", "10", "11"}

    looped = undeferrable_circuit()
    with pytest.raises(ExecutionError, match="cannot be deferred"):
        provider.execute(looped, 10, node)

    theta = Parameter("theta")
    unbound = QuantumCircuit(1)
    unbound.rx(theta, 0)
    unbound.measure_all()
    with pytest.raises(ExecutionError, match=r"'rx' on qubit\(s\) \[0\] has unbound parameters \['theta'\]"):
        provider.execute(unbound, 10, node)

    wide = QuantumCircuit(7)
    wide.measure_all()
    with pytest.raises(NodeCapacityError, match="holds 6 qubits; the circuit needs 7"):
        provider.execute(wide, 10, node)


def test_bad_node_arguments_are_refused() -> None:
    with pytest.raises(ClusterConfigError, match="unknown precision 'half'"):
        ClusterBuilder().add("local_gpu_cuquantum", precision="half").build()
    with pytest.raises(ClusterConfigError, match=r"gpus must be CUDA device ordinals.*\[-1\]"):
        ClusterBuilder().add("local_gpu_cuquantum", gpus=[-1]).build()
    with pytest.raises(ClusterConfigError, match="unknown argument.*method.*Known: n_nodes"):
        ClusterBuilder().add("local_gpu_cuquantum", method="matrix_product_state").build()


def test_node_width_comes_from_gpu_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # the memory nvidia-smi reports for these cards
    h100 = GPUDevice(0, "NVIDIA H100 80GB HBM3", 81559 * 2**20)
    h200 = GPUDevice(1, "NVIDIA H200", 143771 * 2**20)
    monkeypatch.setattr(cuquantum, "cuda_devices", lambda: (h100, h200))
    monkeypatch.setattr(gpu, "cuda_devices", lambda: (h100, h200))
    provider = CuQuantumProvider()
    nodes = provider.build_nodes(n_nodes=3)
    assert [n.options["gpu"] for n in nodes] == [0, 1, 0]
    assert {n.max_qubits for n in nodes} == {31}  # the smaller GPU bounds the group, complex128
    assert provider.build_nodes(precision="single", gpus=[1])[0].max_qubits == 33
    assert provider.build_nodes(gpus=[1])[0].max_qubits == 32
    assert provider.build_nodes(precision="single", gpus=[0])[0].max_qubits == 32


def test_live_mode_without_a_gpu_names_what_is_missing() -> None:
    if GPU_MISSING is None:
        pytest.skip("a GPU with cuQuantum is present")
    registry = ClusterBuilder().add("local_gpu_cuquantum", n_nodes=1, max_qubits=8).build()
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.measure_all()
    with pytest.raises(
        NodeUnavailableError, match=r"'local_gpu_cuquantum-0'.*needs a CUDA GPU with cuQuantum: .*EMULATED"
    ):
        DistributedQVM(registry, mode=QVMMode.LIVE).run(VirtualCircuitSpec(circuit_object=qc))
    dry = DistributedQVM(registry, mode=QVMMode.DRY_RUN).run(VirtualCircuitSpec(circuit_object=qc))
    assert dry.counts == {} and dry.emulated


def test_a_broken_gpu_install_names_the_module_that_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    # sys.modules[name] = None makes `import name` raise ImportError, as a missing wheel does
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(ProviderUnavailableError, match=r"CuPy could not be imported \(.*cupy.*\)\. .*cuquantum-cu"):
        cuquantum._gpu_modules()
    monkeypatch.setitem(sys.modules, "cupy", types.ModuleType("cupy"))
    monkeypatch.setitem(sys.modules, "cuquantum", None)
    with pytest.raises(ProviderUnavailableError, match=r"cuquantum-python could not be imported \(.*cuquantum.*\)"):
        cuquantum._gpu_modules()


def _run_in_child(payload: bytes) -> dict[str, int]:
    provider, node, circuit = pickle.loads(payload)
    return provider.execute(circuit, 1000, node, seed=5)


def test_provider_and_nodes_run_in_another_process() -> None:
    provider = get_provider("local_gpu_cuquantum")
    (node,) = provider.build_nodes(max_qubits=6)
    node = provider.prepare(node, QVMMode.EMULATED)
    qc = random_block_circuit(1, 4, 2, seed=1)
    qc.measure_all()
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        child = pool.submit(_run_in_child, pickle.dumps((provider, node, qc))).result(timeout=120)
    assert child == provider.execute(qc, 1000, node, seed=5)


# ---------------------------------------------------------------------------------------------
# On a GPU
# ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("precision", ["double", "single"])
def test_custatevec_reproduces_the_numpy_engine(precision: str) -> None:
    dtype = cuquantum.PRECISIONS[precision]
    qc = _zoo()
    compiled = compile_circuit(qc).cast(dtype)
    engine = cuquantum.CuStateVecEngine(compiled.n_qubits, dtype)
    try:
        for op in compiled.ops:
            engine.apply(op)
        gpu_state = engine.statevector()
        randnums = np.random.default_rng(3).random(100_000)
        gpu_samples = engine.sample([0, 2, 5], randnums)
    finally:
        engine.close()
    reference = NumpyEngine(compiled.n_qubits, dtype)
    for op in compiled.ops:
        reference.apply(op)
    tolerance = 1e-10 if precision == "double" else 1e-5
    assert np.allclose(gpu_state, reference.statevector(), atol=tolerance)
    # the same random numbers give the same bitstrings, but where rounding moves a CDF boundary
    agree = np.mean(gpu_samples == reference.sample([0, 2, 5], randnums))
    assert agree > 0.999


@pytest.mark.gpu
@needs_gpu
def test_gpu_counts_match_aer_cpu() -> None:
    qc = random_block_circuit(1, 22, 6, seed=4)
    qc.measure_all()
    spec = VirtualCircuitSpec(circuit_object=qc, seed=5)
    gpu = DistributedQVM(ClusterBuilder().add("local_gpu_cuquantum", max_qubits=24).build(), mode="live", shots=200_000)
    result = gpu.run(spec)
    assert not result.emulated and result.shard_results[0].device == "GPU"
    cpu = DistributedQVM(ClusterBuilder().add("local_cpu", max_qubits=24).build(), shots=200_000).run(spec)

    # a 22-qubit distribution has far more outcomes than shots: compare the marginals of 8 qubits
    def marginal(counts: dict[str, int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for key, n in counts.items():
            out[key[-8:]] = out.get(key[-8:], 0) + n
        return out

    assert_same_distribution(marginal(result.counts), marginal(cpu.counts), what="cuStateVec vs Aer CPU")


@pytest.mark.gpu
@needs_gpu
def test_gpu_nodes_refuse_a_width_the_device_cannot_hold() -> None:
    registry = ClusterBuilder().add("local_gpu_cuquantum", max_qubits=60).build()
    qc = QuantumCircuit(2)
    qc.measure_all()
    with pytest.raises(NodeUnavailableError, match="declares max_qubits=60, but GPU 0"):
        DistributedQVM(registry, mode="live").run(VirtualCircuitSpec(circuit_object=qc))


def test_gateop_qubits() -> None:
    op = GateOp(np.eye(2), targets=(3,), controls=(1, 2), control_values=(1, 1))
    assert op.qubits == (3, 1, 2)


class TestCuQuantumConformance(ProviderConformance):
    key = "local_gpu_cuquantum"
    node_args: ClassVar[dict[str, Any]] = {"max_qubits": 10}


class TestCuQuantumSinglePrecisionConformance(ProviderConformance):
    key = "local_gpu_cuquantum"
    node_args: ClassVar[dict[str, Any]] = {"max_qubits": 10, "precision": "single", "fusion": False}
