"""ORDER BY and LIMIT on continuous queries: time sorts, Top-N over the whole stream, first
rows; each checked against DuckDB on out-of-order Nexmark bids."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

import tidal as td
from tidal.nexmark import NexmarkConfig, generate_events
from tidal.operators.changelog import apply_changelog
from tidal.sql import SqlError
from tidal.sql.nexmark import ddl

N, OOO = 20_000, 50


@pytest.fixture(scope="module")
def duck() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    events = generate_events(NexmarkConfig(events=N, out_of_order_group=OOO), 0, N)
    con.register("bid", events["bid"].to_arrow())
    return con


def run(query: str, batch: int = 777) -> pl.DataFrame:
    flow = td.Flow("order")
    flow.sql(ddl(events=N, out_of_order_group=OOO))
    out = td.sinks.memory()
    flow.sql(query).sink(out)
    flow.run(quiet=True, max_batch_rows=batch)
    return out.frame()


@pytest.mark.parametrize("batch", [1_000, 100_000])
def test_order_by_event_time_releases_rows_in_time_order(duck: duckdb.DuckDBPyConnection,
                                                          batch: int) -> None:
    query = ("SELECT auction, bidder, price, `dateTime` FROM bid WHERE MOD(auction, 7) = 0 "
             "ORDER BY `dateTime`, price DESC, bidder")
    got = run(query, batch)
    want = duck.sql(query.replace("`", '"')).pl()
    assert got.height == want.height > 100
    assert got["dateTime"].is_sorted()
    assert got.rows() == want.rows()  # the input arrives out of order, the output does not


def test_order_by_with_limit_is_a_top_n_of_the_whole_stream(duck: duckdb.DuckDBPyConnection
                                                            ) -> None:
    query = "SELECT auction, bidder, price FROM bid ORDER BY price DESC, auction LIMIT 5"
    changes = run(query)
    assert changes.height > 5  # updating: the top rows changed as bids came
    final = apply_changelog(changes, ["__rownum"]).sort("__rownum")
    assert final.drop("__rownum").rows() == duck.sql(query).fetchall()
    assert final["__rownum"].to_list() == [1, 2, 3, 4, 5]


def test_limit_keeps_the_first_rows_and_order_by_position(duck: duckdb.DuckDBPyConnection
                                                          ) -> None:
    assert run("SELECT auction, price FROM bid LIMIT 3").rows() == \
        duck.sql("SELECT auction, price FROM bid LIMIT 3").fetchall()
    got = run("SELECT `dateTime` AS t, auction FROM bid ORDER BY 1, 2 LIMIT 4")
    want = duck.sql('SELECT "dateTime" AS t, auction FROM bid ORDER BY 1, 2 LIMIT 4').pl()
    assert got.rows() == want.rows()


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT auction, price FROM bid ORDER BY price", "ORDER BY price without LIMIT"),
    ("SELECT auction FROM bid ORDER BY price LIMIT 3", "not a column of the SELECT list"),
    ("SELECT auction FROM bid LIMIT 3 OFFSET 2", "OFFSET"),
    ("SELECT auction, COUNT(*) AS n FROM bid GROUP BY auction ORDER BY n DESC LIMIT 3",
     "ORDER BY or LIMIT on an updating result"),
])
def test_orders_a_stream_cannot_have_are_explained(query: str, message: str) -> None:
    flow = td.Flow("order-errors")
    flow.sql(ddl(events=10))
    with pytest.raises(SqlError, match=message):
        flow.sql(query)
