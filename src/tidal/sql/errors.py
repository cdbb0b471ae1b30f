"""Errors of the SQL layer: each names the statement's line and column and what to do.

::

    PlanError (tidal.errors)
    └── SqlError              a statement that cannot run: parse error, unknown name, bad type
        └── UnsupportedSql    valid Flink SQL that tidal does not run (yet); never a wrong answer
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot import exp

from tidal.errors import PlanError

__all__ = ["SqlError", "UnsupportedSql", "position", "refused"]


class SqlError(PlanError):
    """A SQL statement cannot be planned; ``line``/``column`` point into the script (1-based)."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.line, self.column, self.reason = line, column, message
        where = f"SQL error at line {line}, column {column}: " if line is not None else "SQL error: "
        super().__init__(where + message)


class UnsupportedSql(SqlError):
    """A construct of Flink SQL that tidal does not support; the message names it."""

    def __init__(self, construct: str, line: int | None = None, column: int | None = None,
                 hint: str = "") -> None:
        text = f"{construct} is not supported" + (f"; {hint}" if hint else "")
        super().__init__(text, line, column)


def position(node: exp.Expr | None) -> tuple[int | None, int | None]:
    """Line and column (1-based) where ``node`` starts, when the parser recorded it."""
    if node is None:
        return None, None
    for n in node.walk():
        meta = getattr(n, "_meta", None) or {}
        if "line" in meta and "col" in meta:
            col = meta["col"] - (meta.get("end", 0) - meta.get("start", 0))
            return meta["line"], max(col, 1)
    return None, None


def error(message: str, node: exp.Expr | None = None) -> SqlError:
    """A :class:`SqlError` located at ``node``."""
    return SqlError(message, *position(node))


def unsupported(construct: str, node: exp.Expr | None = None, hint: str = "") -> UnsupportedSql:
    """An :class:`UnsupportedSql` located at ``node``."""
    return UnsupportedSql(construct, *position(node), hint=hint)


def refused(method: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a translator method that only says why its function is refused (a clock, a
    random value): ``SHOW FUNCTIONS`` leaves such functions out."""
    method.refused = True  # type: ignore[attr-defined]
    return method
