"""Loading saved blocks and reading their secrets, with errors that name what is missing."""

from __future__ import annotations

from typing import TypeVar, cast

from prefect.blocks.core import Block
from pydantic import SecretStr

from network.errors import QVMError

__all__ = ["BlockNotFoundError", "MissingSecretError", "load_block", "require_secret", "describe_block"]

B = TypeVar("B", bound=Block)

# Prefect 3 raises a bare ValueError for a missing document; this is how its message starts.
_NOT_FOUND = "Unable to find block document"


class BlockNotFoundError(QVMError, LookupError):
    """No saved block of the requested type has the requested name.

    Attributes:
        block_type: The block type's name, e.g. ``"QCOS Cluster"``.
        name: The document name that was asked for.
    """

    def __init__(self, message: str, *, block_type: str, name: str) -> None:
        super().__init__(message)
        self.block_type = block_type
        self.name = name


class MissingSecretError(QVMError, ValueError):
    """A block's secret field is unset or empty where the client needs it.

    Attributes:
        block: The block as :func:`describe_block` names it (its saved name, else its type).
        field: The field that is missing.
    """

    def __init__(self, message: str, *, block: str, field: str) -> None:
        super().__init__(message)
        self.block = block
        self.field = field

    @classmethod
    def for_field(cls, block: Block, field_name: str, problem: str | None = None) -> MissingSecretError:
        """The error for ``field_name`` of ``block``; ``problem`` defaults to "has no {field_name}"."""
        label = describe_block(block)
        problem = problem or (
            f"has no {field_name}: set it in the Prefect UI or save the block again with {field_name}=..."
        )
        return cls(f"{label[0].upper()}{label[1:]} {problem}", block=label, field=field_name)


def describe_block(block: Block) -> str:
    """``"IBM Quantum Credentials block 'ibm-prod'"`` once saved, ``"unsaved IBM Quantum Credentials block"`` before."""
    type_name = block.get_block_type_name()
    name = block._block_document_name
    return f"{type_name} block {name!r}" if name else f"unsaved {type_name} block"


def load_block(block_cls: type[B], name: str) -> B:
    """Load the saved block ``name`` of type ``block_cls`` from the Prefect API.

    Args:
        block_cls: The block class, e.g. :class:`~blocks.QCOSCluster`.
        name: The block document's name (as in ``prefect block ls``).

    Raises:
        BlockNotFoundError: No block of that type has that name.
    """
    try:
        # _sync: async_dispatch would otherwise hand back a coroutine when called inside an event loop
        block = block_cls.load(name, _sync=True)  # type: ignore[call-arg]
    except ValueError as exc:
        if _NOT_FOUND not in str(exc):
            raise
        type_name = block_cls.get_block_type_name()
        raise BlockNotFoundError(
            f"No {type_name!r} block named {name!r} (block type slug {block_cls.get_block_type_slug()!r}). "
            "Create it in the Prefect UI or with .save(name), and check `prefect block ls`.",
            block_type=type_name,
            name=name,
        ) from exc
    return cast(B, block)


def require_secret(block: Block, field_name: str) -> str:
    """The plain value of the secret field ``field_name`` of ``block``.

    Raises:
        MissingSecretError: The field is unset or empty; the message names the block and the field.
        AttributeError: ``block`` has no such field.
    """
    if field_name not in type(block).model_fields:
        raise AttributeError(f"{type(block).__name__} has no field {field_name!r}.")
    value = getattr(block, field_name)
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not text:
        raise MissingSecretError.for_field(block, field_name)
    return str(text)
