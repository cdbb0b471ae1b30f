"""Where a stream's event time comes from."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from tidal._time import time_ms_expr, time_ms_series
from tidal.errors import PlanError

__all__ = ["TimeAttr"]


@dataclass(frozen=True)
class TimeAttr:
    """Event time = the column ``column`` (epoch ms or datetime) plus ``offset_ms``.

    Window results use ``TimeAttr("window_end", -1)``: the last instant of the window, so a
    downstream window assigns each result to the window containing its source window.
    """

    column: str
    offset_ms: int = 0

    def expr(self, schema: pl.Schema) -> pl.Expr:
        """Int64 epoch-ms expression for a batch with ``schema``."""
        e = time_ms_expr(self.column, schema[self.column])
        return e + self.offset_ms if self.offset_ms else e

    def series(self, batch: pl.DataFrame) -> pl.Series:
        """The Int64 epoch-ms event times of ``batch``."""
        try:
            column = batch.get_column(self.column)
        except pl.exceptions.ColumnNotFoundError:
            raise PlanError(
                f"the event-time column {self.column!r} is missing from a batch with columns "
                f"{batch.columns}; a step before this one (map, select, ...) dropped it"
            ) from None
        t = time_ms_series(column)
        return t + self.offset_ms if self.offset_ms else t
