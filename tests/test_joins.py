"""Joins: interval, window, regular (TTL) and temporal joins against DuckDB's batch joins
over the same out-of-order events; left joins' unmatched rows; TTL eviction; reference
tables; checkpoint/restore; error messages; the runnable snippets of docs/joins.md."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

import tidal as td
from tidal.errors import ConfigError, PlanError
from tidal.testing import Harness

DELAY = 3_000


def events(seed: int, n: int, keys: int, cols: dict[str, str]) -> pl.DataFrame:
    """``n`` rows with distinct times 0..~n*50 ms, shuffled by up to DELAY ms (out of order
    but never late for a ``bounded_delay(DELAY)`` watermark)."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.choice(n * 50, n, replace=False))
    arrival = t + rng.integers(0, DELAY, n)
    frame = pl.DataFrame({"k": rng.integers(0, keys, n), "t": t, "arrival": arrival})
    for name, kind in cols.items():
        frame = frame.with_columns(
            pl.Series(name, rng.integers(0, 1000, n)) if kind == "int"
            else pl.Series(name, [f"{name}{i}" for i in range(n)]))
    return frame.sort("arrival").drop("arrival")


def run_join(build, a: pl.DataFrame, b: pl.DataFrame, batch: int = 37) -> tuple[pl.DataFrame, int]:
    flow = td.Flow("joins")
    left = flow.source(td.sources.memory(a), timestamp="t", watermark=td.bounded_delay(DELAY), name="a")
    right = flow.source(td.sources.memory(b), timestamp="t", watermark=td.bounded_delay(DELAY), name="b")
    out = td.sinks.memory()
    build(left, right).sink(out)
    metrics = flow.run(quiet=True, max_batch_rows=batch)
    return out.frame(), metrics.late


def same_rows(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got.columns == want.columns, (got.columns, want.columns)
    want = want.cast(got.schema)  # type: ignore[arg-type]
    assert got.sort(got.columns, nulls_last=True).equals(want.sort(want.columns, nulls_last=True))


A = events(1, 1_500, 40, {"v": "int"})
B = events(2, 1_500, 40, {"w": "str"})
Bt = B.rename({"t": "t_right"})


@pytest.mark.parametrize("how", ["inner", "left"])
@pytest.mark.parametrize(("within", "lo", "hi"), [
    (("-5s", "+0s"), -5_000, 0), (("-2s", "+3s"), -2_000, 3_000), (("+0s", "+4s"), 0, 4_000),
    ((-400, 700), -400, 700),  # integer milliseconds
])
def test_interval_join_equals_duckdb(how: str, within: tuple, lo: int, hi: int) -> None:
    got, late = run_join(lambda a, b: a.join(b, on="k", within=within, how=how, name="ij"), A, B)
    want = duckdb.sql(
        f"SELECT a.k, a.t, a.v, b.t_right, b.w FROM A a {how.upper()} JOIN Bt b "
        f"ON a.k = b.k AND b.t_right BETWEEN a.t + {lo} AND a.t + {hi}").pl()
    assert late == 0
    assert got.height > 100
    same_rows(got, want)


@pytest.mark.parametrize("how", ["inner", "left"])
@pytest.mark.parametrize("spec", [td.tumbling("10s"), td.sliding("10s", every="5s")])
def test_window_join_equals_duckdb(how: str, spec) -> None:
    got, late = run_join(lambda a, b: a.join(b, on="k", window=spec, how=how, name="wj"), A, B)
    size, every = spec.size_ms, spec.every_ms
    n = size // every

    def windows(table: str, t: str) -> str:
        return (f"SELECT *, unnest(generate_series({t} - {t} % {every} - {(n - 1) * every}, "
                f"{t} - {t} % {every}, {every})) AS ws FROM {table}")

    want = duckdb.sql(
        f"SELECT a.k, a.t, a.v, b.t_right, b.w, a.ws AS window_start, a.ws + {size} AS window_end "
        f"FROM ({windows('A', 't')}) a {how.upper()} JOIN ({windows('Bt', 't_right')}) b "
        f"ON a.k = b.k AND a.ws = b.ws WHERE a.ws > a.t - {size}").pl()
    assert late == 0
    same_rows(got, want)


@pytest.mark.parametrize("how", ["inner", "left"])
def test_temporal_join_equals_duckdb_asof(how: str) -> None:
    rates = events(3, 600, 10, {"rate": "int"})  # a changelog: the latest rate per key
    got, late = run_join(lambda a, r: a.lookup(r, on="k", how=how, name="tj"), A, rates)
    rt = rates.rename({"t": "t_right"})  # noqa: F841 - read by DuckDB by name
    want = duckdb.sql(
        f"SELECT a.k, a.t, a.v, r.t_right, r.rate FROM A a ASOF {'LEFT ' if how == 'left' else ''}"
        "JOIN rt r ON a.k = r.k AND a.t >= r.t_right").pl()
    assert late == 0
    same_rows(got, want)
    assert got["t"].is_sorted()  # probes leave in event-time order


def test_regular_join_with_a_long_ttl_is_the_full_join() -> None:
    got, _ = run_join(lambda a, b: a.join(b, on="k", ttl="1d", name="rj"), A, B, batch=200)
    want = duckdb.sql("SELECT a.k, a.t, a.v, b.t_right, b.w FROM A a JOIN Bt b ON a.k = b.k").pl()
    same_rows(got, want)


def sides(h: Harness) -> tuple[td.Stream, td.Stream]:
    """Two streams of one scripted input (so the test owns both sides' watermark)."""
    a = h.stream.filter(pl.col("side") == "a").select("k", "t", "v")
    b = h.stream.filter(pl.col("side") == "b").select("k", "t", "v")
    return a, b


def row(side: str, k: str, t: int, v: int = 0) -> dict:
    return {"side": side, "k": k, "t": t, "v": v}


def test_left_interval_join_emits_an_unmatched_row_once_the_watermark_passes_t_plus_upper() -> None:
    h = Harness(timestamp="t")
    a, b = sides(h)
    out = h.collect(a.join(b, on="k", within=("-1s", "+2s"), how="left", name="lj"))
    h.add(row("a", "x", 10_000, 1), row("a", "y", 10_000, 2))
    h.add(row("b", "x", 11_500, 3))
    assert out.take() == [{"k": "x", "t": 10_000, "v": 1, "t_right": 11_500, "v_right": 3}]
    h.advance_watermark(12_000)  # y could still meet a b row at 12 000
    assert out.take() == []
    h.advance_watermark(12_001)
    assert out.take() == [{"k": "y", "t": 10_000, "v": 2, "t_right": None, "v_right": None}]
    h.add(row("b", "x", 12_001, 4))  # x already matched: no null row for it, and 12 001 is too late for it
    h.finish()
    assert out.take() == []


def test_late_rows_are_counted_and_do_not_join() -> None:
    h = Harness(timestamp="t")
    a, b = sides(h)
    out = h.collect(a.join(b, on="k", within=("-5s", "+0s"), name="ij"))
    h.add(row("b", "x", 1_000))
    h.advance_watermark(5_000)
    h.add(row("a", "x", 4_000))  # behind the watermark
    assert h.late_count == 1 and out.take() == []


def join_op(h: Harness, name: str):
    return next(op for node, op in h.executor.ops.items() if node.name == name)


def test_regular_join_forgets_rows_after_their_ttl() -> None:
    h = Harness(timestamp="t")
    a, b = sides(h)
    out = h.collect(a.join(b, on="k", ttl="1m", how="left", name="rj"))
    h.add(row("a", "x", 0, 1), row("a", "y", 30_000, 2))
    h.add(row("b", "x", 50_000, 3))
    assert [r["v_right"] for r in out.take()] == [3]
    h.advance_watermark(60_000)  # x (t=0) is 1 min old: gone; y stays
    op = join_op(h, "rj")
    assert op.left["k"].to_list() == ["y"] and op.right["k"].to_list() == ["x"]
    assert out.take() == []  # x had matched: no null row
    h.add(row("b", "x", 70_000, 4))  # the a row of x is gone: no match
    assert out.take() == []
    h.advance_watermark(90_000)
    assert out.take() == [{"k": "y", "t": 30_000, "v": 2, "t_right": None, "v_right": None}]
    assert op.left.height == 0 and op.right["t"].to_list() == [50_000, 70_000]
    h.advance_watermark(110_000)
    assert op.right["t"].to_list() == [70_000]


def test_temporal_join_waits_for_the_table_watermark() -> None:
    h = Harness(timestamp="t")
    a, b = sides(h)
    out = h.collect(a.lookup(b, on="k", name="tj"))
    h.add(row("b", "x", 0, 100))
    h.add(row("a", "x", 5_000, 1))
    assert out.take() == []  # a rate at or before 5 000 may still arrive
    h.add(row("b", "x", 4_000, 200))
    h.advance_watermark(5_001)
    assert out.take() == [{"k": "x", "t": 5_000, "v": 1, "t_right": 4_000, "v_right": 200}]
    op = join_op(h, "tj")
    assert op.versions["v"].to_list() == [200]  # older versions are dropped


def test_reference_tables_from_frame_sqlite_and_parquet(tmp_path: Path) -> None:
    ref = pl.DataFrame({"card": ["c1", "c2", "c2"], "owner": ["ann", "bob", "bea"]})
    db = tmp_path / "ref.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE cards (card TEXT, owner TEXT)")
        conn.executemany("INSERT INTO cards VALUES (?, ?)", ref.rows())
    ref.write_parquet(tmp_path / "ref.parquet")
    tables = [td.table.from_frame(ref), td.table.from_sqlite(db, "SELECT card, owner FROM cards"),
              td.table.from_file(tmp_path / "ref.parquet")]
    for table in tables:
        flow = td.Flow("lookup")
        tx = flow.source(td.sources.memory([{"card": c, "n": i} for i, c in enumerate(["c2", "c1", "c9"])]))
        left, inner = td.sinks.memory(), td.sinks.memory()
        tx.lookup(table, on="card").sink(left)
        tx.lookup(table, on="card", how="inner").sink(inner)
        flow.run(quiet=True)
        assert left.rows == [{"card": "c2", "n": 0, "owner": "bea"},  # the last row of a key wins
                             {"card": "c1", "n": 1, "owner": "ann"},
                             {"card": "c9", "n": 2, "owner": None}]
        assert inner.rows == left.rows[:2]


def checkpointed_flow(out: Path) -> td.Flow:
    flow = td.Flow("ckjoin")
    a = flow.source(td.sources.memory(A), timestamp="t", watermark=td.bounded_delay(DELAY), name="a")
    b = flow.source(td.sources.memory(B), timestamp="t", watermark=td.bounded_delay(DELAY), name="b")
    a.join(b, on="k", within=("-20s", "+10s"), how="left", name="ij").sink(td.sinks.jsonl(out))
    return flow


def test_interval_join_state_survives_a_checkpoint_and_restore(tmp_path: Path) -> None:
    ref = tmp_path / "ref.jsonl"
    checkpointed_flow(ref).run(quiet=True, max_batch_rows=50)
    out, ck = tmp_path / "out.jsonl", tmp_path / "ck"
    ex = checkpointed_flow(out).executor(max_batch_rows=50, checkpoint_dir=ck)
    ex.open()
    for _ in range(12):
        ex.step()
    ex.checkpoint()
    state = next(op for node, op in ex.ops.items() if node.name == "ij")
    assert state.left.height and state.right.height  # pairs will need both buffers
    for _ in range(5):
        ex.step()  # work after the checkpoint is lost in the crash
    ex.store.unlock()
    checkpointed_flow(out).run(quiet=True, max_batch_rows=50, checkpoint_dir=ck)

    def rows(p: Path) -> list[str]:
        return sorted(json.dumps(json.loads(x), sort_keys=True) for x in p.read_text().splitlines())

    assert rows(out) == rows(ref)


def test_join_errors_say_what_to_do() -> None:
    flow = td.Flow("errs")
    a = flow.source(td.sources.memory([{"k": 1, "t": 0}]), timestamp="t", name="a")
    b = flow.source(td.sources.memory([{"k": 1, "t": 0}]), timestamp="t", name="b")
    nt = flow.source(td.sources.memory([{"k": 1}]), name="nt")
    with pytest.raises(PlanError, match=r"exactly one of within=.*window=.*ttl=.*got none"):
        a.join(b, on="k")
    with pytest.raises(PlanError, match=r"got within, ttl"):
        a.join(b, on="k", within=("-1s", "0s"), ttl="1h")
    with pytest.raises(PlanError, match=r"join \(right side 'b'\) at test_joins.py:\d+: unknown column 'kk'"):
        a.with_columns(kk=pl.col("k")).join(b, on="kk")
    with pytest.raises(PlanError, match=r"stream 'nt' has no event time"):
        a.join(nt, on="k", within=("-1s", "0s"))
    with pytest.raises(ConfigError, match=r"lower bound must not be after the upper bound"):
        a.join(b, on="k", within=("+1s", "-1s"))
    with pytest.raises(ConfigError, match=r"how must be 'inner' or 'left'"):
        a.join(b, on="k", ttl="1h", how="outer")
    with pytest.raises(ConfigError, match=r"unknown file type '.txt'"):
        td.table.from_file("x.txt")


def test_docs_snippets_run_and_print_what_the_page_shows(tmp_path: Path, monkeypatch) -> None:
    run_markdown(Path(__file__).parent.parent / "docs" / "joins.md", tmp_path, monkeypatch)


def run_markdown(page: Path, tmp_path: Path, monkeypatch) -> None:
    """Run every ```python block of ``page``; a ```text block right after it is its output."""
    import contextlib
    import io

    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```\n(?:\n```text\n(.*?)```)?", page.read_text(), re.S)
    assert blocks
    for code, expected in blocks:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(code, str(page), "exec"), {"__name__": "__docs__"})
        if expected:
            assert buf.getvalue() == expected, f"{page.name} block:\n{code}"
