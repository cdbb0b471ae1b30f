"""The logical plan: a graph of named steps that both the Python API and SQL build.

Each :class:`Node` knows its inputs, how to make its physical operator, its event-time
attribute and (when it can be known before running) its output schema, so that a pipeline
is validated before it starts.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from tidal.errors import PlanError
from tidal.operators.base import Operator
from tidal.operators.timeattr import TimeAttr

__all__ = ["Node", "caller_location", "check_columns", "infer_schema"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@dataclass(eq=False)
class Node:
    """One step of a flow."""

    kind: str
    name: str
    inputs: list[tuple[Node, str]]
    make: Callable[[], Operator] | None
    time: TimeAttr | None = None
    schema: pl.Schema | None = None
    stateful: bool = False
    where: str = ""
    source: Any = None
    sink: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    signature: str = ""
    """What the step computes; checked against a checkpoint's record on restore."""

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name!r}>"


def caller_location() -> str:
    """``file.py:line`` of the user code that called into tidal (for error messages)."""
    for frame in inspect.stack()[1:]:
        path = os.path.abspath(frame.filename)
        if not path.startswith(_PACKAGE_DIR):
            return f"{os.path.basename(path)}:{frame.lineno}"
    return "?"


def did_you_mean(name: str, choices: list[str]) -> str:
    """A hint naming the closest known name, or an empty string."""
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_columns(step: str, where: str, columns: list[str], schema: pl.Schema | None) -> None:
    """Raise :class:`PlanError` when a referenced column is not in the known schema."""
    if schema is None:
        return
    for c in columns:
        if c not in schema:
            raise PlanError(
                f"{step} at {where}: unknown column {c!r}{did_you_mean(c, list(schema))} "
                f"(the stream has {', '.join(schema) or 'no columns'})"
            )


def infer_schema(
    step: str, where: str, schema: pl.Schema | None, build: Callable[[pl.LazyFrame], pl.LazyFrame]
) -> pl.Schema | None:
    """Schema after applying expressions to an empty frame of ``schema`` (None if unknown)."""
    if schema is None:
        return None
    try:
        return build(pl.LazyFrame(schema=schema)).collect_schema()
    except pl.exceptions.ColumnNotFoundError as exc:
        m = re.search(r'column "(.+?)"', str(exc))
        missing = m.group(1) if m else str(exc).split("\n")[0]
        hint = did_you_mean(missing, list(schema))
        raise PlanError(
            f"{step} at {where}: unknown column {missing!r}{hint} "
            f"(the stream has {', '.join(schema)})"
        ) from None
    except (pl.exceptions.PolarsError, TypeError) as exc:
        first = str(exc).split("\n")[0]
        raise PlanError(f"{step} at {where}: invalid expression: {first}") from None
