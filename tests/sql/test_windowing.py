"""CUMULATE, window TVF rows, window Top-N and window joins in SQL, each checked against
DuckDB's batch answer over the same generated, out-of-order Nexmark events (exact equality
of row multisets; every result here is append-only)."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

import tidal as td
from tidal.errors import TidalError
from tidal.nexmark import NexmarkConfig, generate_events
from tidal.operators.timeattr import TimeAttr
from tidal.sql.nexmark import ddl

EVENTS, OOO, RATE = 30_000, 100, 1_000  # 30 s of event time, out of order in groups of 100
MS = 'epoch_ms("dateTime")'


@pytest.fixture(scope="module")
def events() -> dict[str, pl.DataFrame]:
    config = NexmarkConfig(events=EVENTS, out_of_order_group=OOO, rate=RATE)
    return generate_events(config, 0, EVENTS, with_event_id=True)


def run_sql(query: str, batch: int = 997) -> pl.DataFrame:
    flow = td.Flow("windowing")
    flow.sql(ddl(events=EVENTS, out_of_order_group=OOO, rate=RATE, event_id=True))
    out = td.sinks.memory()
    flow.sql(query).sink(out)
    flow.run(quiet=True, max_batch_rows=batch)
    return out.frame()


def duck(query: str, events: dict[str, pl.DataFrame]) -> pl.DataFrame:
    con = duckdb.connect()
    for kind, frame in events.items():
        con.register(kind, frame.to_arrow())
    return con.sql(query).pl()


def rows(frame: pl.DataFrame) -> list[tuple]:
    cols = [pl.col(c).dt.epoch("ms") if isinstance(t, pl.Datetime) else pl.col(c)
            for c, t in frame.schema.items()]
    return sorted(frame.select(cols).iter_rows(), key=repr)


def windows(kind: str, step: int, size: int, table: str = "bid") -> str:
    """DuckDB: every row of ``table`` with (ws, we) of each of its windows, in epoch ms."""
    if kind == "TUMBLE":
        return f"""SELECT *, {MS} // {size} * {size} AS ws, {MS} // {size} * {size} + {size} AS we
                   FROM {table}"""
    if kind == "HOP":
        return f"""SELECT * FROM (SELECT *, s AS ws, s + {size} AS we FROM {table},
                     LATERAL (SELECT unnest(range({MS} // {step} * {step} - {size} + {step},
                                                  {MS} // {step} * {step} + 1, {step})) AS s))"""
    return f"""SELECT *, {MS} // {size} * {size} AS ws, e AS we FROM {table},
                 LATERAL (SELECT unnest(range({MS} // {step} * {step} + {step},
                                              {MS} // {size} * {size} + {size} + 1, {step})) AS e)"""


TVF = {
    "TUMBLE": "TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '5' SECOND)",
    "HOP": "HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '6' SECOND)",
    "CUMULATE": "CUMULATE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, "
                "INTERVAL '6' SECOND)",
}
STEP_SIZE = {"TUMBLE": (5_000, 5_000), "HOP": (2_000, 6_000), "CUMULATE": (2_000, 6_000)}


# -- CUMULATE ------------------------------------------------------------------------------
def test_cumulate_aggregation_equals_duckdb(events: dict[str, pl.DataFrame]) -> None:
    got = run_sql(f"""
        SELECT auction, window_start, window_end, COUNT(*) AS n, MAX(price) AS top,
               COUNT(DISTINCT bidder) AS bidders, SUM(price) AS total,
               COUNT(*) FILTER (WHERE price > 1000) AS big
        FROM TABLE({TVF['CUMULATE']})
        GROUP BY auction, window_start, window_end""")
    want = duck(f"""
        SELECT auction, ws, we, count(*), max(price), count(DISTINCT bidder), sum(price),
               count(*) FILTER (WHERE price > 1000)
        FROM ({windows('CUMULATE', 2_000, 6_000)}) GROUP BY ALL""", events)
    assert got.columns == ["auction", "window_start", "window_end", "n", "top", "bidders", "total",
                           "big"]
    assert got.height == want.height
    assert rows(got) == rows(want)


def test_cumulate_result_grouped_by_its_windows_again(events: dict[str, pl.DataFrame]) -> None:
    got = run_sql(f"""
        SELECT window_start, window_end, MAX(n) AS most, COUNT(*) AS auctions FROM (
          SELECT auction, window_start, window_end, COUNT(*) AS n FROM TABLE({TVF['CUMULATE']})
          GROUP BY auction, window_start, window_end)
        GROUP BY window_start, window_end""")
    want = duck(f"""
        SELECT ws, we, max(n), count(*) FROM (
          SELECT auction, ws, we, count(*) AS n FROM ({windows('CUMULATE', 2_000, 6_000)})
          GROUP BY ALL) GROUP BY ALL""", events)
    assert rows(got) == rows(want)


@pytest.mark.parametrize("kind", ["TUMBLE", "HOP", "CUMULATE"])
def test_window_tvf_rows_have_one_row_per_window(kind: str,
                                                 events: dict[str, pl.DataFrame]) -> None:
    got = run_sql(f"SELECT auction, price, window_start, window_end, window_time "
                  f"FROM TABLE({TVF[kind]}) WHERE price > 5000000")
    want = duck(f"SELECT auction, price, ws, we, we - 1 FROM ({windows(kind, *STEP_SIZE[kind])}) "
                "WHERE price > 5000000", events)
    assert got.height == want.height > 0
    assert rows(got) == rows(want)


def test_cumulate_size_must_be_a_multiple_of_the_step() -> None:
    with pytest.raises(TidalError, match="CUMULATE with a size that is not a multiple"):
        run_sql("SELECT auction, COUNT(*) FROM TABLE(CUMULATE(TABLE bid, DESCRIPTOR(`dateTime`), "
                "INTERVAL '4' SECOND, INTERVAL '10' SECOND)) GROUP BY auction, window_start, "
                "window_end")


# -- window Top-N ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["TUMBLE", "HOP", "CUMULATE"])
def test_window_top_n_over_a_window_tvf(kind: str, events: dict[str, pl.DataFrame]) -> None:
    got = run_sql(f"""
        SELECT window_start, window_end, auction, price, rn FROM (
          SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end
                                       ORDER BY price DESC) AS rn
          FROM TABLE({TVF[kind]}))
        WHERE rn <= 3""")
    want = duck(f"""
        SELECT ws, we, auction, price, rn FROM (
          SELECT *, row_number() OVER (PARTITION BY ws, we ORDER BY price DESC, event_id) AS rn
          FROM ({windows(kind, *STEP_SIZE[kind])}))
        WHERE rn <= 3""", events)
    assert got.columns == ["window_start", "window_end", "auction", "price", "rn"]
    assert got.height == want.height > 0  # append-only: each window's rows once
    assert rows(got) == rows(want)


def test_window_top_n_per_key_without_the_row_number(events: dict[str, pl.DataFrame]) -> None:
    got = run_sql(f"""
        SELECT auction, bidder, price, window_end FROM (
          SELECT auction, bidder, price, window_start, window_end,
                 ROW_NUMBER() OVER (PARTITION BY window_start, window_end, auction
                                    ORDER BY price ASC, bidder DESC) AS rn
          FROM TABLE({TVF['CUMULATE']}) WHERE bidder % 2 = 0)
        WHERE rn < 3""")
    want = duck(f"""
        SELECT auction, bidder, price, we FROM (
          SELECT *, row_number() OVER (PARTITION BY ws, we, auction
                                       ORDER BY price, bidder DESC, event_id) AS rn
          FROM ({windows('CUMULATE', 2_000, 6_000)}) WHERE bidder % 2 = 0)
        WHERE rn < 3""", events)
    assert rows(got) == rows(want)


def test_window_top_n_over_a_window_aggregation(events: dict[str, pl.DataFrame]) -> None:
    """Nexmark q5's shape: the auctions with the most bids of each hopping window."""
    got = run_sql(f"""
        SELECT auction, num, window_start, window_end, rn FROM (
          SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end
                                       ORDER BY num DESC, auction) AS rn
          FROM (SELECT auction, COUNT(*) AS num, window_start, window_end
                FROM TABLE({TVF['HOP']}) GROUP BY auction, window_start, window_end))
        WHERE rn <= 2""")
    want = duck(f"""
        SELECT auction, num, ws, we, rn FROM (
          SELECT *, row_number() OVER (PARTITION BY ws, we ORDER BY num DESC, auction) AS rn
          FROM (SELECT auction, count(*) AS num, ws, we
                FROM ({windows('HOP', 2_000, 6_000)}) GROUP BY ALL))
        WHERE rn <= 2""", events)
    assert got.height == want.height > 0
    assert rows(got) == rows(want)


@pytest.mark.parametrize(("direction", "ties"), [("DESC", "DESC"), ("ASC", "")])
def test_window_deduplication_keeps_the_first_or_last_row(direction: str, ties: str,
                                                          events: dict[str, pl.DataFrame]) -> None:
    got = run_sql(f"""
        SELECT bidder, price, `dateTime`, window_start FROM (
          SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, bidder
                                       ORDER BY `dateTime` {direction}) AS rn
          FROM TABLE({TVF['TUMBLE']}))
        WHERE rn = 1""")
    want = duck(f"""
        SELECT bidder, price, "dateTime", ws FROM (
          SELECT *, row_number() OVER (PARTITION BY ws, we, bidder
                                       ORDER BY "dateTime" {direction}, event_id {ties}) AS rn
          FROM ({windows('TUMBLE', 5_000, 5_000)}))
        WHERE rn = 1""", events)
    assert got.height == want.height
    assert rows(got) == rows(want)


# -- window joins ----------------------------------------------------------------------------
def tvf(kind: str, table: str) -> str:
    return TVF[kind].replace("TABLE bid", f"TABLE {table}")


@pytest.mark.parametrize("kind", ["TUMBLE", "HOP", "CUMULATE"])
def test_window_join_of_two_window_tvfs(kind: str, events: dict[str, pl.DataFrame]) -> None:
    got = run_sql(f"""
        SELECT L.auction, L.price, R.seller, L.window_start, L.window_end
        FROM (SELECT * FROM TABLE({tvf(kind, 'bid')})) L
        JOIN (SELECT * FROM TABLE({tvf(kind, 'auction')})) R
        ON L.window_start = R.window_start AND L.window_end = R.window_end
           AND L.auction = R.id
        WHERE L.price > 1000""")
    step, size = STEP_SIZE[kind]
    want = duck(f"""
        SELECT L.auction, L.price, R.seller, L.ws, L.we
        FROM ({windows(kind, step, size)}) L
        JOIN ({windows(kind, step, size, 'auction')}) R
        ON L.ws = R.ws AND L.we = R.we AND L.auction = R.id
        WHERE L.price > 1000""", events)
    assert got.height == want.height > 0  # append-only: each pair once
    assert rows(got) == rows(want)


def test_window_join_reads_the_tvfs_in_from_and_frees_its_state() -> None:
    from tidal.operators.base import OperatorContext
    from tidal.operators.join import WindowJoin

    flow = td.Flow("window_join")
    flow.sql(ddl(events=EVENTS, out_of_order_group=OOO, rate=RATE))
    flow.sql(f"""
        SELECT b.bidder, a.seller, b.window_end
        FROM TABLE({tvf('TUMBLE', 'bid')}) b, TABLE({tvf('TUMBLE', 'auction')}) a
        WHERE b.auction = a.id AND b.window_start = a.window_start
          AND b.window_end = a.window_end""")
    joins = [n for n in flow.nodes if n.kind == "join"]
    assert len(joins) == 1 and joins[0].name.startswith("window_join")
    op = joins[0].make()
    assert isinstance(op, WindowJoin) and op.given
    # the operator: rows wait for their window's end, pair, and are forgotten
    out: list[pl.DataFrame] = []
    op = WindowJoin("j", ["k", "we"], ["k", "we"], TimeAttr("we"), TimeAttr("we"), None)
    op.open(OperatorContext("j", lambda b, port: out.append(b), lambda r, why: None,
                            lambda: 0, lambda n: None))
    op.on_batch(pl.DataFrame({"k": [1, 2], "we": [10, 20], "x": ["a", "b"]}), 0)
    op.on_batch(pl.DataFrame({"k": [1, 1, 2], "we": [10, 20, 20], "y": [5, 6, 7]}), 1)
    op.on_watermark(10)
    assert [f.rows() for f in out] == [[(1, 10, "a", 5)]]
    op.on_watermark(20)
    assert out[1].rows() == [(2, 20, "b", 7)]
    assert all(side is not None and side.height == 0 for side in op.sides)
    op.on_batch(pl.DataFrame({"k": [3], "we": [15], "x": ["late"]}), 0)
    assert op.late_rows == 1


def test_window_join_of_window_aggregations(events: dict[str, pl.DataFrame]) -> None:
    """Nexmark q8's shape, with CUMULATE windows: bids on auctions opened in the same window."""
    got = run_sql(f"""
        SELECT B.auction, B.n, A.seller, B.window_start, B.window_end
        FROM (SELECT auction, COUNT(*) AS n, window_start, window_end
              FROM TABLE({tvf('CUMULATE', 'bid')}) GROUP BY auction, window_start, window_end) B
        JOIN (SELECT id, seller, window_start, window_end
              FROM TABLE({tvf('CUMULATE', 'auction')})
              GROUP BY id, seller, window_start, window_end) A
        ON B.auction = A.id AND B.window_start = A.window_start
           AND B.window_end = A.window_end""")
    want = duck(f"""
        SELECT B.auction, B.n, A.seller, B.ws, B.we
        FROM (SELECT auction, count(*) AS n, ws, we FROM ({windows('CUMULATE', 2_000, 6_000)})
              GROUP BY ALL) B
        JOIN (SELECT id, seller, ws, we
              FROM ({windows('CUMULATE', 2_000, 6_000, 'auction')}) GROUP BY ALL) A
        ON B.auction = A.id AND B.ws = A.ws AND B.we = A.we""", events)
    assert got.height == want.height > 0
    assert rows(got) == rows(want)


def test_running_totals_example_counts_every_click_and_ranks_each_window() -> None:
    """examples/sql_running_totals.py as a user runs it: running totals only grow within a
    minute and the full minute counts every click; 3 ranked pages per 10 s window."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "sql_running_totals.py"
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, check=True)
    parsed: dict[str, list[dict[str, str]]] = {"running": [], "top": []}
    for line in proc.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        parsed[kind].append(dict(p.split("=", 1) for p in rest.split(" ")))
    running = pl.DataFrame(parsed["running"]).with_columns(pl.col("views").cast(pl.Int64))
    assert running["window_end"].n_unique() == 6  # 10 s, 20 s, ..., 60 s after the minute
    grows = running.sort("window_end").group_by("page").agg(
        (pl.col("views").diff().drop_nulls() >= 0).all().alias("grows"))
    assert grows["grows"].all()
    assert running.filter(pl.col("window_end") == pl.col("window_end").max())["views"].sum() \
        == 30_000
    top = pl.DataFrame(parsed["top"]).with_columns(pl.col("rn", "views").cast(pl.Int64))
    assert top.group_by("window_start").agg(pl.col("rn").sort())["rn"].to_list() == \
        [[1, 2, 3]] * 6
    assert top.sort("window_start", "rn").group_by("window_start", maintain_order=True).agg(
        (pl.col("views").diff().drop_nulls() <= 0).all().alias("ranked"))["ranked"].all()
