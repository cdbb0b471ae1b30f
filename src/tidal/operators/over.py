"""OVER aggregation windows: SQL's ``AGG(x) OVER (PARTITION BY p ORDER BY t <frame>)``, one
output row per input row carrying aggregates over a frame of the rows before it.

Frames (``preceding`` is a row count for ROWS, milliseconds for RANGE; ``None`` is
``UNBOUNDED PRECEDING``), always ending at the current row:

- ``ROWS BETWEEN n PRECEDING AND CURRENT ROW``: the row and the ``n`` rows before it in
  its partition, rows with equal times in arrival order;
- ``RANGE BETWEEN INTERVAL ... PRECEDING AND CURRENT ROW``: every row whose time is within
  ``preceding`` ms before the row's time, *peers* (rows with the same time) included.

:class:`OverAggregate` has two modes.

**Append input** (Flink's OVER): rows wait until the watermark passes their time (a row at
``t`` is ready once the watermark is above ``t``, so all its peers are in), then a batch of
ready rows is computed at once and emitted in time order; a row arriving behind the
watermark is late and goes to the ``late`` port. State per partition is only what a later
frame can still need: the last ``n`` rows (ROWS), the rows within ``preceding`` of the
watermark (RANGE) or one row of running totals (UNBOUNDED). With ``by_arrival`` (ORDER BY
a processing-time attribute) every row is ready as it arrives.

**Updating input** (``key`` given): the input is an upsert stream, each row replacing the
row of its key. Every current row is kept; a batch of upserts re-computes the partitions it
touches (the old row of a key leaves its partition, the new one enters) and emits, keyed by
``key``, each row whose aggregates changed and each upserted row. Rows with equal times
are ordered by the key. The input must not delete rows.

Computation is vectorized: kept rows and new rows are concatenated, sorted by partition
and time, and the frame aggregates are Polars ``rolling_*``, ``rolling_*_by`` and ``cum_*``
expressions evaluated ``.over(partition)``. Aggregates: COUNT, SUM, MIN, MAX and AVG (of
an integer: an integer, truncated towards zero like Flink's).

>>> import polars as pl
>>> from tidal.operators.timeattr import TimeAttr
>>> op = OverAggregate("o", ["k"], TimeAttr("t"), Frame("rows", 1),
...                    [OverAgg("SUM", "x", "s")], key=["id"])
>>> rows = []
>>> op.ctx = type("Ctx", (), {"emit": lambda self, b, port: rows.append(b)})()
>>> op.on_batch(pl.DataFrame({"id": [1, 2, 3], "k": ["a"] * 3, "t": [1, 2, 3],
...                           "x": [10, 20, 30]}), 0)
>>> rows[-1]["s"].to_list()
[10, 30, 50]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from tidal._time import MIN_TIME
from tidal.operators.base import Operator
from tidal.operators.timeattr import TimeAttr

__all__ = ["FUNCTIONS", "Frame", "OverAgg", "OverAggregate"]

TIME = "__over_t"
SEQ = "__over_seq"
NEW = "__over_new"
GLOBAL = "__over_all"
FUNCTIONS = ("COUNT", "SUM", "MIN", "MAX", "AVG")


@dataclass(frozen=True)
class OverAgg:
    """One aggregate over the frame: ``function`` of input ``column`` (``None``: COUNT(*))
    into the output column ``output``."""

    function: str
    column: str | None
    output: str

    def dtype(self, schema: pl.Schema) -> pl.DataType:
        """The output column's type for an input of ``schema``."""
        if self.function == "COUNT":
            return pl.Int64()
        assert self.column is not None
        src = schema[self.column]
        if self.function in ("MIN", "MAX"):
            return src
        return pl.Int64() if src.is_integer() else pl.Float64()


@dataclass(frozen=True)
class Frame:
    """``unit`` ``"rows"`` or ``"range"``, from ``preceding`` rows / milliseconds before
    the current row (``None``: UNBOUNDED PRECEDING) to the current row."""

    unit: str
    preceding: int | None

    def __post_init__(self) -> None:
        if self.unit not in ("rows", "range"):
            raise ValueError(f"frame unit must be 'rows' or 'range', not {self.unit!r}")
        if self.preceding is not None and self.preceding < 0:
            raise ValueError(f"frame preceding must be >= 0, got {self.preceding}")


class OverAggregate(Operator):
    """Frame aggregates per input row (see the module docstring).

    Output: the input's columns, then one column per aggregate (:meth:`output_schema`).
    """

    stateful = True

    def __init__(self, name: str, partition: list[str], order: TimeAttr, frame: Frame,
                 aggs: list[OverAgg], *, key: list[str] | None = None,
                 by_arrival: bool = False) -> None:
        super().__init__(name)
        if not aggs:
            raise ValueError(f"OverAggregate {name}: no aggregates")
        for a in aggs:
            if a.function not in FUNCTIONS:
                raise ValueError(f"OverAggregate {name}: unknown aggregate {a.function!r}")
            if a.column is None and a.function != "COUNT":
                raise ValueError(f"OverAggregate {name}: {a.function} needs a column")
        self.partition = list(partition)
        self.part = self.partition or [GLOBAL]
        self.order, self.frame, self.aggs = order, frame, aggs
        self.key = list(key) if key else None
        self.by_arrival = by_arrival
        self.pending: list[pl.DataFrame] = []  # append: rows waiting for the watermark
        self.tail: pl.DataFrame | None = None  # append: partials a later frame may need
        self.rows: pl.DataFrame | None = None  # updating: every current row, with results
        self.seq = 0
        self.max_time = MIN_TIME
        self.columns: list[str] | None = None
        self.input_schema: pl.Schema | None = None

    @staticmethod
    def output_schema(schema: pl.Schema, aggs: list[OverAgg]) -> pl.Schema:
        """The output columns for an input of ``schema``."""
        return pl.Schema({**schema, **{a.output: a.dtype(schema) for a in aggs}})

    # -- partial values and frames -------------------------------------------------------
    def _partials(self) -> dict[str, pl.Expr]:
        """Per aggregate ``i``, the per-row values its frames combine: ``__over_s{i}`` (sum,
        nulls as 0), ``__over_n{i}`` (non-null count), ``__over_m{i}`` (MIN/MAX: the value)."""
        out: dict[str, pl.Expr] = {}
        for i, a in enumerate(self.aggs):
            c = pl.col(a.column) if a.column is not None else None
            if a.function in ("MIN", "MAX"):
                assert c is not None
                out[f"__over_m{i}"] = c
                continue
            out[f"__over_n{i}"] = (pl.lit(1) if c is None else c.is_not_null()).cast(pl.Int64)
            if a.function in ("SUM", "AVG"):
                assert c is not None
                out[f"__over_s{i}"] = c.fill_null(0)
        return out

    def _windowed(self, name: str, least: bool) -> pl.Expr:
        """Partial column ``name`` combined over each row's frame (rows sorted by partition,
        time and tie-break): a sum, or the least (``least``) / greatest value for MIN/MAX."""
        c = pl.col(name)
        extreme = name.startswith("__over_m")
        n = self.frame.preceding
        if n is None:
            e = (c.cum_min() if least else c.cum_max()).forward_fill() if extreme \
                else c.cum_sum()
            return e.over(self.part)
        if self.frame.unit == "rows":
            kind = "sum" if not extreme else "min" if least else "max"
            return getattr(c, f"rolling_{kind}")(window_size=n + 1, min_samples=1) \
                .over(self.part)
        size = f"{n + 1}i"  # (t - n - 1, t] = [t - n, t], peers included
        kind = "sum" if not extreme else "min" if least else "max"
        return getattr(c, f"rolling_{kind}_by")(TIME, window_size=size).over(self.part)

    def _compute(self, frame: pl.DataFrame, tiebreak: list[str]) -> pl.DataFrame:
        """``frame`` sorted by partition, time and ``tiebreak``, with each partial column
        ``c`` combined over the row's frame in ``c + "w"``."""
        frame = frame.sort([*self.part, TIME, *tiebreak], maintain_order=True)
        exprs = []
        for c in self._partials():
            least = c.startswith("__over_m") and \
                self.aggs[int(c[len("__over_m"):])].function == "MIN"
            exprs.append(self._windowed(c, least).alias(c + "w"))
        frame = frame.with_columns(exprs)
        if self.frame.preceding is None and self.frame.unit == "range":
            # running totals end at the row's last peer (a separate step: a window
            # expression nested in another would run per peer group)
            frame = frame.with_columns(pl.col(f"{c}w").last().over([*self.part, TIME])
                                       for c in self._partials())
        return frame

    def _finals(self) -> list[pl.Expr]:
        """The output columns from the combined partials of :meth:`_compute`."""
        assert self.input_schema is not None
        out = []
        for i, a in enumerate(self.aggs):
            if a.function in ("MIN", "MAX"):
                out.append(pl.col(f"__over_m{i}w").alias(a.output))
                continue
            n = pl.col(f"__over_n{i}w")
            if a.function == "COUNT":
                out.append(n.alias(a.output))
                continue
            s = pl.col(f"__over_s{i}w")
            dtype = a.dtype(self.input_schema)
            if a.function == "SUM":
                e = s
            elif dtype.is_integer():  # AVG of an integer is an integer, truncated (Flink)
                q = s // n
                e = pl.when((s % n != 0) & (s < 0)).then(q + 1).otherwise(q)
            else:
                e = s.cast(pl.Float64) / n
            out.append(pl.when(n > 0).then(e).otherwise(None).cast(dtype).alias(a.output))
        return out

    def _prepare(self, batch: pl.DataFrame) -> pl.DataFrame:
        """``batch`` with its time (``TIME``), a sequence number (``SEQ``) and partials."""
        if self.columns is None:
            self.columns, self.input_schema = batch.columns, batch.schema
        extra = {TIME: self.order.series(batch),
                 SEQ: pl.int_range(batch.height, dtype=pl.Int64) + self.seq}
        self.seq += batch.height
        if not self.partition:
            extra[GLOBAL] = pl.lit(0, pl.Int8)
        return batch.with_columns(**extra).with_columns(**self._partials())

    # -- append input ---------------------------------------------------------------------
    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        if not batch.height:
            return
        if self.key is not None:
            self._upsert(batch)
            return
        rows = self._prepare(batch)
        if self.by_arrival:
            self._emit_ready(rows)
            return
        if self.watermark != MIN_TIME:
            on_time = pl.col(TIME) >= self.watermark
            late = rows.filter(~on_time)
            if late.height:
                self.ctx.count_late(late.height)
                self.emit(late.select(batch.columns), "late")
                rows = rows.filter(on_time)
        if rows.height:
            self.pending.append(rows)

    def on_watermark(self, watermark: int) -> None:
        super().on_watermark(watermark)
        if not self.pending:
            return
        waiting = pl.concat(self.pending, how="vertical_relaxed") if len(self.pending) > 1 \
            else self.pending[0]
        ready = pl.col(TIME) < watermark
        self._emit_ready(waiting.filter(ready))
        rest = waiting.filter(~ready)
        self.pending = [rest] if rest.height else []

    def _emit_ready(self, rows: pl.DataFrame) -> None:
        """Compute and emit ``rows``, all later than every row emitted before."""
        if not rows.height:
            return
        assert self.columns is not None
        frame = rows.with_columns(pl.lit(True).alias(NEW))
        if self.tail is not None and self.tail.height:
            frame = pl.concat([self.tail.with_columns(pl.lit(False).alias(NEW)), frame],
                              how="diagonal_relaxed")
        done = self._compute(frame, [SEQ])
        self.max_time = max(self.max_time, int(rows[TIME].max()))  # type: ignore[arg-type]
        self._keep_tail(done)
        out = done.filter(pl.col(NEW)).sort([TIME, SEQ])
        self.emit(out.select(*self.columns, *self._finals()))

    def _keep_tail(self, done: pl.DataFrame) -> None:
        """Keep what later frames need from ``done`` (sorted by partition and time): the
        last rows' partials (ROWS), the partials of rows still in range (RANGE), or each
        partition's running totals (UNBOUNDED)."""
        partials = list(self._partials())
        n = self.frame.preceding
        if n is None:
            self.tail = done.group_by(self.part, maintain_order=True).last() \
                .select(*self.part, TIME, SEQ, *[pl.col(c + "w").alias(c) for c in partials])
            return
        raw = done.select(*self.part, TIME, SEQ, *partials)
        if self.frame.unit == "rows":
            self.tail = raw.group_by(self.part, maintain_order=True).tail(n) if n else None
        else:
            horizon = self.max_time if self.by_arrival else self.watermark
            self.tail = raw.filter(pl.col(TIME) >= max(horizon - n, MIN_TIME + 1))

    # -- updating input -------------------------------------------------------------------
    def _upsert(self, batch: pl.DataFrame) -> None:
        """Replace the rows of the batch's keys, re-compute the partitions they touch and
        emit every row whose result changed."""
        assert self.key is not None
        key = self.key
        rows = self._prepare(batch.unique(subset=key, keep="last", maintain_order=True))
        assert self.columns is not None and self.input_schema is not None
        outputs = [a.output for a in self.aggs]
        own = [*self.columns, *(c for c in self.part if c not in self.columns), TIME]
        if self.rows is None:
            self.rows = rows.select(own).clear().with_columns(
                pl.lit(None, a.dtype(self.input_schema)).alias(a.output) for a in self.aggs)
        moved = self.rows.join(rows.select(key), on=key, how="semi", nulls_equal=True)
        touched = pl.concat([rows.select(self.part), moved.select(self.part)]).unique()
        before = self.rows.join(touched, on=self.part, how="semi", nulls_equal=True)
        kept = before.join(rows.select(key), on=key, how="anti", nulls_equal=True)
        frame = pl.concat([kept.drop(outputs).with_columns(pl.lit(False).alias(NEW)),
                           rows.drop(SEQ).with_columns(pl.lit(True).alias(NEW))],
                          how="diagonal_relaxed").with_columns(**self._partials())
        done = self._compute(frame, key)
        result = done.select(*own, NEW, *self._finals())
        old = before.select(*key, *[pl.col(o).alias(o + "__old") for o in outputs])
        compared = result.join(old, on=key, how="left", nulls_equal=True,
                               maintain_order="left")
        changed = pl.col(NEW)
        for o in outputs:
            changed = changed | pl.col(o).ne_missing(pl.col(o + "__old"))
        self.emit(compared.filter(changed).select(*self.columns, *outputs))
        rest = self.rows.join(touched, on=self.part, how="anti", nulls_equal=True)
        self.rows = pl.concat([rest, result.drop(NEW).select(self.rows.columns)],
                              how="vertical_relaxed")

    # -- checkpoints ----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        pending = pl.concat(self.pending, how="vertical_relaxed") if self.pending else None
        return {"pending": pending, "tail": self.tail, "rows": self.rows, "seq": self.seq,
                "max_time": self.max_time, "columns": self.columns,
                "schema": dict(self.input_schema) if self.input_schema is not None else None}

    def restore(self, state: dict[str, Any]) -> None:
        pending = state["pending"]
        self.pending = [pending] if pending is not None and pending.height else []
        self.tail, self.rows = state["tail"], state["rows"]
        self.seq, self.max_time = int(state["seq"]), int(state["max_time"])
        self.columns = state["columns"]
        self.input_schema = pl.Schema(state["schema"]) if state["schema"] is not None else None
