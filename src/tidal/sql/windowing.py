"""Windowing TVFs beyond aggregation: CUMULATE, window Top-N and window joins.

The :class:`~tidal.sql.planner.Planner` calls in here; each function takes the planner and
the relation being planned and returns the planned relation.

- ``CUMULATE(TABLE t, DESCRIPTOR(ts), step, size)`` → :func:`tidal.cumulate`.
- A window TVF read without ``GROUP BY window_start, window_end`` (``SELECT * FROM
  TABLE(HOP(...))``) gets its windows as columns (:func:`materialize`): one row per window
  the event is in, with ``window_start``, ``window_end`` and ``window_time``; the planner
  remembers those columns (``Rel.window_cols``) as it does for a window aggregation's.
- ``ROW_NUMBER() OVER (PARTITION BY window_start, window_end, ... ORDER BY ...)`` with
  ``WHERE rn <= N`` over such rows or over a window aggregation is a *window Top-N*
  (:func:`window_top_n`): the :class:`~tidal.operators.rank.WindowTopN` operator keeps the
  best N rows per partition and window and emits them once the watermark passes the
  window's end; the result is append-only.
- A join whose ``ON`` equates both sides' ``window_start`` and ``window_end`` (window
  columns of the same kind of window) is a *window join* (:func:`window_join_ends`): the
  :class:`~tidal.operators.join.WindowJoin` operator pairs the rows of each window when the
  watermark passes its end, then forgets them; the result is append-only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import polars as pl
from sqlglot import exp

from tidal.api.windows import Cumulative, Session, Sliding, Tumbling, WindowSpec, cumulate
from tidal.operators.timeattr import TimeAttr
from tidal.sql.dialect import WindowTVF
from tidal.sql.errors import error, unsupported

if TYPE_CHECKING:
    from tidal.api.stream import Stream
    from tidal.sql.planner import RankSpec, Rel

__all__ = ["check_session_keys", "cumulate_spec", "materialize", "session_partition", "propagated_spec", "rank_window", "window_join",
           "window_join_ends", "window_top_n"]

WINDOW_COLUMNS = ("window_start", "window_end", "window_time")


def cumulate_spec(step_ms: int, size_ms: int, tvf: exp.Expr) -> Cumulative:
    """``CUMULATE(..., step, size)`` (Flink's argument order) as a :func:`tidal.cumulate`."""
    if size_ms % step_ms:
        raise unsupported("CUMULATE with a size that is not a multiple of the step", tvf,
                          "choose a step that divides the size")
    return cumulate(size_ms, step=step_ms)


def session_partition(tvf: WindowTVF) -> list[exp.Column]:
    """The columns of ``SESSION(TABLE t PARTITION BY k1, k2, ...)`` (or ``(k1, k2)``)."""
    keys: list[exp.Column] = []
    for p in tvf.args.get("partition") or []:
        for k in p.expressions if isinstance(p, exp.Tuple) else [p]:
            if not isinstance(k, exp.Column):
                raise unsupported(f"PARTITION BY {k.sql()} in SESSION", k,
                                  "partition by columns of the table")
            keys.append(k)
    return keys


def check_session_keys(node: exp.Select, group: exp.Group | None) -> None:
    """A ``SESSION(TABLE t PARTITION BY keys, ...)`` in ``node``'s FROM has its sessions per
    partition key, and tidal's session windows are per GROUP BY key: the GROUP BY must name
    the partition keys, and no other column besides the window columns."""
    frm = node.args.get("from_") or node.args.get("from")
    table = frm.this if frm is not None else None
    inner = table.this if isinstance(table, exp.Table) else None
    if isinstance(inner, exp.Anonymous) and inner.expressions:
        inner = inner.expressions[0]
    if not isinstance(inner, WindowTVF) or not inner.args.get("partition"):
        return
    keys = [k.name for k in session_partition(inner)]
    grouped = [e.name if isinstance(e, exp.Column) else e.sql()
               for e in (group.expressions if group is not None else [])
               if not (isinstance(e, exp.Column) and e.name.lower() in WINDOW_COLUMNS)]
    missing = [k for k in keys if k not in grouped]
    if missing:
        raise error(f"SESSION(... PARTITION BY {', '.join(keys)} ...): GROUP BY window_start, "
                    f"window_end needs the partition key(s) {', '.join(missing)} too", node)
    extra = [g for g in grouped if g not in keys]
    if extra:
        raise unsupported(f"GROUP BY {', '.join(extra)} beyond the PARTITION BY keys of SESSION",
                          group, "add them to PARTITION BY")


def propagated_spec(inner: WindowSpec) -> Tumbling:
    """The window that groups a window aggregation's rows by their own window again: rows of
    one window share ``window_end - 1`` as event time, and a tumbling window of the inner
    window's pane puts them together and fires as soon as they arrive."""
    from tidal.api.windows import tumbling

    assert isinstance(inner, Tumbling | Sliding | Cumulative)
    return tumbling(inner.pane_ms)


def materialize(rel: Rel, node: exp.Expr) -> Rel:
    """The rows of a pending window TVF with their windows as columns: one row per window
    each event is in (``HOP``: size / slide rows; ``CUMULATE``: one per window of its start
    that ends after it), with ``window_start``, ``window_end`` and ``window_time`` (the end
    minus 1 ms) as the event time's type."""
    assert rel.window is not None
    kind, spec, column = rel.window
    if isinstance(spec, Session):
        raise unsupported(f"{kind} without GROUP BY window_start, window_end", node,
                          "aggregate the session windows with GROUP BY window_start, "
                          "window_end, ...")
    schema = rel.schema
    dtype = schema[column]
    t = TimeAttr(column).expr(schema)
    exploded: pl.Expr | None = None
    if isinstance(spec, Tumbling):
        start = t - t % spec.size_ms
        end = start + spec.size_ms
    elif isinstance(spec, Sliding):
        n = spec.size_ms // spec.every_ms
        last = t - t % spec.every_ms
        exploded = pl.int_ranges(last - (n - 1) * spec.every_ms, last + 1, spec.every_ms,
                                 dtype=pl.Int64)
        start = pl.col("window_start")
        end = start + spec.size_ms
    else:
        assert isinstance(spec, Cumulative)
        exploded = pl.int_ranges(t - t % spec.step_ms + spec.step_ms,
                                 t - t % spec.size_ms + spec.size_ms + 1, spec.step_ms,
                                 dtype=pl.Int64)
        end = pl.col("window_end")
        start = end - 1 - (end - 1) % spec.size_ms
    cols = {"window_start": start, "window_end": end, "window_time": end - 1}
    if isinstance(dtype, pl.Datetime):
        cols = {k: pl.from_epoch(v, "ms").dt.replace_time_zone(dtype.time_zone)
                for k, v in cols.items()}
    stream = rel.stream
    if exploded is not None:
        # one row per window: repeat each row once per element of its list of windows
        repeat = pl.int_range(pl.len()).repeat_by(exploded.list.len()).explode()
        name = "window_start" if isinstance(spec, Sliding) else "window_end"
        stream = stream.select(pl.exclude(*WINDOW_COLUMNS).gather(repeat),
                               exploded.explode().alias(name))
    stream = stream.with_columns(**cols)
    window_cols = {**rel.window_cols, "window_start": ("start", spec),
                   "window_end": ("end", spec)}
    return replace(rel, stream=stream, window=None, window_cols=window_cols)


# -- window Top-N --------------------------------------------------------------------------
def rank_window(rel: Rel, window: exp.Window, partition: list[str]) -> tuple[str, str] | None:
    """For ``ROW_NUMBER() OVER (PARTITION BY ...)`` over ``rel``: the hidden partition columns
    holding the start and end of a window (``window_start, window_end`` of a window TVF or a
    window aggregation), or None when the partition is not per window."""
    nodes = window.args.get("partition_by") or []
    if len(nodes) != len(partition):
        return None
    scope = rel.scope()
    found: dict[str, str] = {}
    for node, hidden in zip(nodes, partition, strict=True):
        if isinstance(node, exp.Column):
            kind = rel.window_cols.get(scope.resolve(node).column, ("",))[0]
            found.setdefault(kind, hidden)
    if "start" in found and "end" in found:
        return found["start"], found["end"]
    return None


def window_top_n(rel: Rel, spec: RankSpec, n: int) -> Rel:
    """The ``n`` first rows per partition of each window, emitted when the window ends
    (:class:`~tidal.operators.rank.WindowTopN`): an append-only result."""
    from tidal.operators.rank import WindowTopN

    assert spec.window is not None
    end = spec.window[1]
    schema = rel.stream.schema
    assert schema is not None
    order = spec.node.args["order"].sql()
    label = f"window_top_n[{','.join(spec.key)}]({n} {order}, ties {spec.ties})"
    ranked = rel.stream._then(
        "top_k", label,
        lambda name: WindowTopN(name, spec.partition, spec.order, spec.descending, n,
                                TimeAttr(end), rank_column=spec.column, ties=spec.ties),
        schema=pl.Schema({**schema, spec.column: pl.Int64()}), time=TimeAttr(end, -1),
        stateful=True, signature=label)
    return replace(rel, stream=ranked, rank=None)


# -- window joins --------------------------------------------------------------------------
def window_join_ends(left: Rel, right: Rel, conds: list[exp.Expr]) -> tuple[str, str] | None:
    """The window-end columns of ``left`` and ``right`` when the join conditions ``conds``
    equate both sides' window starts and window ends (Flink's window join); else None."""
    def window_col(rel: Rel, e: exp.Expr) -> tuple[str, str] | None:
        """(``"start"``/``"end"``, physical column) when ``e`` is a window column of ``rel``."""
        if not isinstance(e, exp.Column):
            return None
        try:
            column = rel.scope().resolve(e).column
        except Exception:
            return None
        kind = rel.window_cols.get(column, ("", None))[0]
        return (kind, column) if kind else None

    found: dict[str, tuple[str, str]] = {}
    for c in conds:
        if not isinstance(c, exp.EQ):
            continue
        for a, b in ((c.this, c.expression), (c.expression, c.this)):
            lw, rw = window_col(left, a), window_col(right, b)
            if lw is not None and rw is not None and lw[0] == rw[0]:
                found.setdefault(lw[0], (lw[1], rw[1]))
    if "start" in found and "end" in found:
        return found["end"]
    return None


def window_join(left: Stream, right: Stream, keys: list[str], ends: tuple[str, str]) -> Stream:
    """Rows of ``left`` and ``right`` with equal ``keys`` (which include the window columns),
    paired when the watermark passes their window's end and then forgotten: the
    :class:`~tidal.operators.join.WindowJoin` operator with the windows given by the rows.
    Columns as :meth:`tidal.Stream.join` gives them."""
    from tidal.operators.join import WindowJoin, joined_schema

    lt, rt = TimeAttr(ends[0]), TimeAttr(ends[1])
    rs = right.schema
    label = f"window_join[{','.join(keys)}]"
    return left._then(
        "join", label,
        lambda n: WindowJoin(n, keys, keys, lt, rt, None, right_schema=rs),
        schema=joined_schema(left.schema, rs, keys, keys), time=TimeAttr(ends[0], -1),
        stateful=True, inputs=[(left.node, "out"), (right.node, "out")], signature=label)
