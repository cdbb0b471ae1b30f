"""Aggregates for ``.agg(...)``: ``td.agg.count()``, ``td.agg.max("price")``, ...

See :mod:`tidal.api.agg` for how they stay columnar.
"""

from tidal.api.agg import (
    Agg,
    UserAggregate,
    approx_count_distinct,
    approx_quantile,
    count,
    count_distinct,
    first,
    last,
    listagg,
    max,
    mean,
    min,
    percentile,
    std,
    sum,
    udaf,
    var,
)

__all__ = [
    "Agg",
    "UserAggregate",
    "approx_count_distinct",
    "approx_quantile",
    "count",
    "count_distinct",
    "first",
    "last",
    "listagg",
    "max",
    "mean",
    "min",
    "percentile",
    "std",
    "sum",
    "udaf",
    "var",
]
