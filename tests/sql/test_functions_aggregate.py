"""Flink's aggregate functions in SQL (tidal.sql.aggregates): STDDEV_POP/SAMP, VAR_POP/SAMP,
VARIANCE, FIRST_VALUE, LAST_VALUE, LISTAGG, ARRAY_AGG, COUNT(DISTINCT a, b) and SUM/AVG
(DISTINCT x), each in a TUMBLE and a HOP window (panes merged), a running GROUP BY and, where
it applies, a GROUP BY over an updating input; checked against DuckDB's batch answer over the same rows
(NULLs, one-row groups and equal event times included)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import duckdb
import polars as pl
import pytest

import tidal as td
from tidal.operators.changelog import DELETE, apply_changelog
from tidal.sql import SqlError


def _rows() -> list[dict]:
    """Arrival order = list order; event times ascending with ties; ``lone`` has one row."""
    rnd = random.Random(7)
    rows, t = [], 0
    for i in range(600):
        t += rnd.choice([0, 0, 37, 120, 480])
        rows.append({"seq": i, "k": rnd.choice("abcd"), "u": rnd.randrange(30),
                     "v": None if rnd.random() < 0.2 else rnd.randrange(-50, 1000),
                     "d": None if rnd.random() < 0.1 else rnd.uniform(-5, 5) * 1e3,
                     "s": None if rnd.random() < 0.2 else rnd.choice(["x", "y", "z", "w"]),
                     "t": t})
    rows.append({"seq": 600, "k": "lone", "u": 99, "v": 5, "d": 1.5, "s": "q", "t": t + 1})
    return rows


ROWS = _rows()
SCHEMA = {"seq": pl.Int64, "k": pl.String, "u": pl.Int64, "v": pl.Int64, "d": pl.Float64,
          "s": pl.String, "t": pl.Int64}



def flink_integer(col: str, samp: bool, root: bool) -> str:
    """DuckDB for Flink's VAR/STDDEV of an integer column: Calcite's reduction to sums in
    integer arithmetic (each division truncates), the square root truncated."""
    n = f"count({col})"
    var = (f"((sum({col} * {col}) - sum({col}) * sum({col}) // {n}) // "
           f"NULLIF({n} - {int(samp)}, 0))")
    return f"CAST(trunc(sqrt({var})) AS BIGINT)" if root else var


# tidal's aggregate call, DuckDB's: FIRST/LAST and LISTAGG in event-time order, arrival
# order among equal times; LISTAGG compared exactly (order included)
STATS = [
    ("STDDEV_POP(d)", "stddev_pop(d)"), ("STDDEV_SAMP(d)", "stddev_samp(d)"),
    ("VAR_POP(d)", "var_pop(d)"), ("VAR_SAMP(d)", "var_samp(d)"), ("VARIANCE(d)", "variance(d)"),
    ("STDDEV_POP(v)", flink_integer("v", False, True)),
    ("STDDEV_SAMP(v)", flink_integer("v", True, True)),
    ("VAR_POP(v)", flink_integer("v", False, False)),
    ("VARIANCE(v)", flink_integer("v", True, False)),
]
ORDERED = [
    ("FIRST_VALUE(v)", "first(v ORDER BY t, seq) FILTER (WHERE v IS NOT NULL)"),
    ("LAST_VALUE(s)", "last(s ORDER BY t, seq) FILTER (WHERE s IS NOT NULL)"),
    ("LISTAGG(s)", "string_agg(s, ',' ORDER BY t, seq)"),
    ("LISTAGG(v, '; ')", "string_agg(CAST(v AS VARCHAR), '; ' ORDER BY t, seq)"),
    ("ARRAY_AGG(v)", "list(v ORDER BY t, seq)"),  # NULLs kept (Flink's RESPECT NULLS default)
    ("ARRAY_AGG(s IGNORE NULLS)", "list(s ORDER BY t, seq) FILTER (WHERE s IS NOT NULL)"),
]
DISTINCT = [
    ("COUNT(DISTINCT k, s)", "count(DISTINCT (k, s)) FILTER (WHERE k IS NOT NULL AND "
                             "s IS NOT NULL)"),
    ("SUM(DISTINCT v)", "sum(DISTINCT v)"), ("AVG(DISTINCT d)", "avg(DISTINCT d)"),
    ("SUM(DISTINCT CAST(v AS DECIMAL(10, 2)))", "sum(DISTINCT CAST(v AS DECIMAL(10, 2)))"),
    ("AVG(DISTINCT v)", "CAST(trunc(avg(DISTINCT v)) AS BIGINT)"),  # Flink: INT AVG truncates
]
ALL = STATS + ORDERED + DISTINCT


def run_sql(query: str, batch: int = 7) -> pl.DataFrame:
    flow = td.Flow("aggregates")
    flow.register_table("r", flow.source(td.sources.memory(ROWS), timestamp="t"))
    out = td.sinks.memory()
    flow.sql(query).sink(out)
    flow.run(quiet=True, max_batch_rows=batch)
    return out.frame()


def duck(query: str) -> list[tuple]:
    con = duckdb.connect()
    con.register("r", pl.DataFrame(ROWS, schema=SCHEMA).to_arrow())
    return sorted(con.sql(query).fetchall(), key=repr)


def same(got: list[tuple], want: list[tuple]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            if isinstance(b, float) and b is not None:
                assert a is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6), (g, w)
            else:
                assert a == b, (g, w)


def rows(frame: pl.DataFrame) -> list[tuple]:
    cols = [pl.col(c).dt.epoch("ms") if isinstance(t, pl.Datetime) else pl.col(c)
            for c, t in frame.schema.items()]
    return sorted(frame.select(cols).iter_rows(), key=repr)


def calls(pairs: list[tuple[str, str]]) -> tuple[str, str]:
    return ", ".join(p[0] for p in pairs), ", ".join(p[1] for p in pairs)


@pytest.mark.parametrize("pairs", [STATS, ORDERED, DISTINCT], ids=["stats", "ordered", "distinct"])
def test_tumble_window_matches_duckdb(pairs: list[tuple[str, str]]) -> None:
    ours, theirs = calls(pairs)
    got = run_sql(f"""SELECT k, window_start, {ours} FROM TABLE(TUMBLE(TABLE r, DESCRIPTOR(t),
                        INTERVAL '5' SECOND)) GROUP BY k, window_start, window_end""")
    want = duck(f"SELECT k, t // 5000 * 5000 AS ws, {theirs} FROM r GROUP BY k, ws")
    same(rows(got), want)


@pytest.mark.parametrize("pairs", [STATS, ORDERED, DISTINCT], ids=["stats", "ordered", "distinct"])
def test_hop_window_merges_panes_as_duckdb_computes_whole_windows(
        pairs: list[tuple[str, str]]) -> None:
    ours, theirs = calls(pairs)
    got = run_sql(f"""SELECT k, window_start, {ours} FROM TABLE(HOP(TABLE r, DESCRIPTOR(t),
                        INTERVAL '2' SECOND, INTERVAL '6' SECOND))
                      GROUP BY k, window_start, window_end""")
    want = duck(f"""SELECT k, ws, {theirs} FROM (SELECT *, hs AS ws FROM r, LATERAL (SELECT
                      unnest(range(t // 2000 * 2000 - 4000, t // 2000 * 2000 + 1, 2000)) AS hs))
                    GROUP BY k, ws""")
    same(rows(got), want)


def test_running_group_by_ends_at_the_batch_answer() -> None:
    ours, theirs = calls(ALL)
    got = run_sql(f"SELECT k, {ours} FROM r GROUP BY k")
    final = apply_changelog(got, ["k"]).drop(DELETE, strict=False)
    same(rows(final), duck(f"SELECT k, {theirs} FROM r GROUP BY k"))


def test_one_row_group_has_null_sample_variance_and_zero_population_variance() -> None:
    got = run_sql("SELECT k, VAR_SAMP(d) AS vs, STDDEV_SAMP(v) AS ss, VAR_POP(v) AS vp, "
                  "STDDEV_POP(d) AS sp, LISTAGG(s) AS l FROM r WHERE k = 'lone' GROUP BY k")
    assert got.drop(DELETE, strict=False).rows() == [("lone", None, None, 0, 0.0, "q")]
    assert got.schema["vs"] == pl.Float64 and got.schema["l"] == pl.String


def test_variance_of_an_integer_is_an_integer_as_in_flink() -> None:
    flow = td.Flow("integers")
    flow.register_table("p", flow.source(td.sources.memory(
        [{"k": "a", "i": i, "x": float(i)} for i in (1, 2, 3, 4)])))
    out = td.sinks.memory()
    flow.sql("SELECT VAR_POP(i), VAR_SAMP(i), STDDEV_POP(i), STDDEV_SAMP(i), VAR_POP(x), "
             "VAR_SAMP(x), STDDEV_POP(x) FROM p").sink(out)
    flow.run(quiet=True)
    *ints, vp, vs, sp = out.frame().drop(DELETE, strict=False).rows()[-1]
    assert ints == [1, 1, 1, 1]  # (30 - 100 / 4) / 4 = 5 / 4 = 1, 5 / 3 = 1: INT arithmetic
    assert (vp, vs, sp) == (1.25, pytest.approx(5 / 3), pytest.approx(1.25 ** 0.5))


def test_all_null_values_give_null() -> None:
    got = run_sql("SELECT k, STDDEV_POP(v) AS a, FIRST_VALUE(v) AS b, LAST_VALUE(v) AS c, "
                  "LISTAGG(s) AS e, SUM(DISTINCT v) AS f, COUNT(DISTINCT v, s) AS g, "
                  "ARRAY_AGG(v IGNORE NULLS) AS h, ARRAY_AGG(v) AS i FROM "
                  "(SELECT k, t, CAST(NULL AS BIGINT) AS v, CAST(NULL AS STRING) AS s FROM r) "
                  "WHERE k = 'lone' GROUP BY k")
    final = apply_changelog(got, ["k"]).drop(DELETE, strict=False)
    assert final.rows() == [("lone", None, None, None, None, None, 0, None, [None])]


def test_without_event_time_the_order_is_arrival() -> None:
    flow = td.Flow("arrival")
    rows = [{"k": "a", "v": v} for v in (3, None, 1, 2, None)]
    flow.register_table("p", flow.source(td.sources.memory(rows)))
    out = td.sinks.memory()
    flow.sql("SELECT k, FIRST_VALUE(v) AS f, LAST_VALUE(v) AS l, LISTAGG(v, '-') AS s, "
             "ARRAY_AGG(v) AS a FROM p GROUP BY k").sink(out)
    flow.run(quiet=True, max_batch_rows=2)
    assert out.frame().rows()[-1] == ("a", 3, 2, "3-1-2", [3, None, 1, 2, None])


# over an updating input: each u's latest maximum, grouped by its bucket (groups move)
INNER = "SELECT u, MAX(v) AS mv, MAX(d) AS md, MIN(s) AS ms FROM r GROUP BY u"
UPDATING = [("STDDEV_SAMP(mv)", flink_integer("mv", True, True)), ("VAR_POP(md)", "var_pop(md)"),
            ("COUNT(DISTINCT ms, u)", "count(DISTINCT (ms, u)) FILTER (WHERE ms IS NOT NULL)"),
            ("SUM(DISTINCT mv)", "sum(DISTINCT mv)"), ("AVG(DISTINCT md)", "avg(DISTINCT md)")]


def test_group_by_over_an_updating_input_retracts_to_the_batch_answer() -> None:
    ours, theirs = calls(UPDATING)
    got = run_sql(f"SELECT u % 3 AS b, {ours}, ARRAY_AGG(mv) AS a, LISTAGG(ms, '|') AS l "
                  f"FROM ({INNER}) GROUP BY u % 3")
    final = apply_changelog(got, ["b"]).drop(DELETE, strict=False)
    want = duck(f"SELECT u % 3 AS b, {theirs}, list_sort(list(mv)), list_sort(list(ms)) "
                f"FROM ({INNER}) GROUP BY b")
    # ARRAY_AGG, LISTAGG over an updating input: in the order of the rows' last change
    got_rows = [(*r[:-2], sorted(r[-2]), sorted(r[-1].split("|"))) for r in rows(final)]
    same(sorted(got_rows, key=repr), want)


@pytest.mark.parametrize(("query", "message"), [
    (f"SELECT FIRST_VALUE(ms) FROM ({INNER})", "FIRST_VALUE over an updating input is not "
                                               "supported"),
    (f"SELECT LAST_VALUE(ms) FROM ({INNER})", "LAST_VALUE over an updating input is not "
                                              "supported"),
    ("SELECT STDDEV_POP(DISTINCT v) FROM r", r"STDDEV_POP\(DISTINCT ...\) is not supported"),
    ("SELECT LISTAGG(s, k) FROM r", "LISTAGG with the separator k is not supported"),
    ("SELECT LISTAGG(DISTINCT s) FROM r", "LISTAGG.* is not supported"),
    ("SELECT STDDEV(v) FROM r", r"the aggregate STDDEV\(v\) is not supported"),
    ("SELECT BOOL_AND(v > 0) FROM r", "is not supported"),
    ("SELECT ARRAY_AGG(DISTINCT v) FROM r", r"ARRAY_AGG\(DISTINCT ...\) is not supported"),
    ("SELECT ARRAY_AGG(v ORDER BY t) FROM r", r"ORDER BY inside ARRAY_AGG\(...\) is not "
                                              "supported"),
    ("SELECT FIRST_VALUE(v) IGNORE NULLS FROM r", "is not supported"),
])
def test_what_is_not_planned_is_named(query: str, message: str) -> None:
    flow = td.Flow("refused")
    flow.register_table("r", flow.source(td.sources.memory(ROWS), timestamp="t"))
    with pytest.raises(SqlError, match=message):
        flow.sql(query)


# GROUPING SETS, ROLLUP, CUBE in a window TVF's GROUP BY: one window aggregation per set
SETS = [
    ("ROLLUP (k, s)", "ROLLUP (k, s)"),
    ("CUBE (k, s)", "CUBE (k, s)"),
    ("GROUPING SETS ((k, s), (s), ())", "GROUPING SETS ((k, s), (s), ())"),
]


@pytest.mark.parametrize(("ours", "theirs"), SETS, ids=["rollup", "cube", "grouping_sets"])
def test_grouping_sets_in_a_hop_window_match_duckdb(ours: str, theirs: str) -> None:
    got = run_sql(f"""SELECT window_start, k, s, COUNT(*) AS n, SUM(v) AS sv, STDDEV_POP(d),
                        LISTAGG(v), GROUPING(k) AS gk, GROUPING(k, s) AS g
                      FROM TABLE(HOP(TABLE r, DESCRIPTOR(t), INTERVAL '2' SECOND,
                                     INTERVAL '6' SECOND))
                      GROUP BY window_start, window_end, {ours} HAVING COUNT(*) > 1""")
    want = duck(f"""SELECT ws, k, s, count(*), sum(v), stddev_pop(d),
                      string_agg(CAST(v AS VARCHAR), ',' ORDER BY t, seq),
                      GROUPING(k), GROUPING(k, s)
                    FROM (SELECT *, hs AS ws FROM r, LATERAL (SELECT unnest(range(
                      t // 2000 * 2000 - 4000, t // 2000 * 2000 + 1, 2000)) AS hs))
                    GROUP BY ws, {theirs} HAVING count(*) > 1""")
    same(rows(got), want)


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT k, COUNT(*) FROM r GROUP BY ROLLUP (k)",
     "ROLLUP outside a window TVF's GROUP BY is not supported"),
    ("SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE r, DESCRIPTOR(t), INTERVAL '5' "
     "SECOND)) GROUP BY window_start, window_end, ROLLUP (k), CUBE (s)",
     "several GROUPING SETS, ROLLUP or CUBE in one GROUP BY is not supported"),
    ("SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE r, DESCRIPTOR(t), INTERVAL '5' "
     "SECOND)) GROUP BY window_start, window_end, GROUPING SETS (ROLLUP (k), (s))",
     "ROLLUP inside GROUPING SETS is not supported"),
])
def test_grouping_sets_not_planned_are_named(query: str, message: str) -> None:
    flow = td.Flow("refused")
    flow.register_table("r", flow.source(td.sources.memory(ROWS), timestamp="t"))
    with pytest.raises(SqlError, match=message):
        flow.sql(query)


RECOVERED = """SELECT MOD(auction, 7), window_start, STDDEV_POP(CAST(price AS DOUBLE)),
                 VAR_SAMP(price), FIRST_VALUE(bidder), LAST_VALUE(channel),
                 LISTAGG(CAST(bidder AS STRING)), SUM(DISTINCT price), COUNT(DISTINCT bidder, channel)
               FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '100' MILLISECOND,
                                INTERVAL '300' MILLISECOND))
               GROUP BY MOD(auction, 7), window_start, window_end"""


def test_window_state_of_the_new_aggregates_survives_a_crash(tmp_path: Path) -> None:
    from tidal.sql.nexmark import ddl

    def build(out: Path) -> td.Flow:
        flow = td.Flow("recovery")
        flow.sql(ddl(events=8_000, out_of_order_group=20))
        flow.sql(f"""CREATE TABLE out (k BIGINT, ws TIMESTAMP(3), sd DOUBLE, vs BIGINT,
                       f BIGINT, l STRING, agg STRING, sd2 BIGINT, cd BIGINT)
                     WITH ('connector' = 'filesystem', 'path' = '{out / 'out.jsonl'}',
                           'format' = 'json');
                     INSERT INTO out {RECOVERED};""")
        return flow

    def result(out: Path) -> list[tuple]:
        lines = (out / "out.jsonl").read_text().splitlines()
        return sorted(tuple(json.loads(line).values()) for line in lines)

    ref, out = tmp_path / "ref", tmp_path / "out"
    ref.mkdir()
    out.mkdir()
    build(ref).executor(max_batch_rows=300).run()
    ex = build(out).executor(max_batch_rows=300, checkpoint_dir=out / "ck")
    ex.open()
    for i in range(12):  # part of the input, checkpointing on the way, then die
        ex.step()
        if i % 5 == 4:
            ex.checkpoint()
    assert ex.store is not None
    ex.store.unlock()
    again = build(out).executor(max_batch_rows=300, checkpoint_dir=out / "ck")
    again.run()
    assert again.restored is not None
    # the float's last digits depend on how the batches fell: DOUBLE sums round so in Flink too
    same(result(out), result(ref))
    assert result(ref)
