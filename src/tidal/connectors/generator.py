"""A rate-controlled synthetic source (the demo's input), seekable by event number."""

from __future__ import annotations

import time
from typing import Any

import polars as pl

from tidal.connectors.base import Source, SourceContext, SourcePartition
from tidal.errors import ConfigError
from tidal.generators import KINDS

__all__ = ["Generator", "generator"]


class _GeneratorPartition(SourcePartition):
    def __init__(self, src: Generator, position: dict[str, int] | None) -> None:
        self.src = src
        now = time.time_ns() // 1_000_000
        self.k = (position or {}).get("k", 0)
        self.base = (position or {}).get("base", now if src.paced else src.base_ms)
        self.started = time.monotonic() - self.k / src.rate if src.paced else 0.0
        self.block: pl.DataFrame | None = None
        self.block_start = 0

    def poll(self, max_rows: int) -> pl.DataFrame | None:
        src = self.src
        n = max_rows
        if src.events is not None:
            n = min(n, src.events - self.k)
        if src.paced:
            due = int((time.monotonic() - self.started) * src.rate) - self.k
            if due < min(src.rate / 1000, n):
                return None  # hand out about a millisecond of events at a time
            n = min(n, due)
        if n <= 0:
            return None
        if not src.paced:
            out = src.make(src.seed, self.k, n, self.base, 1e6 / src.rate)
        else:
            out = self._from_block(n)
        self.k += n
        return out

    def _from_block(self, n: int) -> pl.DataFrame:
        """Paced polls ask for a few rows at a time; generating them in blocks of ~0.1 s
        keeps the per-call cost of building columns from dominating (the rows are the
        same: every value is a function of the event number)."""
        src = self.src
        block = max(1024, int(src.rate / 10))
        if self.block is None or not (self.block_start <= self.k and
                                      self.k + n <= self.block_start + self.block.height):
            size = max(block, n)
            if src.events is not None:
                size = min(size, src.events - self.k)
            self.block = src.make(src.seed, self.k, size, self.base, 1e6 / src.rate)
            self.block_start = self.k
        return self.block.slice(self.k - self.block_start, n)

    def next_awake(self) -> float | None:
        if not self.src.paced:
            return None
        # wake when about a millisecond of events is due (or the next one, when slower), so a
        # fast paced source costs ~1,000 wake-ups a second, not one per event
        due = max(1.0, self.src.rate / 1000)
        return self.started + (self.k + due) / self.src.rate

    @property
    def done(self) -> bool:
        return self.src.events is not None and self.k >= self.src.events

    def position(self) -> dict[str, int]:
        return {"k": self.k, "base": self.base}


class Generator(Source):
    """Synthetic events of ``kind`` at ``rate`` per second of event time.

    ``paced=True`` releases each event when the wall clock reaches its time, so event time
    follows real time (a live demo); ``paced=False`` produces as fast as it can. ``events``
    bounds the run (``None``: forever). The ``ts`` column holds each event's time.
    """

    name = "generator"

    def __init__(self, kind: str, rate: float, events: int | None, seed: int, paced: bool,
                 base_ms: int) -> None:
        if kind not in KINDS:
            raise ConfigError(f"unknown generator kind {kind!r}; choose one of {sorted(KINDS)}")
        if rate <= 0:
            raise ConfigError(f"generator rate must be positive, not {rate!r}")
        self.kind, self.make = kind, KINDS[kind]
        self.rate, self.events, self.seed, self.paced, self.base_ms = rate, events, seed, paced, base_ms

    def partitions(self) -> list[str]:
        return ["0"]

    def open(self, partition: str, position: Any, ctx: SourceContext) -> SourcePartition:
        return _GeneratorPartition(self, position)

    def schema(self) -> pl.Schema:
        return self.make(self.seed, 0, 1, 0, 1.0).schema

    @property
    def bounded(self) -> bool:
        return self.events is not None


def generator(kind: str = "transactions", rate: float = 1_000, events: int | None = None,
              seed: int = 0, paced: bool = True, base_ms: int = 1_767_225_600_000) -> Generator:
    """Synthetic ``"transactions"`` or ``"clicks"`` at ``rate`` events/s (see
    :mod:`tidal.generators`); ``paced=False`` runs at full speed from ``base_ms``."""
    return Generator(kind, rate, events, seed, paced, base_ms)
