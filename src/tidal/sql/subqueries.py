"""Planning ``IN`` / ``EXISTS`` subqueries in ``WHERE`` as semi and anti joins.

A top-level ``WHERE`` condition (an ``AND`` term) of one of these shapes becomes a
:func:`~tidal.operators.semi.semi_join` of the query's rows with the subquery's, with
regular-join state (kept for ``table.exec.state.ttl``, forever by default), as in Flink:

- ``x IN (SELECT k FROM t ...)``, ``(x, y) IN (SELECT k, l ...)`` and ``EXISTS (SELECT ...
  FROM t WHERE t.k = a.x [AND ...])``: a semi join, append-only, each row once;
- ``NOT EXISTS (...)`` and ``x NOT IN (SELECT k ...)`` (uncorrelated, one column, with SQL's
  NULL trap: a NULL among the ``k`` lets no row pass): an anti join, an updating result that
  deletes a row when its first match arrives.

The subquery's conditions naming the outer query's tables (correlation) must be equalities;
they become join keys beside the IN columns. What else would need a subquery evaluated per
row is refused, naming it. A mixin of :class:`~tidal.sql.planner.Planner`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import polars as pl
from sqlglot import exp

from tidal.sql import syntax
from tidal.sql.catalog import describe_type
from tidal.sql.errors import SqlError, error, unsupported
from tidal.sql.joins import interval_ms_text
from tidal.sql.relation import Rel

__all__ = ["SubqueryPlanning", "check_subqueries", "is_subquery_condition"]

_HINT = "write it as a condition of WHERE, joined to the others with AND"


def _predicate(cond: exp.Expr) -> exp.Expr:
    """``cond`` without an outer ``NOT`` and parentheses."""
    while isinstance(cond, exp.Paren | exp.Not):
        cond = cond.this
    return cond


def _is_in_subquery(e: exp.Expr) -> bool:
    return isinstance(e, exp.In) and e.args.get("query") is not None


def is_subquery_condition(cond: exp.Expr) -> bool:
    """Whether the WHERE term ``cond`` is ``[NOT] IN (SELECT ...)`` or ``[NOT] EXISTS``."""
    inner = cond.this if isinstance(cond, exp.Not) else cond
    return _is_in_subquery(inner) or isinstance(inner, exp.Exists)


def check_subqueries(node: exp.Select, where: list[exp.Expr]) -> None:
    """Refuse subqueries that a semi join cannot plan: in the SELECT list, HAVING, GROUP
    BY, or inside the other ``where`` terms (under OR, in an expression), and scalar ones."""
    clauses: list[tuple[str, Any]] = [("the SELECT list", e) for e in node.expressions]
    clauses += [("WHERE", c) for c in where]
    clauses += [(k.upper(), node.args.get(k)) for k in ("group", "having")]
    for place, clause in clauses:
        for e in clause.walk() if clause is not None else ():
            if _is_in_subquery(e) or isinstance(e, exp.Exists):
                what = "EXISTS (subquery)" if isinstance(e, exp.Exists) else "IN (subquery)"
                inside = "inside OR or an expression in WHERE" if place == "WHERE" else \
                    f"in {place}"
                raise unsupported(f"{what} {inside}", e, _HINT)
            if isinstance(e, exp.Subquery) and not isinstance(e.parent, exp.In):
                raise unsupported(f"the scalar subquery {e.sql()}", e,
                                  "join with the subquery's result, or use IN / EXISTS")


class SubqueryPlanning:
    """The semi/anti join methods of the planner (``self`` is a
    :class:`~tidal.sql.planner.Planner`)."""

    def subquery_filters(self: Any, rel: Rel, conditions: list[exp.Expr]) -> Rel:
        """``rel`` kept to the rows passing each ``[NOT] IN`` / ``[NOT] EXISTS`` term: the
        semi joins first, then at most one anti join (its result is updating)."""
        anti = [c for c in conditions if isinstance(c, exp.Not)]
        if len(anti) > 1:
            raise unsupported("several NOT IN / NOT EXISTS conditions in one WHERE", anti[1])
        for cond in [*(c for c in conditions if not isinstance(c, exp.Not)), *anti]:
            rel = self._semi_join(rel, cond)
        return rel

    def _semi_join(self: Any, rel: Rel, cond: exp.Expr) -> Rel:
        """``rel`` semi-joined (anti-joined under NOT) with the subquery of ``cond``."""
        anti = isinstance(cond, exp.Not)
        pred = _predicate(cond)
        what = ("NOT " if anti else "") + ("IN (subquery)" if isinstance(pred, exp.In)
                                           else "EXISTS (subquery)")
        if rel.updating or rel.window is not None or rel.rank is not None:
            raise unsupported(f"{what} on an updating result or a window TVF", cond,
                              "filter the rows before they are aggregated or ranked")
        sub = pred.args["query"].this if isinstance(pred, exp.In) else pred.this
        while isinstance(sub, exp.Subquery):
            sub = sub.this
        if not isinstance(sub, exp.Select):
            raise unsupported(f"{what} over {sub.key.upper()}", sub, "write a SELECT")
        probes: list[exp.Expr] = []
        if isinstance(pred, exp.In):
            probes = list(pred.this.expressions) if isinstance(pred.this, exp.Tuple) \
                else [pred.this]
        outer, inner, sub = self._correlation(rel, sub, what)
        if anti and probes and (outer or len(probes) > 1):
            raise unsupported("NOT IN with several columns or a correlated subquery", cond,
                              "write NOT EXISTS (SELECT ... WHERE t.k = a.x ...)")
        picked = list(sub.expressions) if probes else []
        if probes and (len(picked) != len(probes) or any(
                isinstance(p, exp.Star) or isinstance(p.this, exp.Star) for p in picked)):
            raise error(f"{what}: the subquery must select {len(probes)} column(s), one for "
                        f"each value compared, not {', '.join(p.sql() for p in picked)}", sub)
        if not probes and not outer:  # EXISTS without correlation: any row at all
            probes, picked = [exp.Literal.number(1)], [exp.Literal.number(1)]
        names = [self._name("sk") for _ in [*probes, *outer]]
        right = self._subquery_keys(sub, [*picked, *inner], names, what)
        ls, rs = self._keyed(rel, [*probes, *outer], right, names, what, cond)
        return self._joined(rel, ls, rs, names, anti=anti,
                            null_aware=anti and isinstance(pred, exp.In))

    def _subquery_keys(self: Any, sub: exp.Select, keys: list[exp.Expr], names: list[str],
                       what: str) -> Rel:
        """The rows of ``sub`` with its join ``keys`` as the columns ``names`` (and, for a
        plain SELECT, its other columns, so that its event time survives)."""
        aliased = [exp.alias_(e, n) for e, n in zip(keys, names, strict=True)]
        plain = sub.args.get("group") is None and (sub.args.get("from_") or sub.args.get(
            "from")) is not None and not any(syntax.aggregate_calls(e) for e in keys)
        sub.set("expressions", [*aliased, exp.Star()] if plain else aliased)
        try:
            right = self.query(sub)
        except SqlError as e:
            if not e.reason.startswith("unknown column") or type(e) is not SqlError:
                raise
            raise SqlError(e.reason + f"; in {what}, qualify the outer query's columns with "
                           "their table or alias (a.x)", e.line, e.column) from e
        if right.updating:
            raise unsupported(f"{what} over an updating result (a GROUP BY without windows, "
                              "an outer join, a Top-N)", sub)
        return right

    def _keyed(self: Any, rel: Rel, probes: list[exp.Expr], right: Rel, names: list[str],
               what: str, cond: exp.Expr) -> tuple[Any, Any]:
        """The streams of ``rel`` and ``right`` with the join keys (``probes`` on ``rel``)
        as the columns ``names``, cast to one type per key; ``right`` only its keys and
        event time (its rows leave the state by it)."""
        lt, rt = self.translator(rel.scope()), self.translator(right.scope())
        lkeys = [lt.expr(e) for e in probes]
        rkeys = [rt.expr(exp.column(n)) for n in names]
        types = [_common(lt.dtype(a), rt.dtype(b), what, cond)
                 for a, b in zip(lkeys, rkeys, strict=True)]
        ls = rel.stream.with_columns(**{n: k.cast(t) for n, k, t in
                                        zip(names, lkeys, types, strict=True)})
        time = right.stream.node.time
        rs = right.stream.select(*([pl.col(time.column)] if time is not None else []),
                                 **{n: k.cast(t) for n, k, t in
                                    zip(names, rkeys, types, strict=True)})
        return ls, rs

    def _joined(self: Any, rel: Rel, ls: Any, rs: Any, names: list[str], *, anti: bool,
                null_aware: bool) -> Rel:
        from tidal.operators.semi import semi_join

        ttl = self.session.settings.get("table.exec.state.ttl")
        ident = self._name("aid") if anti else None
        joined = semi_join(ls, rs, names, anti=anti, id_column=ident, null_aware=null_aware,
                           ttl_ms=interval_ms_text(ttl) if ttl else None)
        stream = joined.select([c for c in joined.schema if c not in names])
        if not anti:
            return replace(rel, stream=stream)
        return Rel(stream, rel.fields, updating=True, key=[ident])

    def _correlation(self: Any, rel: Rel, sub: exp.Select, what: str
                     ) -> tuple[list[exp.Expr], list[exp.Expr], exp.Select]:
        """The correlated equalities of ``sub``'s WHERE as (outer sides, inner sides), and a
        copy of ``sub`` without them (nor DISTINCT, which IN and EXISTS do not need)."""
        frm = sub.args.get("from_") or sub.args.get("from")
        sources = [frm.this] if frm is not None else []
        sources += [j.this for j in sub.args.get("joins") or []]
        local = {s.alias_or_name for s in sources}
        qualifiers = {f.qualifier for f in rel.fields if f.qualifier}

        def outer_column(c: exp.Column) -> bool:  # the subquery's own names shadow
            return bool(c.table) and c.table not in local and c.table in qualifiers

        def outside(e: exp.Expr) -> bool:
            return any(outer_column(c) for c in e.find_all(exp.Column))

        sub = sub.copy()
        for key in ("order", "limit", "offset"):
            if sub.args.get(key) is not None:
                raise unsupported(f"ORDER BY or LIMIT in {what}", sub.args[key])
        where = sub.args.get("where")
        terms = syntax.conjuncts(where.this) if where is not None else []
        outer: list[exp.Expr] = []
        inner: list[exp.Expr] = []
        rest: list[exp.Expr] = []
        for term in terms:
            if not outside(term):
                rest.append(term)
                continue
            a, b = (term.this, term.expression) if isinstance(term, exp.EQ) else (None, None)
            if a is not None and b is not None and outside(b) and not outside(a):
                a, b = b, a
            if a is None or b is None or outside(b) or not list(b.find_all(exp.Column)) or \
                    not all(outer_column(c) for c in a.find_all(exp.Column)):
                raise unsupported(f"the correlated condition {term.sql()} in {what} (only "
                                  "equalities between an outer and an inner expression)",
                                  term, "correlate with equalities such as t.k = a.x")
            outer.append(a)
            inner.append(b)
        others = [*sub.expressions, *(sub.args.get(k) for k in ("group", "having"))]
        if any(e is not None and outside(e) for e in others):
            raise unsupported(f"an outer column outside the WHERE of {what}", sub,
                              "correlate in the subquery's WHERE with equalities")
        grouped = sub.args.get("group") is not None or sub.args.get("having") is not None or \
            any(syntax.aggregate_calls(e) for e in sub.expressions)
        if grouped and (outer or "EXISTS" in what):
            raise unsupported(f"GROUP BY or aggregates in a correlated subquery or in {what}",
                              sub)
        sub.set("where", exp.Where(this=syntax.conjunction(rest)) if rest else None)
        sub.set("distinct", None)
        return outer, inner, sub


def _common(a: pl.DataType, b: pl.DataType, what: str, node: exp.Expr) -> pl.DataType:
    """The type both sides of a comparison in ``what`` are cast to."""
    if a == b:
        return a
    if not (a.is_numeric() and b.is_numeric()) and a.base_type() != b.base_type():
        raise error(f"{what}: cannot compare {describe_type(a)} with {describe_type(b)}; "
                    "CAST one side", node)
    try:
        return pl.concat([pl.DataFrame(schema={"x": a}), pl.DataFrame(schema={"x": b})],
                         how="vertical_relaxed").schema["x"]
    except pl.exceptions.PolarsError as e:
        raise error(f"{what}: cannot compare {describe_type(a)} with {describe_type(b)}",
                    node) from e
