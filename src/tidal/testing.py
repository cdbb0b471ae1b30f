"""Deterministic event-time tests of your pipelines.

A :class:`Harness` feeds events step by step, moves the watermark and processing time
explicitly, and shows what each output received since you last looked, so tests of windows,
lateness and timers need no sleeps and no real clock:

>>> import tidal as td
>>> from tidal.testing import Harness
>>> h = Harness(timestamp="ts")
>>> counts = h.collect(h.stream.key_by("k").window(td.tumbling("10s")).agg(n=td.agg.count()))
>>> h.add({"k": "a", "ts": 1_000}, {"k": "a", "ts": 9_999})
>>> counts.take()          # the window is still open
[]
>>> h.advance_watermark(10_000)
>>> counts.take()
[{'k': 'a', 'window_start': 0, 'window_end': 10000, 'n': 2}]
>>> h.add({"k": "a", "ts": 5_000})   # behind the watermark: late
>>> h.late_count
1
"""

from __future__ import annotations

from collections import deque
from typing import Any

import polars as pl

from tidal._time import MAX_TIME, MIN_TIME, Duration, duration_ms
from tidal.api.flow import Flow
from tidal.api.stream import Stream
from tidal.connectors.base import Sink, Source, SourceContext, SourcePartition
from tidal.connectors.memory import Collect
from tidal.runtime.clock import ManualClock
from tidal.runtime.executor import Executor
from tidal.runtime.ingest import to_polars

__all__ = ["Harness", "Output"]


class _ScriptPartition(SourcePartition):
    def __init__(self) -> None:
        self.queue: deque[pl.DataFrame] = deque()
        self.count = 0
        self.mark: int | None = MIN_TIME
        self.ended = False

    def poll(self, max_rows: int) -> pl.DataFrame | None:
        if not self.queue:
            return None
        batch = self.queue.popleft()
        self.count += batch.height
        return batch

    def watermark(self) -> int | None:
        return self.mark

    @property
    def done(self) -> bool:
        return self.ended and not self.queue

    def position(self) -> int:
        return self.count


class _ScriptSource(Source):
    name = "input"

    def __init__(self, schema: pl.Schema | None) -> None:
        self.part = _ScriptPartition()
        self._schema = schema

    def partitions(self) -> list[str]:
        return ["0"]

    def open(self, partition: str, position: Any, ctx: SourceContext) -> SourcePartition:
        return self.part

    def schema(self) -> pl.Schema | None:
        return self._schema


class Output:
    """What one collected stream received: :meth:`take` the new rows, or read :attr:`rows`."""

    def __init__(self, sink: Collect) -> None:
        self.sink = sink
        self.seen = 0

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every row received so far."""
        return self.sink.rows

    def take(self) -> list[dict[str, Any]]:
        """The rows received since the previous ``take``."""
        rows = self.sink.rows
        new, self.seen = rows[self.seen:], len(rows)
        return new


class Harness:
    """A flow with one scripted input, a manual watermark and a manual clock.

    - ``timestamp``: the input's event-time column (omit for no event time);
    - ``schema``: declared input types (lets the pipeline be validated before data arrives);
    - ``start_ms``: initial processing time of the manual clock.

    The watermark is entirely yours: it moves only with :meth:`advance_watermark` (and to
    +inf with :meth:`finish`), never from the events' timestamps.
    """

    def __init__(self, timestamp: str | None = None, schema: dict[str, Any] | None = None,
                 start_ms: int = 0, name: str = "test") -> None:
        self.flow = Flow(name)
        self.clock = ManualClock(start_ms)
        self.source = _ScriptSource(None if schema is None else pl.Schema(schema))
        self.stream: Stream = self.flow.source(self.source, timestamp=timestamp,
                                               schema=schema, name="input")
        self._dead = Collect()
        self.flow.dead_letters().sink(self._dead, name="__dead_letters")
        self.dead_letters = Output(self._dead)
        """Dead letters received so far (an :class:`Output`)."""
        self._ex: Executor | None = None

    def collect(self, stream: Stream) -> Output:
        """Capture everything ``stream`` emits."""
        sink = Collect()
        stream.sink(sink)
        return Output(sink)

    def sink(self, stream: Stream, sink: Sink) -> None:
        """Send ``stream`` to a real sink as well."""
        stream.sink(sink)

    @property
    def executor(self) -> Executor:
        """The executor, opened on first use (after the pipeline is built)."""
        if self._ex is None:
            self._ex = self.flow.executor(clock=self.clock, dead_letters_to_log=False,
                                          max_batch_rows=1 << 30)
            self._ex.open()
        return self._ex

    def add(self, *records: dict[str, Any] | pl.DataFrame) -> None:
        """Feed records (dicts, or one frame) as one batch and process it."""
        if len(records) == 1 and not isinstance(records[0], dict):
            batch = to_polars(records[0])
        else:
            batch = pl.from_dicts(list(records), infer_schema_length=None)
        ex = self.executor
        self.source.part.queue.append(batch)
        ex.step()

    def advance_watermark(self, to: int) -> None:
        """Declare that no events before ``to`` (epoch ms) will come; fires what completes."""
        ex = self.executor
        self.source.part.mark = max(self.source.part.mark or MIN_TIME, to)
        ex.step()

    def advance_processing_time(self, by: Duration) -> None:
        """Move the manual clock forward; fires due processing-time timers."""
        ex = self.executor
        self.clock.advance(duration_ms(by, "processing time step"))
        ex.step()

    def finish(self) -> None:
        """End the input: the final watermark fires every open window."""
        ex = self.executor
        self.source.part.mark = MAX_TIME
        self.source.part.ended = True
        ex.step()
        ex.finish()

    @property
    def watermark(self) -> int:
        """The input's current watermark."""
        return self.source.part.mark or MIN_TIME

    @property
    def late_count(self) -> int:
        """How many events were late so far (sent to late() outputs or dropped as late)."""
        return self.executor.metrics.late
