"""Window specifications: which windows an event belongs to.

Windows are half-open ``[start, end)`` in event time (epoch milliseconds) and fire when the
watermark reaches ``end``. A spec only describes windows; the window operator
(:mod:`tidal.operators.window`) keeps the per-key state.

>>> import tidal as td
>>> td.tumbling("10s"), td.sliding("10s", every="2s"), td.session(gap="30s")
(tumbling(10s), sliding(10s, every=2s), session(gap=30s))
>>> td.cumulate("1d", step="1h")
cumulate(1d, step=1h)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tidal._time import Duration, duration_ms
from tidal.errors import ConfigError

__all__ = ["Cumulative", "Session", "Sliding", "Tumbling", "WindowSpec", "cumulate", "session",
           "sliding", "tumbling"]


class WindowSpec:
    """Base of the window kinds."""


def _fmt(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


@dataclass(frozen=True)
class Tumbling(WindowSpec):
    """Fixed-size, non-overlapping windows aligned to ``offset_ms``."""

    size_ms: int
    offset_ms: int = 0

    @property
    def pane_ms(self) -> int:
        return self.size_ms

    @property
    def every_ms(self) -> int:
        return self.size_ms

    def __repr__(self) -> str:
        return f"tumbling({_fmt(self.size_ms)})"


@dataclass(frozen=True)
class Sliding(WindowSpec):
    """Windows of ``size_ms`` starting every ``every_ms``; an event is in ``size/every`` of them."""

    size_ms: int
    every_ms: int
    offset_ms: int = 0

    @property
    def pane_ms(self) -> int:
        """The largest slice of time that never straddles a window boundary."""
        return math.gcd(self.size_ms, self.every_ms)

    def __repr__(self) -> str:
        return f"sliding({_fmt(self.size_ms)}, every={_fmt(self.every_ms)})"


@dataclass(frozen=True)
class Cumulative(WindowSpec):
    """Windows that share a ``size_ms``-aligned start and grow by ``step_ms``: for each start
    ``s``, the windows ``[s, s + step)``, ``[s, s + 2*step)``, ..., ``[s, s + size)`` (Flink's
    CUMULATE). An event is in every window of its start that ends after it."""

    size_ms: int
    step_ms: int
    offset_ms: int = 0

    @property
    def pane_ms(self) -> int:
        """The slice of time each window grows by: every window is a union of whole panes."""
        return self.step_ms

    @property
    def every_ms(self) -> int:
        """How often a new window start comes: once per ``size``."""
        return self.size_ms

    def __repr__(self) -> str:
        return f"cumulate({_fmt(self.size_ms)}, step={_fmt(self.step_ms)})"


@dataclass(frozen=True)
class Session(WindowSpec):
    """Per-key windows that close after ``gap_ms`` without events; touching sessions merge."""

    gap_ms: int

    def __repr__(self) -> str:
        return f"session(gap={_fmt(self.gap_ms)})"


def _positive(value: Duration, what: str) -> int:
    ms = duration_ms(value, what)
    if ms <= 0:
        raise ConfigError(f"bad {what} {value!r}: it must be longer than 0 ms")
    return ms


def tumbling(size: Duration, offset: Duration = 0) -> Tumbling:
    """Fixed windows of ``size``: ``tumbling("10s")`` gives [0s, 10s), [10s, 20s), ..."""
    return Tumbling(_positive(size, "window size"), duration_ms(offset, "window offset"))


def sliding(size: Duration, every: Duration, offset: Duration = 0) -> Sliding:
    """Overlapping windows of ``size`` starting ``every``: ``sliding("10s", every="2s")``."""
    size_ms = _positive(size, "window size")
    every_ms = _positive(every, "window slide")
    if every_ms > size_ms:
        raise ConfigError(
            f"sliding window slide {_fmt(every_ms)} is longer than its size {_fmt(size_ms)}: "
            "events between windows would be lost; use a slide <= size"
        )
    if every_ms == size_ms:
        return Sliding(size_ms, every_ms, duration_ms(offset, "window offset"))
    return Sliding(size_ms, every_ms, duration_ms(offset, "window offset"))


def cumulate(size: Duration, step: Duration, offset: Duration = 0) -> Cumulative:
    """Growing windows: ``cumulate("1d", step="1h")`` gives, each day, the windows [00:00,
    01:00), [00:00, 02:00), ..., [00:00, 24:00), for running totals that reset every day."""
    size_ms = _positive(size, "window size")
    step_ms = _positive(step, "window step")
    if size_ms % step_ms:
        raise ConfigError(
            f"cumulate window size {_fmt(size_ms)} is not a multiple of its step {_fmt(step_ms)}: "
            "the last window would not end at the size; use a step that divides the size"
        )
    return Cumulative(size_ms, step_ms, duration_ms(offset, "window offset"))


def session(gap: Duration) -> Session:
    """Per-key sessions that end ``gap`` after their last event: ``session("30s")``."""
    return Session(_positive(gap, "session gap"))
