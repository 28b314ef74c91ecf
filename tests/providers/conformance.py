"""The provider contract, as one suite every simulator provider runs.

A provider's test module subclasses :class:`ProviderConformance` and names the provider and the node
arguments; the tests build a node, prepare it in EMULATED mode and call the provider directly, as the
executor does::

    class TestAerCPU(ProviderConformance):
        key = "local_cpu"
        node_args = {"max_qubits": 8}

Noiseless simulators only: the distribution test compares with the exact distribution.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter

from network.circuits import normalize_counts
from network.node_providers import NodeProvider, QPUNodeSpec, QVMMode, get_provider
from tests.conftest import random_block_circuit
from tests.stats import assert_matches, exact_distribution

__all__ = ["ProviderConformance"]


def _flat(counts: dict[str, int], circuit: QuantumCircuit, shots: int, node: QPUNodeSpec) -> dict[str, int]:
    return normalize_counts(counts, width=circuit.num_clbits, shots=shots, node_id=node.node_id)


class ProviderConformance:
    """What every simulator provider must do; subclasses set :attr:`key` and :attr:`node_args`."""

    key: ClassVar[str] = ""
    node_args: ClassVar[dict[str, Any]] = {}
    #: The mode nodes are prepared in (LIVE for a provider whose live path has a local stand-in).
    mode: ClassVar[QVMMode] = QVMMode.EMULATED

    @pytest.fixture
    def node_arguments(self) -> dict[str, Any]:
        """Keyword arguments of ``build_nodes``; override to bring a server's address."""
        return dict(self.node_args)

    @pytest.fixture
    def provider(self) -> NodeProvider:
        return get_provider(self.key)

    @pytest.fixture
    def node(self, provider: NodeProvider, node_arguments: dict[str, Any]) -> QPUNodeSpec:
        (spec,) = provider.build_nodes(n_nodes=1, **node_arguments)
        return provider.prepare(spec, self.mode)

    def test_nodes_describe_themselves(self, provider: NodeProvider, node_arguments: dict[str, Any]) -> None:
        specs = provider.build_nodes(n_nodes=2, **node_arguments)
        assert [s.node_id for s in specs] == [f"{self.key}-0", f"{self.key}-1"]
        assert all(s.provider_key == self.key and s.max_qubits >= 6 for s in specs)
        assert QPUNodeSpec.from_dict(specs[0].to_dict()) == specs[0]

    def test_counts_cover_every_clbit_with_bit_zero_rightmost(self, provider: NodeProvider, node: QPUNodeSpec) -> None:
        q = QuantumRegister(4)
        low, high = ClassicalRegister(2, "low"), ClassicalRegister(3, "high")
        qc = QuantumCircuit(q, low, high)
        qc.x([1, 2])
        qc.measure(2, low[0])  # 1
        qc.measure(0, low[1])  # 0
        qc.measure(1, high[2])  # 1
        qc.measure(3, high[0])  # 0; high[1] is never written
        counts = _flat(provider.execute(qc, 50, node, seed=1), qc, 50, node)
        # flat key: clbit 4 (high[2]) leftmost ... clbit 0 (low[0]) rightmost
        assert counts == {"10001": 50}

    def test_circuit_without_clbits(self, provider: NodeProvider, node: QPUNodeSpec) -> None:
        qc = QuantumCircuit(2)
        qc.h(0)
        assert provider.execute(qc, 10, node, seed=1) == {"": 10}

    def test_samples_follow_the_exact_distribution(self, provider: NodeProvider, node: QPUNodeSpec) -> None:
        qc = random_block_circuit(1, 5, 3, seed=8)
        qc.measure_all()
        counts = provider.execute(qc, 20_000, node, seed=3)
        assert_matches(_flat(counts, qc, 20_000, node), exact_distribution(qc), what=self.key)

    def test_seeds_make_runs_reproducible(self, provider: NodeProvider, node: QPUNodeSpec) -> None:
        qc = random_block_circuit(1, 4, 2, seed=2)
        qc.measure_all()
        first = provider.execute(qc, 2000, node, seed=11)
        assert provider.execute(qc, 2000, node, seed=11) == first
        assert provider.execute(qc, 2000, node, seed=12) != first

    def test_batches_keep_their_order_and_shots(self, provider: NodeProvider, node: QPUNodeSpec) -> None:
        circuits = []
        for k in range(3):
            qc = QuantumCircuit(3)
            if k:
                qc.x(range(k))
            qc.measure_all()
            circuits.append(qc)
        out = provider.execute_batch(circuits, [10, 20, 30], node, seeds=[1, 2, 3])
        assert out == [{"000": 10}, {"001": 20}, {"011": 30}]

    def test_sweeps_bind_each_binding(self, provider: NodeProvider, node: QPUNodeSpec) -> None:
        theta = Parameter("theta")
        qc = QuantumCircuit(1)
        qc.rx(theta, 0)
        qc.measure_all()
        out = provider.execute_sweep(qc, [{"theta": 0.0}, {"theta": 3.141592653589793}], 100, node, seed=4)
        assert out == [{"0": 100}, {"1": 100}]
