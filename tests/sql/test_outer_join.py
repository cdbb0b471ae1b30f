"""Regular outer joins in SQL (LEFT, RIGHT, FULL OUTER JOIN without time bounds): updating
results that pad a row without partner with NULLs and retract it when a partner arrives
(tidal.operators.outer_join). The table their changelog ends with equals DuckDB's batch join
of the same rows, through GROUP BY, WHERE, sinks and a restart from a checkpoint."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

import tidal as td
from tidal.nexmark import NexmarkConfig, generate_events
from tidal.operators.base import OperatorContext
from tidal.operators.changelog import DELETE, apply_changelog
from tidal.operators.outer_join import OuterJoin
from tidal.sql import SqlError
from tidal.sql.nexmark import ddl

from .crash import crash_and_restart

EVENTS = 10_000

RNG = random.Random(7)
ORDERS = pl.DataFrame(
    [{"oid": i, "k": RNG.choice([None, *range(30)]), "qty": RNG.randint(0, 9), "t": i * 10}
     for i in range(120)], schema={"oid": pl.Int64, "k": pl.Int64, "qty": pl.Int64,
                                   "t": pl.Int64})
PAYS = pl.DataFrame(
    [{"pid": 1000 + i, "k": RNG.choice([None, *range(5, 35)]), "amt": RNG.randint(0, 9),
      "t": RNG.randint(0, 1500)} for i in range(90)],
    schema={"pid": pl.Int64, "k": pl.Int64, "amt": pl.Int64, "t": pl.Int64})
"""Orders and payments: NULL keys, keys with several partners, keys with none on either
side, payments before and after their orders."""


def _flow(name: str, orders: pl.DataFrame = ORDERS, pays: pl.DataFrame = PAYS) -> td.Flow:
    flow = td.Flow(name)
    for table, frame in (("orders", orders), ("pays", pays)):
        rows = frame.sort("t").to_dicts()
        flow.register_table(table, flow.source(td.sources.memory(rows), timestamp="t"))
    return flow


def _changelog(query: str, batch_rows: int = 7) -> pl.DataFrame:
    flow = _flow("outer")
    out = td.sinks.memory()
    flow.sql(query).sink(out)
    flow.run(quiet=True, max_batch_rows=batch_rows)
    return out.frame()


def _duck(query: str) -> pl.DataFrame:
    con = duckdb.connect()
    con.register("orders", ORDERS.to_arrow())
    con.register("pays", PAYS.to_arrow())
    return con.sql(query).pl()


def _rows(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.rows(), key=repr)


JOINS = {
    "LEFT JOIN": "o.k = p.k",
    "LEFT OUTER JOIN": "o.k = p.k AND p.amt <= o.qty",
    "RIGHT JOIN": "o.k = p.k AND o.qty > 2",
    "RIGHT OUTER JOIN": "p.k = o.k AND p.amt < o.qty + 1",
    "FULL JOIN": "o.k = p.k",
    "FULL OUTER JOIN": "o.k = p.k AND p.amt > 3 AND o.qty <> p.amt",
}


@pytest.mark.parametrize("join", list(JOINS))
def test_outer_join_ends_with_the_batch_join(join: str) -> None:
    query = f"SELECT o.oid, o.k, o.qty, p.pid, p.amt FROM orders o {join} pays p ON {JOINS[join]}"
    log = _changelog(query)
    assert log.filter(pl.col(DELETE)).height > 5  # partners came after padded rows
    deletes = log.filter(pl.col(DELETE))
    # a delete carries the row it takes back: its values, with NULLs on the padded side
    assert deletes.filter(pl.col("oid").is_null() & pl.col("pid").is_null()).height == 0
    got = apply_changelog(log, ["oid", "pid"])
    want = _duck(query)
    assert _rows(got) == _rows(want)
    assert got.filter(pl.col("pid").is_null() | pl.col("oid").is_null()).height > 0


def _net(log: pl.DataFrame) -> list[tuple]:
    """The rows a changelog ends with, each delete taking back one row of the same values."""
    sign = pl.when(pl.col(DELETE)).then(-1).otherwise(1)
    counts = log.with_columns(sign.alias("__n")).group_by(
        [c for c in log.columns if c != DELETE]).agg(pl.col("__n").sum())
    assert counts["__n"].min() >= 0  # never a delete of a row not there
    return _rows(counts.select(pl.exclude("__n").repeat_by(pl.col("__n")).explode()))


@pytest.mark.parametrize("query", [
    # more ON conditions than the time bounds: not an interval join; the bounds are conditions
    """SELECT A.id, B.bidder, B.price FROM auction A LEFT JOIN bid B ON A.id = B.auction
       AND A.category = 10 AND B.`dateTime` BETWEEN A.`dateTime`
       AND A.`dateTime` + INTERVAL '1' SECOND""",
    """SELECT A.id, A.seller, B.bidder, B.price FROM auction A RIGHT JOIN bid B
       ON A.id = B.auction AND B.`dateTime` <= A.`dateTime` + INTERVAL '0.5' SECOND
       AND B.`dateTime` >= A.`dateTime`""",
])
def test_outer_joins_with_time_bounds_and_more_are_regular_outer_joins(query: str) -> None:
    flow = td.Flow("outer-nexmark")
    flow.sql(ddl(events=4_000, out_of_order_group=20))
    assert "outer_join" in flow.sql("EXPLAIN " + query)
    out = td.sinks.memory()
    flow.sql(query).sink(out)
    flow.run(quiet=True, max_batch_rows=200)
    con = duckdb.connect()
    events = generate_events(NexmarkConfig(events=4_000, out_of_order_group=20), 0, 4_000)
    for kind, frame in events.items():
        con.register(kind, frame.to_arrow())
    want = con.sql(query.replace("`", '"')).pl()
    assert want.null_count().sum_horizontal().item() > 0  # some rows padded
    assert _net(out.frame()) == _rows(want)


def test_rows_with_a_null_key_never_match_and_are_padded_once() -> None:
    log = _changelog("SELECT o.oid, p.pid FROM orders o FULL JOIN pays p ON o.k = p.k")
    null_orders = ORDERS.filter(pl.col("k").is_null())["oid"].to_list()
    mine = log.filter(pl.col("oid").is_in(null_orders))
    assert sorted(mine.rows()) == [(o, None, False) for o in sorted(null_orders)]


def test_a_group_by_over_a_left_join_retracts_the_padded_rows() -> None:
    query = """SELECT o.k, COUNT(*) AS n, COUNT(p.pid) AS paid, SUM(p.amt) AS total
               FROM orders o LEFT JOIN pays p ON o.k = p.k GROUP BY o.k"""
    got = apply_changelog(_changelog(query), ["k"])
    assert _rows(got) == _rows(_duck(query))


@pytest.mark.parametrize("query", [
    # the anti join: orders that never got a payment
    "SELECT o.oid, p.pid FROM orders o LEFT JOIN pays p ON o.k = p.k "
    "WHERE p.pid IS NULL AND o.qty > 1",
    "SELECT o.oid, p.pid, p.amt FROM orders o FULL JOIN pays p ON o.k = p.k "
    "WHERE o.qty > 3 OR p.amt IS NULL",
])
def test_where_on_an_outer_join_deletes_rows_that_stop_passing(query: str) -> None:
    got = apply_changelog(_changelog(query), ["oid", "pid"])
    assert _rows(got) == _rows(_duck(query))


def test_a_self_outer_join() -> None:
    query = ("SELECT o.oid, o2.oid AS later FROM orders o LEFT JOIN orders o2 "
             "ON o.k = o2.k AND o.oid < o2.oid")
    got = apply_changelog(_changelog(query), ["oid", "later"])
    assert _rows(got) == _rows(_duck(query))


def test_a_sqlite_sink_keyed_by_the_left_table_ends_with_the_join(tmp_path: Path) -> None:
    # one payment per order at most: the order's id keys the result
    pays = PAYS.unique("k", keep="first").filter(pl.col("k").is_not_null())
    flow = _flow("outer-sink", pays=pays)
    db = tmp_path / "out.db"
    flow.sql(f"""CREATE TABLE paid (oid BIGINT, pid BIGINT, amt BIGINT,
                                   PRIMARY KEY (oid) NOT ENFORCED)
                 WITH ('connector' = 'sqlite', 'path' = '{db}');
                 INSERT INTO paid SELECT o.oid, p.pid, p.amt
                 FROM orders o LEFT JOIN pays p ON o.k = p.k;""")
    flow.run(quiet=True, max_batch_rows=5)
    got = sqlite3.connect(db).execute("SELECT * FROM paid").fetchall()
    con = duckdb.connect()
    con.register("orders", ORDERS.to_arrow())
    con.register("pays", pays.to_arrow())
    want = con.sql("SELECT o.oid, p.pid, p.amt FROM orders o LEFT JOIN pays p ON o.k = p.k"
                   ).fetchall()
    assert sorted(got, key=repr) == sorted(want, key=repr)
    assert any(r[1] is not None for r in got) and any(r[1] is None for r in got)


def _operator(out: list[pl.DataFrame], keep: tuple[bool, bool]) -> OuterJoin:
    op = OuterJoin("oj", ["k"], pl.Schema({"k": pl.Int64, "oid": pl.Int64}),
                   pl.Schema({"k": pl.Int64, "pid": pl.Int64}), ids=("__l", "__r"), keep=keep,
                   times=(None, None), ttl_ms=None)
    op.open(OperatorContext(op.name, lambda b, port: out.append(b), lambda r, why: None,
                            lambda: 0, lambda n: None))
    return op


def test_restore_from_a_snapshot_mid_stream_ends_with_the_same_table() -> None:
    orders = ORDERS.select("k", "oid").iter_slices(9)
    pays = PAYS.select("k", "pid").iter_slices(6)
    batches = [(b, 0) for b in orders] + [(b, 1) for b in pays]
    random.Random(3).shuffle(batches)
    whole: list[pl.DataFrame] = []
    op = _operator(whole, (True, True))
    for b, port in batches:
        op.on_batch(b, port)
    cut = len(batches) // 2
    first: list[pl.DataFrame] = []
    op = _operator(first, (True, True))
    for b, port in batches[:cut]:
        op.on_batch(b, port)
    state, kept = op.snapshot(), len(first)
    for b, port in batches[cut:cut + 3]:  # lost: the run dies before its next checkpoint
        op.on_batch(b, port)
    again: list[pl.DataFrame] = []
    op = _operator(again, (True, True))
    op.restore(state)
    for b, port in batches[cut:]:
        op.on_batch(b, port)
    key = ["__l", "__r"]
    restarted = pl.concat(first[:kept] + again)
    assert restarted.equals(pl.concat(whole))  # the same ids: the same upsert keys
    assert apply_changelog(restarted, key).height == _duck(
        "SELECT 1 FROM orders o FULL JOIN pays p ON o.k = p.k").height


def test_crash_and_restart_from_a_checkpoint_writes_what_one_run_writes(tmp_path: Path
                                                                         ) -> None:
    def build(out: Path) -> td.Flow:
        flow = td.Flow("outer-recovery")
        flow.sql(ddl(events=EVENTS, out_of_order_group=20))
        flow.sql(f"""CREATE TABLE out (id BIGINT, bids BIGINT, best BIGINT,
                                       PRIMARY KEY (id) NOT ENFORCED)
                     WITH ('connector' = 'sqlite', 'path' = '{out / 'out.db'}');
                     INSERT INTO out SELECT A.id, COUNT(B.price), MAX(B.price)
                     FROM auction A LEFT JOIN bid B ON A.id = B.auction AND B.price > 9000000
                     GROUP BY A.id;""")
        return flow

    def result(out: Path) -> list[tuple]:
        return sorted(sqlite3.connect(out / "out.db").execute("SELECT * FROM out").fetchall())

    ref, out = tmp_path / "ref", tmp_path / "out"
    ref.mkdir()
    out.mkdir()
    build(ref).executor(max_batch_rows=300).run()
    want = result(ref)
    assert any(r[1] == 0 for r in want) and any(r[1] > 0 for r in want)
    crash_and_restart(lambda: build(out), out / "ck", batch_rows=300, every=11)
    assert result(out) == want


def test_right_and_full_joins_pad_the_right_rows_under_their_own_columns() -> None:
    out: list[pl.DataFrame] = []
    op = _operator(out, (False, True))
    op.on_batch(pl.DataFrame({"k": [1, None], "pid": [10, 11]}), 1)
    op.on_batch(pl.DataFrame({"k": [1, 1], "oid": [5, 6]}), 0)
    assert pl.concat(out).rows() == [
        (1, None, 10, None, 0, False), (None, None, 11, None, 1, False),
        (1, None, 10, None, 0, True), (1, 5, 10, 0, 0, False), (1, 6, 10, 1, 0, False)]


def test_state_expires_after_the_ttl_without_output() -> None:
    flow = _flow("outer-ttl")
    out = td.sinks.memory()
    flow.sql("SET 'table.exec.state.ttl' = '100 ms'")
    flow.sql("SELECT o.oid, p.pid FROM orders o LEFT JOIN pays p ON o.k = p.k").sink(out)
    flow.run(quiet=True, max_batch_rows=7)
    got = apply_changelog(out.frame(), ["oid", "pid"])
    want = _duck("SELECT o.oid, p.pid FROM orders o LEFT JOIN pays p ON o.k = p.k")
    # orders meet only the payments within 100 ms of event time of them, each once padded
    assert set(got["oid"]) == set(ORDERS["oid"])
    assert got.height < want.height


def test_rows_leave_the_state_after_the_ttl_of_processing_time_silently() -> None:
    out: list[pl.DataFrame] = []
    clock = [0]
    op = OuterJoin("oj", ["k"], pl.Schema({"k": pl.Int64, "oid": pl.Int64}),
                   pl.Schema({"k": pl.Int64, "pid": pl.Int64}), ids=("__l", "__r"),
                   keep=(True, False), ttl_ms=100)
    op.open(OperatorContext(op.name, lambda b, port: out.append(b), lambda r, why: None,
                            lambda: clock[0], lambda n: None))
    assert op.timer_interval_ms == 100
    op.on_batch(pl.DataFrame({"k": [1], "oid": [5]}), 0)
    clock[0] = 150
    op.on_timer(150)  # order 5 leaves the state: its padded row stays, nothing is emitted
    op.on_batch(pl.DataFrame({"k": [1], "pid": [10]}), 1)  # no partner left
    op.on_batch(pl.DataFrame({"k": [1], "oid": [6]}), 0)  # meets payment 10 (kept to 250)
    assert pl.concat(out).rows() == [(1, 5, None, 0, None, False), (1, 6, 10, 1, 0, False)]


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT * FROM (SELECT k, COUNT(*) AS n FROM orders GROUP BY k) g "
     "LEFT JOIN pays p ON g.k = p.k", "a join of an updating result"),
    ("SELECT * FROM orders o LEFT JOIN pays p ON o.k = p.k "
     "LEFT JOIN orders o2 ON o2.k = p.k", "a join of an updating result"),
    ("SELECT * FROM orders o LEFT JOIN pays p ON o.qty < p.amt",
     "a join without an equality between the two sides"),
    ("SELECT * FROM orders o FULL JOIN pays p USING (k)", "JOIN ... USING"),
    ("SELECT * FROM orders o LEFT ANTI JOIN pays p ON o.k = p.k", "is not supported"),
])
def test_what_outer_joins_refuse(query: str, message: str) -> None:
    flow = _flow("outer-refused")
    with pytest.raises(SqlError, match=message) as info:
        flow.sql(query)
    assert "is not supported" in str(info.value)


def test_a_group_by_over_a_subquery_of_the_join_retracts_by_its_hidden_key() -> None:
    # the subquery selects neither side's row id: GROUP BY retracts by hidden copies of them
    query = """SELECT paid, COUNT(*) AS n FROM (
                 SELECT o.oid, p.pid IS NOT NULL AS paid FROM orders o
                 LEFT JOIN pays p ON o.k = p.k) GROUP BY paid"""
    got = apply_changelog(_changelog(query), ["paid"])
    assert _rows(got) == _rows(_duck(query))


def test_tidal_sql_prints_the_changelog_with_flink_ops(tmp_path: Path) -> None:
    (tmp_path / "o.jsonl").write_text('{"oid": 1, "k": 1}\n{"oid": 2, "k": 2}\n')
    (tmp_path / "p.jsonl").write_text('{"pid": 10, "k": 1}\n{"pid": 11, "k": 1}\n')
    script = "".join(
        f"CREATE TABLE {t} ({c} BIGINT, k BIGINT) WITH ('connector' = 'filesystem', "
        f"'path' = '{tmp_path / t}.jsonl', 'format' = 'json');\n" for t, c in
        (("o", "oid"), ("p", "pid"))) + "SELECT o.oid, p.pid FROM o LEFT JOIN p ON o.k = p.k;"
    run = subprocess.run([sys.executable, "-m", "tidal.cli", "sql", "--max-batch-rows", "1"],
                         input=script, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert rows == [{"op": "+I", "oid": 1, "pid": None}, {"op": "+I", "oid": 2, "pid": None},
                    {"op": "-D", "oid": 1, "pid": None}, {"op": "+I", "oid": 1, "pid": 10},
                    {"op": "+I", "oid": 1, "pid": 11}]
