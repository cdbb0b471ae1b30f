"""Complex event processing: ``td.pattern(...)`` and ``keyed.match(pattern)``.

The pattern suite checks the matcher against :func:`reference`, a brute-force matcher
written straight from the semantics in docs/patterns.md: for every start event it follows
each branch (take the next event of a quantified step, or go on to the next step, or skip
an optional one) over the key's *whole* sorted event list, then orders the matches as they
complete and applies the skip strategy. Hypothesis draws the events (with ties, several
keys, non-matching events in between), how they are cut into batches and the skip
strategy.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tidal as td
from tidal.errors import ConfigError, PlanError
from tidal.testing import Harness

# -- conditions: a Polars expression for the matcher, a Python function for the reference --
Cond = tuple[pl.Expr, Callable[[dict[str, Any]], bool]]
COND: dict[str, Cond] = {
    "a": (pl.col("kind") == "a", lambda e: e["kind"] == "a"),
    "b": (pl.col("kind") == "b", lambda e: e["kind"] == "b"),
    "c": (pl.col("kind") == "c", lambda e: e["kind"] == "c"),
    "hi": (pl.col("v") >= 7, lambda e: e["v"] >= 7),
    "ab": (pl.col("kind").is_in(["a", "b"]), lambda e: e["kind"] in ("a", "b")),
    "lo": (pl.col("v") <= 2, lambda e: e["v"] <= 2),
}

# A pattern is written once as a list of operations, turned into a td.Pattern by
# ``build`` and into the reference's description by ``describe`` (independently).
Spec = list[tuple[Any, ...]]

CONTIGUITY: dict[str, Spec] = {
    "next": [("begin", "x", "a"), ("next", "y", "b")],
    "followed_by": [("begin", "x", "a"), ("followed_by", "y", "b")],
    "mixed": [("begin", "x", "a"), ("followed_by", "y", "b"), ("next", "z", "c")],
    "overlapping": [("begin", "x", "ab"), ("followed_by", "y", "hi"), ("followed_by", "z", "c")],
    "next_next": [("begin", "x", "lo"), ("next", "y", "a"), ("next", "z", "hi")],
    "single": [("begin", "x", "hi")],
}
QUANTIFIERS: dict[str, Spec] = {
    "times": [("begin", "x", "a"), ("followed_by", "y", "b"), ("times", 2)],
    "times_first": [("begin", "x", "ab"), ("times", 3), ("followed_by", "y", "c")],
    "one_or_more_mid": [("begin", "x", "a"), ("followed_by", "y", "b"), ("one_or_more",),
                        ("followed_by", "z", "c")],
    "one_or_more_end": [("begin", "x", "a"), ("followed_by", "y", "hi"), ("one_or_more",)],
    "consecutive": [("begin", "x", "a"), ("next", "y", "b"), ("one_or_more",), ("consecutive",),
                    ("followed_by", "z", "c")],
    "optional_mid": [("begin", "x", "a"), ("followed_by", "y", "b"), ("optional",),
                     ("followed_by", "z", "c")],
    "optional_end": [("begin", "x", "a"), ("followed_by", "y", "hi"), ("optional",)],
    "optional_times": [("begin", "x", "a"), ("next", "y", "b"), ("times", 2), ("optional",),
                       ("followed_by", "z", "hi")],
    "zero_or_more": [("begin", "x", "a"), ("followed_by", "y", "b"), ("one_or_more",),
                     ("optional",), ("next", "z", "c")],
}
NEGATION: dict[str, Spec] = {
    "between": [("begin", "x", "a"), ("not_followed_by", "n", "c"), ("followed_by", "y", "b")],
    "two": [("begin", "x", "a"), ("not_followed_by", "n", "c"), ("not_followed_by", "m", "lo"),
            ("followed_by", "y", "hi")],
    "after_loop": [("begin", "x", "a"), ("followed_by", "y", "b"), ("one_or_more",),
                   ("not_followed_by", "n", "c"), ("followed_by", "z", "hi")],
    "overlap": [("begin", "x", "a"), ("not_followed_by", "n", "hi"), ("followed_by", "y", "b")],
}
ABSENCE: dict[str, Spec] = {
    "simple": [("begin", "x", "a"), ("not_followed_by", "n", "b"), ("within", 5_000)],
    "after_two": [("begin", "x", "a"), ("followed_by", "y", "hi"), ("not_followed_by", "n", "c"),
                  ("within", 6_000)],
    "after_loop": [("begin", "x", "a"), ("followed_by", "y", "b"), ("one_or_more",),
                   ("not_followed_by", "n", "c"), ("within", 8_000)],
    "strict_then": [("begin", "x", "lo"), ("next", "y", "a"), ("not_followed_by", "n", "ab"),
                    ("within", 4_000)],
}
WITHIN: dict[str, Spec] = {
    "pair": [("begin", "x", "a"), ("followed_by", "y", "b"), ("within", 4_000)],
    "loop": [("begin", "x", "a"), ("followed_by", "y", "b"), ("one_or_more",), ("within", 5_000)],
    "strict": [("begin", "x", "a"), ("next", "y", "b"), ("followed_by", "z", "c"), ("within", 3_000)],
    "negated": [("begin", "x", "ab"), ("not_followed_by", "n", "c"), ("followed_by", "y", "hi"),
                ("times", 2), ("within", 6_000)],
}


def build(spec: Spec) -> td.Pattern:
    p: Any = None
    for op, *args in spec:
        if op == "begin":
            p = td.pattern(args[0], COND[args[1]][0])
        elif op in ("next", "followed_by", "not_followed_by"):
            p = getattr(p, op)(args[0], COND[args[1]][0])
        elif op == "within":
            p = p.within(args[0])
        else:
            p = getattr(p, op)(*args)
    return p


# -- the reference matcher ---------------------------------------------------------------------
def describe(spec: Spec) -> tuple[list[dict[str, Any]], list[Callable], int | None]:
    """(positive steps, trailing absence conditions, within) of a spec."""
    steps: list[dict[str, Any]] = []
    negs: list[Callable] = []
    within = None
    for op, *args in spec:
        if op in ("begin", "next", "followed_by"):
            steps.append({"name": args[0], "cond": COND[args[1]][1], "strict": op == "next",
                          "min": 1, "max": 1, "optional": False, "consecutive": False,
                          "quantified": False, "forbidden": negs})
            negs = []
        elif op == "not_followed_by":
            negs = [*negs, COND[args[1]][1]]
        elif op == "times":
            steps[-1].update(min=args[0], max=args[0], quantified=True)
        elif op == "one_or_more":
            steps[-1].update(min=1, max=None, quantified=True)
        elif op == "optional":
            steps[-1]["optional"] = True
        elif op == "consecutive":
            steps[-1]["consecutive"] = True
        elif op == "within":
            within = args[0]
    return steps, negs, within


def reference(events: list[dict[str, Any]], spec: Spec, skip: str) -> list[tuple[Any, ...]]:
    """Every match, as (key, match_start, match_end, ((step, (ids...)), ...)), per key in
    emission order. ``events`` are in arrival order; ties in time keep that order."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for e in sorted(events, key=lambda e: e["t"]):  # stable: ties keep arrival order
        by_key.setdefault(e["k"], []).append(e)
    return [m for key in sorted(by_key) for m in reference_key(key, by_key[key], spec, skip)]


def reference_key(key: str, evs: list[dict[str, Any]], spec: Spec,
                  skip: str) -> list[tuple[Any, ...]]:
    """The matches in one key's events ``evs`` (sorted), in emission order."""
    steps, absence, within = describe(spec)
    m = len(evs)
    found: list[tuple[str, int, list[tuple[int, int]]]] = []

    def in_time(s: int, x: int) -> bool:
        return within is None or evs[x]["t"] < evs[s]["t"] + within

    def next_event(j: int, cond: Callable, strict: bool) -> int | None:
        if strict:
            return j + 1 if j + 1 < m and cond(evs[j + 1]) else None
        return next((x for x in range(j + 1, m) if cond(evs[x])), None)

    def after_take(s: int, k: int, n: int, taken: list[tuple[int, int]]) -> None:
        """Step k just took its n-th event: take one more, and/or go on."""
        j, step = taken[-1][1], steps[k]
        if step["max"] is None or n < step["max"]:
            x = next_event(j, step["cond"], step["consecutive"])
            if x is not None and in_time(s, x):
                after_take(s, k, n + 1, [*taken, (k, x)])
        if n >= step["min"]:
            go_on(s, k + 1, taken)

    def go_on(s: int, k: int, taken: list[tuple[int, int]]) -> None:
        """Look for step k's first event after the last taken one (or finish)."""
        j = taken[-1][1]
        if k == len(steps):
            if not absence:
                found.append(("event", s, taken))
            elif not any(f(evs[x]) for x in range(j + 1, m)
                         if evs[x]["t"] < evs[s]["t"] + within for f in absence):
                found.append(("absence", s, taken))
            return
        step = steps[k]
        x = next_event(j, step["cond"], step["strict"])
        if (x is not None and in_time(s, x)
                and not any(f(evs[y]) for y in range(j + 1, x) for f in step["forbidden"])):
            after_take(s, k, 1, [*taken, (k, x)])
        if step["optional"]:
            go_on(s, k + 1, taken)

    for s in range(m):
        if steps[0]["cond"](evs[s]):
            after_take(s, 0, 1, [(0, s)])

    def emitted_at(f: tuple[str, int, list[tuple[int, int]]]) -> tuple[Any, ...]:
        """An absence fires at start + within, before events at that time; a match when
        its last event is processed; ties: earliest start, longest, then event order."""
        kind, s, taken = f
        when = ((evs[s]["t"] + within, 0, 0) if kind == "absence"
                else (evs[taken[-1][1]]["t"], 1, taken[-1][1]))
        return (*when, s, -len(taken), [x for _, x in taken])

    out = []
    cut = -1
    for _, s, taken in sorted(found, key=emitted_at):
        if skip == "skip_past_last":
            if s <= cut:
                continue
            cut = max(cut, taken[-1][1])
        ids = tuple((steps[k]["name"], tuple(evs[x]["id"] for kk, x in taken if kk == k))
                    for k in range(len(steps)))
        out.append((key, evs[s]["t"], evs[taken[-1][1]]["t"], ids))
    return out


# -- running the real matcher ------------------------------------------------------------------
SCHEMA = {"k": pl.String, "kind": pl.String, "v": pl.Int64, "t": pl.Int64, "id": pl.Int64}


def run_match(events: list[dict[str, Any]], p: td.Pattern, skip: str = "no_skip",
              batch: int = 1000, delay: int = 0) -> list[tuple[Any, ...]]:
    flow = td.Flow("cep")
    frame = pl.DataFrame(events, schema=SCHEMA)
    s = flow.source(td.sources.memory(frame), timestamp="t", watermark=td.bounded_delay(delay))
    out = td.sinks.memory()
    s.key_by("k").match(p, after_match=skip, name="m").sink(out)
    flow.run(quiet=True, max_batch_rows=batch, dead_letters_to_log=False)
    return as_tuples(out.rows, p)


def as_tuples(rows: list[dict[str, Any]], p: td.Pattern) -> list[tuple[Any, ...]]:
    """Rows as the reference's tuples, grouped by key (stable: emission order kept)."""
    names = [n for n in p.names if n in (rows[0] if rows else {})]
    got = []
    for r in rows:
        ids = []
        for n in names:
            v = r[n]
            evs = v if isinstance(v, list) else ([] if v is None else [v])
            ids.append((n, tuple(e["id"] for e in evs)))
        got.append((r["k"], r["match_start"], r["match_end"], tuple(ids)))
    return sorted(got, key=lambda g: g[0])


def events_strategy(max_size: int = 24, unique_times: bool = False) -> st.SearchStrategy:
    event = st.tuples(st.sampled_from(["k1", "k2"]), st.sampled_from("abcdd"),
                      st.integers(0, 9), st.integers(0 if not unique_times else 1, 2_500))

    def make(raw: list[tuple[str, str, int, int]]) -> list[dict[str, Any]]:
        t, out = 0, []
        for i, (k, kind, v, gap) in enumerate(raw):
            t += gap
            out.append({"k": k, "kind": kind, "v": v, "t": t, "id": i})
        return out

    return st.lists(event, max_size=max_size).map(make)


def check(spec: Spec, events: list[dict[str, Any]], skip: str, batch: int) -> None:
    want = reference(events, spec, skip)
    got = run_match(events, build(spec), skip, batch)
    assert got == want


SUITE = settings(max_examples=20, deadline=None)
common = dict(events=events_strategy(), skip=st.sampled_from(["no_skip", "skip_past_last"]),
              batch=st.integers(1, 9))


@pytest.mark.parametrize("name", CONTIGUITY)
@SUITE
@given(**common)
def test_contiguity_matches_the_reference(name: str, events, skip: str, batch: int) -> None:
    check(CONTIGUITY[name], events, skip, batch)


@pytest.mark.parametrize("name", QUANTIFIERS)
@SUITE
@given(**common)
def test_quantifiers_match_the_reference(name: str, events, skip: str, batch: int) -> None:
    check(QUANTIFIERS[name], events, skip, batch)


@pytest.mark.parametrize("name", NEGATION)
@SUITE
@given(**common)
def test_negation_matches_the_reference(name: str, events, skip: str, batch: int) -> None:
    check(NEGATION[name], events, skip, batch)


@pytest.mark.parametrize("name", ABSENCE)
@SUITE
@given(**common)
def test_absence_matches_the_reference(name: str, events, skip: str, batch: int) -> None:
    check(ABSENCE[name], events, skip, batch)


@pytest.mark.parametrize("name", WITHIN)
@SUITE
@given(**common)
def test_within_matches_the_reference(name: str, events, skip: str, batch: int) -> None:
    check(WITHIN[name], events, skip, batch)


@pytest.mark.parametrize("name", ["mixed", "consecutive", "after_loop", "strict_then", "negated"])
@settings(max_examples=20, deadline=None)
@given(events=events_strategy(unique_times=True), seed=st.integers(0, 2**16),
       skip=st.sampled_from(["no_skip", "skip_past_last"]), batch=st.integers(1, 6))
def test_out_of_order_input_gives_the_matches_of_sorted_input(
        name: str, events, seed: int, skip: str, batch: int) -> None:
    spec = {**CONTIGUITY, **QUANTIFIERS, **ABSENCE, **WITHIN, **NEGATION}[name]
    rng = random.Random(seed)
    shuffled = sorted(events, key=lambda e: e["t"] + rng.randrange(0, 6_000))
    high, delay = 0, 0
    for e in shuffled:  # the smallest watermark delay under which no event is late
        high = max(high, e["t"])
        delay = max(delay, high - e["t"])
    in_order = run_match(events, build(spec), skip, batch)
    assert run_match(shuffled, build(spec), skip, batch, delay=delay + 1) == in_order
    assert in_order == reference(events, spec, skip)


# -- known answers and the Flink examples ----------------------------------------------------
def ev(rows: str, key: str = "k1", step: int = 1_000) -> list[dict[str, Any]]:
    """'a b c' -> events of ``key`` one second apart, with ids 0, 1, 2."""
    return [{"k": key, "kind": x, "v": 0, "t": i * step, "id": i}
            for i, x in enumerate(rows.split())]


def ids(rows: list[tuple[Any, ...]]) -> list[list[int]]:
    return [[i for _, got in r[3] for i in got] for r in rows]


def test_relaxed_contiguity_takes_the_first_matching_event() -> None:
    p = td.pattern("x", COND["a"][0]).followed_by("y", COND["b"][0])
    assert ids(run_match(ev("a d b b"), p)) == [[0, 2]]
    assert ids(run_match(ev("a a b"), p)) == [[0, 2], [1, 2]]  # every start begins a match


def test_strict_contiguity_needs_the_very_next_event() -> None:
    p = td.pattern("x", COND["a"][0]).next("y", COND["b"][0])
    assert ids(run_match(ev("a d b a b"), p)) == [[3, 4]]


def test_one_or_more_before_a_step_matches_like_flink() -> None:
    # Flink's documented example: pattern "b+ c", input "b1 b2 b3 c"
    p = td.pattern("b", COND["b"][0]).one_or_more().followed_by("c", COND["c"][0])
    assert ids(run_match(ev("b b b c"), p)) == [[0, 1, 2, 3], [0, 1, 3], [0, 3], [1, 2, 3],
                                                [1, 3], [2, 3]]
    assert ids(run_match(ev("b b b c"), p, "skip_past_last")) == [[0, 1, 2, 3]]


def test_one_global_key() -> None:
    flow = td.Flow("global")
    rows = [{"x": x, "t": t} for t, x in enumerate([1, 5, 2, 1, 2])]
    s = flow.source(td.sources.memory(rows), timestamp="t")
    out = td.sinks.memory()
    s.key_by().match(td.pattern("a", pl.col("x") == 1).next("b", pl.col("x") == 2)).sink(out)
    flow.run(quiet=True, max_batch_rows=1, dead_letters_to_log=False)
    assert [(r["match_start"], r["match_end"]) for r in out.rows] == [(3, 4)]


def test_within_bounds_the_match() -> None:
    p = td.pattern("x", COND["a"][0]).followed_by("y", COND["b"][0]).within("2s")
    assert ids(run_match(ev("a d b"), p)) == []        # b at +2 s: too late
    assert ids(run_match(ev("a b"), p)) == [[0, 1]]


def test_output_columns_and_types() -> None:
    flow = td.Flow("cols")
    rows = [{"card": "c1", "amount": 0.5, "t": 0}, {"card": "c1", "amount": 900.0, "t": 1_000},
            {"card": "c1", "amount": 700.0, "t": 2_000}]
    s = flow.source(td.sources.memory(rows), timestamp="t")
    p = (td.pattern("small", pl.col("amount") < 1)
         .followed_by("large", pl.col("amount") > 500).times(2).within("5m"))
    out = td.sinks.memory()
    matched = s.key_by("card").match(p, name="m")
    matched.sink(out)
    flow.run(quiet=True, dead_letters_to_log=False)
    frame = out.frame()
    assert frame.schema == matched.schema
    assert frame.columns == ["card", "match_start", "match_end", "small", "large"]
    assert frame.schema["small"] == pl.Struct({"card": pl.String, "amount": pl.Float64, "t": pl.Int64})
    assert out.rows == [{"card": "c1", "match_start": 0, "match_end": 2_000,
                         "small": rows[0], "large": rows[1:]}]


def test_datetime_timestamps_give_datetime_match_times() -> None:
    from datetime import datetime

    flow = td.Flow("dt")
    rows = [{"k": "a", "x": 1, "at": datetime(2026, 1, 1, 12, 0, 0)},
            {"k": "a", "x": 2, "at": datetime(2026, 1, 1, 12, 0, 3)}]
    s = flow.source(td.sources.memory(rows), timestamp="at")
    out = td.sinks.memory()
    s.key_by("k").match(td.pattern("one", pl.col("x") == 1).next("two", pl.col("x") == 2)).sink(out)
    flow.run(quiet=True, dead_letters_to_log=False)
    (r,) = out.rows
    assert r["match_start"] == rows[0]["at"] and r["match_end"] == rows[1]["at"]


# -- absence with the test harness -------------------------------------------------------------
def test_harness_absence_fires_when_the_watermark_passes_start_plus_within() -> None:
    h = Harness(timestamp="t")
    silent = td.pattern("reading", pl.col("kind") == "reading").not_followed_by(
        "next_reading", pl.col("kind") == "reading").within("60s")
    out = h.collect(h.stream.key_by("device").match(silent, name="silent"))
    h.add({"device": "d1", "kind": "reading", "t": 0}, {"device": "d2", "kind": "reading", "t": 0})
    h.add({"device": "d2", "kind": "reading", "t": 30_000})
    h.advance_watermark(59_999)
    assert out.take() == []
    h.advance_watermark(60_000)  # d1 silent since 0; d2's first reading was followed
    assert [(r["device"], r["match_start"], r["match_end"]) for r in out.take()] == [("d1", 0, 0)]
    h.advance_watermark(90_000)  # d2 silent since 30 s
    assert [(r["device"], r["match_start"]) for r in out.take()] == [("d2", 30_000)]
    assert out.rows[0]["reading"] == {"device": "d1", "kind": "reading", "t": 0}


def test_late_events_are_counted_not_matched() -> None:
    h = Harness(timestamp="t")
    out = h.collect(h.stream.key_by("k").match(
        td.pattern("x", COND["a"][0]).followed_by("y", COND["b"][0]), name="m"))
    h.add({"k": "k1", "kind": "a", "v": 0, "t": 1_000})
    h.advance_watermark(5_000)
    h.add({"k": "k1", "kind": "b", "v": 0, "t": 4_000}, {"k": "k1", "kind": "d", "v": 0, "t": 4_500})
    assert h.late_count == 1  # the b; the d could not take part in any match
    h.finish()
    assert out.rows == []


# -- checkpoints -----------------------------------------------------------------------------------
def _ckpt_flow(tmp: Path, events: list[dict[str, Any]]) -> td.Flow:
    flow = td.Flow("cep_ck")
    s = flow.source(td.sources.memory(events), timestamp="t", name="tx")
    p = (td.pattern("x", COND["a"][0]).followed_by("y", COND["b"][0]).one_or_more()
         .not_followed_by("n", COND["c"][0]).within(20_000))
    s.key_by("k").match(p, name="a_then_bs").sink(td.sinks.jsonl(tmp / "out.jsonl"), name="out")
    return flow


def test_pattern_state_survives_checkpoint_and_restore(tmp_path: Path) -> None:
    rng = random.Random(7)
    events = [{"k": f"k{rng.randrange(3)}", "kind": rng.choice("abcd"), "v": 0, "t": i * 700,
               "id": i} for i in range(300)]
    ref = tmp_path / "ref"
    ref.mkdir()
    _ckpt_flow(ref, events).run(quiet=True, max_batch_rows=10, dead_letters_to_log=False)
    want = [json.loads(x) for x in (ref / "out.jsonl").read_text().splitlines()]
    assert len(want) > 20

    out = tmp_path / "out"
    out.mkdir()
    ex = _ckpt_flow(out, events).executor(max_batch_rows=10, checkpoint_dir=out / "ck",
                                          dead_letters_to_log=False)
    ex.open()
    for i in range(17):
        ex.step()
        if i == 12:
            ex.checkpoint()
    op = next(o for n, o in ex.ops.items() if n.name == "a_then_bs")
    assert op.partials  # partial matches were in flight at the checkpoint
    ex.store.unlock()  # crash: no finish, no flush
    _ckpt_flow(out, events).run(quiet=True, max_batch_rows=10, checkpoint_dir=out / "ck",
                                dead_letters_to_log=False)
    got = [json.loads(x) for x in (out / "out.jsonl").read_text().splitlines()]
    assert got == want


# -- errors ------------------------------------------------------------------------------------------
def test_errors_say_what_to_do() -> None:
    a, b = COND["a"][0], COND["b"][0]
    with pytest.raises(PlanError, match="condition must be a Polars expression"):
        td.pattern("x", "kind == 'a'")  # type: ignore[arg-type]
    with pytest.raises(PlanError, match="already has a step of that name"):
        td.pattern("x", a).followed_by("x", b)
    with pytest.raises(PlanError, match="quantifiers apply to positive steps"):
        td.pattern("x", a).not_followed_by("n", b).times(2)
    with pytest.raises(PlanError, match="first step 'x' cannot be optional"):
        td.pattern("x", a).optional()
    with pytest.raises(ConfigError, match="n must be an integer >= 1"):
        td.pattern("x", a).times(0)
    with pytest.raises(PlanError, match="already has a quantifier"):
        td.pattern("x", a).times(2).one_or_more()
    with pytest.raises(PlanError, match="negation ambiguous"):
        td.pattern("x", a).followed_by("y", b).optional().not_followed_by("n", a)
    flow = td.Flow("errors")
    s = flow.source(td.sources.memory([{"k": "a", "kind": "a", "v": 1, "t": 0}]), timestamp="t")
    with pytest.raises(PlanError, match=r"no \.within\(\.\.\.\); an absence needs a time limit"):
        s.key_by("k").match(td.pattern("x", a).not_followed_by("n", b))
    with pytest.raises(PlanError, match="unknown column 'amount'"):
        s.key_by("k").match(td.pattern("x", pl.col("amount") > 1))
    with pytest.raises(PlanError, match="gives Int64, not a boolean"):
        s.key_by("k").match(td.pattern("x", pl.col("v") + 1))
    with pytest.raises(PlanError, match="step name 'k' is also a key"):
        s.key_by("k").match(td.pattern("k", a))
    with pytest.raises(ConfigError, match="after_match must be one of 'no_skip', 'skip_past_last'"):
        s.key_by("k").match(td.pattern("x", a), after_match="skip_to_next")
    with pytest.raises(PlanError, match="expected a pattern built with td.pattern"):
        s.key_by("k").match("a b")  # type: ignore[arg-type]
    untimed = flow.source(td.sources.memory([{"k": "a", "kind": "a"}]), name="untimed")
    with pytest.raises(PlanError, match="has no event time"):
        untimed.key_by("k").match(td.pattern("x", a))


def test_docs_snippets_print_what_the_page_shows(tmp_path: Path, monkeypatch) -> None:
    import contextlib
    import io
    import re

    page = (Path(__file__).resolve().parent.parent / "docs" / "patterns.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```\n\n```text\n(.*?)```", page, re.S)
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    for code, want in blocks:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "docs/patterns.md", "exec"), {})
        assert printed.getvalue() == want
