"""The project's exception hierarchy.

Every error the QVM raises on purpose derives from :class:`QVMError`. Most also derive from the
built-in exception a caller would naturally catch (``ValueError`` for bad input, ``LookupError``
for unknown names, ``ImportError`` for a missing optional SDK), so ``except ValueError`` keeps
working for code that does not know about this package.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = [
    "QVMError",
    "SpecError",
    "CircuitParseError",
    "CircuitCompileError",
    "ClusterConfigError",
    "UnknownProviderError",
    "ProviderUnavailableError",
    "NodeUnavailableError",
    "NodeCapacityError",
    "PlanningError",
    "ExecutionError",
    "TransientExecutionError",
    "JobTimeoutError",
    "ProviderResultError",
    "StorageError",
    "library_errors",
]


class QVMError(Exception):
    """Root of every error raised on purpose by the distributed QVM."""


class SpecError(QVMError, ValueError):
    """A :class:`~network.distributed_qvm.VirtualCircuitSpec` is invalid (shots, widths, seed...)."""


class CircuitParseError(SpecError):
    """OpenQASM text could not be parsed into a circuit."""


class CircuitCompileError(SpecError):
    """A circuit cannot be lowered or translated: an opaque gate with no definition, a gate a
    node's basis cannot express, classical control the cutter cannot defer."""


class ClusterConfigError(QVMError, ValueError):
    """A cluster definition (builder call, YAML file or dict) is invalid."""


class UnknownProviderError(QVMError, LookupError):
    """No provider is registered under the requested key."""

    def __str__(self) -> str:  # LookupError would otherwise repr() the message like a KeyError
        return str(self.args[0]) if self.args else ""


class ProviderUnavailableError(QVMError, ImportError):
    """A provider exists but its optional SDK is not installed."""


class NodeUnavailableError(QVMError, RuntimeError):
    """A node cannot run in the requested mode on this machine (e.g. no GPU outside EMULATED)."""


class NodeCapacityError(QVMError, ValueError):
    """A circuit is wider than the node it was sent to; it is never run there."""


class PlanningError(QVMError, ValueError):
    """No strategy can place the circuit on the cluster."""


class ExecutionError(QVMError, RuntimeError):
    """A shard failed on its node."""


class TransientExecutionError(ExecutionError):
    """A failure worth retrying (network, timeout, a node that went away); others are permanent."""


class JobTimeoutError(ExecutionError):
    """A job did not finish within its node's ``job_timeout`` (a wait, a request, a poll: every wait
    has a deadline).

    Attributes:
        job_id: The provider's job id, when one was known.
    """

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class StorageError(QVMError, OSError):
    """Result storage could not be read or written (bad URL, missing run, unreachable bucket)."""


class ProviderResultError(ExecutionError):
    """A provider returned counts that do not match the circuit (width, keys, total shots)."""


@contextlib.contextmanager
def library_errors(error: type[QVMError], what: str) -> Iterator[None]:
    """Translate anything a library call raises into ``error``, its message prefixed by ``what``.

    Qiskit's Rust code panics with ``pyo3_runtime.PanicException``, which derives from
    ``BaseException`` and so escapes ``except Exception``: it is caught here explicitly, like
    every other exception except interrupts and exits. Errors of this project pass unchanged.

    Raises:
        error: The library raised; the original is chained as ``__cause__``.
    """
    try:
        yield
    except QVMError:
        raise
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # PanicException is a BaseException
        kind = "Qiskit panicked" if type(exc).__name__ == "PanicException" else type(exc).__name__
        raise error(f"{what}: {kind}: {exc}") from exc
