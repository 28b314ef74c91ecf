"""Credentials for the cloud QPU providers and the generic REST node protocol.

Each block returns the keyword arguments its SDK or client takes (``client_kwargs()``) and can build
that client (``get_service()``, ``get_workspace()``, ``get_aws_session()``, ``get_client()``). Vendor
SDKs are imported inside those methods only, so this module imports without any of them.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from prefect.blocks.core import Block
from prefect_aws import AwsCredentials
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from blocks.base import require_secret
from network.errors import ProviderUnavailableError
from network.node_providers import install_hint

__all__ = [
    "IBMQuantumCredentials",
    "AzureQuantumCredentials",
    "BraketCredentials",
    "RestEndpointCredentials",
]


def _import_sdk(module: str, package: str, extra: str | None, what: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ProviderUnavailableError(
            f"{what} needs {package} ({module}), which is not installed. {install_hint(extra)}"
        ) from exc


def _has(secret: SecretStr | None) -> bool:
    return secret is not None and bool(secret.get_secret_value())


class IBMQuantumCredentials(Block):
    """An IBM Quantum account, for ``qiskit-ibm-runtime``'s ``QiskitRuntimeService``.

    Example:
        ```python
        from blocks import IBMQuantumCredentials, load_block

        service = load_block(IBMQuantumCredentials, "BLOCK_NAME").get_service()
        ```
    """

    _block_type_name = "IBM Quantum Credentials"
    # pydantic quotes rejected input in its errors; a rejected value may hold a secret
    model_config = ConfigDict(hide_input_in_errors=True)

    token: SecretStr = Field(..., description="API key of the IBM Quantum Platform (IBM Cloud) account.")
    channel: Literal["ibm_quantum_platform", "ibm_cloud"] = Field(
        default="ibm_quantum_platform", description="Service channel the account belongs to."
    )
    instance: str | None = Field(
        default=None,
        description="CRN or name of the service instance to use. Empty: the account's default instance.",
    )
    url: str | None = Field(default=None, description="Authentication URL override (private endpoints).")

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``QiskitRuntimeService``.

        Raises:
            MissingSecretError: The token is empty.
        """
        kwargs: dict[str, Any] = {"channel": self.channel, "token": require_secret(self, "token")}
        if self.instance:
            kwargs["instance"] = self.instance
        if self.url:
            kwargs["url"] = self.url
        return kwargs

    def get_service(self) -> Any:
        """A ``qiskit_ibm_runtime.QiskitRuntimeService`` for this account.

        Raises:
            ProviderUnavailableError: ``qiskit-ibm-runtime`` is not installed.
            MissingSecretError: The token is empty.
        """
        runtime = _import_sdk("qiskit_ibm_runtime", "qiskit-ibm-runtime", "ibm", "IBM Quantum")
        return runtime.QiskitRuntimeService(**self.client_kwargs())


class AzureQuantumCredentials(Block):
    """An Azure Quantum workspace: its identity, and either a service principal or a connection string.

    Without a service principal or a connection string the SDK's default credential chain is used
    (managed identity, Azure CLI login, ``AZURE_*`` variables).

    Example:
        ```python
        from blocks import AzureQuantumCredentials, load_block

        workspace = load_block(AzureQuantumCredentials, "BLOCK_NAME").get_workspace()
        ```
    """

    _block_type_name = "Azure Quantum Credentials"
    # pydantic quotes rejected input in its errors; a rejected value may hold a secret
    model_config = ConfigDict(hide_input_in_errors=True)

    subscription_id: str | None = Field(default=None, description="Azure subscription id of the workspace.")
    resource_group: str | None = Field(default=None, description="Resource group of the workspace.")
    workspace_name: str | None = Field(default=None, description="Name of the Azure Quantum workspace.")
    location: str | None = Field(default=None, description="Azure region of the workspace, e.g. 'eastus'.")
    tenant_id: str | None = Field(default=None, description="Service principal: Microsoft Entra tenant id.")
    client_id: str | None = Field(default=None, description="Service principal: application (client) id.")
    client_secret: SecretStr | None = Field(default=None, description="Service principal: client secret.")
    connection_string: SecretStr | None = Field(
        default=None,
        description="Workspace connection string (Operations > Access keys); replaces all the fields above.",
    )

    @model_validator(mode="after")
    def _check_identity(self) -> Self:
        if not _has(self.connection_string):
            missing = [
                name
                for name in ("subscription_id", "resource_group", "workspace_name", "location")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"Give the workspace's {', '.join(missing)}, or a connection_string.")
        if bool(self.tenant_id) != bool(self.client_id):
            raise ValueError("A service principal needs both tenant_id and client_id (and a client_secret).")
        return self

    @property
    def uses_service_principal(self) -> bool:
        return bool(self.tenant_id and self.client_id) and not _has(self.connection_string)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``azure.quantum.Workspace``.

        With a connection string, only ``connection_string`` (for ``Workspace.from_connection_string``).
        With a service principal, ``credential`` is an ``azure.identity.ClientSecretCredential``.

        Raises:
            MissingSecretError: A service principal without its client secret.
            ProviderUnavailableError: A service principal and no ``azure-identity``.
        """
        if _has(self.connection_string):
            return {"connection_string": require_secret(self, "connection_string")}
        kwargs: dict[str, Any] = {
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "name": self.workspace_name,
            "location": self.location,
        }
        if self.uses_service_principal:
            kwargs["credential"] = self.get_credential()
        return kwargs

    def get_credential(self) -> Any:
        """The service principal's ``azure.identity.ClientSecretCredential``.

        Raises:
            MissingSecretError: No client secret, or no service principal at all.
            ProviderUnavailableError: ``azure-identity`` is not installed.
        """
        secret = require_secret(self, "client_secret")
        identity = _import_sdk("azure.identity", "azure-identity", "azure", "Azure Quantum")
        return identity.ClientSecretCredential(tenant_id=self.tenant_id, client_id=self.client_id, client_secret=secret)

    def get_workspace(self) -> Any:
        """An ``azure.quantum.Workspace``.

        Raises:
            ProviderUnavailableError: ``azure-quantum`` is not installed.
            MissingSecretError: See :meth:`client_kwargs`.
        """
        quantum = _import_sdk("azure.quantum", "azure-quantum", "azure", "Azure Quantum")
        kwargs = self.client_kwargs()
        if "connection_string" in kwargs:
            return quantum.Workspace.from_connection_string(kwargs["connection_string"])
        return quantum.Workspace(**kwargs)


class BraketCredentials(Block):
    """Amazon Braket access: an AWS Credentials block, the region, and where task results go in S3.

    Example:
        ```python
        from blocks import BraketCredentials, load_block

        session = load_block(BraketCredentials, "BLOCK_NAME").get_aws_session()
        ```
    """

    _block_type_name = "Amazon Braket Credentials"
    # pydantic quotes rejected input in its errors; a rejected value may hold a secret
    model_config = ConfigDict(hide_input_in_errors=True)

    aws_credentials: AwsCredentials = Field(
        ..., description="AWS Credentials block (keys, profile or role; empty fields: the environment's)."
    )
    region_name: str = Field(..., description="AWS region of the Braket devices, e.g. 'us-east-1'.")
    s3_bucket: str | None = Field(
        default=None, description="Bucket for task results. Empty: Braket's default amazon-braket-{region}-{account}."
    )
    s3_prefix: str | None = Field(default=None, description="Key prefix for task results inside the bucket.")
    endpoint_url: str | None = Field(
        default=None, description="Braket API endpoint override (a local or test endpoint). Empty for AWS."
    )

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``session.client("braket", ...)``."""
        kwargs: dict[str, Any] = {"region_name": self.region_name}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        return kwargs

    def s3_destination_folder(self) -> tuple[str, str] | None:
        """``(bucket, prefix)`` for ``AwsQuantumTask.create``, or ``None`` for Braket's default bucket."""
        if not self.s3_bucket:
            return None
        return self.s3_bucket, (self.s3_prefix or "").strip("/")

    def get_boto3_session(self) -> Any:
        """A ``boto3.Session`` in :attr:`region_name`.

        Raises:
            MissingSecretError: The credentials block names an access key id but holds no secret key.
        """
        creds = self.aws_credentials
        if creds.aws_access_key_id:
            require_secret(creds, "aws_secret_access_key")
        return creds.model_copy(update={"region_name": self.region_name}).get_boto3_session()

    def get_aws_session(self) -> Any:
        """A ``braket.aws.AwsSession`` on this account, region and endpoint.

        Raises:
            ProviderUnavailableError: ``amazon-braket-sdk`` is not installed.
            MissingSecretError: See :meth:`get_boto3_session`.
        """
        aws = _import_sdk("braket.aws", "amazon-braket-sdk", "braket", "Amazon Braket")
        session = self.get_boto3_session()
        return aws.AwsSession(
            boto_session=session,
            braket_client=session.client("braket", **self.client_kwargs()),
            default_bucket=self.s3_bucket,
        )


class RestEndpointCredentials(Block):
    """A node service that speaks the QCOS REST protocol: its base URL and bearer token.

    Example:
        ```python
        from blocks import RestEndpointCredentials, load_block

        with load_block(RestEndpointCredentials, "BLOCK_NAME").get_client() as client:
            print(client.get("/health").json())
        ```
    """

    _block_type_name = "QCOS REST Endpoint Credentials"
    # pydantic quotes rejected input in its errors; a rejected value may hold a secret
    model_config = ConfigDict(hide_input_in_errors=True)

    base_url: str = Field(..., description="Base URL of the node service, e.g. https://qpu.example.org/api.")
    token: SecretStr | None = Field(
        default=None, description="Bearer token sent as 'Authorization: Bearer ...'. Empty: no authentication."
    )
    timeout_seconds: float = Field(default=30.0, gt=0, description="Timeout of each HTTP request, in seconds.")

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.username or parts.password:
            raise ValueError("Put the token in the token field, not in base_url.")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http:// or https:// URL, got {value!r}.")
        return value.rstrip("/")

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client``: ``base_url``, ``timeout`` and, with a token, ``headers``."""
        kwargs: dict[str, Any] = {"base_url": self.base_url, "timeout": self.timeout_seconds}
        if _has(self.token):
            kwargs["headers"] = {"Authorization": f"Bearer {require_secret(self, 'token')}"}
        return kwargs

    def get_client(self) -> Any:
        """An ``httpx.Client`` for the endpoint (close it, or use it in a ``with`` block)."""
        httpx = _import_sdk("httpx", "httpx", None, "The REST node protocol")
        return httpx.Client(**self.client_kwargs())
