"""Analytic operators: the top rows of each window, and de-duplication within a horizon.

Both keep their state as one Polars frame and work on whole batches:

- :class:`WindowTopK` keeps, per key and window, only the ``k`` best rows seen so far (a
  sort and ``head(k)`` per group when a batch arrives), and emits them ranked when the
  watermark passes the window's end.
- :class:`Dedupe` keeps, per key, the event time of the last row it let through and drops
  rows less than ``within`` away from it; a key's state goes once the watermark is
  ``within`` past that time.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from tidal._time import MIN_TIME
from tidal.api.windows import Sliding, Tumbling
from tidal.operators.base import Operator
from tidal.operators.join import assign_windows
from tidal.operators.timeattr import TimeAttr

__all__ = ["Dedupe", "WindowTopK"]

T, WS, SEQ, LAST, ROW = "__t", "__ws", "__seq", "__last", "__row"


class WindowTopK(Operator):
    """The ``k`` rows with the largest (or smallest) ``by`` per key and window.

    Output: the keys, ``window_start``, ``window_end``, ``rank`` (1 = best), then the rest
    of the row. Ties keep the row that arrived first. Rows all of whose windows have fired
    are late (the ``late`` port).
    """

    stateful = True

    def __init__(self, name: str, keys: list[str], time: TimeAttr, spec: Tumbling | Sliding,
                 k: int, by: list[str], descending: bool = True) -> None:
        super().__init__(name)
        self.keys, self.time, self.k, self.by, self.descending = keys, time, k, by, descending
        self.size, self.every, self.offset = spec.size_ms, spec.every_ms, spec.offset_ms
        self.state: pl.DataFrame | None = None
        self.seq = 0
        self.time_dtype: pl.DataType | None = None

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        if not batch.height:
            return
        if self.time_dtype is None:
            self.time_dtype = batch.schema[self.time.column]
        rows = batch.with_columns(
            self.time.series(batch).alias(T),
            (pl.int_range(batch.height, dtype=pl.Int64) + self.seq).alias(SEQ),
        )
        self.seq += batch.height
        rows = assign_windows(rows, T, self.size, self.every, self.offset, WS)
        if self.watermark > MIN_TIME:
            open_ = pl.col(WS) + self.size > self.watermark
            late = rows.group_by(SEQ).agg(open_.any().alias("__open")).filter(~pl.col("__open"))
            if late.height:
                gone = batch.filter(pl.int_range(pl.len()).is_in(late[SEQ] - (self.seq - batch.height)))
                self.ctx.count_late(gone.height)
                self.emit(gone, "late")
            rows = rows.filter(open_)
        state = rows if self.state is None else pl.concat([self.state, rows], how="diagonal_relaxed")
        self.state = self._best(state)

    def _best(self, rows: pl.DataFrame) -> pl.DataFrame:
        n = len(self.by)
        ordered = rows.sort([*self.by, SEQ], descending=[self.descending] * n + [False],
                            nulls_last=True)
        return ordered.group_by([*self.keys, WS], maintain_order=True).head(self.k)

    def on_watermark(self, watermark: int) -> None:
        self.watermark = watermark
        if self.state is None or not self.state.height:
            return
        fire = pl.col(WS) + self.size <= watermark
        ready = self.state.filter(fire)
        self.state = self.state.filter(~fire)
        if not ready.height:
            return
        group = [*self.keys, WS]
        n = len(self.by)
        ready = ready.sort([WS, *self.keys, *self.by, SEQ],
                           descending=[False] * (len(group)) + [self.descending] * n + [False],
                           nulls_last=True)
        out = ready.with_columns(
            pl.col(WS).alias("window_start"), (pl.col(WS) + self.size).alias("window_end"),
            (pl.int_range(pl.len()).over(group) + 1).cast(pl.Int64).alias("rank"),
        )
        rest = [c for c in out.columns
                if c not in (*self.keys, "window_start", "window_end", "rank", T, WS, SEQ)]
        out = out.select(*self.keys, "window_start", "window_end", "rank", *rest)
        if isinstance(self.time_dtype, pl.Datetime):
            tz = self.time_dtype.time_zone
            out = out.with_columns(pl.from_epoch(pl.col(c), "ms").dt.replace_time_zone(tz)
                                   for c in ("window_start", "window_end"))
        self.emit(out)

    def snapshot(self) -> dict[str, Any]:
        return {"state": self.state, "seq": self.seq, "time_dtype": self.time_dtype,
                "watermark": self.watermark}

    def restore(self, state: dict[str, Any]) -> None:
        self.state, self.seq = state["state"], int(state["seq"])
        self.time_dtype = state["time_dtype"]
        self.watermark = int(state["watermark"])


class Dedupe(Operator):
    """Lets a row through unless the same key let one through less than ``within`` before
    (or after) it in event time. Rows are taken in arrival order, a batch's rows in event-time
    order; rows behind the watermark are late (the ``late`` port), because the state that
    would judge them may be gone.
    """

    stateful = True

    def __init__(self, name: str, keys: list[str], time: TimeAttr, within_ms: int) -> None:
        super().__init__(name)
        self.keys, self.time, self.within = keys, time, within_ms
        self.state: pl.DataFrame | None = None  # keys + LAST

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        if not batch.height:
            return
        t = self.time.series(batch)
        rows = batch.with_columns(t.alias(T), pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW))
        if self.watermark > MIN_TIME and t.min() < self.watermark:  # type: ignore[operator]
            late = rows.filter(pl.col(T) < self.watermark)
            self.ctx.count_late(late.height)
            self.emit(late.drop(T, ROW), "late")
            rows = rows.filter(pl.col(T) >= self.watermark)
        pending = rows.select(*self.keys, T, ROW).sort(T, ROW)
        state = self.state if self.state is not None else pending.select(self.keys).clear() \
            .with_columns(pl.lit(None, pl.Int64).alias(LAST))
        kept: list[pl.Series] = []
        # Each round lets through the first row of every key that is far enough from the
        # key's last kept row, then drops the rows too close to it: as many rounds as the
        # most rows one key keeps in this batch (usually one).
        while pending.height:
            judged = pending.join(state, on=self.keys, how="left", nulls_equal=True,
                                  maintain_order="left")
            far = pl.col(LAST).is_null() | ((pl.col(T) - pl.col(LAST)).abs() >= self.within)
            judged = judged.filter(far)
            first = judged.group_by(self.keys, maintain_order=True).first()
            if not first.height:
                break
            kept.append(first[ROW])
            state = pl.concat([
                state.join(first.select(self.keys), on=self.keys, how="anti", nulls_equal=True),
                first.select(*self.keys, pl.max_horizontal(T, LAST).alias(LAST)),
            ], how="vertical_relaxed")
            pending = judged.filter(~pl.col(ROW).is_in(first[ROW].implode())).drop(LAST)
        self.state = state
        if kept:
            self.emit(rows.filter(pl.col(ROW).is_in(pl.concat(kept).implode())).drop(T, ROW))

    def on_watermark(self, watermark: int) -> None:
        self.watermark = watermark
        if self.state is not None and self.state.height:
            self.state = self.state.filter(pl.col(LAST) + self.within > watermark)

    def snapshot(self) -> dict[str, Any]:
        return {"state": self.state, "watermark": self.watermark}

    def restore(self, state: dict[str, Any]) -> None:
        self.state = state["state"]
        self.watermark = int(state["watermark"])
