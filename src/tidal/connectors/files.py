"""Files: JSON lines, CSV and Parquet, as sources (bounded, or tailing with ``follow``) and
as sinks.

A path may be a glob; each matching file is one partition, read in order. A source's
position is the byte offset (JSON lines, CSV) or row number (Parquet) after the last row
returned, so a restarted flow continues exactly where it stopped. Lines that cannot be
parsed go to the dead letters with their file and byte offset.
"""

from __future__ import annotations

import csv as csvmod
import glob
import io
import os
from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from tidal._fsutil import write_json_atomic
from tidal.connectors.base import (
    SinkContext,
    Source,
    SourceContext,
    SourcePartition,
    TransactionalSink,
)
from tidal.errors import SinkError, SourceError

__all__ = ["CsvSink", "JsonLinesSink", "ParquetSink", "csv", "jsonl", "parquet"]

_CHUNK = 4 << 20


def _expand(path: str | os.PathLike[str], follow: bool) -> list[str]:
    p = os.fspath(path)
    if glob.has_magic(p):
        files = sorted(glob.glob(p))
        if not files and not follow:
            raise SourceError(f"no file matches {p!r}; check the path (relative to {os.getcwd()})")
        return files
    if not follow and not os.path.exists(p):
        raise SourceError(f"file {p!r} does not exist (relative to {os.getcwd()})")
    return [p]


class _LinePartition(SourcePartition):
    """Reads a growing text file in byte chunks cut at line ends."""

    def __init__(self, path: str, position: int | None, follow: bool, ctx: SourceContext,
                 skip_header: bool) -> None:
        self.path, self.follow, self.ctx = path, follow, ctx
        self.offset = position or 0
        self.file: io.BufferedReader | None = None
        self.finished = False
        self.header: list[str] | None = None
        self.skip_header = skip_header

    def _open(self) -> io.BufferedReader | None:
        if self.file is None:
            try:
                self.file = open(self.path, "rb")  # noqa: SIM115 - kept open while reading
            except FileNotFoundError:
                if self.follow:
                    return None
                raise
            if self.skip_header:
                first = self.file.readline()
                self.header = next(csvmod.reader([first.decode()])) if first else None
                if self.offset == 0:
                    self.offset = len(first)
        return self.file

    def poll(self, max_rows: int) -> pl.DataFrame | None:
        if self.finished:
            return None
        f = self._open()
        if f is None:
            return None
        if self.skip_header and self.header is None:
            f.close()
            self.file = None  # file still empty: try again on the next poll
            if not self.follow:
                self.finished = True
            return None
        f.seek(self.offset)
        data = f.read(min(_CHUNK, max(max_rows, 1) * 256))
        if not data:
            if not self.follow:
                self.finished = True
            return None
        end = data.rfind(b"\n")
        if end < 0:
            if self.follow and len(data) < _CHUNK:
                return None  # a line still being written
            end = len(data) - 1
        elif not self.follow and len(data) < min(_CHUNK, max(max_rows, 1) * 256):
            end = len(data) - 1  # last chunk of a bounded file: take the unterminated tail too
        chunk = data[: end + 1]
        start = self.offset
        self.offset += len(chunk)
        return self.parse(chunk, start)

    @abstractmethod
    def parse(self, chunk: bytes, start: int) -> pl.DataFrame | None:
        """Rows of ``chunk`` (whole lines starting at byte ``start``); bad lines to dead letters."""

    def reject(self, line: bytes, reason: str, offset: int) -> None:
        self.ctx.dead_letter(line.decode(errors="replace"), reason,
                             {"file": self.path, "offset": offset})

    @property
    def done(self) -> bool:
        return self.finished

    def position(self) -> int:
        return self.offset

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def json_object(line: bytes | str) -> dict[str, Any]:
    """The JSON object on ``line``; ``ValueError`` saying why when it is not one."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


class _JsonLines(_LinePartition):
    def parse(self, chunk: bytes, start: int) -> pl.DataFrame | None:
        if not chunk.strip():
            return None
        try:
            return pl.read_ndjson(chunk, infer_schema_length=None)
        except (pl.exceptions.PolarsError, ValueError, OSError):
            pass
        rows, offset = [], start
        for line in chunk.split(b"\n"):
            if line.strip():
                try:
                    rows.append(json_object(line))
                except ValueError as exc:
                    self.reject(line, f"invalid JSON line: {exc}", offset)
            offset += len(line) + 1
        if not rows:
            return None
        try:
            return pl.from_dicts(rows, infer_schema_length=None)
        except (pl.exceptions.PolarsError, TypeError, ValueError):
            return pl.from_dicts([{k: None if v is None else str(v) for k, v in r.items()} for r in rows])


class _Csv(_LinePartition):
    def __init__(self, *args: Any, options: dict[str, Any]) -> None:
        super().__init__(*args, skip_header=True)
        self.options = options

    def _short_lines(self, chunk: bytes) -> bool:
        """Whether a line of ``chunk`` has fewer separators than the header needs (Polars
        would fill its missing fields with nulls instead of refusing it). Vectorized: the
        separators counted per line with NumPy; a quoted separator only makes a count
        larger, so no short line is missed."""
        assert self.header is not None
        sep = str(self.options.get("separator", ",")).encode()[:1] or b","
        data = np.frombuffer(chunk, dtype=np.uint8)
        ends = np.flatnonzero(data == 10)
        if not chunk.endswith(b"\n"):
            ends = np.append(ends, len(data))
        if not len(ends):
            return False
        seps = np.flatnonzero(data == sep[0])
        starts = np.concatenate(([0], ends[:-1] + 1))
        counts = np.searchsorted(seps, ends) - np.searchsorted(seps, starts)
        blank = ends - starts <= 1  # "" or a lone "\r"
        return bool(np.any((counts < len(self.header) - 1) & ~blank))

    def parse(self, chunk: bytes, start: int) -> pl.DataFrame | None:
        assert self.header is not None
        try:
            frame = pl.read_csv(chunk, has_header=False, new_columns=self.header, **self.options)
            # a short line leaves its last field null: only then look at the lines
            if not frame[self.header[-1]].null_count() or not self._short_lines(chunk):
                return frame
        except (pl.exceptions.PolarsError, ValueError):
            pass
        good, offset = [], start
        delimiter = str(self.options.get("separator", ","))
        for line in chunk.split(b"\n"):
            if line.strip():
                fields = next(csvmod.reader([line.decode(errors="replace")], delimiter=delimiter))
                if len(fields) == len(self.header):
                    good.append(line)
                else:
                    self.reject(line, f"expected {len(self.header)} fields, found {len(fields)}", offset)
            offset += len(line) + 1
        if not good:
            return None
        return pl.read_csv(b"\n".join(good), has_header=False, new_columns=self.header,
                           infer_schema_length=None, **self.options)


class _FileSource(Source):
    def __init__(self, path: str | os.PathLike[str], follow: bool) -> None:
        self.path = os.fspath(path)
        self.follow = follow
        self.files = _expand(self.path, follow)

    def partitions(self) -> list[str]:
        return self.files

    @property
    def bounded(self) -> bool:
        return not self.follow


class JsonLines(_FileSource):
    """JSON objects, one per line."""

    name = "jsonl"

    def open(self, partition: str, position: Any, ctx: SourceContext) -> SourcePartition:
        return _JsonLines(partition, position, self.follow, ctx, skip_header=False)

    def schema(self) -> pl.Schema | None:
        for f in self.files:
            try:
                with open(f, "rb") as fh:
                    head = b"".join(fh.readline() for _ in range(100))
                return pl.read_ndjson(head).schema if head.strip() else None
            except (OSError, pl.exceptions.PolarsError, ValueError):
                return None
        return None


class Csv(_FileSource):
    """Comma-separated values with a header line."""

    name = "csv"

    def __init__(self, path: str | os.PathLike[str], follow: bool, options: dict[str, Any]) -> None:
        super().__init__(path, follow)
        self.options = options

    def open(self, partition: str, position: Any, ctx: SourceContext) -> SourcePartition:
        return _Csv(partition, position, self.follow, ctx, options=self.options)

    def schema(self) -> pl.Schema | None:
        for f in self.files:
            try:
                return pl.read_csv(f, n_rows=100, **self.options).schema
            except (OSError, pl.exceptions.PolarsError, ValueError):
                return None
        return None


class _ParquetPartition(SourcePartition):
    def __init__(self, path: str, position: int | None) -> None:
        self.file = pq.ParquetFile(path)
        self.offset = position or 0
        self.total = self.file.metadata.num_rows
        self.batches = None

    def poll(self, max_rows: int) -> pa.Table | None:
        if self.offset >= self.total:
            return None
        if self.batches is None:
            self.batches = self.file.iter_batches(batch_size=max_rows)
            skip = self.offset
            self.buffer: pa.Table | None = None
            while skip > 0:
                b = next(self.batches)
                if b.num_rows > skip:
                    self.buffer = pa.Table.from_batches([b.slice(skip)])
                skip -= b.num_rows
        if self.buffer is not None:
            out, self.buffer = self.buffer, None
        else:
            out = pa.Table.from_batches([next(self.batches)])
        self.offset += out.num_rows
        return out

    @property
    def done(self) -> bool:
        return self.offset >= self.total

    def position(self) -> int:
        return self.offset


class Parquet(_FileSource):
    """Parquet files (bounded)."""

    name = "parquet"

    def open(self, partition: str, position: Any, ctx: SourceContext) -> SourcePartition:
        return _ParquetPartition(partition, position)

    def schema(self) -> pl.Schema | None:
        return pl.read_parquet_schema(self.files[0]) if self.files else None  # type: ignore[return-value]


def jsonl(path: str | os.PathLike[str], follow: bool = False) -> JsonLines:
    """Read JSON lines from ``path`` (a file or glob); ``follow=True`` tails growing files."""
    return JsonLines(path, follow)


def csv(path: str | os.PathLike[str], follow: bool = False, **options: Any) -> Csv:
    """Read CSV with a header from ``path``; ``options`` go to ``polars.read_csv``."""
    return Csv(path, follow, options)


def parquet(path: str | os.PathLike[str]) -> Parquet:
    """Read Parquet files from ``path`` (a file or glob)."""
    return Parquet(path, follow=False)


# -- sinks -------------------------------------------------------------------------------------
class _FileSink(TransactionalSink):
    """A text file written batch by batch; exactly-once when the flow checkpoints.

    Without checkpoints rows are appended as they come. With checkpoints each checkpoint's
    rows are appended in one go after the checkpoint is durable, and a small sidecar file
    (``.<name>.commit``) records the checkpoint id and the file length it produced: a
    crash in the middle of an append is cut off at the recorded length when the append
    is repeated, so every row is in the file exactly once.
    """

    def __init__(self, path: str | os.PathLike[str], append: bool) -> None:
        self.path = Path(path)
        self.append = append
        self.file: io.BufferedWriter | None = None
        self.exactly_once = False

    @property
    def marker(self) -> Path:
        return self.path.with_name(f".{self.path.name}.commit")

    def open(self, ctx: SinkContext) -> None:
        self.exactly_once = ctx.exactly_once
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.exactly_once:
                self.file = open(self.path, "ab" if self.append else "wb")  # noqa: SIM115
            elif not self.marker.exists():
                keep = self.path.stat().st_size if self.append and self.path.exists() else 0
                with open(self.path, "ab") as f:
                    f.truncate(keep)
                write_json_atomic(self.marker, {"checkpoint": 0, "length": keep})
        except OSError as exc:
            raise SinkError(f"sink {ctx.sink!r} cannot open {str(self.path)!r}: {exc}") from exc

    @abstractmethod
    def encode(self, batch: pl.DataFrame, out: Any, header: bool) -> None:
        """Write ``batch`` to ``out`` in the file's format."""

    def write(self, batch: pl.DataFrame) -> None:
        assert self.file is not None
        self.encode(batch, self.file, header=self.file.tell() == 0)

    def committed_checkpoint(self) -> int | None:
        return int(orjson.loads(self.marker.read_bytes())["checkpoint"])

    def apply(self, rows: pl.DataFrame, checkpoint_id: int) -> None:
        mark = orjson.loads(self.marker.read_bytes())
        if mark["checkpoint"] >= checkpoint_id:
            return
        with open(self.path, "r+b") as f:
            f.truncate(mark["length"])  # drop what a crashed earlier attempt half-wrote
            f.seek(mark["length"])
            self.encode(rows, f, header=mark["length"] == 0)
            f.flush()
            os.fsync(f.fileno())
            length = f.tell()
        write_json_atomic(self.marker, {"checkpoint": checkpoint_id, "length": length})

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def encode_jsonl(batch: pl.DataFrame, out: Any, header: bool = False) -> None:
    """Write ``batch`` to the binary file ``out`` as JSON lines (datetimes as ISO 8601)."""
    # Polars writes naive datetimes with a space ("2024-01-02 03:04:05"); ISO 8601 wants "T"
    naive = [c for c, t in batch.schema.items() if isinstance(t, pl.Datetime) and t.time_zone is None]
    if naive:
        batch = batch.with_columns(
            pl.col(c).dt.to_string("%Y-%m-%dT%H:%M:%S%.3f" if batch.schema[c].time_unit == "ms"  # type: ignore[union-attr]
                                   else "iso:strict")
            for c in naive
        )
    batch.write_ndjson(out)


def encode_csv(batch: pl.DataFrame, out: Any, header: bool) -> None:
    """Write ``batch`` to the binary file ``out`` as CSV, with a header line if ``header``."""
    batch.write_csv(out, include_header=header)


class JsonLinesSink(_FileSink):
    """Appends rows as JSON lines (datetimes as ISO 8601)."""

    name = "jsonl"

    def encode(self, batch: pl.DataFrame, out: Any, header: bool) -> None:
        encode_jsonl(batch, out)


class CsvSink(_FileSink):
    """Writes rows as CSV with one header line."""

    name = "csv"

    def encode(self, batch: pl.DataFrame, out: Any, header: bool) -> None:
        encode_csv(batch, out, header)


class ParquetSink(TransactionalSink):
    """Parquet output.

    Without checkpoints: one file at ``path``, valid once the flow ends. With checkpoints
    (exactly-once): ``path`` is a directory receiving one ``part-<checkpoint>.parquet`` per
    checkpoint, each written under a temporary name and published by rename on commit;
    read the dataset with ``polars.read_parquet(f"{path}/*.parquet")``.
    """

    name = "parquet"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.writer: pq.ParquetWriter | None = None

    def open(self, ctx: SinkContext) -> None:
        if ctx.exactly_once:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SinkError(
                    f"sink {ctx.sink!r}: with checkpoints {str(self.path)!r} must be a directory "
                    f"for part files: {exc}"
                ) from exc

    def write(self, batch: pl.DataFrame) -> None:
        table = batch.to_arrow()
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table.cast(self.writer.schema))

    def committed_checkpoint(self) -> int | None:
        ids = [int(p.stem.split("-")[1]) for p in self.path.glob("part-*.parquet")]
        return max(ids, default=None)

    def apply(self, rows: pl.DataFrame, checkpoint_id: int) -> None:
        final = self.path / f"part-{checkpoint_id:010d}.parquet"
        if final.exists():
            return
        tmp = self.path / f".part-{checkpoint_id:010d}.parquet.tmp"
        rows.write_parquet(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
