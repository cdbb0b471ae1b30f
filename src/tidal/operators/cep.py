"""The pattern matcher behind ``keyed.match(pattern)`` (complex event processing).

Two stages, so that Python only sees the events that can take part in a match:

1. **Vectorized pre-filter** (every batch): all of the pattern's conditions are evaluated
   as one Polars ``select`` into a bit mask per event (bit ``i`` = condition ``i`` holds).
   Events with an empty mask match no step and no negation, so they are dropped at once.
   Patterns with strict contiguity (``next``, ``consecutive``) must still know that such an
   event *happened*: for them the key, time and arrival number of the other events are
   kept (no payload), and each candidate gets its ordinal in its key's event-time order.
2. **Per-key NFA** (at each watermark): candidates are buffered until the watermark
   passes them, so out-of-order input is matched in event-time order (ties broken by
   arrival), then each key's partial matches advance event by event in Python.

A partial match waits for exactly one thing: the next event of one step (``target``),
strictly (the very next event of the key) or relaxed (the first event matching the
step; on the way, an event matching one of the ``forbidden`` negations kills it), or, for
a pattern ending in ``not_followed_by``, the deadline ``start + within`` (an *absence*).
Taking an event branches: a quantified step may wait for one more event, and once its
minimum is reached the next step is awaited too (an optional step is also skipped). Every
start event begins its own match. Semantics are those of Flink CEP's ``next`` /
``followedBy`` (skip till next match); docs/patterns.md states them precisely.

State, per key: the partial matches (each holds the events it matched), plus buffered
candidates not yet passed by the watermark; with ``within``, a partial match is dropped
once the watermark reaches ``start + within``.

For SQL's ``MATCH_RECOGNIZE`` (:mod:`tidal.sql.match_recognize`) a step may also carry an
*iterative condition* (a Python check of the candidate against the partial match's events,
made only when the vectorized bit is set), be *greedy* (the next step may not take an
event the greedy step would), and matches may be pruned by ``skip_to_next`` /
``skip_to_first`` / ``skip_to_last`` and emitted in Flink's order (``ordered``: a completed
match waits while a partial match that started earlier is open).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from tidal._time import MAX_TIME, MIN_TIME
from tidal.operators.base import Operator
from tidal.operators.timeattr import TimeAttr

__all__ = ["AFTER_MATCH", "Check", "CompiledPattern", "PatternMatcher", "SKIPS", "Step"]

AFTER_MATCH = ("no_skip", "skip_past_last")
"""The strategies ``keyed.match`` offers."""
SKIPS = (*AFTER_MATCH, "skip_to_next", "skip_to_first", "skip_to_last")
"""Every strategy of the operator (SQL's ``AFTER MATCH SKIP ...``); the last two name a
step (``skip_to``)."""

Events = tuple[tuple[int, int, int, tuple[Any, ...]], ...]
"""(step index, rank, event time, row) of every event a partial match holds, in order."""
Check = Callable[[list[str]], Callable[[Events, tuple[Any, ...]], bool]]
"""An *iterative condition*: given the input's columns, a function of (the partial match's
events, the candidate row) saying whether the step takes the row (SQL's DEFINE conditions
that refer to earlier rows of the match)."""

_T, _SEQ, _MASK, _ORD, _N, _CAND = "__t", "__seq", "__mask", "__ord", "__n", "__cand"


@dataclass(frozen=True)
class Step:
    """One positive step of a compiled pattern."""

    name: str
    cond: int
    """Index of the step's condition (its bit in the mask)."""
    strict: bool
    """``next``: the step's first event must directly follow the previous step's last."""
    min: int
    max: int | None
    optional: bool
    consecutive: bool
    """The events of a quantified step must directly follow each other."""
    quantified: bool
    forbidden: tuple[int, ...]
    """Conditions of the negations between the previous step and this one."""
    greedy: bool = False
    """A quantified step that keeps taking events while they match it: the next step may
    only take an event this step would not (SQL's greedy ``+``, ``*``, ``{n,m}``)."""


@dataclass(frozen=True)
class CompiledPattern:
    """Positive steps, the trailing absence (if any), every condition, and ``within``."""

    steps: tuple[Step, ...]
    absence: tuple[int, ...]
    conditions: tuple[pl.Expr, ...]
    within_ms: int | None
    checks: tuple[Check | None, ...] = ()
    """Per step, an iterative condition that must also hold (empty: none)."""

    @property
    def strict(self) -> bool:
        """Whether matching needs to know about events that match nothing."""
        return any(s.strict or s.consecutive for s in self.steps)


@dataclass(slots=True)
class _Partial:
    """A partial match waiting for one thing (see the module docstring)."""

    start_rank: int
    start_ts: int
    target: int
    """Index of the awaited step; ``len(steps)`` waits for the absence deadline."""
    taken: int
    """Events of the target step already matched."""
    last_ord: int
    strict: bool
    forbidden: int
    events: Events
    """(step index, rank, event time, row) of every matched event, in order."""
    greedy: tuple[int, ...] = ()
    """Greedy steps just left: the awaited step may not take an event they would take."""


def _mask(bits: tuple[int, ...]) -> int:
    m = 0
    for b in bits:
        m |= 1 << b
    return m


class PatternMatcher(Operator):
    """``key_by(...).match(pattern)``: one output row per match (module docstring)."""

    stateful = True

    def __init__(self, name: str, keys: list[str], time: TimeAttr, pattern: CompiledPattern,
                 after_match: str = "no_skip", *, skip_to: int | None = None,
                 ordered: bool = False) -> None:
        """``after_match`` is one of :data:`SKIPS`; ``skip_to`` the step of
        ``skip_to_first``/``skip_to_last``. ``ordered``: under a skip strategy, emit a match
        only once no partial match that started earlier is open (it could complete and win),
        as Flink's NFA does; SQL's MATCH_RECOGNIZE uses it."""
        super().__init__(name)
        assert after_match in SKIPS
        assert (skip_to is not None) == (after_match in ("skip_to_first", "skip_to_last"))
        self.keys = keys
        self.time = time
        self.pattern = pattern
        self.steps = pattern.steps
        self.within = pattern.within_ms
        self.after_match = after_match
        self.skip = after_match != "no_skip"
        self.skip_to = skip_to
        self.ordered = ordered and self.skip
        self.held: dict[tuple[Any, ...], list[_Partial]] = {}
        """Completed matches waiting for earlier-started partial matches (``ordered``)."""
        self.checks = pattern.checks or (None,) * len(pattern.steps)
        self.iterative = any(c is not None for c in self.checks) or any(
            s.greedy for s in pattern.steps)
        self.check_fns: list[Callable[[Events, tuple[Any, ...]], bool] | None] | None = None
        self.strict = pattern.strict
        self.bits = [1 << s.cond for s in self.steps]
        self.forbidden = [_mask(s.forbidden) for s in self.steps]
        self.absence = _mask(pattern.absence) if pattern.absence else 0
        self.mask_expr = pl.sum_horizontal(
            [c.fill_null(False).cast(pl.Int64) * (1 << i) for i, c in enumerate(pattern.conditions)]
        ).alias(_MASK)
        self.columns: list[str] | None = None
        self.schema: pl.Schema | None = None
        self.time_dtype: pl.DataType | None = None
        self.candidates: list[pl.DataFrame] = []
        self.others: list[pl.DataFrame] = []
        self.partials: dict[tuple[Any, ...], list[_Partial]] = {}
        self.next_ord: dict[tuple[Any, ...], int] = {}
        self.deadlines: list[tuple[int, int, tuple[Any, ...]]] = []
        self.seq = 0
        self.rank = 0
        self.late_rows = 0

    # -- schema -------------------------------------------------------------------------------
    @staticmethod
    def output_schema(pattern: CompiledPattern, keys: list[str], schema: pl.Schema,
                      time: TimeAttr) -> pl.Schema:
        """Keys, ``match_start``, ``match_end``, then a struct (or list of structs, for a
        quantified step) per positive step."""
        out: dict[str, pl.DataType] = {k: schema[k] for k in keys}
        dt = schema[time.column]
        tdt = pl.Datetime("ms", dt.time_zone) if isinstance(dt, pl.Datetime) else pl.Int64()
        out["match_start"] = out["match_end"] = tdt
        event = pl.Struct(dict(schema))
        for s in pattern.steps:
            out[s.name] = pl.List(event) if s.quantified else event
        return pl.Schema(out)

    # -- batches ------------------------------------------------------------------------------
    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        if self.columns is None:
            self.columns = batch.columns
            self.schema = batch.schema
            self.time_dtype = batch.schema[self.time.column]
        t = self.time.series(batch).alias(_T)
        mask = batch.select(self.mask_expr).to_series()
        if mask.len() != batch.height:  # conditions that are all literals (SQL: no DEFINE)
            mask = pl.Series(_MASK, [mask[0]] * batch.height, dtype=mask.dtype)
        seq = pl.int_range(self.seq, self.seq + batch.height, dtype=pl.Int64, eager=True).alias(_SEQ)
        self.seq += batch.height
        keep = mask != 0
        if self.watermark != MIN_TIME and t.min() < self.watermark:  # type: ignore[operator]
            late = t < self.watermark
            relevant = late if self.strict else late & keep
            if relevant.any():
                n = int(relevant.sum())
                self.late_rows += n
                self.ctx.count_late(n)
                self.emit(batch.filter(relevant), "late")
            keep = keep & ~late
            on_time = ~late
        else:
            on_time = None
        cands = batch.with_columns(t, seq, mask).filter(keep)
        if cands.height:
            self.candidates.append(cands)
        if self.strict:
            rest = ~keep if on_time is None else on_time & ~keep
            others = pl.DataFrame([*(batch.get_column(k) for k in self.keys), t, seq]).filter(rest)
            if others.height:
                self.others.append(others)

    # -- time ---------------------------------------------------------------------------------
    def on_watermark(self, watermark: int) -> None:
        self.watermark = watermark
        matches: list[tuple[tuple[Any, ...], _Partial]] = []
        ready = self._release(watermark)
        if ready is not None:
            self._run(ready, matches)
        if self.within is not None:
            while self.deadlines and self.deadlines[0][0] <= watermark:
                _, _, key = heapq.heappop(self.deadlines)
                if key in self.partials:
                    partials = self._expire(key, self.partials[key], watermark, matches)
                    if partials:
                        self.partials[key] = partials
                    else:
                        del self.partials[key]
                        self.next_ord.pop(key, None)
        if self.held and watermark >= MAX_TIME:
            # the input has ended: the open partial matches can no longer complete
            for key in list(self.held):
                self._emit_ordered(key, [], [], matches)
        if matches:
            self.emit(self._output(matches))

    def _release(self, watermark: int) -> pl.DataFrame | None:
        """Buffered candidates the watermark has passed, sorted by key and event order;
        with strict contiguity, each with its ordinal among the key's released events."""
        if not self.candidates and not self.others:
            return None
        ready, self.candidates = _split(self.candidates, watermark)
        if not self.strict:
            if ready is None:
                return None
            return ready.sort([*self.keys, _T, _SEQ])
        done, self.others = _split(self.others, watermark)
        if done is not None and self.keys:
            # the other events matter only to keys with candidates now or partial matches
            assert self.schema is not None
            wanted = [] if ready is None else [ready.select(self.keys)]
            if self.next_ord:
                wanted.append(pl.DataFrame(list(self.next_ord), orient="row",
                                           schema={k: self.schema[k] for k in self.keys}))
            done = (done.join(pl.concat(wanted, how="vertical_relaxed"), on=self.keys, how="semi")
                    if wanted else None)
        parts = []
        if ready is not None:
            parts.append(ready.select(*self.keys, _T, _SEQ, pl.lit(True).alias(_CAND)))
        if done is not None and done.height:
            parts.append(done.with_columns(pl.lit(False).alias(_CAND)))
        if not parts:
            return None
        events = pl.concat(parts, how="vertical_relaxed").sort(_T, _SEQ)
        ordinal = pl.int_range(pl.len(), dtype=pl.Int64)
        count = pl.len().cast(pl.Int64)
        events = events.with_columns(
            (ordinal.over(self.keys) if self.keys else ordinal).alias(_ORD),
            (count.over(self.keys) if self.keys else count).alias(_N),
        )
        if self.partials and not self.keys:
            if ready is None and () in self.next_ord:
                self.next_ord[()] += events.height
        elif self.partials and done is not None:
            # keys with partial matches but no candidate now: their events still count
            quiet = events.group_by(self.keys).agg(pl.col(_CAND).any(), pl.len()).filter(~pl.col(_CAND))
            for row in quiet.select(*self.keys, "len").iter_rows():
                key = row[:-1]
                if key in self.next_ord:
                    self.next_ord[key] += row[-1]
        if ready is None:
            return None
        ords = events.filter(pl.col(_CAND)).select(_SEQ, _ORD, _N)
        return ready.join(ords, on=_SEQ).sort([*self.keys, _T, _SEQ])

    def _run(self, ready: pl.DataFrame, matches: list[tuple[tuple[Any, ...], _Partial]]) -> None:
        """Advance each key's partial matches over its released candidates, in order."""
        assert self.columns is not None
        n = ready.height
        keycols = [ready.get_column(k).to_list() for k in self.keys]
        keys = list(zip(*keycols, strict=True)) if keycols else [()] * n
        times = ready.get_column(_T).to_list()
        masks = ready.get_column(_MASK).to_list()
        if self.strict:
            ords = ready.get_column(_ORD).to_list()
            counts = ready.get_column(_N).to_list()
        else:
            ords = counts = [0] * n
        rows = ready.select(self.columns).rows()
        rank0 = self.rank
        self.rank += n
        i = 0
        while i < n:
            key = keys[i]
            partials = self.partials.get(key, [])
            base = self.next_ord.get(key, 0) if partials else 0
            j = i
            while j < n and keys[j] == key:
                t = times[j]
                if self.within is not None and partials:
                    partials = self._expire(key, partials, t, matches)
                partials = self._advance(key, partials, rank0 + j, base + ords[j], t, masks[j],
                                         rows[j], matches)
                j += 1
            if partials:
                self.partials[key] = partials
                self.next_ord[key] = base + counts[i]
            else:
                self.partials.pop(key, None)
                self.next_ord.pop(key, None)
            i = j

    def _advance(self, key: tuple[Any, ...], partials: list[_Partial], rank: int, ordinal: int,
                 t: int, mask: int, row: tuple[Any, ...],
                 matches: list[tuple[tuple[Any, ...], _Partial]]) -> list[_Partial]:
        """One event through a key's partial matches; completed matches go to ``matches``."""
        new: list[_Partial] = []
        done: list[_Partial] = []
        last = len(self.steps)
        iterative = self.iterative
        for p in partials:
            if p.target == last:  # waiting for the absence deadline
                if not mask & p.forbidden:
                    new.append(p)
                continue
            if p.strict:
                if ordinal == p.last_ord + 1 and mask & self.bits[p.target] and (
                        not iterative or self._accepts(p.target, p.events, p.greedy, mask, row)):
                    self._take(p.start_rank, p.start_ts, p.target, p.taken, p.events, rank,
                               ordinal, t, row, new, done)
                continue  # the very next event did not match: this branch ends
            if mask & self.bits[p.target] and (
                    not iterative or self._accepts(p.target, p.events, p.greedy, mask, row)):
                self._take(p.start_rank, p.start_ts, p.target, p.taken, p.events, rank, ordinal,
                           t, row, new, done)
            elif not mask & p.forbidden:
                new.append(p)
        if mask & self.bits[0] and (not iterative or self._accepts(0, (), (), mask, row)):
            if self.within is not None:
                heapq.heappush(self.deadlines, (t + self.within, rank, key))
            self._take(rank, t, 0, 0, (), rank, ordinal, t, row, new, done)
        if done:
            done.sort(key=_order)
            new = self._emit_matches(key, done, new, matches)
        elif self.held and key in self.held:  # a partial match that started earlier may be gone
            new = self._emit_matches(key, done, new, matches)
        return new

    def _accepts(self, step: int, events: Events, greedy: tuple[int, ...], mask: int,
                 row: tuple[Any, ...]) -> bool:
        """Whether ``step`` takes ``row`` after ``events`` (its condition's bit is set): its
        iterative condition holds, and no greedy step just left would take the row."""
        if self.check_fns is None:
            assert self.columns is not None
            cols = list(self.columns)
            self.check_fns = [None if c is None else c(cols) for c in self.checks]
        check = self.check_fns[step]
        if check is not None and not check(events, row):
            return False
        for g in greedy:
            if mask & self.bits[g]:
                other = self.check_fns[g]
                if other is None or other(events, row):
                    return False
        return True

    def _take(self, start_rank: int, start_ts: int, step: int, taken: int,
              events: tuple[tuple[int, int, int, tuple[Any, ...]], ...], rank: int,
              ordinal: int, t: int, row: tuple[Any, ...], new: list[_Partial],
              done: list[_Partial]) -> None:
        """Step ``step`` takes the event; branch into what may follow it."""
        events = (*events, (step, rank, t, row))
        taken += 1
        s = self.steps[step]
        more = s.max is None or taken < s.max
        if more:
            new.append(_Partial(start_rank, start_ts, step, taken, ordinal, s.consecutive, 0,
                                events))
        if taken >= s.min:
            self._proceed(start_rank, start_ts, step + 1, events, ordinal, new, done,
                          (step,) if more and s.greedy else ())

    def _proceed(self, start_rank: int, start_ts: int, step: int,
                 events: tuple[tuple[int, int, int, tuple[Any, ...]], ...], ordinal: int,
                 new: list[_Partial], done: list[_Partial], greedy: tuple[int, ...] = ()) -> None:
        """Wait for step ``step`` (and past it, if optional), or complete the match;
        ``greedy``: the greedy steps just left, whose events ``step`` may not take."""
        if step == len(self.steps):
            p = _Partial(start_rank, start_ts, step, 0, ordinal, False, self.absence, events)
            (new if self.absence else done).append(p)
            return
        s = self.steps[step]
        new.append(_Partial(start_rank, start_ts, step, 0, ordinal, s.strict,
                            self.forbidden[step], events, greedy))
        if s.optional:
            self._proceed(start_rank, start_ts, step + 1, events, ordinal, new, done,
                          (*greedy, step) if s.greedy else greedy)

    def _emit_matches(self, key: tuple[Any, ...], done: list[_Partial], partials: list[_Partial],
                      matches: list[tuple[tuple[Any, ...], _Partial]]) -> list[_Partial]:
        """Emit completed matches in order; a skip strategy prunes as it goes (every partial
        or completed match that started before the emitted one's :meth:`_resume` point)."""
        if not self.skip:
            matches.extend((key, m) for m in done)
            return partials
        if self.ordered:
            return self._emit_ordered(key, done, partials, matches)
        bound = None
        for m in done:
            if bound is not None and m.start_rank < bound:
                continue
            matches.append((key, m))
            b = self._resume(m)
            bound = b if bound is None else max(bound, b)
        if bound is None:
            return partials
        return [p for p in partials if p.start_rank >= bound]

    def _emit_ordered(self, key: tuple[Any, ...], done: list[_Partial],
                      partials: list[_Partial],
                      matches: list[tuple[tuple[Any, ...], _Partial]]) -> list[_Partial]:
        """``ordered`` emission: completed matches wait (in ``held``) while a partial match
        that started earlier is open; the earliest is emitted first and prunes the rest."""
        held = self.held.pop(key, [])
        if done:
            held = sorted([*held, *done], key=_order)
        while held:
            m = held[0]
            if any(p.start_rank < m.start_rank for p in partials):
                break
            matches.append((key, m))
            b = self._resume(m)
            held = [h for h in held[1:] if h.start_rank >= b]
            partials = [p for p in partials if p.start_rank >= b]
        if held:
            self.held[key] = held
        return partials

    def _resume(self, m: _Partial) -> int:
        """The rank where matching resumes after emitting ``m``: matches that started
        before it are pruned."""
        how = self.after_match
        if how == "skip_past_last":
            return m.events[-1][1] + 1
        if how == "skip_to_next":
            return m.start_rank + 1
        ranks = [e[1] for e in m.events if e[0] == self.skip_to]
        if not ranks:  # the step matched no event: nothing to skip to (the planner avoids it)
            return m.start_rank + 1
        return ranks[0] if how == "skip_to_first" else ranks[-1]

    def _expire(self, key: tuple[Any, ...], partials: list[_Partial], now: int,
                matches: list[tuple[tuple[Any, ...], _Partial]]) -> list[_Partial]:
        """Drop partial matches whose ``within`` ended by ``now``; absences among them fire."""
        assert self.within is not None
        within, last = self.within, len(self.steps)
        expired = [p for p in partials if p.start_ts + within <= now]
        if not expired:
            return partials
        kept = [p for p in partials if p.start_ts + within > now]
        fired = [p for p in expired if p.target == last and self.absence]
        if fired:
            fired.sort(key=lambda p: (p.start_ts, *_order(p)))
            kept = self._emit_matches(key, fired, kept, matches)
        elif self.held and key in self.held:
            kept = self._emit_matches(key, [], kept, matches)
        return kept

    # -- output -------------------------------------------------------------------------------
    def _output(self, matches: list[tuple[tuple[Any, ...], _Partial]]) -> pl.DataFrame:
        assert self.columns is not None and self.schema is not None
        cols = self.columns
        data: dict[str, list[Any]] = {k: [] for k in self.keys}
        data["match_start"], data["match_end"] = [], []
        for s in self.steps:
            data[s.name] = []
        for key, m in matches:
            for k, v in zip(self.keys, key, strict=True):
                data[k].append(v)
            data["match_start"].append(m.start_ts)
            data["match_end"].append(m.events[-1][2])
            per_step: list[list[dict[str, Any]]] = [[] for _ in self.steps]
            for step, _, _, row in m.events:
                per_step[step].append(dict(zip(cols, row, strict=True)))
            for s, got in zip(self.steps, per_step, strict=True):
                data[s.name].append(got if s.quantified else (got[0] if got else None))
        schema = self.output_schema(self.pattern, self.keys, self.schema, self.time)
        times = {"match_start": pl.Int64(), "match_end": pl.Int64()}
        out = pl.DataFrame(data, schema={**dict(schema), **times})
        if isinstance(self.time_dtype, pl.Datetime):
            tz = self.time_dtype.time_zone
            out = out.with_columns(
                pl.from_epoch(pl.col(c), "ms").dt.replace_time_zone(tz) for c in times
            )
        return out

    # -- checkpoints ----------------------------------------------------------------------------
    def snapshot(self) -> Any:
        return {
            "candidates": pl.concat(self.candidates) if self.candidates else None,
            "others": pl.concat(self.others) if self.others else None,
            "partials": {k: list(v) for k, v in self.partials.items()},
            "next_ord": dict(self.next_ord),
            "deadlines": list(self.deadlines),
            "held": {k: list(v) for k, v in self.held.items()},
            "seq": self.seq, "rank": self.rank, "watermark": self.watermark,
            "columns": self.columns, "schema": self.schema, "time_dtype": self.time_dtype,
        }

    def restore(self, state: Any) -> None:
        self.candidates = [state["candidates"]] if state["candidates"] is not None else []
        self.others = [state["others"]] if state["others"] is not None else []
        self.partials = {k: list(v) for k, v in state["partials"].items()}
        self.next_ord = dict(state["next_ord"])
        self.deadlines = list(state["deadlines"])
        self.held = {k: list(v) for k, v in state.get("held", {}).items()}
        self.seq, self.rank = state["seq"], state["rank"]
        self.watermark = state["watermark"]
        self.columns, self.schema = state["columns"], state["schema"]
        self.time_dtype = state["time_dtype"]

    def close(self) -> None:
        self.candidates, self.others, self.partials = [], [], {}
        self.held = {}


def _order(p: _Partial) -> tuple[Any, ...]:
    """Emission order of matches completed together: earliest start, then the longest, then
    by the events' order."""
    return (p.start_rank, -len(p.events), tuple(e[1] for e in p.events))


def _split(frames: list[pl.DataFrame], watermark: int) -> tuple[pl.DataFrame | None,
                                                                 list[pl.DataFrame]]:
    """(rows with event time before ``watermark``, the rest) of buffered ``frames``."""
    if not frames:
        return None, []
    frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical_relaxed")
    if frame.get_column(_T).max() < watermark:  # type: ignore[operator]
        return frame, []
    before = pl.col(_T) < watermark
    ready = frame.filter(before)
    rest = frame.filter(~before)
    return (ready if ready.height else None), ([rest] if rest.height else [])
