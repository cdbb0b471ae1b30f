"""Operators as users see them: stateless transforms, keyed windows and aggregates, keyed
state, lateness, early results and the final flush, checked against Polars/Python."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

import tidal as td
from tidal.runtime.clock import ManualClock


@pytest.fixture(autouse=True)
def _tidal_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDAL_HOME", str(tmp_path / ".tidal"))


def run(flow: td.Flow, stream: td.Stream, **kwargs: Any) -> list[dict[str, Any]]:
    out = td.sinks.memory()
    stream.sink(out)
    flow.run(quiet=True, **kwargs)
    return out.rows


def source(rows: Any, name: str = "ops", **kwargs: Any) -> tuple[td.Flow, td.Stream]:
    flow = td.Flow(name)
    return flow, flow.source(td.sources.memory(rows), **kwargs)


ROWS = [
    {"user": "ann", "price": 5, "qty": 2},
    {"user": "bob", "price": 50, "qty": 1},
    {"user": "ann", "price": 500, "qty": 3},
]


# -- stateless, vectorized -------------------------------------------------------------------
def test_select_with_expressions_names_and_keywords():
    flow, s = source(ROWS)
    out = s.select("user", pl.col("price") * pl.col("qty"), total=pl.col("price") + 1)
    assert out.schema is not None and list(out.schema) == ["user", "price", "total"]
    assert run(flow, out) == [
        {"user": "ann", "price": 10, "total": 6},
        {"user": "bob", "price": 50, "total": 51},
        {"user": "ann", "price": 1500, "total": 501},
    ]


def test_with_columns_adds_and_replaces():
    flow, s = source(ROWS)
    out = s.with_columns(pl.col("price") * 2, big=pl.col("price") > 40)
    assert run(flow, out) == [
        {"user": "ann", "price": 10, "qty": 2, "big": False},
        {"user": "bob", "price": 100, "qty": 1, "big": True},
        {"user": "ann", "price": 1000, "qty": 3, "big": True},
    ]


def test_filter_with_expression():
    flow, s = source(ROWS)
    assert run(flow, s.filter(pl.col("price") > 10)) == ROWS[1:]


def test_filter_with_python_function():
    flow, s = source(ROWS)
    assert run(flow, s.filter(lambda r: r["user"] == "ann")) == [ROWS[0], ROWS[2]]


def test_filter_expression_over_many_batches_keeps_order():
    rows = [{"i": i} for i in range(1000)]
    flow, s = source(rows)
    got = run(flow, s.filter(pl.col("i") % 7 == 0), max_batch_rows=33)
    assert [r["i"] for r in got] == list(range(0, 1000, 7))


# -- per-record and per-batch Python -----------------------------------------------------------
def test_map_transforms_each_record():
    flow, s = source(ROWS)
    out = s.map(lambda r: {"who": r["user"].upper(), "value": r["price"] * r["qty"]})
    assert run(flow, out) == [
        {"who": "ANN", "value": 10}, {"who": "BOB", "value": 50}, {"who": "ANN", "value": 1500},
    ]


def test_flat_map_gives_zero_or_more_records():
    flow, s = source([{"line": "a b"}, {"line": ""}, {"line": "c"}])
    out = s.flat_map(lambda r: [{"word": w} for w in r["line"].split()])
    assert run(flow, out) == [{"word": "a"}, {"word": "b"}, {"word": "c"}]


def test_map_batches_gets_whole_frames():
    sizes: list[int] = []

    def add_rank(df: pl.DataFrame) -> pl.DataFrame:
        sizes.append(df.height)
        return df.with_columns(rank=pl.col("price").rank("ordinal").cast(pl.Int64))

    flow, s = source(ROWS)
    got = run(flow, s.map_batches(add_rank))
    assert sizes == [3]
    assert [r["rank"] for r in got] == [1, 2, 3]


def test_map_keeps_event_time_for_downstream_windows():
    flow, s = source([{"k": "a", "t": 1_000}, {"k": "a", "t": 12_000}], timestamp="t")
    mapped = s.map(lambda r: {**r, "k": r["k"] * 2})
    got = run(flow, mapped.key_by("k").window(td.tumbling("10s")).agg(n=td.agg.count()))
    assert sorted((r["k"], r["window_start"], r["n"]) for r in got) == [
        ("aa", 0, 1), ("aa", 10_000, 1),
    ]


def test_union_merges_streams():
    flow = td.Flow("union")
    a = flow.source(td.sources.memory([{"k": "x", "t": 1_000}, {"k": "x", "t": 15_000}]),
                    timestamp="t", name="a")
    b = flow.source(td.sources.memory([{"k": "x", "t": 2_000}, {"k": "y", "t": 3_000}]),
                    timestamp="t", name="b")
    both = a.union(b)
    got = run(flow, both.key_by("k").window(td.tumbling("10s")).agg(n=td.agg.count()),
              max_batch_rows=1)
    assert sorted((r["k"], r["window_start"], r["n"]) for r in got) == [
        ("x", 0, 2), ("x", 10_000, 1), ("y", 0, 1),
    ]


def test_union_of_different_columns_is_rejected():
    flow = td.Flow("union-bad")
    a = flow.source(td.sources.memory([{"x": 1}]), name="a")
    b = flow.source(td.sources.memory([{"y": 1}]), name="b")
    with pytest.raises(td.errors.PlanError, match="different columns"):
        a.union(b)


# -- windows checked against a batch computation ---------------------------------------------
AGGS = dict(
    n=td.agg.count(), total=td.agg.sum("v"), lo=td.agg.min("v"), hi=td.agg.max("v"),
    avg=td.agg.mean("v"), first=td.agg.first("v"), last=td.agg.last("v"),
    kinds=td.agg.count_distinct("c"),
)


def events(n: int = 3000, seed: int = 7) -> pl.DataFrame:
    """Events with unique timestamps (so first/last are defined), delivered out of order by
    less than 300 ms."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.choice(np.arange(0, 120_000, 20), size=n, replace=False))
    order = np.lexsort((rng.random(n), t // 300))  # shuffled within 300 ms buckets
    return pl.DataFrame({
        "k": rng.choice(["a", "b", "c", "d"], size=n)[order],
        "t": t[order],
        "v": rng.integers(-50, 1000, size=n)[order],
        "c": rng.choice(["x", "y", "z", "w", "q"], size=n)[order],
    })


def expected_aggs(groups: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return groups.group_by(keys).agg(
        n=pl.len().cast(pl.Int64), total=pl.col("v").sum(), lo=pl.col("v").min(),
        hi=pl.col("v").max(), avg=pl.col("v").mean(),
        first=pl.col("v").sort_by("t").first(), last=pl.col("v").sort_by("t").last(),
        kinds=pl.col("c").n_unique().cast(pl.Int64),
    )


def assert_same(got: list[dict[str, Any]], want: pl.DataFrame, keys: list[str]) -> None:
    cols = [*keys, "n", "total", "lo", "hi", "first", "last", "kinds"]
    got_df = pl.DataFrame(got).sort(keys)
    want = want.sort(keys)
    assert got_df.height == want.height
    assert got_df.select(cols).rows() == want.select(cols).rows()
    assert got_df["avg"].to_list() == pytest.approx(want["avg"].to_list())


def windowed(spec: Any, df: pl.DataFrame, **run_kwargs: Any) -> list[dict[str, Any]]:
    flow, s = source(df, timestamp="t", watermark=td.bounded_delay("500ms"))
    return run(flow, s.key_by("k").window(spec).agg(**AGGS), **run_kwargs)


@pytest.mark.parametrize("batch", [1_000_000, 97])
def test_tumbling_window_every_aggregate(batch):
    df = events()
    got = windowed(td.tumbling("10s"), df, max_batch_rows=batch)
    want = expected_aggs(
        df.with_columns(window_start=pl.col("t") - pl.col("t") % 10_000), ["k", "window_start"]
    ).with_columns(window_end=pl.col("window_start") + 10_000)
    assert all(r["window_end"] - r["window_start"] == 10_000 for r in got)
    assert_same(got, want, ["k", "window_start", "window_end"])


@pytest.mark.parametrize("size,every", [(10_000, 2_000), (10_000, 3_000), (5_000, 5_000)])
def test_sliding_window_every_aggregate(size, every):
    df = events()
    got = windowed(td.sliding(size, every=every), df, max_batch_rows=97)
    starts = [
        [s for s in range(t - t % every, t - size, -every) if s > t - size] for t in df["t"].to_list()
    ]
    exploded = df.with_columns(window_start=pl.Series(starts, dtype=pl.List(pl.Int64)))
    want = expected_aggs(exploded.explode("window_start"), ["k", "window_start"]).with_columns(
        window_end=pl.col("window_start") + size
    )
    assert_same(got, want, ["k", "window_start", "window_end"])


def test_session_window_every_aggregate():
    df = events(n=600)
    # spread events so that both gaps and merges happen
    df = df.with_columns(t=pl.col("t") * 7)
    gap = 1_500
    flow, s = source(df, timestamp="t", watermark=td.bounded_delay("3s"))
    got = run(flow, s.key_by("k").window(td.session(gap)).agg(**AGGS), max_batch_rows=50)
    sessions = []
    for _, part in df.sort("t").group_by(["k"]):
        ts = part["t"].to_list()
        sid, ids = 0, []
        for i, t in enumerate(ts):
            if i and t - ts[i - 1] > gap:
                sid += 1
            ids.append(sid)
        sessions.append(part.with_columns(sid=pl.Series(ids)))
    labelled = pl.concat(sessions)
    want = expected_aggs(labelled, ["k", "sid"]).join(
        labelled.group_by(["k", "sid"]).agg(
            window_start=pl.col("t").min(), window_end=pl.col("t").max() + gap), on=["k", "sid"]
    )
    assert len(got) > 20  # the data really has gaps
    assert_same(got, want, ["k", "window_start", "window_end"])


def test_session_window_across_batches():
    rows = [{"k": "a", "t": 1_000}, {"k": "a", "t": 2_000}, {"k": "b", "t": 2_500},
            {"k": "a", "t": 10_000}]
    flow, s = source(rows, timestamp="t", watermark=td.bounded_delay("1s"))
    got = run(flow, s.key_by("k").window(td.session("5s")).agg(n=td.agg.count()),
              max_batch_rows=1)
    assert sorted((r["k"], r["window_start"], r["window_end"], r["n"]) for r in got) == [
        ("a", 1_000, 7_000, 2), ("a", 10_000, 15_000, 1), ("b", 2_500, 7_500, 1),
    ]


def test_session_windows_merge_when_a_bridging_event_arrives():
    rows = [{"k": "a", "t": 1_000}, {"k": "a", "t": 9_000}, {"k": "a", "t": 5_000}]
    flow, s = source(rows, timestamp="t", watermark=td.bounded_delay("10s"))
    got = run(flow, s.key_by("k").window(td.session("4s")).agg(n=td.agg.count()),
              max_batch_rows=1)
    assert [(r["window_start"], r["window_end"], r["n"]) for r in got] == [(1_000, 13_000, 3)]


def test_multi_column_keys_and_global_key():
    rows = [{"a": 1, "b": "x", "t": 0}, {"a": 1, "b": "y", "t": 1}, {"a": 1, "b": "x", "t": 2}]
    flow, s = source(rows, timestamp="t")
    got = run(flow, s.key_by("a", "b").window(td.tumbling("1s")).agg(n=td.agg.count()))
    assert sorted((r["a"], r["b"], r["n"]) for r in got) == [(1, "x", 2), (1, "y", 1)]
    flow, s = source(rows, timestamp="t")
    got = run(flow, s.key_by().window(td.tumbling("1s")).agg(n=td.agg.count()))
    assert got == [{"window_start": 0, "window_end": 1_000, "n": 3}]


def test_windows_on_a_datetime_column_give_datetime_bounds():
    rows = [
        {"k": "a", "ts": datetime(2024, 3, 1, 12, 0, 1)},
        {"k": "a", "ts": datetime(2024, 3, 1, 12, 0, 9)},
        {"k": "a", "ts": datetime(2024, 3, 1, 12, 0, 11)},
    ]
    flow, s = source(rows, timestamp="ts")
    out = s.key_by("k").window(td.tumbling("10s")).agg(n=td.agg.count())
    assert isinstance(out.schema["window_start"], pl.Datetime)
    got = sorted(run(flow, out), key=lambda r: r["window_start"])
    assert got == [
        {"k": "a", "window_start": datetime(2024, 3, 1, 12, 0, 0),
         "window_end": datetime(2024, 3, 1, 12, 0, 10), "n": 2},
        {"k": "a", "window_start": datetime(2024, 3, 1, 12, 0, 10),
         "window_end": datetime(2024, 3, 1, 12, 0, 20), "n": 1},
    ]


def test_windows_fire_when_the_watermark_passes_not_at_the_end():
    rows = [{"k": "a", "t": t} for t in (1_000, 5_000, 12_000, 25_000, 31_000, 45_000)]
    flow, s = source(rows, timestamp="t")
    out = td.sinks.memory()
    s.key_by("k").window(td.tumbling("10s")).agg(n=td.agg.count()).sink(out)
    ex = flow.executor(max_batch_rows=1, dead_letter_path=False)
    ex.open()
    ex.step()
    ex.step()
    assert out.rows == [], "watermark 5 s: no window has ended"
    ex.step()  # t=12 s: the watermark passes the end of [0 s, 10 s)
    assert [(r["window_start"], r["n"]) for r in out.rows] == [(0, 2)]
    ex.step()  # t=25 s closes [10 s, 20 s)
    ex.step()  # t=31 s closes [20 s, 30 s)
    assert [(r["window_start"], r["n"]) for r in out.rows] == [(0, 2), (10_000, 1), (20_000, 1)]
    ex.step()  # t=45 s closes [30 s, 40 s); the input ends: the final watermark closes the rest
    assert sorted((r["window_start"], r["n"]) for r in out.rows[3:]) == [(30_000, 1), (40_000, 1)]


def test_window_fires_exactly_when_watermark_reaches_its_end():
    rows = [{"k": "a", "t": 1_000}, {"k": "a", "t": 9_999}, {"k": "a", "t": 10_000},
            {"k": "a", "t": 10_001}]
    flow, s = source(rows, timestamp="t")
    out = td.sinks.memory()
    s.key_by("k").window(td.tumbling("10s")).agg(n=td.agg.count()).sink(out)
    ex = flow.executor(max_batch_rows=1, dead_letter_path=False)
    ex.open()
    ex.step()
    ex.step()
    assert out.rows == []
    ex.step()  # watermark 10 000 = end of [0, 10 000): half-open, so it fires now
    assert out.rows == [{"k": "a", "window_start": 0, "window_end": 10_000, "n": 2}]
    ex.finish()


def test_final_watermark_flushes_every_open_window():
    rows = [{"k": k, "t": t} for k, t in [("a", 1_000), ("b", 14_000), ("a", 25_000)]]
    flow, s = source(rows, timestamp="t", watermark=td.bounded_delay("1h"))
    out = td.sinks.memory()
    s.key_by("k").window(td.tumbling("10s")).agg(n=td.agg.count()).sink(out)
    sess = td.sinks.memory()
    s.key_by("k").window(td.session("1m")).agg(n=td.agg.count()).sink(sess)
    ex = flow.executor(max_batch_rows=1, dead_letter_path=False)
    ex.open()
    ex.step()
    ex.step()
    assert out.rows == [] and sess.rows == []  # the 1 h delay holds every window open
    ex.run()  # the input is exhausted: the final watermark fires everything
    assert sorted((r["k"], r["window_start"]) for r in out.rows) == [
        ("a", 0), ("a", 20_000), ("b", 10_000),
    ]
    assert sorted((r["k"], r["n"]) for r in sess.rows) == [("a", 2), ("b", 1)]


# -- lateness, early results, late side output -----------------------------------------------
def test_allowed_lateness_corrects_window_and_later_events_go_to_late():
    rows = [
        {"k": "a", "t": 1_000, "v": 1},
        {"k": "a", "t": 12_000, "v": 10},  # watermark 12 s: [0, 10) fires with total 1
        {"k": "a", "t": 3_000, "v": 2},    # late but within 5 s of lateness: corrected to 3
        {"k": "a", "t": 16_000, "v": 20},  # watermark 16 s: [0, 10) is gone for good
        {"k": "a", "t": 4_000, "v": 4},    # too late: side output
    ]
    flow, s = source(rows, timestamp="t")
    windows = s.key_by("k").window(td.tumbling("10s"), allowed_lateness="5s").agg(
        total=td.agg.sum("v"), n=td.agg.count())
    late = td.sinks.memory()
    windows.late().sink(late)
    got = run(flow, windows, max_batch_rows=1)
    assert [(r["window_start"], r["total"], r["n"]) for r in got] == [
        (0, 1, 1), (0, 3, 2), (10_000, 30, 2),
    ]
    assert late.rows == [{"k": "a", "t": 4_000, "v": 4}]
    assert flow.last_run is not None and flow.last_run.metrics.late == 1


def test_late_events_without_lateness_go_to_late_output_not_the_window():
    rows = [{"k": "a", "t": 1_000}, {"k": "a", "t": 20_000}, {"k": "a", "t": 2_000},
            {"k": "b", "t": 9_000}]
    flow, s = source(rows, timestamp="t", watermark=td.bounded_delay("1s"))
    windows = s.key_by("k").window(td.tumbling("10s")).agg(n=td.agg.count())
    late = td.sinks.memory()
    windows.late().sink(late)
    got = run(flow, windows, max_batch_rows=1)
    assert sorted((r["k"], r["window_start"], r["n"]) for r in got) == [
        ("a", 0, 1), ("a", 20_000, 1),
    ]
    assert late.rows == [{"k": "a", "t": 2_000}, {"k": "b", "t": 9_000}]


def test_late_event_for_sliding_and_session_windows():
    rows = [{"k": "a", "t": 30_000}, {"k": "a", "t": 1_000}]
    for spec in (td.sliding("10s", every="5s"), td.session("5s")):
        flow, s = source(rows, timestamp="t")
        w = s.key_by("k").window(spec).agg(n=td.agg.count())
        late = td.sinks.memory()
        w.late().sink(late)
        got = run(flow, w, max_batch_rows=1)
        assert late.rows == [{"k": "a", "t": 1_000}], spec
        assert all(r["window_end"] > 30_000 for r in got), spec


def test_late_on_a_non_window_step_is_rejected():
    flow, s = source(ROWS)
    with pytest.raises(td.errors.PlanError, match="drops no late events"):
        s.select("user").late()


def test_emit_early_sends_updating_results_every_interval():
    rows = [{"k": "a", "t": 1_000}, {"k": "a", "t": 2_000}, {"k": "b", "t": 3_000},
            {"k": "a", "t": 4_000}, {"k": "c", "t": 5_000}]
    flow, s = source(rows, timestamp="t", watermark=td.bounded_delay("1m"))
    out = td.sinks.memory()
    s.key_by("k").window(td.tumbling("10s"), emit="early", every="1s").agg(
        n=td.agg.count()).sink(out)
    clock = ManualClock(0)
    ex = flow.executor(clock=clock, max_batch_rows=1, dead_letter_path=False)
    ex.open()
    ex.step()
    ex.step()
    assert out.rows == []  # no interval has passed yet
    clock.advance(1_000)
    ex.step()  # reads b, then the 1 s timer fires: both open windows, as they are now
    assert sorted((r["k"], r["n"]) for r in out.rows) == [("a", 2), ("b", 1)]
    clock.advance(1_000)
    ex.step()  # reads a@4s; timer: only the changed window is re-emitted
    assert [(r["k"], r["n"]) for r in out.rows[2:]] == [("a", 3)]
    clock.advance(1_000)
    ex.step()  # reads the last row: the input ends and every window emits its final result
    assert sorted((r["k"], r["n"]) for r in out.rows[3:]) == [("a", 3), ("b", 1), ("c", 1)]
    ex.finish()
    assert len(out.rows) == 6


def test_emit_early_needs_an_interval():
    flow, s = source([{"k": 1, "t": 0}], timestamp="t")
    with pytest.raises(td.errors.ConfigError, match="every="):
        s.key_by("k").window(td.tumbling("10s"), emit="early")


# -- running keyed aggregates -----------------------------------------------------------------
def test_running_agg_emits_the_new_value_of_each_changed_key():
    rows = [{"card": c, "amount": a, "t": i} for i, (c, a) in
            enumerate([("x", 5), ("y", 1), ("x", 7), ("x", 1), ("y", 2)])]
    flow, s = source(rows, timestamp="t")
    got = run(flow, s.key_by("card").agg(spent=td.agg.sum("amount"), n=td.agg.count(),
                                         top=td.agg.max("amount")), max_batch_rows=1)
    assert got == [
        {"card": "x", "spent": 5, "n": 1, "top": 5},
        {"card": "y", "spent": 1, "n": 1, "top": 1},
        {"card": "x", "spent": 12, "n": 2, "top": 7},
        {"card": "x", "spent": 13, "n": 3, "top": 7},
        {"card": "y", "spent": 3, "n": 2, "top": 2},
    ]


def test_running_agg_emits_one_row_per_changed_key_per_batch():
    rows = [{"k": k, "v": 1, "t": 0} for k in "aabac"]
    flow, s = source(rows, timestamp="t")
    got = run(flow, s.key_by("k").agg(n=td.agg.count()))
    assert sorted((r["k"], r["n"]) for r in got) == [("a", 3), ("b", 1), ("c", 1)]


def test_running_agg_matches_polars_over_many_batches():
    df = events(n=2000)
    flow, s = source(df, timestamp="t", watermark=td.bounded_delay("1s"))
    got = run(flow, s.key_by("k").agg(**AGGS), max_batch_rows=64)
    final: dict[str, dict[str, Any]] = {}
    for r in got:
        final[r["k"]] = r
    assert_same(list(final.values()), expected_aggs(df, ["k"]), ["k"])


def test_running_agg_ttl_forgets_idle_keys():
    rows = [{"k": "a", "t": 0}, {"k": "b", "t": 10_000}, {"k": "a", "t": 20_000},
            {"k": "b", "t": 22_000}]
    flow, s = source(rows, timestamp="t")
    with_ttl = s.key_by("k").agg(n=td.agg.count(), ttl="5s")
    without = s.key_by("k").agg(n=td.agg.count())
    kept = td.sinks.memory()
    without.sink(kept)
    got = run(flow, with_ttl, max_batch_rows=1)
    # a was idle 20 s > 5 s and starts again; so does b (idle 12 s)
    assert [(r["k"], r["n"]) for r in got] == [("a", 1), ("b", 1), ("a", 1), ("b", 1)]
    assert [(r["k"], r["n"]) for r in kept.rows] == [("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_running_agg_ttl_keeps_active_keys():
    rows = [{"k": "a", "t": t} for t in range(0, 30_000, 1_000)]
    flow, s = source(rows, timestamp="t")
    got = run(flow, s.key_by("k").agg(n=td.agg.count(), ttl="5s"), max_batch_rows=1)
    assert [r["n"] for r in got] == list(range(1, 31))


# -- reduce -----------------------------------------------------------------------------------
def test_running_reduce_folds_each_key():
    rows = [{"k": "a", "v": 1}, {"k": "b", "v": 10}, {"k": "a", "v": 2}, {"k": "a", "v": 3}]
    flow, s = source(rows)
    got = run(flow, s.key_by("k").reduce(lambda acc, r: {"k": r["k"], "v": acc["v"] + r["v"]}),
              max_batch_rows=1)
    assert [(r["k"], r["v"]) for r in got] == [("a", 1), ("b", 10), ("a", 3), ("a", 6)]


@pytest.mark.parametrize("spec", [td.tumbling("10s"), td.sliding("10s", every="5s")])
def test_window_reduce_matches_window_sum(spec):
    df = events(n=800).select("k", "t", "v")
    flow, s = source(df, timestamp="t", watermark=td.bounded_delay("500ms"))
    keyed = s.key_by("k")
    reduced = keyed.window(spec).reduce(lambda acc, r: {**r, "v": acc["v"] + r["v"]})
    summed = td.sinks.memory()
    keyed.window(spec).agg(v=td.agg.sum("v")).sink(summed)
    got = run(flow, reduced, max_batch_rows=50)
    as_set = sorted((r["k"], r["window_start"], r["window_end"], r["v"]) for r in got)
    want = sorted((r["k"], r["window_start"], r["window_end"], r["v"]) for r in summed.rows)
    assert as_set == want and len(want) > 20


def test_window_reduce_on_session_is_rejected():
    flow, s = source([{"k": 1, "t": 0}], timestamp="t")
    with pytest.raises(td.errors.PlanError, match="tumbling and sliding"):
        s.key_by("k").window(td.session("1s")).reduce(lambda a, b: a)


# -- update_state -----------------------------------------------------------------------------
def test_update_state_keeps_state_per_key():
    calls: list[tuple[Any, int]] = []

    def count(key: tuple[Any, ...], rows: pl.DataFrame, state: td.KeyState) -> dict[str, Any]:
        calls.append((key, rows.height))
        total = state.get(0) + rows.height
        state.set(total)
        return {"seen": total}

    rows = [{"user": u, "t": i} for i, u in enumerate("aabab")]
    flow, s = source(rows, timestamp="t")
    got = run(flow, s.key_by("user").update_state(count), max_batch_rows=2)
    assert got == [{"user": "a", "seen": 2}, {"user": "b", "seen": 1}, {"user": "a", "seen": 3},
                   {"user": "b", "seen": 2}]
    assert calls == [(("a",), 2), (("b",), 1), (("a",), 1), (("b",), 1)]


def test_update_state_timeout_fires_with_timed_out():
    def track(key: tuple[Any, ...], rows: pl.DataFrame, state: td.KeyState) -> Any:
        if state.timed_out:
            assert rows.height == 0
            out = {"event": "expired", "total": state.get()}
            state.remove()
            return out
        state.set(state.get(0) + rows["v"].sum())
        return None

    rows = [{"k": "a", "v": 1, "t": 0}, {"k": "b", "v": 5, "t": 1_000},
            {"k": "a", "v": 2, "t": 2_000}, {"k": "c", "v": 100, "t": 15_000},
            {"k": "b", "v": 1, "t": 20_000}, {"k": "a", "v": 7, "t": 21_000}]
    flow, s = source(rows, timestamp="t")
    got = run(flow, s.key_by("k").update_state(track, timeout="10s"), max_batch_rows=1)
    # at watermark 15 s, a (last seen 2 s) and b (1 s) have been idle >= 10 s: they time out
    # with their totals; b and a then start over; the end of input expires every key
    assert sorted((r["k"], r["total"]) for r in got[:2]) == [("a", 3), ("b", 5)]
    assert sorted((r["k"], r["total"]) for r in got[2:]) == [("a", 7), ("b", 1), ("c", 100)]
    assert all(r["event"] == "expired" for r in got)


def test_update_state_may_return_list_or_frame():
    def explode(key: tuple[Any, ...], rows: pl.DataFrame, state: td.KeyState) -> Any:
        if key == ("a",):
            return [{"i": i} for i in range(rows.height)]
        return pl.DataFrame({"i": [100]})

    flow, s = source([{"k": "a"}, {"k": "a"}, {"k": "b"}])
    got = run(flow, s.key_by("k").update_state(explode))
    assert sorted((r["k"], r["i"]) for r in got) == [("a", 0), ("a", 1), ("b", 100)]


def test_processing_time_windows_count_everything():
    flow = td.Flow("proc")
    s = flow.source(td.sources.memory([{"k": "a"}] * 5), processing_time=True)
    got = run(flow, s.key_by("k").window(td.tumbling("1h")).agg(n=td.agg.count()))
    assert sum(r["n"] for r in got) == 5
    assert isinstance(got[0]["window_start"], datetime)


def test_mean_of_empty_window_column_is_null_safe():
    rows = [{"k": "a", "t": 0, "v": None}, {"k": "a", "t": 1, "v": 4.0}]
    flow, s = source(rows, timestamp="t")
    got = run(flow, s.key_by("k").window(td.tumbling("1s")).agg(
        avg=td.agg.mean("v"), n=td.agg.count("v"), rows=td.agg.count()))
    assert got[0]["avg"] == 4.0 and got[0]["n"] == 1 and got[0]["rows"] == 2
    assert not math.isnan(got[0]["avg"])


def test_count_distinct_matches_python_sets_across_batches():
    rng = np.random.default_rng(3)
    rows = [{"k": "a", "t": int(t), "u": int(u)} for t, u in
            zip(np.arange(500) * 10, rng.integers(0, 40, 500), strict=True)]
    flow, s = source(rows, timestamp="t")
    got = run(flow, s.key_by("k").window(td.tumbling("1s")).agg(u=td.agg.count_distinct("u")),
              max_batch_rows=7)
    want: dict[int, set[int]] = defaultdict(set)
    for r in rows:
        want[r["t"] - r["t"] % 1000].add(r["u"])
    assert {r["window_start"]: r["u"] for r in got} == {k: len(v) for k, v in want.items()}


def test_running_aggregate_with_one_global_key():
    flow = td.Flow("global")
    out = td.sinks.memory()
    s = flow.source(td.sources.memory([{"x": 1}, {"x": 2}, {"x": 4}]))
    s.key_by().agg(n=td.agg.count(), total=td.agg.sum("x")).sink(out)
    flow.run(quiet=True, max_batch_rows=2)
    assert out.rows == [{"n": 2, "total": 3}, {"n": 3, "total": 7}]


def test_late_side_output_of_dedupe_and_pattern_match():
    from tidal.testing import Harness

    h = Harness(timestamp="t", schema={"k": pl.String, "t": pl.Int64, "v": pl.Int64})
    deduped = h.stream.dedupe("k", within="10s")
    matched = h.stream.key_by("k").match(
        td.pattern("a", pl.col("v") == 1).followed_by("b", pl.col("v") == 2).within("1m"))
    late_dedupe, late_match = h.collect(deduped.late()), h.collect(matched.late())
    h.collect(deduped)
    h.collect(matched)
    h.add({"k": "x", "t": 5_000, "v": 1})
    h.advance_watermark(20_000)
    h.add({"k": "y", "t": 1_000, "v": 2})
    assert late_dedupe.take() == [{"k": "y", "t": 1_000, "v": 2}]
    assert late_match.take() == [{"k": "y", "t": 1_000, "v": 2}]
    with pytest.raises(td.errors.PlanError, match="drops no late events"):
        h.stream.select("k").late()
