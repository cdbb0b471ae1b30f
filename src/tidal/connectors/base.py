"""The contracts between connectors and the runtime.

A connector author implements these classes and never needs to read the runtime.

Sources
-------
A :class:`Source` is split into named partitions. For each partition the runtime calls
:meth:`Source.open` with the position to resume from (``None``: the beginning) and then
polls the returned :class:`SourcePartition`:

- ``poll(max_rows)`` must **not block**: it returns the rows available now (at most
  ``max_rows``) as a Polars DataFrame or Arrow table, or ``None`` when nothing is ready.
  A partition that waits on I/O does so in its own thread and calls ``ctx.wake()`` when
  data arrives, so an idle pipeline sleeps instead of spinning.
- ``done`` becomes true when a bounded partition has returned its last row.
- ``position()`` is the JSON-serializable position *after* the last row returned; opening
  the partition again at that position continues exactly there (that is what makes
  recovery exact).
- Records that cannot be decoded go to ``ctx.dead_letter(...)`` with the reason; they are
  never dropped silently and never stop the pipeline.

Sinks
-----
A :class:`Sink` receives every output batch through ``write``; ``flush`` is called at the end
of each step of the runtime loop (and before a checkpoint), ``close`` once at the end.
``on_watermark(wm)`` tells a sink that acts on event-time progress (a file sink committing
partitions) that every row with an earlier event time has reached it: called when its input
watermark advances, after the rows delivered before; an exactly-once sink gets it after each
checkpoint's ``apply``, with the watermark of that checkpoint, so it never acts on rows that
are not committed yet.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

__all__ = [
    "Sink", "SinkContext", "Source", "SourceContext", "SourcePartition", "TransactionalSink",
]

Batch = pl.DataFrame | pa.Table | pa.RecordBatch


@dataclass
class SourceContext:
    """What the runtime hands a source partition when it opens it."""

    flow: str
    source: str
    partition: str
    dead_letter: Callable[[Any, str, Any], None]
    """``dead_letter(record, reason, position)``: keep an undecodable record with its reason."""
    wakeup: threading.Event = field(default_factory=threading.Event)

    def wake(self) -> None:
        """Tell the runtime that new data is ready (safe from any thread)."""
        self.wakeup.set()


class SourcePartition(ABC):
    """One partition of a source being read; see the module docstring for the rules."""

    @abstractmethod
    def poll(self, max_rows: int) -> Batch | None:
        """Return up to ``max_rows`` rows available now, or ``None``; never block."""

    @property
    def done(self) -> bool:
        """True once a bounded partition has returned all of its rows."""
        return False

    @abstractmethod
    def position(self) -> Any:
        """JSON-serializable position after the last row returned by :meth:`poll`."""

    def next_awake(self) -> float | None:
        """When (``time.monotonic()`` seconds) this partition expects its next rows, if it
        knows (a paced generator does); the runtime then sleeps until then instead of
        polling. ``None``: unknown, wake on ``ctx.wake()`` or the runtime's short delay."""
        return None

    def commit(self, position: Any) -> None:  # noqa: B027 - optional hook
        """Everything up to ``position`` is processed (and, with checkpoints, committed):
        a partition may acknowledge it upstream, e.g. commit a consumer group's offset.
        Never needed for correctness: recovery uses the checkpoint's positions."""

    def watermark(self) -> int | None:
        """A watermark the partition knows itself (epoch ms), or ``None`` to let the flow's
        watermark strategy derive one from the timestamps seen (the usual case)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; called once."""


class Source(ABC):
    """A partitioned input of a flow."""

    name: str = "source"

    @abstractmethod
    def partitions(self) -> list[str]:
        """Names of the partitions, stable across restarts."""

    @abstractmethod
    def open(self, partition: str, position: Any, ctx: SourceContext) -> SourcePartition:
        """Open ``partition`` to read from ``position`` (``None``: from the beginning)."""

    def schema(self) -> pl.Schema | None:
        """The schema of the rows, if known before running (used to validate pipelines)."""
        return None

    @property
    def bounded(self) -> bool:
        """Whether every partition ends (so the flow finishes when they are read)."""
        return False


@dataclass
class SinkContext:
    """What the runtime hands a sink when it opens it."""

    flow: str
    sink: str
    exactly_once: bool = False
    """True when the flow checkpoints and the sink is a :class:`TransactionalSink`: its rows
    then arrive through ``apply`` at each checkpoint instead of through ``write``."""


class Sink(ABC):
    """A destination of output batches."""

    name: str = "sink"

    def open(self, ctx: SinkContext) -> None:  # noqa: B027 - optional hook
        """Prepare to receive batches (connect, create files)."""

    @abstractmethod
    def write(self, batch: pl.DataFrame) -> None:
        """Receive one batch of output rows."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Make what was written so far visible/durable; called at the end of each step."""

    def on_watermark(self, watermark: int) -> None:  # noqa: B027 - optional hook
        """Every row with an event time before ``watermark`` (epoch ms) has been written (or,
        exactly-once, applied); see the module docstring for when it is called."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources; called once at the end."""


class TransactionalSink(Sink):
    """A sink that takes part in checkpoints, for exactly-once results.

    When the flow checkpoints, the runtime holds each epoch's rows, stores them in the
    checkpoint, and after the checkpoint is durable calls ``apply(rows, checkpoint_id)``.
    ``apply`` must be atomic and idempotent: it records ``checkpoint_id`` in the target in
    the same step as the rows, and does nothing when ``committed_checkpoint()`` already
    returns an id at least as high. After a crash, recovery calls ``apply`` again with the
    rows of the checkpoint it restores, so rows are written exactly once.
    """

    @abstractmethod
    def committed_checkpoint(self) -> int | None:
        """The id of the last checkpoint whose rows the target holds (None: none)."""

    @abstractmethod
    def apply(self, rows: pl.DataFrame, checkpoint_id: int) -> None:
        """Atomically write ``rows`` and record ``checkpoint_id`` (no-op if already done)."""
