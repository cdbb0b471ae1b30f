"""End to end: Nexmark bids with out-of-order timestamps through tidal, compared exactly with
the same computation done in batch by DuckDB.

- W1: keep bids whose auction % 123 == 0;
- W2: per 10 s tumbling window and auction, count and max price;
- W3: per 10 s window sliding every 2 s and per auction, the count of bids.

The watermark delay is larger than the disorder, so no bid is late and the streaming answer
must equal the batch answer row for row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pytest

import tidal as td
from tidal.nexmark import NexmarkConfig, bids_table

JITTER_MS = 2_000
GROUP = 64


@pytest.fixture(autouse=True)
def _tidal_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDAL_HOME", str(tmp_path / ".tidal"))


def out_of_order_bids(n: int, seed: int = 42) -> pl.DataFrame:
    """``n`` Nexmark bids (2,000 events/s of event time) with event times pushed back by up to
    2 s at random and rows shuffled within consecutive groups of 64."""
    cfg = NexmarkConfig.profile("test", rate=2_000.0)
    bids = bids_table(n, cfg, columns=["auction", "bidder", "price", "dateTime"])
    rng = np.random.default_rng(seed)
    ts = bids["dateTime"].dt.epoch("ms").to_numpy() + rng.integers(0, JITTER_MS, n)
    order = np.concatenate(
        [rng.permutation(np.arange(i, min(i + GROUP, n))) for i in range(0, n, GROUP)]
    )
    return bids.with_columns(ts=pl.Series(ts, dtype=pl.Int64)).drop("dateTime")[order]


@pytest.fixture(scope="module")
def bids() -> pl.DataFrame:
    df = out_of_order_bids(200_000)
    # the data really is out of order, and by less than the watermark delay below
    running_max = np.maximum.accumulate(df["ts"].to_numpy())
    disorder = int((running_max - df["ts"].to_numpy()).max())
    assert 1_000 < disorder < 3_000
    return df


def duck(df: pl.DataFrame, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.register("bids", df.to_arrow())
    return sorted(con.execute(sql).fetchall())


def run_tidal(df: pl.DataFrame, build: Any, cols: list[str], **run_kwargs: Any) -> list[tuple]:
    flow = td.Flow("nexmark")
    bids = flow.source(td.sources.memory(df, partitions=run_kwargs.pop("partitions", 1)),
                       timestamp="ts", watermark=td.bounded_delay("3s"))
    out = td.sinks.memory()
    build(bids).sink(out)
    metrics = flow.run(quiet=True, **run_kwargs)
    assert metrics.late == 0 and metrics.dead_letters == 0
    return sorted(out.frame().select(cols).rows())


def w1(bids: td.Stream) -> td.Stream:
    return bids.filter(pl.col("auction") % 123 == 0)


def w2(bids: td.Stream) -> td.Stream:
    return bids.key_by("auction").window(td.tumbling("10s")).agg(
        n=td.agg.count(), top=td.agg.max("price"))


def w3(bids: td.Stream) -> td.Stream:
    return bids.key_by("auction").window(td.sliding("10s", every="2s")).agg(n=td.agg.count())


W1_SQL = "SELECT auction, bidder, price, ts FROM bids WHERE auction % 123 = 0"
W2_SQL = """
    SELECT auction, ts - ts % 10000 AS window_start, ts - ts % 10000 + 10000 AS window_end,
           count(*) AS n, max(price) AS top
    FROM bids GROUP BY ALL
"""
W3_SQL = """
    SELECT auction, ts - ts % 2000 - k * 2000 AS window_start,
           ts - ts % 2000 - k * 2000 + 10000 AS window_end, count(*) AS n
    FROM bids, range(5) AS r(k)
    GROUP BY ALL
"""
W2_COLS = ["auction", "window_start", "window_end", "n", "top"]
W3_COLS = ["auction", "window_start", "window_end", "n"]


def test_w1_filter_matches_duckdb(bids):
    want = duck(bids, W1_SQL)
    got = run_tidal(bids, w1, ["auction", "bidder", "price", "ts"], max_batch_rows=10_000)
    assert len(want) > 100
    assert got == want


def test_w2_tumbling_count_and_max_matches_duckdb(bids):
    want = duck(bids, W2_SQL)
    got = run_tidal(bids, w2, W2_COLS, max_batch_rows=10_000)
    assert len(want) > 1_000
    assert got == want


def test_w3_sliding_count_matches_duckdb(bids):
    want = duck(bids, W3_SQL)
    got = run_tidal(bids, w3, W3_COLS, max_batch_rows=10_000)
    assert len(want) > 5_000
    assert got == want


@pytest.mark.parametrize("max_batch_rows", [1_000, 100_000])
def test_w2_batch_size_does_not_change_results(bids, max_batch_rows):
    want = duck(bids, W2_SQL)
    assert run_tidal(bids, w2, W2_COLS, max_batch_rows=max_batch_rows) == want


def test_w2_one_row_batches_give_the_same_results():
    small = out_of_order_bids(3_000, seed=5)
    want = duck(small, W2_SQL)
    for batch in (1, 1_000, 100_000):
        assert run_tidal(small, w2, W2_COLS, max_batch_rows=batch) == want, batch


def test_w3_over_several_partitions_matches_duckdb(bids):
    want = duck(bids, W3_SQL)
    got = run_tidal(bids, w3, W3_COLS, max_batch_rows=5_000, partitions=4)
    assert got == want
