"""The cluster definition as a block: the same structure as the CLI's cluster YAML."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, field_validator

from network.errors import ClusterConfigError, ProviderUnavailableError, UnknownProviderError
from network.node_providers import ClusterBuilder, QPURegistry, provider_class

__all__ = ["QCOSCluster"]


class QCOSCluster(Block):
    """The nodes of a QCOS cluster: provider groups, their sizes and limits.

    The definition is the structure of the ``qcos`` CLI's cluster YAML file. It is checked when the
    block is made or loaded: its shape, and that every provider key is installed here (a provider whose
    optional SDK is missing is accepted, since only the machines that run its nodes need the SDK).

    Example:
        Load a saved cluster and run on it:
        ```python
        from blocks import QCOSCluster, load_block
        from network.distributed_qvm import DistributedQVM

        qvm = DistributedQVM(load_block(QCOSCluster, "BLOCK_NAME").build_registry())
        ```
    """

    _block_type_name = "QCOS Cluster"
    # pydantic quotes rejected input in its errors; a rejected value may hold a secret
    model_config = ConfigDict(hide_input_in_errors=True)

    definition: dict[str, Any] = Field(
        ...,
        description=(
            "Cluster definition, as in the cluster YAML file: {'nodes': [{'provider': 'local_cpu', "
            "'n_nodes': 4, 'max_qubits': 24}, ...]}. Each entry takes a provider key, an optional group "
            "name, and the provider's own arguments."
        ),
        examples=[{"nodes": [{"provider": "local_cpu", "n_nodes": 4, "max_qubits": 24}]}],
    )

    @field_validator("definition", mode="before")
    @classmethod
    def _accept_a_bare_list(cls, value: Any) -> Any:
        if isinstance(value, Sequence) and not isinstance(value, str | bytes):
            return {"nodes": list(value)}
        return value

    @field_validator("definition")
    @classmethod
    def _check_definition(cls, value: dict[str, Any]) -> dict[str, Any]:
        ClusterBuilder.from_dict(value)  # ClusterConfigError is a ValueError: pydantic reports its message
        for item in value["nodes"]:
            try:
                provider_class(str(item["provider"]))
            except ProviderUnavailableError:
                pass  # the SDK is needed only where the provider's nodes run
            except UnknownProviderError as exc:
                raise ClusterConfigError(str(exc)) from exc
        return value

    @classmethod
    def from_yaml(cls, path: str | Path) -> Self:
        """A block holding the cluster file at ``path`` (not yet saved).

        Raises:
            ClusterConfigError: The file is missing, empty or not YAML.
            pydantic.ValidationError: The definition is invalid.
        """
        import yaml

        file = Path(path)
        if not file.is_file():
            raise ClusterConfigError(f"Cluster file {str(file)!r} does not exist.")
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ClusterConfigError(f"Cluster file {str(file)!r} is not valid YAML: {exc}") from exc
        if data is None:
            raise ClusterConfigError(f"Cluster file {str(file)!r} is empty.")
        return cls(definition=data)

    def builder(self) -> ClusterBuilder:
        """A :class:`ClusterBuilder` holding this definition."""
        return ClusterBuilder.from_dict(self.definition)

    def build_registry(self) -> QPURegistry:
        """Instantiate the providers and nodes.

        Raises:
            UnknownProviderError: A provider key is not installed.
            ProviderUnavailableError: A provider's optional SDK is missing on this machine.
            ClusterConfigError: A provider rejected its arguments, or node ids collide.
        """
        return self.builder().build()
