"""Aggregate functions for keyed windows and running aggregates.

Each aggregate is computed in three vectorized stages so that state stays columnar:
``partial`` (Polars expressions over a group of raw rows), ``merge`` (expressions over a
group of partial rows, used to fold batches into state), and ``final`` (an expression over
merged partials giving the output column). The engine runs all three inside
``group_by().agg()``; no Python code runs per row.

>>> import tidal as td
>>> aggs = dict(n=td.agg.count(), top=td.agg.max("price"), avg=td.agg.mean("price"))
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

__all__ = [
    "Agg",
    "count",
    "count_distinct",
    "first",
    "last",
    "max",
    "mean",
    "min",
    "sum",
]

TIME = "__t"
"""Name of the engine's Int64 event-time column inside stateful operators."""

_builtin_max, _builtin_min, _builtin_sum = max, min, sum


@dataclass(frozen=True)
class Agg:
    """One aggregate: what it reads and how its partial state is built, merged and read."""

    kind: str
    column: str | None = None

    def inputs(self) -> set[str]:
        """Input columns this aggregate reads."""
        return {self.column} if self.column else set()

    def partial(self, out: str) -> list[pl.Expr]:
        """Expressions over raw rows of one group, producing the partial columns."""
        c = pl.col(self.column) if self.column else None
        match self.kind:
            case "count":
                return [(pl.len() if c is None else c.count()).cast(pl.Int64).alias(_p(out))]
            case "sum":
                return [c.sum().alias(_p(out))]
            case "min":
                return [c.min().alias(_p(out))]
            case "max":
                return [c.max().alias(_p(out))]
            case "mean":
                return [c.sum().alias(_p(out, "s")), c.count().cast(pl.Int64).alias(_p(out, "n"))]
            case "first":
                return [c.sort_by(TIME).first().alias(_p(out)), pl.col(TIME).min().alias(_p(out, "t"))]
            case "last":
                return [c.sort_by(TIME).last().alias(_p(out)), pl.col(TIME).max().alias(_p(out, "t"))]
            case "count_distinct":
                return [c.drop_nulls().unique().alias(_p(out))]
        raise AssertionError(self.kind)

    def merge(self, out: str) -> list[pl.Expr]:
        """Expressions over partial rows of one group, folding them into one partial row."""
        p = pl.col(_p(out))
        match self.kind:
            case "count" | "sum":
                return [p.sum()]
            case "min":
                return [p.min()]
            case "max":
                return [p.max()]
            case "mean":
                return [pl.col(_p(out, "s")).sum(), pl.col(_p(out, "n")).sum()]
            case "first":
                t = pl.col(_p(out, "t"))
                return [p.sort_by(t).first(), t.min()]
            case "last":
                t = pl.col(_p(out, "t"))
                return [p.sort_by(t).last(), t.max()]
            case "count_distinct":
                return [p.explode().drop_nulls().unique()]
        raise AssertionError(self.kind)

    def final(self, out: str) -> pl.Expr:
        """Expression over a merged partial row giving the output column ``out``."""
        p = pl.col(_p(out))
        match self.kind:
            case "mean":
                return (pl.col(_p(out, "s")) / pl.col(_p(out, "n"))).alias(out)
            case "count_distinct":
                return p.list.len().cast(pl.Int64).alias(out)
        return p.alias(out)

    def partial_columns(self, out: str) -> list[str]:
        """Names of the partial-state columns of this aggregate."""
        if self.kind == "mean":
            return [_p(out, "s"), _p(out, "n")]
        if self.kind in ("first", "last"):
            return [_p(out), _p(out, "t")]
        return [_p(out)]

    def __repr__(self) -> str:
        return f"{self.kind}({self.column or ''})"


def _p(out: str, part: str = "") -> str:
    return f"__{out}__{part}"


def count(column: str | None = None) -> Agg:
    """Number of rows (or of non-null values of ``column``)."""
    return Agg("count", column)


def sum(column: str) -> Agg:  # noqa: A001 - mirrors SQL
    """Sum of ``column``."""
    return Agg("sum", column)


def min(column: str) -> Agg:  # noqa: A001
    """Smallest value of ``column``."""
    return Agg("min", column)


def max(column: str) -> Agg:  # noqa: A001
    """Largest value of ``column``."""
    return Agg("max", column)


def mean(column: str) -> Agg:
    """Arithmetic mean of ``column`` (nulls ignored)."""
    return Agg("mean", column)


def first(column: str) -> Agg:
    """Value of ``column`` in the row with the earliest event time."""
    return Agg("first", column)


def last(column: str) -> Agg:
    """Value of ``column`` in the row with the latest event time."""
    return Agg("last", column)


def count_distinct(column: str) -> Agg:
    """Exact number of distinct non-null values of ``column``."""
    return Agg("count_distinct", column)


def compile_aggs(aggs: dict[str, Agg]) -> tuple[list[pl.Expr], list[pl.Expr], list[pl.Expr]]:
    """Partial, merge and final expressions for a set of named aggregates."""
    from tidal.errors import PlanError

    if not aggs:
        raise PlanError("agg() needs at least one aggregate, e.g. .agg(n=td.agg.count())")
    partial: list[pl.Expr] = []
    merge: list[pl.Expr] = []
    final: list[pl.Expr] = []
    for out, a in aggs.items():
        if not isinstance(a, Agg):
            raise PlanError(
                f"agg({out}=...) got {type(a).__name__}; use an aggregate from td.agg, "
                "for example td.agg.count() or td.agg.max('price')"
            )
        partial += a.partial(out)
        merge += a.merge(out)
        final.append(a.final(out))
    return partial, merge, final
