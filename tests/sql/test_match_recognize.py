"""MATCH_RECOGNIZE: SQL row pattern recognition on the CEP operator, checked against
hand-computed results on small scripted inputs and against the Python pattern API."""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest

import tidal as td
from tidal.sql import SqlError
from tidal.sql.errors import UnsupportedSql

BASE = dt.datetime(2011, 4, 1, 10, 0, 0)

# the ticker of Flink's MATCH_RECOGNIZE documentation (ACME), plus a second symbol
ACME = [12, 17, 19, 21, 25, 18, 15, 14, 24, 25, 19]

TICKER_QUERY = """
SELECT * FROM Ticker MATCH_RECOGNIZE (
  PARTITION BY symbol ORDER BY rowtime
  MEASURES START_ROW.rowtime AS start_tstamp, LAST(PRICE_DOWN.rowtime) AS bottom_tstamp,
           LAST(PRICE_UP.rowtime) AS end_tstamp, FIRST(PRICE_DOWN.price) AS first_down
  ONE ROW PER MATCH
  AFTER MATCH SKIP TO LAST PRICE_UP
  PATTERN (START_ROW PRICE_DOWN+ PRICE_UP) WITHIN INTERVAL '1' HOUR
  DEFINE PRICE_DOWN AS (LAST(PRICE_DOWN.price, 1) IS NULL AND PRICE_DOWN.price < START_ROW.price)
                       OR PRICE_DOWN.price < LAST(PRICE_DOWN.price, 1),
         PRICE_UP AS PRICE_UP.price > LAST(PRICE_DOWN.price, 1)
) MR"""


def ticks(symbol: str, prices: list[int], start_s: int = 0) -> list[dict]:
    return [{"symbol": symbol, "rowtime": BASE + dt.timedelta(seconds=start_s + i),
             "price": p, "tax": 1} for i, p in enumerate(prices)]


def run(rows: list[dict], query: str, *, timestamp: str = "rowtime", table: str = "Ticker",
        batch: int | None = None, delay: str = "0s") -> list[dict]:
    flow = td.Flow("mr")
    items = [pl.DataFrame(rows[i:i + batch]) for i in range(0, len(rows), batch)] if batch \
        else rows
    source = td.sources.memory(items)
    flow.register_table(table, flow.source(source, timestamp=timestamp, watermark=delay))
    out = td.sinks.memory()
    flow.sql(query).sink(out)
    flow.run(quiet=True)
    return out.rows


def at(s: int) -> dt.datetime:
    return BASE + dt.timedelta(seconds=s)


def test_flink_documentation_ticker_example() -> None:
    got = run(ticks("ACME", ACME), TICKER_QUERY)
    # Flink's documented output: one match, 10:00:04 .. 10:00:07 .. 10:00:08
    assert got == [{"symbol": "ACME", "start_tstamp": at(4), "bottom_tstamp": at(7),
                    "end_tstamp": at(8), "first_down": 18}]


def test_out_of_order_input_and_several_partitions() -> None:
    # BETA falls 30, 20, 10 then rises to 40 (one match); GAMMA never rises again
    rows = ticks("ACME", ACME) + ticks("BETA", [30, 20, 10, 40]) + ticks("GAMMA", [9, 8, 7])
    random.Random(7).shuffle(rows)
    got = run(rows, TICKER_QUERY, batch=3, delay="20s")
    assert sorted(got, key=lambda r: r["symbol"]) == [
        {"symbol": "ACME", "start_tstamp": at(4), "bottom_tstamp": at(7), "end_tstamp": at(8),
         "first_down": 18},
        {"symbol": "BETA", "start_tstamp": at(0), "bottom_tstamp": at(2), "end_tstamp": at(3),
         "first_down": 20},
    ]


def test_within_drops_matches_that_take_too_long() -> None:
    def within(seconds: int) -> list[tuple[dt.datetime, dt.datetime]]:
        query = TICKER_QUERY.replace("INTERVAL '1' HOUR", f"INTERVAL '{seconds}' SECOND")
        return [(r["start_tstamp"], r["end_tstamp"]) for r in run(ticks("ACME", ACME), query)]

    assert within(5) == [(at(4), at(8))]
    # 10:00:04 .. 10:00:08 is not strictly within 4 s: the match starting at 25 expires and
    # the one starting one row later (18, 15, 14, then 24) is found instead
    assert within(4) == [(at(5), at(8))]
    # 3 s: 10:00:05 .. 10:00:08 expires too; from 15, one fall (14) is not enough, as
    # PRICE_UP compares with the second-to-last PRICE_DOWN (LAST(PRICE_DOWN.price, 1))
    assert within(3) == []


SKIP_QUERY = """
SELECT * FROM T MATCH_RECOGNIZE (
  PARTITION BY k ORDER BY t
  MEASURES FIRST(A.t) AS a_first, LAST(A.t) AS a_last, B.t AS b, COUNT(A.*) AS n
  {after}
  PATTERN (A+? B)
  DEFINE A AS A.v = 'a', B AS B.v = 'b'
)"""


@pytest.mark.parametrize(("after", "want"), [
    # rows a0 a1 a2 b3: reluctant A+? gives, per start row, one shortest match
    ("AFTER MATCH SKIP PAST LAST ROW", [(0, 2, 3, 3)]),
    ("", [(0, 2, 3, 3)]),  # the default
    ("AFTER MATCH SKIP TO NEXT ROW", [(0, 2, 3, 3), (1, 2, 3, 2), (2, 2, 3, 1)]),
    ("AFTER MATCH SKIP TO LAST A", [(0, 2, 3, 3), (2, 2, 3, 1)]),
    ("AFTER MATCH SKIP TO FIRST B", [(0, 2, 3, 3)]),
])
def test_after_match_skip_strategies(after: str, want: list[tuple[int, ...]]) -> None:
    rows = [{"k": 1, "t": i, "v": v} for i, v in enumerate("aaab")]
    got = run(rows, SKIP_QUERY.format(after=after), timestamp="t", table="T")
    assert [(r["a_first"], r["a_last"], r["b"], r["n"]) for r in got] == want


def test_quantifier_bounds_and_greedy_steps() -> None:
    # A{2,3} greedy then B: among a a a a b, the match starting at row 1 takes three A's
    rows = [{"k": 1, "t": i, "v": v} for i, v in enumerate("aaaab")]
    q = """SELECT * FROM T MATCH_RECOGNIZE (PARTITION BY k ORDER BY t
        MEASURES FIRST(A.t) AS s, COUNT(A.*) AS n, LAST(B.t) AS e
        AFTER MATCH SKIP TO NEXT ROW PATTERN (A{2,3} B) DEFINE A AS v = 'a', B AS v = 'b')"""
    assert [(r["s"], r["n"], r["e"]) for r in run(rows, q, timestamp="t", table="T")] == \
        [(1, 3, 4), (2, 2, 4)]
    # an optional variable: X? between A and B; 'a b' and 'a x b' both match, 'a x x b' not
    rows = [{"k": 1, "t": i, "v": v} for i, v in enumerate("abaxbaxxb")]
    q = """SELECT * FROM T MATCH_RECOGNIZE (PARTITION BY k ORDER BY t
        MEASURES A.t AS s, COUNT(X.*) AS nx, B.t AS e
        PATTERN (A X? B) DEFINE A AS v = 'a', X AS v = 'x', B AS v = 'b')"""
    assert [(r["s"], r["nx"], r["e"]) for r in run(rows, q, timestamp="t", table="T")] == \
        [(0, 0, 1), (2, 1, 4)]


def test_rows_between_variables_break_a_match_strict_contiguity() -> None:
    rows = [{"k": 1, "t": i, "v": v} for i, v in enumerate("azb")]
    q = """SELECT * FROM T MATCH_RECOGNIZE (PARTITION BY k ORDER BY t MEASURES A.t AS s
        PATTERN (A B) DEFINE A AS v = 'a', B AS v = 'b')"""
    assert run(rows, q, timestamp="t", table="T") == []


def test_measures_aggregates_and_match_rowtime() -> None:
    rows = [{"k": "x", "t": i * 1000, "p": p} for i, p in enumerate([10, 7, 5, 4, 9])]
    q = """SELECT k, lo, hi, total, avg_p, n, last_t FROM T MATCH_RECOGNIZE (
        PARTITION BY k ORDER BY t
        MEASURES MIN(D.p) AS lo, MAX(D.p) AS hi, SUM(D.p) AS total, AVG(D.p) AS avg_p,
                 COUNT(*) AS n, MATCH_ROWTIME() AS last_t
        PATTERN (S D+ U)
        DEFINE D AS D.p < LAST(D.p, 1) OR (LAST(D.p, 1) IS NULL AND D.p < S.p),
               U AS U.p > LAST(D.p))"""
    # S=10, D=7,5,4 (avg 16/3 truncated to 5, as Flink's integer AVG), U=9; COUNT(*) = 5 rows
    assert run(rows, q, timestamp="t", table="T") == [
        {"k": "x", "lo": 4, "hi": 7, "total": 16, "avg_p": 5, "n": 5, "last_t": 4000}]


def test_matches_python_pattern_api_on_generated_data() -> None:
    rng = random.Random(3)
    rows = [{"card": f"c{rng.randrange(20)}", "amount": rng.choice([0.5, 20.0, 900.0, 50.0]),
             "t": i * 1000} for i in range(3000)]
    q = """SELECT * FROM tx MATCH_RECOGNIZE (PARTITION BY card ORDER BY t
        MEASURES S.t AS s, L.t AS e, L.amount AS big
        AFTER MATCH SKIP TO NEXT ROW
        PATTERN (S L) WITHIN INTERVAL '60' SECOND
        DEFINE S AS amount < 1, L AS amount > 500)"""
    got = run(rows, q, timestamp="t", table="tx", batch=250, delay="5s")
    flow = td.Flow("py")
    frames = [pl.DataFrame(rows[i:i + 250]) for i in range(0, len(rows), 250)]
    src = flow.source(td.sources.memory(frames), timestamp="t", watermark="5s")
    p = td.pattern("S", pl.col("amount") < 1).next("L", pl.col("amount") > 500).within("60s")
    out = td.sinks.memory()
    (src.key_by("card").match(p)
        .select("card", s=pl.col("match_start"), e=pl.col("match_end"),
                big=pl.col("L").struct.field("amount")).sink(out))
    flow.run(quiet=True)
    key = lambda r: (r["card"], r["s"])  # noqa: E731
    assert len(got) > 20
    assert sorted(got, key=key) == sorted(out.rows, key=key)


@pytest.mark.parametrize(("clause", "message"), [
    ("ALL ROWS PER MATCH PATTERN (A B)", "ALL ROWS PER MATCH is not supported"),
    ("PATTERN (A | B)", "alternation (|) in PATTERN is not supported"),
    ("PATTERN (A (B C)+)", "grouping with ( ... ) in PATTERN is not supported"),
    ("PATTERN (PERMUTE(A, B))", "PERMUTE in PATTERN is not supported"),
    ("PATTERN (A {- B -} C)", "exclusion {- ... -} in PATTERN is not supported"),
    ("PATTERN (A B+)", "a greedy quantifier on the last variable B is not supported"),
    ("PATTERN (A B??)", "the reluctant optional quantifier B?? is not supported"),
    ("PATTERN (A B) DEFINE B AS B.v > PREV(B.v)", "PREV(...) (physical row offsets) is not "
     "supported"),
])
def test_unsupported_clauses_are_named(clause: str, message: str) -> None:
    if "DEFINE" not in clause:
        clause += " DEFINE A AS v > 0"
    q = f"SELECT * FROM T MATCH_RECOGNIZE (PARTITION BY k ORDER BY t MEASURES A.t AS s {clause})"
    flow = td.Flow("mr")
    flow.register_table("T", flow.source(td.sources.memory([{"k": 1, "t": 0, "v": 1}]),
                                         timestamp="t"))
    with pytest.raises(UnsupportedSql) as info:
        flow.sql(q)
    assert message in str(info.value)


def test_order_by_must_be_the_time_attribute() -> None:
    flow = td.Flow("mr")
    flow.register_table("T", flow.source(td.sources.memory([{"k": 1, "t": 0, "v": 1}]),
                                         timestamp="t"))
    with pytest.raises(SqlError, match="ORDER BY v: it must be the event time attribute"):
        flow.sql("SELECT * FROM T MATCH_RECOGNIZE (ORDER BY v MEASURES A.t AS s PATTERN (A) "
                 "DEFINE A AS v > 0)")
