"""Alert rules: declared over a stream, evaluated per batch, pending -> firing -> resolved.

:func:`rule` adds an alert step to the stream's flow. Per batch the step evaluates its
condition over all rows at once (:mod:`tidal.alerts._conditions`), reduces them to the
latest sample per key, and moves each key through its state machine:

- inactive -> **pending** when the condition starts to hold (at the sample's time);
- pending -> **firing** once it has held for ``for_`` (checked on later samples and as the
  watermark passes ``since + for_``): one *firing* notification;
- firing -> firing again every ``repeat_interval`` while it holds: a *repeated* notification;
- firing -> **resolved** on the first sample where it no longer holds: one *resolved*
  notification; pending -> inactive silently.

Time is the stream's event time (the watermark moves it between batches); a stream without
event time (e.g. a running aggregate) uses processing time and a timer. The final +inf
watermark at the end of a bounded input fires nothing: it is not time passing.
"""

from __future__ import annotations

import collections
import json
import re
import string
import threading
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from tidal._time import MAX_TIME, MIN_TIME, Duration, duration_ms
from tidal.errors import ConfigError, PlanError
from tidal.operators.base import Operator, OperatorContext
from tidal.operators.timeattr import TimeAttr
from tidal.plan import caller_location, check_columns

from ._channels import Channel, Notification
from ._conditions import ACTIVE, VALUE, Absence, Condition, T, as_condition

if TYPE_CHECKING:
    from tidal.api.flow import Flow
    from tidal.api.stream import Stream

__all__ = ["AlertOperator", "Rule", "absent", "rule", "rules"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_SEVERITIES = ("info", "warning", "critical")
HISTORY = 200
"""Transitions kept per rule for ``GET /alerts`` and the dashboard."""
DRAIN_S = 5.0
"""At the end of a run, how long queued notifications get to be delivered."""


@dataclass
class _Alert:
    """The live state of one rule and key (only pending and firing keys are kept)."""

    key: tuple[Any, ...]
    state: Literal["pending", "firing"]
    since: int
    value: float | None
    last_t: int
    fired_at: int | None = None
    last_sent: int | None = None


class Rule:
    """An alert rule (see :func:`rule`); while its flow runs, :meth:`alerts` and
    :meth:`history` show its live state. :attr:`events` is the stream of its
    notifications, to sink like any stream."""

    def __init__(self, name: str, condition: Condition, keys: list[str], for_ms: int,
                 severity: str, labels: dict[str, str], channels: list[Channel],
                 repeat_ms: int, summary: str | None) -> None:
        self.name, self.condition, self.keys = name, condition, keys
        self.for_ms, self.severity, self.labels = for_ms, severity, labels
        self.channels, self.repeat_ms, self.summary = channels, repeat_ms, summary
        self.events: Stream
        self.flow = ""
        self._op: AlertOperator | None = None

    @property
    def kind(self) -> str:
        """threshold, rate_of_change, zscore, ewma or absence."""
        return self.condition.kind

    def alerts(self) -> list[dict[str, Any]]:
        """The pending and firing alerts now, one per key, firing first."""
        return [] if self._op is None else self._op.current()

    def history(self) -> list[dict[str, Any]]:
        """Recent transitions (pending, firing, resolved, cleared), oldest first."""
        return [] if self._op is None else self._op.transitions()

    def describe(self) -> dict[str, Any]:
        """The rule, its live alerts and its channels' delivery counters, as JSON."""
        return {
            "name": self.name, "kind": self.kind, "condition": self.condition.describe(),
            "key": self.keys, "for_ms": self.for_ms, "repeat_interval_ms": self.repeat_ms,
            "severity": self.severity, "labels": self.labels,
            "channels": [c.name for c in self.channels], "alerts": self.alerts(),
        }

    def __repr__(self) -> str:
        return f"Rule({self.name!r}, {self.kind})"


def rule(
    name: str, source: Any, condition: Any, *, key: str | list[str] | None = None,
    for_: Duration = 0, severity: str = "warning", labels: dict[str, str] | None = None,
    channels: list[Channel] | tuple[Channel, ...] = (), repeat_interval: Duration = "5m",
    summary: str | None = None,
) -> Rule:
    """Alert when ``condition`` holds for rows of ``source`` (a stream), per ``key``.

    ``condition`` is a boolean Polars expression over the rows (a threshold, e.g.
    ``pl.col("errors") / pl.col("n") > 0.05``) or one of :func:`rate_of_change`,
    :func:`zscore`, :func:`ewma`. It must hold for ``for_`` (event time) before the alert
    fires; while it fires a reminder goes out every ``repeat_interval``; when it stops
    holding a resolution is sent. ``summary`` is a text with ``{value}``, ``{rule}`` and
    the key columns as fields. ``name`` is the alert step's name in checkpoints: keep it
    stable.

    >>> import polars as pl, tidal as td
    >>> from tidal.testing import Harness
    >>> h = Harness(timestamp="t")
    >>> r = td.alerts.rule("hot", h.stream, pl.col("temp") > 30, key="room", for_="10s")
    >>> sent = h.collect(r.events)
    >>> h.add({"room": "lab", "temp": 35, "t": 0})
    >>> [a["state"] for a in r.alerts()]
    ['pending']
    >>> h.advance_watermark(10_000)
    >>> [(n["room"], n["state"], n["at"]) for n in sent.take()]
    [('lab', 'firing', 10000)]
    >>> h.add({"room": "lab", "temp": 20, "t": 12_000})
    >>> [(n["state"], n["at"]) for n in sent.take()]
    [('resolved', 12000)]
    """
    where = caller_location()
    stream = _as_stream(source, where)
    cond = as_condition(condition, where)
    keys = [key] if isinstance(key, str) else list(key or [])
    check_columns(f"alert rule {name!r}", where, [*keys, *cond.columns], stream.schema)
    return _add(stream, where, name, cond, keys, for_, severity, labels, channels,
                repeat_interval, summary)


def absent(
    source: Any, *, key: str | list[str] | None = None, after: Duration,
    name: str | None = None, severity: str = "warning", labels: dict[str, str] | None = None,
    channels: list[Channel] | tuple[Channel, ...] = (), repeat_interval: Duration = "5m",
    summary: str | None = None,
) -> Rule:
    """Alert when a key of ``source`` sends nothing for ``after`` of event time.

    Fires when the watermark passes the key's last row + ``after`` ("no heartbeat from
    device X for 60 s"); the key's next row resolves it. Only keys seen at least once are
    watched. ``name`` defaults to ``absent-<key columns>``.
    """
    where = caller_location()
    stream = _as_stream(source, where)
    keys = [key] if isinstance(key, str) else list(key or [])
    check_columns("absent", where, keys, stream.schema)
    cond = Absence(duration_ms(after, "after"))
    if stream.node.time is None:
        raise PlanError(
            f"absent at {where}: stream {stream.name!r} has no event time, so silence cannot "
            "be measured; give its source a timestamp column (flow.source(..., timestamp='ts'))"
        )
    return _add(stream, where, name or "-".join(["absent", *keys]), cond, keys, 0, severity,
                labels, channels, repeat_interval, summary)


def rules(flow: Flow) -> list[Rule]:
    """The alert rules declared on ``flow``, in declaration order."""
    return [n.options["rule"] for n in flow.nodes if n.kind == "alert"]


def _as_stream(source: Any, where: str) -> Stream:
    from tidal.api.stream import Stream

    if isinstance(source, Stream):
        return source
    stream = getattr(source, "stream", None)  # a view exposes the stream it materializes
    if isinstance(stream, Stream):
        return stream
    raise PlanError(f"alert rule at {where}: expected a stream (or a view) to watch, got "
                    f"{type(source).__name__}")


def _add(stream: Stream, where: str, name: str, cond: Condition, keys: list[str],
         for_: Duration, severity: str, labels: dict[str, str] | None,
         channels: Any, repeat_interval: Duration, summary: str | None) -> Rule:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"alert rule at {where}: bad name {name!r}; use letters, digits, "
                          "'_', '.', ':' or '-', e.g. 'high-error-rate'")
    if severity not in _SEVERITIES:
        raise ConfigError(f"alert rule {name!r} at {where}: severity must be one of "
                          f"{', '.join(_SEVERITIES)}, not {severity!r}")
    channels = list(channels)
    for c in channels:
        if not isinstance(c, Channel):
            raise ConfigError(f"alert rule {name!r} at {where}: channels must be "
                              f"td.alerts.webhook(...), email(...), ..., got {type(c).__name__}")
    labels = {str(k): str(v) for k, v in (labels or {}).items()}
    r = Rule(name, cond, keys, duration_ms(for_, "for_"), severity, labels, channels,
             max(1, duration_ms(repeat_interval, "repeat_interval")), summary)
    r.flow = stream.flow.name
    time = stream.node.time
    schema = None
    if stream.schema is not None:
        schema = pl.Schema({**{k: stream.schema[k] for k in keys}, **_EVENT_SCHEMA})
    signature = f"alert {cond.kind} {cond.describe()} key={keys}"
    r.events = stream._then(
        "alert", f"alert[{name}]", lambda n: AlertOperator(n, r, time), schema=schema,
        time=None, name=f"alerts.{name}", stateful=True, where=where, signature=signature,
        rule=r,
    )
    return r


_EVENT_SCHEMA = {
    "rule": pl.String(), "state": pl.String(), "at": pl.Int64(), "since": pl.Int64(),
    "value": pl.Float64(), "severity": pl.String(), "repeat": pl.Boolean(),
    "labels": pl.String(), "summary": pl.String(),
}


class AlertOperator(Operator):
    """The alert step of one :class:`Rule` (see the module docstring for the states).

    State: the condition's per-key history frame, the pending/firing keys and the recent
    transitions; snapshotted whole under the rule's stable step name ``alerts.<rule>``.
    """

    stateful = True

    def __init__(self, name: str, rule: Rule, time: TimeAttr | None) -> None:
        super().__init__(name)
        self.rule = rule
        self.time = time
        self.cond_state: pl.DataFrame | None = None
        self.alerts: dict[tuple[Any, ...], _Alert] = {}
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=HISTORY)
        self.lock = threading.Lock()
        self._out: list[Notification] = []
        if time is None:
            self.timer_interval_ms = 250  # processing time: check for_/repeat on a timer

    def open(self, ctx: OperatorContext) -> None:
        super().open(ctx)
        self.rule._op = self

    # -- evaluation --------------------------------------------------------------------------
    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        t = self.time.expr(batch.schema) if self.time is not None else pl.lit(self.ctx.now())
        frame = batch.with_columns(t.cast(pl.Int64).alias(T))
        with self.lock:
            samples, self.cond_state = self.rule.condition.evaluate(
                frame, self.rule.keys, self.cond_state)
            self._apply(samples)
        self._flush()

    def on_watermark(self, watermark: int) -> None:
        previous, self.watermark = self.watermark, watermark
        if self.time is None or watermark >= MAX_TIME:
            return
        self._advance(previous, watermark)

    def on_timer(self, now_ms: int) -> None:
        if self.time is None:
            self._advance(now_ms - (self.timer_interval_ms or 0), now_ms)

    def _advance(self, previous: int, now: int) -> None:
        with self.lock:
            cond = self.rule.condition
            if isinstance(cond, Absence):
                expired = cond.expired(self.cond_state, previous, now)
                if expired is not None:
                    self._apply(expired)
            for alert in list(self.alerts.values()):
                self._check(alert, now)
        self._flush()

    def _apply(self, samples: pl.DataFrame) -> None:
        if not samples.height:
            return
        keys = self.rule.keys
        active = pl.col(ACTIVE)
        last_off = pl.col(T).filter(~active).max().fill_null(MIN_TIME)
        aggs = [active.last(), pl.col(T).last(), pl.col(VALUE).last(),
                pl.col(T).filter(active & (pl.col(T) > last_off)).min().alias("since"),
                (~active).any().alias("off")]
        ordered = samples.sort(T, maintain_order=True)
        per_key = (ordered.group_by(keys, maintain_order=True).agg(aggs) if keys
                   else ordered.select(aggs))
        n = len(keys)
        for row in per_key.iter_rows():
            self._sample(tuple(row[:n]), *row[n:])

    def _sample(self, key: tuple[Any, ...], active: bool, t: int, value: float | None,
                since: int | None, off: bool) -> None:
        alert = self.alerts.get(key)
        if not active:
            if alert is None:
                return
            del self.alerts[key]
            if alert.state == "firing":
                self._notify(alert, "resolved", t, value)
            else:
                self._record(alert, "cleared", t, value)
            return
        assert since is not None
        if alert is None:
            alert = self.alerts[key] = _Alert(key, "pending", since, value, t)
            self._record(alert, "pending", since, value)
        elif alert.state == "pending" and off:
            alert.since = since  # it stopped holding within the batch: the run restarts
        alert.value, alert.last_t = value, max(alert.last_t, t)
        self._check(alert, t)

    def _check(self, alert: _Alert, now: int) -> None:
        rule = self.rule
        if alert.state == "pending" and now - alert.since >= rule.for_ms:
            alert.state = "firing"
            alert.fired_at = alert.since + rule.for_ms
            self._notify(alert, "firing", alert.fired_at, alert.value)
        elif (alert.state == "firing" and alert.last_sent is not None
              and now - alert.last_sent >= rule.repeat_ms):
            self._notify(alert, "firing", now, alert.value, repeat=True)

    # -- output ------------------------------------------------------------------------------
    def _record(self, alert: _Alert, state: str, at: int, value: float | None) -> None:
        self.history.append({"rule": self.rule.name, "key": self._key(alert.key), "state": state,
                             "at": at, "since": alert.since, "value": value,
                             "severity": self.rule.severity})

    def _notify(self, alert: _Alert, state: Literal["firing", "resolved"], at: int,
                value: float | None, repeat: bool = False) -> None:
        rule = self.rule
        alert.last_sent = at
        if not repeat:
            self._record(alert, state, at, value)
        key = self._key(alert.key)
        self._out.append(Notification(
            rule=rule.name, state=state, key=key, at=at, since=alert.since, value=value,
            severity=rule.severity, labels=dict(rule.labels), repeat=repeat,
            summary=self._summary(key, value), flow=rule.flow,
        ))

    def _summary(self, key: dict[str, Any], value: float | None) -> str:
        if not self.rule.summary:
            return ""
        fields = _Fields({**key, "value": value, "rule": self.rule.name})
        try:
            return string.Formatter().vformat(self.rule.summary, (), fields)
        except (ValueError, TypeError, AttributeError, IndexError):
            return self.rule.summary  # e.g. {value:.1f} while value is None

    def _key(self, key: tuple[Any, ...]) -> dict[str, Any]:
        return dict(zip(self.rule.keys, key, strict=True))

    def _flush(self) -> None:
        """Send what the last call produced to the channels and emit it downstream."""
        if not self._out:
            return
        notes, self._out = self._out, []
        for note in notes:
            for channel in self.rule.channels:
                channel.submit(note)
        rows = [{**n.key, "rule": n.rule, "state": n.state, "at": n.at, "since": n.since,
                 "value": n.value, "severity": n.severity, "repeat": n.repeat,
                 "labels": json.dumps(n.labels), "summary": n.summary} for n in notes]
        schema = {**{k: None for k in self.rule.keys}, **_EVENT_SCHEMA}
        frame = pl.from_dicts(rows, infer_schema_length=None)
        self.emit(frame.select([c for c in schema if c in frame.columns]).with_columns(
            pl.col(c).cast(dt) for c, dt in _EVENT_SCHEMA.items()))

    # -- reading (other threads) -------------------------------------------------------------
    def current(self) -> list[dict[str, Any]]:
        with self.lock:
            alerts = [
                {"key": self._key(a.key), "state": a.state, "since": a.since, "value": a.value,
                 "fired_at": a.fired_at, "last_sent": a.last_sent, "last_seen": a.last_t}
                for a in self.alerts.values()
            ]
        return sorted(alerts, key=lambda a: (a["state"] != "firing", a["since"]))

    def transitions(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.history)

    # -- checkpoints -------------------------------------------------------------------------
    def snapshot(self) -> Any:
        with self.lock:
            return {"condition": self.cond_state,
                    "alerts": [asdict(a) for a in self.alerts.values()],
                    "history": list(self.history)}

    def restore(self, state: Any) -> None:
        with self.lock:
            self.cond_state = state["condition"]
            self.alerts = {tuple(a["key"]): _Alert(**{**a, "key": tuple(a["key"])})
                           for a in state["alerts"]}
            self.history.clear()
            self.history.extend(state["history"])

    def close(self) -> None:
        for channel in self.rule.channels:
            channel.flush(timeout=DRAIN_S)


class _Fields(dict):  # type: ignore[type-arg]
    """Summary fields: unknown ones stay as written instead of raising."""

    def __missing__(self, name: str) -> str:
        return "{" + name + "}"
