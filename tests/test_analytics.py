"""top_k, dedupe and the new aggregates against Polars (sketches within their error bounds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

import tidal as td
from test_joins import run_markdown
from tidal.errors import ConfigError
from tidal.testing import Harness

rng = np.random.default_rng(7)
N = 4_000
EVENTS = pl.DataFrame({
    "k": rng.integers(0, 5, N),
    "t": np.sort(rng.choice(N * 30, N, replace=False)),
    "price": rng.permutation(N).astype(np.float64),  # distinct: no ties
    "user": rng.integers(0, 1_500, N),
})


def run(build, frame: pl.DataFrame = EVENTS, batch: int = 97) -> pl.DataFrame:
    flow = td.Flow("analytics")
    out = td.sinks.memory()
    build(flow.source(td.sources.memory(frame), timestamp="t")).sink(out)
    flow.run(quiet=True, max_batch_rows=batch)
    return out.frame()


def windows(frame: pl.DataFrame, size: int, every: int) -> pl.DataFrame:
    n = size // every
    last = pl.col("t") - pl.col("t") % every
    return (frame.with_columns(pl.int_ranges(last - (n - 1) * every, last + 1, every).alias("window_start"))
            .explode("window_start").filter(pl.col("window_start") > pl.col("t") - size)
            .with_columns(window_end=pl.col("window_start") + size))


@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize(("size", "every"), [(10_000, 10_000), (10_000, 2_500)])
def test_top_k_per_window_equals_polars(descending: bool, size: int, every: int) -> None:
    spec = td.tumbling(size) if size == every else td.sliding(size, every=every)
    got = run(lambda s: s.key_by("k").window(spec, name="top").top_k(3, by="price", descending=descending))
    assert got.columns == ["k", "window_start", "window_end", "rank", "t", "price", "user"]
    want = (windows(EVENTS, size, every).sort("price", descending=descending)
            .group_by("k", "window_start", maintain_order=True).head(3)
            .with_columns(rank=pl.int_range(pl.len()).over("k", "window_start").cast(pl.Int64) + 1)
            .select(got.columns))
    key = ["k", "window_start", "rank"]
    assert got.sort(key).equals(want.sort(key))


def test_top_k_of_window_aggregates_gives_the_top_keys_per_window() -> None:
    got = run(lambda s: s.key_by("user").window(td.tumbling("20s")).agg(spent=td.agg.sum("price"))
              .key_by().window(td.tumbling("20s"), name="top_users").top_k(2, by="spent"))
    want = (EVENTS.group_by("user", (pl.col("t") // 20_000 * 20_000).alias("window_start"))
            .agg(spent=pl.col("price").sum()).sort("spent", descending=True)
            .group_by("window_start", maintain_order=True).head(2).sort("window_start", "spent"))
    assert got.sort("window_start", "spent").select("window_start", "user", "spent").equals(
        want.select("window_start", "user", "spent"))


def greedy_dedupe(frame: pl.DataFrame, within: int) -> pl.DataFrame:
    last: dict[int, int] = {}
    keep = []
    for k, t in frame.select("user", "t").iter_rows():
        if k not in last or abs(t - last[k]) >= within:
            last[k] = max(t, last.get(k, t))
            keep.append(True)
        else:
            keep.append(False)
    return frame.filter(pl.Series(keep))


@pytest.mark.parametrize("batch", [1, 50, 1_000, 10_000])
def test_dedupe_keeps_the_first_row_per_key_within_the_horizon(batch: int) -> None:
    got = run(lambda s: s.dedupe("user", within="20s", name="dd"), batch=batch)
    want = greedy_dedupe(EVENTS, 20_000)
    assert 200 < want.height < N
    assert got.sort("t").equals(want)


def test_dedupe_sends_rows_behind_the_watermark_to_late() -> None:
    h = Harness(timestamp="t")
    out = h.collect(h.stream.dedupe("id", within="1m", name="dd"))
    h.add({"id": 1, "t": 10_000}, {"id": 1, "t": 20_000}, {"id": 2, "t": 20_000})
    assert [r["t"] for r in out.take()] == [10_000, 20_000]
    h.advance_watermark(70_001)  # id 1's horizon ended: state gone
    h.add({"id": 1, "t": 70_001}, {"id": 2, "t": 75_000}, {"id": 1, "t": 5_000})
    assert [(r["id"], r["t"]) for r in out.take()] == [(1, 70_001)]
    assert h.late_count == 1


@pytest.mark.parametrize("q", [0.0, 0.5, 0.9, 0.99, 1.0])
def test_percentile_in_windows_and_running_aggregates_equals_polars(q: float) -> None:
    got = run(lambda s: s.key_by("k").window(td.tumbling("30s")).agg(p=td.agg.percentile("user", q)))
    want = (EVENTS.group_by("k", (pl.col("t") // 30_000 * 30_000).alias("window_start"))
            .agg(p=pl.col("user").quantile(q, interpolation="linear")))
    assert got.schema["p"] == pl.Float64
    assert got.select("k", "window_start", "p").sort("k", "window_start").equals(
        want.sort("k", "window_start"))
    running = run(lambda s: s.key_by("k").agg(p=td.agg.percentile("user", q, "nearest")), batch=1_000)
    final = running.group_by("k").agg(pl.col("p").last()).sort("k")
    assert final.equals(EVENTS.group_by("k").agg(
        p=pl.col("user").quantile(q, interpolation="nearest").cast(pl.Float64)).sort("k"))


def test_approx_count_distinct_is_within_the_sketch_error() -> None:
    big = pl.DataFrame({"k": np.arange(200_000) % 2, "t": np.arange(200_000) // 10,
                        "user": rng.integers(0, 60_000, 200_000)})
    got = run(lambda s: s.key_by("k").window(td.tumbling("10s"))
              .agg(d=td.agg.approx_count_distinct("user"), exact=td.agg.count_distinct("user")),
              frame=big, batch=7_000)
    assert got.schema["d"] == pl.Int64 and got.height == 4
    rse = 1.04 / np.sqrt(2**12)
    for d, exact in got.select("d", "exact").iter_rows():
        assert abs(d - exact) <= 3 * rse * exact, (d, exact)
    small = run(lambda s: s.key_by("g").agg(d=td.agg.approx_count_distinct("user", lg_k=10)),
                frame=EVENTS.head(40).with_columns(g=0), batch=7)
    assert abs(small["d"][-1] - EVENTS.head(40)["user"].n_unique()) <= 1  # linear counting


def test_approx_quantile_is_within_the_kll_rank_error() -> None:
    from datasketches import kll_doubles_sketch

    values = rng.lognormal(size=300_000)
    big = pl.DataFrame({"g": 0, "t": np.arange(300_000) // 10, "x": values})
    eps = kll_doubles_sketch.get_normalized_rank_error(200, False)
    for q in (0.1, 0.5, 0.99):
        got = run(lambda s, q=q: s.key_by("g").agg(v=td.agg.approx_quantile("x", q)), frame=big,
                  batch=25_000)
        estimate = got["v"][-1]
        rank = float(np.mean(values <= estimate))
        assert abs(rank - q) <= eps, (q, rank, eps)


def test_aggregate_options_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"q must be a number from 0 to 1"):
        td.agg.percentile("x", 99)
    with pytest.raises(ConfigError, match=r"lg_k must be an integer 4..21"):
        td.agg.approx_count_distinct("x", lg_k=30)
    with pytest.raises(ConfigError, match=r"k must be a positive integer"):
        Harness(timestamp="t").stream.key_by("k").window(td.tumbling("1s")).top_k(0, by="x")


def test_docs_snippets_run_and_print_what_the_page_shows(tmp_path: Path, monkeypatch) -> None:
    run_markdown(Path(__file__).parent.parent / "docs" / "analytics.md", tmp_path, monkeypatch)
