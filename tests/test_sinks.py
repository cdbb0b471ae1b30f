"""Sinks as users see them: console, files (round trips), SQLite append/upsert, callback, memory."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import tidal as td

ROWS = [
    {"user": "ann", "n": 1, "amount": 2.5, "ok": True},
    {"user": "bob", "n": 2, "amount": 10.0, "ok": False},
    {"user": "cid", "n": 3, "amount": None, "ok": True},
]


@pytest.fixture(autouse=True)
def _tidal_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDAL_HOME", str(tmp_path / ".tidal"))


def run_into(sink: Any, rows: list[dict[str, Any]] | pl.DataFrame = ROWS, *,
             max_batch_rows: int = 100_000, name: str = "sinks") -> None:
    flow = td.Flow(name)
    flow.source(td.sources.memory(rows)).sink(sink)
    flow.run(quiet=True, max_batch_rows=max_batch_rows)


# -- console -----------------------------------------------------------------------------------
def test_print_writes_one_key_value_line_per_row(capsys):
    flow = td.Flow("print")
    flow.source(td.sources.memory([{"word": "hi", "n": 1}, {"word": "yo", "n": 22}])).print()
    flow.run(quiet=True)
    assert capsys.readouterr().out == "word=hi n=1\nword=yo n=22\n"


def test_print_prefix_and_value_formats(capsys):
    flow = td.Flow("print")
    rows = [{"t": datetime(2024, 5, 6, 7, 8, 9, 123000), "x": 1 / 3, "s": None}]
    flow.source(td.sources.memory(rows)).print(prefix="> ")
    flow.run(quiet=True)
    assert capsys.readouterr().out == "> t=2024-05-06T07:08:09.123 x=0.333333 s=None\n"


def test_console_sink_is_the_same_as_print(capsys):
    run_into(td.sinks.console("out: "), [{"a": 1}])
    assert capsys.readouterr().out == "out: a=1\n"


def test_window_results_print_with_window_bounds(capsys):
    flow = td.Flow("print-window")
    s = flow.source(td.sources.memory([{"k": "a", "t": 1_000}, {"k": "a", "t": 2_000}]), timestamp="t")
    s.key_by("k").window(td.tumbling("10s")).agg(n=td.agg.count()).print()
    flow.run(quiet=True)
    assert capsys.readouterr().out == "k=a window_start=0 window_end=10000 n=2\n"


# -- files -------------------------------------------------------------------------------------
def test_jsonl_sink_round_trip(tmp_path):
    path = tmp_path / "out" / "rows.jsonl"  # missing folders are created
    run_into(td.sinks.jsonl(path), max_batch_rows=1)
    assert pl.read_ndjson(path).to_dicts() == ROWS
    flow = td.Flow("back")  # and tidal reads back what it wrote
    out = td.sinks.memory()
    flow.source(td.sources.jsonl(path)).sink(out)
    flow.run(quiet=True)
    assert out.rows == ROWS


def test_jsonl_sink_replaces_by_default_and_appends_on_request(tmp_path):
    path = tmp_path / "rows.jsonl"
    run_into(td.sinks.jsonl(path))
    run_into(td.sinks.jsonl(path))
    assert pl.read_ndjson(path).height == 3
    run_into(td.sinks.jsonl(path, append=True))
    assert pl.read_ndjson(path).height == 6


def test_jsonl_sink_writes_datetimes_as_iso(tmp_path):
    path = tmp_path / "t.jsonl"
    run_into(td.sinks.jsonl(path), [{"t": datetime(2024, 1, 2, 3, 4, 5)}])
    assert '"2024-01-02T03:04:05' in path.read_text()


def test_csv_sink_round_trip_with_one_header(tmp_path):
    path = tmp_path / "rows.csv"
    run_into(td.sinks.csv(path), max_batch_rows=1)
    text = path.read_text()
    assert text.splitlines()[0] == "user,n,amount,ok"
    assert text.count("user,n,amount,ok") == 1
    assert pl.read_csv(path).to_dicts() == ROWS


def test_csv_sink_append_keeps_a_single_header(tmp_path):
    path = tmp_path / "rows.csv"
    run_into(td.sinks.csv(path))
    run_into(td.sinks.csv(path, append=True))
    assert path.read_text().count("user,n,amount,ok") == 1
    assert pl.read_csv(path).to_dicts() == ROWS + ROWS


def test_parquet_sink_round_trip_across_many_batches(tmp_path):
    path = tmp_path / "rows.parquet"
    df = pl.DataFrame({"i": list(range(1000)), "s": [f"v{i}" for i in range(1000)],
                       "t": pl.datetime_range(datetime(2024, 1, 1), datetime(2024, 1, 1, 0, 16, 39),
                                              "1s", eager=True, time_unit="ms")})
    run_into(td.sinks.parquet(path), df, max_batch_rows=128)
    back = pl.read_parquet(path)
    assert back.schema == df.schema
    assert back.equals(df)


# -- sqlite ------------------------------------------------------------------------------------
def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def test_sqlite_appends_without_key(tmp_path):
    db = tmp_path / "results.db"
    run_into(td.sinks.sqlite(db, table="events"), max_batch_rows=1)
    assert query(db, "SELECT user, n, amount, ok FROM events ORDER BY n") == [
        ("ann", 1, 2.5, 1), ("bob", 2, 10.0, 0), ("cid", 3, None, 1),
    ]
    run_into(td.sinks.sqlite(db, table="events"))
    assert query(db, "SELECT count(*) FROM events") == [(6,)]


def test_sqlite_upserts_latest_row_per_key(tmp_path):
    db = tmp_path / "results.db"
    rows = [{"user": "ann", "total": 1}, {"user": "bob", "total": 5},
            {"user": "ann", "total": 3}, {"user": "ann", "total": 7}]
    run_into(td.sinks.sqlite(db, table="totals", key="user"), rows, max_batch_rows=2)
    assert query(db, "SELECT user, total FROM totals ORDER BY user") == [("ann", 7), ("bob", 5)]
    # a second run updates the same table in place
    run_into(td.sinks.sqlite(db, table="totals", key="user"), [{"user": "bob", "total": 9}])
    assert query(db, "SELECT user, total FROM totals ORDER BY user") == [("ann", 7), ("bob", 9)]


def test_sqlite_upsert_with_composite_key(tmp_path):
    db = tmp_path / "results.db"
    rows = [
        {"region": "eu", "day": 1, "sales": 10},
        {"region": "us", "day": 1, "sales": 20},
        {"region": "eu", "day": 2, "sales": 30},
        {"region": "eu", "day": 1, "sales": 11},
        {"region": "us", "day": 1, "sales": 21},
    ]
    run_into(td.sinks.sqlite(db, table="sales", key=["region", "day"]), rows, max_batch_rows=1)
    assert query(db, "SELECT region, day, sales FROM sales ORDER BY region, day") == [
        ("eu", 1, 11), ("eu", 2, 30), ("us", 1, 21),
    ]


def test_sqlite_upsert_holds_current_value_of_a_running_aggregate(tmp_path):
    db = tmp_path / "results.db"
    rows = [{"card": c, "amount": a, "t": i} for i, (c, a) in
            enumerate([("x", 5), ("y", 1), ("x", 7), ("y", 2), ("x", 1)])]
    flow = td.Flow("spend")
    s = flow.source(td.sources.memory(rows), timestamp="t")
    s.key_by("card").agg(spent=td.agg.sum("amount"), n=td.agg.count()).sink(
        td.sinks.sqlite(db, table="spend", key="card"))
    flow.run(quiet=True, max_batch_rows=1)
    assert query(db, "SELECT card, spent, n FROM spend ORDER BY card") == [("x", 13, 3), ("y", 3, 2)]


def test_sqlite_stores_window_datetimes_as_text(tmp_path):
    db = tmp_path / "results.db"
    rows = [{"k": "a", "t": datetime(2024, 1, 1, 0, 0, 3)}]
    flow = td.Flow("win-db")
    s = flow.source(td.sources.memory(rows), timestamp="t")
    s.key_by("k").window(td.tumbling("10s")).agg(n=td.agg.count()).sink(
        td.sinks.sqlite(db, table="w", key=["k", "window_start"]))
    flow.run(quiet=True)
    [(start, end, n)] = query(db, "SELECT window_start, window_end, n FROM w")
    assert (start[:19], end[:19], n) == ("2024-01-01T00:00:00", "2024-01-01T00:00:10", 1)


def test_sqlite_rejects_bad_table_name(tmp_path):
    with pytest.raises(td.errors.ConfigError, match="table name"):
        td.sinks.sqlite(tmp_path / "x.db", table="drop table; --")


def test_sqlite_key_missing_from_rows_names_the_columns(tmp_path):
    with pytest.raises(td.errors.SinkError, match="nope"):
        run_into(td.sinks.sqlite(tmp_path / "x.db", table="t", key="nope"))


# -- callback and memory -----------------------------------------------------------------------
def test_callback_gets_each_batch_as_list_of_dicts():
    batches: list[Any] = []
    run_into(td.sinks.callback(batches.append), max_batch_rows=2)
    assert all(isinstance(b, list) for b in batches)
    assert [r for b in batches for r in b] == ROWS
    assert [len(b) for b in batches] == [2, 1]


def test_callback_as_frame_gets_polars_frames():
    frames: list[Any] = []
    run_into(td.sinks.callback(frames.append, as_frame=True))
    assert all(isinstance(f, pl.DataFrame) for f in frames)
    assert pl.concat(frames).to_dicts() == ROWS


def test_callback_needs_a_function():
    with pytest.raises(TypeError, match="function"):
        td.sinks.callback("not callable")  # type: ignore[arg-type]


def test_memory_sink_rows_and_frame():
    out = td.sinks.memory()
    assert out.rows == [] and out.frame().height == 0
    run_into(out, max_batch_rows=1)
    assert out.rows == ROWS
    assert out.frame().columns == ["user", "n", "amount", "ok"]
    assert len(out.batches) == 3


def test_one_stream_into_several_sinks(tmp_path):
    a, b = td.sinks.memory(), td.sinks.memory()
    flow = td.Flow("fanout")
    s = flow.source(td.sources.memory(ROWS))
    s.sink(a)
    s.sink(b)
    s.sink(td.sinks.jsonl(tmp_path / "c.jsonl"))
    flow.run(quiet=True)
    assert a.rows == b.rows == pl.read_ndjson(tmp_path / "c.jsonl").to_dicts() == ROWS


def test_flow_without_sink_is_rejected_before_running():
    flow = td.Flow("nosink")
    flow.source(td.sources.memory(ROWS))
    with pytest.raises(td.errors.PlanError, match="no sink"):
        flow.run(quiet=True)


def test_sink_argument_must_be_a_sink():
    flow = td.Flow("badsink")
    s = flow.source(td.sources.memory(ROWS))
    with pytest.raises(td.errors.PlanError, match=r"expected a sink such as td\.sinks\.jsonl"):
        s.sink(print)  # type: ignore[arg-type]
