"""GROUP BY over an updating stream, with retractions (Flink's retract aggregation).

:class:`UpsertAggregate` aggregates an upsert stream (rows replace the row of their input
key, and may delete it: :mod:`tidal.operators.changelog`). It keeps the current row of
every input key (one Polars frame), and for each batch takes the batch's last version per
input key, looks up the versions they replace, and recomputes the affected groups (the
groups of the old and of the new versions) from the kept rows, with the same vectorized
partial and final expressions as running aggregates (:mod:`tidal.api.agg`). Recomputing,
rather than subtracting old contributions, keeps MIN, MAX and COUNT(DISTINCT) exact after
retractions; its cost per batch is the size of the affected groups.

The output is updating by the group columns and carries
:data:`~tidal.operators.changelog.DELETE`: a group that loses its last row (its input keys
deleted or moved to other groups) is emitted with ``__delete = true`` (Flink's ``-D``),
every other affected group as an upsert. Like Flink's, it emits nothing for a group whose
result did not change (it keeps the last result of every group to tell).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from tidal.api.agg import Agg, compile_aggs
from tidal.errors import PlanError
from tidal.operators.base import Operator
from tidal.operators.changelog import DELETE

if TYPE_CHECKING:
    from tidal.api.stream import Stream

__all__ = ["UpsertAggregate", "upsert_aggregate"]


class UpsertAggregate(Operator):
    """GROUP BY ``groups`` over an upsert stream keyed by ``key`` (see the module docstring).

    Output: the ``groups`` columns, one column per aggregate, and :data:`DELETE`; a row per
    group whose value may have changed in the batch. ``aggs`` are :mod:`tidal.api.agg`
    aggregates except ``first``/``last`` (which need event time, gone in an updating input).
    """

    stateful = True

    def __init__(self, name: str, key: list[str], groups: list[str], aggs: dict[str, Agg],
                 schema: pl.Schema, output: pl.Schema) -> None:
        super().__init__(name)
        if not key:
            raise PlanError(f"step {name!r}: an aggregate over an updating input needs the "
                            "input's upsert key")
        bad = [f"{o}={a!r}" for o, a in aggs.items() if a.kind in ("first", "last")]
        if bad:
            raise PlanError(f"step {name!r}: {', '.join(bad)} cannot aggregate an updating "
                            "input (it has no event time)")
        self.key, self.groups, self.aggs = list(key), list(groups), aggs
        self.partial, _, self.final = compile_aggs(aggs)
        inputs = {c for a in aggs.values() for c in a.inputs()}
        self.columns = list(dict.fromkeys([*self.key, *self.groups,
                                           *(c for c in schema if c in inputs)]))
        """Columns kept per input key: the key, the group and what the aggregates read."""
        self.output = output
        """The output's columns and types (the groups, the aggregates, DELETE)."""
        self.rows = pl.DataFrame(schema={c: schema[c] for c in self.columns})
        """The current row of every input key (the ``columns``)."""
        self.results = pl.DataFrame(schema={c: t for c, t in output.items() if c != DELETE})
        """The last result emitted for every group, to leave unchanged ones out."""

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        if not batch.height:
            return
        gone = pl.col(DELETE).fill_null(False) if DELETE in batch.columns else pl.lit(False)
        latest = batch.select(*self.columns, gone.alias(DELETE)) \
            .unique(subset=self.key, keep="last", maintain_order=True)
        latest = latest.cast({c: t for c, t in self.rows.schema.items()}, strict=False)
        keys = latest.select(self.key)
        old = self.rows.join(keys, on=self.key, how="semi", nulls_equal=True)
        upserts = latest.filter(~pl.col(DELETE)).drop(DELETE)
        touched = pl.concat([old.select(self.groups), upserts.select(self.groups)]) \
            .unique(maintain_order=True)
        kept = self.rows.join(keys, on=self.key, how="anti", nulls_equal=True)
        self.rows = pl.concat([kept, upserts])
        members = self.rows.join(touched, on=self.groups, how="semi", nulls_equal=True)
        values = members.group_by(self.groups, maintain_order=True).agg(*self.partial) \
            .select(*self.groups, *self.final) \
            .select(pl.col(c).cast(t) for c, t in self.results.schema.items())
        emptied = touched.join(values.select(self.groups), on=self.groups, how="anti",
                               nulls_equal=True).with_columns(pl.lit(True).alias(DELETE))
        changed = pl.concat([self._changed(values).with_columns(pl.lit(False).alias(DELETE)),
                             emptied], how="diagonal_relaxed")
        self.results = pl.concat([self.results.join(touched, on=self.groups, how="anti",
                                                    nulls_equal=True), values])
        self.emit(changed.select(pl.col(c).cast(t) for c, t in self.output.items()))

    def _changed(self, values: pl.DataFrame) -> pl.DataFrame:
        """The rows of ``values`` that differ from the group's last emitted result (or are
        its first)."""
        aggs = [c for c in values.columns if c not in self.groups]
        if not aggs:
            return values
        seen = "__seen"
        before = values.join(self.results.with_columns(pl.lit(True).alias(seen)),
                             on=self.groups, how="left", suffix="__was", nulls_equal=True)
        same = pl.col(seen).fill_null(False) & pl.all_horizontal(
            pl.col(c).eq_missing(pl.col(f"{c}__was")) for c in aggs)
        return before.filter(~same).select(values.columns)

    def snapshot(self) -> dict[str, Any]:
        return {"rows": self.rows, "results": self.results}

    def restore(self, state: dict[str, Any]) -> None:
        self.rows = state["rows"]
        # a checkpoint from before the results were kept: the next change of a group is emitted
        self.results = state.get("results", self.results)


def upsert_aggregate(stream: Stream, key: list[str], groups: list[str],
                     aggs: dict[str, Agg]) -> Stream:
    """``GROUP BY groups`` with ``aggs`` over ``stream``, an updating stream whose rows
    replace the row of their ``key`` (and may carry :data:`DELETE`): an
    :class:`UpsertAggregate` step. The result is updating by ``groups`` and can delete."""
    from tidal.api.stream import _agg_schema, _agg_text

    schema = stream.schema
    if schema is None:
        raise PlanError("an aggregate over an updating stream needs its columns known")
    out = _agg_schema(groups, aggs, schema)
    assert out is not None
    out = pl.Schema({**out, DELETE: pl.Boolean()})
    label = f"upsert_agg[{','.join(groups)}]({','.join(aggs)}) by {','.join(key)}"
    return stream._then(
        "agg", label, lambda n: UpsertAggregate(n, key, groups, aggs, schema, out),
        schema=out, time=None, stateful=True, signature=f"{label} {_agg_text(aggs)}")
