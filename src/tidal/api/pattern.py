"""Event patterns per key (complex event processing), in event time.

A pattern is a sequence of named steps, each a Polars condition, joined by a contiguity
(``next``: the very next event of the key; ``followed_by``: the first matching event
later on), with quantifiers (``times``, ``one_or_more``, ``optional``) on the step just
added, negations (``not_followed_by``) and a time bound (``within``).
``keyed.match(pattern)`` runs it (see :class:`tidal.operators.cep.PatternMatcher` and
docs/patterns.md for the exact semantics).

>>> import polars as pl, tidal as td
>>> p = (td.pattern("small", pl.col("amount") < 1)
...        .followed_by("large", pl.col("amount") > 500).within("5m"))
>>> p
pattern('small').followed_by('large').within(300000ms)
>>> flow = td.Flow("fraud")
>>> tx = flow.source(td.sources.memory([
...     {"card": "c1", "amount": 0.5, "t": 0}, {"card": "c1", "amount": 20.0, "t": 1_000},
...     {"card": "c1", "amount": 900.0, "t": 2_000}]), timestamp="t")
>>> rows = []; tx.key_by("card").match(p, name="tiny_then_large").sink(td.sinks.callback(rows.extend))
>>> _ = flow.run(quiet=True)
>>> [(r["card"], r["match_start"], r["match_end"], r["large"]["amount"]) for r in rows]
[('c1', 0, 2000, 900.0)]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import polars as pl

from tidal._time import Duration, duration_ms
from tidal.errors import ConfigError, PlanError
from tidal.operators.cep import AFTER_MATCH, CompiledPattern, PatternMatcher, Step
from tidal.operators.timeattr import TimeAttr
from tidal.plan import caller_location, infer_schema

if TYPE_CHECKING:
    from tidal.api.stream import KeyedStream, Stream

__all__ = ["Pattern", "pattern"]

RESERVED = ("match_start", "match_end")


@dataclass(frozen=True)
class _Step:
    name: str
    condition: pl.Expr
    contiguity: Literal["start", "next", "followed_by", "not_followed_by"]
    min: int = 1
    max: int | None = 1
    optional: bool = False
    consecutive: bool = False
    quantified: bool = False

    def text(self) -> str:
        if self.contiguity == "start":
            out = f"pattern({self.name!r})"
        else:
            out = f".{self.contiguity}({self.name!r})"
        if self.quantified:
            out += ".one_or_more()" if self.max is None else f".times({self.max})"
        if self.consecutive:
            out += ".consecutive()"
        if self.optional:
            out += ".optional()"
        return out


class Pattern:
    """A sequence of event conditions to find in each key's events; build one with
    :func:`tidal.pattern`. Every method returns a new pattern (patterns are immutable)."""

    def __init__(self, steps: tuple[_Step, ...], within_ms: int | None = None) -> None:
        self._steps = steps
        self._within = within_ms

    # -- building -------------------------------------------------------------------------
    def _add(self, name: str, condition: pl.Expr, contiguity: str) -> Pattern:
        where = caller_location()
        _check_step(name, condition, f".{contiguity}", where)
        if any(s.name == name for s in self._steps):
            raise PlanError(
                f"pattern step {name!r} at {where}: the pattern already has a step of that "
                "name; each step needs its own name (it becomes an output column)"
            )
        if self._within is not None:
            raise PlanError(
                f"pattern step {name!r} at {where}: add every step before .within(...)"
            )
        step = _Step(name, condition, contiguity)  # type: ignore[arg-type]
        return Pattern((*self._steps, step), self._within)

    def next(self, name: str, condition: pl.Expr) -> Pattern:
        """Strict contiguity: the key's very next event must match ``condition``."""
        return self._add(name, condition, "next")

    def followed_by(self, name: str, condition: pl.Expr) -> Pattern:
        """Relaxed contiguity: the first later event of the key matching ``condition``
        (events in between that do not match are skipped)."""
        return self._add(name, condition, "followed_by")

    def not_followed_by(self, name: str, condition: pl.Expr) -> Pattern:
        """Negation: no event matching ``condition`` may come between the previous step
        and the next one. At the end of a pattern (with :meth:`within`) it is an *absence*:
        the match fires when the watermark passes ``start + within`` with no such event."""
        p = self._add(name, condition, "not_followed_by")
        prev = self._steps[-1]
        if prev.optional:
            raise PlanError(
                f"not_followed_by({name!r}) at {caller_location()}: it follows the optional "
                f"step {prev.name!r}, which makes the negation ambiguous; put it after a "
                "required step"
            )
        return p

    def _quantify(self, what: str, **changes: object) -> Pattern:
        where = caller_location()
        last = self._steps[-1]
        if last.contiguity == "not_followed_by":
            raise PlanError(
                f"{what} at {where}: step {last.name!r} is a negation; quantifiers apply to "
                "positive steps (pattern, next, followed_by)"
            )
        if self._within is not None:
            raise PlanError(f"{what} at {where}: quantify the step before .within(...)")
        if what != ".optional()" and last.quantified:
            raise PlanError(f"{what} at {where}: step {last.name!r} already has a quantifier")
        if what == ".optional()":
            if last.optional:
                raise PlanError(f"{what} at {where}: step {last.name!r} is already optional")
            if last.contiguity == "start":
                raise PlanError(
                    f"{what} at {where}: the first step {last.name!r} cannot be optional; "
                    "a match starts with a required event"
                )
            if len(self._steps) >= 2 and self._steps[-2].contiguity == "not_followed_by":
                raise PlanError(
                    f"{what} at {where}: step {last.name!r} follows the negation "
                    f"{self._steps[-2].name!r}, which makes the negation ambiguous; make a "
                    "required step follow the negation"
                )
        return Pattern((*self._steps[:-1], replace(last, **changes)), self._within)  # type: ignore[arg-type]

    def times(self, n: int) -> Pattern:
        """The last step matches exactly ``n`` events (relaxed contiguity between them,
        unless :meth:`consecutive`)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"times at {caller_location()}: n must be an integer >= 1, not {n!r}")
        return self._quantify(f".times({n})", min=n, max=n, quantified=True)

    def one_or_more(self) -> Pattern:
        """The last step matches one or more events; each count gives its own match."""
        return self._quantify(".one_or_more()", min=1, max=None, quantified=True)

    def consecutive(self) -> Pattern:
        """The events of a ``times``/``one_or_more`` step must follow each other directly."""
        last = self._steps[-1]
        if not last.quantified or last.consecutive:
            raise PlanError(
                f".consecutive() at {caller_location()}: it applies once to a step with "
                ".times(n) or .one_or_more()"
            )
        return Pattern((*self._steps[:-1], replace(last, consecutive=True)), self._within)

    def optional(self) -> Pattern:
        """The last step may also be skipped (both alternatives are matched)."""
        return self._quantify(".optional()", optional=True)

    def within(self, duration: Duration) -> Pattern:
        """A match must end less than ``duration`` of event time after its first event;
        partial matches older than that are dropped, which bounds the matcher's state."""
        where = caller_location()
        if self._within is not None:
            raise PlanError(f"within at {where}: the pattern already has within(...)")
        ms = duration_ms(duration, "pattern within")
        if ms <= 0:
            raise ConfigError(f"within at {where}: the duration must be positive, not {duration!r}")
        return Pattern(self._steps, ms)

    # -- reading ----------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """The step names, in order (negations included)."""
        return [s.name for s in self._steps]

    @property
    def within_ms(self) -> int | None:
        """The time bound in milliseconds, or None."""
        return self._within

    def __repr__(self) -> str:
        text = "".join(s.text() for s in self._steps)
        return text + (f".within({self._within}ms)" if self._within is not None else "")

    def signature(self) -> str:
        """The pattern with its conditions, recorded with the matcher's checkpointed state."""
        conds = ", ".join(f"{s.name}: {s.condition}" for s in self._steps)
        return f"{self!r} [{conds}]"

    def compile(self, where: str = "?") -> CompiledPattern:
        """The matcher's form: positive steps, each with the negations that precede it."""
        steps: list[Step] = []
        conditions: list[pl.Expr] = []
        pending: list[int] = []
        for s in self._steps:
            conditions.append(s.condition)
            idx = len(conditions) - 1
            if s.contiguity == "not_followed_by":
                pending.append(idx)
                continue
            steps.append(Step(
                name=s.name, cond=idx, strict=s.contiguity == "next", min=s.min, max=s.max,
                optional=s.optional, consecutive=s.consecutive, quantified=s.quantified,
                forbidden=tuple(pending),
            ))
            pending = []
        if pending and self._within is None:
            raise PlanError(
                f"match at {where}: the pattern ends with not_followed_by"
                f"({self._steps[-1].name!r}) but has no .within(...); an absence needs a time "
                "limit, e.g. .within('60s')"
            )
        if pending and steps[-1].optional:
            raise PlanError(
                f"match at {where}: the absence {self._steps[-1].name!r} follows the optional "
                f"step {steps[-1].name!r}; put it after a required step"
            )
        return CompiledPattern(tuple(steps), tuple(pending), tuple(conditions), self._within)


def pattern(name: str, condition: pl.Expr) -> Pattern:
    """Start a pattern whose first step, ``name``, matches events where ``condition`` holds.

    >>> import polars as pl, tidal as td
    >>> td.pattern("open", pl.col("door") == "open").not_followed_by(
    ...     "motion", pl.col("kind") == "motion").within("1m")
    pattern('open').not_followed_by('motion').within(60000ms)
    """
    where = caller_location()
    _check_step(name, condition, "pattern", where)
    return Pattern((_Step(name, condition, "start"),))


def _check_step(name: str, condition: object, method: str, where: str) -> None:
    if not isinstance(name, str) or not name:
        raise PlanError(f"{method} at {where}: the step name must be a non-empty string, not {name!r}")
    if not isinstance(condition, pl.Expr):
        raise PlanError(
            f"{method}({name!r}) at {where}: the condition must be a Polars expression such "
            f"as pl.col('amount') > 500, got {type(condition).__name__}"
        )


def match(keyed: KeyedStream, p: Pattern, *, after_match: str = "no_skip",
          name: str | None = None) -> Stream:
    """``keyed.match(p)``: build the matcher step (see :meth:`tidal.KeyedStream.match`)."""
    where = caller_location()
    stream, keys = keyed.stream, keyed.keys
    if not isinstance(p, Pattern):
        raise PlanError(
            f"match at {where}: expected a pattern built with td.pattern(...), got "
            f"{type(p).__name__}"
        )
    if after_match not in AFTER_MATCH:
        raise ConfigError(
            f"match at {where}: after_match must be one of {', '.join(map(repr, AFTER_MATCH))}, "
            f"not {after_match!r}"
        )
    time = stream.node.time
    if time is None:
        raise PlanError(
            f"match at {where}: stream {stream.name!r} has no event time; give the source a "
            "timestamp column (flow.source(..., timestamp='col'))"
        )
    compiled = p.compile(where)
    clash = [n for n in p.names if n in keys or n in RESERVED]
    if clash:
        raise PlanError(
            f"match at {where}: step name {clash[0]!r} is also a key or match_start/match_end "
            "column of the output; rename the step"
        )
    schema = stream.schema
    if schema is not None:
        for s, cond in zip(p.names, compiled.conditions, strict=True):
            out = infer_schema(f"match step {s!r}", where, schema,
                               lambda lf, c=cond: lf.select(c.alias("__c")))
            assert out is not None
            if out["__c"] != pl.Boolean:
                raise PlanError(
                    f"match at {where}: the condition of step {s!r} gives {out['__c']}, not "
                    "a boolean; write a comparison such as pl.col('amount') > 500"
                )
    out_schema = None if schema is None else PatternMatcher.output_schema(
        compiled, keys, schema, time)
    if compiled.absence:
        assert compiled.within_ms is not None
        # absences are emitted when the watermark passes match_start + within: their event
        # time is the last instant of that span, so downstream windows see them on time
        out_time = TimeAttr("match_start", compiled.within_ms - 1)
    else:
        out_time = TimeAttr("match_end")
    label = f"match[{','.join(keys)}]({','.join(p.names)})"
    return stream._then(
        "match", label, lambda n: PatternMatcher(n, keys, time, compiled, after_match),
        schema=out_schema, time=out_time, name=name, stateful=True, where=where,
        signature=f"{label} {p.signature()} after_match={after_match}",
    )
