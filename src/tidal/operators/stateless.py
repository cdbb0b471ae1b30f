"""Operators that look at one batch at a time and keep no state."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import polars as pl

from tidal.errors import UserFunctionError
from tidal.operators.base import Operator

__all__ = ["Expressions", "MapBatches", "Passthrough", "RecordFunction", "describe_function"]


def describe_function(fn: Callable[..., Any]) -> str:
    """``name (file.py:line)`` of a user function, for error messages."""
    code = getattr(fn, "__code__", None)
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    if code is None:
        return name
    return f"{name} ({code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno})"


class Expressions(Operator):
    """``select``, ``with_columns`` and expression ``filter``: one Polars call per batch."""

    def __init__(self, name: str, kind: str, exprs: list[pl.Expr]) -> None:
        super().__init__(name)
        self.kind = kind
        self.exprs = exprs

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        if self.kind == "select":
            self.emit(batch.select(self.exprs))
        elif self.kind == "with_columns":
            self.emit(batch.with_columns(self.exprs))
        else:
            self.emit(batch.filter(*self.exprs))


class Passthrough(Operator):
    """Forwards every batch unchanged (``union``, the late-data and dead-letter taps)."""

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        self.emit(batch)


class MapBatches(Operator):
    """``map_batches(fn)``: a user function from a whole Polars frame to another."""

    def __init__(self, name: str, fn: Callable[[pl.DataFrame], pl.DataFrame]) -> None:
        super().__init__(name)
        self.fn = fn

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        out = self.fn(batch)
        if isinstance(out, pl.LazyFrame):
            out = out.collect()
        if not isinstance(out, pl.DataFrame):
            raise UserFunctionError(
                f"step {self.name!r}: map_batches function {describe_function(self.fn)} "
                f"returned {type(out).__name__}; it must return a polars.DataFrame"
            )
        self.emit(out)


class RecordFunction(Operator):
    """Per-record Python functions: ``map``, ``filter`` and ``flat_map`` (the slow path).

    A record on which the function raises goes to the dead letters with the error; a
    function that returns the wrong type is a bug in the pipeline and stops it with a
    message naming the step and the function.
    """

    def __init__(self, name: str, kind: str, fn: Callable[[dict[str, Any]], Any]) -> None:
        super().__init__(name)
        self.kind = kind
        self.fn = fn

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        out: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        reasons: list[str] = []
        fn, kind = self.fn, self.kind
        for row in batch.iter_rows(named=True):
            try:
                result = fn(row)
            except Exception as exc:  # the record is bad for this function: keep it
                failed.append(row)
                reasons.append(f"{type(exc).__name__}: {exc}")
                continue
            if kind == "map":
                out.append(self._check_dict(result, row))
            elif kind == "filter":
                if not isinstance(result, bool):
                    self._wrong(result, "True or False", row)
                if result:
                    out.append(row)
            else:
                out.extend(self._check_dict(r, row) for r in self._check_iterable(result, row))
        if failed:
            where = f"step {self.name!r}, function {describe_function(fn)}"
            for rec, reason in zip(failed, reasons, strict=True):
                self.ctx.dead_letter([rec], f"{where} raised {reason}")
        if out:
            self.emit(pl.from_dicts(out, infer_schema_length=None))

    def _check_dict(self, result: Any, row: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(result, dict):
            self._wrong(result, "a dict (one output record)", row)
        return result

    def _check_iterable(self, result: Any, row: dict[str, Any]) -> Iterable[Any]:
        if isinstance(result, dict | str | bytes) or not isinstance(result, Iterable):
            self._wrong(result, "an iterable of dicts (for example a list)", row)
        return result

    def _wrong(self, result: Any, expected: str, row: dict[str, Any]) -> None:
        raise UserFunctionError(
            f"step {self.name!r}: {self.kind} function {describe_function(self.fn)} returned "
            f"{type(result).__name__} ({result!r:.60}) for record {row!r:.120}; "
            f"it must return {expected}"
        )
