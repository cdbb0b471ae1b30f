"""The OVER aggregation operator behind ``AGG(x) OVER (...)`` (tidal.operators.over), checked
against DuckDB's window functions over the same rows: ROWS and RANGE frames (ties, nulls,
UNBOUNDED), several partitions, out-of-order input released by the watermark, late rows,
checkpoints, and upsert (updating) input."""

from __future__ import annotations

import pickle

import duckdb
import numpy as np
import polars as pl
import pytest

from tidal._time import MAX_TIME
from tidal.operators.base import OperatorContext
from tidal.operators.over import Frame, OverAgg, OverAggregate
from tidal.operators.timeattr import TimeAttr

AGGS = [OverAgg("COUNT", None, "cnt"), OverAgg("COUNT", "x", "cnt_x"),
        OverAgg("SUM", "x", "total"), OverAgg("MIN", "x", "lo"), OverAgg("MAX", "x", "hi"),
        OverAgg("AVG", "x", "mean"), OverAgg("AVG", "f", "fmean")]
FRAMES = {"rows3": Frame("rows", 3), "rows0": Frame("rows", 0), "rowsU": Frame("rows", None),
          "range5": Frame("range", 5), "range0": Frame("range", 0),
          "rangeU": Frame("range", None)}


class Out:
    """What an operator emitted, by port."""

    def __init__(self) -> None:
        self.batches: list[pl.DataFrame] = []
        self.late: list[pl.DataFrame] = []
        self.late_count = 0

    def context(self, name: str) -> OperatorContext:
        def emit(b: pl.DataFrame, port: str) -> None:
            (self.late if port == "late" else self.batches).append(b)

        def count(n: int) -> None:
            self.late_count += n

        return OperatorContext(name, emit, lambda r, why: None, lambda: 0, count)

    def frame(self) -> pl.DataFrame:
        return pl.concat(self.batches)


def make(frame: Frame, out: Out, **kwargs: object) -> OverAggregate:
    op = OverAggregate("over", ["k"], TimeAttr("t"), frame, AGGS, **kwargs)  # type: ignore[arg-type]
    op.open(out.context("over"))
    return op


def events(n: int = 3_000, seed: int = 7) -> pl.DataFrame:
    """Rows in arrival order: times up to 8 ms out of order, many ties, some NULL values and
    negative ones (AVG truncates towards zero)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) // 4 + rng.integers(-8, 1, n)
    x = rng.integers(-50, 100, n).astype(object)
    x[rng.random(n) < 0.1] = None
    return pl.DataFrame({
        "id": np.arange(n), "k": rng.choice(["a", "b", "c", None], n),
        "t": t, "x": pl.Series(list(x), dtype=pl.Int64),
        "f": rng.random(n).round(3),
    })


def reference(rows: pl.DataFrame, frame: Frame, tiebreak: str = "id") -> pl.DataFrame:
    """The same aggregates by DuckDB, rows with equal times ordered by ``tiebreak``."""
    n = "UNBOUNDED" if frame.preceding is None else str(frame.preceding)
    order = f"t, {tiebreak}" if frame.unit == "rows" else "t"
    spec = f"PARTITION BY k ORDER BY {order} {frame.unit.upper()} BETWEEN {n} PRECEDING " \
           "AND CURRENT ROW"
    con = duckdb.connect()
    con.register("r", rows.to_arrow())
    return con.sql(f"""
        SELECT *, count(*) OVER w AS cnt, count(x) OVER w AS cnt_x, sum(x) OVER w AS total,
               min(x) OVER w AS lo, max(x) OVER w AS hi,
               CAST(trunc(sum(x) OVER w / count(x) OVER w) AS BIGINT) AS mean,
               avg(f) OVER w AS fmean
        FROM r WINDOW w AS ({spec})""").pl()


def same(got: pl.DataFrame, want: pl.DataFrame) -> None:
    cols = ["id", "k", "t", "x", "cnt", "cnt_x", "total", "lo", "hi", "mean"]
    got, want = got.sort("id"), want.sort("id")
    assert got.select(cols).cast({"total": pl.Int64}).rows() == \
        want.select(cols).cast({"total": pl.Int64, "cnt": pl.Int64, "cnt_x": pl.Int64}).rows()
    assert np.allclose(got["fmean"].to_numpy(), want["fmean"].to_numpy(), rtol=1e-12)


def drive(op: OverAggregate, rows: pl.DataFrame, batch: int, delay: int = 10) -> None:
    """Feed ``rows`` in batches, each followed by the watermark max time - ``delay``."""
    high = None
    for start in range(0, rows.height, batch):
        part = rows.slice(start, batch)
        op.on_batch(part, 0)
        top = int(part["t"].max())  # type: ignore[arg-type]
        high = top if high is None else max(high, top)
        op.on_watermark(high - delay)
    op.on_watermark(MAX_TIME)


@pytest.mark.parametrize("name", list(FRAMES))
@pytest.mark.parametrize("batch", [1_000, 97])
def test_frames_match_duckdb_window_functions(name: str, batch: int) -> None:
    rows, out = events(), Out()
    op = make(FRAMES[name], out)
    drive(op, rows, batch)
    got = out.frame()
    assert got.height == rows.height and out.late_count == 0
    assert got["t"].is_sorted(), "rows are emitted in time order"
    assert got.columns == [*rows.columns, *(a.output for a in AGGS)]
    same(got, reference(rows, FRAMES[name]))


def test_rows_wait_for_the_watermark_and_keep_bounded_state() -> None:
    out = Out()
    op = make(Frame("rows", 2), out)
    op.on_batch(pl.DataFrame({"id": [0, 1, 2], "k": ["a", "a", "b"], "t": [5, 3, 4],
                              "x": [1, 2, 3], "f": [0.0] * 3}), 0)
    assert out.batches == []  # nothing is known complete yet
    op.on_watermark(5)  # rows at t < 5 are ready; the one at t = 5 may still get peers
    first = out.frame()
    assert first.select("id", "total").rows() == [(1, 2), (2, 3)]
    op.on_batch(pl.DataFrame({"id": [3, 4, 5], "k": ["a", "a", "a"], "t": [5, 6, 7],
                              "x": [10, 20, 30], "f": [0.0] * 3}), 0)
    op.on_watermark(MAX_TIME)
    rest = out.frame().slice(first.height)
    # ties at t = 5 by arrival: id 0 then id 3; frames are the row and 2 before it
    assert rest.select("id", "total").rows() == [(0, 3), (3, 13), (4, 31), (5, 60)]
    # state: only the last 2 rows of "a" and "b"'s single row
    assert op.tail is not None and op.tail.select("k", "__over_s5").rows() == \
        [("a", 20), ("a", 30), ("b", 3)]


def test_late_rows_go_to_the_late_port() -> None:
    out = Out()
    op = make(Frame("range", 10), out)
    op.on_batch(pl.DataFrame({"id": [0], "k": ["a"], "t": [100], "x": [1], "f": [0.0]}), 0)
    op.on_watermark(90)
    op.on_batch(pl.DataFrame({"id": [1, 2], "k": ["a", "a"], "t": [89, 95], "x": [5, 6],
                              "f": [0.0, 0.0]}), 0)
    op.on_watermark(MAX_TIME)
    assert out.late_count == 1 and out.late[0]["id"].to_list() == [1]
    assert out.late[0].columns == ["id", "k", "t", "x", "f"]
    assert out.frame().select("id", "total").rows() == [(2, 6), (0, 7)]


def test_range_state_keeps_only_rows_in_range() -> None:
    out = Out()
    op = make(Frame("range", 10), out)
    op.on_batch(pl.DataFrame({"id": range(5), "k": ["a"] * 5, "t": [0, 10, 20, 30, 40],
                              "x": [1] * 5, "f": [0.0] * 5}), 0)
    op.on_watermark(45)
    assert op.tail is not None and op.tail["__over_t"].to_list() == [40]  # 35: oldest needed


@pytest.mark.parametrize("name", ["rows3", "range5", "rowsU", "rangeU"])
def test_checkpoint_restore_resumes_exactly(name: str) -> None:
    rows = events(1_500, seed=3)
    whole = Out()
    drive(make(FRAMES[name], whole), rows, 200)
    resumed = Out()
    first = make(FRAMES[name], resumed)
    high = 0
    for start in range(0, 800, 200):
        part = rows.slice(start, 200)
        first.on_batch(part, 0)
        high = max(high, int(part["t"].max()))  # type: ignore[arg-type]
        first.on_watermark(high - 10)
    state = pickle.loads(pickle.dumps(first.snapshot()))
    second = make(FRAMES[name], resumed)
    second.restore(state)
    second.watermark = first.watermark
    for start in range(800, rows.height, 200):
        part = rows.slice(start, 200)
        second.on_batch(part, 0)
        high = max(high, int(part["t"].max()))  # type: ignore[arg-type]
        second.on_watermark(high - 10)
    second.on_watermark(MAX_TIME)
    assert resumed.frame().equals(whole.frame())


def test_by_arrival_emits_at_once_in_arrival_order() -> None:
    out = Out()
    op = make(Frame("rows", 1), out, by_arrival=True)
    op.on_batch(pl.DataFrame({"id": [0, 1], "k": ["a", "a"], "t": [7, 7], "x": [1, 2],
                              "f": [0.0, 0.0]}), 0)
    op.on_batch(pl.DataFrame({"id": [2], "k": ["a"], "t": [8], "x": [4], "f": [0.0]}), 0)
    assert out.frame().select("id", "total").rows() == [(0, 1), (1, 3), (2, 6)]


def test_no_partition_is_one_partition() -> None:
    out = Out()
    op = OverAggregate("o", [], TimeAttr("t"), Frame("rows", None), [OverAgg("SUM", "x", "s")])
    op.open(out.context("o"))
    op.on_batch(pl.DataFrame({"t": [2, 1, 3], "x": [1, 2, 3]}), 0)
    op.on_watermark(MAX_TIME)
    assert out.frame().rows() == [(1, 2, 2), (2, 1, 3), (3, 3, 6)]


# -- updating input -----------------------------------------------------------------------
def upserts(n: int, keys: int, seed: int) -> pl.DataFrame:
    """An upsert stream: ``n`` rows over ``keys`` keys; a key's later row replaces its
    earlier one, changing its time, value and sometimes its partition."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"id": rng.integers(0, keys, n), "k": rng.choice(["a", "b", "c"], n),
                         "t": rng.integers(0, 60, n), "x": rng.integers(-20, 100, n),
                         "f": rng.random(n).round(3)})


@pytest.mark.parametrize("name", ["rows3", "range5", "rowsU", "rangeU"])
def test_updating_input_final_table_matches_duckdb_over_final_rows(name: str) -> None:
    rows, out = upserts(2_000, 150, seed=11), Out()
    op = make(FRAMES[name], out, key=["id"])
    for start in range(0, rows.height, 111):
        op.on_batch(rows.slice(start, 111), 0)
    changelog = out.frame()
    final = changelog.unique("id", keep="last", maintain_order=True)
    latest = rows.unique("id", keep="last", maintain_order=True)
    same(final, reference(latest, FRAMES[name], tiebreak="id"))
    # upserts only for rows whose result changed, not every row of a touched partition
    assert changelog.height < rows.height * 40


def test_updating_input_restores_from_a_checkpoint() -> None:
    rows = upserts(600, 40, seed=5)
    whole, resumed = Out(), Out()
    op = make(Frame("rows", 2), whole, key=["id"])
    for start in range(0, 600, 100):
        op.on_batch(rows.slice(start, 100), 0)
    first = make(Frame("rows", 2), resumed, key=["id"])
    for start in range(0, 300, 100):
        first.on_batch(rows.slice(start, 100), 0)
    second = make(Frame("rows", 2), resumed, key=["id"])
    second.restore(pickle.loads(pickle.dumps(first.snapshot())))
    for start in range(300, 600, 100):
        second.on_batch(rows.slice(start, 100), 0)
    assert resumed.frame().equals(whole.frame())


def test_by_arrival_range_keeps_rows_a_same_time_row_still_needs() -> None:
    out = Out()
    op = make(Frame("range", 5), out, by_arrival=True)
    op.on_batch(pl.DataFrame({"id": [0, 1], "k": ["a", "a"], "t": [5, 10], "x": [1, 2],
                              "f": [0.0, 0.0]}), 0)
    op.on_batch(pl.DataFrame({"id": [2], "k": ["a"], "t": [10], "x": [4], "f": [0.0]}), 0)
    assert out.frame().select("id", "total").rows() == [(0, 1), (1, 3), (2, 7)]
