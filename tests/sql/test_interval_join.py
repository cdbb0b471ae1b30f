"""Interval joins in SQL: time bounds between the two sides' event-time attributes plan an
interval join (state bounded by the watermark) whose rows equal DuckDB's batch join."""

from __future__ import annotations

import duckdb
import pytest

import tidal as td
from tidal.nexmark import NexmarkConfig, generate_events
from tidal.sql import SqlError
from tidal.sql.nexmark import ddl

N, RATE, OOO = 40_000, 2_000, 50
QUERIES = {
    "between": """SELECT B.auction, B.bidder, B.price, B.`dateTime` AS bt, A.`dateTime` AS at
        FROM bid B JOIN auction A ON B.auction = A.id
        AND B.`dateTime` BETWEEN A.`dateTime` - INTERVAL '0.01' SECOND
                             AND A.`dateTime` + INTERVAL '0.04' SECOND""",
    "comparisons in WHERE, strict": """SELECT B.auction, B.bidder, B.price, B.`dateTime` AS bt
        FROM auction A, bid B WHERE A.id = B.auction AND A.`dateTime` < B.`dateTime`
        AND B.`dateTime` <= A.`dateTime` + INTERVAL '500' MILLISECOND AND B.price > 1000""",
}


@pytest.fixture(scope="module")
def reference() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    config = NexmarkConfig(events=N, rate=RATE, out_of_order_group=OOO)
    for kind, frame in generate_events(config, 0, N).items():
        con.register(kind, frame.to_arrow())
    return con


@pytest.mark.parametrize("name", list(QUERIES))
def test_interval_join_equals_the_batch_join(name: str, reference: duckdb.DuckDBPyConnection
                                             ) -> None:
    query = QUERIES[name]
    flow = td.Flow("interval")
    flow.sql(ddl(events=N, rate=RATE, out_of_order_group=OOO))
    plan = flow.sql("EXPLAIN " + query)
    assert "within(" in plan and "ttl(" not in plan, plan
    out = td.sinks.memory()
    flow.sql(query).sink(out)
    flow.run(quiet=True, max_batch_rows=997)
    got = out.frame()
    want = reference.sql(query.replace("`", '"')).pl()
    everything = reference.sql("SELECT COUNT(*) FROM bid B JOIN auction A ON B.auction = A.id"
                               ).fetchone()[0]
    assert 0 < want.height < everything  # the bounds keep some pairs and drop others
    key = got.columns
    assert got.sort(key).to_dicts() == want.sort(key).to_dicts()


def test_time_bounds_that_never_hold_are_an_error() -> None:
    flow = td.Flow("interval-empty")
    flow.sql(ddl(events=10))
    with pytest.raises(SqlError, match="can never hold"):
        flow.sql("""SELECT B.price FROM bid B JOIN auction A ON B.auction = A.id
                    AND B.`dateTime` BETWEEN A.`dateTime` + INTERVAL '2' SECOND
                                         AND A.`dateTime` + INTERVAL '0.04' SECOND""")


def test_bounds_on_a_column_that_is_not_a_time_attribute_stay_a_regular_join() -> None:
    flow = td.Flow("interval-regular")
    flow.sql(ddl(events=10))
    plan = flow.sql("""EXPLAIN SELECT B.price FROM bid B JOIN auction A ON B.auction = A.id
                       AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires""")
    assert "ttl(" in plan and "within(" not in plan


def test_left_interval_join_pads_auctions_without_bids_in_time(
        reference: duckdb.DuckDBPyConnection) -> None:
    query = """SELECT A.id, A.`dateTime` AS at, B.bidder, B.price
        FROM auction A LEFT JOIN bid B ON A.id = B.auction AND B.price > 1000
        AND B.`dateTime` BETWEEN A.`dateTime` AND A.`dateTime` + INTERVAL '0.03' SECOND
        WHERE A.category <> 10"""
    flow = td.Flow("interval-left")
    flow.sql(ddl(events=N, rate=RATE, out_of_order_group=OOO))
    assert "within(0,30)left" in flow.sql("EXPLAIN " + query)
    out = td.sinks.memory()
    flow.sql(query).sink(out)
    flow.run(quiet=True, max_batch_rows=997)
    got = out.frame()
    want = reference.sql(query.replace("`", '"')).pl()
    assert want["bidder"].null_count() > 0 and want["bidder"].null_count() < want.height
    key = got.columns
    assert got.sort(key, nulls_last=True).to_dicts() == want.sort(key, nulls_last=True).to_dicts()

