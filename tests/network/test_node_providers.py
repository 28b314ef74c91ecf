from __future__ import annotations

import importlib.metadata
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qiskit import QuantumCircuit

from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import ClusterConfigError, ProviderUnavailableError, UnknownProviderError
from network.node_providers import (
    ENTRY_POINT_GROUP,
    ClusterBuilder,
    NodeProvider,
    QPUNodeSpec,
    available_providers,
    get_provider,
    provider_class,
    register_provider,
    unregister_provider,
)

BUILTINS = {"local_cpu", "local_gpu_aer", "local_gpu_mps"}


def test_builtins_register_through_the_entry_point_group() -> None:
    names = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert names >= BUILTINS
    assert set(available_providers()) >= BUILTINS
    for key in BUILTINS:
        assert provider_class(key).key == key


def test_unknown_provider_lists_the_available_ones() -> None:
    with pytest.raises(UnknownProviderError) as info:
        ClusterBuilder().add("local_quantum_toaster", n_nodes=1).build()
    message = str(info.value)
    assert "'local_quantum_toaster'" in message
    for key in BUILTINS:
        assert key in message
    assert isinstance(info.value, LookupError)


@pytest.fixture
def broken_plugin(tmp_path: Path) -> Iterator[str]:
    """A third-party provider installed through real entry-point metadata, whose SDK is missing."""
    (tmp_path / "qcos_fake_plugin.py").write_text(
        textwrap.dedent(
            """
            import qcos_sdk_that_is_not_installed  # noqa: F401
            """
        )
    )
    dist = tmp_path / "qcos_fake_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: qcos-fake-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nfake_qpu = qcos_fake_plugin:FakeProvider [fakeqpu]\n"
    )
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    try:
        yield "fake_qpu"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("qcos_fake_plugin", None)
        importlib.invalidate_caches()


def test_missing_sdk_fails_only_that_provider_with_an_install_hint(broken_plugin: str) -> None:
    assert broken_plugin in available_providers()
    with pytest.raises(ProviderUnavailableError, match=r"pip install 'qcos\[fakeqpu\]'") as info:
        get_provider(broken_plugin)
    assert isinstance(info.value, ImportError)
    # every other provider still works
    registry = ClusterBuilder().add("local_cpu", n_nodes=1, max_qubits=4).build()
    assert registry.node_ids == ("local_cpu-0",)


def test_declared_requirements_are_checked_with_a_hint() -> None:
    class NeedsSDK(NodeProvider):
        key = "needs_sdk"
        requires = ("qcos_missing_vendor_sdk",)
        extra = "vendor"

        def build_nodes(self, **kwargs: Any) -> list[QPUNodeSpec]:
            raise AssertionError("never reached")

        def execute(self, circuit: Any, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None) -> dict:
            raise AssertionError("never reached")

    with pytest.raises(ProviderUnavailableError, match=r"qcos_missing_vendor_sdk.*pip install 'qcos\[vendor\]'"):
        NeedsSDK()


# The README's custom provider, kept in sync by test_readme_custom_provider below.
class CoinFlipProvider(NodeProvider):
    key = "coin_flip"

    def build_nodes(self, n_nodes: int = 1, max_qubits: int = 20, **_: Any) -> list[QPUNodeSpec]:
        return self.make_nodes(n_nodes, max_qubits=max_qubits, method="classical")

    def execute(self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None):
        import numpy as np

        rng = np.random.default_rng(seed)
        keys = ["".join(rng.choice(["0", "1"], circuit.num_clbits)) for _ in range(shots)]
        return {k: keys.count(k) for k in set(keys)}


def test_custom_provider_instance_and_registration() -> None:
    registry = ClusterBuilder().add(CoinFlipProvider(), n_nodes=2, max_qubits=5).build()
    assert registry.node_ids == ("coin_flip-0", "coin_flip-1")
    qc = QuantumCircuit(3)
    qc.measure_all()
    result = DistributedQVM(registry, shots=400).run(VirtualCircuitSpec(circuit_object=qc, seed=1))
    assert sum(result.counts.values()) == 400
    assert all(len(k) == 3 for k in result.counts)
    assert len(result.counts) > 4  # a fair coin, not the quantum answer "000": the provider really ran

    register_provider("coin_flip", CoinFlipProvider)
    try:
        assert "coin_flip" in available_providers()
        registry = ClusterBuilder.from_dict({"nodes": [{"provider": "coin_flip", "n_nodes": 1}]}).build()
        assert registry.node("coin_flip-0").method == "classical"
    finally:
        unregister_provider("coin_flip")


def test_builder_is_order_independent() -> None:
    a = ClusterBuilder().add("local_gpu_mps", n_nodes=2, max_qubits=100).add("local_cpu", n_nodes=3).build()
    b = ClusterBuilder().add("local_cpu", n_nodes=3).add("local_gpu_mps", n_nodes=2, max_qubits=100).build()
    assert a.to_dict() == b.to_dict()
    assert a.node_ids == b.node_ids


def test_builder_names_groups_and_rejects_duplicates() -> None:
    with pytest.raises(ClusterConfigError, match="name="):
        ClusterBuilder().add("local_cpu", n_nodes=1).add("local_cpu", n_nodes=2).build()
    registry = (
        ClusterBuilder()
        .add("local_cpu", n_nodes=1, max_qubits=20, name="small")
        .add("local_cpu", n_nodes=2, max_qubits=26, name="big")
        .build()
    )
    assert registry.node_ids == ("big-0", "big-1", "small-0")
    assert [n.node_id for n in registry.filter(min_qubits=25)] == ["big-0", "big-1"]


def test_registry_lookup_and_filtering() -> None:
    registry = (
        ClusterBuilder()
        .add("local_cpu", n_nodes=10, max_qubits=20, tags=["fast"])
        .add("local_gpu_mps", n_nodes=1, max_qubits=500, work_pool="gpu")
        .build()
    )
    assert registry.node_ids[-3:] == ("local_cpu-8", "local_cpu-9", "local_gpu_mps-0")
    assert "local_cpu-10" not in registry
    assert len(registry.filter(exact=False)) == 1
    assert registry.filter(work_pool="gpu")[0].provider_key == "local_gpu_mps"
    assert len(registry.filter(tags=["fast"])) == 10
    assert registry.provider("local_cpu-3").key == "local_cpu"
    with pytest.raises(ClusterConfigError, match="'nope'.*local_cpu-0"):
        registry.node("nope")
    assert "10 x local_cpu (20 qubits, exact)" in registry.capacities()


def test_natural_order_of_node_ids() -> None:
    registry = ClusterBuilder().add("local_cpu", n_nodes=12, max_qubits=4).build()
    assert registry.node_ids[-3:] == ("local_cpu-9", "local_cpu-10", "local_cpu-11")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_qubits": 0}, "max_qubits must be a positive integer, got 0"),
        ({"max_qubits": 5, "cost_per_shot": -1.0}, "cost_per_shot must be a finite number >= 0, got -1.0"),
        ({"max_qubits": 5, "device": "TPU"}, "device must be one of"),
        ({"max_qubits": 5, "node_id": ""}, "non-empty"),
    ],
)
def test_node_spec_validation(kwargs: dict[str, Any], match: str) -> None:
    values = {"node_id": "n-0", "provider_key": "local_cpu", **kwargs}
    with pytest.raises(ClusterConfigError, match=match):
        QPUNodeSpec(**values)


def test_node_spec_round_trips() -> None:
    spec = QPUNodeSpec("n-0", "local_cpu", 12, tags=("a",), options={"precision": "single"})
    assert QPUNodeSpec.from_dict(spec.to_dict()) == spec


def test_cluster_yaml(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(
        "nodes:\n"
        "  - provider: local_cpu\n    n_nodes: 2\n    max_qubits: 24\n"
        "  - provider: local_gpu_mps\n    name: mps\n    max_qubits: 1000\n"
    )
    registry = ClusterBuilder.from_yaml(path).build()
    assert registry.node_ids == ("local_cpu-0", "local_cpu-1", "mps-0")
    assert not registry.node("mps-0").exact

    with pytest.raises(ClusterConfigError, match="does not exist"):
        ClusterBuilder.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [provider: local_cpu\n")
    with pytest.raises(ClusterConfigError, match="not valid YAML"):
        ClusterBuilder.from_yaml(bad)
    with pytest.raises(ClusterConfigError, match="'provider' key"):
        ClusterBuilder.from_dict({"nodes": [{"n_nodes": 2}]})
    with pytest.raises(ClusterConfigError, match="'nodes'"):
        ClusterBuilder.from_dict({"machines": []})
    with pytest.raises(ClusterConfigError, match="unknown option"):
        ClusterBuilder.from_dict([{"provider": "local_cpu", "warp_drive": True}]).build()
    with pytest.raises(ClusterConfigError, match="n_nodes must be a positive integer, got 0"):
        ClusterBuilder.from_dict([{"provider": "local_cpu", "n_nodes": 0}]).build()


def test_closing_the_qvm_closes_each_provider_once() -> None:

    from providers.aer import LocalCPUProvider

    class Counting(LocalCPUProvider):
        closed = 0

        def close(self) -> None:
            Counting.closed += 1

    provider = Counting()
    registry = ClusterBuilder().add(provider, n_nodes=3, max_qubits=4).add("local_cpu", name="other").build()
    with DistributedQVM(registry) as qvm:
        assert qvm.registry is registry
    assert Counting.closed == 1
