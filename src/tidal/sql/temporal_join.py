"""Planning event-time temporal joins: ``JOIN rates FOR SYSTEM_TIME AS OF o.order_time AS r
ON o.currency = r.currency`` joins each probe row with the version of ``rates`` that was
current at the probe's event time (Flink's join with a *versioned table*).

The build side is a versioned table: a ``CREATE TABLE`` with a ``PRIMARY KEY`` and a
``WATERMARK`` (every row is a new version of its key, valid from its event time on), or a
versioned view, Flink's deduplication query keeping the last row per key by event time::

    CREATE VIEW rates AS SELECT * FROM (
      SELECT *, ROW_NUMBER() OVER (PARTITION BY currency ORDER BY update_time DESC) AS rn
      FROM rates_log) WHERE rn = 1

The ON clause must equate the whole primary key with the probe side; its other conditions
are checked against the version found (a ``LEFT JOIN`` pads a probe row whose version fails
them). The join runs as
:class:`~tidal.operators.join.TemporalJoin` (what :meth:`tidal.Stream.lookup` builds with a
stream): probe rows wait until the watermark passes them, then take the latest version with
``version time <= probe time``. The result is append-only and keeps the probe side's time
attribute; ``LEFT JOIN`` pads a probe row without a version with NULLs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import polars as pl
from sqlglot import exp

from tidal.sql import syntax
from tidal.sql.catalog import Registered, TableDef
from tidal.sql.errors import error, unsupported
from tidal.sql.expressions import Scope
from tidal.sql.relation import Rel

if TYPE_CHECKING:
    from tidal.sql.planner import Planner

__all__ = ["temporal_join"]


def temporal_join(planner: Planner, left: Rel, node: exp.Join, how: str) -> Rel:
    """The event-time temporal join ``node`` (``JOIN t FOR SYSTEM_TIME AS OF left.rowtime``)
    of the settled, append-only probe side ``left``; ``how`` is ``"inner"`` or ``"left"``."""
    from tidal.sql.joins import _joined_fields

    table = node.this
    right, pk = _versioned(planner, table)
    lscope, rscope = left.scope(), right.scope()
    on = node.args.get("on")
    if on is None:
        raise error(f"the temporal join with {table.name!r} needs ON ... = "
                    f"{table.alias_or_name}.{pk[0]}", node)
    keys: dict[str, pl.Expr] = {}
    residual: list[exp.Expr] = []
    for cond in syntax.conjuncts(on):
        pair = _key_equality(cond, lscope, rscope)
        if pair is not None and pair[1] in pk and pair[1] not in keys:
            keys[pair[1]] = planner.translator(lscope).expr(pair[0])
        else:
            residual.append(cond)
    if missing := [c for c in pk if c not in keys]:
        raise error(f"the temporal join with {table.name!r} must equate its whole PRIMARY KEY "
                    f"({', '.join(pk)}) with the probe side; ON does not cover "
                    f"{', '.join(missing)}", on)
    names = {c: planner._name("tk") for c in pk}
    ls = left.stream.with_columns(**{names[c]: keys[c] for c in pk})
    lschema = ls.schema
    assert lschema is not None
    rs = right.stream.with_columns(**{names[c]: pl.col(c).cast(lschema[names[c]], strict=False)
                                      for c in pk})
    joined = ls.lookup(rs, on=list(names.values()), how=how)
    out = joined.schema
    assert out is not None
    fields = _joined_fields(left, right, list(names.values()), out, node)
    keep = [c for c in out if c not in names.values()]
    rel = replace(left, stream=joined.select(keep), fields=fields, origin={})
    if not residual:
        return rel
    cond = planner.translator(rel.scope()).expr(syntax.conjunction(residual))
    if how == "inner":
        return replace(rel, stream=rel.stream.filter(cond))
    # a LEFT JOIN keeps the probe row whose version fails the conditions, padded
    padded = [f.column for f in fields[len(left.fields):]]
    return replace(rel, stream=rel.stream.with_columns(
        [pl.when(cond.fill_null(False)).then(pl.col(c)).alias(c) for c in padded]))


def _key_equality(cond: exp.Expr, lscope: Scope, rscope: Scope) -> tuple[exp.Expr, str] | None:
    """``(probe expression, build column)`` when ``cond`` is ``f(probe) = build.column``."""
    if not isinstance(cond, exp.EQ):
        return None
    a, b = cond.this, cond.expression
    if syntax.side(a, lscope, rscope) == "R":
        a, b = b, a
    if syntax.side(a, lscope, rscope) != "L" or not isinstance(b, exp.Column) or \
            syntax.side(b, lscope, rscope) != "R":
        return None
    return a, rscope.resolve(b).column


def _versioned(planner: Planner, table: exp.Table) -> tuple[Rel, list[str]]:
    """The versioned table ``table`` names, planned (qualified by its alias), with the
    columns of its primary key; refuses what is no versioned table."""
    name = table.name
    if any(name in level for level in planner.ctes):
        raise unsupported(f"an event-time temporal join with the WITH query {name!r}", table,
                          "declare the versioned table with CREATE TABLE (PRIMARY KEY and "
                          "WATERMARK) or CREATE VIEW (a deduplication on event time)")
    entry = planner.session.catalog.get(name, table)
    if isinstance(entry, Registered):
        raise error(f"the temporal join with {name!r} needs a versioned table, but {name!r} is a "
                    "Python stream without a PRIMARY KEY; declare a table with PRIMARY KEY "
                    "(...) NOT ENFORCED and a WATERMARK", table)
    if isinstance(entry, TableDef):
        if not entry.primary_key:
            raise error(f"the event-time temporal join needs a PRIMARY KEY on the versioned "
                        f"table {name!r}; declare PRIMARY KEY (...) NOT ENFORCED", table)
        if entry.rowtime is None:
            raise error(f"the event-time temporal join needs an event-time attribute on the "
                        f"versioned table {name!r}; declare WATERMARK FOR <column> AS ...",
                        table)
        plain = table.copy()
        plain.set("version", None)
        return planner.relation(plain), list(entry.primary_key)
    rel, pk = _versioned_view(planner, entry.query, table)
    return rel.requalify(table.alias_or_name), pk


def _versioned_view(planner: Planner, query: exp.Expr, table: exp.Table) -> tuple[Rel, list[str]]:
    """View ``table`` as versions: its deduplication ``SELECT ... FROM (SELECT ..., ROW_NUMBER()
    OVER (PARTITION BY k ORDER BY rowtime DESC) AS rn FROM t) WHERE rn = 1`` planned without
    the deduplication (every row of ``t`` a version of its key ``k``, ``rn`` always 1)."""
    from tidal.sql.planner import _rank_limit

    hint = ("define it as SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY <key> ORDER "
            "BY <rowtime> DESC) AS rn FROM t) WHERE rn = 1")
    frm = query.args.get("from_") or query.args.get("from") if isinstance(query, exp.Select) \
        else None
    inner = frm.this if frm is not None else None
    where = query.args.get("where")
    if not isinstance(inner, exp.Subquery) or query.args.get("joins") or \
            query.args.get("group") or where is None:
        raise unsupported(f"an event-time temporal join with the view {table.name!r}, which is "
                          "no versioned view", table, hint)
    rel = planner.relation_of(inner.this)
    spec = rel.rank
    time = rel.stream.node.time
    order = spec.node.args["order"].expressions[0].this if spec is not None else None
    by_rowtime = isinstance(order, exp.Column) and time is not None and order.name == time.column
    if spec is None or spec.ties != "last" or spec.window is not None or not by_rowtime or \
            _rank_limit(where.this, spec.name) != 1:
        raise unsupported(f"an event-time temporal join with the view {table.name!r}, which is "
                          "no versioned view (a deduplication keeping the last row per key by "
                          "event time)", table, hint)
    versions = rel.stream.with_columns(pl.lit(1, pl.Int64).alias(spec.column))
    base = replace(rel, stream=versions, rank=None).requalify(inner.alias or None)
    out = planner.project(base, list(query.expressions))
    back = {src: n for n, src in out.origin.items()}
    if not all(k in back for k in spec.key):
        raise unsupported(f"a versioned view {table.name!r} that does not select its PARTITION "
                          "BY columns", table, hint)
    if out.stream.node.time is None:
        raise error(f"the versioned view {table.name!r} must select its event-time attribute",
                    table)
    return out, [back[k] for k in spec.key]
