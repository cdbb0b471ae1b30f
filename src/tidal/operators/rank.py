"""Top-N and deduplication over a whole stream: SQL's ``ROW_NUMBER() OVER (PARTITION BY
... ORDER BY ...)`` kept while ``<= N``.

:class:`TopN` keeps, per partition key, the ``n`` best rows seen so far (one Polars frame
for all keys, at most ``n`` rows per key) and works on whole batches: a batch's own best
``n`` rows per key are merged with the touched keys' current rows, re-sorted and cut to
``n``, and every (key, rank) whose row changed is emitted. The result is *updating*: each
output row replaces the row of its ``(key, rank)`` (or of its key when ``n == 1``), so an
upsert sink holds the current top rows. The input must be append-only; then a key only gains
ranks (never loses one) and upserts by ``(key, rank)`` need no deletions.

Ties are broken by arrival (a sequence number given to each row as it comes in): the earlier
row ranks first, or, with ``ties="last"``, the later one (Flink's keep-last-row
deduplication, ``ORDER BY rowtime DESC`` with ``n == 1``).

:class:`WindowTopN` is the same ranking per partition *and window* (Flink's window Top-N and
window deduplication): it emits nothing until the watermark passes a window's end, then its
final rows once, and forgets the window. Its result is append-only.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from tidal._time import MIN_TIME
from tidal.operators.base import Operator
from tidal.operators.timeattr import TimeAttr

__all__ = ["TopN", "WindowTopN"]

SEQ = "__rank_seq"
END = "__rank_end"


class TopN(Operator):
    """The ``n`` first rows per ``partition`` key in ``order`` (see the module docstring).

    Output: the input's columns, plus ``rank_column`` (1 = first, Int64) when given.
    """

    stateful = True

    def __init__(self, name: str, partition: list[str], order: list[str],
                 descending: list[bool], n: int, rank_column: str | None = None,
                 ties: str = "first") -> None:
        super().__init__(name)
        if n < 1:
            raise ValueError(f"TopN {name}: n must be at least 1, got {n}")
        if len(order) != len(descending):
            raise ValueError(f"TopN {name}: one descending flag per order column")
        if ties not in ("first", "last"):
            raise ValueError(f"TopN {name}: ties must be 'first' or 'last', not {ties!r}")
        self.partition, self.order, self.descending = partition, order, descending
        self.n, self.rank_column, self.ties = n, rank_column, ties
        self.rank = rank_column or "__rank"
        self.state: pl.DataFrame | None = None  # input columns + SEQ + rank, <= n rows per key
        self.seq = 0

    def _sorted(self, rows: pl.DataFrame) -> pl.DataFrame:
        # Flink orders NULL as the smallest value: first ascending, last descending
        return rows.sort([*self.order, SEQ], descending=[*self.descending, self.ties == "last"],
                         nulls_last=[*self.descending, False], maintain_order=True)

    def _best(self, rows: pl.DataFrame) -> pl.DataFrame:
        best = self._sorted(rows).group_by(self.partition, maintain_order=True).head(self.n)
        return best.with_columns(
            (pl.int_range(pl.len(), dtype=pl.Int64).over(self.partition) + 1).alias(self.rank))

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        if not batch.height:
            return
        merged, old = self._merge(batch)
        changed = merged if old is None else merged.join(
            old.select(*self.partition, self.rank, SEQ), on=[*self.partition, self.rank, SEQ],
            how="anti", nulls_equal=True, maintain_order="left")
        drop = [SEQ] if self.rank_column is not None else [SEQ, self.rank]
        self.emit(changed.drop(drop))

    def _merge(self, batch: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame | None]:
        """Fold ``batch`` into the state: the new best rows of the partitions it touched,
        and their rows before (None when the state was empty)."""
        rows = batch.with_columns(
            (pl.int_range(batch.height, dtype=pl.Int64) + self.seq).alias(SEQ))
        self.seq += batch.height
        candidates = self._best(rows)
        if self.state is None:
            merged, old = candidates, None
            self.state = merged
        else:
            touched = candidates.select(self.partition).unique()
            old = self.state.join(touched, on=self.partition, how="semi", nulls_equal=True)
            merged = self._best(pl.concat([old.drop(self.rank), candidates.drop(self.rank)],
                                          how="vertical_relaxed"))
            rest = self.state.join(touched, on=self.partition, how="anti", nulls_equal=True)
            self.state = pl.concat([rest, merged], how="vertical_relaxed")
        return merged, old

    def snapshot(self) -> dict[str, Any]:
        return {"state": self.state, "seq": self.seq}

    def restore(self, state: dict[str, Any]) -> None:
        self.state, self.seq = state["state"], int(state["seq"])


class WindowTopN(TopN):
    """The ``n`` first rows per ``partition`` key of each window, emitted once when the
    watermark passes the window's end (see the module docstring).

    Each row carries its window: the partition columns include the window's start and end,
    and ``end`` reads the end (epoch ms or datetime). Rows whose window has already fired are
    late (the ``late`` port). Output: the input's columns, plus ``rank_column`` when given,
    a window's rows in rank order.
    """

    def __init__(self, name: str, partition: list[str], order: list[str],
                 descending: list[bool], n: int, end: TimeAttr, rank_column: str | None = None,
                 ties: str = "first") -> None:
        super().__init__(name, partition, order, descending, n, rank_column, ties)
        self.end = end

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        if not batch.height:
            return
        ends = self.end.series(batch)
        if self.watermark > MIN_TIME and ends.min() <= self.watermark:  # type: ignore[operator]
            fired = ends <= self.watermark
            late = batch.filter(fired)
            self.ctx.count_late(late.height)
            self.emit(late, "late")
            batch, ends = batch.filter(~fired), ends.filter(~fired)
            if not batch.height:
                return
        self._merge(batch.with_columns(ends.alias(END)))

    def on_watermark(self, watermark: int) -> None:
        self.watermark = watermark
        if self.state is None or not self.state.height or \
                self.state[END].min() > watermark:  # type: ignore[operator]
            return
        fire = pl.col(END) <= watermark
        ready = self.state.filter(fire)
        self.state = self.state.filter(~fire)
        drop = [SEQ, END] if self.rank_column is not None else [SEQ, END, self.rank]
        self.emit(ready.sort([END, *self.partition, self.rank], nulls_last=True).drop(drop))

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "watermark": self.watermark}

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        self.watermark = int(state["watermark"])
