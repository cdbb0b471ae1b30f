"""``key_by(...).process(fn)``: your Python per key, with state and timers.

Per batch, for each key in it, tidal calls ``fn(key, rows, ctx)`` (or ``fn.process(...)``
when ``fn`` is an object) with the key's rows as a Polars frame. ``ctx`` (a
:class:`ProcessContext`) reads and writes the key's state and registers timers; when a
timer is due, ``on_timer(key, timestamp, ctx)`` is called (``fn.on_timer`` or the
``on_timer=`` function). Event-time timers fire once the watermark reaches their time,
processing-time timers once the clock does, in time order (registration order for equal
times); a timer registered while timers fire, and already due, fires in the same pass.
State and pending timers are part of checkpoints.

>>> import tidal as td
>>> from tidal.testing import Harness
>>> class Silence:
...     def process(self, key, rows, ctx):
...         ctx.delete_event_timer(ctx.state.get(0) + 60_000)
...         ctx.state.set(int(rows["ts"].max()))
...         ctx.register_event_timer(ctx.state.get() + 60_000)
...     def on_timer(self, key, timestamp, ctx):
...         return {"silent_since": ctx.state.get()}
>>> h = Harness(timestamp="ts")
>>> out = h.collect(h.stream.key_by("device").process(Silence(), name="silence"))
>>> h.add({"device": "d1", "ts": 1_000})
>>> h.advance_watermark(61_000)
>>> out.take()
[{'device': 'd1', 'silent_since': 1000}]
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

import polars as pl

from tidal.errors import UserFunctionError
from tidal.operators.base import Operator
from tidal.operators.keyed import KeyState, keyed_rows

__all__ = ["KeyedProcess", "ProcessContext"]

Key = tuple[Any, ...]
_EVENT, _PROCESSING = 0, 1


class ProcessContext:
    """What a ``process`` function sees besides the rows: the key, its state, time, timers.

    - ``ctx.key``: the key (a tuple of the key values);
    - ``ctx.state``: a :class:`tidal.KeyState` (``get``, ``set``, ``remove``, ``exists``);
    - ``ctx.watermark``: the current event-time watermark (epoch ms);
    - ``ctx.now``: processing time (epoch ms; the manual clock under :mod:`tidal.testing`);
    - ``ctx.register_event_timer(ts)`` / ``ctx.register_processing_timer(ts)``: call
      ``on_timer`` for this key at ``ts``; registering the same time twice is one timer;
    - ``ctx.delete_event_timer(ts)`` / ``ctx.delete_processing_timer(ts)``.
    """

    __slots__ = ("_op", "key", "state")

    def __init__(self, op: KeyedProcess, key: Key, state: KeyState) -> None:
        self._op, self.key, self.state = op, key, state

    @property
    def watermark(self) -> int:
        """The operator's event-time watermark (epoch ms)."""
        return self._op.watermark

    @property
    def now(self) -> int:
        """Processing time (epoch ms)."""
        return self._op.ctx.now()

    def register_event_timer(self, ts: int) -> None:
        """Call ``on_timer`` for this key when the watermark reaches ``ts``."""
        self._op.register(_EVENT, self.key, _ms(ts))

    def register_processing_timer(self, ts: int) -> None:
        """Call ``on_timer`` for this key when processing time reaches ``ts``."""
        self._op.register(_PROCESSING, self.key, _ms(ts))

    def delete_event_timer(self, ts: int) -> None:
        """Cancel this key's event-time timer at ``ts`` (no error when there is none)."""
        self._op.timers[_EVENT].discard((self.key, _ms(ts)))

    def delete_processing_timer(self, ts: int) -> None:
        """Cancel this key's processing-time timer at ``ts``."""
        self._op.timers[_PROCESSING].discard((self.key, _ms(ts)))


def _ms(ts: Any) -> int:
    if isinstance(ts, bool) or not isinstance(ts, int):
        try:
            import datetime as _dt

            if isinstance(ts, _dt.datetime):
                return int(ts.timestamp() * 1000) if ts.tzinfo else int(
                    ts.replace(tzinfo=_dt.UTC).timestamp() * 1000)
            return int(ts)
        except (TypeError, ValueError):
            raise UserFunctionError(
                f"timers take epoch milliseconds (an int) or a datetime, not {type(ts).__name__}"
            ) from None
    return ts


class KeyedProcess(Operator):
    """Runs ``process(key, rows, ctx)`` per key and batch and ``on_timer(key, ts, ctx)`` per
    due timer; see the module docstring. Both may return ``None``, a dict, a list of dicts
    or a DataFrame of output rows; the key columns are added when missing."""

    stateful = True
    timer_interval_ms = 10  # how often processing-time timers are checked

    def __init__(self, name: str, keys: list[str],
                 process: Callable[[Key, pl.DataFrame, ProcessContext], Any],
                 on_timer: Callable[[Key, int, ProcessContext], Any] | None) -> None:
        super().__init__(name)
        self.keys, self.process, self.on_timer_fn = keys, process, on_timer
        self.values: dict[Key, Any] = {}
        # per kind: the live timers, and a heap of (ts, seq, key) that may hold cancelled ones
        self.timers: list[set[tuple[Key, int]]] = [set(), set()]
        self.heaps: list[list[tuple[int, int, Key]]] = [[], []]
        self.seq = 0

    def register(self, kind: int, key: Key, ts: int) -> None:
        if (key, ts) not in self.timers[kind]:
            self.timers[kind].add((key, ts))
            heapq.heappush(self.heaps[kind], (ts, self.seq, key))
            self.seq += 1

    def _call(self, fn: Callable[..., Any], key: Key, arg: Any) -> pl.DataFrame | None:
        state = KeyState(self.values.get(key))
        result = fn(key, arg, ProcessContext(self, key, state))
        if state.exists:
            self.values[key] = state._value
        else:
            self.values.pop(key, None)
        return self._rows(fn, key, result)

    def _rows(self, fn: Callable[..., Any], key: Key, result: Any) -> pl.DataFrame | None:
        return keyed_rows(self.name, "process", fn, self.keys, key, result)

    def _emit_all(self, frames: list[pl.DataFrame | None]) -> None:
        out = [f for f in frames if f is not None and f.height]
        if out:
            self.emit(pl.concat(out, how="diagonal_relaxed"))

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        groups = batch.partition_by(self.keys, as_dict=True, maintain_order=True) \
            if self.keys else {(): batch}
        self._emit_all([self._call(self.process, key, rows) for key, rows in groups.items()])

    def _fire(self, kind: int, until: int) -> None:
        heap, live = self.heaps[kind], self.timers[kind]
        frames: list[pl.DataFrame | None] = []
        while heap and heap[0][0] <= until:
            ts, _, key = heapq.heappop(heap)
            if (key, ts) not in live:
                continue  # cancelled
            live.discard((key, ts))
            if self.on_timer_fn is None:
                raise UserFunctionError(
                    f"step {self.name!r}: a timer fired for key {key!r} but there is no "
                    "on_timer; give process(fn, on_timer=...) or an object with on_timer"
                )
            frames.append(self._call(self.on_timer_fn, key, ts))
        self._emit_all(frames)

    def on_watermark(self, watermark: int) -> None:
        self.watermark = watermark
        self._fire(_EVENT, watermark)

    def on_timer(self, now_ms: int) -> None:
        self._fire(_PROCESSING, now_ms)

    def snapshot(self) -> dict[str, Any]:
        return {"values": dict(self.values),
                "timers": [sorted(((ts, s, k) for ts, s, k in h if (k, ts) in live),
                                  key=lambda e: (e[0], e[1]))
                           for h, live in zip(self.heaps, self.timers, strict=True)]}

    def restore(self, state: dict[str, Any]) -> None:
        self.values = dict(state["values"])
        self.heaps = [list(h) for h in state["timers"]]
        self.timers = [{(k, ts) for ts, _, k in h} for h in self.heaps]
        self.seq = 1 + max((s for h in self.heaps for _, s, _ in h), default=-1)
