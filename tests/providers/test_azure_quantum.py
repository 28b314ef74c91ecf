"""The ``azure_quantum`` provider: EMULATED on qdk, LIVE against a local stand-in of the workspace and its storage.

The LIVE tests run the real azure-quantum SDK (``Workspace``, the IonQ/Quantinuum/Rigetti target classes,
azure-storage-blob) against :mod:`tests.providers.azure_standin`, which decodes each job's input
(IonQ JSON, OpenQASM 2, Quil), samples it with Aer and answers in the target's output format.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Clbit, Qubit

from network.distributed_qvm import DistributedQVM, QVMMode, VirtualCircuitSpec
from network.errors import (
    ClusterConfigError,
    ExecutionError,
    NodeUnavailableError,
    ProviderResultError,
    TransientExecutionError,
)
from network.execution import RetryPolicy
from network.node_providers import ClusterBuilder, JobStatus, get_provider
from network.storage import ResultStore
from providers.azure_quantum import TARGET_TABLE_DATE, TARGETS, AzureQuantumProvider, to_quil
from providers.prices import lookup_price
from tests.conftest import random_block_circuit
from tests.providers.azure_standin import AzureQuantumStandIn, quil_to_circuit
from tests.providers.conformance import ProviderConformance
from tests.stats import assert_matches, exact_distribution

API_KEY = "aq-stand-in-key-5f2c9e71d04b"
FAST = RetryPolicy(attempts=2, base_delay=0.0, jitter=0.0, grace=0.0)
#: One simulator per family, and IonQ's QPU (its histogram holds shot fractions, not probabilities).
LIVE_TARGETS = ["ionq.simulator", "ionq.qpu.aria-1", "quantinuum.sim.h2-1e", "rigetti.sim.qvm"]
FAMILIES = ["ionq.qpu.aria-1", "quantinuum.qpu.h2-1", "rigetti.qpu.ankaa-3"]
_ENV = (
    "AZURE_QUANTUM_CONNECTION_STRING",
    "AZURE_QUANTUM_SUBSCRIPTION_ID",
    "SUBSCRIPTION_ID",
    "AZURE_QUANTUM_WORKSPACE_RG",
    "RESOURCE_GROUP",
    "AZURE_QUANTUM_WORKSPACE_NAME",
    "AZURE_QUANTUM_WORKSPACE_LOCATION",
    "LOCATION",
)


class Crash(BaseException):
    """Stands for the process dying (not an Exception: nothing may catch and handle it)."""


@pytest.fixture(autouse=True)
def no_azure_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may find a real workspace in the environment."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def standin() -> Iterator[AzureQuantumStandIn]:
    server = AzureQuantumStandIn(api_key=API_KEY)
    with server.running():
        yield server


def _live(standin: AzureQuantumStandIn) -> AzureQuantumProvider:
    """A provider on a fresh workspace object, as a new process would build it."""
    return AzureQuantumProvider(workspace=standin.make_workspace())


def _bell() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    return qc


def _x_on_qubit_0() -> QuantumCircuit:
    qc = QuantumCircuit(3, 3)
    qc.x(0)
    qc.measure([0, 1, 2], [0, 1, 2])
    return qc


def _run(provider: AzureQuantumProvider, target: str, qc: QuantumCircuit, mode: QVMMode, shots: int = 400) -> Any:
    registry = ClusterBuilder().add(provider, n_nodes=1, target=target).build()
    return DistributedQVM(registry, mode=mode, shots=shots, retry=FAST).run(
        VirtualCircuitSpec(circuit_object=qc, seed=5)
    )


# ---------------------------------------------------------------------------- nodes


def test_the_provider_is_found_by_its_entry_point() -> None:
    assert isinstance(get_provider("azure_quantum"), AzureQuantumProvider)


def test_targets_are_dated_and_priced_and_nodes_default_to_them() -> None:
    assert TARGET_TABLE_DATE
    provider = AzureQuantumProvider()
    for name, target in TARGETS.items():
        assert target.input_format in ("ionq.circuit.v1", "honeywell.openqasm.v1", "rigetti.quil.v1")
        price = lookup_price("azure_quantum", name)
        assert price is not None, name
        (node,) = provider.build_nodes(target=name)
        assert (node.max_qubits, node.device, node.exact, node.method) == (target.qubits, "QPU", True, name)
        assert (node.cost_per_task, node.cost_per_shot, node.cost_per_second) == (
            price.per_task,
            price.per_shot,
            price.per_second,
        )
    nodes = provider.build_nodes(3, "ionq.qpu.aria-1", 11, cost_per_shot=0.5, credentials="aq-prod", tags=["eu"])
    assert [n.node_id for n in nodes] == ["azure_quantum-0", "azure_quantum-1", "azure_quantum-2"]
    # a flat cost_per_shot replaces IonQ's gate-shot bill: no per-task fee comes with it
    assert nodes[0].max_qubits == 11 and nodes[0].cost_per_shot == 0.5 and nodes[0].cost_per_task == 0.0
    assert nodes[0].price(100, 1.0) == pytest.approx(50.0)
    assert nodes[0].options == {"credentials": "aq-prod"} and nodes[0].tags == ("eu", "hardware")


def test_bad_cluster_arguments_name_the_problem() -> None:
    provider = AzureQuantumProvider()
    with pytest.raises(ClusterConfigError, match="unknown target 'ionq.qpu.nope'.*ionq.simulator.*give max_qubits"):
        provider.build_nodes(target="ionq.qpu.nope")
    with pytest.raises(ClusterConfigError, match="unknown target 'acme.qpu'"):
        provider.build_nodes(target="acme.qpu")
    with pytest.raises(ClusterConfigError, match="from 1 to 25"):
        provider.build_nodes(target="ionq.qpu.aria-1", max_qubits=40)
    with pytest.raises(ClusterConfigError, match="unknown option.*shots_per_job"):
        provider.build_nodes(shots_per_job=3)
    (node,) = provider.build_nodes(target="ionq.qpu.forte-1", max_qubits=36)  # a target of a known family
    assert node.max_qubits == 36 and node.cost_per_shot == 0.0


# ---------------------------------------------------------------------------- EMULATED


def test_emulated_bell_pair_runs_on_qdk_and_says_what_it_emulates() -> None:
    provider = AzureQuantumProvider()  # no workspace, no environment: nothing could be contacted
    result = _run(provider, "ionq.qpu.aria-1", _bell(), QVMMode.EMULATED, shots=2000)
    assert set(result.counts) <= {"00", "11"}
    assert_matches(result.counts, {"00": 0.5, "11": 0.5})
    (shard,) = result.shard_results
    assert shard.emulated and shard.method == "qdk" and shard.device == "CPU"
    prepared = provider.prepare(provider.build_nodes(target="ionq.qpu.aria-1")[0], QVMMode.EMULATED)
    assert prepared.emulates == "ionq.qpu.aria-1"


@pytest.mark.parametrize("target", FAMILIES)
def test_emulated_counts_are_in_qiskit_bit_order(target: str) -> None:
    result = _run(AzureQuantumProvider(), target, _x_on_qubit_0(), QVMMode.EMULATED, shots=50)
    assert result.counts == {"001": 50}


def test_emulated_registers_and_loose_bits_keep_their_positions() -> None:
    qc = QuantumCircuit(QuantumRegister(3), ClassicalRegister(1, "a"), ClassicalRegister(2, "b"))
    qc.x(0)
    qc.x(2)
    qc.measure([0, 1, 2], [0, 1, 2])
    result = _run(AzureQuantumProvider(), "quantinuum.qpu.h2-1", qc, QVMMode.EMULATED, shots=20)
    assert {k.replace(" ", ""): v for k, v in result.counts.items()} == {"101": 20}
    loose = QuantumCircuit([Qubit(), Qubit()], [Clbit(), Clbit()])
    loose.x(1)
    loose.measure([0, 1], [0, 1])
    assert _run(AzureQuantumProvider(), "rigetti.sim.qvm", loose, QVMMode.EMULATED, shots=20).counts == {"10": 20}


def test_emulated_random_circuit_matches_the_exact_distribution_and_is_reproducible() -> None:
    qc = random_block_circuit(1, 4, 3, seed=11)
    qc.rzz(0.7, 0, 3)  # not an IonQ-JSON gate here: transpiled to the target's gates first
    qc.measure_all()
    first = _run(AzureQuantumProvider(), "ionq.simulator", qc, QVMMode.EMULATED, shots=4000)
    assert_matches(first.counts, exact_distribution(qc))
    again = _run(AzureQuantumProvider(), "ionq.simulator", qc, QVMMode.EMULATED, shots=4000)
    assert again.counts == first.counts


def test_emulation_refuses_what_the_target_refuses() -> None:
    qc = QuantumCircuit(1, 2)
    qc.x(0)
    qc.measure(0, 0)
    qc.h(0)  # IonQ's JSON format has no mid-circuit measurement
    qc.measure(0, 1)
    with pytest.raises(ExecutionError, match="cannot be written as ionq.circuit.v1.*MidCircuitMeasurement") as info:
        _run(AzureQuantumProvider(), "ionq.qpu.aria-1", qc, QVMMode.EMULATED)
    assert not isinstance(info.value, TransientExecutionError)
    counts = _run(AzureQuantumProvider(), "quantinuum.qpu.h2-1", qc, QVMMode.EMULATED, shots=400).counts
    assert set(counts) <= {"01", "11"} and sum(counts.values()) == 400  # Quantinuum runs it


def test_quil_translation_round_trips() -> None:
    qc = QuantumCircuit(2, 2)
    qc.rx(1e-7, 0)
    qc.cx(0, 1)
    qc.reset(1)
    qc.measure([0, 1], [1, 0])
    text = to_quil(qc)
    assert text.splitlines() == [
        "DECLARE ro BIT[2]",
        "RX(0.0000001) 0",
        "CNOT 0 1",
        "RESET 1",
        "MEASURE 0 ro[1]",
        "MEASURE 1 ro[0]",
    ]
    back = quil_to_circuit(text)
    assert [i.name for i in back.data] == ["rx", "cx", "reset", "measure", "measure"]


# ---------------------------------------------------------------------------- LIVE (stand-in)


@pytest.mark.parametrize("target", LIVE_TARGETS)
def test_live_bell_pair_goes_through_the_workspace_in_the_targets_format(
    standin: AzureQuantumStandIn, target: str
) -> None:
    result = _run(_live(standin), target, _bell(), QVMMode.LIVE, shots=1000)
    assert set(result.counts) <= {"00", "11"}
    assert_matches(result.counts, {"00": 0.5, "11": 0.5})
    (job,) = standin.jobs.values()
    formats = {t.name: (t.input_format, t.output_format) for t in TARGETS.values()}
    assert (job.details["inputDataFormat"], job.details["outputDataFormat"]) == formats[target]
    assert job.details["target"] == target and job.details["status"] == "Succeeded"
    assert result.shard_results[0].job_id == job.details["id"] and not result.emulated
    methods = {m for m, _ in standin.requests}
    assert {"PUT", "GET", "POST"} <= methods  # job create and reads, blob upload and download, SAS URL


@pytest.mark.parametrize("target", ["ionq.simulator", "quantinuum.sim.h2-1e", "rigetti.sim.qvm"])
def test_live_counts_are_in_qiskit_bit_order(standin: AzureQuantumStandIn, target: str) -> None:
    assert _run(_live(standin), target, _x_on_qubit_0(), QVMMode.LIVE, shots=64).counts == {"001": 64}


def test_live_random_circuit_with_registers_matches_the_exact_distribution(standin: AzureQuantumStandIn) -> None:
    qc = random_block_circuit(1, 3, 3, seed=2)
    qc.add_register(ClassicalRegister(1, "lo"))
    qc.add_register(ClassicalRegister(2, "hi"))
    qc.measure([0, 1, 2], [0, 1, 2])
    result = _run(_live(standin), "quantinuum.sim.h2-1e", qc, QVMMode.LIVE, shots=3000)
    flat = {k.replace(" ", ""): v for k, v in result.counts.items()}
    assert_matches(flat, {k.replace(" ", ""): p for k, p in exact_distribution(qc).items()})


def test_a_job_is_re_attached_from_its_id_by_a_new_provider(standin: AzureQuantumStandIn) -> None:
    first = _live(standin)
    (node,) = first.build_nodes(target="rigetti.sim.qvm")
    job = first.submit(_bell(), 300, first.prepare(node, QVMMode.LIVE), job_key="run-a/0")
    assert job.status is JobStatus.QUEUED and job.counts is None
    other = _live(standin)  # a new process: nothing but the job id is known
    attached = other.attach(job.job_id, node)
    while not attached.status.done:
        attached = other.poll(attached, node)
    assert attached.status is JobStatus.COMPLETED and attached.counts is not None
    assert sum(attached.counts.values()) == 300 and set(attached.counts) <= {"00", "11"}
    assert standin.submissions == 1
    with pytest.raises(LookupError, match="has no job"):
        other.attach("00000000-0000-4000-8000-00000000dead", node)
    with pytest.raises(LookupError, match="ran locally"):
        other.attach("local-123", node)
    (ionq,) = other.build_nodes(target="ionq.simulator")
    with pytest.raises(LookupError, match="ran on 'rigetti.sim.qvm', not on 'ionq.simulator'"):
        other.attach(job.job_id, ionq)


def test_execute_waits_for_the_live_result(standin: AzureQuantumStandIn) -> None:
    provider = _live(standin)
    mitigation = {"error_mitigation": {"debias": False}}
    (node,) = provider.build_nodes(target="ionq.qpu.aria-1", input_params=mitigation)
    counts = provider.execute(_x_on_qubit_0(), 80, provider.prepare(node, QVMMode.LIVE))
    assert counts == {"001": 80}
    (job,) = standin.jobs.values()
    assert job.details["inputParams"] == {**mitigation, "shots": 80}
    with pytest.raises(ClusterConfigError, match="input_params must be a mapping"):
        provider.build_nodes(input_params=["debias"])


def test_a_repeated_submission_of_a_shard_meets_its_job(standin: AzureQuantumStandIn) -> None:
    provider = _live(standin)
    (node,) = provider.build_nodes(target="ionq.simulator")
    first = provider.submit(_bell(), 100, node, job_key="run-b/3")
    again = provider.submit(_bell(), 100, node, job_key="run-b/3")  # e.g. a retry after a lost response
    assert again.job_id == first.job_id and standin.submissions == 1
    other = provider.submit(_bell(), 100, node, job_key="run-b/4")
    assert other.job_id != first.job_id and standin.submissions == 2
    standin.jobs[first.job_id].details["status"] = "Failed"
    retried = provider.submit(_bell(), 100, node, job_key="run-b/3")  # a failed job is not re-used
    assert retried.job_id not in (first.job_id, other.job_id) and standin.submissions == 3


def test_crash_then_rerun_submits_each_shard_once(standin: AzureQuantumStandIn, tmp_path: Path) -> None:
    qc = random_block_circuit(3, 2, 2, seed=4)
    qc.measure_all()
    spec = VirtualCircuitSpec(circuit_object=qc, seed=7, strategy="partition")
    store = ResultStore(tmp_path.as_uri())

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise Crash()

    dying = _live(standin)
    dying.poll = crash  # type: ignore[method-assign]
    registry = ClusterBuilder().add(dying, n_nodes=3, target="ionq.simulator").build()
    with pytest.raises(Crash):
        DistributedQVM(registry, mode=QVMMode.LIVE, shots=200, store=store, max_workers=1).run(spec)
    assert standin.submissions == 1
    registry = ClusterBuilder().add(_live(standin), n_nodes=3, target="ionq.simulator").build()
    result = DistributedQVM(registry, mode=QVMMode.LIVE, shots=200, store=store, max_workers=1).run(spec)
    assert standin.submissions == len(result.plan.shards) == 3
    ledger = store.read_ledger(result.run_key)
    assert [e.status.value for e in ledger] == ["COMPLETED"] * 3
    assert {e.job_id for e in ledger} == set(standin.jobs)
    assert_matches(result.counts, exact_distribution(qc))


def test_live_without_credentials_refuses_and_never_falls_back() -> None:
    provider = AzureQuantumProvider()
    registry = ClusterBuilder().add(provider, n_nodes=1, target="ionq.simulator").build()
    with pytest.raises(NodeUnavailableError, match="no credentials.*AZURE_QUANTUM_CONNECTION_STRING.*EMULATED"):
        DistributedQVM(registry, mode=QVMMode.LIVE, shots=10).run(VirtualCircuitSpec(circuit_object=_bell()))


def test_live_credentials_come_from_the_named_block_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import blocks.base
    from blocks.base import BlockNotFoundError
    from blocks.credentials import AzureQuantumCredentials

    provider = AzureQuantumProvider()
    (node,) = provider.build_nodes(target="quantinuum.qpu.h2-1", credentials="aq-prod")
    block = AzureQuantumCredentials(
        subscription_id="00000000-0000-4000-8000-000000000002",
        resource_group="rg",
        workspace_name="ws",
        location="westus",
    )
    loaded: list[str] = []

    def load(cls: type, name: str) -> AzureQuantumCredentials:
        loaded.append(name)
        if name != "aq-prod":
            raise BlockNotFoundError(f"No block named {name!r}.", block_type="Azure Quantum Credentials", name=name)
        return block

    monkeypatch.setattr(blocks.base, "load_block", load)
    assert provider.prepare(node, QVMMode.LIVE) == node and loaded == ["aq-prod"]
    (other,) = provider.build_nodes(target="quantinuum.qpu.h2-1", credentials="missing")
    with pytest.raises(NodeUnavailableError, match="azure_quantum-0.*No block named 'missing'"):
        provider.prepare(other, QVMMode.LIVE)
    (env_node,) = provider.build_nodes(target="quantinuum.qpu.h2-1")
    monkeypatch.setenv("AZURE_QUANTUM_SUBSCRIPTION_ID", "00000000-0000-4000-8000-000000000003")
    monkeypatch.setenv("AZURE_QUANTUM_WORKSPACE_RG", "rg")
    with pytest.raises(NodeUnavailableError, match="AZURE_QUANTUM_WORKSPACE_NAME, AZURE_QUANTUM_WORKSPACE_LOCATION"):
        provider.prepare(env_node, QVMMode.LIVE)
    monkeypatch.setenv("AZURE_QUANTUM_WORKSPACE_NAME", "ws")
    monkeypatch.setenv("AZURE_QUANTUM_WORKSPACE_LOCATION", "eastus")
    assert provider.prepare(env_node, QVMMode.LIVE) == env_node


def test_dry_run_contacts_nothing(standin: AzureQuantumStandIn) -> None:
    provider = _live(standin)
    registry = ClusterBuilder().add(provider, n_nodes=2, target="ionq.qpu.aria-1").build()
    result = DistributedQVM(registry, mode=QVMMode.DRY_RUN, shots=100).run(VirtualCircuitSpec(circuit_object=_bell()))
    assert result.counts == {} and result.plan.shards
    assert standin.requests == []
    unprepared = AzureQuantumProvider()  # no credentials at all: a dry run still plans
    (node,) = unprepared.build_nodes(target="ionq.qpu.aria-1")
    assert unprepared.prepare(node, QVMMode.DRY_RUN) == node


def test_the_api_key_never_leaks(standin: AzureQuantumStandIn, caplog: pytest.LogCaptureFixture) -> None:
    provider = _live(standin)
    with caplog.at_level(logging.DEBUG):
        result = _run(provider, "ionq.simulator", _bell(), QVMMode.LIVE, shots=100)
    assert "'x-ms-quantum-api-key': 'REDACTED'" in caplog.text  # the SDK logged the header, redacted
    assert API_KEY not in caplog.text
    assert API_KEY not in json.dumps(result.to_dict(), default=str)
    assert API_KEY not in repr(provider) and API_KEY not in repr(result.plan)
    wrong = AzureQuantumStandIn(api_key="a-different-key-0000")
    with wrong.running():
        mismatched = AzureQuantumProvider(workspace=_workspace_with_key(wrong, API_KEY))
        with pytest.raises(ExecutionError) as info:
            _run(mismatched, "ionq.simulator", _bell(), QVMMode.LIVE)
    assert "ClientAuthenticationError" in str(info.value) and not isinstance(info.value, TransientExecutionError)
    assert API_KEY not in str(info.value) and API_KEY not in repr(info.value.__cause__)


def _workspace_with_key(server: AzureQuantumStandIn, key: str) -> Any:
    server.api_key, real = key, server.api_key
    try:
        return server.make_workspace()
    finally:
        server.api_key = real


@pytest.mark.parametrize(
    ("target", "output", "defect"),
    [
        ("ionq.simulator", b'{"histogram": {"0": 0.3}}', "sum to 0.3"),
        ("ionq.simulator", b"not json at all", "not JSON"),
        ("quantinuum.sim.h2-1e", b'{"c": ["011", "1"]}', "is not 2 bits"),
        ("rigetti.sim.qvm", b'{"readout": []}', "KeyError"),
    ],
)
def test_malformed_results_name_the_node_and_the_defect(
    standin: AzureQuantumStandIn, target: str, output: bytes, defect: str
) -> None:
    standin.corrupt_output = output
    with pytest.raises(ProviderResultError, match=f"azure_quantum-0.*{defect}"):
        _run(_live(standin), target, _bell(), QVMMode.LIVE, shots=10)


def test_a_failed_job_fails_the_shard_with_the_services_error(standin: AzureQuantumStandIn) -> None:
    standin.fail_jobs = True
    with pytest.raises(ExecutionError, match="job failed.*ExecutionFailed"):
        _run(_live(standin), "rigetti.sim.qvm", _bell(), QVMMode.LIVE, shots=10)


def test_http_errors_are_classified_transient_or_permanent() -> None:
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    def http(cls: type[HttpResponseError], status: int) -> HttpResponseError:
        error = cls(message=f"HTTP {status}")
        error.status_code = status
        return error

    provider = AzureQuantumProvider()
    for status in (408, 429, 500, 503):
        assert provider.is_transient(http(HttpResponseError, status)), status
    for status in (400, 403, 409, 413):
        assert not provider.is_transient(http(HttpResponseError, status)), status
    assert not provider.is_transient(http(ClientAuthenticationError, 401))
    assert not provider.is_transient(http(ResourceNotFoundError, 404))
    assert not provider.is_transient(ClientAuthenticationError(message="no credential available"))
    assert provider.is_transient(ServiceRequestError("connection refused"))
    assert provider.is_transient(ServiceResponseError("read timed out"))
    assert provider.is_transient(TimeoutError()) and not provider.is_transient(ValueError("bad circuit"))


class TestAzureIonQSimulatorEmulatedConformance(ProviderConformance):
    """IonQ's simulator target emulated by qdk's noiseless QSharpBackend."""

    key = "azure_quantum"
    node_args: ClassVar[dict[str, Any]] = {"target": "ionq.simulator", "max_qubits": 10}
