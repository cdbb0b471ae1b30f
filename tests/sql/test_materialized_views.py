"""CREATE MATERIALIZED VIEW: a query's latest row per key, served like stream.to_view."""

from __future__ import annotations

import polars as pl
import pytest

import tidal as td
from tidal.operators.view import registry
from tidal.sql.errors import SqlError

DDL = """CREATE TABLE bid (auction BIGINT, price BIGINT, dateTime TIMESTAMP(3),
           WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND)
         WITH ('connector' = 'nexmark', 'events' = '5000');"""


def test_materialized_view_holds_the_latest_row_per_group_key() -> None:
    flow = td.Flow("mv")
    flow.sql(DDL + """
        CREATE MATERIALIZED VIEW per_auction AS
        SELECT auction, COUNT(*) AS n, MAX(price) AS top FROM bid GROUP BY auction;""")
    out = td.sinks.memory()
    flow.sql("SELECT auction, price FROM bid").sink(out)
    flow.run(quiet=True, dead_letters_to_log=False)
    view = registry.get("per_auction").frame.sort("auction")
    want = (out.frame().group_by("auction").agg(n=pl.len().cast(pl.Int64), top=pl.col("price").max())
            .sort("auction"))
    cols = ["auction", "n", "top"]
    assert view.select(cols).equals(want.select(cols).cast(view.select(cols).schema))


def test_materialized_view_without_a_key_is_refused() -> None:
    flow = td.Flow("mv-bad")
    with pytest.raises(SqlError, match="needs a key"):
        flow.sql(DDL + "CREATE MATERIALIZED VIEW v AS SELECT auction, price FROM bid;")
