"""``ORDER BY`` and ``LIMIT`` on a continuous query, as Flink plans them on streams.

- ``ORDER BY <time attribute> [ASC], ...`` sorts by event time: rows are released in order
  once the watermark passes them (:class:`~tidal.operators.order.TimeSort`); append.
- ``ORDER BY x [DESC], ... LIMIT n`` on other columns is a Top-N over the whole stream
  (:class:`~tidal.operators.rank.TopN` with one partition): an *updating* result whose rows
  are keyed by their rank, a hidden ``__rownum`` column.
- ``LIMIT n`` alone keeps the first ``n`` rows (:class:`~tidal.operators.order.Limit`);
  after a time sort, the first ``n`` in time order.

``ORDER BY`` names columns of the SELECT list (by name, alias or position); sorting a stream
by anything but its event time without a ``LIMIT`` could never emit a row, and is refused.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import polars as pl
from sqlglot import exp

from tidal.sql.errors import error, unsupported
from tidal.sql.expressions import Field

if TYPE_CHECKING:
    from tidal.sql.planner import Planner, Rel

__all__ = ["plan_order_limit"]

ROWNUM = "__rownum"


def plan_order_limit(planner: Planner, rel: Rel, node: exp.Select) -> Rel:
    """``rel`` (the planned SELECT without its ORDER BY / LIMIT) ordered and limited."""
    from tidal.operators.order import Limit, TimeSort
    from tidal.operators.rank import TopN

    order, limit = node.args.get("order"), node.args.get("limit")
    if node.args.get("offset") is not None:
        raise unsupported("OFFSET in a continuous query", node.args["offset"])
    n = _limit(limit) if limit is not None else None
    if rel.updating:
        raise unsupported("ORDER BY or LIMIT on an updating result", order or limit,
                          "order or limit the append input in a subquery")
    keys = [_column(rel, o.this, o) for o in order.expressions] if order is not None else []
    descending = [bool(o.args.get("desc")) for o in order.expressions] if order else []
    time = rel.stream.node.time
    stream = rel.stream
    if keys and time is not None and keys[0] == time.column and not descending[0]:
        label = f"sort[{time.column}]({', '.join(keys[1:])})"
        stream = stream._then(
            "sort", label, lambda name: TimeSort(name, time, keys[1:], descending[1:]),
            schema=stream.schema, stateful=True, signature=label)
    elif keys:
        if n is None:
            raise unsupported(f"ORDER BY {_text(order)} without LIMIT on a stream (only its "
                              "event time, ascending, can be sorted as it flows)", order,
                              "add LIMIT n (a Top-N), or ORDER BY the time attribute"
                              + (f" {time.column}" if time is not None else ""))
        schema = stream.schema
        assert schema is not None
        part = planner._name("all")
        label = f"top_n[]({n} ORDER BY {_text(order)})"
        stream = stream.with_columns(pl.lit(0, pl.Int8).alias(part))._then(
            "top_n", label, lambda name: TopN(name, [part], keys, descending, n,
                                              rank_column=ROWNUM),
            schema=pl.Schema({**schema, part: pl.Int8(), ROWNUM: pl.Int64()}), time=None,
            stateful=True, signature=label).select([*schema, ROWNUM])
        return replace(rel, stream=stream, updating=True, key=[ROWNUM],
                       fields=[*rel.fields, Field(None, ROWNUM, ROWNUM)])
    if n is not None:
        stream = stream._then("limit", f"limit({n})", lambda name: Limit(name, n),
                              schema=stream.schema, stateful=True, signature=f"limit({n})")
    return replace(rel, stream=stream)


def _text(order: exp.Expr) -> str:
    return ", ".join(o.this.sql() + (" DESC" if o.args.get("desc") else "")
                     for o in order.expressions)


def _limit(limit: exp.Expr) -> int:
    value = limit.args.get("expression")
    if not (isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit()):
        raise unsupported(f"{limit.sql()}: LIMIT takes a whole number", limit)
    return int(value.this)


def _column(rel: Rel, e: exp.Expr, where: exp.Expr) -> str:
    """The physical column of an ORDER BY item: a selected column's name or alias, or its
    position (``ORDER BY 2``)."""
    visible = [f for f in rel.fields if not f.column.startswith("__")]
    if isinstance(e, exp.Literal) and not e.is_string and e.this.isdigit():
        i = int(e.this)
        if not 1 <= i <= len(visible):
            raise error(f"ORDER BY {i}: the SELECT list has {len(visible)} column(s)", where)
        return visible[i - 1].column
    if isinstance(e, exp.Column):
        try:
            return rel.scope().resolve(e).column
        except Exception:  # noqa: BLE001 - named below with the columns there are
            pass
    raise unsupported(f"ORDER BY {e.sql()}, which is not a column of the SELECT list", where,
                      f"order by one of {', '.join(f.name for f in visible)}, or select it")
