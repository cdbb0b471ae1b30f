"""SQL OVER aggregates (tidal.sql.over) on generated, out-of-order Nexmark bids, checked
against DuckDB's window functions over the same bids: ROWS and RANGE frames, named windows,
UNBOUNDED, expressions, processing time, and an updating (Top-N) input."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

import tidal as td
from tidal.nexmark import NexmarkConfig, generate_events
from tidal.sql import SqlError

EVENTS, OOO = 6_000, 10
BID = f"""CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND)
  WITH ('connector' = 'nexmark', 'events' = '{EVENTS}', 'out-of-order-group' = '{OOO}');"""


@pytest.fixture(scope="module")
def bids() -> pl.DataFrame:
    """The connector's bids, ``event_id`` giving their arrival order."""
    return generate_events(NexmarkConfig(events=EVENTS, out_of_order_group=OOO), 0, EVENTS,
                           with_event_id=True)["bid"]


def run(query: str, **kwargs: object) -> pl.DataFrame:
    flow = td.Flow("over")
    flow.sql(BID)
    stream = flow.sql(query)
    out = td.sinks.memory()
    stream.sink(out)
    flow.run(quiet=True, **kwargs)  # type: ignore[arg-type]
    return out.frame()


def duck(bids: pl.DataFrame, query: str) -> pl.DataFrame:
    con = duckdb.connect()
    con.register("bid", bids.to_arrow())
    return con.sql(query).pl()


def rows(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.cast({c: pl.Int64 for c, t in frame.schema.items() if t.is_integer()})
                  .rows(), key=repr)


@pytest.mark.parametrize("batch", [257, 100_000])
def test_rows_frame_with_several_aggregates_matches_duckdb(bids: pl.DataFrame,
                                                           batch: int) -> None:
    got = run("""
        SELECT auction, bidder, price, `dateTime`,
               COUNT(*) OVER w AS n, SUM(price) OVER w AS total, MIN(price) OVER w AS lo,
               MAX(price) OVER w AS hi, AVG(price) OVER w AS mean
        FROM bid
        WINDOW w AS (PARTITION BY bidder ORDER BY `dateTime` ROWS BETWEEN 3 PRECEDING AND
                     CURRENT ROW)""", max_batch_rows=batch)
    want = duck(bids, """
        SELECT auction, bidder, price, "dateTime", count(*) OVER w, sum(price) OVER w,
               min(price) OVER w, max(price) OVER w, sum(price) OVER w // count(price) OVER w
        FROM bid WINDOW w AS (PARTITION BY bidder ORDER BY "dateTime", event_id
                              ROWS BETWEEN 3 PRECEDING AND CURRENT ROW)""")
    assert got.columns == ["auction", "bidder", "price", "dateTime", "n", "total", "lo", "hi",
                           "mean"]
    assert got.schema["mean"] == pl.Int64  # AVG of BIGINT is a BIGINT, as in Flink
    assert got["dateTime"].is_sorted(), "rows come out in event-time order"
    assert got.height == bids.height
    assert rows(got) == rows(want)


def test_range_interval_frame_includes_peers(bids: pl.DataFrame) -> None:
    got = run("""
        SELECT auction, price, `dateTime`,
          SUM(price) OVER (PARTITION BY auction ORDER BY `dateTime`
                           RANGE BETWEEN INTERVAL '2' SECOND PRECEDING AND CURRENT ROW) AS s,
          COUNT(*) OVER (PARTITION BY auction ORDER BY `dateTime`
                         RANGE BETWEEN INTERVAL '2' SECOND PRECEDING AND CURRENT ROW) AS c
        FROM bid WHERE price > 1000""", max_batch_rows=101)
    want = duck(bids, """
        SELECT auction, price, "dateTime", sum(price) OVER w, count(*) OVER w FROM bid
        WHERE price > 1000
        WINDOW w AS (PARTITION BY auction ORDER BY "dateTime"
                     RANGE BETWEEN INTERVAL 2 SECOND PRECEDING AND CURRENT ROW)""")
    assert rows(got) == rows(want)


def test_unbounded_without_partition_and_default_frame(bids: pl.DataFrame) -> None:
    got = run("""
        SELECT price, MAX(price) OVER (ORDER BY `dateTime` ROWS UNBOUNDED PRECEDING) AS top,
               COUNT(*) OVER (ORDER BY `dateTime` ROWS UNBOUNDED PRECEDING) AS n
        FROM bid""")
    want = duck(bids, """
        SELECT price, max(price) OVER w, count(*) OVER w FROM bid
        WINDOW w AS (ORDER BY "dateTime", event_id ROWS UNBOUNDED PRECEDING)""")
    assert rows(got) == rows(want)
    # no frame: Flink's RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW (peers included)
    got = run("SELECT bidder, SUM(price) OVER (PARTITION BY bidder ORDER BY `dateTime`) AS s "
              "FROM bid")
    want = duck(bids, 'SELECT bidder, sum(price) OVER (PARTITION BY bidder ORDER BY "dateTime") '
                      "FROM bid")
    assert rows(got) == rows(want)


def test_expressions_inside_and_around_over_aggregates(bids: pl.DataFrame) -> None:
    got = run("""
        SELECT auction % 10 AS shard,
               price - AVG(price) OVER w AS above_avg,
               SUM(CASE WHEN price > 10000 THEN 1 ELSE 0 END) OVER w AS big_bids
        FROM bid
        WINDOW w AS (PARTITION BY auction % 10 ORDER BY `dateTime`
                     ROWS BETWEEN 10 PRECEDING AND CURRENT ROW)""")
    want = duck(bids, """
        SELECT auction % 10, price - sum(price) OVER w // count(price) OVER w,
               sum(CASE WHEN price > 10000 THEN 1 ELSE 0 END) OVER w FROM bid
        WINDOW w AS (PARTITION BY auction % 10 ORDER BY "dateTime", event_id
                     ROWS BETWEEN 10 PRECEDING AND CURRENT ROW)""")
    assert rows(got) == rows(want)


def test_processing_time_over_counts_in_arrival_order() -> None:
    flow = td.Flow("proc")
    flow.sql(BID.replace("`dateTime` TIMESTAMP(3),", "`dateTime` TIMESTAMP(3), p AS PROCTIME(),"))
    stream = flow.sql("SELECT bidder, COUNT(*) OVER (PARTITION BY bidder ORDER BY p ROWS "
                      "BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n FROM bid")
    out = td.sinks.memory()
    stream.sink(out)
    flow.run(quiet=True)
    got = out.frame()
    # each bidder's counts run 1, 2, 3, ... in the order its bids arrived
    assert got.group_by("bidder", maintain_order=True).agg(pl.col("n")).select(
        pl.col("n").list.eval(pl.element() == pl.int_range(1, pl.len() + 1)).list.all()
    )["n"].all()


def test_over_an_updating_top_n_upserts_by_its_key(bids: pl.DataFrame) -> None:
    """Each auction's highest bid (a Top-N: updating), then a running average per bidder of
    the winning prices: every new winner re-computes its bidder's later rows."""
    query = """
        SELECT auction, bidder, AVG(price) OVER (PARTITION BY bidder ORDER BY `dateTime`
                                   ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS avg_win
        FROM (SELECT auction, bidder, price, `dateTime` FROM (
                SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rn
                FROM bid) WHERE rn = 1)"""
    flow = td.Flow("upd")
    flow.sql(BID)
    plan = flow.sql("EXPLAIN " + query)
    assert plan.endswith("result: updating (upserts by auction)")
    changelog = run(query, max_batch_rows=97)
    final = changelog.unique("auction", keep="last", maintain_order=True)
    want = duck(bids, """
        WITH top AS (SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY auction
                                        ORDER BY price DESC, event_id) AS rn FROM bid)
                     WHERE rn = 1)
        SELECT auction, bidder, sum(price) OVER w // count(price) OVER w FROM top
        WINDOW w AS (PARTITION BY bidder ORDER BY "dateTime", auction
                     ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)""")
    assert changelog.height > final.height  # later winners changed earlier results
    assert rows(final) == rows(want)


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT SUM(price) OVER (PARTITION BY bidder ORDER BY price) FROM bid",
     "ordered by price (not a time attribute)"),
    ("SELECT SUM(price) OVER (ORDER BY `dateTime` ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) "
     "FROM bid", "does not end at the current row"),
    ("SELECT SUM(price) OVER (ORDER BY `dateTime` DESC) FROM bid", "ordered descending"),
    ("SELECT SUM(price) OVER (ORDER BY `dateTime` ROWS 2 PRECEDING), "
     "COUNT(*) OVER (ORDER BY `dateTime` ROWS 3 PRECEDING) FROM bid", "OVER windows that differ"),
    ("SELECT LAG(price) OVER (ORDER BY `dateTime`) FROM bid", "the OVER function LAG"),
    ("SELECT COUNT(DISTINCT bidder) OVER (ORDER BY `dateTime`) FROM bid", "COUNT(DISTINCT"),
    ("SELECT bidder, COUNT(*), SUM(price) OVER (ORDER BY `dateTime`) FROM bid GROUP BY bidder",
     "OVER aggregates together with GROUP BY"),
    ("SELECT SUM(price) OVER w FROM bid", "unknown window 'w'"),
    ("SELECT COUNT(*) FILTER (WHERE price > 5), SUM(price) OVER (ORDER BY `dateTime`) FROM bid",
     "OVER aggregates together with plain aggregates"),
    ("SELECT COUNT(*) FILTER (WHERE price > 5) OVER (ORDER BY `dateTime`) FROM bid",
     "FILTER in an OVER aggregate"),
    ("SELECT SUM(price) OVER (ORDER BY `dateTime` RANGE BETWEEN 5 PRECEDING AND CURRENT ROW) "
     "FROM bid", "RANGE frames over time take an interval"),
    ("SELECT price FROM bid WHERE SUM(price) OVER (ORDER BY `dateTime`) > 3",
     "the OVER window"),
    ("SELECT bidder, AVG(price) OVER (PARTITION BY bidder ORDER BY `dateTime`) FROM "
     "(SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) "
     "AS rn FROM bid) WHERE rn = 1)", "without the result's key columns (auction)"),
])
def test_unplanned_over_windows_are_named(query: str, message: str) -> None:
    flow = td.Flow("bad")
    flow.sql(BID)
    with pytest.raises(SqlError, match=None) as info:
        flow.sql(query)
    assert message in str(info.value)


def test_over_result_keeps_event_time_for_a_window_downstream(bids: pl.DataFrame) -> None:
    """Rows leave the OVER step in time order before its watermark moves on, so a TUMBLE
    over its result counts every row (none arrives late)."""
    flow = td.Flow("chain")
    flow.sql(BID)
    flow.sql("""CREATE VIEW recent AS SELECT bidder, `dateTime`,
        MAX(price) OVER (PARTITION BY bidder ORDER BY `dateTime`
                         ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS top4 FROM bid""")
    stream = flow.sql("""SELECT window_start, COUNT(*) AS n, SUM(top4) AS total
        FROM TABLE(TUMBLE(TABLE recent, DESCRIPTOR(`dateTime`), INTERVAL '100' MILLISECOND))
        GROUP BY window_start, window_end""")
    out = td.sinks.memory()
    stream.sink(out)
    flow.run(quiet=True, max_batch_rows=300)
    want = duck(bids, """
        WITH r AS (SELECT "dateTime", max(price) OVER (PARTITION BY bidder
                     ORDER BY "dateTime", event_id ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS t
                   FROM bid)
        SELECT time_bucket(INTERVAL 100 MILLISECOND, "dateTime"), count(*), CAST(sum(t) AS BIGINT)
        FROM r GROUP BY 1""")
    assert want.height > 3
    assert rows(out.frame()) == rows(want)
