"""Window specifications: which windows an event belongs to.

Windows are half-open ``[start, end)`` in event time (epoch milliseconds) and fire when the
watermark reaches ``end``. A spec only describes windows; the window operator
(:mod:`tidal.operators.window`) keeps the per-key state.

>>> import tidal as td
>>> td.tumbling("10s"), td.sliding("10s", every="2s"), td.session(gap="30s")
(tumbling(10s), sliding(10s, every=2s), session(gap=30s))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tidal._time import Duration, duration_ms
from tidal.errors import ConfigError

__all__ = ["Session", "Sliding", "Tumbling", "WindowSpec", "session", "sliding", "tumbling"]


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


def session(gap: Duration) -> Session:
    """Per-key sessions that end ``gap`` after their last event: ``session("30s")``."""
    return Session(_positive(gap, "session gap"))
