"""Partitioned files with rolling and partition commit: Flink's filesystem sink.

``PartitionedFiles`` writes rows under Hive-style directories of a base path,
``path/dt=2015-07-15/hm=10:01/part-<run>-0-<n>.csv``; the partition columns live in the
directory names, not in the files. Each partition has at most one *in-progress* file at a
time, hidden from readers (``.part-<run>-0-<n>.csv.inprogress``); it becomes visible under its
final name when it *rolls*: when it reaches ``file_size`` bytes, is ``rollover_ms`` old or
``inactivity_ms`` idle (checked every ``check_interval_ms``), when its partition is committed,
and at the end of the run. Parquet files cannot grow, so with checkpoints every checkpoint
writes one finished Parquet file per partition.

A partition is *committed* (a ``_SUCCESS`` file written into it) once it is complete:

- ``trigger="partition-time"``: when the watermark passes the partition's time plus
  ``delay_ms``; the time comes from its values through ``time_pattern`` (``"$dt $hm:00"``,
  parsed with ``time_format``);
- ``trigger="process-time"``: ``delay_ms`` after the partition received its first row.

Rows that arrive for a partition after its commit go to a new file, and it is committed again.

With checkpoints (exactly-once) rows arrive through ``apply`` once a checkpoint is durable, and
the sink keeps a record of its files in ``.<name>.tidal/filesystem.json`` beside the base path.
``apply`` works in numbered steps:

1. append the rows to the in-progress files (fsynced);
2. write the record atomically: the checkpoint id, each in-progress file's length, the files
   that roll now and the partitions waiting for commit; from here on the checkpoint is applied;
3. rename the rolled files to their final names.

On opening, the sink finishes the renames of its record, cuts every in-progress file back to
its recorded length (a crash in step 1 leaves a longer one) and deletes in-progress files the
record does not know, so the checkpoint that recovery applies again lands exactly once.
Partitions are committed after the checkpoint's rows are applied (``on_watermark``), and again
after a crash in the middle of a commit: writing ``_SUCCESS`` twice is harmless.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import polars as pl

from tidal._fsutil import fsync_dir, write_json_atomic
from tidal._time import MAX_TIME
from tidal.connectors.base import SinkContext, TransactionalSink
from tidal.connectors.files import encode_csv, encode_jsonl
from tidal.connectors.lake import hive_dir
from tidal.errors import ConfigError, SinkError

__all__ = ["PartitionCommit", "PartitionedFiles"]

Format = Literal["csv", "json", "parquet"]
_ENCODE: dict[str, Callable[[pl.DataFrame, Any, bool], None]] = {"csv": encode_csv, "json": encode_jsonl}
_EXT = {"csv": "csv", "json": "json", "parquet": "parquet"}
_PATTERN_FIELD = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass(frozen=True)
class PartitionCommit:
    """When a partition counts as complete, and what committing it does (see the module
    docstring). ``time_format`` is a strftime pattern; ``None`` accepts ``yyyy-MM-dd``,
    ``yyyy-MM-dd HH:mm`` and ``yyyy-MM-dd HH:mm:ss`` like Flink's default extractor."""

    trigger: Literal["partition-time", "process-time"] = "process-time"
    delay_ms: int = 0
    time_pattern: str | None = None
    time_format: str | None = None
    success_file: str | None = "_SUCCESS"

    def fields(self) -> list[str]:
        """The partition columns ``time_pattern`` names (``$dt`` or ``${dt}``)."""
        return [a or b for a, b in _PATTERN_FIELD.findall(self.time_pattern or "")]

    def partition_time(self, values: dict[str, Any]) -> int:
        """The time (epoch ms, UTC) of the partition with these column values."""
        text = (_PATTERN_FIELD.sub(lambda m: str(values[m.group(1) or m.group(2)]), self.time_pattern)
                if self.time_pattern else str(next(iter(values.values()))))
        formats = [self.time_format] if self.time_format else \
            ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]
        for fmt in formats:
            try:
                stamp = datetime.strptime(text, fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
            return int(stamp.timestamp() * 1000)
        raise SinkError(f"the partition time {text!r} (from {self.time_pattern or 'the first partition column'}"
                        f" and the values {values}) does not match the time format "
                        f"{' or '.join(formats)}; fix the time pattern or format")


class PartitionedFiles(TransactionalSink):
    """Rows as CSV, JSON lines or Parquet files in Hive-style partition directories, rolled
    and committed like Flink's filesystem sink; see the module docstring.

    >>> import tidal as td
    >>> sink = td.sinks.partitioned_files("out/", partition_by=["dt"], format="csv",
    ...     commit=PartitionCommit("partition-time", delay_ms=60_000, time_pattern="$dt"))
    >>> sink.partition_by
    ['dt']
    """

    name = "filesystem"

    def __init__(
        self, path: str | os.PathLike[str], *, format: Format = "csv",  # noqa: A002 - Flink's name
        partition_by: list[str] | None = None, commit: PartitionCommit | None = None,
        file_size: int = 128 << 20, rollover_ms: int = 30 * 60_000,
        inactivity_ms: int = 30 * 60_000, check_interval_ms: int = 60_000,
        default_partition: str = "__DEFAULT_PARTITION__", clock: Callable[[], float] = time.time,
    ) -> None:
        if format not in ("csv", "json", "parquet"):
            raise ConfigError(f"file format must be 'csv', 'json' or 'parquet', not {format!r}")
        self.partition_by = list(partition_by or [])
        if commit is not None:
            if not self.partition_by:
                raise ConfigError("partition commit needs partition columns (partition_by); "
                                  "a table without partitions has nothing to commit")
            stray = [f for f in commit.fields() if f not in self.partition_by]
            if stray:
                raise ConfigError(f"the partition time pattern {commit.time_pattern!r} names "
                                  f"{', '.join('$' + f for f in stray)}, which is not a partition "
                                  f"column; use only {', '.join('$' + c for c in self.partition_by)}")
        self.path = Path(os.fspath(path).removeprefix("file://"))
        self.format = format
        self.commit = commit
        self.file_size, self.rollover_ms = file_size, rollover_ms
        self.inactivity_ms, self.check_interval_ms = inactivity_ms, check_interval_ms
        self.default_partition = default_partition
        self.clock = clock
        self.record_path = self.path.parent / f".{self.path.name}.tidal" / "filesystem.json"
        self.durable = False
        self.applying = False
        self.sink_name = self.name
        self.last_check = 0
        self.record: dict[str, Any] = {}
        self.buffers: dict[str, list[pl.DataFrame]] = {}
        """Parquet without checkpoints: the rows of each partition's open (in-memory) file."""

    # -- the record -------------------------------------------------------------------------------
    def _now(self) -> int:
        return int(self.clock() * 1000)

    def _save(self) -> None:
        if self.durable:
            write_json_atomic(self.record_path, self.record)

    def open(self, ctx: SinkContext) -> None:
        self.durable = ctx.exactly_once
        self.sink_name = ctx.sink
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if self.durable:
                self.record_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"sink {ctx.sink!r} cannot create the directory {str(self.path)!r}: "
                            f"{exc}") from exc
        if self.durable and self.record_path.exists():
            self.record = orjson.loads(self.record_path.read_bytes())
            self._recover()
        else:
            self.record = {"checkpoint": 0, "run": uuid.uuid4().hex[:16], "count": 0,
                           "open": {}, "rolling": [], "pending": {}}
            self._save()
        self.last_check = self._now()

    def _recover(self) -> None:
        """Finish the renames of the record, cut in-progress files back to their recorded
        length, delete the ones a crashed attempt left."""
        for entry in self.record["rolling"]:
            self._rename(entry)
        self.record["rolling"] = []
        known = set()
        for part, entry in list(self.record["open"].items()):
            hidden = self.path / part / entry["hidden"]
            if not hidden.exists():  # never reached the disk before the crash
                del self.record["open"][part]
                continue
            known.add(hidden)
            with open(hidden, "r+b") as f:
                f.truncate(entry["length"])
        for stray in self.path.rglob(f".part-{self.record['run']}-*.inprogress"):
            if stray not in known:
                stray.unlink()
        self._save()

    def committed_checkpoint(self) -> int | None:
        return self.record.get("checkpoint") or None

    # -- files ------------------------------------------------------------------------------------
    def _split(self, rows: pl.DataFrame) -> list[tuple[str, list[Any], pl.DataFrame]]:
        """(partition directory, partition values, rows without the partition columns)."""
        missing = [c for c in self.partition_by if c not in rows.columns]
        if missing:
            raise SinkError(f"filesystem sink {self.sink_name!r}: partition column(s) {missing} "
                            f"not in the rows ({rows.columns})")
        if not self.partition_by:
            return [("", [], rows)]
        groups = rows.partition_by(self.partition_by, as_dict=True, include_key=False,
                                   maintain_order=True)
        return [(hive_dir(self.partition_by, values, self.default_partition), list(values), part)
                for values, part in groups.items()]

    def _entry(self, part: str, values: list[Any]) -> dict[str, Any]:
        """The in-progress file of partition ``part``, started if there is none."""
        entry = self.record["open"].get(part)
        if entry is None:
            self.record["count"] += 1
            stem = f"part-{self.record['run']}-0-{self.record['count']}.{_EXT[self.format]}"
            now = self._now()
            entry = {"final": stem, "hidden": f".{stem}.inprogress", "length": 0,
                     "created": now, "updated": now}
            (self.path / part).mkdir(parents=True, exist_ok=True)
            with open(self.path / part / entry["hidden"], "wb"):
                pass  # an empty file: recovery knows it
            self.record["open"][part] = entry
        commit = self.commit
        if commit is not None and part not in self.record["pending"]:
            texts = [None if v is None else str(v) for v in values]
            named = dict(zip(self.partition_by, texts, strict=True))
            # a null value has no time: such a partition is committed when the input ends
            at = (commit.partition_time(named) if commit.trigger == "partition-time"
                  and all(named[f] is not None for f in commit.fields() or self.partition_by[:1])
                  else None)
            self.record["pending"][part] = {"values": texts, "created": self._now(), "time": at}
        return entry

    def _append(self, part: str, values: list[Any], rows: pl.DataFrame) -> None:
        entry = self._entry(part, values)
        if self.format == "parquet":
            if self.durable:
                rows.write_parquet(self.path / part / entry["hidden"])
                entry["length"] = (self.path / part / entry["hidden"]).stat().st_size
                self._fsync(self.path / part / entry["hidden"])
            else:
                self.buffers.setdefault(part, []).append(rows)
                entry["length"] += rows.estimated_size()
        else:
            hidden = self.path / part / entry["hidden"]
            with open(hidden, "r+b") as f:
                f.truncate(entry["length"])
                f.seek(entry["length"])
                _ENCODE[self.format](rows, f, entry["length"] == 0)
                f.flush()
                if self.durable:
                    os.fsync(f.fileno())
                entry["length"] = f.tell()
        entry["updated"] = self._now()

    @staticmethod
    def _fsync(path: Path) -> None:
        with open(path, "rb") as f:
            os.fsync(f.fileno())

    def _due(self, entry: dict[str, Any], now: int) -> bool:
        """Whether the rolling policy closes this in-progress file now."""
        return (self.format == "parquet" and self.durable) or entry["length"] >= self.file_size \
            or now - entry["created"] >= self.rollover_ms or now - entry["updated"] >= self.inactivity_ms

    def _roll(self, parts: list[str]) -> None:
        """Make these partitions' in-progress files visible: record first, then rename."""
        if not parts:
            return
        for part in parts:
            entry = self.record["open"].pop(part)
            if self.format == "parquet" and not self.durable:
                hidden = self.path / part / entry["hidden"]
                pl.concat(self.buffers.pop(part), how="diagonal_relaxed").write_parquet(hidden)
                entry["length"] = hidden.stat().st_size
            self.record["rolling"].append({**entry, "part": part})
        self._save()
        for entry in self.record["rolling"]:
            self._rename(entry)
        if self.durable:
            for d in {self.path / e["part"] for e in self.record["rolling"]}:
                fsync_dir(d)
        self.record["rolling"] = []  # (saved with the next change; renaming again is a no-op)

    def _rename(self, entry: dict[str, Any]) -> None:
        hidden = self.path / entry["part"] / entry["hidden"]
        if hidden.exists():
            with open(hidden, "r+b") as f:
                f.truncate(entry["length"])  # parquet: its exact size, so a no-op
            os.replace(hidden, self.path / entry["part"] / entry["final"])

    # -- the sink contract ------------------------------------------------------------------------
    def write(self, batch: pl.DataFrame) -> None:
        if not batch.height:
            return
        for part, values, rows in self._split(batch):
            self._append(part, values, rows)
        self._roll([p for p, e in self.record["open"].items() if e["length"] >= self.file_size])

    def flush(self) -> None:
        now = self._now()
        if self.durable or now - self.last_check < self.check_interval_ms:
            return  # with checkpoints, files roll when a checkpoint is applied
        self.last_check = now
        self._roll([p for p, e in self.record["open"].items() if self._due(e, now)])
        if self.commit is not None and self.commit.trigger == "process-time":
            self._commit_partitions(None)

    def apply(self, rows: pl.DataFrame, checkpoint_id: int) -> None:
        if self.record["checkpoint"] >= checkpoint_id:
            return
        self.applying = True  # until the record holds it: a failure in between leaves it be
        # 1. rows appended to the in-progress files, fsynced
        for part, values, group in (self._split(rows) if rows.height else []):
            self._append(part, values, group)
        # 2. + 3. the record (with the checkpoint id and the files that roll now), the renames
        self.record["checkpoint"] = checkpoint_id
        now = self._now()
        due = [p for p, e in self.record["open"].items() if self._due(e, now)]
        if due:
            self._roll(due)
        else:
            self._save()
        self.applying = False

    def on_watermark(self, watermark: int) -> None:
        if self.commit is not None:
            self._commit_partitions(watermark)

    def _commit_partitions(self, watermark: int | None) -> None:
        """Commit the pending partitions that are complete: roll their files, write the
        success file, forget them (in this order, so a crash at worst commits again)."""
        commit = self.commit
        assert commit is not None
        now = self._now()
        done = []
        for part, info in self.record["pending"].items():
            if commit.trigger == "process-time":
                ready = now >= info["created"] + commit.delay_ms
            else:
                ready = watermark is not None and (watermark >= MAX_TIME if info["time"] is None
                                                   else watermark > info["time"] + commit.delay_ms)
            if ready:
                done.append(part)
        if not done:
            return
        self._roll([p for p in done if p in self.record["open"]])
        for part in done:
            if commit.success_file:
                marker = self.path / part / commit.success_file
                with open(marker, "wb") as f:
                    if self.durable:
                        os.fsync(f.fileno())
            del self.record["pending"][part]
        self._save()

    def close(self) -> None:
        if self.record and not self.applying:  # (after a failed apply, recovery sorts it out)
            self._roll(list(self.record["open"]))
