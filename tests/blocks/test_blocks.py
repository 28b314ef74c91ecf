"""Prefect blocks: validation and client kwargs without a server, then save/load, lookup errors and
registration against one session-wide Prefect test server, and the storage block against moto S3."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.core import Block
from prefect_aws import AwsCredentials
from prefect_aws.client_parameters import AwsClientParameters
from pydantic import SecretStr, ValidationError
from qiskit import QuantumCircuit

import blocks
from blocks import (
    AzureQuantumCredentials,
    BlockNotFoundError,
    BraketCredentials,
    IBMQuantumCredentials,
    MissingSecretError,
    QCOSCluster,
    QCOSResultStorage,
    RestEndpointCredentials,
    load_block,
    require_secret,
)
from network.distributed_qvm import DistributedQVM, VirtualCircuitSpec
from network.errors import ClusterConfigError, ProviderUnavailableError, QVMError
from network.node_providers import ClusterBuilder, NodeProvider, QPUNodeSpec, register_provider, unregister_provider
from network.storage import ResultStore

# Until tests/conftest.py lists "tests.prefect_harness" in pytest_plugins; then delete this import, or the
# session would start a second server for this module.
from tests.s3server import S3Server

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-" + uuid.uuid4().hex
DEFINITION: dict[str, Any] = {
    "nodes": [
        {"provider": "local_cpu", "n_nodes": 2, "max_qubits": 10},
        {"provider": "local_cpu", "name": "wide", "n_nodes": 1, "max_qubits": 14, "host": "other"},
        {"provider": "local_gpu_mps", "n_nodes": 1, "max_qubits": 100},
    ]
}
BLOCK_CLASSES: list[type[Block]] = [
    QCOSCluster,
    QCOSResultStorage,
    IBMQuantumCredentials,
    AzureQuantumCredentials,
    BraketCredentials,
    RestEndpointCredentials,
]


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _examples() -> list[Block]:
    """One block of each type, every secret set to SECRET."""
    aws = AwsCredentials(aws_access_key_id="AKIATEST", aws_secret_access_key=SECRET, region_name="eu-west-1")
    return [
        QCOSCluster(definition=DEFINITION),
        QCOSResultStorage(url="s3://bucket/qcos", endpoint_url="http://127.0.0.1:9", aws_credentials=aws),
        IBMQuantumCredentials(token=SECRET, instance="crn:v1:test"),
        AzureQuantumCredentials(
            subscription_id="sub",
            resource_group="rg",
            workspace_name="ws",
            location="eastus",
            tenant_id="tenant",
            client_id="client",
            client_secret=SECRET,
        ),
        BraketCredentials(aws_credentials=aws, region_name="us-west-1", s3_bucket="results", s3_prefix="qcos/"),
        RestEndpointCredentials(base_url="https://qpu.example.org/api/", token=SECRET, timeout_seconds=5),
    ]


# -- the module ----------------------------------------------------------------------------------------


def test_every_block_is_exported_described_and_documented() -> None:
    assert set(blocks.__all__) >= {c.__name__ for c in BLOCK_CLASSES} | {
        "BlockNotFoundError",
        "MissingSecretError",
        "load_block",
        "require_secret",
    }
    for name in blocks.__all__:
        assert hasattr(blocks, name)
    for cls in BLOCK_CLASSES:
        assert cls.get_description(), cls
        for field_name, info in cls.model_fields.items():
            assert info.description, f"{cls.__name__}.{field_name} has no description"
    assert QCOSCluster.get_block_type_name() == "QCOS Cluster"
    assert QCOSResultStorage.get_block_type_name() == "QCOS Result Storage"
    assert issubclass(BlockNotFoundError, QVMError) and issubclass(BlockNotFoundError, LookupError)
    assert issubclass(MissingSecretError, QVMError) and issubclass(MissingSecretError, ValueError)


def test_secrets_never_show_in_repr_str_or_json() -> None:
    for block in _examples():
        for text in (repr(block), str(block), block.model_dump_json(), str(block.model_dump())):
            assert SECRET not in text, type(block).__name__


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (QCOSResultStorage, {"url": f"s3://AKIATEST:{SECRET}@bucket/qcos"}),
        (RestEndpointCredentials, {"base_url": f"https://user:{SECRET}@qpu.example.org"}),
        (IBMQuantumCredentials, {"token": SECRET, "channel": "no-such-channel"}),
    ],
)
def test_rejected_input_is_not_quoted_in_errors(cls: type[Block], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        cls(**kwargs)
    assert SECRET not in str(info.value)


# -- require_secret ----------------------------------------------------------------------------------


def test_require_secret_names_the_block_and_the_field() -> None:
    assert require_secret(IBMQuantumCredentials(token="abc"), "token") == "abc"
    with pytest.raises(MissingSecretError, match="IBM Quantum Credentials block has no token") as info:
        require_secret(IBMQuantumCredentials(token=""), "token")
    assert info.value.field == "token"
    assert info.value.block == "unsaved IBM Quantum Credentials block"
    with pytest.raises(MissingSecretError, match="has no client_secret"):
        AzureQuantumCredentials(
            subscription_id="s", resource_group="r", workspace_name="w", location="l", tenant_id="t", client_id="c"
        ).client_kwargs()
    with pytest.raises(AttributeError, match="no field 'tokn'"):
        require_secret(IBMQuantumCredentials(token="abc"), "tokn")


# -- credentials blocks --------------------------------------------------------------------------------


def test_ibm_client_kwargs() -> None:
    block = IBMQuantumCredentials(token=SECRET, instance="crn:v1:test", url="https://auth.example.org")
    assert block.client_kwargs() == {
        "channel": "ibm_quantum_platform",
        "token": SECRET,
        "instance": "crn:v1:test",
        "url": "https://auth.example.org",
    }
    assert IBMQuantumCredentials(token="t", channel="ibm_cloud").client_kwargs() == {
        "channel": "ibm_cloud",
        "token": "t",
    }


def test_azure_needs_a_workspace_or_a_connection_string() -> None:
    with pytest.raises(ValidationError, match="resource_group, workspace_name, location, or a connection_string"):
        AzureQuantumCredentials(subscription_id="sub")
    with pytest.raises(ValidationError, match="both tenant_id and client_id"):
        AzureQuantumCredentials(
            subscription_id="s", resource_group="r", workspace_name="w", location="l", tenant_id="t"
        )
    by_string = AzureQuantumCredentials(connection_string=SECRET)
    assert by_string.client_kwargs() == {"connection_string": SECRET}
    default_chain = AzureQuantumCredentials(subscription_id="s", resource_group="r", workspace_name="w", location="l")
    assert default_chain.client_kwargs() == {
        "subscription_id": "s",
        "resource_group": "r",
        "name": "w",
        "location": "l",
    }
    assert not default_chain.uses_service_principal


@pytest.mark.skipif(importlib.util.find_spec("azure") is not None, reason="the Azure SDK is installed here")
def test_azure_without_its_sdk_fails_with_an_install_hint() -> None:
    block = _examples()[3]
    assert isinstance(block, AzureQuantumCredentials) and block.uses_service_principal
    with pytest.raises(ProviderUnavailableError, match=r"azure-identity.*pip install 'qcos\[azure\]'"):
        block.client_kwargs()
    with pytest.raises(ProviderUnavailableError, match="azure-quantum"):
        AzureQuantumCredentials(connection_string="x").get_workspace()


def test_braket_session_and_client_kwargs() -> None:
    block = _examples()[4]
    assert isinstance(block, BraketCredentials)
    assert block.client_kwargs() == {"region_name": "us-west-1"}
    assert block.s3_destination_folder() == ("results", "qcos")
    session = block.get_boto3_session()
    assert session.region_name == "us-west-1"
    assert session.get_credentials().secret_key == SECRET
    local = BraketCredentials(aws_credentials=AwsCredentials(), region_name="us-east-1", endpoint_url="http://x:1")
    assert local.client_kwargs() == {"region_name": "us-east-1", "endpoint_url": "http://x:1"}
    assert local.s3_destination_folder() is None
    no_secret = BraketCredentials(aws_credentials=AwsCredentials(aws_access_key_id="AKIA"), region_name="us-east-1")
    with pytest.raises(MissingSecretError, match="AWS Credentials block has no aws_secret_access_key"):
        no_secret.get_boto3_session()


def test_rest_endpoint_client() -> None:
    block = _examples()[5]
    assert isinstance(block, RestEndpointCredentials)
    assert block.client_kwargs() == {
        "base_url": "https://qpu.example.org/api",
        "timeout": 5.0,
        "headers": {"Authorization": f"Bearer {SECRET}"},
    }
    with block.get_client() as client:
        assert str(client.base_url) == "https://qpu.example.org/api/"
        assert client.headers["Authorization"] == f"Bearer {SECRET}"
    anonymous = RestEndpointCredentials(base_url="http://127.0.0.1:8080")
    assert anonymous.client_kwargs() == {"base_url": "http://127.0.0.1:8080", "timeout": 30.0}
    with pytest.raises(ValidationError, match="http:// or https://"):
        RestEndpointCredentials(base_url="qpu.example.org")
    with pytest.raises(ValidationError, match="greater than 0"):
        RestEndpointCredentials(base_url="http://h", timeout_seconds=0)


# -- cluster block -------------------------------------------------------------------------------------


def test_cluster_block_builds_the_same_registry_as_the_builder() -> None:
    block = QCOSCluster(definition=DEFINITION)
    registry = block.build_registry()
    assert registry.to_dict() == ClusterBuilder.from_dict(DEFINITION).build().to_dict()
    assert registry.node_ids == ("local_cpu-0", "local_cpu-1", "local_gpu_mps-0", "wide-0")
    assert QCOSCluster(definition=DEFINITION["nodes"]).definition == DEFINITION  # a bare list is accepted


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"nodes": []}, "'nodes' must be a non-empty list"),
        ({"node": [{"provider": "local_cpu"}]}, "needs a 'nodes' list"),
        ({"nodes": [{"n_nodes": 2}]}, "Cluster entry 0 must be a mapping with a 'provider' key"),
        ({"nodes": [{"provider": "local_cpuu"}]}, "Unknown provider 'local_cpuu'. Available providers: .*local_cpu"),
    ],
)
def test_cluster_block_rejects_bad_definitions(definition: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        QCOSCluster(definition=definition)


def test_cluster_block_from_yaml(tmp_path: Path) -> None:
    block = QCOSCluster.from_yaml(ROOT / "examples" / "cluster.yaml")
    assert (
        block.build_registry().to_dict()
        == ClusterBuilder.from_yaml(ROOT / "examples" / "cluster.yaml").build().to_dict()
    )
    with pytest.raises(ClusterConfigError, match="does not exist"):
        QCOSCluster.from_yaml(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("nodes: [provider: local_cpu\n")
    with pytest.raises(ClusterConfigError, match="not valid YAML"):
        QCOSCluster.from_yaml(tmp_path / "bad.yaml")
    (tmp_path / "zero.yaml").write_text("nodes:\n  - provider: local_cpu\n    n_nodes: 0\n")
    with pytest.raises(ClusterConfigError, match="n_nodes must be a positive integer"):
        QCOSCluster.from_yaml(tmp_path / "zero.yaml").build_registry()


class _NeedsMissingSDK(NodeProvider):
    key = "needs_missing_sdk"
    requires = ("qcos_sdk_that_is_not_installed",)
    extra = "fakeqpu"

    def build_nodes(self, **kwargs: Any) -> list[QPUNodeSpec]:
        return self.make_nodes(1, max_qubits=4)

    def execute(self, circuit: QuantumCircuit, shots: int, node_spec: QPUNodeSpec, *, seed: int | None = None):
        raise AssertionError("never runs")


def test_a_provider_whose_sdk_is_missing_here_is_accepted_until_built() -> None:
    register_provider(_NeedsMissingSDK.key, _NeedsMissingSDK)
    try:
        block = QCOSCluster(definition={"nodes": [{"provider": "needs_missing_sdk"}]})
        with pytest.raises(ProviderUnavailableError, match=r"pip install 'qcos\[fakeqpu\]'"):
            block.build_registry()
    finally:
        unregister_provider(_NeedsMissingSDK.key)
    with pytest.raises(ValidationError, match="Unknown provider"):
        QCOSCluster(definition={"nodes": [{"provider": "needs_missing_sdk"}]})


# -- result storage block ------------------------------------------------------------------------------


def test_storage_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QCOS_RESULTS_URL", (tmp_path / "r").as_uri())
    assert QCOSResultStorage().url == (tmp_path / "r").as_uri()
    assert QCOSResultStorage().storage_options() == {}
    assert QCOSResultStorage().get_store().url == (tmp_path / "r").as_uri()
    monkeypatch.delenv("QCOS_RESULTS_URL")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert QCOSResultStorage().url == (tmp_path / "xdg" / "qcos" / "results").resolve().as_uri()

    # file URLs ignore S3 settings
    assert QCOSResultStorage(url=(tmp_path / "x").as_uri(), endpoint_url="http://h:1").storage_options() == {}
    # environment credentials: only where to connect
    assert QCOSResultStorage(url="s3://b/p", endpoint_url="http://h:1", region_name="r").storage_options() == {
        "client_kwargs": {"endpoint_url": "http://h:1", "region_name": "r"}
    }
    aws = AwsCredentials(
        aws_access_key_id="AKIA",
        aws_secret_access_key=SECRET,
        aws_session_token="tok",
        region_name="eu-west-3",
        aws_client_parameters=AwsClientParameters(endpoint_url="http://from-creds:1", verify=False),
    )
    assert QCOSResultStorage(url="s3://b/p", aws_credentials=aws).storage_options() == {
        "key": "AKIA",
        "secret": SECRET,
        "token": "tok",
        "client_kwargs": {"verify": False, "endpoint_url": "http://from-creds:1", "region_name": "eu-west-3"},
    }
    own = QCOSResultStorage(url="s3a://b/p", aws_credentials=aws, endpoint_url="http://own:2", region_name="r2")
    assert own.storage_options()["client_kwargs"] == {
        "verify": False,
        "endpoint_url": "http://own:2",
        "region_name": "r2",
    }
    profile = QCOSResultStorage(url="s3://b/p", aws_credentials=AwsCredentials(profile_name="lab"))
    assert profile.storage_options() == {"profile": "lab"}


def test_storage_block_with_incomplete_credentials() -> None:
    no_secret = QCOSResultStorage(url="s3://b/p", aws_credentials=AwsCredentials(aws_access_key_id="AKIA"))
    with pytest.raises(MissingSecretError, match="AWS Credentials block has no aws_secret_access_key"):
        no_secret.get_store()
    no_key = QCOSResultStorage(url="s3://b/p", aws_credentials=AwsCredentials(aws_secret_access_key=SECRET))
    with pytest.raises(MissingSecretError, match="no aws_access_key_id") as info:
        no_key.storage_options()
    assert info.value.field == "aws_access_key_id"
    assert SECRET not in str(info.value)
    with pytest.raises(ValidationError, match="Unsupported storage URL"):
        QCOSResultStorage(url="ftp://example.org/results")


def _bell() -> VirtualCircuitSpec:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return VirtualCircuitSpec(circuit_object=qc, seed=3)


def test_storage_block_writes_and_reads_a_run_on_s3(aws_sandbox: S3Server, s3_bucket: str) -> None:
    creds = AwsCredentials(aws_access_key_id=aws_sandbox.key, aws_secret_access_key=aws_sandbox.secret)
    block = QCOSResultStorage(
        url=f"s3://{s3_bucket}/runs-from-block",
        endpoint_url=aws_sandbox.endpoint_url,
        region_name=aws_sandbox.region,
        aws_credentials=creds,
    )
    store = block.get_store()
    assert isinstance(store, ResultStore)
    registry = ClusterBuilder().add("local_cpu", n_nodes=1, max_qubits=4).build()
    result = DistributedQVM(registry, shots=200, store=store).run(_bell())
    assert result.storage_url == f"s3://{s3_bucket}/runs-from-block/runs/{result.run_key}"
    again = block.get_store()
    assert again.list_runs() == [result.run_key]
    assert again.read_result(result.run_key).counts == result.counts
    objects = aws_sandbox.objects(s3_bucket)
    assert f"runs-from-block/runs/{result.run_key}/result.json" in objects
    assert not any(aws_sandbox.secret.encode() in body for body in objects.values())
    assert aws_sandbox.secret not in repr(block) + repr(store)


# -- against a Prefect server --------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_prefect_block_register_registers_every_block_type(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "blocks"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for cls in BLOCK_CLASSES:
        assert cls.get_block_type_name() in done.stdout

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for cls in [*BLOCK_CLASSES, AwsCredentials]:
            block_type = client.read_block_type_by_slug(cls.get_block_type_slug())
            assert block_type.name == cls.get_block_type_name()


@pytest.mark.parametrize("index", range(len(BLOCK_CLASSES)), ids=[c.__name__ for c in BLOCK_CLASSES])
@pytest.mark.usefixtures("prefect_harness")
def test_blocks_round_trip_through_the_server(index: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    block = _examples()[index]
    cls = type(block)
    name = _unique("round-trip")
    block.save(name)
    loaded = load_block(cls, name)
    assert type(loaded) is cls
    assert loaded._block_document_name == name
    assert loaded.model_dump(mode="python") == block.model_dump(mode="python")
    secrets = _secrets(block)
    assert _secrets(loaded) == secrets
    assert all(value == SECRET for value in secrets.values())
    assert caplog.records and SECRET not in caplog.text  # no log line, even at DEBUG, holds a secret


def _secrets(block: Block, prefix: str = "") -> dict[str, str]:
    """Every SecretStr in ``block`` and its nested blocks, as plain text."""
    found: dict[str, str] = {}
    for field_name in type(block).model_fields:
        value = getattr(block, field_name)
        if isinstance(value, SecretStr):
            found[prefix + field_name] = value.get_secret_value()
        elif isinstance(value, Block):
            found.update(_secrets(value, f"{prefix}{field_name}."))
    return found


@pytest.mark.usefixtures("prefect_harness")
def test_load_block_of_a_missing_name_names_it() -> None:
    with pytest.raises(BlockNotFoundError) as info:
        load_block(QCOSCluster, "no-such-cluster")
    message = str(info.value)
    assert "'no-such-cluster'" in message and "'QCOS Cluster'" in message
    assert info.value.block_type == "QCOS Cluster" and info.value.name == "no-such-cluster"
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.usefixtures("prefect_harness")
def test_a_saved_block_with_an_empty_secret_is_named_in_the_error() -> None:
    name = _unique("ibm-empty")
    IBMQuantumCredentials(token="").save(name)
    loaded = load_block(IBMQuantumCredentials, name)
    with pytest.raises(MissingSecretError, match=f"IBM Quantum Credentials block '{name}' has no token") as info:
        loaded.client_kwargs()
    assert info.value.field == "token"


@pytest.mark.usefixtures("prefect_harness")
def test_a_saved_cluster_and_storage_run_a_circuit(tmp_path: Path) -> None:
    cluster, storage = _unique("cluster"), _unique("storage")
    QCOSCluster(definition={"nodes": [{"provider": "local_cpu", "n_nodes": 2, "max_qubits": 4}]}).save(cluster)
    QCOSResultStorage(url=(tmp_path / "results").as_uri()).save(storage)
    registry = load_block(QCOSCluster, cluster).build_registry()
    store = load_block(QCOSResultStorage, storage).get_store()
    result = DistributedQVM(registry, shots=100, store=store).run(_bell())
    assert set(result.counts) <= {"00", "11"}
    assert store.list_runs() == [result.run_key]


@pytest.mark.usefixtures("prefect_harness")
def test_load_block_works_inside_an_event_loop() -> None:
    name = _unique("cluster")
    QCOSCluster(definition=DEFINITION).save(name)

    async def from_async_code() -> QCOSCluster:
        return load_block(QCOSCluster, name)  # a flow's async task, a notebook cell

    assert asyncio.run(from_async_code()).definition == DEFINITION
