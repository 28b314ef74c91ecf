"""QCOS distributed QVM core: planning, execution and reconstruction over a cluster of nodes.

Imports neither Prefect nor any vendor SDK.
"""

from network.errors import (
    CircuitParseError,
    ClusterConfigError,
    ExecutionError,
    NodeCapacityError,
    NodeUnavailableError,
    PlanningError,
    ProviderResultError,
    ProviderUnavailableError,
    QVMError,
    SpecError,
    UnknownProviderError,
)

__all__ = [
    "QVMError",
    "SpecError",
    "CircuitParseError",
    "ClusterConfigError",
    "UnknownProviderError",
    "ProviderUnavailableError",
    "NodeUnavailableError",
    "NodeCapacityError",
    "PlanningError",
    "ExecutionError",
    "ProviderResultError",
]

__version__ = "0.1.0"
