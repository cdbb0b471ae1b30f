"""keyed.process(fn): per-key state and event/processing-time timers, deterministic with the
Harness, kept across a checkpoint/restore."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import tidal as td
from tidal.errors import PlanError, UserFunctionError
from tidal.testing import Harness


class Reminder:
    """Counts a key's events; an event-time timer 10 s after each, a processing-time
    timer 5 s after the first; timers report the count."""

    def process(self, key, rows: pl.DataFrame, ctx):
        n = ctx.state.get(0) + rows.height
        ctx.state.set(n)
        for t in rows["t"]:
            ctx.register_event_timer(t + 10_000)
        if n == rows.height:
            ctx.register_processing_timer(ctx.now + 5_000)

    def on_timer(self, key, ts, ctx):
        return {"fired": ts, "count": ctx.state.get(), "wm": ctx.watermark}


def test_event_timers_fire_in_time_order_as_the_watermark_passes() -> None:
    h = Harness(timestamp="t")
    out = h.collect(h.stream.key_by("k").process(Reminder(), name="rem"))
    h.add({"k": "b", "t": 3_000}, {"k": "a", "t": 1_000}, {"k": "a", "t": 2_000})
    h.add({"k": "b", "t": 3_000})  # the same timer twice is one timer
    assert out.take() == []
    h.advance_watermark(12_000)
    assert [(r["k"], r["fired"], r["count"]) for r in out.take()] == [("a", 11_000, 2), ("a", 12_000, 2)]
    h.advance_watermark(13_000)
    assert [(r["k"], r["fired"], r["count"], r["wm"]) for r in out.take()] == [("b", 13_000, 2, 13_000)]
    h.advance_watermark(100_000)
    assert out.take() == []


def test_processing_timers_fire_when_the_clock_reaches_them() -> None:
    h = Harness(timestamp="t", start_ms=1_000_000)
    out = h.collect(h.stream.key_by("k").process(Reminder(), name="rem"))
    h.add({"k": "a", "t": 0})
    h.advance_processing_time("4s")
    assert out.take() == []
    h.advance_processing_time("1s")
    assert [(r["fired"], r["count"]) for r in out.take()] == [(1_005_000, 1)]


def test_a_timer_registered_by_a_timer_fires_in_the_same_pass_when_due_and_deletes_work() -> None:
    def count(key, rows, ctx):
        ctx.register_event_timer(100)
        ctx.register_event_timer(300)
        ctx.delete_event_timer(300)

    def chain(key, ts, ctx):
        if ts < 400:
            ctx.register_event_timer(ts + 100)
        return {"ts": ts}

    h = Harness(timestamp="t")
    out = h.collect(h.stream.key_by("k").process(count, on_timer=chain, name="chain"))
    h.add({"k": 1, "t": 0})
    h.advance_watermark(350)
    assert [r["ts"] for r in out.take()] == [100, 200, 300]  # 300 again, registered by 200
    h.finish()
    assert [r["ts"] for r in out.take()] == [400]


def test_state_is_per_key_and_removable() -> None:
    def total(key, rows, ctx):
        s = ctx.state.get(0) + int(rows["x"].sum())
        if s > 10:
            ctx.state.remove()
            return {"total": s, "reset": True}
        ctx.state.set(s)
        return pl.DataFrame({"total": [s], "reset": [False]})

    h = Harness(timestamp="t")
    out = h.collect(h.stream.key_by("k").process(total, name="tot"))
    h.add({"k": "a", "t": 0, "x": 4}, {"k": "b", "t": 0, "x": 1}, {"k": "a", "t": 1, "x": 4})
    h.add({"k": "a", "t": 2, "x": 5}, {"k": "b", "t": 2, "x": 1})
    h.add({"k": "a", "t": 3, "x": 1})
    assert out.rows == [{"k": "a", "total": 8, "reset": False}, {"k": "b", "total": 1, "reset": False},
                        {"k": "a", "total": 13, "reset": True}, {"k": "b", "total": 2, "reset": False},
                        {"k": "a", "total": 1, "reset": False}]


def test_contract_errors_name_the_step_and_the_function() -> None:
    h = Harness(timestamp="t")
    h.collect(h.stream.key_by("k").process(lambda key, rows, ctx: 42, name="bad"))
    with pytest.raises(UserFunctionError, match=r"step 'bad': process function \S*<lambda> "
                       r"\(test_process.py:\d+\) returned int for key \('a',\); it must return None, a dict"):
        h.add({"k": "a", "t": 0})
    h2 = Harness(timestamp="t")
    h2.collect(h2.stream.key_by("k").process(
        lambda key, rows, ctx: ctx.register_event_timer(5), name="no_timer_fn"))
    h2.add({"k": "a", "t": 0})
    with pytest.raises(UserFunctionError, match=r"a timer fired for key \('a',\) but there is no on_timer"):
        h2.advance_watermark(10)
    with pytest.raises(PlanError, match=r"process at test_process.py:\d+: expected a function"):
        Harness().stream.key_by("k").process(42)


EVENTS = [{"k": f"k{i % 3}", "t": i * 1_000} for i in range(60)]


def build(out: Path) -> td.Flow:
    flow = td.Flow("proc")
    s = flow.source(td.sources.memory(EVENTS), timestamp="t")
    s.key_by("k").process(Reminder(), name="rem").sink(td.sinks.jsonl(out))
    return flow


def test_state_and_timers_survive_a_checkpoint(tmp_path: Path) -> None:
    ref = tmp_path / "ref.jsonl"
    build(ref).run(quiet=True, max_batch_rows=5)
    out, ck = tmp_path / "out.jsonl", tmp_path / "ck"
    ex = build(out).executor(max_batch_rows=5, checkpoint_dir=ck)
    ex.open()
    for _ in range(4):
        ex.step()
    ex.checkpoint()
    op = next(o for n, o in ex.ops.items() if n.name == "rem")
    assert op.values and op.timers[0]  # counts and pending timers are in the checkpoint
    ex.step()
    ex.store.unlock()
    build(out).run(quiet=True, max_batch_rows=5, checkpoint_dir=ck)

    def rows(p: Path) -> list[tuple]:
        return sorted((r["k"], r["fired"], r["count"]) for r in map(json.loads, p.read_text().splitlines()))

    assert rows(out) == rows(ref) and len(rows(ref)) == 60
