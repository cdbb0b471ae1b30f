"""Small readings of a query's syntax tree that the planner's parts share: the conjuncts
of a condition, which side of a join an expression reads, the aggregate calls in an
expression, the columns outside them."""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from tidal.sql.expressions import Scope

__all__ = ["aggregate_calls", "columns_outside_aggs", "conjunction", "conjuncts", "mentions",
           "plain_column", "resolves", "side"]


def conjunction(conditions: list[exp.Expr]) -> exp.Expr:
    """``c1 AND c2 AND ...`` of a non-empty list (the inverse of :func:`conjuncts`)."""
    out = conditions[0]
    for c in conditions[1:]:
        out = exp.And(this=out, expression=c)
    return out


def conjuncts(e: exp.Expr) -> list[exp.Expr]:
    if isinstance(e, exp.And):
        return conjuncts(e.this) + conjuncts(e.expression)
    if isinstance(e, exp.Paren):
        return conjuncts(e.this)
    return [e]


def side(e: exp.Expr, left: Scope, right: Scope) -> str | None:
    cols = list(e.find_all(exp.Column))
    if not cols:
        return None
    sides = set()
    for c in cols:
        in_l = resolves(left, c)
        in_r = resolves(right, c)
        if in_l and in_r:
            return None
        sides.add("L" if in_l else "R" if in_r else "?")
    return sides.pop() if len(sides) == 1 else None


def plain_column(scope: Scope, e: exp.Expr) -> bool:
    """Whether ``e`` names a column (``person.id`` may be a field of the ROW column ``person``,
    which is computed like an expression)."""
    return isinstance(e, exp.Column) and scope.field_access(e) is None


def resolves(scope: Scope, c: exp.Column) -> bool:
    try:
        if scope.field_access(c) is None:
            scope.resolve(c)
        return True
    except Exception:
        return False


def aggregate_calls(e: exp.Expr) -> list[exp.Expr]:
    """Aggregate calls in ``e`` (with their FILTER), outermost first."""
    found: list[exp.Expr] = []

    def visit(n: exp.Expr) -> None:
        if isinstance(n, exp.Filter) and isinstance(n.this, exp.AggFunc):
            found.append(n)
            return
        if isinstance(n, exp.AggFunc) and not isinstance(n.parent, exp.Window):
            found.append(n)
            return
        for child in n.iter_expressions():
            visit(child)

    visit(e)
    return found


def columns_outside_aggs(e: exp.Expr, replaced: dict[str, Any]) -> list[exp.Column]:
    out: list[exp.Column] = []

    def visit(n: exp.Expr) -> None:
        if n.sql() in replaced:
            return
        if isinstance(n, exp.AggFunc | exp.Filter):
            return
        if isinstance(n, exp.Column) and not isinstance(n.this, exp.Star):
            out.append(n)
            return
        for child in n.iter_expressions():
            visit(child)

    visit(e)
    return out


def mentions(e: exp.Expr, names: tuple[str, ...]) -> bool:
    return any(c.name in names for c in e.find_all(exp.Column))
