"""``GET /metrics`` (Prometheus text format), ``GET /metrics.json`` and ``GET /readyz``.

The numbers come from the running flow's :class:`tidal.runtime.executor.Metrics` (shared
with the executor, read without stopping it) and from the views. A :class:`Collector`
folds the executor's recent per-batch times into cumulative histograms and keeps a few
seconds of counter samples for per-second rates; the server calls :meth:`Collector.fold`
every 250 ms, so no batch time is missed between scrapes.

Exposed (all names start with ``tidal_``; per-step series carry ``step`` and ``kind``):

==========================================  =========  ===========================================
name                                        type       what
==========================================  =========  ===========================================
``flow_info{flow,status}``                  gauge      1; the flow and its status
``events_in_total``                         counter    rows read by the sources
``rows_out_total``                          counter    rows written to sinks
``late_events_total``                       counter    events behind the watermark
``dead_letters_total``                      counter    records sent to the dead letters
``watermark_ms`` / ``watermark_lag_seconds`` gauge     the sources' watermark, and now minus it
``step_rows_in_total`` / ``_out_total``     counter    rows into / out of each step
``step_rows_in_per_second`` / ``_out_...``  gauge      the same over the last 5 s
``step_batches_total``                      counter    batches into each step
``step_busy_seconds_total``                 counter    time spent in each step
``step_busy_ratio``                         gauge      busy seconds per second over the last 5 s
``step_batch_seconds``                      histogram  time to process one batch, per step
``step_watermark_ms`` / ``_lag_seconds``    gauge      each step's watermark, and now minus it
``checkpoints_total``                       counter    checkpoints taken
``checkpoint_duration_seconds``             gauge      how long the last checkpoint took to write
``checkpoint_size_bytes``                   gauge      its size
``source_lag_records{step,partition}``      gauge      records not read yet (log sources)
``view_rows{view}``                         gauge      rows in each view
``view_changes_total{view}``                counter    changes published (the sequence number)
``view_subscribers{view}``                  gauge      push clients of each view
==========================================  =========  ===========================================
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from tidal._time import MAX_TIME, MIN_TIME
from tidal.operators.view import ViewRegistry

from .views import describe

if TYPE_CHECKING:
    from tidal.api.flow import Flow
    from tidal.runtime.executor import Executor

__all__ = ["BUCKETS", "Collector", "RunningFlow", "metrics_router"]

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
           0.5, 1.0, 2.5, 5.0)
"""Upper bounds (seconds) of the batch-latency histogram buckets (then +Inf)."""
RATE_WINDOW_S = 5.0
FOLD_INTERVAL_S = 0.25


class RunningFlow:
    """A flow run by the same process as the server: its status and its executor.

    ``status`` is ``"starting"`` until the executor has opened, then ``"running"``, and
    ``"finished"`` or ``"failed"`` (with ``error``) when the run ends.
    """

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.error: BaseException | None = None
        self.ended = False

    @property
    def executor(self) -> Executor | None:
        """The executor of the current run (None before it is made)."""
        return self.flow.last_run

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed"
        if self.ended:
            return "finished"
        ex = self.executor
        return "running" if ex is not None and ex.opened else "starting"


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: int = 0
    sum: float = 0.0

    def add(self, samples: list[float]) -> None:
        for s in samples:
            self.counts[bisect.bisect_left(BUCKETS, s)] += 1
            self.sum += s
        self.total += len(samples)


class Collector:
    """Metrics of a running flow (if any) and of the views, as Prometheus text or JSON."""

    def __init__(self, views: ViewRegistry, running: RunningFlow | None = None) -> None:
        self.views = views
        self.running = running
        self._lock = threading.Lock()
        self._executor: Executor | None = None
        self._histograms: dict[str, _Histogram] = {}
        self._seen: dict[str, int] = {}
        self._samples: deque[tuple[float, dict[str, tuple[int, int, float]]]] = deque()

    def fold(self) -> None:
        """Take the batch times recorded since the last call into the histograms, and a
        sample of the counters for rates."""
        ex = self.running.executor if self.running is not None else None
        with self._lock:
            if ex is not self._executor:
                self._executor = ex
                self._histograms.clear()
                self._seen.clear()
                self._samples.clear()
            if ex is None:
                return
            counters = {}
            for name, m in list(ex.metrics.steps.items()):
                batches = m.batches
                new = batches - self._seen.get(name, 0)
                if new > 0:
                    recent = list(m.batch_seconds)
                    self._histograms.setdefault(name, _Histogram()).add(recent[-new:])
                    self._seen[name] = batches
                counters[name] = (m.rows_in, m.rows_out, m.busy_s)
            now = time.monotonic()
            self._samples.append((now, counters))
            while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
                self._samples.popleft()

    def _rates(self) -> dict[str, tuple[float, float, float]]:
        if len(self._samples) < 2:
            return {}
        (t0, first), (t1, last) = self._samples[0], self._samples[-1]
        dt = t1 - t0
        if dt <= 0:
            return {}
        return {
            name: tuple((b - a) / dt for a, b in zip(first.get(name, (0, 0, 0.0)), now,
                                                      strict=True))  # type: ignore[misc]
            for name, now in last.items()
        }

    # -- JSON ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Everything measured, as one JSON-able dict (what ``/metrics.json`` answers)."""
        self.fold()
        views = [describe(v) for v in self.views.all()]
        running = self.running
        ex = running.executor if running is not None else None
        if running is None or ex is None:
            return {"flow": None if running is None else running.flow.name,
                    "status": None if running is None else running.status,
                    "steps": [], "sources": [], "views": views}
        m = ex.metrics
        now = ex.clock.now()
        with self._lock:
            rates = self._rates()
            hist = {k: (list(h.counts), h.total, h.sum) for k, h in self._histograms.items()}
        watermarks = dict(m.watermarks)
        steps = []
        for node in ex.nodes:
            sm = m.steps.get(node.name)
            if sm is None:
                continue
            wm = watermarks.get(node.name)
            r_in, r_out, busy = rates.get(node.name, (0.0, 0.0, 0.0))
            counts, total, total_s = hist.get(node.name, ([0] * (len(BUCKETS) + 1), 0, 0.0))
            steps.append({
                "name": node.name, "kind": node.kind,
                "inputs": [up.name for up, _ in node.inputs],
                "rows_in": sm.rows_in, "rows_out": sm.rows_out, "batches": sm.batches,
                "busy_s": sm.busy_s, "rows_in_per_s": r_in, "rows_out_per_s": r_out,
                "busy_ratio": busy, "watermark_ms": _finite(wm),
                "watermark_lag_s": _lag(now, wm),
                "batch_seconds": {"buckets": list(BUCKETS), "counts": counts, "count": total,
                                  "sum": total_s},
            })
        return {
            "flow": ex.flow.name, "status": running.status,
            "error": None if running.error is None else str(running.error),
            "now_ms": now, "started_ms": m.started_ms, "events_in": m.events_in,
            "rows_out": m.rows_out, "batches": m.batches, "late": m.late,
            "dead_letters": ex.dead.count, "watermark_ms": _finite(m.watermark),
            "watermark_lag_s": _lag(now, m.watermark),
            "checkpoints": {"count": m.checkpoints, "last_duration_s": m.last_checkpoint_s,
                            "last_size_bytes": m.last_checkpoint_bytes},
            "steps": steps, "sources": source_lags(ex), "views": views,
        }

    # -- Prometheus ----------------------------------------------------------------------
    def prometheus(self) -> str:
        """The metrics in the Prometheus text exposition format (version 0.0.4)."""
        snap = self.snapshot()
        out = _Writer()
        if snap["flow"] is not None:
            out.family("flow_info", "gauge", "The flow served by this process and its status.")
            out.sample("flow_info", 1, flow=snap["flow"], status=snap["status"])
        if snap["steps"]:
            for name, kind, help_, value in (
                ("events_in_total", "counter", "Rows read by the sources.", snap["events_in"]),
                ("rows_out_total", "counter", "Rows written to sinks.", snap["rows_out"]),
                ("late_events_total", "counter", "Events that came behind the watermark.",
                 snap["late"]),
                ("dead_letters_total", "counter", "Records sent to the dead letters.",
                 snap["dead_letters"]),
                ("watermark_ms", "gauge", "The sources' watermark (epoch ms).",
                 snap["watermark_ms"]),
                ("watermark_lag_seconds", "gauge", "Processing time minus the watermark.",
                 snap["watermark_lag_s"]),
                ("checkpoints_total", "counter", "Checkpoints taken.",
                 snap["checkpoints"]["count"]),
                ("checkpoint_duration_seconds", "gauge", "Time to write the last checkpoint.",
                 snap["checkpoints"]["last_duration_s"]),
                ("checkpoint_size_bytes", "gauge", "Size of the last checkpoint.",
                 snap["checkpoints"]["last_size_bytes"]),
            ):
                if value is not None:
                    out.family(name, kind, help_)
                    out.sample(name, value)
            _step_metrics(out, snap["steps"])
        if snap["sources"]:
            out.family("source_lag_records", "gauge", "Records in the source not read yet.")
            for s in snap["sources"]:
                out.sample("source_lag_records", s["lag"], step=s["step"],
                           partition=s["partition"])
        if snap["views"]:
            for name, kind, help_, key in (
                ("view_rows", "gauge", "Rows held by the view.", "rows"),
                ("view_changes_total", "counter", "Changes published by the view.", "seq"),
                ("view_subscribers", "gauge", "Push clients of the view.", "subscribers"),
            ):
                out.family(name, kind, help_)
                for v in snap["views"]:
                    out.sample(name, v[key], view=v["name"])
        return out.text()


def _step_metrics(out: _Writer, steps: list[dict[str, Any]]) -> None:
    for name, kind, help_, key in (
        ("step_rows_in_total", "counter", "Rows into the step.", "rows_in"),
        ("step_rows_out_total", "counter", "Rows out of the step.", "rows_out"),
        ("step_batches_total", "counter", "Batches into the step.", "batches"),
        ("step_busy_seconds_total", "counter", "Seconds spent in the step.", "busy_s"),
        ("step_rows_in_per_second", "gauge", "Rows into the step per second (last 5 s).",
         "rows_in_per_s"),
        ("step_rows_out_per_second", "gauge", "Rows out of the step per second (last 5 s).",
         "rows_out_per_s"),
        ("step_busy_ratio", "gauge", "Busy seconds per second (last 5 s).", "busy_ratio"),
        ("step_watermark_ms", "gauge", "The step's watermark (epoch ms).", "watermark_ms"),
        ("step_watermark_lag_seconds", "gauge", "Processing time minus the step's watermark.",
         "watermark_lag_s"),
    ):
        out.family(name, kind, help_)
        for s in steps:
            if s[key] is not None:
                out.sample(name, s[key], step=s["name"], kind=s["kind"])
    out.family("step_batch_seconds", "histogram", "Time to process one batch in the step.")
    for s in steps:
        h = s["batch_seconds"]
        if s["kind"] == "source":
            continue  # sources are not timed per batch
        cumulative = 0
        for bound, count in zip([*BUCKETS, math.inf], h["counts"], strict=True):
            cumulative += count
            out.sample("step_batch_seconds_bucket", cumulative, step=s["name"], kind=s["kind"],
                       le=_number(bound))
        out.sample("step_batch_seconds_sum", h["sum"], step=s["name"], kind=s["kind"])
        out.sample("step_batch_seconds_count", h["count"], step=s["name"], kind=s["kind"])


def source_lags(ex: Executor) -> list[dict[str, Any]]:
    """Records not yet read per source partition, where the source can tell (log topics:
    the partition's end offset minus the position; any source whose partition has a
    ``lag()`` method)."""
    out = []
    for node, readers in list(ex.readers.items()):
        for r in readers:
            part = r.reader
            try:
                lag_fn = getattr(part, "lag", None)
                if callable(lag_fn):
                    lag = lag_fn()
                elif hasattr(part, "topic") and hasattr(part, "offset") and hasattr(part, "p"):
                    lag = part.topic.end_offset(part.p) - part.offset
                else:
                    continue
            except Exception:  # noqa: BLE001 - a metric must never fail the scrape
                continue
            if isinstance(lag, int | float):
                out.append({"step": node.name, "partition": str(r.partition), "lag": lag})
    return out


def _finite(wm: int | None) -> int | None:
    return wm if wm is not None and MIN_TIME < wm < MAX_TIME else None


def _lag(now: int, wm: int | None) -> float | None:
    wm = _finite(wm)
    return None if wm is None else max(0.0, (now - wm) / 1000)


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_: str) -> None:
        self.lines.append(f"# HELP tidal_{name} {help_}")
        self.lines.append(f"# TYPE tidal_{name} {kind}")

    def sample(self, name: str, value: float, **labels: str) -> None:
        text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
        self.lines.append(f"tidal_{name}{{{text}}} {_number(value)}" if text
                          else f"tidal_{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def metrics_router(collector: Collector) -> APIRouter:
    """``/metrics``, ``/metrics.json`` and ``/readyz`` over ``collector``."""
    router = APIRouter(tags=["metrics"])

    @router.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus text format (see the module docstring for the series)."""
        return PlainTextResponse(collector.prometheus(),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    @router.get("/metrics.json")
    def metrics_json() -> JSONResponse:
        """The same numbers as JSON, with the graph (each step's inputs) for dashboards."""
        return JSONResponse(collector.snapshot())

    @router.get("/readyz")
    def readyz() -> JSONResponse:
        """200 once the flow runs (and after it finished: the views stay served); 503 while
        it starts or after it failed. Without a flow, 200 as soon as the server answers."""
        running = collector.running
        if running is None:
            return JSONResponse({"status": "ready"})
        status = running.status
        body: dict[str, Any] = {"status": status, "flow": running.flow.name}
        if running.error is not None:
            body["error"] = f"{type(running.error).__name__}: {running.error}"
        return JSONResponse(body, status_code=200 if status in ("running", "finished") else 503)

    return router
