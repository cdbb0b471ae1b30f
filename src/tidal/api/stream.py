"""Streams: the fluent dataflow API.

>>> import polars as pl, tidal as td
>>> flow = td.Flow("example")
>>> bids = flow.source(td.sources.memory([{"auction": 1, "price": 5, "t": 0}]), timestamp="t")
>>> out = bids.filter(pl.col("price") > 1).key_by("auction").window(td.tumbling("10s")) \\
...           .agg(n=td.agg.count())
>>> rows = []; out.sink(td.sinks.callback(rows.extend)); _ = flow.run(quiet=True)
>>> rows
[{'auction': 1, 'window_start': 0, 'window_end': 10000, 'n': 1}]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from tidal._time import Duration, duration_ms
from tidal.api.agg import Agg
from tidal.api.windows import Cumulative, Session, Sliding, Tumbling, WindowSpec
from tidal.errors import ConfigError, PlanError
from tidal.operators.base import Operator
from tidal.operators.keyed import (
    KeyState,
    RunningAggregate,
    RunningReduce,
    UpdateState,
    WindowReduce,
)
from tidal.operators.stateless import Expressions, MapBatches, Passthrough, RecordFunction
from tidal.operators.timeattr import TimeAttr
from tidal.operators.window import (
    CumulativeWindowAggregate,
    SessionWindowAggregate,
    WindowAggregate,
)
from tidal.plan import Node, caller_location, check_columns, infer_schema

if TYPE_CHECKING:
    from tidal.api.flow import Flow
    from tidal.api.pattern import Pattern
    from tidal.connectors.base import Sink

__all__ = ["KeyedStream", "Stream", "WindowedStream"]

IntoExpr = pl.Expr | str
_LATE_KINDS = {"window", "join", "top_k", "dedupe", "match"}


class Stream:
    """An unbounded sequence of rows flowing through a :class:`~tidal.Flow`.

    Methods return new streams; nothing runs until :meth:`tidal.Flow.run`.
    """

    def __init__(self, flow: Flow, node: Node) -> None:
        self.flow = flow
        self.node = node

    # -- helpers ---------------------------------------------------------------------------
    def _then(
        self, kind: str, label: str, make: Callable[[str], Operator], *,
        schema: pl.Schema | None, time: TimeAttr | None | Literal["keep"] = "keep",
        name: str | None = None, stateful: bool = False, where: str | None = None,
        inputs: list[tuple[Node, str]] | None = None, signature: str | None = None,
        **options: Any,
    ) -> Stream:
        step = self.flow._unique_name(name or label, explicit=name is not None, stateful=stateful)
        if time == "keep":
            time = self.node.time
            if time is not None and schema is not None and time.column not in schema:
                time = None  # the step dropped the timestamp column
        node = Node(
            kind, step, inputs or [(self.node, "out")], lambda: make(step), time=time,
            schema=schema, stateful=stateful, where=where or caller_location(), options=options,
            signature=signature or label,
        )
        self.flow._add(node)
        return Stream(self.flow, node)

    @property
    def schema(self) -> pl.Schema | None:
        """The stream's columns and types, when known before running."""
        return self.node.schema

    @property
    def name(self) -> str:
        """The name of the step producing this stream."""
        return self.node.name

    # -- vectorized stateless operators ----------------------------------------------------
    def select(self, *exprs: IntoExpr | Iterable[IntoExpr], name: str | None = None,
               **named: IntoExpr) -> Stream:
        """Keep or compute columns with Polars expressions (one kernel call per batch)."""
        es = _exprs(exprs, named)
        where = caller_location()
        schema = infer_schema("select", where, self.schema, lambda lf: lf.select(es))
        return self._then("select", "select", lambda n: Expressions(n, "select", es),
                          schema=schema, name=name, where=where)

    def with_columns(self, *exprs: IntoExpr | Iterable[IntoExpr], name: str | None = None,
                     **named: IntoExpr) -> Stream:
        """Add or replace columns with Polars expressions."""
        es = _exprs(exprs, named)
        where = caller_location()
        schema = infer_schema("with_columns", where, self.schema, lambda lf: lf.with_columns(es))
        return self._then("with_columns", "with_columns",
                          lambda n: Expressions(n, "with_columns", es), schema=schema, name=name,
                          where=where)

    def filter(self, predicate: pl.Expr | Callable[[dict[str, Any]], bool],
               name: str | None = None) -> Stream:
        """Keep rows where ``predicate`` holds.

        A Polars expression runs vectorized; a Python function ``fn(record) -> bool`` runs
        per record (the slow path).
        """
        where = caller_location()
        if isinstance(predicate, pl.Expr):
            infer_schema("filter", where, self.schema, lambda lf: lf.filter(predicate))
            return self._then("filter", "filter",
                              lambda n: Expressions(n, "filter", [predicate]),
                              schema=self.schema, name=name, where=where)
        _check_callable("filter", predicate, where)
        return self._then("filter", "filter", lambda n: RecordFunction(n, "filter", predicate),
                          schema=self.schema, name=name, where=where)

    # -- per-record and per-batch Python ---------------------------------------------------
    def map(self, fn: Callable[[dict[str, Any]], dict[str, Any]], name: str | None = None) -> Stream:
        """Transform each record with ``fn(record) -> record`` (per-record Python: slow path;
        prefer :meth:`with_columns`). Records on which ``fn`` raises go to the dead letters."""
        where = caller_location()
        _check_callable("map", fn, where)
        return self._then("map", "map", lambda n: RecordFunction(n, "map", fn), schema=None,
                          time=self._time_if_kept(), name=name, where=where)

    def flat_map(self, fn: Callable[[dict[str, Any]], Iterable[dict[str, Any]]],
                 name: str | None = None) -> Stream:
        """Turn each record into zero or more records with ``fn(record) -> [record, ...]``."""
        where = caller_location()
        _check_callable("flat_map", fn, where)
        return self._then("flat_map", "flat_map", lambda n: RecordFunction(n, "flat_map", fn),
                          schema=None, time=self._time_if_kept(), name=name, where=where)

    def map_batches(self, fn: Callable[[pl.DataFrame], pl.DataFrame],
                    name: str | None = None) -> Stream:
        """Transform whole batches with ``fn(frame) -> frame`` (vectorized Python)."""
        where = caller_location()
        _check_callable("map_batches", fn, where)
        return self._then("map_batches", "map_batches", lambda n: MapBatches(n, fn),
                          schema=None, time=self._time_if_kept(), name=name, where=where)

    def _time_if_kept(self) -> TimeAttr | None:
        # after opaque Python the schema is unknown; event time survives if the column does,
        # which the runtime checks batch by batch
        return self.node.time

    def union(self, *others: Stream, name: str | None = None) -> Stream:
        """Merge streams with the same columns; the watermark is the minimum of the inputs'."""
        where = caller_location()
        for o in others:
            if o.flow is not self.flow:
                raise PlanError(f"union at {where}: streams belong to different flows")
            if o.node.time != self.node.time:
                raise PlanError(
                    f"union at {where}: inputs have different event times "
                    f"({self.node.time} vs {o.node.time}); give them the same timestamp column"
                )
            if self.schema is not None and o.schema is not None and dict(o.schema) != dict(self.schema):
                raise PlanError(
                    f"union at {where}: inputs have different columns: {dict(self.schema)} vs "
                    f"{dict(o.schema)}; select the same columns first"
                )
        inputs = [(self.node, "out")] + [(o.node, "out") for o in others]
        return self._then("union", "union", lambda n: Passthrough(n), schema=self.schema,
                          name=name, where=where, inputs=inputs)

    # -- joins and analytics (built in tidal.api.joins) ------------------------------------
    def join(self, other: Stream, on: str | Iterable[str], *,
             within: tuple[Duration, Duration] | None = None, window: WindowSpec | None = None,
             ttl: Duration | None = None, how: Literal["inner", "left"] = "inner",
             name: str | None = None) -> Stream:
        """Join with ``other`` on equal ``on`` columns; give exactly one of:

        - ``within=("-5m", "+0s")``: interval join, ``other`` rows with ``other.t`` in
          ``[t - 5m, t + 0s]`` (state bounded by the watermark);
        - ``window=td.tumbling("1m")`` (or sliding): pairs in the same window, emitted when
          it fires, with ``window_start``/``window_end``;
        - ``ttl="1h"``: regular join, each row kept for ``ttl`` after its event time.

        ``how="left"`` also emits this stream's rows that found no partner (nulls on the
        right) once they can no longer match. Columns: this stream's, then ``other``'s
        (clashing names get ``_right``). See docs/joins.md.
        """
        from tidal.api.joins import join

        return join(self, other, on, within=within, window=window, ttl=ttl, how=how, name=name)

    def lookup(self, table: Any, on: str | Iterable[str], *,
               how: Literal["left", "inner"] = "left", name: str | None = None) -> Stream:
        """Enrich each row with the matching row of ``table``: a reference table
        (``td.table.from_frame/from_file/from_sqlite``), or a changelog stream whose latest
        row per key *as of this row's event time* is used (a temporal join). See docs/joins.md.
        """
        from tidal.api.joins import lookup

        return lookup(self, table, on, how=how, name=name)

    def dedupe(self, key: str | Iterable[str], within: Duration, name: str | None = None) -> Stream:
        """Drop rows whose ``key`` already let a row through less than ``within`` before, in
        event time. See docs/analytics.md."""
        from tidal.api.joins import dedupe

        return dedupe(self, key, within, name=name)

    # -- keyed -------------------------------------------------------------------------------
    def key_by(self, *columns: str | Iterable[str]) -> KeyedStream:
        """Partition the stream by key columns, for windows and keyed state.

        ``key_by()`` with no columns makes one global key.
        """
        keys = _names(columns)
        check_columns("key_by", caller_location(), keys, self.schema)
        return KeyedStream(self, keys)

    def window(self, *args: Any, **kwargs: Any) -> WindowedStream:
        """Windows need keys: see :meth:`KeyedStream.window`."""
        raise PlanError(
            f"window at {caller_location()}: window() needs a keyed stream; call "
            ".key_by('column') first (or .key_by() with no columns for one global window)"
        )

    def late(self) -> Stream:
        """The events an event-time step rejected as too late (its side output): window
        aggregations, joins, ``top_k``, ``dedupe`` and pattern matches."""
        if self.node.kind not in _LATE_KINDS:
            raise PlanError(
                f"late() at {caller_location()}: step {self.name!r} is a {self.node.kind}, "
                "which drops no late events; call late() on the result of "
                ".window(...).agg(...), a join, top_k, dedupe or match"
            )
        inputs = self.node.inputs
        upstream = inputs[0][0]
        same = all(up.schema == upstream.schema and up.time == upstream.time for up, _ in inputs)
        return self._then("late", f"{self.name}.late", lambda n: Passthrough(n),
                          schema=upstream.schema if same else None,
                          time=upstream.time if same else None,
                          inputs=[(self.node, "late")])

    # -- sinks ----------------------------------------------------------------------------------
    def sink(self, sink: Sink, name: str | None = None) -> None:
        """Write every output batch to ``sink`` (see :mod:`tidal.sinks`)."""
        from tidal.connectors.base import Sink as SinkBase

        where = caller_location()
        if not isinstance(sink, SinkBase):
            raise PlanError(
                f"sink at {where}: expected a sink such as td.sinks.jsonl('out.jsonl'), got "
                f"{type(sink).__name__}"
            )
        step = self.flow._unique_name(name or sink.name, explicit=name is not None, stateful=True)
        node = Node("sink", step, [(self.node, "out")], None, schema=self.schema, where=where,
                    sink=sink)
        self.flow._add(node)

    def print(self, prefix: str = "") -> None:
        """Print every row to standard output (the console sink)."""
        from tidal.connectors.console import Console

        self.sink(Console(prefix))

    def to_view(self, name: str, key: str | list[str], windows: int | None = None) -> Stream:
        """Keep the latest row per ``key`` as the materialized view ``name``, served by
        ``tidal.serve`` (pull, SQL, push) and kept in checkpoints under the step ``name``.

        With ``windows=N`` (on a windowed result), rows are per key and ``window_start``
        and only the last N windows are kept. A view ends the flow like a sink; the stream
        returned carries the rows each batch upserted. See docs/serving.md.
        """
        from tidal.operators.view import plan_view

        return plan_view(self, name, key, windows)

    def __repr__(self) -> str:
        return f"Stream({self.name!r})"


class KeyedStream:
    """A stream partitioned by key columns: windows, running aggregates, keyed state."""

    def __init__(self, stream: Stream, keys: list[str]) -> None:
        self.stream = stream
        self.keys = keys

    def window(
        self, spec: WindowSpec, *, allowed_lateness: Duration = 0,
        emit: Literal["final", "early"] = "final", every: Duration | None = None,
        name: str | None = None,
    ) -> WindowedStream:
        """Group each key's events into event-time windows.

        Results are final when the watermark passes a window's end (``emit="final"``); with
        ``emit="early", every="1s"`` the current value of each changed open window is also
        emitted every ``every`` of processing time. Events up to ``allowed_lateness`` behind
        the watermark still update their window (and re-emit it); later ones go to
        :meth:`Stream.late`.
        """
        where = caller_location()
        if not isinstance(spec, WindowSpec):
            raise PlanError(
                f"window at {where}: expected td.tumbling(...), td.sliding(...), "
                f"td.cumulate(...) or td.session(...), got {type(spec).__name__}"
            )
        if self.stream.node.time is None:
            raise PlanError(
                f"window at {where}: stream {self.stream.name!r} has no event time; give the "
                "source a timestamp column (flow.source(..., timestamp='col')) or use "
                "processing_time=True"
            )
        if emit not in ("final", "early"):
            raise ConfigError(f"window at {where}: emit must be 'final' or 'early', not {emit!r}")
        if emit == "early" and every is None:
            raise ConfigError(f"window at {where}: emit='early' needs every=..., e.g. every='1s'")
        early = duration_ms(every, "early emission interval") if emit == "early" else None
        lateness = duration_ms(allowed_lateness, "allowed lateness")
        return WindowedStream(self, spec, lateness, early, name, where)

    def agg(self, aggs: dict[str, Agg] | None = None, *, ttl: Duration | None = None,
            name: str | None = None, **named: Agg) -> Stream:
        """Running aggregates per key over the whole stream; emits each changed key's value.

        ``ttl`` forgets keys not seen for that long (event time) so state stays bounded.
        """
        aggs = {**(aggs or {}), **named}
        where = caller_location()
        _check_aggs(aggs, self.stream.schema, where)
        ttl_ms = None if ttl is None else duration_ms(ttl, "ttl")
        keys, time = self.keys, self.stream.node.time
        label = f"agg[{','.join(keys)}]({','.join(aggs)})"
        return self.stream._then(
            "agg", label, lambda n: RunningAggregate(n, keys, time, aggs, ttl_ms),
            schema=_agg_schema(keys, aggs, self.stream.schema), time=None, name=name,
            stateful=True, where=where, signature=f"{label} {_agg_text(aggs)} ttl={ttl_ms}",
        )

    def reduce(self, fn: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
               name: str | None = None) -> Stream:
        """Fold each key's records with ``fn(acc, record) -> record``, emitting each new value."""
        where = caller_location()
        _check_callable("reduce", fn, where)
        keys = self.keys
        return self.stream._then("reduce", f"reduce[{','.join(keys)}]",
                                 lambda n: RunningReduce(n, keys, fn), schema=None, time=None,
                                 name=name, stateful=True, where=where)

    def update_state(
        self, fn: Callable[[tuple[Any, ...], pl.DataFrame, KeyState], Any], *,
        timeout: Duration | None = None, name: str | None = None,
    ) -> Stream:
        """Per-key state kept by your function, like Spark's ``updateStateByKey``.

        ``fn(key, rows, state)`` is called once per key and batch with the key's rows; see
        :class:`tidal.KeyState`. With ``timeout``, an idle key is called once more with
        ``state.timed_out`` true after that much event time without events.
        """
        where = caller_location()
        _check_callable("update_state", fn, where)
        timeout_ms = None if timeout is None else duration_ms(timeout, "timeout")
        if timeout_ms is not None and self.stream.node.time is None:
            raise PlanError(f"update_state at {where}: timeout needs a stream with event time")
        keys, time = self.keys, self.stream.node.time
        return self.stream._then(
            "update_state", f"update_state[{','.join(keys)}]",
            lambda n: UpdateState(n, keys, time, fn, timeout_ms), schema=None, time=None,
            name=name, stateful=True, where=where,
        )

    def match(self, pattern: Pattern, *, after_match: str = "no_skip",
              name: str | None = None) -> Stream:
        """One row per match of ``pattern`` (``td.pattern(...)``) in each key's events, in
        event time: the keys, ``match_start``, ``match_end`` and a column per step holding
        its matched event(s). ``after_match="skip_past_last"`` drops the other matches that
        overlap an emitted one. See docs/patterns.md."""
        from tidal.api.pattern import match

        return match(self, pattern, after_match=after_match, name=name)

    def process(self, fn: Any, on_timer: Callable[..., Any] | None = None,
                name: str | None = None) -> Stream:
        """Your Python per key and batch, with state and timers: ``fn(key, rows, ctx)``
        (or an object with ``process`` and ``on_timer`` methods); ``ctx`` is a
        :class:`tidal.operators.process.ProcessContext`. Timers call
        ``on_timer(key, timestamp, ctx)``. See docs/analytics.md."""
        from tidal.api.joins import process

        return process(self, fn, on_timer=on_timer, name=name)


class WindowedStream:
    """A keyed stream cut into windows; finish it with :meth:`agg` or :meth:`reduce`."""

    def __init__(self, keyed: KeyedStream, spec: WindowSpec, lateness_ms: int,
                 early_ms: int | None, name: str | None, where: str) -> None:
        self.keyed, self.spec, self.lateness_ms, self.early_ms = keyed, spec, lateness_ms, early_ms
        self.name, self.where = name, where

    def agg(self, aggs: dict[str, Agg] | None = None, **named: Agg) -> Stream:
        """Aggregate each key's window: ``.agg(n=td.agg.count(), top=td.agg.max("price"))``.

        Output columns: the keys, ``window_start``, ``window_end``, then the aggregates.
        """
        aggs = {**(aggs or {}), **named}
        stream, keys = self.keyed.stream, self.keyed.keys
        _check_aggs(aggs, stream.schema, self.where)
        time = stream.node.time
        assert time is not None
        spec, lateness, early = self.spec, self.lateness_ms, self.early_ms

        def make(n: str) -> Operator:
            if isinstance(spec, Session):
                return SessionWindowAggregate(n, keys, time, spec, aggs, lateness, early)
            if isinstance(spec, Cumulative):
                return CumulativeWindowAggregate(n, keys, time, spec, aggs, lateness, early)
            assert isinstance(spec, Tumbling | Sliding)
            return WindowAggregate(n, keys, time, spec, aggs, lateness, early)

        schema = _agg_schema(keys, aggs, stream.schema, window_dtype=_time_dtype(stream))
        label = f"window[{','.join(keys)}]{spec!r}({','.join(aggs)})"
        return stream._then("window", label, make, schema=schema,
                            time=TimeAttr("window_end", -1), name=self.name, stateful=True,
                            where=self.where, signature=f"{label} {_agg_text(aggs)}")

    def reduce(self, fn: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]) -> Stream:
        """Fold each key's window with ``fn(acc, record) -> record`` (per-record Python)."""
        if not isinstance(self.spec, Tumbling | Sliding):
            raise PlanError(f"reduce at {self.where}: reduce supports tumbling and sliding windows")
        _check_callable("reduce", fn, self.where)
        stream, keys, spec = self.keyed.stream, self.keyed.keys, self.spec
        time = stream.node.time
        assert time is not None
        lateness = self.lateness_ms
        return stream._then(
            "window", f"window[{','.join(keys)}]{spec!r}.reduce",
            lambda n: WindowReduce(n, keys, time, spec.size_ms, spec.every_ms, spec.offset_ms,
                                   lateness, fn),
            schema=None, time=TimeAttr("window_end", -1), name=self.name, stateful=True,
            where=self.where,
        )

    def top_k(self, k: int, by: str | Iterable[str], descending: bool = True) -> Stream:
        """The ``k`` rows with the largest ``by`` (smallest with ``descending=False``) per key
        and window, emitted when the window fires: the keys, ``window_start``,
        ``window_end``, ``rank``, then the rows' other columns. See docs/analytics.md."""
        from tidal.api.joins import top_k

        return top_k(self, k, by, descending)


# -- validation helpers ---------------------------------------------------------------------
def _exprs(exprs: tuple[Any, ...], named: dict[str, Any]) -> list[pl.Expr]:
    out: list[pl.Expr] = []
    for e in exprs:
        if isinstance(e, list | tuple):
            out.extend(pl.col(x) if isinstance(x, str) else x for x in e)
        else:
            out.append(pl.col(e) if isinstance(e, str) else e)
    out.extend((pl.lit(v) if not isinstance(v, pl.Expr) else v).alias(k) for k, v in named.items())
    for e in out:
        if not isinstance(e, pl.Expr):
            raise PlanError(f"expected Polars expressions or column names, got {type(e).__name__}")
    return out


def _names(columns: tuple[str | Iterable[str], ...]) -> list[str]:
    out: list[str] = []
    for c in columns:
        if isinstance(c, str):
            out.append(c)
        else:
            out.extend(c)
    return out


def _check_callable(step: str, fn: Any, where: str) -> None:
    if not callable(fn):
        raise PlanError(f"{step} at {where}: expected a function, got {type(fn).__name__}")


def _check_aggs(aggs: dict[str, Agg], schema: pl.Schema | None, where: str) -> None:
    if not aggs:
        raise PlanError(f"agg at {where}: give at least one aggregate, e.g. n=td.agg.count()")
    for out, a in aggs.items():
        if not isinstance(a, Agg):
            raise PlanError(
                f"agg at {where}: {out}= got {type(a).__name__}; use td.agg.count(), "
                "td.agg.sum('col'), ..."
            )
        check_columns(f"agg {out}={a!r}", where, sorted(a.inputs()), schema)


def _agg_text(aggs: dict[str, Agg]) -> str:
    return ", ".join(f"{k}={a!r}" for k, a in aggs.items())


def _time_dtype(stream: Stream) -> pl.DataType:
    time, schema = stream.node.time, stream.schema
    if time is not None and schema is not None and time.column in schema:
        dt = schema[time.column]
        if isinstance(dt, pl.Datetime):
            return pl.Datetime("ms", dt.time_zone)
    return pl.Int64()


def _agg_schema(keys: list[str], aggs: dict[str, Agg], schema: pl.Schema | None,
                window_dtype: pl.DataType | None = None) -> pl.Schema | None:
    if schema is None:
        return None
    out: dict[str, pl.DataType] = {k: schema[k] for k in keys}
    if window_dtype is not None:
        out["window_start"] = out["window_end"] = window_dtype
    for name, a in aggs.items():
        if a.kind in ("count", "count_distinct"):
            out[name] = pl.Int64()
        elif a.output_dtype() is not None:
            out[name] = a.output_dtype()  # type: ignore[assignment]
        elif a.kind == "mean":
            out[name] = pl.Float64()
        elif a.kind == "sum":
            src = schema[a.column]  # type: ignore[index]
            out[name] = pl.Int64() if src.is_integer() else src
        else:
            out[name] = schema[a.column]  # type: ignore[index]
    return pl.Schema(out)
