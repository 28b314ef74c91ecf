"""A real S3 endpoint for tests: moto's ``ThreadedMotoServer`` on 127.0.0.1, one per session.

Fixtures:

* ``s3_server``: the running server (session scope, started only when a test asks for it).
* ``aws_sandbox``: for one test, points every AWS client that is not told otherwise at the server,
  with dummy credentials and no config files, so nothing can reach (or bill) the real AWS.
* ``s3_bucket``: a fresh, uniquely named bucket (inside the sandbox).
* ``s3_store``: a :class:`~network.storage.ResultStore` on that bucket, with explicit
  ``storage_options`` (the environment is only a safety net).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from network.storage import ResultStore

__all__ = ["S3Server", "s3_server", "aws_sandbox", "s3_bucket", "s3_store"]

_AWS_VARIABLES_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible endpoint and the dummy credentials it accepts.

    Attributes:
        endpoint_url: ``http://127.0.0.1:{port}``.
        key: Access key id (dummy).
        secret: Secret access key (dummy, but tests treat it as a real secret).
        region: Region name for clients.
    """

    endpoint_url: str
    key: str
    secret: str = field(repr=False)
    region: str = "us-east-1"

    def client(self) -> Any:
        """A boto3 S3 client on this endpoint with explicit credentials."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name=self.region,
        )

    def create_bucket(self, prefix: str = "qcos-test") -> str:
        """Create a bucket with a unique name and return the name."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def storage_options(self) -> dict[str, Any]:
        """s3fs options for this endpoint: what a :class:`ResultStore` needs."""
        return {
            "key": self.key,
            "secret": self.secret,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": self.region},
        }

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Every object in ``bucket``, key -> content."""
        client = self.client()
        out: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                out[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return out


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    access_log = logging.getLogger("werkzeug")  # one INFO line per request would flood failure reports
    previous_level = access_log.level
    access_log.setLevel(logging.WARNING)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Server(
            endpoint_url=f"http://{host}:{port}",
            key="qcos-test-key",
            secret=f"qcos-test-secret-{uuid.uuid4().hex}",
        )
    finally:
        server.stop()
        access_log.setLevel(previous_level)


@pytest.fixture
def aws_sandbox(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Server:
    """Dummy credentials, no AWS config files, and the moto endpoint as the default for one test."""
    for name in _AWS_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    missing = tmp_path / "no-aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(missing))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(missing))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)
    # Any client built without an explicit endpoint still talks to moto, never to AWS.
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    return s3_server


@pytest.fixture
def s3_bucket(aws_sandbox: S3Server) -> str:
    return aws_sandbox.create_bucket()


@pytest.fixture
def s3_store(aws_sandbox: S3Server, s3_bucket: str) -> ResultStore:
    return ResultStore(f"s3://{s3_bucket}/qcos", storage_options=aws_sandbox.storage_options())
