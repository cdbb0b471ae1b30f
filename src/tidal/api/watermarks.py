"""Watermark strategies: how a source says how far event time has progressed.

A watermark ``W`` asserts that no more events with timestamp ``< W`` are expected. Each
source partition tracks its own; a source's watermark is the minimum over its active
partitions, an operator's the minimum over its inputs.

>>> import tidal as td
>>> td.bounded_delay("200ms", idle="5s")
bounded_delay(200ms, idle=5000ms)
"""

from __future__ import annotations

from dataclasses import dataclass

from tidal._time import Duration, duration_ms

__all__ = ["BoundedDelay", "bounded_delay"]


@dataclass(frozen=True)
class BoundedDelay:
    """Watermark = highest timestamp seen minus ``delay_ms``.

    A partition that produces nothing for ``idle_ms`` of processing time stops holding the
    source's watermark back (``idle_ms=None``: never considered idle).
    """

    delay_ms: int
    idle_ms: int | None = None

    def __repr__(self) -> str:
        idle = f", idle={self.idle_ms}ms" if self.idle_ms is not None else ""
        return f"bounded_delay({self.delay_ms}ms{idle})"


def bounded_delay(delay: Duration = 0, idle: Duration | None = None) -> BoundedDelay:
    """Events may arrive up to ``delay`` out of order; ``idle`` marks a quiet partition idle."""
    return BoundedDelay(
        duration_ms(delay, "watermark delay"),
        None if idle is None else duration_ms(idle, "idle timeout"),
    )
