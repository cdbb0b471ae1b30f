"""CUMULATE, window TVF rows, window Top-N and window joins in SQL, each checked against
DuckDB's batch answer over the same generated, out-of-order Nexmark events (exact equality
of row multisets; every result here is append-only)."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

import tidal as td
from tidal.errors import TidalError
from tidal.nexmark import NexmarkConfig, generate_events
from tidal.sql.nexmark import ddl

EVENTS, OOO, RATE = 30_000, 100, 1_000  # 30 s of event time, out of order in groups of 100
MS = 'epoch_ms("dateTime")'


@pytest.fixture(scope="module")
def events() -> dict[str, pl.DataFrame]:
    config = NexmarkConfig(events=EVENTS, out_of_order_group=OOO, rate=RATE)
    return generate_events(config, 0, EVENTS, with_event_id=True)


def run_sql(query: str, batch: int = 997) -> pl.DataFrame:
    flow = td.Flow("windowing")
    flow.sql(ddl(events=EVENTS, out_of_order_group=OOO, rate=RATE, event_id=True))
    out = td.sinks.memory()
    flow.sql(query).sink(out)
    flow.run(quiet=True, max_batch_rows=batch)
    return out.frame()


def duck(query: str, events: dict[str, pl.DataFrame]) -> pl.DataFrame:
    con = duckdb.connect()
    for kind, frame in events.items():
        con.register(kind, frame.to_arrow())
    return con.sql(query).pl()


def rows(frame: pl.DataFrame) -> list[tuple]:
    cols = [pl.col(c).dt.epoch("ms") if isinstance(t, pl.Datetime) else pl.col(c)
            for c, t in frame.schema.items()]
    return sorted(frame.select(cols).iter_rows(), key=repr)


def windows(kind: str, step: int, size: int) -> str:
    """DuckDB: every bid with (ws, we) of each of its windows, in epoch ms."""
    if kind == "TUMBLE":
        return f"""SELECT *, {MS} // {size} * {size} AS ws, {MS} // {size} * {size} + {size} AS we
                   FROM bid"""
    if kind == "HOP":
        return f"""SELECT * FROM (SELECT *, s AS ws, s + {size} AS we FROM bid,
                     LATERAL (SELECT unnest(range({MS} // {step} * {step} - {size} + {step},
                                                  {MS} // {step} * {step} + 1, {step})) AS s))"""
    return f"""SELECT *, {MS} // {size} * {size} AS ws, e AS we FROM bid,
                 LATERAL (SELECT unnest(range({MS} // {step} * {step} + {step},
                                              {MS} // {size} * {size} + {size} + 1, {step})) AS e)"""


TVF = {
    "TUMBLE": "TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '5' SECOND)",
    "HOP": "HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '6' SECOND)",
    "CUMULATE": "CUMULATE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, "
                "INTERVAL '6' SECOND)",
}
STEP_SIZE = {"TUMBLE": (5_000, 5_000), "HOP": (2_000, 6_000), "CUMULATE": (2_000, 6_000)}


# -- CUMULATE ------------------------------------------------------------------------------
def test_cumulate_aggregation_equals_duckdb(events: dict[str, pl.DataFrame]) -> None:
    got = run_sql(f"""
        SELECT auction, window_start, window_end, COUNT(*) AS n, MAX(price) AS top,
               COUNT(DISTINCT bidder) AS bidders, SUM(price) AS total,
               COUNT(*) FILTER (WHERE price > 1000) AS big
        FROM TABLE({TVF['CUMULATE']})
        GROUP BY auction, window_start, window_end""")
    want = duck(f"""
        SELECT auction, ws, we, count(*), max(price), count(DISTINCT bidder), sum(price),
               count(*) FILTER (WHERE price > 1000)
        FROM ({windows('CUMULATE', 2_000, 6_000)}) GROUP BY ALL""", events)
    assert got.columns == ["auction", "window_start", "window_end", "n", "top", "bidders", "total",
                           "big"]
    assert got.height == want.height
    assert rows(got) == rows(want)


def test_cumulate_result_grouped_by_its_windows_again(events: dict[str, pl.DataFrame]) -> None:
    got = run_sql(f"""
        SELECT window_start, window_end, MAX(n) AS most, COUNT(*) AS auctions FROM (
          SELECT auction, window_start, window_end, COUNT(*) AS n FROM TABLE({TVF['CUMULATE']})
          GROUP BY auction, window_start, window_end)
        GROUP BY window_start, window_end""")
    want = duck(f"""
        SELECT ws, we, max(n), count(*) FROM (
          SELECT auction, ws, we, count(*) AS n FROM ({windows('CUMULATE', 2_000, 6_000)})
          GROUP BY ALL) GROUP BY ALL""", events)
    assert rows(got) == rows(want)


@pytest.mark.parametrize("kind", ["TUMBLE", "HOP", "CUMULATE"])
def test_window_tvf_rows_have_one_row_per_window(kind: str,
                                                 events: dict[str, pl.DataFrame]) -> None:
    got = run_sql(f"SELECT auction, price, window_start, window_end, window_time "
                  f"FROM TABLE({TVF[kind]}) WHERE price > 5000000")
    want = duck(f"SELECT auction, price, ws, we, we - 1 FROM ({windows(kind, *STEP_SIZE[kind])}) "
                "WHERE price > 5000000", events)
    assert got.height == want.height > 0
    assert rows(got) == rows(want)


def test_cumulate_size_must_be_a_multiple_of_the_step() -> None:
    with pytest.raises(TidalError, match="CUMULATE with a size that is not a multiple"):
        run_sql("SELECT auction, COUNT(*) FROM TABLE(CUMULATE(TABLE bid, DESCRIPTOR(`dateTime`), "
                "INTERVAL '4' SECOND, INTERVAL '10' SECOND)) GROUP BY auction, window_start, "
                "window_end")


# -- window Top-N ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["TUMBLE", "HOP", "CUMULATE"])
def test_window_top_n_over_a_window_tvf(kind: str, events: dict[str, pl.DataFrame]) -> None:
    got = run_sql(f"""
        SELECT window_start, window_end, auction, price, rn FROM (
          SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end
                                       ORDER BY price DESC) AS rn
          FROM TABLE({TVF[kind]}))
        WHERE rn <= 3""")
    want = duck(f"""
        SELECT ws, we, auction, price, rn FROM (
          SELECT *, row_number() OVER (PARTITION BY ws, we ORDER BY price DESC, event_id) AS rn
          FROM ({windows(kind, *STEP_SIZE[kind])}))
        WHERE rn <= 3""", events)
    assert got.columns == ["window_start", "window_end", "auction", "price", "rn"]
    assert got.height == want.height > 0  # append-only: each window's rows once
    assert rows(got) == rows(want)


def test_window_top_n_per_key_without_the_row_number(events: dict[str, pl.DataFrame]) -> None:
    got = run_sql(f"""
        SELECT auction, bidder, price, window_end FROM (
          SELECT auction, bidder, price, window_start, window_end,
                 ROW_NUMBER() OVER (PARTITION BY window_start, window_end, auction
                                    ORDER BY price ASC, bidder DESC) AS rn
          FROM TABLE({TVF['CUMULATE']}) WHERE bidder % 2 = 0)
        WHERE rn < 3""")
    want = duck(f"""
        SELECT auction, bidder, price, we FROM (
          SELECT *, row_number() OVER (PARTITION BY ws, we, auction
                                       ORDER BY price, bidder DESC, event_id) AS rn
          FROM ({windows('CUMULATE', 2_000, 6_000)}) WHERE bidder % 2 = 0)
        WHERE rn < 3""", events)
    assert rows(got) == rows(want)


def test_window_top_n_over_a_window_aggregation(events: dict[str, pl.DataFrame]) -> None:
    """Nexmark q5's shape: the auctions with the most bids of each hopping window."""
    got = run_sql(f"""
        SELECT auction, num, window_start, window_end, rn FROM (
          SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end
                                       ORDER BY num DESC, auction) AS rn
          FROM (SELECT auction, COUNT(*) AS num, window_start, window_end
                FROM TABLE({TVF['HOP']}) GROUP BY auction, window_start, window_end))
        WHERE rn <= 2""")
    want = duck(f"""
        SELECT auction, num, ws, we, rn FROM (
          SELECT *, row_number() OVER (PARTITION BY ws, we ORDER BY num DESC, auction) AS rn
          FROM (SELECT auction, count(*) AS num, ws, we
                FROM ({windows('HOP', 2_000, 6_000)}) GROUP BY ALL))
        WHERE rn <= 2""", events)
    assert got.height == want.height > 0
    assert rows(got) == rows(want)


@pytest.mark.parametrize(("direction", "ties"), [("DESC", "DESC"), ("ASC", "")])
def test_window_deduplication_keeps_the_first_or_last_row(direction: str, ties: str,
                                                          events: dict[str, pl.DataFrame]) -> None:
    got = run_sql(f"""
        SELECT bidder, price, `dateTime`, window_start FROM (
          SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, bidder
                                       ORDER BY `dateTime` {direction}) AS rn
          FROM TABLE({TVF['TUMBLE']}))
        WHERE rn = 1""")
    want = duck(f"""
        SELECT bidder, price, "dateTime", ws FROM (
          SELECT *, row_number() OVER (PARTITION BY ws, we, bidder
                                       ORDER BY "dateTime" {direction}, event_id {ties}) AS rn
          FROM ({windows('TUMBLE', 5_000, 5_000)}))
        WHERE rn = 1""", events)
    assert got.height == want.height
    assert rows(got) == rows(want)
