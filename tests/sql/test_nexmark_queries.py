"""Every supported Nexmark query of queries/nexmark/ run as streaming SQL on generated,
out-of-order events and checked against DuckDB's batch answer over the same events:
append queries as equal row multisets, updating ones after applying the changelog, q12
(processing time) by shape and totals (NEXMARK.md 4.1)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

import tidal as td
from tidal.nexmark import NexmarkConfig, generate_events
from tidal.operators.changelog import DELETE, apply_changelog
from tidal.sql import parse, session_for
from tidal.sql.nexmark import ddl

from .nexmark_reference import KEYS, REFERENCE

QUERIES = Path(__file__).resolve().parents[2] / "queries" / "nexmark"
EVENTS, OOO = 200_000, 100
CONFIG = NexmarkConfig(events=EVENTS, out_of_order_group=OOO)


@pytest.fixture(scope="module")
def events() -> dict[str, pl.DataFrame]:
    return generate_events(CONFIG, 0, EVENTS, with_event_id=True)  # arrival, for ties


def count_char(s: pl.Series, c: pl.Series) -> pl.Series:
    return s.str.count_matches(c[0], literal=True).cast(pl.Int64)


def run_query(name: str, max_batch_rows: int = 7_919, tables: str | None = None) -> pl.DataFrame:
    """Run queries/nexmark/<name>.sql, its INSERT captured instead of sent to the blackhole,
    over ``tables`` (DDL of the bid, auction and person tables or views; default tidal's)."""
    flow = td.Flow(name)
    flow.register_function("count_char", count_char, return_type="BIGINT")
    flow.sql(tables or ddl(events=EVENTS, out_of_order_group=OOO))
    session = session_for(flow)
    out = td.sinks.memory()
    columns: list[str] = []
    for stmt in parse((QUERIES / f"{name}.sql").read_text()):
        if stmt.key == "insert":
            result = session.statement(flow, stmt.expression)
            sink = session.catalog.get(stmt.this.name)
            columns = list(sink.columns)  # type: ignore[union-attr]
            assert result.stream is not None
            result.stream.sink(out)
        else:
            session.statement(flow, stmt)
    flow.run(quiet=True, max_batch_rows=max_batch_rows)
    frame = out.frame()
    visible = [c for c in frame.columns if c != DELETE]  # an updating result's deletes
    return frame.rename(dict(zip(visible, columns, strict=True)))


def normalize(frame: pl.DataFrame) -> list[tuple]:
    def cell(v: object) -> object:
        if isinstance(v, Decimal):
            return str(v.quantize(Decimal("0.001")))
        return v

    cols = []
    for c, t in frame.schema.items():
        if isinstance(t, pl.Datetime):
            cols.append(pl.col(c).dt.epoch("ms").alias(c))
        else:
            cols.append(pl.col(c))
    rows = [tuple(cell(v) for v in r) for r in frame.select(cols).iter_rows()]
    return sorted(rows, key=repr)


def reference(name: str, events: dict[str, pl.DataFrame]) -> pl.DataFrame:
    con = duckdb.connect()
    for kind, frame in events.items():
        con.register(kind, frame.to_arrow())
    return con.sql(REFERENCE[name]).pl()


APPEND = ["q0", "q1", "q2", "q3", "q5", "q7", "q8", "q11", "q13", "q14", "q20", "q21", "q22"]
UPDATING = ["q4", "q6", "q9", "q15", "q16", "q17", "q18", "q19"]


@pytest.mark.parametrize("name", APPEND)
def test_append_query_matches_duckdb(name: str, events: dict[str, pl.DataFrame]) -> None:
    got = run_query(name)
    want = reference(name, events)
    assert got.height == want.height, (got.height, want.height)
    assert normalize(got) == normalize(want)


@pytest.mark.parametrize("name", UPDATING)
def test_updating_query_matches_duckdb_after_changelog(name: str,
                                                       events: dict[str, pl.DataFrame]) -> None:
    changelog = run_query(name)
    final = apply_changelog(changelog, KEYS[name])
    want = reference(name, events)
    assert changelog.height >= final.height
    assert normalize(final) == normalize(want)


def test_q12_processing_time_shape_and_totals(events: dict[str, pl.DataFrame]) -> None:
    got = run_query("q12")
    assert got.columns == ["bidder", "bid_count", "starttime", "endtime"]
    start = got["starttime"].dt.epoch("ms")
    end = got["endtime"].dt.epoch("ms")
    assert ((start % 10_000) == 0).all() and ((end - start) == 10_000).all()
    want = events["bid"].group_by("bidder").len()
    totals = got.group_by("bidder").agg(pl.col("bid_count").sum())
    assert dict(totals.iter_rows()) == dict(want.iter_rows())
