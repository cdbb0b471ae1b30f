"""Flink's own Nexmark DDL (queries/nexmark/ddl_flink.sql: one table of ROWs with a computed
event time, and three views over it) runs as is: the suite's queries through its views give
exactly the rows they give over tidal's three tables (:func:`tidal.sql.nexmark.ddl`) and
DuckDB's batch answer."""

from __future__ import annotations

import re

import polars as pl
import pytest

import tidal as td
from tidal.errors import ConfigError
from tidal.nexmark import NexmarkConfig, generate_events, generate_union
from tidal.operators.changelog import apply_changelog
from tidal.sql import session_for

from .nexmark_reference import KEYS
from .test_nexmark_queries import CONFIG, EVENTS, OOO, QUERIES, normalize, reference, run_query

FLINK_DDL = (QUERIES / "ddl_flink.sql").read_text()


def flink_ddl(events: int = EVENTS, out_of_order_group: int = OOO) -> str:
    """The Flink DDL with the run's size (and tidal's out-of-order option) in its WITH."""
    assert "'events.num' = '1000000'" in FLINK_DDL
    return FLINK_DDL.replace("'events.num' = '1000000'", f"'events.num' = '{events}', "
                             f"'out-of-order-group' = '{out_of_order_group}'")


@pytest.fixture(scope="module")
def events() -> dict[str, pl.DataFrame]:
    return generate_events(CONFIG, 0, EVENTS, with_event_id=True)


@pytest.mark.parametrize("name", ["q0", "q1", "q3", "q5", "q8"])
def test_append_query_through_flink_views(name: str, events: dict[str, pl.DataFrame]) -> None:
    got = normalize(run_query(name, tables=flink_ddl()))
    assert got == normalize(run_query(name))
    assert got == normalize(reference(name, events))


@pytest.mark.parametrize("name", ["q4", "q9"])
def test_updating_query_through_flink_views(name: str, events: dict[str, pl.DataFrame]) -> None:
    got = normalize(apply_changelog(run_query(name, tables=flink_ddl()), KEYS[name]))
    assert got == normalize(apply_changelog(run_query(name), KEYS[name]))
    assert got == normalize(reference(name, events))


def test_the_table_is_the_generators_union() -> None:
    flow = td.Flow("union")
    flow.sql(flink_ddl(events=2_000))
    stream = flow.sql("SELECT event_type, person, auction, bid, `dateTime` FROM datagen")
    out = td.sinks.memory()
    stream.sink(out)
    flow.run(quiet=True, max_batch_rows=333)
    want = generate_union(NexmarkConfig(events=2_000, out_of_order_group=OOO), 0, 2_000)
    assert out.frame().equals(want)


def test_views_and_rowtime_are_described() -> None:
    flow = td.Flow("describe")
    flow.sql(flink_ddl(events=100))
    session = session_for(flow)
    table = session.describe("datagen").splitlines()
    assert table[2].split(None, 1) == [
        "person", "ROW<`id` BIGINT, `name` STRING, `emailAddress` STRING, `creditCard` STRING, "
        "`city` STRING, `state` STRING, `dateTime` TIMESTAMP(3), `extra` STRING>"]
    bid = [line.split() for line in session.describe("bid").splitlines()[1:]]
    assert bid == [["auction", "BIGINT"], ["bidder", "BIGINT"], ["price", "BIGINT"],
                   ["channel", "STRING"], ["url", "STRING"],
                   ["dateTime", "TIMESTAMP(3)", "*ROWTIME*"], ["extra", "STRING"]]


def test_flinks_older_ddl_without_channel_and_url() -> None:
    """Earlier versions of the suite's DDL declare fewer bid fields: only those are read."""
    ddl = flink_ddl(events=1_000).replace("channel  VARCHAR,\n        url  VARCHAR,\n", "") \
        .replace("bid.channel,\n    bid.url,\n", "")
    flow = td.Flow("older")
    flow.sql(ddl)
    out = td.sinks.memory()
    flow.sql("SELECT * FROM bid").sink(out)
    flow.run(quiet=True)
    want = generate_events(NexmarkConfig(events=1_000, out_of_order_group=OOO), 0, 1_000)["bid"]
    assert out.frame().equals(want.drop("channel", "url"))


@pytest.mark.parametrize(("change", "message"), [
    (("extra  VARCHAR>,\n    auction", "extra  VARCHAR, age INT>,\n    auction"),
     "the person ROW has no field(s) ['age']"),
    (("'connector' = 'nexmark',", "'connector' = 'nexmark', 'kind' = 'bid',"),
     "'kind' picks one view"),
    (("'next-event.rate' = '10000'", "'next-event.rate' = '20000'"),
     "tidal's Nexmark rate is constant"),
])
def test_union_table_errors(change: tuple[str, str], message: str) -> None:
    flow = td.Flow("bad")
    assert change[0] in FLINK_DDL
    flow.sql(FLINK_DDL.replace(*change))
    with pytest.raises(ConfigError, match=re.escape(message)):
        flow.sql("SELECT * FROM bid")
