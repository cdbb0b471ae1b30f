"""Cumulating windows (td.cumulate) in the Python API: every window of a start, checked
against DuckDB on out-of-order events; lateness, early results and checkpoints."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest

import tidal as td
from tidal.errors import ConfigError
from tidal.testing import Harness

SIZE, STEP, DELAY = 60_000, 10_000, 5_000
rng = np.random.default_rng(11)
N = 6_000
_t = np.sort(rng.integers(0, 400_000, N))
# out of order by up to DELAY: a bounded-delay watermark of DELAY drops nothing
EVENTS = pl.DataFrame({
    "k": rng.integers(0, 7, N),
    "t": np.maximum(_t - rng.integers(0, DELAY, N), 0),
    "v": rng.integers(-50, 1_000, N),
    "d": rng.integers(0, 30, N),
})


def reference(frame: pl.DataFrame, size: int, step: int) -> pl.DataFrame:
    """DuckDB: each event in every window [start, end) of its start with end > t."""
    con = duckdb.connect()
    con.register("ev", frame.to_arrow())
    return con.sql(f"""
        SELECT k, t // {size} * {size} AS window_start, e AS window_end, count(*) AS n,
               sum(v)::BIGINT AS total, max(v) AS top, count(DISTINCT d) AS digits
        FROM ev, LATERAL (SELECT unnest(range(t // {step} * {step} + {step},
                                               t // {size} * {size} + {size} + 1, {step})) AS e)
        GROUP BY ALL""").pl()


def run(build, frame: pl.DataFrame = EVENTS, batch: int = 211) -> pl.DataFrame:
    flow = td.Flow("cumulate")
    out = td.sinks.memory()
    src = flow.source(td.sources.memory(frame), timestamp="t", watermark=td.bounded_delay(DELAY))
    build(src).sink(out)
    flow.run(quiet=True, max_batch_rows=batch)
    return out.frame()


def aggs(s: td.Stream) -> td.Stream:
    return s.key_by("k").window(td.cumulate(SIZE, step=STEP)).agg(
        n=td.agg.count(), total=td.agg.sum("v"), top=td.agg.max("v"),
        digits=td.agg.count_distinct("d"))


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("k", "window_start", "window_end")


@pytest.mark.parametrize("batch", [1, 211, 10_000])
def test_every_cumulating_window_equals_duckdb_on_out_of_order_events(batch: int) -> None:
    frame = EVENTS if batch != 1 else EVENTS.head(600)
    got = run(aggs, frame, batch)
    want = reference(frame, SIZE, STEP).select(got.columns)
    assert got.columns == ["k", "window_start", "window_end", "n", "total", "top", "digits"]
    assert got.height == want.height  # each window once: final results only
    assert _sorted(got).equals(_sorted(want.cast(dict(got.schema))))  # type: ignore[arg-type]


def test_a_window_of_a_key_is_emitted_at_each_step_even_without_new_events() -> None:
    rows = [{"k": "a", "t": 1_000}, {"k": "a", "t": 25_000}, {"k": "b", "t": 41_000}]
    got = run(lambda s: s.key_by("k").window(td.cumulate("30s", step="10s"))
              .agg(n=td.agg.count()), pl.DataFrame(rows))
    assert sorted(got.iter_rows()) == [
        ("a", 0, 10_000, 1), ("a", 0, 20_000, 1), ("a", 0, 30_000, 2),
        ("b", 30_000, 50_000, 1), ("b", 30_000, 60_000, 1),
    ]


def test_windows_fire_with_the_watermark_and_late_events_correct_fired_windows() -> None:
    h = Harness(timestamp="t")
    out = h.collect(h.stream.key_by("k").window(td.cumulate("30s", step="10s"),
                                                allowed_lateness="30s").agg(n=td.agg.count()))
    h.add({"k": "a", "t": 12_000})
    h.advance_watermark(10_000)
    assert out.take() == []  # the key has nothing before 10 s
    h.advance_watermark(20_000)
    assert out.take() == [{"k": "a", "window_start": 0, "window_end": 20_000, "n": 1}]
    h.add({"k": "a", "t": 3_000})  # late for [0, 10s) and [0, 20s), within the lateness
    assert sorted((r["window_end"], r["n"]) for r in out.take()) == [(10_000, 1), (20_000, 2)]
    h.advance_watermark(30_000)
    assert out.take() == [{"k": "a", "window_start": 0, "window_end": 30_000, "n": 2}]
    h.advance_watermark(70_000)  # past the lateness: the state is gone, events are late
    h.add({"k": "a", "t": 29_000})
    assert out.take() == [] and h.late_count == 1


def test_early_results_show_the_open_windows_growing() -> None:
    h = Harness(timestamp="t")
    out = h.collect(h.stream.key_by("k").window(td.cumulate("20s", step="10s"), emit="early",
                                                every="1s").agg(n=td.agg.count()))
    h.add({"k": "a", "t": 1_000}, {"k": "a", "t": 15_000})
    h.advance_processing_time("1s")
    assert sorted((r["window_end"], r["n"]) for r in out.take()) == [(10_000, 1), (20_000, 2)]
    h.advance_watermark(10_000)
    assert [(r["window_end"], r["n"]) for r in out.take()] == [(10_000, 1)]
    h.add({"k": "a", "t": 16_000})
    h.advance_processing_time("1s")
    assert [(r["window_end"], r["n"]) for r in out.take()] == [(20_000, 3)]


def test_checkpoint_restore_resumes_the_panes() -> None:
    from tidal.operators.base import OperatorContext
    from tidal.operators.timeattr import TimeAttr
    from tidal.operators.window import CumulativeWindowAggregate

    def make(out: list[pl.DataFrame]) -> CumulativeWindowAggregate:
        op = CumulativeWindowAggregate("c", ["k"], TimeAttr("t"), td.cumulate(SIZE, step=STEP),
                                       {"n": td.agg.count(), "total": td.agg.sum("v")})
        op.open(OperatorContext("c", lambda b, port: out.append(b), lambda r, why: None,
                                lambda: 0, lambda n: None))
        return op

    whole: list[pl.DataFrame] = []
    resumed: list[pl.DataFrame] = []
    one, first = make(whole), make(resumed)
    halves = EVENTS.head(3_000), EVENTS.tail(3_000)
    for op in (one, first):
        op.on_batch(halves[0], 0)
        op.on_watermark(int(halves[0]["t"].max()) - DELAY)
    second = make(resumed)
    second.restore(first.snapshot())
    for op in (one, second):
        op.on_batch(halves[1], 0)
        op.on_watermark(2**62)
    assert _sorted(pl.concat(whole)).equals(_sorted(pl.concat(resumed)))
    want = reference(EVENTS, SIZE, STEP)
    assert pl.concat(whole).height == want.height


def test_bad_cumulate_specs_say_what_to_do() -> None:
    with pytest.raises(ConfigError, match="not a multiple of its step"):
        td.cumulate("1m", step="7s")
    with pytest.raises(ConfigError, match="longer than 0"):
        td.cumulate("1m", step=0)
    assert repr(td.cumulate("1d", step="1h")) == "cumulate(1d, step=1h)"


def _section_blocks(page: str, heading: str) -> list[tuple[str, str]]:
    """The ```python blocks (and the ```text after each) under ``heading`` of docs/``page``."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / page).read_text()
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```\n(?:\n```text\n(.*?)```)?", section, re.S)


@pytest.mark.parametrize(("page", "heading"), [("windows.md", "## Kinds"),
                                               ("sql.md", "## Window TVFs")])
def test_docs_examples_print_what_the_page_shows(page: str, heading: str, tmp_path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib
    import io

    monkeypatch.chdir(tmp_path)
    blocks = _section_blocks(page, heading)
    assert blocks
    for code, expected in blocks:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(code, page, "exec"), {"__name__": "__docs__"})
        assert buf.getvalue() == expected, code
