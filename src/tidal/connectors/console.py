"""The console sink: every row printed as ``key=value`` pairs (at-least-once)."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any, TextIO

import polars as pl

from tidal.connectors.base import Sink
from tidal.operators.changelog import DELETE

__all__ = ["Console"]


def _fmt(v: Any) -> str:
    if isinstance(v, datetime):
        return v.isoformat(timespec="milliseconds")
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


class Console(Sink):
    """Prints rows to standard output, one line each, optionally after ``prefix``; a row
    that deletes its key (:mod:`tidal.operators.changelog`) starts with ``-D``."""

    name = "print"

    def __init__(self, prefix: str = "", file: TextIO | None = None) -> None:
        self.prefix = prefix
        self.file = file

    def write(self, batch: pl.DataFrame) -> None:
        out = self.file or sys.stdout
        deleted = [False] * batch.height
        if DELETE in batch.columns:  # an updating result's removed keys print as -D rows
            deleted = batch.get_column(DELETE).fill_null(False).to_list()
            batch = batch.drop(DELETE)
        cols = batch.columns
        lines = [
            self.prefix + ("-D " if gone else "")
            + " ".join(f"{c}={_fmt(v)}" for c, v in zip(cols, row, strict=True))
            for row, gone in zip(batch.iter_rows(), deleted, strict=True)
        ]
        out.write("\n".join(lines) + "\n")

    def flush(self) -> None:
        (self.file or sys.stdout).flush()
