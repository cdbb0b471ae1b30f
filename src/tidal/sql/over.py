"""SQL OVER aggregates: ``AGG(x) OVER (PARTITION BY p ORDER BY t <frame>)`` planned onto the
:class:`~tidal.operators.over.OverAggregate` operator.

What is planned (Flink's OVER aggregation, plus updating inputs):

- aggregates COUNT, SUM, MIN, MAX, AVG (no DISTINCT, no FILTER), any number of them, all
  over the same window, written inline or as ``OVER w`` with ``WINDOW w AS (...)``;
- ``ORDER BY`` one time attribute, ascending: the event-time column (rows are emitted in
  time order once the watermark passes them) or a ``PROCTIME()`` column (at once);
- frames ``ROWS BETWEEN n PRECEDING AND CURRENT ROW``, ``RANGE BETWEEN INTERVAL ...
  PRECEDING AND CURRENT ROW`` (peers included), ``UNBOUNDED PRECEDING`` and, without a
  frame, Flink's default ``RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW``;
- over an *updating* input (a Top-N, deduplication or GROUP BY result) the ORDER BY may be
  any timestamp or integer column: each upsert re-computes the partitions it touches and
  the result is updating too, keyed by the input's upsert key, which must be selected
  (Flink cannot run this; Nexmark q6 needs it). Rows with equal times are ordered by the
  key.

Everything else (FOLLOWING frames, ORDER BY a column that is not a time attribute, DESC,
several different windows, other window functions) raises
:class:`~tidal.sql.errors.UnsupportedSql` naming it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import polars as pl
from sqlglot import exp

from tidal.operators.over import FUNCTIONS, Frame, OverAgg, OverAggregate
from tidal.operators.timeattr import TimeAttr
from tidal.sql.dialect import Flink
from tidal.sql.errors import error, unsupported
from tidal.sql.expressions import Field, Scope, Translator, interval_ms

if TYPE_CHECKING:
    from tidal.sql.planner import Planner, Rel

__all__ = ["over_calls", "plan_over"]

DELETE = "__delete"
"""The delete marker of updating streams that can remove rows
(``tidal.operators.changelog.DELETE``)."""

HINT = "tidal plans AGG(x) OVER (PARTITION BY ... ORDER BY <time attribute> ROWS BETWEEN n " \
    "PRECEDING AND CURRENT ROW | RANGE BETWEEN INTERVAL ... PRECEDING AND CURRENT ROW) with " \
    "COUNT, SUM, MIN, MAX, AVG"


def over_calls(node: exp.Select) -> list[exp.Window]:
    """The ``f(...) OVER ...`` calls of ``node``'s SELECT list other than ROW_NUMBER (which
    the planner handles as Top-N)."""
    return [w for item in node.expressions for w in item.find_all(exp.Window)
            if not isinstance(w.this, exp.RowNumber)]


def plan_over(planner: Planner, rel: Rel, node: exp.Select, calls: list[exp.Window]) -> Rel:
    """``node``'s SELECT list over ``rel`` (its FROM and WHERE planned), its OVER ``calls``
    computed by one :class:`OverAggregate` step."""
    _check_query(rel, node)
    windows = [_definition(w, node) for w in calls]
    first = windows[0]
    for w, d in zip(calls, windows, strict=True):
        if _shape(d) != _shape(first):
            raise unsupported(f"OVER windows that differ ({_describe(first)} and "
                              f"{_describe(d)})", w, "use one window for every OVER aggregate "
                              "of a SELECT (as Flink does), or compute each in its own subquery")
    scope = rel.scope()
    tr = planner.translator(scope)
    pre: dict[str, pl.Expr] = {}
    partition: list[str] = []
    for p in first.args.get("partition_by") or []:
        if isinstance(p, exp.Column):
            partition.append(scope.resolve(p).column)
        else:
            name = planner._name("ovp")
            pre[name] = tr.expr(p)
            partition.append(name)
    order, by_arrival = _order(rel, first, scope)
    frame = _frame(first, rel.schema[order.column])
    aggs: list[OverAgg] = []
    outputs: dict[str, pl.Expr] = {}
    for w in calls:
        text = w.sql()
        if text in outputs:
            continue
        column = _argument(w, tr, pre, planner)
        out = planner._name("ova")
        agg = OverAgg(type(w.this).__name__.upper(), column, out)
        _check_type(agg, column and (rel.schema[column] if column in rel.schema
                                     else tr.dtype(pre[column])), w)
        aggs.append(agg)
        outputs[text] = pl.col(out)
    stream = rel.stream.with_columns(**pre) if pre else rel.stream
    schema = stream.schema
    assert schema is not None
    key = list(rel.key or getattr(rel, "identity", [])) if rel.updating else None
    parts = ",".join(scope_name(rel, c) for c in partition) or "all"
    label = f"over[{parts}]({frame.unit} {frame.preceding if frame.preceding is not None else 'unbounded'} preceding, order {order.column})"  # noqa: E501
    signature = f"{label} {[(a.function, a.column) for a in aggs]} key={key}"
    result = stream._then(
        "over", label,
        lambda name: OverAggregate(name, partition, order, frame, aggs, key=key,
                                   by_arrival=by_arrival),
        schema=OverAggregate.output_schema(schema, aggs), stateful=True, signature=signature)
    fields = [*rel.fields, *(Field(None, c, c) for c in pre)]
    out_rel = replace(rel, stream=result, fields=fields, origin={})
    projected = planner.project(out_rel, node.expressions,
                                Scope(fields, result.schema, {**scope.replace, **outputs}))
    if rel.updating and not projected.key:
        shown = [f.name for f in rel.fields if f.column in (key or [])]
        raise unsupported("an OVER aggregate over an updating result without the result's "
                          f"key columns ({', '.join(shown) or 'its upsert key'})", node,
                          "select them: each output row replaces the row of its key when a "
                          "later change re-computes it")
    return projected


def scope_name(rel: Rel, column: str) -> str:
    """The SQL name of physical ``column`` (the column itself for hidden ones)."""
    return next((f.name for f in rel.fields if f.column == column), column)


def _check_query(rel: Rel, node: exp.Select) -> None:
    """Refuse what cannot surround an OVER aggregate."""
    for arg, what in (("group", "GROUP BY"), ("having", "HAVING")):
        if node.args.get(arg) is not None:
            raise unsupported(f"OVER aggregates together with {what}", node.args[arg],
                              "aggregate in a subquery, then compute the OVER aggregate over it")
    for item in node.expressions:
        for a in item.find_all(exp.AggFunc):
            parent = a.parent.parent if isinstance(a.parent, exp.Filter) else a.parent
            if not isinstance(parent, exp.Window):
                raise unsupported("OVER aggregates together with plain aggregates", a,
                                  "aggregate in a subquery, then compute the OVER aggregate "
                                  "over it")
        for w in item.find_all(exp.Window):
            if isinstance(w.this, exp.RowNumber):
                raise unsupported("ROW_NUMBER() and OVER aggregates in one SELECT", w,
                                  "compute the OVER aggregate in a subquery")
    if rel.window is not None:
        raise unsupported(f"an OVER aggregate over a {rel.window[0]} window TVF", node,
                          "aggregate the windows with GROUP BY window_start, window_end first")
    if DELETE in rel.schema:
        raise unsupported("an OVER aggregate over an updating result that deletes rows", node,
                          "compute it over an input that only upserts: a Top-N, a "
                          "deduplication, or a GROUP BY of append-only rows")


def _definition(w: exp.Window, node: exp.Select) -> exp.Window:
    """The window ``w`` runs over: its own clause, or ``WINDOW name AS (...)``'s."""
    name = w.args.get("alias")
    if name is None:
        return w
    if any(w.args.get(k) for k in ("partition_by", "order", "spec")):
        raise unsupported(f"a window that refines the named window {name.name} ({w.sql()})", w,
                          f"put the whole definition in WINDOW {name.name} AS (...)")
    for d in node.args.get("windows") or []:
        if d.this.name == name.name:
            return d
    defined = [d.this.name for d in node.args.get("windows") or []]
    raise error(f"unknown window {name.name!r} in {w.sql()} (defined: "
                f"{', '.join(defined) or 'none'}); add WINDOW {name.name} AS (...)", w)


def _shape(w: exp.Window) -> tuple[str, ...]:
    parts = [p.sql() for p in w.args.get("partition_by") or []]
    order, spec = w.args.get("order"), w.args.get("spec")
    return (*parts, "|", order.sql() if order else "", spec.sql() if spec else "")


def _describe(w: exp.Window) -> str:
    clause = " ".join(x for x in (
        "PARTITION BY " + ", ".join(p.sql(dialect=Flink) for p in w.args["partition_by"])
        if w.args.get("partition_by") else "",
        w.args["order"].sql(dialect=Flink) if w.args.get("order") else "",
        w.args["spec"].sql(dialect=Flink) if w.args.get("spec") else "") if x)
    return f"({clause})"


def _order(rel: Rel, w: exp.Window, scope: Scope) -> tuple[TimeAttr, bool]:
    """The ORDER BY's time, and whether it is processing time (rows ready on arrival)."""
    order = w.args.get("order")
    items = order.expressions if order is not None else []
    if not items:
        raise unsupported(f"an OVER window without ORDER BY ({w.sql()})", w,
                          "add ORDER BY the time attribute; " + HINT)
    if len(items) > 1:
        raise unsupported(f"an OVER window ordered by several columns ({order.sql()})", order,
                          "order by the time attribute alone")
    item = items[0]
    if item.args.get("desc"):
        raise unsupported(f"an OVER window ordered descending ({item.sql()})", item,
                          "order by the time attribute ascending")
    col = item.this
    if not isinstance(col, exp.Column):
        raise unsupported(f"an OVER window ordered by an expression ({col.sql()})", col,
                          "order by the time attribute column")
    physical = scope.resolve(col).column
    dtype = rel.schema[physical]
    if rel.updating:
        if not (isinstance(dtype, pl.Datetime) or dtype.is_integer()):
            raise unsupported(f"an OVER window over an updating result ordered by {col.sql()} "
                              f"({dtype})", col, "order by a timestamp or integer column")
        return TimeAttr(physical), False
    if physical in rel.proctime:
        return TimeAttr(physical), True
    time = rel.stream.node.time
    if time is not None and time.column == physical:
        return time, False
    attrs = [f.name for f in rel.fields if time is not None and f.column == time.column]
    attrs += [f.name for f in rel.fields if f.column in rel.proctime]
    raise unsupported(
        f"an OVER window ordered by {col.sql()} (not a time attribute)", col,
        "OVER windows on a stream are ordered by time: order by the event-time column "
        f"(WATERMARK FOR {col.name} AS ... in CREATE TABLE) or a PROCTIME() column (time "
        f"attributes here: {', '.join(attrs) or 'none'})")


def _frame(w: exp.Window, order_type: pl.DataType) -> Frame:
    """The frame of ``w``; without one, Flink's RANGE UNBOUNDED PRECEDING."""
    spec = w.args.get("spec")
    if spec is None:
        return Frame("range", None)
    kind = (spec.args.get("kind") or "").upper()
    start, side = spec.args.get("start"), (spec.args.get("start_side") or "").upper()
    end = spec.args.get("end")
    end_text = (end if isinstance(end, str) else end.sql() if end is not None else "").upper()
    if spec.args.get("exclude"):
        raise unsupported(f"EXCLUDE in the frame {spec.sql()}", spec, HINT)
    if end is not None and end_text != "CURRENT ROW":
        raise unsupported(f"an OVER frame that does not end at the current row ({spec.sql()})",
                          spec, "a stream cannot wait for later rows: end the frame AND "
                          "CURRENT ROW")
    start_text = start.upper() if isinstance(start, str) else ""
    if start_text == "CURRENT ROW":
        return Frame(kind.lower(), 0)
    if side != "PRECEDING":
        raise unsupported(f"an OVER frame that starts after the current row ({spec.sql()})",
                          spec, HINT)
    if start_text == "UNBOUNDED":
        return Frame(kind.lower(), None)
    if kind == "ROWS":
        if not (isinstance(start, exp.Literal) and not start.is_string
                and start.this.isdigit()):
            raise error(f"ROWS frames count rows: write ROWS BETWEEN n PRECEDING, not "
                        f"{spec.sql()}", spec)
        return Frame("rows", int(start.this))
    if isinstance(start, exp.Interval):
        if not isinstance(order_type, pl.Datetime) and not order_type.is_integer():
            raise error(f"RANGE BETWEEN INTERVAL ... over an ORDER BY of type {order_type}",
                        spec)
        return Frame("range", interval_ms(start))
    if isinstance(start, exp.Literal) and not start.is_string and start.this.isdigit() \
            and order_type.is_integer():
        return Frame("range", int(start.this))
    raise error(f"RANGE frames over time take an interval: RANGE BETWEEN INTERVAL '1' HOUR "
                f"PRECEDING AND CURRENT ROW, not {spec.sql()}", spec)


def _argument(w: exp.Window, tr: Translator, pre: dict[str, pl.Expr],
              planner: Planner) -> str | None:
    """The input column of the aggregate ``w`` calls (None for COUNT(*)), computed into a
    hidden column of ``pre`` when it is an expression."""
    call = w.this
    if isinstance(call, exp.Filter):
        raise unsupported(f"FILTER in an OVER aggregate ({w.sql()})", call,
                          "use CASE WHEN ... THEN x END as the aggregate's argument")
    name = type(call).__name__.upper()
    if not isinstance(call, exp.AggFunc) or isinstance(call, exp.Anonymous) \
            or name not in FUNCTIONS:
        raise unsupported(f"the OVER function {call.sql()}", w,
                          "use COUNT, SUM, MIN, MAX or AVG over the window, or ROW_NUMBER() "
                          "for Top-N")
    arg = call.this
    if isinstance(arg, exp.Distinct):
        raise unsupported(f"{name}(DISTINCT ...) OVER ...", call, HINT)
    if arg is None or isinstance(arg, exp.Star):
        if name != "COUNT":
            raise error(f"{name}(*) is not valid; give a column", call)
        return None
    if isinstance(arg, exp.Column):
        return tr.scope.resolve(arg).column
    hidden = planner._name("ovi")
    pre[hidden] = tr.expr(arg)
    return hidden


def _check_type(a: OverAgg, dtype: pl.DataType | None, w: exp.Window) -> None:
    if dtype is None or a.function == "COUNT":
        return
    if a.function in ("SUM", "AVG") and not (dtype.is_integer() or dtype.is_float()):
        raise unsupported(f"{a.function} OVER a window of a {dtype} value ({w.this.sql()})", w,
                          f"CAST the argument to BIGINT or DOUBLE: {a.function}(CAST(... AS "
                          "DOUBLE))")
    if a.function in ("MIN", "MAX") and not (dtype.is_numeric() or dtype.is_temporal()):
        raise unsupported(f"{a.function} OVER a window of a {dtype} value ({w.this.sql()})", w,
                          "MIN and MAX over windows take numbers and times")
