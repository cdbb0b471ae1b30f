"""Semi and anti joins: SQL's ``IN`` / ``EXISTS`` and ``NOT IN`` / ``NOT EXISTS`` subqueries
in ``WHERE``, over append-only inputs, with regular-join state (kept ``ttl_ms`` if given).

Port 0 carries the outer query's rows, port 1 the subquery's rows (only their key columns
matter). Both carry the same key columns, compared with SQL's ``=``: a NULL key never
matches.

- :class:`SemiJoin` with ``anti=False`` emits each left row **once**, as soon as a right row
  of its key exists: at once if one already arrived, otherwise when the first one arrives
  (left rows wait in state until then). The result is append-only, but has no event time:
  a row emitted when its match arrives can be far behind the watermark (as Flink, whose
  regular joins turn time attributes into plain timestamps).
- With ``anti=True`` a left row without a match is emitted at once and **deleted** (the
  :data:`~tidal.operators.changelog.DELETE` column true, with the row's full values) when
  its first match arrives: an updating result, keyed by a hidden per-row sequence number
  (``id_column``) checkpointed with the state.
- ``null_aware=True`` (``x NOT IN (SELECT k ...)``, one key) adds SQL's three-valued logic:
  nothing passes once the subquery holds a NULL, and a NULL ``x`` passes only while the
  subquery is empty.

Since the right side only grows, a left row that stops passing never passes again, so the
anti join keeps only the rows it has emitted and not yet deleted.

>>> import polars as pl
>>> from tidal.operators.base import OperatorContext
>>> out = []
>>> op = SemiJoin("in", ["k"])
>>> op.open(OperatorContext("in", lambda b, p: out.append(b), None, lambda: 0, None))
>>> op.on_batch(pl.DataFrame({"k": [1, 2, None], "v": ["a", "b", "c"]}), 0)
>>> op.on_batch(pl.DataFrame({"k": [2, 2]}), 1)
>>> pl.concat(out).rows()
[(2, 'b')]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from tidal.operators.base import Operator
from tidal.operators.changelog import DELETE
from tidal.operators.join import ExpiresState, _append
from tidal.operators.timeattr import TimeAttr

if TYPE_CHECKING:
    from tidal.api.stream import Stream

__all__ = ["SemiJoin", "semi_join"]

LT, RT = "__stl", "__str"
"""Int64 times of the held left and right rows (event time, or processing time)."""


class SemiJoin(ExpiresState, Operator):
    """A semi (``anti=False``) or anti join on equal ``keys``; see the module docstring.

    Output: the left input's columns; an anti join adds ``id_column`` and :data:`DELETE`.
    """

    stateful = True

    def __init__(self, name: str, keys: list[str], *, anti: bool = False,
                 id_column: str | None = None, null_aware: bool = False,
                 times: tuple[TimeAttr | None, TimeAttr | None] = (None, None),
                 ttl_ms: int | None = None) -> None:
        super().__init__(name)
        if anti and id_column is None:
            raise ValueError(f"anti join {name!r} needs an id_column for its row identity")
        if null_aware and (not anti or len(keys) != 1):
            raise ValueError(f"join {name!r}: null-aware (NOT IN) is an anti join on one key")
        self.keys, self.anti, self.id, self.null_aware = keys, anti, id_column, null_aware
        self.processing_time = None in times
        self.times = (None, None) if self.processing_time else times
        self.ttl = ttl_ms
        if self.processing_time and ttl_ms is not None:
            self.timer_interval_ms = max(1, min(ttl_ms, 1_000))
        self.left: pl.DataFrame | None = None
        """Semi: left rows still waiting for a match. Anti: emitted rows not yet deleted."""
        self.right: pl.DataFrame | None = None
        """The distinct right keys seen (NULLs too when null-aware), with their latest time."""
        self.next_id = 0

    def _valid(self) -> pl.Expr:
        return pl.all_horizontal(pl.col(k).is_not_null() for k in self.keys)

    def _stamp(self, batch: pl.DataFrame, port: int, column: str) -> pl.DataFrame:
        time = self.times[port]
        t = time.series(batch) if time is not None else pl.repeat(
            self.ctx.now(), batch.height, dtype=pl.Int64, eager=True)
        return batch.with_columns(t.alias(column))

    def _matched(self, rows: pl.DataFrame, keys: pl.DataFrame | None) -> pl.Series:
        """Per row of ``rows``: whether ``keys`` holds its (non-NULL) key."""
        if keys is None or not keys.height or not rows.height:
            return pl.repeat(False, rows.height, dtype=pl.Boolean, eager=True)
        hits = keys.select(self.keys).unique().with_columns(pl.lit(True).alias("__hit"))
        joined = rows.select(self.keys).join(hits, on=self.keys, how="left",
                                             maintain_order="left")
        return joined.get_column("__hit").fill_null(False)

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        if not batch.height:
            return
        if port == 0:
            self._on_left(self._stamp(batch, 0, LT))
        else:
            self._on_right(self._stamp(batch, 1, RT).select(*self.keys, RT))

    def _on_left(self, rows: pl.DataFrame) -> None:
        valid = rows.select(self._valid()).to_series()
        matched = self._matched(rows, self.right)
        if not self.anti:
            self.emit(rows.filter(matched).drop(LT))
            self.left = _append(self.left, rows.filter(valid & ~matched))
            return
        first = self.next_id
        self.next_id += rows.height
        rows = rows.with_columns(pl.int_range(first, first + rows.height, dtype=pl.Int64)
                                 .alias(self.id))  # type: ignore[arg-type]
        passing, kept = ~matched, valid & ~matched  # NOT EXISTS: a NULL key always passes
        if self.null_aware:
            held = self.right
            if held is None or not held.height:  # an empty subquery: every row passes
                passing = pl.repeat(True, rows.height, dtype=pl.Boolean, eager=True)
            elif held.get_column(self.keys[0]).has_nulls():  # NOT IN (..., NULL): none
                passing = pl.repeat(False, rows.height, dtype=pl.Boolean, eager=True)
            else:
                passing = kept
            kept = passing
        self.emit(self._changes(rows.filter(passing), deleted=False))
        self.left = _append(self.left, rows.filter(kept))

    def _on_right(self, rows: pl.DataFrame) -> None:
        if not self.null_aware:
            rows = rows.filter(self._valid())
        held = self.left
        if held is not None and held.height and rows.height:
            gone = self._matched(held, rows.filter(self._valid()))
            if self.null_aware:  # any row fails a NULL x, a NULL fails every x
                gone = gone | held.get_column(self.keys[0]).is_null() \
                    | rows.get_column(self.keys[0]).has_nulls()
            if self.anti:
                self.emit(self._changes(held.filter(gone), deleted=True))
            else:
                self.emit(held.filter(gone).drop(LT))
            self.left = held.filter(~gone)
        if rows.height:
            both = _append(self.right, rows)
            self.right = both.group_by(self.keys, maintain_order=True).agg(pl.col(RT).max())

    def _changes(self, rows: pl.DataFrame, *, deleted: bool) -> pl.DataFrame:
        return rows.drop(LT).with_columns(pl.lit(deleted).alias(DELETE))

    # -- state retention -------------------------------------------------------------------
    def _expire(self, now: int) -> None:
        """Forget the rows whose ``ttl`` has passed at ``now``, without output (Flink)."""
        if self.ttl is None:
            return
        if self.left is not None:
            self.left = self.left.filter(pl.col(LT) + self.ttl > now)
        if self.right is not None:
            self.right = self.right.filter(pl.col(RT) + self.ttl > now)

    def snapshot(self) -> dict[str, Any]:
        return {"left": self.left, "right": self.right, "next_id": self.next_id,
                "watermark": self.watermark}

    def restore(self, state: dict[str, Any]) -> None:
        self.left, self.right = state["left"], state["right"]
        self.next_id = int(state["next_id"])
        self.watermark = int(state["watermark"])


def semi_join(left: Stream, right: Stream, keys: list[str], *, anti: bool = False,
              id_column: str | None = None, null_aware: bool = False,
              ttl_ms: int | None = None) -> Stream:
    """Rows of ``left`` with (``anti``: without) a row of ``right`` of equal ``keys`` (named
    alike on both sides): a :class:`SemiJoin` step, without event time (see the module
    docstring); an anti join is updating by ``id_column``. Rows are kept ``ttl_ms`` after their event
    time (processing time when a side has none), forever without it."""
    schema = left.schema
    if schema is None or right.schema is None:
        raise ValueError("a semi join needs both sides' columns known")
    out = pl.Schema({**schema, id_column: pl.Int64(), DELETE: pl.Boolean()}) if anti \
        else schema
    times = (left.node.time, right.node.time)
    label = f"{'anti' if anti else 'semi'}_join[{','.join(keys)}]" + \
        ("(null-aware)" if null_aware else "") + (f"ttl({ttl_ms})" if ttl_ms else "")
    return left._then(
        "join", label, lambda n: SemiJoin(n, keys, anti=anti, id_column=id_column,
                                          null_aware=null_aware, times=times, ttl_ms=ttl_ms),
        schema=out, time=None, stateful=True,
        inputs=[(left.node, "out"), (right.node, "out")], signature=label)
