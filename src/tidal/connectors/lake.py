"""The data lake: Hive-partitioned Parquet datasets and Delta Lake tables, so stored streams
are queryable by DuckDB, Polars and Spark.

``parquet_dataset`` writes ``path/date=2026-01-01/hour=3/part-....parquet`` (the partition
columns live in the directory names, not in the files). With checkpoints each checkpoint's
files are published exactly once, in numbered steps:

1. write every file of the checkpoint into a staging directory beside the dataset
   (``.<name>.tidal/staging/``, which readers of the dataset never see), fsynced;
2. write the checkpoint's commit record ``.<name>.tidal/commits/<checkpoint>.json``
   (temporary name, fsync, atomic rename): from here on the checkpoint *is* committed;
3. rename each staged file into the dataset (same file system: atomic).

A crash before 2 leaves only staged files, removed at the next start (and recovery applies
the checkpoint again); a crash during 3 is finished at the next start by replaying the
commit record. Final names carry the checkpoint id, so no step ever writes a file twice.

``delta`` appends through ``deltalake.write_deltalake``; each checkpoint's commit carries an
*application transaction* ``(app_id, checkpoint id)`` (Delta's idempotent-writer feature)
in the same atomic log entry as the data, so a checkpoint applied again is recognized and
skipped.

Without checkpoints both sinks buffer rows and write them at most once a second (and at
the end), so that a fast stream does not become thousands of tiny files or table versions.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from abc import abstractmethod
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import orjson
import polars as pl

from tidal.connectors.base import SinkContext, TransactionalSink
from tidal.errors import ConfigError, SinkError

__all__ = ["DeltaSink", "ParquetDataset"]

_KEEP_COMMITS = 20
_FLUSH_S = 1.0
_FLUSH_ROWS = 500_000
_NULL = "__HIVE_DEFAULT_PARTITION__"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hive_dir(columns: list[str], values: tuple[Any, ...] | list[Any], default: str = _NULL) -> str:
    """The Hive-style directory ``a=1/b=x`` of one partition (``default`` for a null value)."""
    return "/".join(f"{c}={_hive_value(v, default)}" for c, v in zip(columns, values, strict=True))


def _hive_value(value: Any, default: str = _NULL) -> str:
    # like Hive and Spark: percent-escape what a directory name cannot hold
    return default if value is None or value == "" else quote(str(value), safe=" -_.:+@")


class _Buffered(TransactionalSink):
    """Buffers rows without checkpoints and writes them once a second and at the end."""

    def __init__(self, partition_by: str | list[str] | None) -> None:
        self.partition_by = [partition_by] if isinstance(partition_by, str) else list(partition_by or [])
        self.buffer: list[pl.DataFrame] = []
        self.buffered = 0
        self.last_write = time.monotonic()
        self.exactly_once = False
        self.sink_name = self.name

    def open(self, ctx: SinkContext) -> None:
        self.exactly_once = ctx.exactly_once
        self.sink_name = ctx.sink

    def check(self, batch: pl.DataFrame) -> None:
        missing = [c for c in self.partition_by if c not in batch.columns]
        if missing:
            raise SinkError(f"{self.name} sink {self.sink_name!r}: partition column(s) {missing} "
                            f"not in the rows ({batch.columns})")

    def write(self, batch: pl.DataFrame) -> None:
        if batch.height:
            self.check(batch)
            self.buffer.append(batch)
            self.buffered += batch.height

    def flush(self, force: bool = False) -> None:
        if not self.buffer:
            return
        if force or self.buffered >= _FLUSH_ROWS or time.monotonic() - self.last_write >= _FLUSH_S:
            rows = pl.concat(self.buffer, how="diagonal_relaxed")
            self.buffer, self.buffered = [], 0
            self.write_now(rows)
            self.last_write = time.monotonic()

    @abstractmethod
    def write_now(self, rows: pl.DataFrame) -> None:
        """Write ``rows`` to the target now (without checkpoints)."""

    def close(self) -> None:
        self.flush(force=True)


class ParquetDataset(_Buffered):
    """A Hive-partitioned Parquet dataset; see the module docstring for the commit protocol.

    The dataset directory holds only the published Parquet files (so ``pl.scan_parquet(path)``
    works on it); files being written and the commit records live beside it, in
    ``.<name>.tidal/``.
    """

    name = "parquet_dataset"

    def __init__(self, path: str | os.PathLike[str], partition_by: str | list[str] | None,
                 compression: str) -> None:
        super().__init__(partition_by)
        self.path = Path(path)
        self.compression = compression
        meta = self.path.parent / f".{self.path.name}.tidal"
        self.commits = meta / "commits"
        self.staging = meta / "staging"

    def open(self, ctx: SinkContext) -> None:
        super().open(ctx)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.commits.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"sink {ctx.sink!r} cannot create the dataset directory "
                            f"{str(self.path)!r}: {exc}") from exc
        self._recover()

    def _recover(self) -> None:
        """Finish publishing committed checkpoints; drop what uncommitted attempts left."""
        for record in sorted(self.commits.glob("*.json")):
            for rel in orjson.loads(record.read_bytes())["files"]:
                self._publish(rel)
        shutil.rmtree(self.staging, ignore_errors=True)

    def _publish(self, rel: str) -> None:
        staged = self.staging / rel
        if staged.exists():  # not yet renamed (a rename done before a crash is not redone)
            (self.path / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, self.path / rel)

    def _files(self, rows: pl.DataFrame, stem: str) -> list[tuple[str, pl.DataFrame]]:
        """(relative directory/name, rows) for each partition of ``rows``."""
        if not self.partition_by:
            return [(f"{stem}.parquet", rows)]
        out = []
        groups = rows.partition_by(self.partition_by, as_dict=True, include_key=False,
                                   maintain_order=True)
        for values, part in groups.items():
            subdir = hive_dir(self.partition_by, values)
            out.append((f"{subdir}/{stem}.parquet", part))
        return out

    def _stage(self, rel: str, rows: pl.DataFrame) -> str:
        staged = self.staging / rel
        staged.parent.mkdir(parents=True, exist_ok=True)
        rows.write_parquet(staged, compression=self.compression)  # type: ignore[arg-type]
        with open(staged, "rb") as f:
            os.fsync(f.fileno())
        return rel

    def write_now(self, rows: pl.DataFrame) -> None:
        stem = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"
        for rel, part in self._files(rows, stem):
            self._publish(self._stage(rel, part))

    def committed_checkpoint(self) -> int | None:
        ids = [int(p.stem) for p in self.commits.glob("*.json")]
        return max(ids, default=None)

    def apply(self, rows: pl.DataFrame, checkpoint_id: int) -> None:
        if (self.committed_checkpoint() or 0) >= checkpoint_id:
            return
        if rows.height:
            self.check(rows)
        # 1. every file staged outside the dataset, fsynced
        files = ([self._stage(rel, part) for rel, part in self._files(rows, f"part-{checkpoint_id:010d}")]
                 if rows.height else [])
        for d in {(self.staging / rel).parent for rel in files}:
            _fsync_dir(d)
        # 2. the commit record, atomically: the checkpoint is now committed
        record = self.commits / f"{checkpoint_id:010d}.json"
        tmp = record.with_name(record.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(orjson.dumps({"checkpoint": checkpoint_id, "files": files}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, record)
        _fsync_dir(self.commits)
        # 3. publish the files into the dataset
        for rel in files:
            self._publish(rel)
        for old in sorted(self.commits.glob("*.json"))[:-_KEEP_COMMITS]:
            old.unlink(missing_ok=True)


class DeltaSink(_Buffered):
    """Appends rows to a Delta Lake table; see the module docstring."""

    name = "delta"

    def __init__(self, path: str | os.PathLike[str], partition_by: str | list[str] | None,
                 mode: Literal["append", "overwrite"], storage_options: dict[str, str] | None) -> None:
        if mode not in ("append", "overwrite"):
            raise ConfigError(f"delta sink mode must be 'append' or 'overwrite', not {mode!r}")
        super().__init__(partition_by)
        self.path = os.fspath(path)
        self.mode = mode
        self.storage_options = storage_options
        self.app_id = "tidal"

    def open(self, ctx: SinkContext) -> None:
        super().open(ctx)
        try:
            import deltalake  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ConfigError("the delta sink needs deltalake: pip install 'tidal[delta]'") from exc
        self.app_id = f"tidal/{ctx.flow}/{ctx.sink}"
        if "://" not in self.path:
            Path(self.path).mkdir(parents=True, exist_ok=True)

    def _table(self) -> Any:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(self.path, storage_options=self.storage_options)
        except TableNotFoundError:
            return None

    def _write(self, rows: pl.DataFrame, checkpoint_id: int | None) -> None:
        from deltalake import CommitProperties, Transaction, write_deltalake

        props = None
        if checkpoint_id is not None:
            props = CommitProperties(app_transactions=[Transaction(self.app_id, checkpoint_id)],
                                     custom_metadata={"tidal.checkpoint": str(checkpoint_id),
                                                      "tidal.sink": self.app_id})
        try:
            write_deltalake(self.path, rows.to_arrow(), mode=self.mode,
                            partition_by=self.partition_by or None, commit_properties=props,
                            storage_options=self.storage_options,
                            schema_mode="merge" if self.mode == "append" else "overwrite")
        except Exception as exc:  # deltalake raises several unrelated types
            raise SinkError(f"delta sink {self.sink_name!r} writing {self.path!r}: {exc}") from exc

    def write_now(self, rows: pl.DataFrame) -> None:
        self._write(rows, None)

    def committed_checkpoint(self) -> int | None:
        table = self._table()
        return None if table is None else table.transaction_version(self.app_id)

    def apply(self, rows: pl.DataFrame, checkpoint_id: int) -> None:
        if (self.committed_checkpoint() or 0) >= checkpoint_id:
            return
        if rows.height == 0:
            return  # nothing to append; the next checkpoint with rows records its own id
        self.check(rows)
        self._write(rows, checkpoint_id)
