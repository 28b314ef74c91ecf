"""Run results in object storage, through fsspec URLs.

``file://`` (the default: a folder under the user's data directory) and ``s3://bucket/prefix`` (via
s3fs; endpoint, key and secret from ``storage_options``, a Prefect block or the environment) are
supported. Per run, under ``{base}/runs/{run_key}/``::

    plan.json                 the shard plan
    shards/{shard_id}.json    each completed shard result (reused by a re-run)
    ledger/{shard_id}.json    remote job ids, written before anything waits on them
    counts.parquet            counts as a table (bitstring, count)
    result.json               the QVMResult, written last: its presence means the run is complete
    tables/{name}.parquet     sweep tables and other frames
    files/{name}              artifacts such as a histogram image

Every object is written whole: a local file is written beside its target and renamed over it; an
S3 object is one PUT (or a multipart upload that appears only once complete). A run that dies
leaves no truncated object, and no ``result.json`` until everything else is in place.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from network.errors import StorageError
from network.execution import LedgerEntry, ShardResult
from network.planning import ShardPlan
from network.results import QVMResult

if TYPE_CHECKING:
    import pandas as pd
    from fsspec import AbstractFileSystem

__all__ = ["ResultStore", "StoreLedger", "default_results_url"]

_RUN_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SCHEMES = {"file", "local", "s3", "s3a", "memory", "gs", "gcs", "az", "abfs"}


def default_results_url() -> str:
    """``$QCOS_RESULTS_URL``, else ``file://`` + ``$XDG_DATA_HOME/qcos/results`` (``~/.local/share``)."""
    if os.environ.get("QCOS_RESULTS_URL"):
        return os.environ["QCOS_RESULTS_URL"]
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base, "qcos", "results").resolve().as_uri()


class ResultStore:
    """Reads and writes runs under one fsspec base URL.

    Args:
        url: ``file:///path``, a plain local path, or ``s3://bucket/prefix`` (default:
            :func:`default_results_url`).
        storage_options: Passed to the filesystem (for s3fs: ``key``, ``secret``,
            ``client_kwargs={"endpoint_url": ...}``). Never logged nor written anywhere.

    Raises:
        StorageError: An unsupported scheme, or a filesystem whose package is not installed.
    """

    def __init__(self, url: str | None = None, *, storage_options: Mapping[str, Any] | None = None) -> None:
        import fsspec

        raw = url or default_results_url()
        if "://" not in raw:
            raw = Path(raw).expanduser().resolve().as_uri()
        parts = urlsplit(raw)
        if parts.scheme not in _SCHEMES:
            raise StorageError(
                f"Unsupported storage URL {self._redact(raw)!r}: scheme {parts.scheme!r}; "
                "use file:// or s3://bucket/prefix."
            )
        if parts.username or parts.password:
            raise StorageError("Put storage credentials in storage_options or a block, not in the URL.")
        self._options = dict(storage_options or {})
        try:
            fs, root = fsspec.url_to_fs(raw, **self._options)
        except ImportError as exc:
            raise StorageError(
                f"Storage URL {raw!r} needs a filesystem package that is not installed ({exc})."
            ) from exc
        self.fs: AbstractFileSystem = fs
        self.root = root.rstrip("/")
        self.url = raw.rstrip("/")
        self._local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))

    def options_for(self, url: str) -> dict[str, Any]:
        """Filesystem options to open another ``url`` with this store's credentials: the store's
        own options when both are S3 URLs (the same endpoint and keys), else none."""
        s3 = ("s3://", "s3a://")
        return dict(self._options) if url.startswith(s3) and self.url.startswith(s3) else {}

    @staticmethod
    def _redact(url: str) -> str:
        return re.sub(r"//[^@/]*@", "//***@", url)

    def __repr__(self) -> str:
        return f"ResultStore({self.url!r})"

    # -- paths ----------------------------------------------------------------------------------

    def _run_dir(self, run_key: str) -> str:
        if not isinstance(run_key, str) or not _RUN_KEY.match(run_key):
            raise StorageError(f"Invalid run key {run_key!r}: use letters, digits, '_', '-' and '.'.")
        return posixpath.join(self.root, "runs", run_key)

    def _path(self, run_key: str, *parts: str) -> str:
        return posixpath.join(self._run_dir(run_key), *parts)

    def run_url(self, run_key: str) -> str:
        """URL of a run's folder."""
        return f"{self.url}/runs/{run_key}"

    # -- primitives -----------------------------------------------------------------------------

    def _write(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` whole, never leaving a truncated object behind."""
        try:
            if self._local:
                parent = posixpath.dirname(path)
                self.fs.makedirs(parent, exist_ok=True)
                tmp = posixpath.join(parent, f".{posixpath.basename(path)}.{uuid.uuid4().hex}.tmp")
                try:
                    with open(tmp, "wb") as handle:
                        handle.write(data)
                        handle.flush()
                        os.fsync(handle.fileno())
                    os.replace(tmp, path)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
            else:
                self.fs.pipe_file(path, data)  # one PUT: the object exists only once complete
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"Could not write {self._display(path)}: {type(exc).__name__}: {exc}") from exc

    def _read(self, path: str) -> bytes | None:
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise StorageError(f"Could not read {self._display(path)}: {type(exc).__name__}: {exc}") from exc
        return bytes(data)

    def _listdir(self, path: str) -> list[str]:
        """Paths under ``path``, listed afresh: s3fs caches listings, and another process (a worker,
        a second run) may have written since this one last looked."""
        self.fs.invalidate_cache(path)
        return [str(entry) for entry in self.fs.ls(path, detail=False)]

    def _display(self, path: str) -> str:
        rel = path[len(self.root) :].lstrip("/") if path.startswith(self.root) else path
        return f"{self.url}/{rel}"

    def _write_json(self, path: str, obj: Any) -> None:
        self._write(path, json.dumps(obj, indent=1, sort_keys=True).encode())

    def _read_json(self, path: str) -> Any:
        data = self._read(path)
        if data is None:
            return None
        try:
            return json.loads(data)
        except json.JSONDecodeError as exc:
            raise StorageError(f"{self._display(path)} is not valid JSON: {exc}") from exc

    # -- runs -----------------------------------------------------------------------------------

    def write_plan(self, plan: ShardPlan) -> str:
        path = self._path(plan.run_key, "plan.json")
        self._write_json(path, plan.to_dict())
        return self._display(path)

    def read_plan(self, run_key: str) -> ShardPlan | None:
        data = self._read_json(self._path(run_key, "plan.json"))
        return None if data is None else ShardPlan.from_dict(data)

    def remember_plan(self, key: str, plan: ShardPlan) -> None:
        """Note that the planning request ``key`` (:func:`~network.planning.plan_key`) gave ``plan``."""
        self._write_json(self._plan_index(key), {"run_key": plan.run_key})

    def find_plan(self, key: str) -> ShardPlan | None:
        """The plan an earlier run made for the planning request ``key``, if it was stored and still reads."""
        index = self._read_json(self._plan_index(key))
        if not isinstance(index, dict) or not isinstance(index.get("run_key"), str):
            return None
        try:
            return self.read_plan(index["run_key"])
        except (StorageError, KeyError, TypeError, ValueError):  # a plan of an older layout: plan again
            return None

    def _plan_index(self, key: str) -> str:
        if not _NAME.match(key):
            raise StorageError(f"Invalid plan key {key!r}.")
        return posixpath.join(self.root, "plans", f"{key}.json")

    def write_result(self, result: QVMResult) -> str:
        """Persist a run: plan, shard results, counts, then ``result.json`` last.

        Returns:
            The URL of the run's folder.
        """
        run_key = result.plan.run_key
        self.write_plan(result.plan)
        for shard in result.shard_results:
            self.save_shard_result(run_key, shard)
        if result.counts:
            self.write_table(
                run_key, "counts", _counts_frame(result.counts), path=self._path(run_key, "counts.parquet")
            )
        if result.quasi_distribution:
            import pandas as pd

            quasi = pd.DataFrame(
                {"bitstring": list(result.quasi_distribution), "quasi": list(result.quasi_distribution.values())}
            )
            self.write_table(
                run_key, "quasi_distribution", quasi, path=self._path(run_key, "quasi_distribution.parquet")
            )
        self._write_json(self._path(run_key, "result.json"), result.to_dict())
        return self.run_url(run_key)

    def read_result(self, run_key: str) -> QVMResult:
        """The completed result of a run.

        Raises:
            StorageError: The run does not exist or is not complete.
        """
        data = self._read_json(self._path(run_key, "result.json"))
        if data is None:
            raise StorageError(f"No completed run {run_key!r} in {self.url} (no result.json).")
        return QVMResult.from_dict(data)

    def has_result(self, run_key: str) -> bool:
        return bool(self.fs.exists(self._path(run_key, "result.json")))

    def run_keys(self, prefix: str = "") -> list[str]:
        """Run folders whose key starts with ``prefix``, sorted, complete or not (a nightly history's
        tables, a sweep's)."""
        base = posixpath.join(self.root, "runs")
        try:
            entries = self._listdir(base)
        except FileNotFoundError:
            return []
        keys = sorted(posixpath.basename(e.rstrip("/")) for e in entries)
        return [k for k in keys if _RUN_KEY.match(k) and k.startswith(prefix)]

    def list_runs(self) -> list[str]:
        """Run keys with a completed result, sorted."""
        base = posixpath.join(self.root, "runs")
        try:
            entries = self._listdir(base)
        except FileNotFoundError:
            return []
        keys = sorted(posixpath.basename(e.rstrip("/")) for e in entries)
        return [k for k in keys if _RUN_KEY.match(k) and self.has_result(k)]

    # -- shard results (the executor's ShardCache) ----------------------------------------------

    def save_shard_result(self, run_key: str, result: ShardResult) -> None:
        self._write_json(self._path(run_key, "shards", f"{int(result.shard_id)}.json"), result.to_dict())

    def load_shard_result(self, run_key: str, shard_id: int) -> ShardResult | None:
        data = self._read_json(self._path(run_key, "shards", f"{int(shard_id)}.json"))
        return None if data is None else ShardResult.from_dict(data)

    # -- ledger ---------------------------------------------------------------------------------

    def ledger(self) -> StoreLedger:
        """A :class:`~network.execution.JobLedger` kept in this store (one object per shard)."""
        return StoreLedger(self)

    def read_ledger(self, run_key: str) -> list[LedgerEntry]:
        base = self._path(run_key, "ledger")
        try:
            names = self._listdir(base)
        except FileNotFoundError:
            return []
        entries = []
        for name in sorted(names):
            if name.endswith(".json"):
                data = self._read_json(name)
                if data is not None:
                    entries.append(LedgerEntry.from_dict(data))
        return sorted(entries, key=lambda e: e.shard_id)

    # -- tables and files -----------------------------------------------------------------------

    def write_table(self, run_key: str, name: str, frame: pd.DataFrame, *, path: str | None = None) -> str:
        """Write a DataFrame as parquet under ``tables/{name}.parquet``; returns its URL."""
        if path is None:
            self._check_name(name)
            if name == "counts":
                raise StorageError("The table name 'counts' is reserved for the run's counts; choose another name.")
            path = self._path(run_key, "tables", f"{name}.parquet")
        buffer = io.BytesIO()
        try:
            frame.to_parquet(buffer, index=False)
        except ImportError as exc:
            raise StorageError(f"Writing parquet needs pyarrow: {exc}") from exc
        self._write(path, buffer.getvalue())
        return self._display(path)

    def read_table(self, run_key: str, name: str) -> pd.DataFrame:
        import pandas as pd

        if name == "counts":
            path = self._path(run_key, "counts.parquet")
        else:
            self._check_name(name)  # the same names write_table accepts: no '..', no '/'
            path = self._path(run_key, "tables", f"{name}.parquet")
        data = self._read(path)
        if data is None:
            raise StorageError(f"No table {name!r} in run {run_key!r} ({self._display(path)}).")
        return pd.read_parquet(io.BytesIO(data))

    def write_file(self, run_key: str, name: str, data: bytes) -> str:
        """Write an artifact file under ``files/{name}``; returns its URL."""
        self._check_name(name)
        path = self._path(run_key, "files", name)
        self._write(path, data)
        return self._display(path)

    def read_file(self, run_key: str, name: str) -> bytes:
        self._check_name(name)
        data = self._read(self._path(run_key, "files", name))
        if data is None:
            raise StorageError(f"No file {name!r} in run {run_key!r}.")
        return data

    @staticmethod
    def _check_name(name: str) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise StorageError(f"Invalid object name {name!r}: use letters, digits, '_', '-' and '.'.")


class StoreLedger:
    """Ledger entries as ``runs/{run_key}/ledger/{shard_id}.json``: one object per shard, so
    concurrent shards never rewrite each other's entries."""

    def __init__(self, store: ResultStore) -> None:
        self.store = store

    def get(self, run_key: str, shard_id: int) -> LedgerEntry | None:
        data = self.store._read_json(self.store._path(run_key, "ledger", f"{int(shard_id)}.json"))
        return None if data is None else LedgerEntry.from_dict(data)

    def record(self, entry: LedgerEntry) -> None:
        self.store._write_json(
            self.store._path(entry.run_key, "ledger", f"{int(entry.shard_id)}.json"), entry.to_dict()
        )


def _counts_frame(counts: Mapping[str, int]) -> pd.DataFrame:
    import pandas as pd

    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return pd.DataFrame({"bitstring": [k for k, _ in items], "count": [v for _, v in items]}).astype(
        {"bitstring": "string", "count": "int64"}
    )
