"""Order and limits over a whole stream: SQL's ``ORDER BY <time attribute>`` and ``LIMIT``.

- :class:`TimeSort` releases rows in event-time order: a row waits until the watermark
  passes its time, then the ready rows go out sorted by time (and by further columns for
  equal times). Rows that arrive behind the watermark are late: they go to the ``late``
  port and are counted, because their place in the order was already passed.
- :class:`Limit` lets the first ``n`` rows through and drops the rest.

>>> import polars as pl
>>> from tidal.operators.timeattr import TimeAttr
>>> out = []
>>> op = TimeSort("sort", TimeAttr("t"), ["v"], [False])
>>> op.open(type("C", (), {"emit": lambda s, b, p: out.append(b), "count_late": print})())
>>> op.on_batch(pl.DataFrame({"t": [30, 10, 20], "v": ["c", "a", "b"]}), 0)
>>> op.on_watermark(20)
>>> out[0]["v"].to_list()
['a', 'b']
"""

from __future__ import annotations

from typing import Any

import polars as pl

from tidal.operators.base import Operator
from tidal.operators.timeattr import TimeAttr

__all__ = ["Limit", "TimeSort"]

_T = "__sort_t"
_SEQ = "__sort_seq"


class TimeSort(Operator):
    """Rows in order of ``time``, then of ``by`` (``descending`` per column), each released
    once the watermark passes its time; ties beyond that keep arrival order."""

    stateful = True

    def __init__(self, name: str, time: TimeAttr, by: list[str], descending: list[bool]) -> None:
        super().__init__(name)
        self.time, self.by, self.descending = time, by, descending
        self.pending: pl.DataFrame | None = None
        self.seq = 0
        self.late_rows = 0

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        if not batch.height:
            return
        rows = batch.with_columns(self.time.series(batch).alias(_T),
                                  (pl.int_range(batch.height, dtype=pl.Int64) + self.seq)
                                  .alias(_SEQ))
        self.seq += batch.height
        late = rows.filter(pl.col(_T) <= self.watermark)
        if late.height:
            self.late_rows += late.height
            self.ctx.count_late(late.height)
            self.emit(late.drop(_T, _SEQ), "late")
            rows = rows.filter(pl.col(_T) > self.watermark)
        self.pending = rows if self.pending is None else pl.concat(
            [self.pending, rows], how="vertical_relaxed")

    def on_watermark(self, watermark: int) -> None:
        self.watermark = watermark
        if self.pending is None or not self.pending.height:
            return
        ready = self.pending.filter(pl.col(_T) <= watermark)
        if not ready.height:
            return
        self.pending = self.pending.filter(pl.col(_T) > watermark)
        ready = ready.sort([_T, *self.by, _SEQ], descending=[False, *self.descending, False],
                           nulls_last=[False, *self.descending, False])
        self.emit(ready.drop(_T, _SEQ))

    def snapshot(self) -> dict[str, Any]:
        return {"pending": self.pending, "seq": self.seq, "watermark": self.watermark}

    def restore(self, state: dict[str, Any]) -> None:
        self.pending, self.seq = state["pending"], int(state["seq"])
        self.watermark = int(state["watermark"])


class Limit(Operator):
    """The first ``n`` rows of the stream, in arrival order; every later row is dropped."""

    stateful = True

    def __init__(self, name: str, n: int) -> None:
        super().__init__(name)
        if n < 0:
            raise ValueError(f"Limit {name}: n must not be negative, got {n}")
        self.n = n
        self.seen = 0

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        left = self.n - self.seen
        if left <= 0 or not batch.height:
            return
        out = batch.head(left)
        self.seen += out.height
        self.emit(out)

    def snapshot(self) -> dict[str, Any]:
        return {"seen": self.seen}

    def restore(self, state: dict[str, Any]) -> None:
        self.seen = int(state["seen"])
