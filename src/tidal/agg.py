"""Aggregates for ``.agg(...)``: ``td.agg.count()``, ``td.agg.max("price")``, ...

See :mod:`tidal.api.agg` for how they stay columnar.
"""

from tidal.api.agg import Agg, count, count_distinct, first, last, max, mean, min, sum

__all__ = ["Agg", "count", "count_distinct", "first", "last", "max", "mean", "min", "sum"]
