"""Event-time temporal joins (``JOIN rates FOR SYSTEM_TIME AS OF o.order_time AS r``) against
versioned tables and versioned views: each order takes the rate that was valid at its event
time, as DuckDB's ``ASOF JOIN`` computes over the same rows, whatever order and batches the
rows arrive in, and across a restart from a checkpoint."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

import tidal as td
from tidal.sql import SqlError

from .crash import crash_and_restart

DISORDER_MS = 3_000
"""How far rows arrive out of event-time order; the watermarks allow for it."""

BASE = datetime(2024, 1, 1)


def _disordered(rows: list[dict], rng: random.Random) -> list[dict]:
    """``rows`` in arrival order: event-time order, each row shifted by up to DISORDER_MS."""
    return sorted(rows, key=lambda r: r["t"] + rng.uniform(0, DISORDER_MS))


def _data(seed: int = 11, orders: int = 200) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rates (several versions per currency, the first ones after some orders) and orders
    (some in currencies without any rate, some with a NULL currency), in arrival order."""
    rng = random.Random(seed)
    times = rng.sample(range(1_000, 60_000), 60)  # distinct: one version per instant
    rates = [{"currency": rng.choice(["EUR", "USD", "JPY", "CHF"]), "rate": rng.randint(50, 200),
              "t": t} for t in times]
    probes = [{"order_id": i, "price": rng.randint(1, 99),
               "currency": rng.choice(["EUR", "USD", "JPY", "CHF", "GBP", None]),
               "t": rng.randint(0, 65_000)} for i in range(orders)]

    def frame(rows: list[dict], name: str) -> pl.DataFrame:
        f = pl.DataFrame(_disordered(rows, rng))
        return f.with_columns((pl.lit(BASE) + pl.duration(milliseconds=pl.col("t")))
                              .cast(pl.Datetime("ms")).alias(name)).drop("t")

    return frame(probes, "order_time"), frame(rates, "update_time")


ORDERS, RATES = _data()


def _ddl(tmp: Path, orders: pl.DataFrame, rates: pl.DataFrame, rates_extra: str =
         ", PRIMARY KEY (currency) NOT ENFORCED", rates_name: str = "rates") -> str:
    for name, frame in (("orders", orders), (rates_name, rates)):
        lines = [json.dumps({k: (v.isoformat(sep=" ") if isinstance(v, datetime) else v)
                             for k, v in row.items()}) for row in frame.to_dicts()]
        (tmp / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    delay = f"INTERVAL '{DISORDER_MS // 1000}' SECOND"
    return f"""
      CREATE TABLE orders (order_id BIGINT, price BIGINT, currency STRING,
        order_time TIMESTAMP(3), WATERMARK FOR order_time AS order_time - {delay})
        WITH ('connector' = 'filesystem', 'path' = '{tmp / "orders.jsonl"}', 'format' = 'json');
      CREATE TABLE {rates_name} (currency STRING, rate BIGINT, update_time TIMESTAMP(3),
        WATERMARK FOR update_time AS update_time - {delay}{rates_extra})
        WITH ('connector' = 'filesystem', 'path' = '{tmp / f"{rates_name}.jsonl"}',
              'format' = 'json');"""


def _run(tmp: Path, query: str, batch_rows: int = 7, orders: pl.DataFrame = ORDERS,
         rates: pl.DataFrame = RATES, before: str = "") -> pl.DataFrame:
    flow = td.Flow("temporal")
    flow.sql(_ddl(tmp, orders, rates) + before)
    out = td.sinks.memory()
    flow.sql(query).sink(out)
    flow.run(quiet=True, max_batch_rows=batch_rows)
    return out.frame()


def _duck(query: str, orders: pl.DataFrame = ORDERS, rates: pl.DataFrame = RATES) -> pl.DataFrame:
    con = duckdb.connect()
    con.register("orders", orders.to_arrow())
    con.register("rates", rates.to_arrow())
    return con.sql(query).pl()


def _rows(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.rows(), key=repr)


FLINK = """SELECT o.order_id, o.price * r.rate AS converted, o.order_time, r.update_time
  FROM orders AS o {join} rates FOR SYSTEM_TIME AS OF o.order_time AS r
  ON o.currency = r.currency"""
DUCK = """SELECT o.order_id, o.price * r.rate AS converted, o.order_time, r.update_time
  FROM orders AS o {join} rates AS r
  ON o.currency = r.currency AND o.order_time >= r.update_time"""


@pytest.mark.parametrize("batch_rows", [1, 7, 1000])  # the files are read ~256 bytes a row
@pytest.mark.parametrize("join", ["JOIN", "LEFT JOIN"])
def test_each_order_takes_the_rate_valid_at_its_event_time(tmp_path: Path, join: str,
                                                           batch_rows: int) -> None:
    got = _run(tmp_path, FLINK.format(join=join), batch_rows)
    want = _duck(DUCK.format(join="ASOF " + join))
    assert got.columns == ["order_id", "converted", "order_time", "update_time"]
    assert _rows(got) == _rows(want)
    if join == "LEFT JOIN":  # orders without a version yet, in GBP or NULL: padded
        assert got.height == ORDERS.height
        padded = got.filter(pl.col("update_time").is_null())["order_id"]
        assert set(ORDERS.filter(pl.col("currency").is_null())["order_id"]) <= set(padded)
    assert got["order_time"].is_sorted()  # emitted in event-time order as the watermark passes


def test_a_version_arriving_after_the_order_that_needs_it(tmp_path: Path) -> None:
    rates = pl.DataFrame({"currency": ["EUR", "USD", "EUR", "EUR"], "rate": [110, 100, 120, 115],
                          "update_time": [BASE + timedelta(seconds=s) for s in (0, 0, 10, 5)]})
    orders = pl.DataFrame({"order_id": [1, 2, 3, 4], "price": [10, 10, 10, 10],
                           "currency": ["EUR", "EUR", "GBP", "EUR"],
                           "order_time": [BASE + timedelta(seconds=s) for s in (3, 11, 6, 7)]})
    got = _run(tmp_path, FLINK.format(join="LEFT JOIN"), 1, orders, rates)
    # the EUR version of 5 s arrives after the one of 10 s; order 4 (at 7 s) waits for it
    assert got.select("order_id", "converted").rows() == [(1, 1100), (3, None), (4, 1150),
                                                          (2, 1200)]


def test_an_order_behind_the_watermark_on_arrival_is_late_not_joined(tmp_path: Path) -> None:
    rates = pl.DataFrame({"currency": ["EUR", "USD"], "rate": [110, 100],
                          "update_time": [BASE, BASE + timedelta(seconds=100)]})
    orders = pl.DataFrame({"order_id": [1, 2, 3, 4, 5], "price": [10] * 5,
                           "currency": ["EUR"] * 5,
                           "order_time": [BASE + timedelta(seconds=s) for s in (5, 60, 61, 62,
                                                                                  6)]})
    got = _run(tmp_path, FLINK.format(join="LEFT JOIN"), 1, orders, rates)
    # order 5 (at 6 s) is read after orders 1-3 moved the watermark of both inputs to 58 s
    assert got.select("order_id", "converted").rows() == [(1, 1100), (2, 1100), (3, 1100),
                                                          (4, 1100)]


def test_the_output_keeps_the_probe_time_attribute_for_a_window(tmp_path: Path) -> None:
    got = _run(tmp_path, """
      SELECT window_start, COUNT(*) AS n, SUM(converted) AS total FROM TABLE(TUMBLE(TABLE (
        SELECT o.order_time, o.price * r.rate AS converted FROM orders AS o
        JOIN rates FOR SYSTEM_TIME AS OF o.order_time AS r ON r.currency = o.currency),
        DESCRIPTOR(order_time), INTERVAL '10' SECOND))
      GROUP BY window_start, window_end""")
    want = _duck("""SELECT time_bucket(INTERVAL '10 seconds', o.order_time) AS window_start,
        COUNT(*) AS n, SUM(o.price * r.rate) AS total FROM orders o ASOF JOIN rates r
        ON o.currency = r.currency AND o.order_time >= r.update_time GROUP BY 1""")
    assert _rows(got) == _rows(want.with_columns(pl.col("window_start").cast(pl.Datetime("ms")),
                                                 pl.col("total").cast(pl.Int64)))


def test_conditions_beside_the_key_filter_the_joined_version(tmp_path: Path) -> None:
    got = _run(tmp_path, FLINK.format(join="JOIN") + " AND r.rate > 100 AND o.price < 50")
    want = _duck(DUCK.format(join="ASOF JOIN")).join(
        ORDERS.select("order_id", "price"), on="order_id").join(
        RATES.select("update_time", "rate"), on="update_time").filter(
        (pl.col("rate") > 100) & (pl.col("price") < 50)).drop("price", "rate")
    assert want.height and _rows(got) == _rows(want)


def test_a_left_join_pads_an_order_whose_version_fails_the_conditions(tmp_path: Path) -> None:
    got = _run(tmp_path, FLINK.format(join="LEFT JOIN") + " AND r.rate > 100 AND o.price < 50")
    want = _duck(DUCK.format(join="ASOF LEFT JOIN")).join(
        ORDERS.select("order_id", "price"), on="order_id").join(
        RATES.select("update_time", "rate"), on="update_time", how="left")
    fails = ~((pl.col("rate") > 100) & (pl.col("price") < 50)).fill_null(False)
    want = want.with_columns(pl.when(~fails).then(pl.col(c)).alias(c)
                             for c in ("converted", "update_time")).drop("price", "rate")
    assert got.height == ORDERS.height
    assert want.filter(pl.col("update_time").is_null()).height > \
        ORDERS.filter(pl.col("currency").is_in(["GBP"]) | pl.col("currency").is_null()).height
    assert _rows(got) == _rows(want)


VIEW = """CREATE VIEW versioned_rates AS SELECT currency, rate, update_time FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY currency ORDER BY update_time DESC) AS rn
    FROM rates) WHERE rn = 1;"""


@pytest.mark.parametrize("join", ["JOIN", "LEFT JOIN"])
def test_a_versioned_view_by_deduplication(tmp_path: Path, join: str) -> None:
    query = FLINK.format(join=join).replace("rates FOR", "versioned_rates FOR")
    got = _run(tmp_path, query, before=VIEW)
    assert _rows(got) == _rows(_duck(DUCK.format(join="ASOF " + join)))


def _recovery_flow(tmp: Path, out: Path) -> td.Flow:
    orders, rates = _data(seed=5, orders=600)
    flow = td.Flow("temporal-recovery")
    flow.sql(_ddl(tmp, orders, rates) + f"""
      CREATE TABLE out (order_id BIGINT, converted BIGINT, currency STRING)
        WITH ('connector' = 'filesystem', 'path' = '{out / "out.jsonl"}', 'format' = 'json');
      INSERT INTO out SELECT o.order_id, o.price * r.rate, r.currency FROM orders AS o
        LEFT JOIN rates FOR SYSTEM_TIME AS OF o.order_time AS r ON o.currency = r.currency;""")
    return flow


def _written(out: Path) -> list[str]:
    return sorted((out / "out.jsonl").read_text().splitlines())


def test_a_restart_from_a_checkpoint_writes_what_one_run_writes(tmp_path: Path) -> None:
    ref, out = tmp_path / "ref", tmp_path / "out"
    ref.mkdir()
    out.mkdir()
    whole = _recovery_flow(ref, ref).executor(max_batch_rows=5)
    whole.run()
    want = _written(ref)
    assert len(want) == 600
    again = crash_and_restart(lambda: _recovery_flow(out, out), out / "ck", batch_rows=5, every=13)
    assert 0 < again.metrics.steps["orders"].rows_out < 600
    assert _written(out) == want


def _refusal(tmp: Path, query: str, rates_extra: str = ", PRIMARY KEY (currency) NOT "
             "ENFORCED", before: str = "") -> str:
    flow = td.Flow("refused")
    flow.sql(_ddl(tmp, ORDERS, RATES) + _ddl(tmp, ORDERS, RATES, rates_extra, "rates2")
             .split(";", 1)[1] + before)
    with pytest.raises(SqlError) as info:
        flow.sql(query)
    return str(info.value)


def test_refusals_name_what_is_missing(tmp_path: Path) -> None:
    join = FLINK.format(join="JOIN").replace("rates FOR", "rates2 FOR")
    assert "needs a PRIMARY KEY on the versioned table 'rates2'" in _refusal(tmp_path, join, "")
    assert "must equate its whole PRIMARY KEY (currency, rate) with the probe side; ON does " \
        "not cover rate" in _refusal(tmp_path, join, ", PRIMARY KEY (currency, rate) NOT ENFORCED")
    text = _refusal(tmp_path, FLINK.format(join="JOIN").replace("o.currency = r.currency",
                                                                "o.price = r.rate"))
    assert "does not cover currency" in text
    for side in ("RIGHT JOIN", "FULL JOIN"):
        assert f"{side} with FOR SYSTEM_TIME AS OF is not supported; use JOIN or LEFT JOIN" in \
            _refusal(tmp_path, FLINK.format(join=side))


def test_a_build_side_without_a_watermark_is_refused(tmp_path: Path) -> None:
    flow = td.Flow("refused")
    flow.sql(_ddl(tmp_path, ORDERS, RATES) + f"""
      CREATE TABLE plain_rates (currency STRING, rate BIGINT, update_time TIMESTAMP(3),
        PRIMARY KEY (currency) NOT ENFORCED)
        WITH ('connector' = 'filesystem', 'path' = '{tmp_path / "rates.jsonl"}',
              'format' = 'json');""")
    with pytest.raises(SqlError, match="needs an event-time attribute on the versioned table "
                       "'plain_rates'; declare WATERMARK FOR"):
        flow.sql(FLINK.format(join="JOIN").replace("rates FOR", "plain_rates FOR"))


def test_views_that_are_not_versioned_are_refused(tmp_path: Path) -> None:
    not_last = VIEW.replace("update_time DESC", "update_time").replace("versioned_", "first_")
    text = _refusal(tmp_path, FLINK.format(join="JOIN").replace("rates FOR", "first_rates FOR"),
                    before=not_last)
    assert "an event-time temporal join with the view 'first_rates', which is no versioned " \
        "view (a deduplication keeping the last row per key by event time) is not supported" \
        in text
    by_proctime = ("CREATE VIEW proc_rates AS SELECT currency, rate, update_time FROM (SELECT *, "
                   "ROW_NUMBER() OVER (PARTITION BY currency ORDER BY p DESC) AS rn FROM (SELECT "
                   "*, PROCTIME() AS p FROM rates)) WHERE rn = 1;")
    text = _refusal(tmp_path, FLINK.format(join="JOIN").replace("rates FOR", "proc_rates FOR"),
                    before=by_proctime)
    assert "with the view 'proc_rates', which is no versioned view" in text
    plain = "CREATE VIEW cheap AS SELECT * FROM rates WHERE rate < 100;"
    text = _refusal(tmp_path, FLINK.format(join="JOIN").replace("rates FOR", "cheap FOR"),
                    before=plain)
    assert "which is no versioned view is not supported" in text
