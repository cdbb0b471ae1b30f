"""Keyed event-time windows: tumbling, sliding, cumulating and session, with built-in aggregates.

State is columnar: a list of frames of partial aggregates keyed by ``keys + window start``,
merged into one frame (amortized compaction) only when a window can fire or the list grows.
Window assignment runs as Polars expressions; a sliding window pre-aggregates each batch
into panes (the gcd of size and slide) before fanning the much smaller pane partials out to
the windows that contain them. A cumulating window keeps its panes (the step) apart, and a
window's result is the merge of its panes, made when it fires.

Timing rules (``W`` is the operator's watermark before the batch):

- a window ``[start, end)`` fires once when the watermark reaches ``end``;
- it keeps its state until ``end + allowed_lateness``; an event for it arriving in between
  updates it and the corrected result is emitted at once;
- an event all of whose windows ended ``allowed_lateness`` or more before ``W`` is late and
  goes to the ``late`` port (``stream.late()``).
"""

from __future__ import annotations

import polars as pl

from tidal._time import MAX_TIME, MIN_TIME
from tidal.api.agg import TIME, Agg, compile_aggs
from tidal.api.windows import Cumulative, Session, Sliding, Tumbling
from tidal.operators.base import Operator
from tidal.operators.timeattr import TimeAttr

__all__ = ["CumulativeWindowAggregate", "SessionWindowAggregate", "WindowAggregate"]

START = "window_start"
END = "window_end"
_COMPACT_EVERY = 32


class _Aggregating(Operator):
    """What window kinds share: keys, aggregates, event time and output formatting."""

    stateful = True

    def __init__(
        self,
        name: str,
        keys: list[str],
        time: TimeAttr,
        aggs: dict[str, Agg],
        allowed_lateness_ms: int,
        early_every_ms: int | None,
    ) -> None:
        super().__init__(name)
        self.keys = keys
        self.time = time
        self.partial, self.merge, self.final = compile_aggs(aggs)
        self.lateness = allowed_lateness_ms
        self.timer_interval_ms = early_every_ms
        self.time_dtype: pl.DataType | None = None
        self.late_rows = 0

    def with_time(self, batch: pl.DataFrame) -> pl.DataFrame:
        """``batch`` with the Int64 event-time column ``__t`` added."""
        t = self.time.series(batch)
        if self.time_dtype is None:
            self.time_dtype = batch.schema[self.time.column]
        return batch.with_columns(t.alias(TIME))

    def split_late(self, batch: pl.DataFrame, last_end: pl.Expr,
                   earliest_end: int) -> pl.DataFrame:
        """Send rows whose every window has expired to the late port; return the rest.

        ``earliest_end`` is ``last_end`` of the batch's earliest event: when even that one
        is on time, so is the whole batch and no filter runs (the common case).
        """
        if self.watermark == MIN_TIME or earliest_end + self.lateness > self.watermark:
            return batch
        on_time = last_end + self.lateness > self.watermark
        late = batch.filter(~on_time)
        if late.height:
            self.late_rows += late.height
            self.ctx.count_late(late.height)
            self.emit(late.drop(TIME, START, strict=False), "late")
            return batch.filter(on_time)
        return batch

    def output(self, state: pl.DataFrame) -> pl.DataFrame:
        """Final rows: keys, window_start, window_end, then the aggregates."""
        out = state.select(*self.keys, START, END, *self.final)
        if isinstance(self.time_dtype, pl.Datetime):
            dt = self.time_dtype
            out = out.with_columns(
                pl.from_epoch(pl.col(START), "ms").dt.replace_time_zone(dt.time_zone),
                pl.from_epoch(pl.col(END), "ms").dt.replace_time_zone(dt.time_zone),
            )
        return out


class WindowAggregate(_Aggregating):
    """Tumbling and sliding windows with :mod:`tidal.agg` aggregates."""

    def __init__(
        self,
        name: str,
        keys: list[str],
        time: TimeAttr,
        spec: Tumbling | Sliding | Cumulative,
        aggs: dict[str, Agg],
        allowed_lateness_ms: int = 0,
        early_every_ms: int | None = None,
    ) -> None:
        super().__init__(name, keys, time, aggs, allowed_lateness_ms, early_every_ms)
        self.size = spec.size_ms
        self.every = spec.every_ms
        self.pane = spec.pane_ms
        self.offset = spec.offset_ms
        self.sliding = isinstance(spec, Sliding) and spec.every_ms != spec.size_ms
        self.group = [*keys, START]
        self.frames: list[pl.DataFrame] = []
        self.min_start = MAX_TIME
        self.dirty: list[pl.DataFrame] = []

    # -- batches -------------------------------------------------------------------------
    def _floor(self, t: pl.Expr, step: int) -> pl.Expr:
        shifted = t - self.offset
        return shifted - shifted % step + self.offset

    def _floor_int(self, t: int, step: int) -> int:
        return (t - self.offset) - (t - self.offset) % step + self.offset

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        t = self.time.series(batch)
        if self.time_dtype is None:
            self.time_dtype = batch.schema[self.time.column]
        shifted = t - self.offset if self.offset else t
        pane = t - shifted % self.pane
        batch = batch.with_columns(t.alias(TIME), pane.alias(START))
        earliest = self._floor_int(t.min(), self.every) + self.size  # type: ignore[arg-type]
        batch = self.split_late(batch, self._floor(pl.col(TIME), self.every) + self.size, earliest)
        if not batch.height:
            return
        partials = self._pre_aggregate(batch)
        if self.sliding:
            partials = self._fan_out(partials)
        self._add(partials)

    def _pre_aggregate(self, batch: pl.DataFrame) -> pl.DataFrame:
        """Partial aggregates of a batch per key and pane.

        A batch of in-order-ish events spans one or two panes; grouping each pane's rows by
        the keys alone is about 2-3x faster in Polars than grouping by keys and pane
        together, so that is done whenever the batch touches only a few panes.
        """
        lo, hi = batch[START].min(), batch[START].max()
        n_panes = (hi - lo) // self.pane + 1  # type: ignore[operator]
        if not self.keys or n_panes > 4:
            return batch.lazy().group_by(self.group).agg(self.partial).collect()
        parts = []
        for start in range(lo, hi + 1, self.pane):  # type: ignore[call-overload]
            rows = batch if n_panes == 1 else batch.filter(pl.col(START) == start)
            if rows.height:
                parts.append(rows.group_by(self.keys).agg(self.partial)
                             .with_columns(pl.lit(start, pl.Int64).alias(START)))
        return pl.concat(parts).select(*self.group, pl.exclude(self.group))

    def _fan_out(self, panes: pl.DataFrame) -> pl.DataFrame:
        """Give each pane partial one row per sliding window that contains the pane."""
        p = pl.col(START)
        last = self._floor(p, self.every)
        n = -(-self.size // self.every)
        starts = pl.int_ranges(last - (n - 1) * self.every, last + 1, self.every)
        exploded = panes.with_columns(starts.alias("__ws")).explode("__ws")
        keep = (pl.col("__ws") > p - self.size) & (
            pl.col("__ws") + self.size + self.lateness > self.watermark
        )
        windows = exploded.filter(keep).drop(START).rename({"__ws": START})
        return windows.group_by(self.group).agg(self.merge)

    def _add(self, partials: pl.DataFrame) -> None:
        self.frames.append(partials)
        self.min_start = min(self.min_start, partials[START].min())
        if self.timer_interval_ms is not None:
            self.dirty.append(partials.select(self.group))
        if self.watermark > MIN_TIME and self.lateness:
            self._refire(partials)
        if len(self.frames) > _COMPACT_EVERY:
            self._compact()

    def _refire(self, partials: pl.DataFrame) -> None:
        """Late but allowed partials: emit the corrected results of the windows they fall
        in that have already fired."""
        fired = partials.filter(pl.col(START) + self.size <= self.watermark)
        if fired.height:
            state = self._compact()
            self.emit(self.output(state.join(fired.select(self.group), on=self.group)))

    def _compact(self) -> pl.DataFrame:
        if len(self.frames) == 1:
            return self.frames[0]
        merged = pl.concat(self.frames, how="vertical").group_by(self.group).agg(self.merge)
        self.frames = [merged]
        return merged

    # -- time ----------------------------------------------------------------------------
    def on_watermark(self, watermark: int) -> None:
        previous, self.watermark = self.watermark, watermark
        if not self.frames or self.min_start + self.size > watermark:
            return
        state = self._compact()
        end = pl.col(START) + self.size
        self.emit(self.output(state.filter((end <= watermark) & (end > previous))))
        kept = state.filter(end + self.lateness > watermark)
        self.frames = [kept] if kept.height else []
        self.min_start = kept[START].min() if kept.height else MAX_TIME

    def on_timer(self, now_ms: int) -> None:
        """Early results: the current value of every open window updated since the last tick."""
        if not self.dirty or not self.frames:
            self.dirty = []
            return
        touched = pl.concat(self.dirty).unique()
        self.dirty = []
        state = self._compact()
        open_ = state.filter(pl.col(START) + self.size > self.watermark)
        self.emit(self.output(open_.join(touched, on=self.group)))

    def output(self, state: pl.DataFrame) -> pl.DataFrame:
        return super().output(state.with_columns((pl.col(START) + self.size).alias(END)))

    def close(self) -> None:
        self.frames = []

    def snapshot(self) -> dict[str, object]:
        return {"state": self._compact() if self.frames else None, "watermark": self.watermark}

    def restore(self, state: dict[str, object]) -> None:
        frame = state["state"]
        self.frames = [frame] if isinstance(frame, pl.DataFrame) and frame.height else []
        self.min_start = self.frames[0][START].min() if self.frames else MAX_TIME
        self.watermark = int(state["watermark"])  # type: ignore[arg-type]


class CumulativeWindowAggregate(WindowAggregate):
    """Cumulating windows (:func:`tidal.cumulate`) with :mod:`tidal.agg` aggregates.

    Batches are pre-aggregated per key and pane (one ``step``) as for tumbling windows, and
    the panes stay apart in the state: the windows ``[s, s + step)``, ``[s, s + 2*step)``,
    ... of one start ``s`` are distinct results, each the merge of the panes it covers,
    computed when the watermark passes its end. A key's panes are kept until its last window
    (``s + size``) is past the allowed lateness.
    """

    def __init__(
        self,
        name: str,
        keys: list[str],
        time: TimeAttr,
        spec: Cumulative,
        aggs: dict[str, Agg],
        allowed_lateness_ms: int = 0,
        early_every_ms: int | None = None,
    ) -> None:
        super().__init__(name, keys, time, spec, aggs, allowed_lateness_ms, early_every_ms)
        self.step = spec.step_ms

    def _windows(self, panes: pl.DataFrame, first_end: pl.Expr | int,
                 last_end: pl.Expr | int) -> pl.DataFrame:
        """The windows holding ``panes`` whose ends are in ``[first_end, last_end]`` (both on
        a step boundary), each the merge of its panes: keys, window start, end, partials."""
        pane = pl.col(START)
        start = self._floor(pane, self.size)
        lo = pl.max_horizontal(pane + self.step, first_end)
        hi = pl.min_horizontal(start + self.size, last_end)
        ends = pl.int_ranges(lo, hi + 1, self.step, dtype=pl.Int64)
        exploded = panes.with_columns(start.alias(START), ends.alias(END)).explode(END)
        return exploded.filter(pl.col(END).is_not_null()) \
            .group_by([*self.group, END]).agg(self.merge)

    def _last_fired(self) -> int:
        """The end of the last window the watermark has fired."""
        return self._floor_int(self.watermark, self.step)

    def _refire(self, partials: pl.DataFrame) -> None:
        # a pane that fired windows: every window of its start ending at or after it did
        fired = partials.filter(pl.col(START) + self.step <= self.watermark)
        if fired.height:
            state = self._panes_touched_by(fired.select(self.group))
            self.emit(self.output(self._windows(state, pl.col("__from") + self.step,
                                                self._last_fired())))

    def _panes_touched_by(self, panes: pl.DataFrame) -> pl.DataFrame:
        """The state's panes in the windows of ``panes`` (same keys and window start), each
        with the earliest of those ``panes`` in ``__from``."""
        start = self._floor(pl.col(START), self.size).alias("__s")
        touched = panes.group_by(*self.keys, start).agg(pl.col(START).min().alias("__from"))
        state = self._compact().with_columns(start)
        return state.join(touched, on=[*self.keys, "__s"]).drop("__s")

    def on_watermark(self, watermark: int) -> None:
        previous, self.watermark = self.watermark, watermark
        if not self.frames or self.min_start + self.step > watermark:
            return
        state = self._compact()
        first = self.min_start + self.step
        if previous > MIN_TIME:
            first = max(first, self._floor_int(previous, self.step) + self.step)
        last = self._last_fired()
        if first <= last:
            pane = pl.col(START)
            ready = state.filter((pane + self.step <= last)
                                 & (self._floor(pane, self.size) + self.size >= first))
            self.emit(self.output(self._windows(ready, first, last)))
        kept = state.filter(self._floor(pl.col(START), self.size) + self.size + self.lateness
                            > watermark)
        self.frames = [kept] if kept.height else []
        self.min_start = kept[START].min() if kept.height else MAX_TIME

    def on_timer(self, now_ms: int) -> None:
        """Early results: every open window holding a pane updated since the last tick."""
        if not self.dirty or not self.frames:
            self.dirty = []
            return
        state = self._panes_touched_by(pl.concat(self.dirty))
        self.dirty = []
        first = pl.col("__from") + self.step
        if self.watermark > MIN_TIME:
            first = pl.max_horizontal(first, self._last_fired() + self.step)
        self.emit(self.output(self._windows(state, first, self._floor(pl.col(START), self.size)
                                            + self.size)))

    def output(self, state: pl.DataFrame) -> pl.DataFrame:
        return _Aggregating.output(self, state)


class SessionWindowAggregate(_Aggregating):
    """Per-key sessions: a gap longer than ``gap`` starts a new one; touching ones merge."""

    def __init__(
        self,
        name: str,
        keys: list[str],
        time: TimeAttr,
        spec: Session,
        aggs: dict[str, Agg],
        allowed_lateness_ms: int = 0,
        early_every_ms: int | None = None,
    ) -> None:
        super().__init__(name, keys, time, aggs, allowed_lateness_ms, early_every_ms)
        self.gap = spec.gap_ms
        self.state: pl.DataFrame | None = None
        self.changed = False

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        batch = self.with_time(batch)
        t = pl.col(TIME)
        batch = self.split_late(batch, t + self.gap, batch[TIME].min() + self.gap)  # type: ignore[operator]
        if not batch.height:
            return
        new = batch.group_by([*self.keys, TIME]).agg(self.partial)
        new = new.with_columns(t.alias(START), (t + self.gap).alias(END)).drop(TIME)
        merged = self._merge(new if self.state is None else pl.concat([self.state, new], how="diagonal_relaxed"))
        self.state = merged
        self.changed = True
        if self.watermark > MIN_TIME and self.lateness:
            fired = merged.filter(pl.col(END) <= self.watermark)
            if fired.height:  # a late-but-allowed event changed a fired session
                touched = new.select(self.keys).unique()
                self.emit(self.output(fired.join(touched, on=self.keys) if self.keys else fired))

    def _merge(self, sessions: pl.DataFrame) -> pl.DataFrame:
        """Merge overlapping or touching sessions of each key, vectorized."""
        ordered = sessions.sort([*self.keys, START])
        end = pl.col(END)
        reach = end.cum_max().shift(1)
        if self.keys:
            reach = reach.over(self.keys)
        starts_new = (pl.col(START) > reach).fill_null(True)
        ordered = ordered.with_columns(starts_new.cum_sum().alias("__sid"))
        return (
            ordered.group_by([*self.keys, "__sid"])
            .agg(pl.col(START).min(), end.max(), *self.merge)
            .drop("__sid")
        )

    def on_watermark(self, watermark: int) -> None:
        previous, self.watermark = self.watermark, watermark
        if self.state is None or not self.state.height:
            return
        end = pl.col(END)
        self.emit(self.output(self.state.filter((end <= watermark) & (end > previous))))
        self.state = self.state.filter(end + self.lateness > watermark)

    def on_timer(self, now_ms: int) -> None:
        if self.changed and self.state is not None:
            self.emit(self.output(self.state.filter(pl.col(END) > self.watermark)))
        self.changed = False

    def snapshot(self) -> dict[str, object]:
        return {"state": self.state, "watermark": self.watermark}

    def restore(self, state: dict[str, object]) -> None:
        self.state = state["state"]  # type: ignore[assignment]
        self.watermark = int(state["watermark"])  # type: ignore[arg-type]
