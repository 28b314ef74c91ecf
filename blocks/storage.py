"""Where runs are stored, as a block: an fsspec URL plus, for S3, a prefect-aws credentials block."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from prefect.blocks.core import Block
from prefect_aws import AwsCredentials
from pydantic import ConfigDict, Field, field_validator

from blocks.base import MissingSecretError, require_secret
from network.errors import StorageError
from network.storage import ResultStore, default_results_url

__all__ = ["QCOSResultStorage"]

_S3_SCHEMES = ("s3", "s3a")


class QCOSResultStorage(Block):
    """Where QCOS runs are persisted: a local folder or an S3 (or S3-compatible) bucket.

    For S3, credentials come from an AWS Credentials block when one is given, else from the
    environment of the machine that runs the flow (instance role, ``AWS_*`` variables, profiles).

    Example:
        Open the store and list completed runs:
        ```python
        from blocks import QCOSResultStorage, load_block

        store = load_block(QCOSResultStorage, "BLOCK_NAME").get_store()
        print(store.list_runs())
        ```
    """

    _block_type_name = "QCOS Result Storage"
    # pydantic quotes rejected input in its errors; a rejected value may hold a secret
    model_config = ConfigDict(hide_input_in_errors=True)

    url: str = Field(
        default_factory=default_results_url,
        description=(
            "fsspec URL of the results folder: file:///path or s3://bucket/prefix. "
            "Default: $QCOS_RESULTS_URL, else the user's data directory, when the block is made."
        ),
    )
    endpoint_url: str | None = Field(
        default=None,
        description="Endpoint of an S3-compatible service (MinIO, Ceph, a test server). Empty for AWS S3.",
    )
    region_name: str | None = Field(
        default=None,
        description="Region of the bucket. Empty: the credentials block's region, else the environment's.",
    )
    aws_credentials: AwsCredentials | None = Field(
        default=None,
        description="AWS Credentials block for S3. Empty: credentials from the environment.",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        try:
            ResultStore(value)  # scheme, credentials in the URL, filesystem package installed; no I/O
        except StorageError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @property
    def is_s3(self) -> bool:
        return urlsplit(self.url).scheme in _S3_SCHEMES

    def storage_options(self) -> dict[str, Any]:
        """s3fs options (``key``/``secret``/``token``, ``client_kwargs``) for an S3 URL; ``{}`` otherwise.

        Raises:
            MissingSecretError: The credentials block names an access key id but holds no secret key.
        """
        if not self.is_s3:
            return {}
        creds = self.aws_credentials
        options: dict[str, Any] = {}
        client_kwargs: dict[str, Any] = {}
        if creds is not None:
            options.update(_credential_options(creds))
            params = creds.aws_client_parameters
            if params.verify is False:
                client_kwargs["verify"] = False
            elif params.verify_cert_path:
                client_kwargs["verify"] = str(params.verify_cert_path)
            if params.use_ssl is False:
                options["use_ssl"] = False
        endpoint = self.endpoint_url or (creds.aws_client_parameters.endpoint_url if creds is not None else None)
        region = self.region_name or (creds.region_name if creds is not None else None)
        if endpoint:
            client_kwargs["endpoint_url"] = endpoint
        if region:
            client_kwargs["region_name"] = region
        if client_kwargs:
            options["client_kwargs"] = client_kwargs
        return options

    def get_store(self) -> ResultStore:
        """The :class:`~network.storage.ResultStore` this block describes.

        Raises:
            MissingSecretError: Incomplete AWS credentials.
            StorageError: The URL cannot be opened.
        """
        return ResultStore(self.url, storage_options=self.storage_options())


def _credential_options(creds: AwsCredentials) -> dict[str, Any]:
    """Key, secret and token for s3fs; a profile name; or nothing (the environment decides)."""
    if creds.assume_role_arn:
        # s3fs cannot assume a role itself: take the role's temporary credentials (about an hour) from boto3
        frozen = creds.get_boto3_session().get_credentials().get_frozen_credentials()
        return {"key": frozen.access_key, "secret": frozen.secret_key, "token": frozen.token}
    if creds.aws_access_key_id:
        options = {"key": creds.aws_access_key_id, "secret": require_secret(creds, "aws_secret_access_key")}
        if creds.aws_session_token:
            options["token"] = creds.aws_session_token
        return options
    if creds.aws_secret_access_key is not None and creds.aws_secret_access_key.get_secret_value():
        raise MissingSecretError.for_field(
            creds, "aws_access_key_id", "has a secret access key but no aws_access_key_id to go with it."
        )
    if creds.profile_name:
        return {"profile": creds.profile_name}
    return {}
