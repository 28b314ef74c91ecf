"""QCOS distributed QVM core: planning, execution and reconstruction over a cluster of nodes.

Imports neither Prefect nor any vendor SDK. The exception hierarchy is re-exported here.
"""

from network import errors
from network.errors import *  # noqa: F403 - the exception hierarchy is this package's public surface

__all__ = list(errors.__all__)

__version__ = "0.1.0"
