"""The shape every physical operator has.

An operator is batch-first: the one required method is :meth:`Operator.on_batch`. Default
hooks cover the rest of the lifecycle, in the order the runtime calls them:

1. ``open(ctx)`` once, before any data;
2. ``on_batch(batch, port)`` for each input batch (``port`` is the input's index);
3. ``on_watermark(watermark)`` after the batches that moved event time forward; results that
   the watermark completes are emitted here, *before* the watermark is passed downstream;
4. ``on_timer(now_ms)`` every ``timer_interval_ms`` of processing time, if set;
5. ``snapshot()`` / ``restore(state)`` for checkpoints (stateful operators only);
6. ``close()`` once, after the final watermark.

Operators emit through ``ctx.emit(batch, port="out")`` and send records they cannot process
to ``ctx.dead_letter(records, reason)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from tidal._time import MIN_TIME

__all__ = ["Operator", "OperatorContext"]


@dataclass
class OperatorContext:
    """The runtime's side of an operator: where its output and bad records go."""

    name: str
    emit: Callable[[pl.DataFrame, str], None]
    dead_letter: Callable[[pl.DataFrame | list[dict[str, Any]], str], None]
    now: Callable[[], int]
    """Processing time, epoch ms (a manual clock under :mod:`tidal.testing`)."""
    count_late: Callable[[int], None]


class Operator(ABC):
    """Base class of physical operators (see the module docstring for the lifecycle)."""

    timer_interval_ms: int | None = None
    stateful: bool = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.watermark = MIN_TIME
        self.ctx: OperatorContext

    def open(self, ctx: OperatorContext) -> None:
        """Keep the context; override to set up more."""
        self.ctx = ctx

    def emit(self, batch: pl.DataFrame, port: str = "out") -> None:
        """Send ``batch`` downstream on ``port`` (empty batches are dropped)."""
        if batch.height:
            self.ctx.emit(batch, port)

    @abstractmethod
    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        """Process one input batch."""

    def on_watermark(self, watermark: int) -> None:
        """Event time reached ``watermark``: emit what it completes (default: nothing)."""
        self.watermark = watermark

    def on_timer(self, now_ms: int) -> None:  # noqa: B027 - optional hook
        """Processing-time tick, every ``timer_interval_ms``."""

    def snapshot(self) -> Any:
        """State to checkpoint (stateless operators: ``None``)."""
        return None

    def restore(self, state: Any) -> None:  # noqa: B027 - optional hook
        """Load state written by :meth:`snapshot`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """End of input, after the final watermark."""
