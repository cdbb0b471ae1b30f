"""Regular (unbounded) outer joins with retractions: SQL's ``LEFT``, ``RIGHT`` and ``FULL
OUTER JOIN`` without time bounds, over append-only inputs.

Like the inner regular join (:class:`~tidal.operators.join.StreamJoin` without bounds),
:class:`OuterJoin` keeps every row of both sides (for ``ttl_ms`` if given) and joins each
arriving batch with the other side's rows, so each pair is emitted once, when its later row
arrives. What it adds is Flink's *updating* result for the rows without a partner:

- a row of a preserved side (the left of a ``LEFT JOIN``, the right of a ``RIGHT JOIN``,
  both of a ``FULL JOIN``) that finds no partner on arrival is emitted at once, padded with
  NULLs on the other side;
- when its first partner arrives later, the padded row is **deleted** (``__delete`` true,
  with the row's full values, Flink's ``-D``) and the joined row emitted (``+I``).

Each row gets a hidden sequence number per side (``left_id``, ``right_id``), checkpointed
with the state, so each output row has an upsert key ``(left_id, right_id)``: a padded row
has a NULL id on its padded side. Within an output batch the deletes come first. A pair
counts as a partner only when it passes the ``residual`` condition (the ON conditions
beside the key equalities). Rows with a NULL key never match (SQL's ``=``): they are padded
and not kept. When a row leaves the state (``ttl_ms`` after its time), nothing is emitted:
later rows just no longer meet it, as in Flink.

>>> import polars as pl
>>> from tidal.operators.base import OperatorContext
>>> from tidal.operators.changelog import DELETE
>>> out = []
>>> op = OuterJoin("j", ["k"], pl.Schema({"k": pl.Int64, "a": pl.String}),
...                pl.Schema({"k": pl.Int64, "b": pl.String}), ids=("__l", "__r"),
...                keep=(True, False))
>>> op.open(OperatorContext("j", lambda b, p: out.append(b), None, lambda: 0, None))
>>> op.on_batch(pl.DataFrame({"k": [1], "a": ["x"]}), 0)
>>> op.on_batch(pl.DataFrame({"k": [1], "b": ["y"]}), 1)
>>> pl.concat(out).rows()
[(1, 'x', None, 0, None, False), (1, 'x', None, 0, None, True), (1, 'x', 'y', 0, 0, False)]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from tidal.operators.base import Operator
from tidal.operators.changelog import DELETE
from tidal.operators.join import LT, RT, SUFFIX, ExpiresState, _append, joined_schema
from tidal.operators.timeattr import TimeAttr

if TYPE_CHECKING:
    from tidal.api.stream import Stream

__all__ = ["OuterJoin", "outer_join"]

MATCHED = ("__lmatched", "__rmatched")
"""Per side: whether a kept row has found a partner (its padded row was deleted)."""
TIMES = (LT, RT)


class OuterJoin(ExpiresState, Operator):
    """An outer regular join on equal ``keys`` (the same column names on both sides); see
    the module docstring. ``keep`` says which sides are preserved: ``(True, False)`` is a
    ``LEFT JOIN``, ``(False, True)`` a ``RIGHT JOIN``, ``(True, True)`` a ``FULL JOIN``.

    Output: :func:`joined_schema`'s columns, then ``ids`` and :data:`DELETE`.
    """

    stateful = True

    def __init__(self, name: str, keys: list[str], left_schema: pl.Schema,
                 right_schema: pl.Schema, *, ids: tuple[str, str], keep: tuple[bool, bool],
                 residual: pl.Expr | None = None, times: tuple[TimeAttr | None, TimeAttr | None]
                 = (None, None), ttl_ms: int | None = None) -> None:
        super().__init__(name)
        if not any(keep):
            raise ValueError(f"join {name!r}: an outer join preserves at least one side")
        self.keys, self.ids, self.keep, self.residual = keys, ids, keep, residual
        self.schema = outer_join_schema(left_schema, right_schema, keys, ids)
        self.processing_time = None in times
        self.times = (None, None) if self.processing_time else times
        self.ttl = ttl_ms
        if self.processing_time and ttl_ms is not None:
            self.timer_interval_ms = max(1, min(ttl_ms, 1_000))
        right = {(c + SUFFIX if c in left_schema and c not in keys else c): c
                 for c in right_schema}
        self.padded = (self._filled({c: c for c in [*left_schema, ids[0]]}),
                       self._filled({**right, ids[1]: ids[1]}))
        """Per side: the output columns from a row of that side alone."""
        self.joined = self._filled({c: c for c in self.schema})
        self.sides: list[pl.DataFrame | None] = [None, None]
        self.next_ids = [0, 0]
        self.oldest: list[int | None] = [None, None]
        """The smallest time held per side, when known: skips TTL scans while none expired."""

    def _filled(self, source: dict[str, str]) -> list[pl.Expr]:
        """The output columns (but :data:`DELETE`), each read from the column ``source``
        names for it, NULL where it names none."""
        return [(pl.col(source[c]) if c in source else pl.lit(None)).cast(t).alias(c)
                for c, t in self.schema.items() if c != DELETE]

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        if not batch.height:
            return
        rows = self._numbered(batch, port)
        other, mine = 1 - port, self.ids[port]
        pairs = self._pairs(*((rows, self.sides[1]) if port == 0 else (self.sides[0], rows)))
        out = []
        if pairs is not None and self.keep[other]:
            # the other side's rows meeting their first partner: their padded rows go
            found = pairs.filter(~pl.col(MATCHED[other])).get_column(self.ids[other]).unique()
            if found.len():
                held = self.sides[other]
                assert held is not None
                first = pl.col(self.ids[other]).is_in(found.implode())
                out.append(self._pad(held.filter(first), other, deleted=True))
                self.sides[other] = held.with_columns(pl.col(MATCHED[other]) | first)
        if pairs is not None:
            out.append(pairs.select(self.joined).with_columns(pl.lit(False).alias(DELETE)))
            rows = rows.with_columns(pl.col(mine).is_in(pairs.get_column(mine).unique()
                                                        .implode()).alias(MATCHED[port]))
        if self.keep[port]:
            out.append(self._pad(rows.filter(~pl.col(MATCHED[port])), port, deleted=False))
        self._hold(rows, port)
        out = [f for f in out if f.height]
        if out:
            self.emit(pl.concat(out, how="vertical") if len(out) > 1 else out[0])

    def _numbered(self, batch: pl.DataFrame, port: int) -> pl.DataFrame:
        """``batch`` with its side's ids, time and an unmatched flag."""
        time = self.times[port]
        t = time.series(batch) if time is not None else pl.repeat(
            self.ctx.now(), batch.height, dtype=pl.Int64, eager=True)
        first = self.next_ids[port]
        self.next_ids[port] += batch.height
        return batch.with_columns(
            pl.int_range(first, first + batch.height, dtype=pl.Int64).alias(self.ids[port]),
            t.alias(TIMES[port]), pl.lit(False).alias(MATCHED[port]))

    def _pairs(self, left: pl.DataFrame | None, right: pl.DataFrame | None
               ) -> pl.DataFrame | None:
        """The pairs of ``left`` and ``right`` rows with equal keys that pass the residual."""
        if left is None or right is None or not left.height or not right.height:
            return None
        pairs = left.join(right, on=self.keys, how="inner", suffix=SUFFIX, coalesce=True,
                          maintain_order="left")
        if self.residual is not None:
            pairs = pairs.filter(self.residual)
        return pairs if pairs.height else None

    def _pad(self, rows: pl.DataFrame, port: int, *, deleted: bool) -> pl.DataFrame:
        """``rows`` of side ``port`` as output rows with NULLs for the other side."""
        return rows.select(self.padded[port]).with_columns(pl.lit(deleted).alias(DELETE))

    def _hold(self, rows: pl.DataFrame, port: int) -> None:
        """Keep ``rows`` for the other side's later rows (a NULL key never matches)."""
        rows = rows.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in self.keys))
        if not rows.height:
            return
        self.sides[port] = _append(self.sides[port], rows)
        oldest, new = self.oldest[port], rows.get_column(TIMES[port]).min()
        if oldest is not None and new is not None:
            self.oldest[port] = min(oldest, new)  # type: ignore[type-var]

    # -- state retention -------------------------------------------------------------------
    def _expire(self, now: int) -> None:
        """Forget the rows whose ``ttl`` has passed at ``now`` (watermark or clock)."""
        if self.ttl is None:
            return
        for port, held in enumerate(self.sides):
            if held is None or not held.height:
                continue
            oldest = self.oldest[port]
            if oldest is None:
                oldest = self.oldest[port] = held.get_column(TIMES[port]).min()  # type: ignore[assignment]
            if oldest is not None and oldest + self.ttl > now:
                continue
            self.sides[port] = held.filter(pl.col(TIMES[port]) + self.ttl > now)
            self.oldest[port] = None

    def snapshot(self) -> dict[str, Any]:
        return {"sides": list(self.sides), "next_ids": list(self.next_ids),
                "watermark": self.watermark}

    def restore(self, state: dict[str, Any]) -> None:
        self.sides = list(state["sides"])
        self.next_ids = [int(i) for i in state["next_ids"]]
        self.oldest = [None, None]
        self.watermark = int(state["watermark"])


def outer_join_schema(left: pl.Schema, right: pl.Schema, keys: list[str],
                      ids: tuple[str, str]) -> pl.Schema:
    """The output columns of an :class:`OuterJoin`."""
    joined = joined_schema(left, right, keys, keys)
    assert joined is not None
    return pl.Schema({**joined, ids[0]: pl.Int64(), ids[1]: pl.Int64(), DELETE: pl.Boolean()})


def outer_join(left: Stream, right: Stream, keys: list[str], *, how: str,
               ids: tuple[str, str], residual: pl.Expr | None = None,
               ttl_ms: int | None = None) -> Stream:
    """``left`` ``how`` (``"left"``, ``"right"`` or ``"full"``) outer-joined with ``right``
    on equal ``keys`` (named alike on both sides): an :class:`OuterJoin` step, whose result
    is updating by ``ids``. Rows are kept ``ttl_ms`` after their event time (processing
    time when a side has none), forever without it."""
    keep = {"left": (True, False), "right": (False, True), "full": (True, True)}[how]
    ls, rs = left.schema, right.schema
    if ls is None or rs is None:
        raise ValueError("an outer join needs both sides' columns known")
    times = (left.node.time, right.node.time)
    label = f"{how}_outer_join[{','.join(keys)}]" + (f"ttl({ttl_ms})" if ttl_ms else "")
    return left._then(
        "join", label, lambda n: OuterJoin(n, keys, ls, rs, ids=ids, keep=keep,
                                           residual=residual, times=times, ttl_ms=ttl_ms),
        schema=outer_join_schema(ls, rs, keys, ids), time=None, stateful=True,
        inputs=[(left.node, "out"), (right.node, "out")],
        signature=f"{label} on {residual}" if residual is not None else label)
