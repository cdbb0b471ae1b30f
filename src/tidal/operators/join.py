"""Stream joins as physical operators: interval, regular (TTL), window and temporal joins.

They are parametrized by key columns and time bounds only, so the Python API
(:meth:`tidal.Stream.join`, :meth:`tidal.Stream.lookup`) and SQL plan the same operators.
Port 0 is the left (probe) input, port 1 the right one. Every operator keeps its state as
Polars frames, joins a whole batch against the other side's state with one hash join, and
bounds its state by the watermark (or a TTL):

- :class:`StreamJoin` buffers both sides. An arriving batch joins the other side's buffer,
  so each pair is emitted once, when its later row arrives. With time bounds
  ``[lower, upper]`` (an *interval join*: right rows with ``left.t + lower <= right.t <=
  left.t + upper``) a left row is kept until the watermark passes ``t + upper`` and a right
  row until it passes ``t - lower``; rows behind the watermark on arrival are late (the
  ``late`` port). Without bounds (a *regular join*) rows are kept for ``ttl`` after their
  event time (processing time when a side has no event time). ``how="left"`` emits a left
  row that never matched, with nulls on the right, when it leaves the state.
- :class:`WindowJoin` pairs rows of the same key in the same tumbling/sliding window when
  the window fires (or, for SQL's window join, in the window each row already carries).
- :class:`TemporalJoin` versions a changelog (upsert) stream by its event time and holds each
  probe row until the watermark passes it, then joins it with the latest version at or
  before its time (an as-of join).
- :class:`ReferenceLookup` joins with a static table loaded at start (and on ``refresh``).

Output columns are the left's, then the right's, a clashing right name taking the suffix
``_right``; right key columns with the same names as the left's are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import polars as pl

from tidal._time import MAX_TIME, MIN_TIME
from tidal.api.windows import Sliding, Tumbling
from tidal.operators.base import Operator
from tidal.operators.timeattr import TimeAttr

__all__ = ["ExpiresState", "ReferenceLookup", "StreamJoin", "TemporalJoin", "WindowJoin", "joined_schema"]

How = Literal["inner", "left"]
SUFFIX = "_right"
LT, RT = "__tl", "__tr"  # Int64 event times of the left and right rows
ID, MATCHED = "__id", "__matched"
WS = "__ws"
INTERNAL = [LT, RT, ID, MATCHED, WS, WS + SUFFIX]
_RECHUNK_AT = 64


def joined_schema(left: pl.Schema | None, right: pl.Schema | None, left_keys: list[str],
                  right_keys: list[str]) -> pl.Schema | None:
    """Output columns of a join of ``left`` and ``right`` (None when either is unknown)."""
    if left is None or right is None:
        return None
    lf = pl.LazyFrame(schema=left).join(
        pl.LazyFrame(schema=right), left_on=left_keys, right_on=right_keys, how="left",
        suffix=SUFFIX, coalesce=left_keys == right_keys,
    )
    return lf.collect_schema()


def _append(buffer: pl.DataFrame | None, rows: pl.DataFrame) -> pl.DataFrame:
    if buffer is None or not buffer.height:
        return rows
    if not rows.height:
        return buffer
    try:
        out = pl.concat([buffer, rows], how="vertical", rechunk=False)
    except pl.exceptions.SchemaError:  # a batch with other (e.g. null) types
        out = pl.concat([buffer, rows], how="diagonal_relaxed")
    return out.rechunk() if out.n_chunks() > _RECHUNK_AT else out


def _user(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop(INTERNAL, strict=False)


class ExpiresState:
    """Drops a join's state as time passes: by the watermark in event time, by the clock's
    timers in processing time. Mixed in before :class:`Operator` by operators that define
    ``processing_time``, ``watermark`` and ``_expire(now)``."""

    processing_time: bool
    watermark: int

    def _expire(self, now: int) -> None:
        raise AssertionError("an ExpiresState operator defines _expire")

    def on_watermark(self, watermark: int) -> None:
        self.watermark = watermark
        if not self.processing_time:
            self._expire(watermark)

    def on_timer(self, now_ms: int) -> None:
        if self.processing_time:
            self._expire(now_ms)


class _Join(Operator):
    """What the joins share: keys, the two event times, pairing and padding with nulls."""

    stateful = True

    def __init__(self, name: str, left_keys: list[str], right_keys: list[str],
                 left_time: TimeAttr | None, right_time: TimeAttr | None, how: How,
                 right_schema: pl.Schema | None) -> None:
        super().__init__(name)
        if how not in ("inner", "left"):
            raise ValueError(f"join {name!r}: how must be 'inner' or 'left', not {how!r}")
        if len(left_keys) != len(right_keys):
            raise ValueError(f"join {name!r}: {left_keys} and {right_keys} differ in length")
        self.left_keys, self.right_keys = left_keys, right_keys
        self.left_time, self.right_time = left_time, right_time
        self.how = how
        self.coalesce = left_keys == right_keys
        self.right_empty = None if right_schema is None else pl.DataFrame(schema=right_schema)
        self.late_rows = 0

    def stamp(self, batch: pl.DataFrame, time: TimeAttr | None, column: str) -> pl.DataFrame:
        """``batch`` with its Int64 event time (processing time without one) in ``column``."""
        t = time.series(batch) if time is not None else pl.repeat(self.ctx.now(), batch.height,
                                                                  dtype=pl.Int64, eager=True)
        return batch.with_columns(t.alias(column))

    def remember_right(self, batch: pl.DataFrame) -> None:
        if self.right_empty is None:
            self.right_empty = _user(batch.clear())

    def pair(self, left: pl.DataFrame, right: pl.DataFrame, how: How = "inner",
             extra: list[str] | None = None) -> pl.DataFrame:
        """Hash join ``left`` and ``right`` on the keys (plus ``extra`` columns of both)."""
        return left.join(
            right, left_on=[*self.left_keys, *(extra or [])],
            right_on=[*self.right_keys, *(extra or [])], how=how, suffix=SUFFIX,
            coalesce=self.coalesce, maintain_order="left",
        )

    def pad(self, left: pl.DataFrame) -> pl.DataFrame:
        """Left rows without a partner, with the right's columns as nulls."""
        if self.right_empty is None:  # the right's columns are not known yet
            return _user(left)
        return _user(self.pair(_user(left), self.right_empty, how="left"))

    def split_late(self, batch: pl.DataFrame, column: str) -> pl.DataFrame:
        """Send rows behind the watermark to the ``late`` port; return the rest."""
        if self.watermark == MIN_TIME or batch[column].min() >= self.watermark:  # type: ignore[operator]
            return batch
        on_time = pl.col(column) >= self.watermark
        late = batch.filter(~on_time)
        self.late_rows += late.height
        self.ctx.count_late(late.height)
        self.emit(_user(late), "late")
        return batch.filter(on_time)


class StreamJoin(ExpiresState, _Join):
    """Interval join (``lower``/``upper`` in ms) or regular join (``ttl_ms``); see the module
    docstring. Both bounds None and ``ttl_ms`` None keeps every row forever."""

    def __init__(self, name: str, left_keys: list[str], right_keys: list[str],
                 left_time: TimeAttr | None, right_time: TimeAttr | None, *,
                 lower_ms: int | None = None, upper_ms: int | None = None,
                 ttl_ms: int | None = None, how: How = "inner",
                 right_schema: pl.Schema | None = None) -> None:
        super().__init__(name, left_keys, right_keys, left_time, right_time, how, right_schema)
        self.bounded = lower_ms is not None and upper_ms is not None
        if self.bounded and (left_time is None or right_time is None):
            raise ValueError(f"join {name!r}: an interval join needs event time on both sides")
        if self.bounded and lower_ms > upper_ms:  # type: ignore[operator]
            raise ValueError(f"join {name!r}: lower bound {lower_ms} > upper bound {upper_ms}")
        self.lower, self.upper, self.ttl = lower_ms, upper_ms, ttl_ms
        self.processing_time = left_time is None or right_time is None
        if self.processing_time and ttl_ms is not None:
            self.timer_interval_ms = max(1, min(ttl_ms, 1_000))
        self.left: pl.DataFrame | None = None
        self.right: pl.DataFrame | None = None
        self.next_id = 0
        self.oldest: dict[str, int] = {}
        """The smallest time held per side (LT/RT), when known: a regular join's TTL check
        skips the scan of its whole state while nothing can have expired."""

    def _in_bounds(self) -> pl.Expr | None:
        if not self.bounded:
            return None
        return (pl.col(RT) >= pl.col(LT) + self.lower) & (pl.col(RT) <= pl.col(LT) + self.upper)

    def _pairs(self, left: pl.DataFrame, right: pl.DataFrame | None) -> pl.DataFrame | None:
        if right is None or not right.height or not left.height:
            return None
        pairs = self.pair(left, right)
        bounds = self._in_bounds()
        return pairs.filter(bounds) if bounds is not None else pairs

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        if not batch.height:
            return
        if port == 0:
            rows = self.stamp(batch, self.left_time, LT)
            if self.bounded:
                rows = self.split_late(rows, LT)
            if self.how == "left":
                rows = rows.with_columns(
                    (pl.int_range(rows.height, dtype=pl.Int64) + self.next_id).alias(ID))
                self.next_id += rows.height
            pairs = self._pairs(rows, self.right)
            if pairs is not None:
                self.emit(_user(pairs))
            if self.how == "left":
                hit = (pl.col(ID).is_in(pairs[ID].unique().implode())
                       if pairs is not None and pairs.height else pl.lit(False))
                rows = rows.with_columns(hit.alias(MATCHED))
            self.left = _append(self.left, rows)
            self._note_oldest(LT, rows)
        else:
            self.remember_right(batch)
            rows = self.stamp(batch, self.right_time, RT)
            if self.bounded:
                rows = self.split_late(rows, RT)
            pairs = self._pairs(self.left, rows) if self.left is not None else None
            if pairs is not None and pairs.height:
                self.emit(_user(pairs))
                if self.how == "left":
                    hit = pl.col(ID).is_in(pairs[ID].unique().implode())
                    self.left = self.left.with_columns(pl.col(MATCHED) | hit)  # type: ignore[union-attr]
            self.right = _append(self.right, rows)
            self._note_oldest(RT, rows)

    def _note_oldest(self, column: str, rows: pl.DataFrame) -> None:
        if column in self.oldest and rows.height:
            self.oldest[column] = min(self.oldest[column], rows[column].min())  # type: ignore[type-var]

    # -- state bounds ----------------------------------------------------------------------
    def _expire(self, now: int) -> None:
        """Drop rows that can no longer match (``now``: watermark or processing time)."""
        if self.left is not None and self.left.height and not self._unexpired(LT, now):
            keep = self._keep(LT, now)
            if self.how == "left":
                gone = self.left.filter(~keep & ~pl.col(MATCHED))
                if gone.height:
                    self.emit(self.pad(gone.sort(LT)))
            self.left = self.left.filter(keep)
            self.oldest.pop(LT, None)
        if self.right is not None and self.right.height and not self._unexpired(RT, now):
            self.right = self.right.filter(self._keep(RT, now))
            self.oldest.pop(RT, None)

    def _unexpired(self, column: str, now: int) -> bool:
        """True when a side surely keeps every row at ``now``: its oldest row passes
        :meth:`_keep`, and a younger row passes it too."""
        if not self.bounded and self.ttl is None:
            return True
        frame = self.left if column == LT else self.right
        if column not in self.oldest:
            assert frame is not None
            self.oldest[column] = frame[column].min()  # type: ignore[assignment]
        oldest = self.oldest[column]
        if oldest is None:  # no times (all null): let the filter decide
            return False
        if self.bounded:
            bound = oldest + self.upper if column == LT else oldest - self.lower  # type: ignore[operator]
            if bound < now:
                return False
        return self.ttl is None or oldest + self.ttl > now

    def _keep(self, column: str, now: int) -> pl.Expr:
        t = pl.col(column)
        keep = pl.lit(True)
        if self.bounded:
            # a left row can meet right rows up to t + upper, a right row left rows from t - lower
            bound = t + self.upper if column == LT else t - self.lower  # type: ignore[operator]
            keep = bound >= now
        if self.ttl is not None:
            keep = keep & (t + self.ttl > now)
        return keep

    def close(self) -> None:
        if self.processing_time and self.how == "left":
            self._expire(MAX_TIME)  # bounded input ended: unmatched left rows are final

    def snapshot(self) -> dict[str, Any]:
        return {"left": self.left, "right": self.right, "next_id": self.next_id,
                "right_empty": self.right_empty, "watermark": self.watermark}

    def restore(self, state: dict[str, Any]) -> None:
        self.left, self.right = state["left"], state["right"]
        self.oldest = {}
        self.next_id = int(state["next_id"])
        self.right_empty = state["right_empty"] if self.right_empty is None else self.right_empty
        self.watermark = int(state["watermark"])


class WindowJoin(_Join):
    """Pairs of rows with equal keys in the same tumbling or sliding window, emitted when the
    window fires, with ``window_start`` and ``window_end`` after the joined columns.

    With ``spec=None`` the rows already carry their window (SQL's window join of window TVF
    rows or window aggregates): ``left_time``/``right_time`` then read each row's window
    *end*, the keys include the window columns, and the output adds no columns.
    """

    def __init__(self, name: str, left_keys: list[str], right_keys: list[str],
                 left_time: TimeAttr, right_time: TimeAttr, spec: Tumbling | Sliding | None, *,
                 how: How = "inner", right_schema: pl.Schema | None = None) -> None:
        super().__init__(name, left_keys, right_keys, left_time, right_time, how, right_schema)
        self.given = spec is None
        if spec is None:  # WS holds each row's window end: a window of size 0 from there
            self.size, self.every, self.offset = 0, 1, 0
        else:
            self.size, self.every, self.offset = spec.size_ms, spec.every_ms, spec.offset_ms
        self.sides: list[pl.DataFrame | None] = [None, None]
        self.time_dtype: pl.DataType | None = None

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        if not batch.height:
            return
        if port == 1:
            self.remember_right(batch)
        elif self.time_dtype is None:
            assert self.left_time is not None
            self.time_dtype = batch.schema[self.left_time.column]
        column = LT if port == 0 else RT
        rows = self.stamp(batch, self.left_time if port == 0 else self.right_time, column)
        if self.given:
            rows = rows.with_columns(pl.col(column).alias(WS))
        else:
            rows = assign_windows(rows, column, self.size, self.every, self.offset, WS)
        end = pl.col(WS) + self.size
        if self.watermark > MIN_TIME and rows[WS].min() + self.size <= self.watermark:  # type: ignore[operator]
            fired = rows.filter(end <= self.watermark)
            rows = rows.filter(end > self.watermark)
            # a row is late only when every one of its windows has fired
            late = fired.join(rows.select(column).unique(), on=column, how="anti").drop(WS)
            late = late.unique(maintain_order=True)
            if late.height:
                self.late_rows += late.height
                self.ctx.count_late(late.height)
                self.emit(_user(late), "late")
        self.sides[port] = _append(self.sides[port], rows)

    def on_watermark(self, watermark: int) -> None:
        self.watermark = watermark
        left, right = self.sides
        fire = pl.col(WS) + self.size <= watermark
        ready_left = left.filter(fire) if left is not None else None
        ready_right = right.filter(fire) if right is not None else None
        if ready_left is not None and ready_left.height:
            if ready_right is None or not ready_right.height:
                if self.how == "left":
                    self.emit(self._windowed(self.pad(ready_left.drop(WS)), ready_left[WS]))
            else:
                pairs = self.pair(ready_left, ready_right, how=self.how,
                                  extra=[] if self.given else [WS])
                self.emit(self._windowed(_user(pairs), pairs[WS]))
        if left is not None:
            self.sides[0] = left.filter(~fire)
        if right is not None:
            self.sides[1] = right.filter(~fire)

    def _windowed(self, rows: pl.DataFrame, starts: pl.Series) -> pl.DataFrame:
        if self.given:
            return rows
        start, end = starts.alias("window_start"), (starts + self.size).alias("window_end")
        out = rows.with_columns(start, end)
        if isinstance(self.time_dtype, pl.Datetime):
            tz = self.time_dtype.time_zone
            out = out.with_columns(
                pl.from_epoch(pl.col(c), "ms").dt.replace_time_zone(tz)
                for c in ("window_start", "window_end"))
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"sides": list(self.sides), "right_empty": self.right_empty,
                "time_dtype": self.time_dtype, "watermark": self.watermark}

    def restore(self, state: dict[str, Any]) -> None:
        self.sides = list(state["sides"])
        self.right_empty = state["right_empty"] if self.right_empty is None else self.right_empty
        self.time_dtype = state["time_dtype"]
        self.watermark = int(state["watermark"])


def assign_windows(rows: pl.DataFrame, time: str, size: int, every: int, offset: int,
                   column: str) -> pl.DataFrame:
    """``rows`` with the start of their window in ``column`` (one row per window: a sliding
    window of ``size`` every ``every`` repeats each row ``size / every`` times)."""
    t = pl.col(time)
    last = (t - offset) - (t - offset) % every + offset
    if every == size:
        return rows.with_columns(last.alias(column))
    n = -(-size // every)
    starts = pl.int_ranges(last - (n - 1) * every, last + 1, every)
    rows = rows.with_columns(starts.alias(column)).explode(column)
    return rows.filter(pl.col(column) > t - size)


class TemporalJoin(_Join):
    """Probe rows (port 0) joined with the version of a changelog stream (port 1) that was
    current at their event time: the latest right row of the key with ``right.t <=
    left.t``. Probe rows wait until the watermark (the minimum of both inputs') passes them,
    so every version up to their time has arrived; they are emitted in event-time order.
    Versions older than the latest one before the watermark are dropped."""

    def __init__(self, name: str, left_keys: list[str], right_keys: list[str],
                 left_time: TimeAttr, right_time: TimeAttr, *, how: How = "left",
                 right_schema: pl.Schema | None = None) -> None:
        super().__init__(name, left_keys, right_keys, left_time, right_time, how, right_schema)
        self.probes: pl.DataFrame | None = None
        self.versions: pl.DataFrame | None = None

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        if not batch.height:
            return
        if port == 0:
            rows = self.split_late(self.stamp(batch, self.left_time, LT), LT)
            self.probes = _append(self.probes, rows)
        else:
            self.remember_right(batch)
            self.versions = _append(self.versions, self.stamp(batch, self.right_time, RT))

    def on_watermark(self, watermark: int) -> None:
        self.watermark = watermark
        if self.probes is not None and self.probes.height:
            ready = self.probes.filter(pl.col(LT) < watermark)
            if ready.height:
                self.probes = self.probes.filter(pl.col(LT) >= watermark)
                self.emit(self._as_of(ready.sort(LT, maintain_order=True)))
        if self.versions is not None and self.versions.height:
            t = pl.col(RT)
            current = pl.when(t < watermark).then(t).max().over(self.right_keys)
            self.versions = self.versions.filter((t >= watermark) | (t == current))

    def _as_of(self, probes: pl.DataFrame) -> pl.DataFrame:
        if self.versions is None or not self.versions.height:
            return self.pad(probes) if self.how == "left" else probes.clear().pipe(self.pad)
        versions = self.versions.sort(RT)
        out = probes.join_asof(
            versions, left_on=LT, right_on=RT, by_left=self.left_keys, by_right=self.right_keys,
            strategy="backward", suffix=SUFFIX, check_sortedness=False,
        )
        if self.how == "inner":
            out = out.filter(pl.col(RT).is_not_null())
        if not self.coalesce:  # as-of joins drop the right keys; the other joins keep them
            out = out.with_columns(
                pl.when(pl.col(RT).is_not_null()).then(pl.col(lk)).alias(_right_name(rk, probes))
                for lk, rk in zip(self.left_keys, self.right_keys, strict=True))
        return _user(out)

    def snapshot(self) -> dict[str, Any]:
        return {"probes": self.probes, "versions": self.versions,
                "right_empty": self.right_empty, "watermark": self.watermark}

    def restore(self, state: dict[str, Any]) -> None:
        self.probes, self.versions = state["probes"], state["versions"]
        self.right_empty = state["right_empty"] if self.right_empty is None else self.right_empty
        self.watermark = int(state["watermark"])


def _right_name(column: str, left: pl.DataFrame) -> str:
    return f"{column}{SUFFIX}" if column in left.columns else column


class ReferenceLookup(Operator):
    """Joins each batch with a static table loaded by ``load()`` when the operator opens,
    and again every ``refresh_ms`` of processing time if given. One row per key: when the
    table has several, the last wins."""

    def __init__(self, name: str, left_keys: list[str], right_keys: list[str],
                 load: Callable[[], pl.DataFrame], *, how: How = "left",
                 refresh_ms: int | None = None) -> None:
        super().__init__(name)
        self.left_keys, self.right_keys, self.how = left_keys, right_keys, how
        self.load = load
        self.timer_interval_ms = refresh_ms
        self.table: pl.DataFrame | None = None

    def open(self, ctx: Any) -> None:
        super().open(ctx)
        self._reload()

    def _reload(self) -> None:
        self.table = self.load().unique(self.right_keys, keep="last", maintain_order=True)

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        assert self.table is not None
        self.emit(batch.join(
            self.table, left_on=self.left_keys, right_on=self.right_keys, how=self.how,
            suffix=SUFFIX, coalesce=self.left_keys == self.right_keys, maintain_order="left",
        ))

    def on_timer(self, now_ms: int) -> None:
        self._reload()
