"""IN / EXISTS subqueries in WHERE (tidal.sql.subqueries): semi joins whose rows equal
DuckDB's batch answer on the same rows, and NOT IN / NOT EXISTS anti joins whose changelog
ends with DuckDB's answer, whatever order the two sides' rows arrive in; with NULL keys,
SQL's NOT IN NULL trap, a restore from a snapshot, and the refusals."""

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
from tidal.operators.semi import SemiJoin
from tidal.sql import SqlError
from tidal.sql.nexmark import ddl

from .crash import crash_and_restart

RNG = random.Random(11)
ORDERS = pl.DataFrame(
    [{"oid": i, "k": RNG.choice([None, *range(30)]), "qty": RNG.randint(0, 9), "t": i * 10}
     for i in range(150)], schema={"oid": pl.Int64, "k": pl.Int64, "qty": pl.Int64,
                                   "t": pl.Int64})
PAYS = pl.DataFrame(
    [{"pid": 1000 + i, "k": RNG.choice([None, *range(5, 35)]), "amt": RNG.randint(0, 9),
      "t": RNG.randint(0, 1500)} for i in range(80)],
    schema={"pid": pl.Int64, "k": pl.Int64, "amt": pl.Int64, "t": pl.Int64})
"""Orders and payments: NULL keys, keys with several payments, orders with none, payments
before and after their orders."""


def _flow(name: str, orders: pl.DataFrame = ORDERS, pays: pl.DataFrame = PAYS) -> td.Flow:
    flow = td.Flow(name)
    for table, frame in (("orders", orders), ("pays", pays)):
        rows = frame.sort("t").to_dicts()
        flow.register_table(table, flow.source(td.sources.memory(rows), timestamp="t"))
    return flow


def _output(query: str, batch_rows: int = 7, pays: pl.DataFrame = PAYS) -> pl.DataFrame:
    flow = _flow("subq", pays=pays)
    out = td.sinks.memory()
    flow.sql(query).sink(out)
    flow.run(quiet=True, max_batch_rows=batch_rows)
    return out.frame()


def _duck(query: str, pays: pl.DataFrame = PAYS) -> pl.DataFrame:
    con = duckdb.connect()
    con.register("orders", ORDERS.to_arrow())
    con.register("pays", pays.to_arrow())
    return con.sql(query).pl()


def _rows(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.rows(), key=repr)


SEMI = [
    "SELECT oid, k FROM orders WHERE k IN (SELECT k FROM pays)",
    "SELECT o.oid, o.qty FROM orders o WHERE o.k IN (SELECT p.k FROM pays p WHERE p.amt > 4) "
    "AND o.qty > 2",
    "SELECT * FROM orders o WHERE EXISTS (SELECT 1 FROM pays p WHERE p.k = o.k AND p.amt < 5)",
    "SELECT oid FROM orders o WHERE EXISTS (SELECT * FROM pays p WHERE o.k = p.k "
    "AND p.amt = o.qty)",
    "SELECT oid FROM orders WHERE (k, qty) IN (SELECT k, amt FROM pays)",
    "SELECT oid FROM orders WHERE k + 1 IN (SELECT DISTINCT k FROM pays WHERE k IS NOT NULL)",
    "SELECT oid FROM orders WHERE k IN (SELECT k FROM pays WHERE amt > 3) "
    "AND qty IN (SELECT amt FROM pays)",
    "SELECT oid FROM orders WHERE EXISTS (SELECT 1 FROM pays WHERE amt > 8)",
    "SELECT oid FROM orders WHERE CAST(k AS INT) IN (SELECT k FROM pays)",
    "SELECT oid FROM orders WHERE qty IN (SELECT 3)",
    # a self-correlation, a join and a nested subquery inside, a CTE
    "SELECT oid FROM orders WHERE EXISTS (SELECT 1 FROM orders o2 WHERE o2.k = orders.k "
    "AND o2.qty > 8)",
    "SELECT oid FROM orders WHERE k IN (SELECT p.k FROM pays p JOIN orders o ON p.k = o.k "
    "WHERE o.qty = 1)",
    "SELECT oid FROM orders o WHERE EXISTS (SELECT 1 FROM pays p WHERE p.k = o.k AND EXISTS "
    "(SELECT 1 FROM orders o3 WHERE o3.k = p.k AND o3.qty = 0))",
    "WITH pk AS (SELECT k FROM pays WHERE amt > 2) SELECT oid FROM orders WHERE k IN "
    "(SELECT k FROM pk)",
]


@pytest.mark.parametrize("query", SEMI)
def test_a_semi_join_gives_each_matching_row_once(query: str) -> None:
    got = _output(query)
    want = _duck(query.replace("CAST(k AS INT)", "CAST(k AS INTEGER)"))
    assert DELETE not in got.columns  # append-only
    assert want.height > 0
    assert _rows(got) == _rows(want)


def test_in_over_a_window_aggregation() -> None:
    got = _output("""SELECT oid FROM orders WHERE k IN (
        SELECT k FROM TABLE(TUMBLE(TABLE pays, DESCRIPTOR(t), INTERVAL '0.2' SECOND))
        GROUP BY k, window_start, window_end HAVING COUNT(*) > 1)""")
    want = _duck("SELECT oid FROM orders WHERE k IN "
                 "(SELECT k FROM pays GROUP BY k, t // 200 HAVING COUNT(*) > 1)")
    assert want.height > 0
    assert _rows(got) == _rows(want)


def test_rows_wait_for_a_match_that_arrives_later() -> None:
    # every payment comes after every order: each match is found when the payment arrives
    late = PAYS.with_columns(pl.col("t") + 10_000)
    query = "SELECT oid FROM orders WHERE k IN (SELECT k FROM pays)"
    got = _output(query, pays=late)
    assert _rows(got) == _rows(_duck(query, pays=late))
    assert got.height > 10


def test_a_null_key_never_matches() -> None:
    pays = pl.concat([PAYS, pl.DataFrame({"pid": [9], "k": [None], "amt": [0], "t": [0]},
                                         schema=PAYS.schema)])
    got = _output("SELECT oid, k FROM orders WHERE k IN (SELECT k FROM pays)", pays=pays)
    assert got.filter(pl.col("k").is_null()).height == 0
    nulls = ORDERS.filter(pl.col("k").is_null()).height
    anti = apply_changelog(_output(
        "SELECT oid, k FROM orders o WHERE NOT EXISTS (SELECT 1 FROM pays p WHERE p.k = o.k)",
        pays=pays), ["oid"])
    assert anti.filter(pl.col("k").is_null()).height == nulls  # NOT EXISTS: NULL passes


def test_a_semi_join_result_has_no_event_time() -> None:
    # a row waiting for its match comes out behind the watermark: a window over it would
    # drop it, so (as after Flink's regular joins) the time column is a plain value
    flow = _flow("subq-time")
    stream = flow.sql("SELECT oid, t FROM orders WHERE k IN (SELECT k FROM pays)")
    assert stream.node.time is None
    with pytest.raises(SqlError, match="column 't' is not a time attribute"):
        flow.sql("""SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE (
                      SELECT * FROM orders WHERE k IN (SELECT k FROM pays)),
                    DESCRIPTOR(t), INTERVAL '0.5' SECOND)) GROUP BY window_start, window_end""")


ANTI = [
    "SELECT oid, k FROM orders o WHERE NOT EXISTS (SELECT 1 FROM pays p WHERE p.k = o.k)",
    "SELECT oid, qty FROM orders o WHERE NOT EXISTS (SELECT 1 FROM pays p WHERE o.k = p.k "
    "AND p.amt > 5) AND o.qty > 1",
    "SELECT oid FROM orders WHERE k NOT IN (SELECT k FROM pays WHERE k IS NOT NULL)",
    "SELECT oid, k FROM orders WHERE k NOT IN (SELECT k FROM pays WHERE k > 20)",
]


@pytest.mark.parametrize("query", ANTI)
def test_an_anti_join_ends_with_the_batch_answer(query: str) -> None:
    log = _output(query)
    deletes = log.filter(pl.col(DELETE))
    assert deletes.height > 0  # matches came after rows were emitted
    assert deletes.filter(pl.col("oid").is_null()).height == 0  # deletes carry the row
    got = apply_changelog(log, ["oid"])
    want = _duck(query)
    assert want.height > 0
    assert _rows(got) == _rows(want)


def test_not_in_over_a_subquery_with_a_null_passes_no_row() -> None:
    query = "SELECT oid FROM orders WHERE k NOT IN (SELECT k FROM pays)"
    assert PAYS["k"].null_count() > 0
    assert _duck(query).height == 0
    assert apply_changelog(_output(query), ["oid"]).height == 0


def test_not_in_over_an_empty_subquery_passes_every_row_null_keys_too() -> None:
    query = "SELECT oid FROM orders WHERE k NOT IN (SELECT k FROM pays WHERE amt > 100)"
    got = apply_changelog(_output(query), ["oid"])
    assert _rows(got) == _rows(_duck(query))
    assert got.height == ORDERS.height


def test_not_in_deletes_a_null_key_when_the_subquery_gets_its_first_row() -> None:
    out: list[pl.DataFrame] = []
    op = _operator(out, anti=True, null_aware=True)
    op.on_batch(pl.DataFrame({"k": [None, 1, 2], "oid": [1, 2, 3]}, schema=_LEFT), 0)
    op.on_batch(pl.DataFrame({"k": [2]}, schema={"k": pl.Int64}), 1)
    op.on_batch(pl.DataFrame({"k": [None, 4], "oid": [4, 5]}, schema=_LEFT), 0)
    op.on_batch(pl.DataFrame({"k": [None]}, schema={"k": pl.Int64}), 1)
    assert pl.concat(out).rows() == [
        (None, 1, 0, False), (1, 2, 1, False), (2, 3, 2, False),  # an empty subquery
        (None, 1, 0, True), (2, 3, 2, True),  # 2 matched; NULL NOT IN (2) is unknown
        (4, 5, 4, False),
        (1, 2, 1, True), (4, 5, 4, True)]  # a NULL in the subquery: nothing passes


def test_nexmark_bids_on_auctions_of_a_category() -> None:
    events = 6_000
    query = """SELECT B.auction, B.bidder, B.price FROM bid B
               WHERE B.auction IN (SELECT A.id FROM auction A WHERE A.category = 10)
               AND B.price > 1000"""
    anti = """SELECT A.id, A.seller FROM auction A
              WHERE NOT EXISTS (SELECT 1 FROM bid B WHERE B.auction = A.id AND B.price > 5000000)"""
    flow = td.Flow("subq-nexmark")
    flow.sql(ddl(events=events, out_of_order_group=20))
    semi_out, anti_out = td.sinks.memory(), td.sinks.memory()
    flow.sql(query).sink(semi_out)
    flow.sql(anti).sink(anti_out)
    flow.run(quiet=True, max_batch_rows=150)
    con = duckdb.connect()
    frames = generate_events(NexmarkConfig(events=events, out_of_order_group=20), 0, events)
    for kind, frame in frames.items():
        con.register(kind, frame.to_arrow())
    want = con.sql(query).pl()
    assert want.height > 0
    assert _rows(semi_out.frame()) == _rows(want)
    assert _rows(apply_changelog(anti_out.frame(), ["id"])) == _rows(con.sql(anti).pl())


def test_a_sqlite_sink_keyed_by_the_user_key_deletes_matched_rows(tmp_path: Path) -> None:
    flow = _flow("subq-sink")
    db = tmp_path / "out.db"
    flow.sql(f"""CREATE TABLE unpaid (oid BIGINT, k BIGINT, PRIMARY KEY (oid) NOT ENFORCED)
                 WITH ('connector' = 'sqlite', 'path' = '{db}');
                 INSERT INTO unpaid SELECT oid, k FROM orders o
                 WHERE NOT EXISTS (SELECT 1 FROM pays p WHERE p.k = o.k);""")
    flow.run(quiet=True, max_batch_rows=5)
    got = sqlite3.connect(db).execute("SELECT * FROM unpaid").fetchall()
    want = _duck("SELECT oid, k FROM orders o WHERE NOT EXISTS "
                 "(SELECT 1 FROM pays p WHERE p.k = o.k)").rows()
    assert sorted(got, key=repr) == sorted(want, key=repr)


def test_a_group_by_over_a_semi_join() -> None:
    query = """SELECT k, COUNT(*) AS n FROM (SELECT * FROM orders
               WHERE k IN (SELECT k FROM pays)) GROUP BY k"""
    got = apply_changelog(_output(query), ["k"])
    assert _rows(got) == _rows(_duck(query))


def test_a_group_by_over_an_anti_join_retracts_matched_rows() -> None:
    query = """SELECT qty, COUNT(*) AS n FROM (SELECT oid, qty FROM orders o
               WHERE NOT EXISTS (SELECT 1 FROM pays p WHERE p.k = o.k)) GROUP BY qty"""
    got = apply_changelog(_output(query), ["qty"])
    assert _rows(got) == _rows(_duck(query))


def test_state_expires_after_the_ttl() -> None:
    query = "SELECT oid FROM orders WHERE k IN (SELECT k FROM pays)"
    flow = _flow("subq-ttl")
    flow.sql("SET 'table.exec.state.ttl' = '100 ms'")
    out = td.sinks.memory()
    flow.sql(query).sink(out)
    flow.run(quiet=True, max_batch_rows=7)
    got = out.frame()
    assert set(got["oid"]) < set(_duck(query)["oid"])  # rows too far apart never meet


def test_anti_join_state_expires_after_the_ttl() -> None:
    query = "SELECT oid FROM orders o WHERE NOT EXISTS (SELECT 1 FROM pays p WHERE p.k = o.k)"
    flow = _flow("subq-anti-ttl")
    flow.sql("SET 'table.exec.state.ttl' = '100 ms'")
    out = td.sinks.memory()
    flow.sql(query).sink(out)
    flow.run(quiet=True, max_batch_rows=7)
    got = set(apply_changelog(out.frame(), ["oid"])["oid"])
    assert got > set(_duck(query)["oid"])  # rows whose match came too late are not deleted


def test_tidal_sql_prints_an_anti_join_changelog(tmp_path: Path) -> None:
    (tmp_path / "o.jsonl").write_text('{"oid": 1, "k": 1}\n{"oid": 2, "k": 2}\n')
    (tmp_path / "p.jsonl").write_text('{"pid": 10, "k": 1}\n')
    script = "".join(
        f"CREATE TABLE {t} ({c} BIGINT, k BIGINT) WITH ('connector' = 'filesystem', "
        f"'path' = '{tmp_path / t}.jsonl', 'format' = 'json');\n" for t, c in
        (("o", "oid"), ("p", "pid"))) + \
        "SELECT oid FROM o WHERE NOT EXISTS (SELECT 1 FROM p WHERE p.k = o.k);"
    run = subprocess.run([sys.executable, "-m", "tidal.cli", "sql", "--max-batch-rows", "1"],
                         input=script, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert rows == [{"op": "+I", "oid": 1}, {"op": "+I", "oid": 2}, {"op": "-D", "oid": 1}]


_LEFT = pl.Schema({"k": pl.Int64, "oid": pl.Int64})


def _operator(out: list[pl.DataFrame], *, anti: bool, null_aware: bool = False) -> SemiJoin:
    op = SemiJoin("sj", ["k"], anti=anti, id_column="__id" if anti else None,
                  null_aware=null_aware)
    op.open(OperatorContext(op.name, lambda b, port: out.append(b), lambda r, why: None,
                            lambda: 0, lambda n: None))
    return op


@pytest.mark.parametrize("anti", [False, True])
def test_restore_from_a_snapshot_mid_stream_gives_the_same_output(anti: bool) -> None:
    orders = ORDERS.select("k", "oid").iter_slices(9)
    pays = PAYS.select("k").iter_slices(6)
    batches = [(b, 0) for b in orders] + [(b, 1) for b in pays]
    random.Random(5).shuffle(batches)
    whole: list[pl.DataFrame] = []
    op = _operator(whole, anti=anti)
    for b, port in batches:
        op.on_batch(b, port)
    cut = len(batches) // 2
    first: list[pl.DataFrame] = []
    op = _operator(first, anti=anti)
    for b, port in batches[:cut]:
        op.on_batch(b, port)
    state, kept = op.snapshot(), len(first)
    for b, port in batches[cut:cut + 3]:  # lost: the run dies before its next checkpoint
        op.on_batch(b, port)
    again: list[pl.DataFrame] = []
    op = _operator(again, anti=anti)
    op.restore(state)
    for b, port in batches[cut:]:
        op.on_batch(b, port)
    restarted = pl.concat(first[:kept] + again)
    assert restarted.equals(pl.concat(whole))


def test_crash_and_restart_from_a_checkpoint_writes_what_one_run_writes(tmp_path: Path
                                                                         ) -> None:
    def build(out: Path) -> td.Flow:
        flow = td.Flow("subq-recovery")
        flow.sql(ddl(events=20_000, out_of_order_group=20))
        flow.sql(f"""CREATE TABLE out (id BIGINT, seller BIGINT, PRIMARY KEY (id) NOT ENFORCED)
                     WITH ('connector' = 'sqlite', 'path' = '{out / 'out.db'}');
                     INSERT INTO out SELECT A.id, A.seller FROM auction A
                     WHERE NOT EXISTS (SELECT 1 FROM bid B WHERE B.auction = A.id
                                       AND B.price > 5000000)
                     AND A.id IN (SELECT auction FROM bid WHERE price < 1000000);""")
        return flow

    def result(out: Path) -> list[tuple]:
        return sorted(sqlite3.connect(out / "out.db").execute("SELECT * FROM out").fetchall())

    ref, out = tmp_path / "ref", tmp_path / "out"
    ref.mkdir()
    out.mkdir()
    build(ref).executor(max_batch_rows=300).run()
    want = result(ref)
    assert want
    crash_and_restart(lambda: build(out), out / "ck", batch_rows=300, every=11)
    assert result(out) == want


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT oid FROM orders WHERE qty > 3 OR k IN (SELECT k FROM pays)",
     "IN \\(subquery\\) inside OR or an expression in WHERE is not supported"),
    ("SELECT oid FROM orders o WHERE NOT (EXISTS (SELECT 1 FROM pays p WHERE p.k = o.k) "
     "AND qty > 1)", "EXISTS \\(subquery\\) inside OR"),
    ("SELECT oid, k IN (SELECT k FROM pays) AS paid FROM orders",
     "IN \\(subquery\\) in the SELECT list is not supported"),
    ("SELECT oid FROM orders WHERE qty = (SELECT MAX(amt) FROM pays)",
     "the scalar subquery .* is not supported"),
    ("SELECT oid FROM orders o WHERE EXISTS (SELECT 1 FROM pays p WHERE p.k > o.k)",
     "the correlated condition p.k > o.k in EXISTS \\(subquery\\) .* is not supported"),
    ("SELECT oid FROM orders WHERE (k, qty) NOT IN (SELECT k, amt FROM pays)",
     "NOT IN with several columns or a correlated subquery is not supported; write NOT EXISTS"),
    ("SELECT oid FROM orders o WHERE k NOT IN (SELECT k FROM pays p WHERE p.amt = o.qty)",
     "NOT IN with several columns or a correlated subquery is not supported"),
    ("SELECT oid FROM orders WHERE k IN (SELECT k FROM pays GROUP BY k)",
     "IN \\(subquery\\) over an updating result .* is not supported"),
    ("SELECT k, n FROM (SELECT k, COUNT(*) AS n FROM orders GROUP BY k) "
     "WHERE k IN (SELECT k FROM pays)", "IN \\(subquery\\) on an updating result .* is not "
     "supported"),
    ("SELECT oid FROM orders o WHERE EXISTS (SELECT o.qty FROM pays p WHERE p.k = o.k)",
     "an outer column outside the WHERE of EXISTS \\(subquery\\) is not supported"),
    ("SELECT oid FROM orders o WHERE NOT EXISTS (SELECT 1 FROM pays p WHERE p.k = o.k) "
     "AND qty NOT IN (SELECT amt FROM pays)",
     "several NOT IN / NOT EXISTS conditions in one WHERE is not supported"),
    ("SELECT oid FROM orders WHERE k IN (SELECT k FROM pays ORDER BY amt LIMIT 3)",
     "ORDER BY or LIMIT in IN \\(subquery\\) is not supported"),
])
def test_what_subqueries_refuse(query: str, message: str) -> None:
    with pytest.raises(SqlError, match=message):
        _flow("subq-refused").sql(query)


def test_in_needs_as_many_columns_as_it_compares() -> None:
    with pytest.raises(SqlError, match="the subquery must select 1 column"):
        _flow("subq-cols").sql("SELECT oid FROM orders WHERE k IN (SELECT k, amt FROM pays)")


def test_an_unqualified_outer_column_is_named_with_a_hint() -> None:
    with pytest.raises(SqlError, match="unknown column 'oid'.*qualify the outer query's "
                                       "columns with their table or alias"):
        _flow("subq-unq").sql("SELECT oid FROM orders o WHERE EXISTS "
                              "(SELECT 1 FROM pays p WHERE p.k = oid)")


def test_in_compares_values_of_one_kind() -> None:
    with pytest.raises(SqlError, match="cannot compare BIGINT with STRING; CAST one side"):
        _flow("subq-types").sql(
            "SELECT oid FROM orders WHERE k IN (SELECT CAST(k AS STRING) FROM pays)")


def test_select_star_needs_a_from() -> None:
    with pytest.raises(SqlError, match="SELECT \\* needs a FROM"):
        _flow("star").sql("SELECT *")


def test_a_left_row_is_emitted_once_when_its_first_match_arrives() -> None:
    out: list[pl.DataFrame] = []
    op = _operator(out, anti=False)
    op.on_batch(pl.DataFrame({"k": [1, 2, None, 1], "oid": [1, 2, 3, 4]}, schema=_LEFT), 0)
    assert out == []  # nothing to match yet: the rows wait
    op.on_batch(pl.DataFrame({"k": [1, 1, None]}, schema={"k": pl.Int64}), 1)
    op.on_batch(pl.DataFrame({"k": [1, 2]}, schema={"k": pl.Int64}), 1)
    op.on_batch(pl.DataFrame({"k": [2, 5], "oid": [5, 6]}, schema=_LEFT), 0)
    assert [f.rows() for f in out] == [[(1, 1), (1, 4)], [(2, 2)], [(2, 5)]]
    state = op.snapshot()
    assert state["left"].height == 1  # only k = 5 still waits; NULL keys are not kept
