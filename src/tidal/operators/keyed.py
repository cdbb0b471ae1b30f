"""Keyed operators without windows: running aggregates, user state functions, reductions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from tidal._time import MIN_TIME
from tidal.api.agg import TIME, Agg, compile_aggs
from tidal.errors import UserFunctionError
from tidal.operators.base import Operator
from tidal.operators.stateless import describe_function
from tidal.operators.timeattr import TimeAttr

__all__ = ["KeyState", "RunningAggregate", "RunningReduce", "UpdateState", "WindowReduce"]

LAST = "__last_seen"
GLOBAL = "__global"


class RunningAggregate(Operator):
    """Aggregates per key over the whole stream, emitting each changed key's new value.

    State is one frame of partial aggregates keyed by ``keys``. With ``ttl``, a key not seen
    for ``ttl`` of event time (by the watermark) is dropped, so idle keys do not grow state
    forever; a dropped key that returns starts again from nothing.
    """

    stateful = True

    def __init__(
        self, name: str, keys: list[str], time: TimeAttr | None, aggs: dict[str, Agg],
        ttl_ms: int | None,
    ) -> None:
        super().__init__(name)
        self.global_key = not keys  # key_by() with no columns: one key for everything
        self.keys = keys or [GLOBAL]
        self.time = time
        self.partial, self.merge, self.final = compile_aggs(aggs)
        self.ttl = ttl_ms
        self.state: pl.DataFrame | None = None

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        if self.time is not None:
            t = self.time.expr(batch.schema)
        else:
            t = pl.lit(self.ctx.now(), pl.Int64)
        batch = batch.with_columns(t.alias(TIME))
        if self.global_key:
            batch = batch.with_columns(pl.lit(0, pl.Int8).alias(GLOBAL))
        partial = batch.group_by(self.keys, maintain_order=True).agg(
            *self.partial, pl.col(TIME).max().alias(LAST)
        )
        if self.state is None:
            updated = partial
            self.state = partial
        else:
            touched = self.state.join(partial.select(self.keys), on=self.keys, how="semi")
            updated = (
                pl.concat([touched, partial])
                .group_by(self.keys, maintain_order=True)
                .agg(*self.merge, pl.col(LAST).max())
            )
            rest = self.state.join(partial.select(self.keys), on=self.keys, how="anti")
            self.state = pl.concat([rest, updated])
        keys = [] if self.global_key else self.keys
        self.emit(updated.select(*keys, *self.final))

    def on_watermark(self, watermark: int) -> None:
        self.watermark = watermark
        if self.ttl is not None and self.state is not None:
            self.state = self.state.filter(pl.col(LAST) + self.ttl > watermark)

    def snapshot(self) -> Any:
        return {"state": self.state}

    def restore(self, state: Any) -> None:
        self.state = state["state"]


class KeyState:
    """The state of one key inside an ``update_state`` function.

    >>> s = KeyState(None); s.set(s.get(0) + 1); s.get()
    1
    """

    __slots__ = ("_removed", "_set", "_value", "timed_out")

    def __init__(self, value: Any, timed_out: bool = False) -> None:
        self._value = value
        self._removed = False
        self._set = False
        self.timed_out = timed_out
        """True when the function is called because the key was idle for ``timeout``."""

    @property
    def exists(self) -> bool:
        """Whether the key has state."""
        return self._value is not None and not self._removed

    def get(self, default: Any = None) -> Any:
        """The key's state, or ``default`` when it has none."""
        return default if not self.exists else self._value

    def set(self, value: Any) -> None:
        """Replace the key's state."""
        self._value = value
        self._removed = False
        self._set = True

    def remove(self) -> None:
        """Forget the key's state."""
        self._removed = True


class UpdateState(Operator):
    """``update_state(fn, timeout)``: a Python function per key and batch, with per-key state.

    ``fn(key, rows, state)`` gets the key (a tuple of the key values), the key's rows of
    this batch as a Polars frame (empty when called for a timeout) and a :class:`KeyState`;
    it returns ``None``, a dict, a list of dicts or a DataFrame of output rows. With
    ``timeout``, a key without events for that long in event time is called once with
    ``state.timed_out`` set, after which its state is removed unless the function sets it.
    """

    stateful = True

    def __init__(
        self, name: str, keys: list[str], time: TimeAttr | None,
        fn: Callable[[tuple[Any, ...], pl.DataFrame, KeyState], Any], timeout_ms: int | None,
    ) -> None:
        super().__init__(name)
        self.keys = keys
        self.time = time
        self.fn = fn
        self.timeout = timeout_ms
        self.values: dict[tuple[Any, ...], Any] = {}
        self.last_seen: dict[tuple[Any, ...], int] = {}
        self.empty: pl.DataFrame | None = None

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        if self.empty is None:
            self.empty = batch.clear()
        last = None
        if self.time is not None and self.timeout is not None:
            last = batch.group_by(self.keys).agg(self.time.expr(batch.schema).max().alias(LAST))
            for row in last.iter_rows():
                self.last_seen[tuple(row[:-1])] = row[-1]
        outputs: list[Any] = []
        for key, rows in batch.partition_by(self.keys, as_dict=True, maintain_order=True).items():
            outputs.append(self._call(key, rows, timed_out=False))
        self._emit_all(outputs)

    def _call(self, key: tuple[Any, ...], rows: pl.DataFrame, timed_out: bool) -> Any:
        state = KeyState(self.values.get(key), timed_out)
        result = self.fn(key, rows, state)
        if timed_out and not state._set:
            state.remove()  # a timed-out key keeps its state only if the function sets it
        if state.exists:
            self.values[key] = state._value
        else:
            self.values.pop(key, None)
            self.last_seen.pop(key, None)
        return self._rows(key, result)

    def _rows(self, key: tuple[Any, ...], result: Any) -> pl.DataFrame | None:
        return keyed_rows(self.name, "update_state", self.fn, self.keys, key, result)

    def _emit_all(self, outputs: list[Any]) -> None:
        frames = [o for o in outputs if o is not None and o.height]
        if frames:
            self.emit(pl.concat(frames, how="diagonal_relaxed"))

    def on_watermark(self, watermark: int) -> None:
        self.watermark = watermark
        if self.timeout is None or self.time is None:
            return
        expired = [k for k, t in self.last_seen.items() if t + self.timeout <= watermark]
        outputs = []
        for key in expired:
            del self.last_seen[key]
            outputs.append(self._call(key, self.empty, timed_out=True))  # type: ignore[arg-type]
            if key in self.values and key not in self.last_seen:
                # the function kept the state: the timeout counts again from now
                self.last_seen[key] = watermark
        self._emit_all(outputs)

    def snapshot(self) -> Any:
        return {"values": dict(self.values), "last_seen": dict(self.last_seen)}

    def restore(self, state: Any) -> None:
        self.values = dict(state["values"])
        self.last_seen = dict(state["last_seen"])


def keyed_rows(step: str, what: str, fn: Callable[..., Any], keys: list[str],
               key: tuple[Any, ...], result: Any) -> pl.DataFrame | None:
    """What a per-key user function returned (None, a dict, dicts or a frame) as rows that
    start with the key columns; anything else is a :class:`UserFunctionError`."""
    if result is None:
        return None
    if isinstance(result, dict):
        result = [result]
    if isinstance(result, list) and all(isinstance(r, dict) for r in result):
        if not result:
            return None
        result = pl.from_dicts(result, infer_schema_length=None)
    if not isinstance(result, pl.DataFrame):
        raise UserFunctionError(
            f"step {step!r}: {what} function {describe_function(fn)} returned "
            f"{type(result).__name__} for key {key!r}; it must return None, a dict, a list of "
            "dicts or a polars.DataFrame"
        )
    missing = [k for k in keys if k not in result.columns]
    if missing:
        values = dict(zip(keys, key, strict=True))
        result = result.with_columns(pl.lit(values[k]).alias(k) for k in missing)
    return result.select(*keys, *[c for c in result.columns if c not in keys])


def _check_reduced(op: Operator, fn: Callable[..., Any], result: Any) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise UserFunctionError(
            f"step {op.name!r}: reduce function {describe_function(fn)} returned "
            f"{type(result).__name__}; it must return a dict (the combined record)"
        )
    return result


class RunningReduce(Operator):
    """``key_by(...).reduce(fn)``: fold each key's records with ``fn(acc, record) -> record``
    and emit the key's new value after each batch (the slow, per-record path)."""

    stateful = True

    def __init__(self, name: str, keys: list[str], fn: Callable[[dict, dict], dict]) -> None:
        super().__init__(name)
        self.keys = keys
        self.fn = fn
        self.acc: dict[tuple[Any, ...], dict[str, Any]] = {}

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        changed: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in batch.iter_rows(named=True):
            key = tuple(row[k] for k in self.keys)
            prev = self.acc.get(key)
            acc = row if prev is None else _check_reduced(self, self.fn, self.fn(prev, row))
            self.acc[key] = changed[key] = acc
        if changed:
            self.emit(pl.from_dicts(list(changed.values()), infer_schema_length=None))

    def snapshot(self) -> Any:
        return dict(self.acc)

    def restore(self, state: Any) -> None:
        self.acc = dict(state)


class WindowReduce(Operator):
    """``window(...).reduce(fn)`` for tumbling and sliding windows (per-record Python)."""

    stateful = True

    def __init__(
        self, name: str, keys: list[str], time: TimeAttr, size_ms: int, every_ms: int,
        offset_ms: int, lateness_ms: int, fn: Callable[[dict, dict], dict],
    ) -> None:
        super().__init__(name)
        self.keys, self.time, self.fn = keys, time, fn
        self.size, self.every, self.offset, self.lateness = size_ms, every_ms, offset_ms, lateness_ms
        self.acc: dict[tuple[Any, int], dict[str, Any]] = {}

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        batch = batch.with_columns(self.time.expr(batch.schema).alias(TIME))
        late: list[dict[str, Any]] = []
        for row in batch.iter_rows(named=True):
            t = row.pop(TIME)
            last = (t - self.offset) - (t - self.offset) % self.every + self.offset
            key = tuple(row[k] for k in self.keys)
            placed = False
            start = last
            while start + self.size > t:
                if self.watermark == MIN_TIME or start + self.size + self.lateness > self.watermark:
                    prev = self.acc.get((key, start))
                    self.acc[(key, start)] = (
                        row if prev is None else _check_reduced(self, self.fn, self.fn(prev, row))
                    )
                    placed = True
                start -= self.every
            if not placed:
                late.append(row)
        if late:
            self.ctx.count_late(len(late))
            self.emit(pl.from_dicts(late, infer_schema_length=None), "late")

    def on_watermark(self, watermark: int) -> None:
        previous, self.watermark = self.watermark, watermark
        ready = [
            (k, s) for (k, s) in self.acc if previous < s + self.size <= watermark
        ]
        rows = []
        for key, start in sorted(ready, key=lambda ks: ks[1]):
            rec = dict(self.acc[(key, start)])
            rec["window_start"], rec["window_end"] = start, start + self.size
            rows.append(rec)
        for ks in [ks for ks in self.acc if ks[1] + self.size + self.lateness <= watermark]:
            del self.acc[ks]
        if rows:
            self.emit(pl.from_dicts(rows, infer_schema_length=None))

    def snapshot(self) -> Any:
        return dict(self.acc)

    def restore(self, state: Any) -> None:
        self.acc = dict(state)
