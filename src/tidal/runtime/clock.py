"""Processing time. The runtime reads time only through a clock, so tests can drive it."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(ABC):
    """Source of processing time in epoch milliseconds."""

    @abstractmethod
    def now(self) -> int:
        """Current processing time, epoch ms."""

    def sleep(self, seconds: float) -> None:  # noqa: B027 - optional: a manual clock never waits
        """Wait (the manual clock does not)."""


class SystemClock(Clock):
    """Wall-clock time."""

    def now(self) -> int:
        return time.time_ns() // 1_000_000

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class ManualClock(Clock):
    """A clock that moves only when told to (used by :mod:`tidal.testing`)."""

    def __init__(self, start_ms: int = 0) -> None:
        self.ms = start_ms

    def now(self) -> int:
        return self.ms

    def advance(self, ms: int) -> None:
        """Move time forward by ``ms``."""
        self.ms += ms
