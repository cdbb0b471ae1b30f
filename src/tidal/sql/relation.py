"""What the planner builds a query from: :class:`Rel`, a planned relation (a stream plus
the SQL names of its columns and how it changes), and :class:`RankSpec`, a ROW_NUMBER
waiting for its ``WHERE rn <= N``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import polars as pl
from sqlglot import exp

from tidal.api.windows import WindowSpec
from tidal.sql.expressions import Field, Scope

if TYPE_CHECKING:
    from tidal.api.stream import Stream

__all__ = ["RankSpec", "Rel"]


@dataclass
class Rel:
    """A planned relation: its stream, the SQL names of its columns, how it changes."""

    stream: Stream
    fields: list[Field]
    updating: bool = False
    """An upsert stream (a non-windowed GROUP BY): each row replaces the row of its key."""
    key: list[str] = field(default_factory=list)
    window: tuple[str, WindowSpec, str] | None = None
    """A pending windowing TVF: (kind, spec, physical time column)."""
    window_cols: dict[str, tuple[str, WindowSpec]] = field(default_factory=dict)
    """Physical columns holding the start/end of a window aggregation's windows."""
    proctime: set[str] = field(default_factory=set)
    rank: RankSpec | None = None
    """A pending ``ROW_NUMBER() OVER (...)``: planned once the enclosing query's ``WHERE rn
    <= N`` gives its N (:meth:`Planner.apply_rank`)."""
    origin: dict[str, str] = field(default_factory=dict)
    """Output column → the input column a projection copied it from (plain references)."""
    identity: list[str] = field(default_factory=list)
    """An updating result whose key was projected away: hidden copies of the key, which a
    GROUP BY over it retracts by (:mod:`tidal.sql.updating`)."""

    @property
    def schema(self) -> pl.Schema:
        assert self.stream.schema is not None
        return self.stream.schema

    def scope(self, replace_: dict[str, pl.Expr] | None = None) -> Scope:
        return Scope(self.fields, self.schema, dict(replace_ or {}))

    def requalify(self, qualifier: str | None) -> Rel:
        return replace(self, fields=[Field(qualifier, f.name, f.column) for f in self.fields])


@dataclass
class RankSpec:
    """``ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...) AS rn`` waiting for its ``N``."""

    partition: list[str]
    """Physical (hidden) columns holding the PARTITION BY values."""
    order: list[str]
    descending: list[bool]
    ties: str
    """``"last"``: Flink's keep-last-row deduplication (ORDER BY a time attribute DESC)."""
    column: str
    """The physical column the row number goes to."""
    name: str
    """Its SQL name (the alias)."""
    key: list[str]
    """The columns naming a partition in the output (visible copies where there are)."""
    node: exp.Expr
    window: tuple[str, str] | None = None
    """The hidden partition columns holding a window's start and end, when the partition is
    per window (a window Top-N, :func:`tidal.sql.windowing.window_top_n`)."""
