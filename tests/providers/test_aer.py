from __future__ import annotations

from typing import Any, ClassVar

import pytest
from qiskit import QuantumCircuit

from network.distributed_qvm import DistributedQVM, QVMMode, QVMResult, VirtualCircuitSpec
from network.errors import ClusterConfigError, NodeUnavailableError
from network.node_providers import ClusterBuilder
from providers.aer import aer_devices
from tests.conftest import random_block_circuit
from tests.providers.conformance import ProviderConformance
from tests.stats import assert_matches, exact_distribution

HAS_GPU = "GPU" in aer_devices()


def _random(n: int, seed: int) -> QuantumCircuit:
    qc = random_block_circuit(1, n, 4, seed=seed)
    qc.measure_all()
    return qc


@pytest.mark.parametrize("key", ["local_cpu", "local_gpu_aer"])
def test_statevector_nodes_sample_the_exact_distribution(key: str) -> None:
    registry = ClusterBuilder().add(key, n_nodes=1, max_qubits=10).build()
    qc = _random(6, seed=3)
    result = DistributedQVM(registry, shots=20_000).run(VirtualCircuitSpec(circuit_object=qc, seed=2))
    assert_matches(result.counts, exact_distribution(qc), what=key)
    assert not result.approximate


def test_mps_node_runs_circuits_wider_than_63_qubits() -> None:
    registry = ClusterBuilder().add("local_gpu_mps", n_nodes=1).build()
    assert registry.node("local_gpu_mps-0").max_qubits == 1000
    qc = QuantumCircuit(100)
    qc.h(0)
    for q in range(99):
        qc.cx(q, q + 1)
    qc.measure_all()
    result = DistributedQVM(registry, shots=2000).run(VirtualCircuitSpec(circuit_object=qc, seed=1))
    assert set(result.counts) == {"0" * 100, "1" * 100}
    assert_matches(result.counts, {"0" * 100: 0.5, "1" * 100: 0.5})
    assert result.approximate
    assert result.shard_results[0].method == "matrix_product_state"


def test_local_cpu_can_be_an_mps_node() -> None:
    registry = ClusterBuilder().add("local_cpu", n_nodes=1, method="matrix_product_state").build()
    assert not registry.node("local_cpu-0").exact
    with pytest.raises(ClusterConfigError, match="always uses method 'matrix_product_state'"):
        ClusterBuilder().add("local_gpu_mps", n_nodes=1, method="statevector").build()
    with pytest.raises(ClusterConfigError, match="unknown method 'density'"):
        ClusterBuilder().add("local_cpu", n_nodes=1, method="density").build()


def test_aer_options_pass_through() -> None:
    registry = ClusterBuilder().add("local_cpu", n_nodes=1, max_qubits=8, precision="single").build()
    qc = _random(4, seed=1)
    result = DistributedQVM(registry, shots=10_000).run(VirtualCircuitSpec(circuit_object=qc, seed=3))
    assert_matches(result.counts, exact_distribution(qc))


@pytest.mark.skipif(HAS_GPU, reason="a GPU is present")
def test_gpu_nodes_without_a_gpu() -> None:
    registry = ClusterBuilder().add("local_gpu_aer", n_nodes=2, max_qubits=12).build()
    spec = VirtualCircuitSpec(circuit_object=_random(3, seed=1), seed=1)
    with pytest.raises(NodeUnavailableError, match=r"'local_gpu_aer-0'.*needs a GPU.*EMULATED"):
        DistributedQVM(registry, mode=QVMMode.LIVE).run(spec)
    emulated: QVMResult = DistributedQVM(registry, mode=QVMMode.EMULATED).run(spec)
    assert emulated.emulated and emulated.shard_results[0].device == "CPU"
    assert emulated.plan.nodes[0].emulates == "GPU"
    # the node's limits still hold when emulated
    assert emulated.plan.nodes[0].max_qubits == 12
    dry = DistributedQVM(registry, mode=QVMMode.DRY_RUN).run(spec)
    assert dry.emulated and dry.counts == {}


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="no CUDA GPU visible to Aer")
def test_gpu_counts_match_cpu() -> None:
    qc = _random(12, seed=4)
    spec = VirtualCircuitSpec(circuit_object=qc, seed=5)
    gpu = DistributedQVM(
        ClusterBuilder().add("local_gpu_aer", n_nodes=1, max_qubits=20).build(), mode="live", shots=50_000
    )
    result = gpu.run(spec)
    assert not result.emulated and result.shard_results[0].device == "GPU"
    assert_matches(result.counts, exact_distribution(qc), what="GPU")


class TestAerCPUConformance(ProviderConformance):
    key = "local_cpu"
    node_args: ClassVar[dict[str, Any]] = {"max_qubits": 10}


class TestAerGPUConformance(ProviderConformance):
    key = "local_gpu_aer"
    node_args: ClassVar[dict[str, Any]] = {"max_qubits": 10}


class TestAerMPSConformance(ProviderConformance):
    key = "local_gpu_mps"
    node_args: ClassVar[dict[str, Any]] = {}
