"""What happens to a batch between a source partition and the first operator.

Arrow becomes Polars; a declared schema is enforced; the timestamp column is checked and
parsed; records that fail go to the dead letters with the reason; and the partition's
watermark moves. All checks are vectorized: a bad record costs a filter, not a loop.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow as pa

from tidal._time import MAX_TIME, MIN_TIME, parse_iso8601, time_ms_series
from tidal.api.watermarks import BoundedDelay
from tidal.connectors.base import SourcePartition

__all__ = ["PartitionReader", "to_polars"]

PROCESSING_TIME = "proc_time"


def to_polars(batch: Any) -> pl.DataFrame:
    """A Polars frame from a Polars frame, Arrow table/record batch or list of dicts."""
    if isinstance(batch, pl.DataFrame):
        return batch
    if isinstance(batch, pa.RecordBatch):
        batch = pa.Table.from_batches([batch])
    if isinstance(batch, pa.Table):
        return pl.from_arrow(batch)  # type: ignore[return-value]
    if isinstance(batch, list):
        return pl.from_dicts(batch, infer_schema_length=None) if batch else pl.DataFrame()
    raise TypeError(f"a source returned {type(batch).__name__}; expected a DataFrame or Arrow data")


def _cast(column: str, have: pl.DataType, want: pl.DataType) -> pl.Expr:
    """``column`` as type ``want``, null where a value does not convert (ISO 8601 text for
    datetimes and dates)."""
    if have == pl.String and want.is_temporal() and not isinstance(want, pl.Duration | pl.Time):
        return parse_iso8601(column).cast(want, strict=False).alias(column)
    return pl.col(column).cast(want, strict=False).alias(column)


class PartitionReader:
    """One open source partition plus its event-time bookkeeping."""

    def __init__(
        self, source_name: str, partition: str, reader: SourcePartition,
        timestamp: str | None, watermark: BoundedDelay, schema: pl.Schema | None,
        processing_time: bool, dead_letter: Any, now_ms: int,
        computed: dict[str, pl.Expr] | None = None,
    ) -> None:
        self.source_name = source_name
        self.partition = partition
        self.reader = reader
        self.timestamp = timestamp
        self.strategy = watermark
        self.schema = schema
        self.processing_time = processing_time
        self.computed = computed or {}
        self.dead_letter = dead_letter
        self.max_ts = MIN_TIME
        self.last_data_ms = now_ms
        self.closed = False
        self.dirty = False
        """Rows were read since the position was last committed."""

    @property
    def done(self) -> bool:
        return self.reader.done

    def watermark(self, now_ms: int) -> tuple[int, bool]:
        """(watermark, idle) of this partition at processing time ``now_ms``."""
        if self.reader.done:
            return MAX_TIME, False
        if self.processing_time:
            return now_ms, False
        own = self.reader.watermark()
        if own is not None:
            return own, False
        wm = MIN_TIME if self.max_ts == MIN_TIME else self.max_ts - self.strategy.delay_ms
        idle = self.strategy.idle_ms is not None and now_ms - self.last_data_ms >= self.strategy.idle_ms
        return wm, idle

    def poll(self, max_rows: int, now_ms: int) -> pl.DataFrame | None:
        """Next batch, cleaned, or None."""
        raw = self.reader.poll(max_rows)
        if raw is None:
            return None
        batch = to_polars(raw)
        if not batch.height:
            return None
        self.last_data_ms = now_ms
        position = self.reader.position()
        if self.schema is not None:
            batch = self._enforce_schema(batch, position)
        if self.computed:
            batch = batch.with_columns(**self.computed)
        if self.processing_time:
            return batch.with_columns(
                pl.lit(now_ms, pl.Int64).cast(pl.Datetime("ms")).alias(PROCESSING_TIME)
            )
        if self.timestamp is not None:
            batch = self._check_timestamp(batch, position)
            if batch.height:
                latest = time_ms_series(batch.get_column(self.timestamp)).max()
                self.max_ts = max(self.max_ts, latest)  # type: ignore[type-var]
        return batch if batch.height else None

    def _reject(self, rows: pl.DataFrame, reason: str, position: Any) -> None:
        self.dead_letter(rows, reason, source=self.source_name, partition=self.partition,
                         position=position)

    def _enforce_schema(self, batch: pl.DataFrame, position: Any) -> pl.DataFrame:
        assert self.schema is not None
        missing = [c for c in self.schema if c not in batch.columns]
        if missing:
            batch = batch.with_columns(pl.lit(None).alias(c) for c in missing)
        casts = [_cast(c, batch.schema[c], t) for c, t in self.schema.items()]
        cast = batch.with_columns(casts)
        rejected = pl.zeros(batch.height, pl.Boolean, eager=True)
        for c, t in self.schema.items():
            if batch.schema[c] == t:
                continue
            bad = (cast[c].is_null() & batch[c].is_not_null()) & ~rejected
            if bad.any():
                self._reject(
                    batch.filter(bad), f"column {c!r} does not match the declared type {t}", position
                )
                rejected = rejected | bad
        return cast.filter(~rejected) if rejected.any() else cast

    def _check_timestamp(self, batch: pl.DataFrame, position: Any) -> pl.DataFrame:
        ts = self.timestamp
        assert ts is not None
        if ts not in batch.columns:
            self._reject(batch, f"record has no timestamp field {ts!r}", position)
            return batch.clear()
        dtype = batch.schema[ts]
        if dtype == pl.String:
            parsed = parse_iso8601(ts)
            converted = batch.with_columns(parsed.alias("__parsed"))
            bad = converted["__parsed"].is_null() & converted[ts].is_not_null()
            if bad.any():
                self._reject(batch.filter(bad), f"timestamp {ts!r} is not an ISO 8601 time", position)
            batch = converted.filter(~bad).drop(ts).rename({"__parsed": ts}).select(batch.columns)
        elif dtype == pl.Null:
            self._reject(batch, f"record has no timestamp field {ts!r}", position)
            return batch.clear()
        if batch[ts].null_count():
            nulls = batch[ts].is_null()
            self._reject(batch.filter(nulls), f"record has no timestamp field {ts!r}", position)
            batch = batch.filter(~nulls)
        return batch
