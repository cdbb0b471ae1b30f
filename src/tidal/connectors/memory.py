"""In-memory sources and sinks: lists of dicts, Polars frames and Arrow tables."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import polars as pl
import pyarrow as pa

from tidal.connectors.base import Sink, Source, SourceContext, SourcePartition
from tidal.runtime.ingest import to_polars

__all__ = ["Callback", "Collect", "Memory"]


def _frame(items: Any) -> pl.DataFrame:
    if isinstance(items, pl.DataFrame):
        return items
    if isinstance(items, pa.Table | pa.RecordBatch):
        return to_polars(items)
    items = list(items)
    if not items:
        return pl.DataFrame()
    if all(isinstance(i, dict) for i in items):
        try:
            return pl.from_dicts(items, infer_schema_length=None)
        except (pl.exceptions.PolarsError, TypeError, ValueError):
            # mixed types in a column: keep every value as text, so a declared schema can
            # separate the good records from the bad ones instead of failing the whole list
            cols = {k for i in items for k in i}
            return pl.DataFrame(
                {c: [None if i.get(c) is None else str(i.get(c)) for i in items] for c in cols}
            )
    frames = [to_polars(i) for i in items]
    return pl.concat(frames, how="diagonal_relaxed")


class _MemoryPartition(SourcePartition):
    def __init__(self, frame: pl.DataFrame, position: int | None) -> None:
        self.frame = frame
        self.offset = position or 0

    def poll(self, max_rows: int) -> pl.DataFrame | None:
        if self.offset >= self.frame.height:
            return None
        out = self.frame.slice(self.offset, max_rows)
        self.offset += out.height
        return out

    @property
    def done(self) -> bool:
        return self.offset >= self.frame.height

    def position(self) -> int:
        return self.offset


class Memory(Source):
    """A bounded source over in-memory data, split round-robin into ``partitions``."""

    name = "memory"

    def __init__(self, items: Iterable[Any] | pl.DataFrame | pa.Table, partitions: int = 1) -> None:
        self.frame = _frame(items)
        self.n = partitions

    def partitions(self) -> list[str]:
        return [str(i) for i in range(self.n)]

    def open(self, partition: str, position: Any, ctx: SourceContext) -> SourcePartition:
        frame = self.frame
        if self.n > 1:
            i = int(partition)
            frame = frame.filter(pl.int_range(pl.len()) % self.n == i)
        return _MemoryPartition(frame, position)

    def schema(self) -> pl.Schema:
        return self.frame.schema

    @property
    def bounded(self) -> bool:
        return True


class Callback(Sink):
    """Calls ``fn`` once per output batch with the rows as a list of dicts (or the frame)."""

    name = "callback"

    def __init__(self, fn: Callable[[Any], Any], as_frame: bool = False) -> None:
        if not callable(fn):
            raise TypeError(f"callback sink needs a function, got {type(fn).__name__}")
        self.fn = fn
        self.as_frame = as_frame

    def write(self, batch: pl.DataFrame) -> None:
        self.fn(batch if self.as_frame else batch.to_dicts())


class Collect(Sink):
    """Keeps every output row in memory; read them with :meth:`frame` or :attr:`rows`."""

    name = "collect"

    def __init__(self) -> None:
        self.batches: list[pl.DataFrame] = []

    def write(self, batch: pl.DataFrame) -> None:
        self.batches.append(batch)

    def frame(self) -> pl.DataFrame:
        """All rows received so far as one frame."""
        return pl.concat(self.batches, how="diagonal_relaxed") if self.batches else pl.DataFrame()

    @property
    def rows(self) -> list[dict[str, Any]]:
        """All rows received so far as dicts."""
        return self.frame().to_dicts()
