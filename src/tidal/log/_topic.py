"""A topic: partitioning on append, and reads as records or Arrow tables."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._convert import (
    RESERVED_COLUMNS,
    batch_keys,
    batch_records,
    batch_table,
    filter_batch,
    timestamps_ms,
)
from ._format import (
    FORMAT_ARROW,
    FORMAT_RECORDS,
    KEY_META,
    TIMESTAMP_META,
    encode_arrow,
    encode_record_list,
)
from ._partition import Partition
from ._partitioner import assign_partitions, key_bytes
from ._record import AppendResult, ArrowRead, OffsetRange, Record, now_ms
from ._settings import TopicSettings

if TYPE_CHECKING:
    import polars as pl

_MAX_BATCH_ROWS = 2**32 - 1


class Topic:
    """A named, partitioned, append-only stream of rows stored in a :class:`Log`.

    Get one from :meth:`Log.create_topic` or :meth:`Log.topic`; do not construct it.
    Offsets are per row and per partition; rows of one partition are read back in the
    order they were appended.

    >>> import tempfile, tidal.log
    >>> log = tidal.log.open(tempfile.mkdtemp())
    >>> t = log.create_topic("clicks", partitions=2)
    >>> t.append([tidal.log.Record(b"v", key=b"k")]).count
    1
    >>> log.close()
    """

    def __init__(self, directory: Path, settings: TopicSettings, on_dirty: Any = None):
        self.directory = directory
        self.settings = settings
        self._partitions = [Partition(directory, p, settings) for p in range(settings.partitions)]
        self._round_robin = itertools.count()
        self._rr_lock = threading.Lock()
        self._on_dirty = on_dirty
        for part in self._partitions:
            part.recover()

    @property
    def name(self) -> str:
        """The topic's name."""
        return self.settings.name

    @property
    def partitions(self) -> int:
        """Number of partitions."""
        return self.settings.partitions

    def __repr__(self) -> str:
        return f"Topic({self.name!r}, partitions={self.partitions})"

    def _partition(self, partition: int) -> Partition:
        if isinstance(partition, bool) or not isinstance(partition, int | np.integer):
            raise TypeError(f"partition must be an int, got {type(partition).__name__}")
        if not 0 <= partition < self.partitions:
            raise ValueError(
                f"partition {partition} does not exist in topic {self.name!r} "
                f"(it has partitions 0..{self.partitions - 1})"
            )
        return self._partitions[int(partition)]

    def partition_for(self, key: bytes) -> int:
        """The partition a row with this key goes to (Kafka's default partitioner)."""
        return int(assign_partitions(pa.array([key], pa.binary()), self.partitions, 0)[0])

    def _next_keyless(self) -> int:
        with self._rr_lock:
            return next(self._round_robin) % self.partitions

    # -- append --------------------------------------------------------------------------

    def append(
        self, records: Iterable[Record | bytes], partition: int | None = None
    ) -> AppendResult:
        """Append records; each partition's share is written as one batch.

        A record goes to ``partition`` when given, else to the partition of its key's hash
        (Kafka's murmur2, so placement matches Kafka's default partitioner); records without
        a key go round-robin, one partition per call. A plain ``bytes`` item is shorthand
        for ``Record(value)``. Appends to different partitions are not atomic together.
        """
        recs = [r if isinstance(r, Record) else _as_record(r) for r in records]
        if not recs:
            return AppendResult({}, True)
        groups = self._split_records(recs, partition)
        ts = now_ms()
        offsets: dict[int, OffsetRange] = {}
        durable = True
        for p, rs in groups.items():
            payload, max_ts = encode_record_list(rs, ts)
            first, synced = self._partitions[p].append(
                FORMAT_RECORDS, payload, len(rs), len(rs), max_ts
            )
            offsets[p] = OffsetRange(first, first + len(rs) - 1)
            durable &= synced
        return self._result(offsets, durable)

    def _split_records(self, recs: list[Record], partition: int | None) -> dict[int, list[Record]]:
        if partition is not None:
            return {self._partition(partition).number: recs}
        if self.partitions == 1:
            return {0: recs}
        keys = pa.array([r.key for r in recs], pa.binary())
        pids = assign_partitions(keys, self.partitions, self._next_keyless())
        groups: dict[int, list[Record]] = {}
        for p, r in zip(pids.tolist(), recs, strict=True):
            groups.setdefault(p, []).append(r)
        return groups

    def append_batch(
        self,
        table: pa.Table | pa.RecordBatch | pl.DataFrame,
        key: str | None = None,
        timestamp: str | None = None,
        partition: int | None = None,
    ) -> AppendResult:
        """Append an Arrow table or Polars DataFrame as columnar batches, one per partition.

        ``key`` names the column whose value picks the partition (hashed like record keys;
        non-binary values through their text form); ``timestamp`` names an integer (epoch
        ms) or Arrow timestamp column used for time retention. Rows are split by key hash
        with vectorized kernels and each partition's slice is stored as one Arrow IPC
        payload; every row gets its own offset. Columns named ``offset`` or ``partition``
        are refused because reads add them.
        """
        table = _as_table(table)
        names = table.column_names
        for col, what in ((key, "key"), (timestamp, "timestamp")):
            if col is not None and col not in names:
                raise ValueError(
                    f"{what} column {col!r} is not in the batch; its columns are {names}"
                )
        clash = [c for c in names if c in RESERVED_COLUMNS]
        if clash:
            raise ValueError(
                f"column(s) {clash} are reserved: reads add 'offset' and 'partition'; rename them"
            )
        if table.num_rows == 0:
            return AppendResult({}, True)
        meta = dict(table.schema.metadata or {})
        if key is not None:
            meta[KEY_META] = key.encode()
        if timestamp is not None:
            meta[TIMESTAMP_META] = timestamp.encode()
        table = table.replace_schema_metadata(meta)
        slices = self._split_table(table, key, partition)
        default_ts = now_ms()
        offsets: dict[int, OffsetRange] = {}
        durable = True
        for p, part in slices:
            n = part.num_rows
            if n > _MAX_BATCH_ROWS:
                raise ValueError(f"a batch holds at most {_MAX_BATCH_ROWS} rows per partition")
            max_ts = default_ts
            if timestamp is not None:
                m = pc.max(timestamps_ms(part.column(timestamp))).as_py()
                max_ts = default_ts if m is None else m
            first, synced = self._partitions[p].append(
                FORMAT_ARROW, encode_arrow(part), n, n, max_ts
            )
            offsets[p] = OffsetRange(first, first + n - 1)
            durable &= synced
        return self._result(offsets, durable)

    def _split_table(
        self, table: pa.Table, key: str | None, partition: int | None
    ) -> list[tuple[int, pa.Table]]:
        if partition is not None:
            return [(self._partition(partition).number, table)]
        keyless = self._next_keyless()
        if key is None or self.partitions == 1:
            return [(keyless if key is None else 0, table)]
        pids = assign_partitions(key_bytes(table.column(key)), self.partitions, keyless)
        counts = np.bincount(pids, minlength=self.partitions)
        order = np.argsort(pids, kind="stable")
        ordered = table.take(pa.array(order))
        out, start = [], 0
        for p, c in enumerate(counts.tolist()):
            if c:
                out.append((p, ordered.slice(start, c)))
            start += c
        return out

    def _result(self, offsets: dict[int, OffsetRange], durable: bool) -> AppendResult:
        if not durable and self._on_dirty is not None:
            self._on_dirty(self)
        return AppendResult(offsets, durable)

    # -- read ----------------------------------------------------------------------------

    def read(self, partition: int, offset: int, max_records: int = 500) -> list[Record]:
        """Up to ``max_records`` records of ``partition`` from ``offset`` on, in order.

        Returns an empty list at the end of the partition. Offsets removed by compaction
        are skipped; an offset below the partition's start raises
        :class:`OffsetOutOfRangeError`. The next offset to read is ``records[-1].offset + 1``.
        """
        part = self._partition(partition)
        _check_offset(offset)
        out: list[Record] = []
        for h, payload in part.batches(offset, max_records):
            out.extend(batch_records(h, payload, part.number, offset))
            if len(out) >= max_records:
                return out[:max_records]
        return out

    def read_arrow(self, partition: int, offset: int, max_rows: int = 65536) -> ArrowRead:
        """Up to ``max_rows`` rows of ``partition`` from ``offset`` on as one Arrow table.

        Arrow batches are decoded zero-copy and keep their columns; rows appended as
        records have columns ``key, value, timestamp, headers``. Both gain ``offset``
        (int64) and ``partition`` (int32). A call never mixes schemas: it stops before
        the first batch whose schema differs, and ``next_offset`` says where to go on.
        """
        part = self._partition(partition)
        _check_offset(offset)
        tables: list[pa.Table] = []
        rows, next_offset = 0, offset
        for h, payload in part.batches(offset, max_rows):
            t = batch_table(h, payload, part.number)
            if tables and not t.schema.equals(tables[0].schema, check_metadata=False):
                break
            if h.base_offset < offset:
                offsets = t.column("offset").to_numpy()
                t = t.slice(int(np.searchsorted(offsets, offset)))
            if rows + t.num_rows > max_rows:
                t = t.slice(0, max_rows - rows)
                tables.append(t)
                rows = max_rows
                next_offset = int(t.column("offset")[-1].as_py()) + 1 if t.num_rows else next_offset
                break
            tables.append(t)
            rows += t.num_rows
            next_offset = h.next_offset
        if not tables:
            return ArrowRead(_empty_table(), offset)
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        return ArrowRead(table, next_offset)

    def start_offset(self, partition: int) -> int:
        """The oldest offset still stored in ``partition``."""
        return self._partition(partition).start_offset()

    def end_offset(self, partition: int) -> int:
        """The offset the next row appended to ``partition`` will get."""
        return self._partition(partition).end_offset()

    # -- maintenance ---------------------------------------------------------------------

    def flush(self) -> None:
        """fsync every append this process made to the topic that is not durable yet."""
        for part in self._partitions:
            part.flush()

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete closed segments past ``retention_bytes``/``retention_ms``; return how many.

        Runs automatically whenever a partition rolls to a new segment. Whole segments go,
        oldest first; the active segment never does.
        """
        return sum(part.apply_retention(now_ms) for part in self._partitions)

    def compact(self) -> int:
        """Rewrite closed segments keeping only the latest row per key; return rows removed.

        Only for topics created with ``compact=True``. Offsets are preserved (later reads
        skip the gaps); rows without a key are kept; the active segment is not rewritten
        but its rows count as "latest". Appends to a partition wait while it is compacted.
        """
        if not self.settings.compact:
            raise ValueError(
                f"topic {self.name!r} was not created with compact=True; compaction would "
                f"drop data its readers expect"
            )
        return sum(_compact_partition(part) for part in self._partitions)

    def close(self) -> None:
        """fsync pending appends (unless fsync='never') and close the topic's files."""
        for part in self._partitions:
            part.close()


def _compact_partition(part: Partition) -> int:
    with part.compaction() as bases:
        if len(bases) < 2:
            return 0
        keys, offsets = [], []
        for h, payload in part.batches(bases[0], 1 << 62):
            k, o = batch_keys(h, payload)
            keys.append(k)
            offsets.append(o)
        if not keys:
            return 0
        all_keys = pa.chunked_array(keys, pa.large_binary()).combine_chunks()
        all_offsets = np.concatenate(offsets)
        keyed = all_keys.is_valid().to_numpy(zero_copy_only=False)
        import polars as pl  # noqa: PLC0415 - only compaction needs polars

        latest = (
            pl.DataFrame({"key": all_keys.filter(pa.array(keyed)), "offset": all_offsets[keyed]})
            .group_by("key")
            .agg(pl.col("offset").max())
            .get_column("offset")
            .to_numpy()
        )
        superseded = np.setdiff1d(all_offsets[keyed], latest, assume_unique=True)
        removed = 0
        rewritten = []
        for base, end in zip(bases[:-1], bases[1:], strict=True):
            doomed = superseded[(superseded >= base) & (superseded < end)]
            if not len(doomed):
                continue
            new_batches = []
            for h, payload in part.batches(base, 1 << 62):
                if h.base_offset >= end:
                    break
                _, offs = batch_keys(h, payload)
                keep = ~np.isin(offs, doomed)
                if keep.all():
                    new_batches.append((h, payload))
                elif keep.any():
                    new_payload, count, max_ts = filter_batch(h, payload, keep)
                    new_batches.append((h._replace(count=count, max_timestamp=max_ts), new_payload))
                removed += int((~keep).sum())
            part.replace_segment(base, new_batches)
            rewritten.append(base)
        part.forget_readers(rewritten)
        return removed


def _check_offset(offset: object) -> None:
    if isinstance(offset, bool) or not isinstance(offset, int | np.integer) or offset < 0:
        raise ValueError(f"offset must be a non-negative int, got {offset!r}")


def _as_record(value: object) -> Record:
    if isinstance(value, bytes | bytearray | memoryview):
        return Record(bytes(value))
    raise TypeError(
        f"append() takes Record objects or bytes values, got {type(value).__name__}; "
        f"use append_batch() for tables"
    )


def _as_table(data: object) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    to_arrow = getattr(data, "to_arrow", None)
    if callable(to_arrow):  # polars.DataFrame, without importing polars
        table = to_arrow()
        if isinstance(table, pa.Table):
            return table
    raise TypeError(
        f"append_batch() takes a pyarrow.Table, pyarrow.RecordBatch or polars.DataFrame, "
        f"got {type(data).__name__}"
    )


def _empty_table() -> pa.Table:
    return pa.table(
        {
            "offset": pa.array([], pa.int64()),
            "partition": pa.array([], pa.int32()),
        }
    )
