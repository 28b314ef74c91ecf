"""The user's contract from DESIGN.md, run verbatim."""

from __future__ import annotations

import ast
import contextlib
import io
from pathlib import Path

from network.node_providers import QVMMode
from providers.aer import aer_devices
from tests.stats import assert_matches

CONTRACT = """\
from network.node_providers import ClusterBuilder
from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec, QVMMode
from qiskit import QuantumCircuit
registry = (ClusterBuilder()
            .add("local_gpu_mps", n_nodes=4, max_qubits=1000)
            .add("local_gpu_aer", n_nodes=8, max_qubits=28)
            .build())
qvm = DistributedQVM(registry, mode=QVMMode.EMULATED, shots=2048)
qc = QuantumCircuit(10); qc.h(range(10)); qc.measure_all()
result = qvm.run(VirtualCircuitSpec(n_logical_qubits=10, circuit_object=qc))
print(result.counts)
"""


def test_contract_runs_verbatim_and_samples_uniformly() -> None:
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(CONTRACT, "<contract>", "exec"), namespace)
    printed = ast.literal_eval(out.getvalue().strip())
    assert isinstance(printed, dict)
    assert sum(printed.values()) == 2048
    assert all(len(key) == 10 and set(key) <= {"0", "1"} for key in printed)
    assert_matches(printed, {format(i, "010b"): 1 / 1024 for i in range(1024)})

    result = namespace["result"]
    assert result.mode is QVMMode.EMULATED  # type: ignore[attr-defined]
    assert result.plan.strategy.value == "whole"  # type: ignore[attr-defined]
    # exact statevector node preferred over the approximate MPS nodes
    assert result.plan.shards[0].node_id.startswith("local_gpu_aer")  # type: ignore[attr-defined]
    assert not result.approximate  # type: ignore[attr-defined]
    if "GPU" not in aer_devices():
        assert result.emulated  # type: ignore[attr-defined]
        assert any("GPU node emulated on the CPU" in note for note in result.notes)  # type: ignore[attr-defined]


def test_readme_shows_the_contract_verbatim() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert CONTRACT in readme


def test_readme_custom_provider_runs() -> None:
    from qiskit import QuantumCircuit

    from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- custom-provider -->", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert len([line for line in block.splitlines() if line.strip()]) <= 14
    namespace: dict[str, object] = {}
    exec(compile(block, "<readme>", "exec"), namespace)
    registry = namespace["registry"]
    qc = QuantumCircuit(3)
    qc.measure_all()
    result = DistributedQVM(registry, shots=4000).run(VirtualCircuitSpec(circuit_object=qc, seed=2))  # type: ignore[arg-type]
    assert {r.node_id for r in result.shard_results} <= {"coin_flip-0", "coin_flip-1"}
    # a fair coin per bit, not the quantum answer "000": the provider really ran
    assert_matches(result.counts, {format(i, "03b"): 1 / 8 for i in range(8)})


def _readme_block(marker: str) -> dict[str, object]:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split(f"<!-- {marker} -->", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert len([line for line in block.splitlines() if line.strip()]) <= 14
    namespace: dict[str, object] = {}
    exec(compile(block, "<readme>", "exec"), namespace)
    return namespace


def test_readme_provider_without_a_seed_keyword_runs() -> None:
    """The seed's documented contract, literally: execute(circuit, shots, node_spec) -> Dict[str, int]."""
    from qiskit import QuantumCircuit

    from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec

    registry = _readme_block("seedless-provider")["registry"]
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.measure_all()
    result = DistributedQVM(registry, shots=100).run(VirtualCircuitSpec(circuit_object=qc, seed=1))  # type: ignore[arg-type]
    assert result.counts == {"000": 100}  # the provider answered, not a simulator


def test_readme_describe_only_provider_runs_on_the_default_simulator() -> None:
    from qiskit import QuantumCircuit

    from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec

    registry = _readme_block("describe-only-provider")["registry"]
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    result = DistributedQVM(registry, shots=4000).run(VirtualCircuitSpec(circuit_object=qc, seed=3))  # type: ignore[arg-type]
    assert {r.node_id for r in result.shard_results} <= {"lab_machines-0", "lab_machines-1"}
    assert_matches(result.counts, {"00": 0.5, "11": 0.5})
