"""What :meth:`Stream.join`, :meth:`Stream.lookup`, :meth:`Stream.dedupe`,
:meth:`WindowedStream.top_k` and :meth:`KeyedStream.process` build: validation, output
schema and the plan node; the operators live in :mod:`tidal.operators.join`,
:mod:`tidal.operators.analytics` and :mod:`tidal.operators.process`.

Reference tables for :meth:`Stream.lookup` are made with ``td.table``:

>>> import polars as pl, tidal as td
>>> cards = td.table.from_frame(pl.DataFrame({"card": ["c1"], "owner": ["ann"]}))
>>> flow = td.Flow("enrich")
>>> tx = flow.source(td.sources.memory([{"card": "c1", "amount": 5}, {"card": "c9", "amount": 7}]))
>>> out = td.sinks.memory()
>>> tx.lookup(cards, on="card").sink(out)
>>> _ = flow.run(quiet=True)
>>> out.rows
[{'card': 'c1', 'amount': 5, 'owner': 'ann'}, {'card': 'c9', 'amount': 7, 'owner': None}]
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from tidal._time import Duration, duration_ms
from tidal.api.windows import Sliding, Tumbling, WindowSpec
from tidal.errors import ConfigError, PlanError
from tidal.operators.analytics import Dedupe, WindowTopK
from tidal.operators.join import (
    ReferenceLookup,
    StreamJoin,
    TemporalJoin,
    WindowJoin,
    joined_schema,
)
from tidal.operators.process import KeyedProcess
from tidal.operators.timeattr import TimeAttr
from tidal.plan import caller_location, check_columns

if TYPE_CHECKING:
    from tidal.api.stream import KeyedStream, Stream, WindowedStream

__all__ = ["Table", "dedupe", "from_file", "from_frame", "from_sqlite", "join", "lookup",
           "process", "top_k"]


# -- reference tables ----------------------------------------------------------------------
class Table:
    """A reference table for :meth:`Stream.lookup`: loaded when the flow starts and, with
    ``refresh``, reloaded every ``refresh`` of processing time. Make one with
    :func:`from_frame`, :func:`from_file` or :func:`from_sqlite`."""

    def __init__(self, load: Callable[[], pl.DataFrame], name: str,
                 schema: pl.Schema | None = None, refresh: Duration | None = None) -> None:
        self.load, self.name, self.schema = load, name, schema
        self.refresh_ms = None if refresh is None else duration_ms(refresh, "table refresh")

    def __repr__(self) -> str:
        return f"Table({self.name})"


def from_frame(frame: pl.DataFrame) -> Table:
    """A reference table holding ``frame`` (a Polars DataFrame).

    >>> import polars as pl, tidal as td
    >>> td.table.from_frame(pl.DataFrame({"ip": ["10.0.0.7"], "country": ["NL"]}))
    Table(frame)
    """
    if not isinstance(frame, pl.DataFrame):
        raise ConfigError(f"td.table.from_frame expects a polars.DataFrame, got {type(frame).__name__}")
    return Table(lambda: frame, "frame", frame.schema)


def from_file(path: str | Path, refresh: Duration | None = None) -> Table:
    """A reference table read from a Parquet, CSV, JSON-lines or JSON file (by extension).

    >>> import tidal as td
    >>> td.table.from_file("merchants.parquet", refresh="10m")
    Table(merchants.parquet)
    """
    p = Path(path)
    readers = {".parquet": pl.read_parquet, ".csv": pl.read_csv, ".jsonl": pl.read_ndjson,
               ".ndjson": pl.read_ndjson, ".json": pl.read_json}
    read = readers.get(p.suffix.lower())
    if read is None:
        raise ConfigError(f"td.table.from_file({str(path)!r}): unknown file type {p.suffix!r}; "
                          f"use one of {', '.join(readers)}")

    def load() -> pl.DataFrame:
        try:
            return read(p)
        except OSError as exc:
            raise ConfigError(f"reference table {str(p)!r} cannot be read: {exc}") from exc

    return Table(load, p.name, refresh=refresh)


def from_sqlite(path: str | Path, query: str, refresh: Duration | None = None) -> Table:
    """A reference table from a SQLite query, e.g. ``from_sqlite("ref.db", "SELECT * FROM
    cards")``; with ``refresh="1m"`` the query runs again every minute.

    >>> import tidal as td
    >>> td.table.from_sqlite("ref.db", "SELECT card, owner FROM cards")
    Table(ref.db)
    """
    p = Path(path)

    def load() -> pl.DataFrame:
        try:
            with sqlite3.connect(f"file:{p}?mode=ro", uri=True) as conn:
                cur = conn.execute(query)
                names = [d[0] for d in cur.description]
                rows = cur.fetchall()
        except sqlite3.Error as exc:
            raise ConfigError(f"reference table {str(p)!r}: query {query!r} failed: {exc}") from exc
        return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)

    return Table(load, p.name, refresh=refresh)


def from_postgres(dsn: str, query: str, refresh: Duration | None = None,
                  connect_timeout: float = 10.0) -> Table:
    """A reference table from a PostgreSQL query (psycopg 3, the ``postgres`` extra), e.g.
    ``from_postgres("postgresql://app@db/shop", "SELECT card, owner FROM cards")``; with
    ``refresh="1m"`` the query runs again every minute.

    >>> import tidal as td
    >>> td.table.from_postgres("postgresql://localhost/shop", "SELECT card, owner FROM cards")
    Table(postgres)
    """

    def load() -> pl.DataFrame:
        try:
            import psycopg
        except ImportError:
            raise ConfigError("from_postgres needs psycopg: pip install 'tidal[postgres]'") from None
        try:
            with psycopg.connect(dsn, connect_timeout=int(connect_timeout)) as conn:
                cur = conn.execute(query)  # type: ignore[arg-type]
                names = [d.name for d in cur.description or []]
                rows = cur.fetchall()
        except psycopg.Error as exc:
            raise ConfigError(f"reference table from PostgreSQL: query {query!r} failed: "
                              f"{str(exc).strip()}") from exc
        return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)

    return Table(load, "postgres", refresh=refresh)


# -- joins ---------------------------------------------------------------------------------
def _keys(on: str | Iterable[str], step: str, where: str) -> list[str]:
    keys = [on] if isinstance(on, str) else list(on)
    if not keys or not all(isinstance(k, str) for k in keys):
        raise PlanError(f"{step} at {where}: on= takes a column name or a list of them, e.g. on='card'")
    return keys


def _check_streams(step: str, where: str, left: Stream, right: Stream, keys: list[str]) -> None:
    from tidal.api.stream import Stream

    if not isinstance(right, Stream):
        raise PlanError(f"{step} at {where}: expected a Stream to join with, got {type(right).__name__}")
    if right.flow is not left.flow:
        raise PlanError(f"{step} at {where}: the streams belong to different flows")
    check_columns(f"{step} (left side {left.name!r})", where, keys, left.schema)
    check_columns(f"{step} (right side {right.name!r})", where, keys, right.schema)


def _need_time(step: str, where: str, *streams: Stream) -> None:
    for s in streams:
        if s.node.time is None:
            raise PlanError(
                f"{step} at {where}: stream {s.name!r} has no event time; give its source a "
                "timestamp column (flow.source(..., timestamp='col'))"
            )


def _bound(value: Duration | str, what: str, where: str) -> int:
    """A signed duration: ``"-5m"``, ``"+0s"``, ``"10s"`` or signed integer ms."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        sign = -1 if text.startswith("-") else 1
        return sign * duration_ms(text.lstrip("+-"), what)
    raise ConfigError(f"join at {where}: bad {what} {value!r}; write e.g. '-5m' or '+0s'")


def join(left: Stream, right: Stream, on: str | Iterable[str], *,
         within: tuple[Duration, Duration] | None = None, window: WindowSpec | None = None,
         ttl: Duration | None = None, how: str = "inner", name: str | None = None) -> Stream:
    """See :meth:`tidal.Stream.join`."""
    where = caller_location()
    keys = _keys(on, "join", where)
    _check_streams("join", where, left, right, keys)
    if how not in ("inner", "left"):
        raise ConfigError(f"join at {where}: how must be 'inner' or 'left', not {how!r}")
    chosen = [n for n, v in (("within", within), ("window", window), ("ttl", ttl)) if v is not None]
    if len(chosen) != 1:
        raise PlanError(
            f"join at {where}: say how long rows wait for a partner with exactly one of "
            "within=('-5m', '+0s') (interval join), window=td.tumbling('1m') (window join) or "
            f"ttl='1h' (regular join); got {', '.join(chosen) or 'none'}"
        )
    schema = joined_schema(left.schema, right.schema, keys, keys)
    lt, rt, rs = left.node.time, right.node.time, right.schema
    inputs = [(left.node, "out"), (right.node, "out")]
    k = ",".join(keys)
    if within is not None:
        _need_time("join", where, left, right)
        if not isinstance(within, tuple | list) or len(within) != 2:
            raise ConfigError(f"join at {where}: within= takes (lower, upper), e.g. ('-5m', '+0s')")
        lo, hi = _bound(within[0], "lower bound", where), _bound(within[1], "upper bound", where)
        if lo > hi:
            raise ConfigError(f"join at {where}: within=({within[0]!r}, {within[1]!r}) is empty: "
                              "the lower bound must not be after the upper bound")
        label = f"join[{k}]within({lo},{hi}){how}"
        assert lt is not None
        return left._then(
            "join", label, lambda n: StreamJoin(n, keys, keys, lt, rt, lower_ms=lo, upper_ms=hi,
                                                how=how, right_schema=rs),  # type: ignore[arg-type]
            schema=schema, time=TimeAttr(lt.column, lt.offset_ms + max(hi, 0)), name=name,
            stateful=True, where=where, inputs=inputs, signature=label)
    if window is not None:
        _need_time("join", where, left, right)
        if not isinstance(window, Tumbling | Sliding):
            raise PlanError(f"join at {where}: window= takes td.tumbling(...) or td.sliding(...), "
                            f"got {window!r}")
        label = f"join[{k}]{window!r}{how}"
        if schema is not None:
            dtype = pl.Int64()
            assert lt is not None and left.schema is not None
            if isinstance(left.schema[lt.column], pl.Datetime):
                dtype = pl.Datetime("ms", left.schema[lt.column].time_zone)  # type: ignore[union-attr]
            schema = pl.Schema({**schema, "window_start": dtype, "window_end": dtype})
        return left._then(
            "join", label, lambda n: WindowJoin(n, keys, keys, lt, rt, window, how=how,  # type: ignore[arg-type]
                                                right_schema=rs),
            schema=schema, time=TimeAttr("window_end", -1), name=name, stateful=True,
            where=where, inputs=inputs, signature=label)
    ttl_ms = duration_ms(ttl, "ttl")  # type: ignore[arg-type]
    label = f"join[{k}]ttl({ttl_ms}){how}"
    return left._then(
        "join", label, lambda n: StreamJoin(n, keys, keys, lt, rt, ttl_ms=ttl_ms, how=how,  # type: ignore[arg-type]
                                            right_schema=rs),
        schema=schema, time=None, name=name, stateful=True, where=where, inputs=inputs,
        signature=label)


def lookup(stream: Stream, table: Stream | Table, on: str | Iterable[str], *,
           how: str = "left", name: str | None = None) -> Stream:
    """See :meth:`tidal.Stream.lookup`."""
    where = caller_location()
    keys = _keys(on, "lookup", where)
    if how not in ("inner", "left"):
        raise ConfigError(f"lookup at {where}: how must be 'left' or 'inner', not {how!r}")
    k = ",".join(keys)
    if isinstance(table, Table):
        check_columns("lookup", where, keys, stream.schema)
        check_columns(f"lookup (table {table.name})", where, keys, table.schema)
        schema = joined_schema(stream.schema, table.schema, keys, keys)
        refresh = table.refresh_ms
        return stream._then(
            "lookup", f"lookup[{k}]({table.name})",
            lambda n: ReferenceLookup(n, keys, keys, table.load, how=how, refresh_ms=refresh),  # type: ignore[arg-type]
            schema=schema, name=name, where=where)
    _check_streams("lookup", where, stream, table, keys)
    _need_time("lookup", where, stream, table)
    lt, rt, rs = stream.node.time, table.node.time, table.schema
    label = f"lookup[{k}]({table.name}){how}"
    return stream._then(
        "join", label, lambda n: TemporalJoin(n, keys, keys, lt, rt, how=how, right_schema=rs),  # type: ignore[arg-type]
        schema=joined_schema(stream.schema, rs, keys, keys), name=name, stateful=True,
        where=where, inputs=[(stream.node, "out"), (table.node, "out")], signature=label)


# -- analytics and per-key functions -------------------------------------------------------
def dedupe(stream: Stream, key: str | Iterable[str], within: Duration,
           name: str | None = None) -> Stream:
    """See :meth:`tidal.Stream.dedupe`."""
    where = caller_location()
    keys = _keys(key, "dedupe", where)
    check_columns("dedupe", where, keys, stream.schema)
    _need_time("dedupe", where, stream)
    within_ms = duration_ms(within, "dedupe horizon")
    if within_ms <= 0:
        raise ConfigError(f"dedupe at {where}: within= must be longer than 0, e.g. within='10m'")
    time = stream.node.time
    label = f"dedupe[{','.join(keys)}]({within_ms})"
    return stream._then("dedupe", label, lambda n: Dedupe(n, keys, time, within_ms),  # type: ignore[arg-type]
                        schema=stream.schema, name=name, stateful=True, where=where,
                        signature=label)


def top_k(windowed: WindowedStream, k: int, by: str | Iterable[str],
          descending: bool = True) -> Stream:
    """See :meth:`tidal.WindowedStream.top_k`."""
    stream, keys, spec, where = (windowed.keyed.stream, windowed.keyed.keys, windowed.spec,
                                 windowed.where)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"top_k at {where}: k must be a positive integer, not {k!r}")
    if not isinstance(spec, Tumbling | Sliding):
        raise PlanError(f"top_k at {where}: top_k supports tumbling and sliding windows")
    cols = _keys(by, "top_k", where)
    check_columns("top_k", where, cols, stream.schema)
    time = stream.node.time
    assert time is not None
    schema = None
    if stream.schema is not None:
        dt = stream.schema[time.column]
        wdt = pl.Datetime("ms", dt.time_zone) if isinstance(dt, pl.Datetime) else pl.Int64()
        rest = {c: t for c, t in stream.schema.items() if c not in keys}
        schema = pl.Schema({**{c: stream.schema[c] for c in keys}, "window_start": wdt,
                            "window_end": wdt, "rank": pl.Int64(), **rest})
    label = f"top_k[{','.join(keys)}]{spec!r}({k},{','.join(cols)},{'desc' if descending else 'asc'})"
    return stream._then(
        "top_k", label, lambda n: WindowTopK(n, keys, time, spec, k, cols, descending),  # type: ignore[arg-type]
        schema=schema, time=TimeAttr("window_end", -1), name=windowed.name, stateful=True,
        where=where, signature=label)


def process(keyed: KeyedStream, fn: Any, on_timer: Callable[..., Any] | None = None,
            name: str | None = None) -> Stream:
    """See :meth:`tidal.KeyedStream.process`."""
    where = caller_location()
    if callable(getattr(fn, "process", None)):
        proc, on_timer = fn.process, on_timer or getattr(fn, "on_timer", None)
    elif callable(fn):
        proc = fn
    else:
        raise PlanError(f"process at {where}: expected a function fn(key, rows, ctx) or an "
                        f"object with a process method, got {type(fn).__name__}")
    if on_timer is not None and not callable(on_timer):
        raise PlanError(f"process at {where}: on_timer must be a function(key, timestamp, ctx)")
    keys, stream = keyed.keys, keyed.stream
    label = f"process[{','.join(keys)}]"
    return stream._then("process", label, lambda n: KeyedProcess(n, keys, proc, on_timer),
                        schema=None, time=None, name=name, stateful=True, where=where)
