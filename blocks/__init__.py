"""Prefect blocks for QCOS: the cluster, result storage, and credentials per cloud.

Register them with a Prefect API (they then appear in the UI)::

    prefect block register -m blocks

Secrets are ``SecretStr`` fields: hidden in ``repr()``, logs and the UI, read only through
:func:`require_secret` by the method that builds a client. S3 credentials reuse prefect-aws's
``AwsCredentials`` block rather than holding keys themselves.
"""

from __future__ import annotations

from prefect_aws import AwsCredentials

from blocks.base import BlockNotFoundError, MissingSecretError, describe_block, load_block, require_secret
from blocks.cluster import QCOSCluster
from blocks.credentials import (
    AzureQuantumCredentials,
    BraketCredentials,
    IBMQuantumCredentials,
    RestEndpointCredentials,
)
from blocks.lumi import LumiSlurmConfig
from blocks.storage import QCOSResultStorage

__all__ = [
    "LumiSlurmConfig",
    "QCOSCluster",
    "QCOSResultStorage",
    "IBMQuantumCredentials",
    "AzureQuantumCredentials",
    "BraketCredentials",
    "RestEndpointCredentials",
    "AwsCredentials",
    "BlockNotFoundError",
    "MissingSecretError",
    "load_block",
    "require_secret",
    "describe_block",
]
