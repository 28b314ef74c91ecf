"""The ``aws_braket`` provider: EMULATED on the SDK's LocalSimulator, LIVE against a local stand-in of Braket.

The LIVE tests run the real amazon-braket-sdk (``AwsSession``, ``AwsDevice``, ``AwsQuantumTask``, the
cost ``Tracker``) and botocore against :mod:`tests.providers.braket_standin`, reached the way a user
reaches a private endpoint: botocore's ``AWS_ENDPOINT_URL_BRAKET`` variable, or the node option
``endpoint_url``. Task results go to moto's S3 server (:mod:`tests.s3server`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from qiskit import QuantumCircuit

from network.distributed_qvm import DistributedQVM, QVMMode, SweepSpec, VirtualCircuitSpec
from network.errors import (
    ClusterConfigError,
    ExecutionError,
    JobTimeoutError,
    NodeUnavailableError,
    ProviderResultError,
)
from network.execution import RetryPolicy
from network.node_providers import ClusterBuilder, JobStatus, NodeJob, QPUNodeSpec, get_provider
from network.storage import ResultStore
from providers.aws_braket import (
    TARGETS,
    BraketProvider,
    _layout_tags,
    _sources_from_tags,
    decode_clbit_sources,
    encode_clbit_sources,
)
from providers.prices import lookup_price
from tests.conftest import SWEEP_QASM, random_block_circuit, undeferrable_circuit
from tests.network.test_cut_pipeline import narrow_chain
from tests.providers.braket_standin import BraketStandIn
from tests.providers.conformance import ProviderConformance
from tests.s3server import S3Server
from tests.stats import assert_matches, exact_distribution, tvd

FAST = RetryPolicy(attempts=2, base_delay=0.0, jitter=0.0, grace=0.0)
_NO_AWS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


class Crash(BaseException):
    """Stands for the process dying (not an Exception: nothing may catch and handle it)."""


@pytest.fixture
def standin(s3_server: S3Server) -> Iterator[BraketStandIn]:
    with BraketStandIn(s3_server.client(), queued_polls=0).running() as server:
        yield server


@pytest.fixture
def bucket(aws_sandbox: S3Server, standin: BraketStandIn, monkeypatch: pytest.MonkeyPatch) -> str:
    """The AWS sandbox with Braket's API at the stand-in (and its price list); a results bucket."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_BRAKET", standin.url)
    monkeypatch.setenv("BRAKET_PRICE_OFFERS_URL", f"{standin.url}/offers.csv")
    return aws_sandbox.create_bucket()


def _live_node(provider: BraketProvider, target: str, bucket: str, **options: Any) -> QPUNodeSpec:
    spec = provider.build_nodes(target=target, s3_bucket=bucket, **options)[0]
    return provider.prepare(spec, QVMMode.LIVE)


def _wait(provider: BraketProvider, job: NodeJob, spec: QPUNodeSpec) -> tuple[NodeJob, list[JobStatus]]:
    seen = [job.status]
    while not job.status.done:
        job = provider.poll(job, spec)
        seen.append(job.status)
    return job, seen


def _bit_order_circuits() -> list[tuple[QuantumCircuit, str]]:
    """Circuits with one certain outcome each, and that outcome in Qiskit's order."""
    only_q0 = QuantumCircuit(3)
    only_q0.x(0)
    only_q0.measure_all()
    permuted = QuantumCircuit(3, 3)
    permuted.x([0, 2])
    permuted.measure([0, 1, 2], [2, 0, 1])  # c2 <- q0 = 1, c0 <- q1 = 0, c1 <- q2 = 1
    subset = QuantumCircuit(5, 4)
    subset.x([1, 4])
    subset.measure([4, 0], [0, 3])  # c1 and c2 are never written; qubits 1-3 are not measured
    return [(only_q0, "001"), (permuted, "110"), (subset, "0001")]


def _every_gate() -> QuantumCircuit:
    """A 4-qubit circuit with every gate the translation maps, and some it must transpile."""
    qc = random_block_circuit(1, 4, 2, seed=5)
    mapped = [
        ("h", [], [0]),
        ("s", [], [1]),
        ("sdg", [], [2]),
        ("t", [], [3]),
        ("tdg", [], [0]),
        ("sx", [], [1]),
        ("sxdg", [], [2]),
        ("y", [], [3]),
        ("z", [], [0]),
        ("id", [], [1]),
        ("p", [0.7], [2]),
        ("rx", [0.3], [3]),
        ("cy", [], [0, 1]),
        ("cz", [], [1, 2]),
        ("swap", [], [2, 3]),
        ("iswap", [], [0, 3]),
        ("cp", [1.1], [3, 1]),
        ("rxx", [0.4], [0, 2]),
        ("ryy", [0.8], [1, 3]),
        ("rzz", [1.3], [2, 0]),
        ("ccx", [], [3, 0, 1]),
        ("cswap", [], [1, 2, 0]),
    ]
    transpiled = [("ecr", [], [0, 3]), ("u", [0.2, 0.9, 1.7], [2]), ("ch", [], [1, 0]), ("crx", [0.6], [3, 2])]
    for name, params, qubits in mapped + transpiled:
        getattr(qc, name)(*params, *qubits)
    qc.measure_all()
    return qc


# -- cluster arguments -------------------------------------------------------------------------


def test_nodes_take_width_device_and_prices_from_the_tables() -> None:
    provider = get_provider("aws_braket")
    assert isinstance(provider, BraketProvider)
    forte = provider.build_nodes(n_nodes=2, target="ionq_forte", credentials="braket-prod")
    price = lookup_price("aws_braket", "ionq_forte")
    assert price is not None and len(forte) == 2
    assert (forte[0].max_qubits, forte[0].device, forte[0].exact) == (36, "QPU", True)
    assert (forte[0].cost_per_task, forte[0].cost_per_shot) == (price.per_task, price.per_shot)
    assert forte[0].options["credentials"] == "braket-prod"
    assert forte[0].options["device_arn"] == TARGETS["ionq_forte"].arn
    sv1 = provider.build_nodes(target="sv1", max_qubits=20, cost_per_second=0.5, options={"region": "eu-west-2"})[0]
    assert (sv1.device, sv1.max_qubits, sv1.cost_per_second, sv1.options["region"]) == ("CPU", 20, 0.5, "eu-west-2")
    arn = "arn:aws:braket:us-east-1::device/qpu/acme/Next-1"
    custom = provider.build_nodes(target=arn, max_qubits=12)[0]
    assert (custom.device, custom.max_qubits, custom.cost_per_shot) == ("QPU", 12, 0.0)
    with pytest.raises(ClusterConfigError, match=r"Unknown Amazon Braket target 'ionq'.*ionq_forte, ionq_aria"):
        provider.build_nodes(target="ionq")
    with pytest.raises(ClusterConfigError, match="has 20 qubits; max_qubits=30"):
        provider.build_nodes(target="iqm_garnet", max_qubits=30)
    with pytest.raises(ClusterConfigError, match="give max_qubits"):
        provider.build_nodes(target=arn)
    with pytest.raises(ClusterConfigError, match=r"unknown option\(s\) bucket"):
        provider.build_nodes(target="sv1", bucket="x")
    with pytest.raises(ClusterConfigError, match="emulator must be one of"):
        provider.build_nodes(target="sv1", emulator="aer")


def test_clbit_sources_survive_the_tags() -> None:
    sources = (0, 1, 2, 3, None, None, 7, 5, None, 9, 10)
    assert encode_clbit_sources(sources) == "0-3.x2.7.5.x.9-10"
    assert decode_clbit_sources(encode_clbit_sources(sources)) == sources
    assert encode_clbit_sources(range(36)) == "0-35"
    scattered = tuple(range(199, -1, -1))  # no runs: longer than one tag value holds
    tags = _layout_tags(scattered)
    assert len(tags) > 1 and all(len(v) <= 256 for v in tags.values())
    assert _sources_from_tags(tags, "n", "arn") == scattered
    with pytest.raises(ProviderResultError, match="not submitted by QCOS"):
        _sources_from_tags({}, "n", "arn")


# -- EMULATED ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["sv1", "ionq_forte", "rigetti_ankaa", "iqm_garnet"])
def test_translation_keeps_the_distribution(target: str) -> None:
    """Noiseless emulation of each target's gate set samples the exact distribution."""
    registry = ClusterBuilder().add("aws_braket", target=target, emulator="braket_sv").build()
    qc = _every_gate()
    result = DistributedQVM(registry, shots=20_000).run(VirtualCircuitSpec(circuit_object=qc, seed=3))
    assert_matches(result.counts, exact_distribution(qc), what=target)
    assert result.shard_results[0].device == "CPU" and result.emulated


def test_qpu_emulation_is_a_noisy_density_matrix_run() -> None:
    registry = ClusterBuilder().add("aws_braket", target="ionq_forte").build()
    qvm = DistributedQVM(registry, mode=QVMMode.EMULATED, shots=4000)
    node = qvm.prepared_nodes()["aws_braket-0"]
    assert (node.emulates, node.device, node.host, node.max_qubits) == ("braket_dm", "CPU", "local", 13)
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    result = qvm.run(VirtualCircuitSpec(circuit_object=bell, seed=11))
    assert sum(result.counts.values()) == 4000
    assert result.counts["00"] + result.counts["11"] >= 0.95 * 4000
    assert result.counts.get("01", 0) + result.counts.get("10", 0) > 0  # readout and gate errors show
    again = qvm.run(VirtualCircuitSpec(circuit_object=bell, seed=11))
    assert again.counts == result.counts  # the spec's seed reproduces the run
    assert result.plan.nodes[0].emulates == "braket_dm"
    managed = ClusterBuilder().add("aws_braket", target="dm1").build()
    assert DistributedQVM(managed).prepared_nodes()["aws_braket-0"].emulates == "braket_sv"


@pytest.mark.parametrize(("circuit", "expected"), _bit_order_circuits())
def test_emulated_counts_are_in_qiskit_order(circuit: QuantumCircuit, expected: str) -> None:
    registry = ClusterBuilder().add("aws_braket", target="iqm_garnet", emulator="braket_sv").build()
    result = DistributedQVM(registry, shots=100).run(VirtualCircuitSpec(circuit_object=circuit, seed=1))
    assert result.counts == {expected: 100}


def test_mid_circuit_measurements_resets_and_feed_forward_are_deferred() -> None:
    provider = BraketProvider()
    node = provider.prepare(provider.build_nodes(target="sv1")[0], QVMMode.EMULATED)
    qc = QuantumCircuit(1, 2)
    qc.h(0)
    qc.measure(0, 0)
    qc.x(0)
    qc.measure(0, 1)  # always the opposite of the first reading
    counts = provider.execute(qc, 2000, node, seed=4)
    assert set(counts) == {"01", "10"} and sum(counts.values()) == 2000
    assert_matches(counts, {"01": 0.5, "10": 0.5})
    reset = QuantumCircuit(1, 1)
    reset.x(0)
    reset.reset(0)  # a swap with a fresh ancilla
    reset.measure(0, 0)
    assert provider.execute(reset, 10, node) == {"0": 10}
    feed_forward = QuantumCircuit(2, 2)
    feed_forward.h(0)
    feed_forward.measure(0, 0)
    with feed_forward.if_test((feed_forward.clbits[0], 1)):
        feed_forward.x(1)  # a CX from the measured qubit
    feed_forward.measure(1, 1)
    assert_matches(provider.execute(feed_forward, 2000, node, seed=5), {"00": 0.5, "11": 0.5})
    looped = undeferrable_circuit()
    with pytest.raises(ExecutionError, match="measures mid-circuit in a way that cannot be deferred"):
        provider.execute(looped, 10, node)


# -- LIVE against the stand-in -----------------------------------------------------------------


def test_submit_poll_and_reattach_from_the_task_arn(standin: BraketStandIn, bucket: str) -> None:
    standin.queued_polls = 1
    provider = BraketProvider()
    node = _live_node(provider, "sv1", bucket)
    qc = random_block_circuit(1, 3, 3, seed=2)
    qc.measure_all()
    job = provider.submit(qc, 500, node, seed=1, job_key="run-a/0")
    assert job.status is JobStatus.QUEUED and job.job_id.startswith("arn:aws:braket:us-east-1:")
    assert provider.submit(qc, 500, node, job_key="run-a/0").job_id == job.job_id  # same clientToken
    assert standin.submissions == 1
    done, seen = _wait(provider, job, node)
    assert seen[:3] == [JobStatus.QUEUED, JobStatus.QUEUED, JobStatus.RUNNING] and seen[-1] is JobStatus.COMPLETED
    assert done.counts is not None and sum(done.counts.values()) == 500
    assert_matches(done.counts, exact_distribution(qc))
    task = standin.tasks[job.job_id].request
    assert task["outputS3Bucket"] == bucket and task["tags"]["qcos-clbits"] == "0-2" and len(task["clientToken"]) == 64
    fresh = BraketProvider()  # a new process: nothing but the ARN
    attached = fresh.attach(job.job_id, fresh.build_nodes(target="sv1", s3_bucket=bucket)[0])
    assert attached.status is JobStatus.COMPLETED and attached.counts == done.counts
    with pytest.raises(LookupError):
        fresh.attach(f"{job.job_id[:-4]}0000", node)
    with pytest.raises(LookupError):
        fresh.attach("local-1234", node)
    assert standin.submissions == 1
    standin.queued_polls = 0
    counts = fresh.execute(qc, 100, node, seed=1)  # submit and wait in one call
    assert sum(counts.values()) == 100 and counts.keys() <= exact_distribution(qc).keys()
    assert standin.submissions == 2


@pytest.mark.parametrize("target", ["sv1", "ionq_forte"])
def test_live_counts_are_in_qiskit_order_and_priced_by_the_tracker(
    standin: BraketStandIn, bucket: str, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    """IonQ answers with frequencies, the simulators with shots; both come back as exact counts."""
    registry = ClusterBuilder().add("aws_braket", target=target, s3_bucket=bucket).build()
    qvm = DistributedQVM(registry, mode=QVMMode.LIVE, shots=100)
    with caplog.at_level(logging.INFO, logger="providers.aws_braket"):
        for circuit, expected in _bit_order_circuits():
            assert qvm.run(VirtualCircuitSpec(circuit_object=circuit, seed=1)).counts == {expected: 100}
    price = lookup_price("aws_braket", target)
    assert price is not None
    # the Tracker bills a managed simulator for at least 3 s; a QPU per task and per shot
    expected_cost = price.per_task + 100 * price.per_shot + 3 * price.per_second
    assert caplog.text.count(f"cost ${expected_cost:.6f}") == 3
    assert standin.submissions == 3


def test_endpoint_option_and_the_default_results_bucket(
    standin: BraketStandIn, aws_sandbox: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node option ``endpoint_url`` (a VPC endpoint, say); no bucket: Braket's default one."""
    monkeypatch.setenv("BRAKET_PRICE_OFFERS_URL", f"{standin.url}/offers.csv")
    registry = ClusterBuilder().add("aws_braket", target="rigetti_ankaa", endpoint_url=standin.url).build()
    only_q0, expected = _bit_order_circuits()[0]
    result = DistributedQVM(registry, mode=QVMMode.LIVE, shots=50).run(VirtualCircuitSpec(circuit_object=only_q0))
    assert result.counts == {expected: 50}
    arn = result.shard_results[0].job_id
    assert arn.startswith("arn:aws:braket:us-west-1:")  # the QPU's own region
    default_bucket = standin.tasks[arn].request["outputS3Bucket"]
    assert default_bucket.startswith("amazon-braket-us-west-1-")  # amazon-braket-{region}-{account}
    assert f"tasks/{arn.rsplit('/', 1)[1]}/results.json" in aws_sandbox.objects(default_bucket)


@pytest.mark.parametrize("crash_in", ["poll", "submit"])
def test_crash_then_rerun_pays_for_each_shard_once(
    standin: BraketStandIn, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_in: str
) -> None:
    """A crash after the task is created, with (poll) or without (submit) its ARN in the ledger."""
    qc = random_block_circuit(3, 2, 2, seed=4)
    qc.measure_all()
    spec = VirtualCircuitSpec(circuit_object=qc, seed=7, strategy="partition")
    store = ResultStore(tmp_path.as_uri())
    dying = BraketProvider()
    real = getattr(dying, crash_in)

    def crash(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise Crash()

    monkeypatch.setattr(dying, crash_in, crash)
    cluster = ClusterBuilder().add(dying, n_nodes=3, target="sv1", max_qubits=2, s3_bucket=bucket).build()
    with pytest.raises(Crash):
        DistributedQVM(cluster, mode=QVMMode.LIVE, shots=200, store=store, max_workers=1).run(spec)
    assert standin.submissions == 1
    cluster = ClusterBuilder().add("aws_braket", n_nodes=3, target="sv1", max_qubits=2, s3_bucket=bucket).build()
    result = DistributedQVM(cluster, mode=QVMMode.LIVE, shots=200, store=store, max_workers=1).run(spec)
    assert standin.submissions == 3 == len(result.plan.shards)
    assert standin.calls.count("CreateQuantumTask") == (3 if crash_in == "poll" else 4)  # the 4th: same token
    assert_matches(result.counts, exact_distribution(qc))
    ledger = store.read_ledger(result.run_key)
    assert [e.status.value for e in ledger] == ["COMPLETED"] * 3 and {e.job_id for e in ledger} == set(standin.tasks)


def test_live_without_credentials_refuses_and_runs_nothing(
    standin: BraketStandIn, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in _NO_AWS:
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.setenv(name, str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BRAKET", standin.url)
    registry = ClusterBuilder().add("aws_braket", target="ionq_aria").build()
    only_q0, _ = _bit_order_circuits()[0]
    with pytest.raises(NodeUnavailableError, match=r"'aws_braket-0'.*found no AWS credentials.*credentials: BLOCK"):
        DistributedQVM(registry, mode=QVMMode.LIVE).run(VirtualCircuitSpec(circuit_object=only_q0))
    assert standin.calls == []


def test_dry_run_contacts_nothing(standin: BraketStandIn, bucket: str) -> None:
    registry = ClusterBuilder().add("aws_braket", target="ionq_forte", credentials="no-such-block").build()
    only_q0, _ = _bit_order_circuits()[0]
    result = DistributedQVM(registry, mode=QVMMode.DRY_RUN, shots=1000).run(VirtualCircuitSpec(circuit_object=only_q0))
    assert result.counts == {} and standin.calls == []
    assert result.plan.estimated_cost == pytest.approx(0.30 + 1000 * 0.08)


def test_offline_device_is_refused_before_anything_runs(standin: BraketStandIn, bucket: str) -> None:
    standin.device_status = "OFFLINE"
    provider = BraketProvider()
    with pytest.raises(NodeUnavailableError, match="Forte-1 is OFFLINE"):
        _live_node(provider, "ionq_forte", bucket)
    assert "CreateQuantumTask" not in standin.calls


@pytest.mark.parametrize(("defect", "message"), [("json", "is malformed"), ("qubits", r"not qubit\(s\) \[0\]")])
def test_malformed_results_name_the_node(standin: BraketStandIn, bucket: str, defect: str, message: str) -> None:
    standin.malformed = defect
    registry = ClusterBuilder().add("aws_braket", target="sv1", s3_bucket=bucket).build()
    with pytest.raises(ProviderResultError, match=rf"Node 'aws_braket-0'.*{message}"):
        DistributedQVM(registry, mode=QVMMode.LIVE, shots=10, retry=FAST).run(
            VirtualCircuitSpec(circuit_object=_bit_order_circuits()[0][0])
        )


def test_failed_and_rejected_tasks_are_permanent(standin: BraketStandIn, bucket: str) -> None:
    standin.fail_tasks = "Device calibration in progress"
    registry = ClusterBuilder().add("aws_braket", target="sv1", s3_bucket=bucket).build()
    spec = VirtualCircuitSpec(circuit_object=_bit_order_circuits()[0][0])
    with pytest.raises(ExecutionError, match="Braket task FAILED: Device calibration in progress"):
        DistributedQVM(registry, mode=QVMMode.LIVE, shots=10, retry=FAST).run(spec)
    standin.reject_create = "ValidationException"
    with pytest.raises(ExecutionError, match="ValidationException"):
        DistributedQVM(registry, mode=QVMMode.LIVE, shots=10, retry=FAST).run(spec)
    assert standin.calls.count("CreateQuantumTask") == 2  # not retried


def test_errors_are_classified() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError

    provider = BraketProvider()

    def client_error(code: str, status: int) -> ClientError:
        response = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return ClientError(response, "CreateQuantumTask")  # type: ignore[arg-type]

    transient = [
        client_error("ThrottlingException", 429),
        client_error("InternalServiceException", 500),
        client_error("ServiceUnavailable", 503),
        client_error("ServiceQuotaExceededException", 402),
        client_error("DeviceOfflineException", 424),
        EndpointConnectionError(endpoint_url="https://braket"),
        ReadTimeoutError(endpoint_url="https://braket"),
        TimeoutError(),
    ]
    permanent = [
        client_error("ValidationException", 400),
        client_error("AccessDeniedException", 403),
        client_error("ResourceNotFoundException", 404),
        client_error("DeviceRetiredException", 410),
        client_error("UnrecognizedClientException", 403),
        NoCredentialsError(),
        ValueError("bad circuit"),
    ]
    assert all(provider.is_transient(e) for e in transient)
    assert not any(provider.is_transient(e) for e in permanent)


def test_block_credentials_are_used_and_never_leak(
    prefect_harness: str,
    standin: BraketStandIn,
    bucket: str,
    aws_sandbox: S3Server,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from prefect_aws import AwsCredentials

    from blocks import BraketCredentials

    secret = "braket-secret-9f1c2e7d4a6b"
    BraketCredentials(
        aws_credentials=AwsCredentials(aws_access_key_id="AKIAQCOSBRAKETTEST", aws_secret_access_key=secret),
        region_name="us-east-1",
        s3_bucket=bucket,
        s3_prefix="qcos/results/",
    ).save("braket-test", overwrite=True)
    registry = ClusterBuilder().add("aws_braket", target="sv1", credentials="braket-test").build()
    spec = VirtualCircuitSpec(circuit_object=_bit_order_circuits()[1][0], seed=3)
    with caplog.at_level(logging.DEBUG):
        result = DistributedQVM(registry, mode=QVMMode.LIVE, shots=20).run(spec)
        standin.reject_create = "AccessDeniedException"
        with pytest.raises(ExecutionError) as failure:
            DistributedQVM(registry, mode=QVMMode.LIVE, shots=21, retry=FAST).run(spec)
    assert result.counts == {"110": 20}
    assert standin.access_keys == {"AKIAQCOSBRAKETTEST"}  # the block's key, not the environment's
    assert any(key.startswith("qcos/results/") for key in aws_sandbox.objects(bucket))
    exposed = [caplog.text, json.dumps(result.to_dict()), result.plan.to_json(), repr(registry), str(failure.value)]
    assert not any(secret in text for text in exposed)


class TestBraketSV1EmulatedConformance(ProviderConformance):
    """SV1 emulated by Braket's noiseless LocalSimulator (braket_sv)."""

    key = "aws_braket"
    node_args: ClassVar[dict[str, Any]] = {"target": "sv1", "max_qubits": 10}


# ---------------------------------------------------------------------------------------------
# Program sets: several circuits per task
# ---------------------------------------------------------------------------------------------


def _actions(standin: BraketStandIn) -> list[dict[str, Any]]:
    return [json.loads(task.request["action"]) for task in standin.tasks.values()]


def test_cut_subexperiments_run_as_program_sets_and_a_rerun_pays_nothing(
    standin: BraketStandIn, bucket: str, tmp_path: Path
) -> None:
    spec = VirtualCircuitSpec(circuit_object=narrow_chain(6), seed=8, shots=2000, shot_allocation="uniform")
    single = ClusterBuilder().add("aws_braket", target="sv1", max_qubits=4, s3_bucket=bucket, circuits_per_job=1)
    before = DistributedQVM(single.build(), mode=QVMMode.LIVE).run(spec)
    n_shards = len(before.plan.shards)
    assert standin.submissions == n_shards > 4  # one task per subexperiment
    store = ResultStore(tmp_path.as_uri())
    cluster = ClusterBuilder().add("aws_braket", target="sv1", max_qubits=4, s3_bucket=bucket).build()
    result = DistributedQVM(cluster, mode=QVMMode.LIVE, store=store).run(spec)
    assert standin.submissions == n_shards + 1  # all of them in one program-set task
    action = _actions(standin)[-1]
    assert action["braketSchemaHeader"]["name"] == "braket.ir.openqasm.program_set"
    assert len(action["programs"]) == n_shards
    task = list(standin.tasks.values())[-1].request
    assert task["shots"] == sum(s.shots for s in result.plan.shards) and task["tags"] == {
        "qcos-program-set": str(n_shards)
    }
    assert result.reconstructed and result.counts.keys() <= before.counts.keys() | result.counts.keys()
    assert sum(result.counts.values()) == sum(before.counts.values())
    ledger = store.read_ledger(result.run_key)
    assert [e.batch_index for e in ledger] == list(range(n_shards)) and len({e.job_id for e in ledger}) == 1
    # another process, the same spec and store: it re-attaches to the task and submits nothing
    cluster = ClusterBuilder().add("aws_braket", target="sv1", max_qubits=4, s3_bucket=bucket).build()
    again = DistributedQVM(cluster, mode=QVMMode.LIVE, store=store).run(spec)
    assert standin.submissions == n_shards + 1 and again.counts == result.counts


@pytest.mark.parametrize("in_s3", [False, True])
def test_a_program_set_keeps_each_circuits_bits_inline_or_in_s3(
    standin: BraketStandIn, bucket: str, in_s3: bool
) -> None:
    """IonQ answers frequencies; results inline or as files beside results.json; a fresh process
    re-attaches from the ARN alone."""
    standin.program_results_in_s3 = in_s3
    provider = BraketProvider()
    node = _live_node(provider, "ionq_forte", bucket)
    cases = _bit_order_circuits()
    idle = QuantumCircuit(1, 2)
    idle.h(0)  # measures nothing: its two bits read 0
    circuits = [c for c, _ in cases] + [idle]
    job = provider.submit_many(circuits, [40] * len(circuits), node, seeds=[None] * len(circuits), job_key="run-p/0-4")
    done, _ = _wait(provider, job, node)
    assert done.status is JobStatus.COMPLETED and done.batch_counts == [{e: 40} for _, e in cases] + [{"00": 40}]
    assert done.extra["cost_usd"] == pytest.approx(0.30 + 40 * len(circuits) * 0.08)  # one task fee, every shot
    fresh = BraketProvider()
    assert fresh.attach(job.job_id, fresh.build_nodes(target="ionq_forte", s3_bucket=bucket)[0]).batch_counts == (
        done.batch_counts
    )
    again = provider.submit_many(circuits, [40] * len(circuits), node, seeds=[None] * len(circuits),
                                 job_key="run-p/0-4")  # fmt: skip
    assert again.job_id == job.job_id and standin.submissions == 1
    with pytest.raises(ExecutionError, match="same shots"):
        provider.submit_many(circuits[:2], [40, 41], node, seeds=[None, None], job_key="run-p/9")


def test_emulated_program_sets_match_one_circuit_per_task() -> None:
    provider = BraketProvider()
    node = provider.prepare(provider.build_nodes(target="sv1")[0], QVMMode.EMULATED)
    assert provider.job_limits(node).circuits == 100 and provider.job_limits(node).same_shots
    circuits = [random_block_circuit(1, 3, 3, seed=s) for s in range(3)]
    for c in circuits:
        c.measure_all()
    job = provider.submit_many(circuits, [300] * 3, node, seeds=[1, 2, 3], job_key="k")
    assert job.batch_counts == [
        provider.submit(c, 300, node, seed=s).counts for c, s in zip(circuits, [1, 2, 3], strict=True)
    ]
    one = provider.prepare(provider.build_nodes(target="sv1", circuits_per_job=1)[0], QVMMode.EMULATED)
    assert provider.job_limits(one).circuits == 1


def test_sweep_bindings_share_a_program_set(standin: BraketStandIn, bucket: str, tmp_path: Path) -> None:
    cluster = ClusterBuilder().add("aws_braket", target="sv1", s3_bucket=bucket, circuits_per_job=4).build()
    sweep = SweepSpec(qasm=SWEEP_QASM, grid={"theta": [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]}, shots=100, seed=2)
    result = DistributedQVM(cluster, mode=QVMMode.LIVE, store=(tmp_path / "s").as_uri()).run_sweep(sweep)
    assert len(result.frame) == 7 and standin.submissions == 2
    assert sorted(len(a["programs"]) for a in _actions(standin)) == [3, 4]


def test_a_task_past_its_timeout_is_cancelled_on_braket(standin: BraketStandIn, bucket: str) -> None:
    standin.queued_polls = 10**6  # never runs
    qc = QuantumCircuit(1, 1)
    qc.x(0)
    qc.measure(0, 0)
    cluster = ClusterBuilder().add("aws_braket", target="sv1", s3_bucket=bucket, job_timeout=1.0).build()
    with pytest.raises(JobTimeoutError, match="cancelled"):
        DistributedQVM(cluster, mode=QVMMode.LIVE, shots=10, retry=FAST).run(VirtualCircuitSpec(circuit_object=qc))
    assert "CancelQuantumTask" in standin.calls and [t.status for t in standin.tasks.values()] == ["CANCELLED"]


def test_cut_plans_leave_room_for_the_ancillas_of_deferred_measurements() -> None:
    """Braket measures only at the end: a subexperiment's mid-circuit (QPD) measurements are deferred
    onto ancillas, so the cut search aims for pieces that leave room for them within max_qubits."""
    cluster = ClusterBuilder().add("aws_braket", n_nodes=2, target="sv1", max_qubits=4).build()
    assert not cluster.nodes[0].mid_circuit and cluster.nodes[0].fits(3, 1) and not cluster.nodes[0].fits(4, 1)
    circuit = narrow_chain(6)
    result = DistributedQVM(cluster).run(VirtualCircuitSpec(circuit_object=circuit, seed=3, shots=20000))
    assert result.plan.strategy.value == "cut" and result.reconstructed
    assert max(s.n_qubits for s in result.plan.shards) < 4
    assert tvd(result.counts, exact_distribution(circuit)) < 0.08
