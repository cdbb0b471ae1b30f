"""The embedded log as a source and a sink (see :mod:`tidal.log`).

The source reads each partition of a topic as a partition of the stream, columnar (Arrow
batches straight from the segment files); its position is the next offset, so recovery
seeks exactly. The sink appends whole batches, partitioned by a key column. With
checkpoints the sink is exactly-once: each checkpoint's rows are appended after the
checkpoint is durable, guarded by a commit marker that records which partitions a
checkpoint already reached, so an append interrupted by a crash is completed, never
repeated.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import orjson
import polars as pl
import pyarrow as pa

import tidal.log as tlog
from tidal._fsutil import write_json_atomic
from tidal.connectors.base import (
    SinkContext,
    Source,
    SourceContext,
    SourcePartition,
    TransactionalSink,
)
from tidal.errors import ConfigError, SinkError, SourceError

__all__ = ["LogSink", "LogSource"]

_META = ("offset", "partition")


def _open_log(log_dir: str | os.PathLike[str] | None) -> tlog.Log:
    return tlog.open(log_dir)


class _LogPartition(SourcePartition):
    def __init__(self, src: LogSource, topic: tlog.Topic, p: int, offset: int,
                 end: int | None) -> None:
        self.src, self.topic, self.p, self.offset, self.end = src, topic, p, offset, end

    def poll(self, max_rows: int) -> pl.DataFrame | None:
        if self.end is not None:
            max_rows = min(max_rows, self.end - self.offset)
            if max_rows <= 0:
                return None
        read = self.topic.read_arrow(self.p, self.offset, max_rows=max_rows)
        if read.table.num_rows == 0:
            return None
        self.offset = read.next_offset
        return self.src.decode(read.table)

    @property
    def done(self) -> bool:
        return self.end is not None and self.offset >= self.end

    def position(self) -> int:
        return self.offset

    def commit(self, position: Any) -> None:
        if self.src.group is not None:
            self.src.log.commit(self.src.group, self.src.topic_name, {self.p: int(position)})


class LogSource(Source):
    """Reads a topic of the embedded log; one stream partition per topic partition.

    - ``group``: resume from (and commit to) this consumer group's offsets;
    - ``start``: where a partition without a position starts, ``"earliest"`` or ``"latest"``;
    - ``bounded=True``: read up to the end offsets at start, then finish (a backfill);
    - ``format="json"``: for topics of plain records, decode each value as a JSON object;
    - ``metadata=True``: keep the ``offset`` and ``partition`` columns.
    """

    def __init__(self, topic: str, group: str | None, log_dir: str | os.PathLike[str] | None,
                 start: Literal["earliest", "latest"], bounded: bool, format: str | None,
                 metadata: bool) -> None:
        if start not in ("earliest", "latest"):
            raise ConfigError(f"log source start must be 'earliest' or 'latest', not {start!r}")
        self.log = _open_log(log_dir)
        try:
            self.topic = self.log.topic(topic)
        except tlog.UnknownTopicError:
            raise SourceError(
                f"no topic {topic!r} in {self.log.path}; create it with `tidal topics create {topic}`"
            ) from None
        self.topic_name, self.group, self.start = topic, group, start
        self.bounded_read, self.format, self.metadata = bounded, format, metadata
        self.name = topic

    def partitions(self) -> list[str]:
        return [str(p) for p in range(self.topic.partitions)]

    def open(self, partition: str, position: Any, ctx: SourceContext) -> SourcePartition:
        p = int(partition)
        if position is None and self.group is not None:
            position = self.log.committed(self.group, self.topic_name).get(p)
        if position is None:
            position = self.topic.start_offset(p) if self.start == "earliest" else self.topic.end_offset(p)
        end = self.topic.end_offset(p) if self.bounded_read else None
        return _LogPartition(self, self.topic, p, int(position), end)

    def decode(self, table: pa.Table) -> pl.DataFrame:
        frame: pl.DataFrame = pl.from_arrow(table)  # type: ignore[assignment]
        if self.format == "json" and "value" in frame.columns:
            meta = frame.select(_META)
            values = frame["value"].cast(pl.String)
            frame = pl.read_ndjson(("\n".join(values.to_list()) + "\n").encode())
            if self.metadata:
                frame = frame.hstack(meta)
        elif not self.metadata:
            frame = frame.drop(_META, strict=False)
        return frame

    def schema(self) -> pl.Schema | None:
        for p in range(self.topic.partitions):
            start = self.topic.start_offset(p)
            if self.topic.end_offset(p) > start:
                return self.decode(self.topic.read_arrow(p, start, max_rows=1).table).schema
        return None

    @property
    def bounded(self) -> bool:
        return self.bounded_read


class LogSink(TransactionalSink):
    """Appends rows to a topic of the embedded log, partitioned by ``key`` (round-robin
    without one). The topic is created with ``partitions`` partitions if it is missing."""

    def __init__(self, topic: str, key: str | None, log_dir: str | os.PathLike[str] | None,
                 partitions: int) -> None:
        self.topic_name, self.key, self.log_dir, self.n = topic, key, log_dir, partitions
        self.name = f"log:{topic}"
        self.log: tlog.Log | None = None
        self.topic: tlog.Topic
        self.marker: Path

    def open(self, ctx: SinkContext) -> None:
        try:
            self.log = _open_log(self.log_dir)
            self.topic = self.log.create_topic(self.topic_name, partitions=self.n, exist_ok=True)
        except (tlog.LogError, OSError) as exc:
            raise SinkError(f"sink {ctx.sink!r} cannot open topic {self.topic_name!r}: {exc}") from exc
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{ctx.flow}--{ctx.sink}")
        self.marker = Path(self.log.path) / "sink-commits" / self.topic_name / f"{safe}.json"

    def write(self, batch: pl.DataFrame) -> None:
        self.topic.append_batch(batch, key=self.key)

    def flush(self) -> None:
        self.topic.flush()

    def _read_marker(self) -> dict[str, Any]:
        try:
            return orjson.loads(self.marker.read_bytes())
        except FileNotFoundError:
            return {"checkpoint": 0, "pending": None}

    def _write_marker(self, value: dict[str, Any]) -> None:
        self.marker.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.marker, value)

    def committed_checkpoint(self) -> int | None:
        return int(self._read_marker()["checkpoint"])

    def apply(self, rows: pl.DataFrame, checkpoint_id: int) -> None:
        """Append ``rows`` once: 1. record the end offset of every partition as the intent;
        2. append each partition's slice; 3. record the checkpoint as committed. Repeating a
        crashed attempt skips the partitions that already grew past their recorded end."""
        mark = self._read_marker()
        if mark["checkpoint"] >= checkpoint_id:
            return
        pending = mark.get("pending")
        if not pending or pending["checkpoint"] != checkpoint_id:
            start = {str(p): self.topic.end_offset(p) for p in range(self.topic.partitions)}
            pending = {"checkpoint": checkpoint_id, "start": start}
            self._write_marker({"checkpoint": mark["checkpoint"], "pending": pending})
        table = rows.to_arrow()
        if self.key is None:
            slices = [(checkpoint_id % self.topic.partitions, table)]
        else:
            slices = self.topic._split_table(table, self.key, None)
        for p, part in slices:
            if self.topic.end_offset(p) > pending["start"][str(p)]:
                continue  # this partition's slice landed before the crash
            self.topic.append_batch(part, key=self.key, partition=p)
        self.topic.flush()
        self._write_marker({"checkpoint": checkpoint_id, "pending": None})

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None
