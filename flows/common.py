"""Resolving flow parameters (cluster, storage, circuit) into the core's objects."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from network.errors import SpecError
from network.node_providers import ClusterBuilder, QPURegistry, QVMMode
from network.storage import ResultStore

__all__ = ["resolve_cluster", "resolve_store", "load_circuit_text", "load_bindings", "default_cluster", "parse_mode"]


def default_cluster() -> QPURegistry:
    """One ``local_cpu`` node per core."""
    return ClusterBuilder().add("local_cpu", n_nodes=os.cpu_count() or 1).build()


def resolve_cluster(cluster: Any) -> QPURegistry:
    """A ``QCOSCluster`` block, a cluster block name, a cluster YAML path, or ``None`` for the default
    local cluster.

    Raises:
        BlockNotFoundError: No saved block of that name.
        ClusterConfigError: The definition is invalid.
    """
    if not cluster:
        return default_cluster()
    if not isinstance(cluster, str):
        return cluster.build_registry()
    if cluster.endswith((".yaml", ".yml")) or os.sep in cluster:
        return ClusterBuilder.from_yaml(Path(cluster)).build()
    from blocks import QCOSCluster, load_block

    block = load_block(QCOSCluster, cluster)
    return block.build_registry()


def resolve_store(storage: Any) -> ResultStore:
    """A ``QCOSResultStorage`` block, a result-storage block name, an fsspec URL / path, or ``None``
    for the default store."""
    if not storage:
        return ResultStore()
    if not isinstance(storage, str):
        return storage.get_store()
    if "://" in storage or os.sep in storage:
        return ResultStore(storage)
    from blocks import QCOSResultStorage, load_block

    return load_block(QCOSResultStorage, storage).get_store()


def load_circuit_text(circuit: str, store: ResultStore | None = None) -> str:
    """QASM text as given, or read from a path / URL (S3 URLs use the store's credentials).

    Raises:
        SpecError: The file cannot be read.
    """
    if "OPENQASM" in circuit or ";" in circuit:
        return circuit
    try:
        return _read_input(circuit, store, "the circuit").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"Cannot read the circuit from {circuit!r}: {exc}") from exc


def _read_input(location: str, store: ResultStore | None, what: str) -> bytes:
    """Bytes of a path or URL; S3 URLs use the store's credentials.

    Raises:
        SpecError: The file cannot be read.
    """
    import fsspec

    options = store.options_for(location) if store is not None else {}
    try:
        with fsspec.open(location, "rb", **options) as handle:
            return bytes(handle.read())
    except (OSError, ValueError) as exc:
        raise SpecError(f"Cannot read {what} from {location!r}: {exc}") from exc


def load_bindings(location: str, store: ResultStore | None = None) -> list[dict[str, float]]:
    """Sweep bindings from a JSON list of mappings, a CSV or a parquet table (one column per parameter).

    Raises:
        SpecError: The file cannot be read or has the wrong shape.
    """
    import io
    import json

    import pandas as pd

    data = _read_input(location, store, "sweep bindings")
    try:
        if location.endswith(".csv"):
            rows = pd.read_csv(io.BytesIO(data)).to_dict(orient="records")
        elif location.endswith(".parquet"):
            rows = pd.read_parquet(io.BytesIO(data)).to_dict(orient="records")
        else:
            rows = json.loads(data)
    except Exception as exc:
        raise SpecError(f"Sweep bindings in {location!r} are not valid JSON, CSV or parquet: {exc}") from exc
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise SpecError(f"Sweep bindings in {location!r} must be a list of {{parameter: value}} mappings.")
    return [{str(k): v for k, v in r.items()} for r in rows]


def parse_mode(mode: str) -> QVMMode:
    try:
        return QVMMode.parse(mode)
    except ValueError as exc:
        raise SpecError(str(exc)) from None
