"""The live dashboard: the pipeline graph with rates, watermark lag and busy time, charts of
the views, and the alerts.

- ``GET /``: the page (static HTML, no data in it, so it needs no token; a token given as
  ``/#token=...`` is kept by the page and sent on its requests);
- ``GET /dashboard/static/{file}``: its script and style sheet, shipped in the package
  (no CDN, no build step: it works offline);
- ``GET /dashboard/state``: everything the page draws, as JSON, polled every second:
  the graph (steps and edges) with each step's counters from the executor's
  :class:`~tidal.runtime.executor.Metrics`, chart summaries of the views, and the alerts
  (``GET /alerts``'s answer). Rates are the differences between two polls.

Everything user-supplied (keys, labels, step and view names) is put in the page as text
nodes, never as markup, and the page is served with a Content-Security-Policy that allows
only its own script and style.

>>> import tidal as td
>>> flow = td.Flow("doc")
>>> flow.source(td.sources.memory([{"x": 1}]), name="numbers").sink(td.sinks.memory(), name="out")
>>> state = dashboard_state(flow)
>>> [(n["name"], n["kind"]) for n in state["nodes"]], state["edges"]
([('numbers', 'source'), ('out', 'sink')], [{'from': 'numbers', 'to': 'out', 'port': 'out', 'rows': 0}])
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

import polars as pl
from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from tidal._time import MAX_TIME, MIN_TIME

from ._errors import RequestError

if TYPE_CHECKING:
    from tidal.api.flow import Flow
    from tidal.operators.view import View, ViewRegistry

__all__ = ["dashboard_router", "dashboard_state"]

_STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_TOP = 10
_POINTS = 60


def dashboard_router(
    flow: Flow | Callable[[], Flow | None], *, views: ViewRegistry | None = None,
    protected: Sequence[Any] = (),
) -> APIRouter:
    """The dashboard's routes for ``flow`` (or a function returning the flow being served).

    ``views`` defaults to the process-wide registry of materialized views; ``protected``
    (the app's token dependencies, ``app.state.protected``) guards the state endpoint.
    Include it without router-level dependencies, so the page itself loads in a browser.
    """
    router = APIRouter(tags=["dashboard"])
    deps = list(protected)

    @router.get("/", include_in_schema=False)
    def page() -> Response:
        """The dashboard page."""
        return HTMLResponse(_asset("index.html"), headers=_page_headers())

    @router.get("/dashboard/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        """The page's script and style sheet."""
        if name not in _STATIC:
            raise RequestError(404, f"no dashboard file {name!r}")
        return Response(_asset(name), media_type=_STATIC[name],
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    @router.get("/dashboard/state", dependencies=deps)
    def state() -> dict[str, Any]:
        """The graph with every step's counters, view chart summaries and alerts."""
        current = flow() if callable(flow) and not _is_flow(flow) else flow
        return dashboard_state(current, views)  # type: ignore[arg-type]

    return router


def dashboard_state(flow: Flow | None, views: ViewRegistry | None = None) -> dict[str, Any]:
    """What ``GET /dashboard/state`` answers (see the module docstring)."""
    now = time.time_ns() // 1_000_000
    if flow is None:
        return {"flow": None, "now_ms": now, "running": False, "nodes": [], "edges": [],
                "totals": {}, "views": _views(views), "alerts": None}
    from tidal.alerts.http import alerts_state

    ex = flow.last_run
    metrics = ex.metrics if ex is not None else None
    steps = dict(metrics.steps) if metrics is not None else {}
    marks = dict(metrics.watermarks) if metrics is not None else {}
    children: dict[str, list[str]] = defaultdict(list)
    for n in flow.nodes:
        for up, _ in n.inputs:
            children[up.name].append(n.name)
    nodes = []
    for n in flow.nodes:
        s = steps.get(n.name)
        busy = s.busy_s if s is not None else 0.0
        # a step's busy time includes what its children did synchronously; show its own
        nested = sum(steps[c].busy_s for c in children[n.name] if c in steps)
        samples = sorted(s.batch_seconds[-256:]) if s is not None else []
        wm = marks.get(n.name)
        nodes.append({
            "name": n.name, "kind": n.kind, "stateful": n.stateful,
            "inputs": [up.name for up, _ in n.inputs],
            "rows_in": s.rows_in if s else 0, "rows_out": s.rows_out if s else 0,
            "batches": s.batches if s else 0, "busy_s": busy,
            "self_busy_s": max(0.0, busy - nested) if n.kind != "source" else 0.0,
            "batch_ms_p50": _pct(samples, 0.5), "batch_ms_p99": _pct(samples, 0.99),
            "watermark": wm if wm is not None and MIN_TIME < wm < MAX_TIME else None,
            "lag_ms": now - wm if wm is not None and MIN_TIME < wm < MAX_TIME else None,
        })
    edges = []
    for n in flow.nodes:
        for up, port in n.inputs:
            rows = (steps[n.name].rows_in if len(n.inputs) == 1 and n.name in steps
                    else steps[up.name].rows_out if up.name in steps else 0)
            edges.append({"from": up.name, "to": n.name, "port": port, "rows": rows})
    totals: dict[str, Any] = {}
    if metrics is not None:
        wm = metrics.watermark
        totals = {
            "events_in": metrics.events_in, "rows_out": metrics.rows_out, "late": metrics.late,
            "dead_letters": metrics.dead_letters, "batches": metrics.batches,
            "checkpoints": metrics.checkpoints,
            "last_checkpoint_ms": round(metrics.last_checkpoint_s * 1000, 1),
            "watermark": wm if MIN_TIME < wm < MAX_TIME else None,
            # the event-time sources' lag (a source without event time has no watermark)
            "lag_ms": max((n["lag_ms"] for n in nodes if n["kind"] == "source"
                           and n["lag_ms"] is not None), default=None),
            "started_ms": metrics.started_ms,
        }
    return {
        "flow": flow.name, "now_ms": now,
        "running": ex is not None and ex.opened and not ex.finished,
        "nodes": nodes, "edges": edges, "totals": totals, "views": _views(views),
        "alerts": alerts_state(flow, history=30),
    }


# -- views ----------------------------------------------------------------------------------
def _views(views: ViewRegistry | None) -> list[dict[str, Any]]:
    if views is None:
        try:
            from tidal.operators.view import registry as views
        except ImportError:  # pragma: no cover - views not part of this build
            return []
    return [_view_chart(v) for v in views.all()]


def _view_chart(view: View) -> dict[str, Any]:
    """A view's size and a small chart: per window (windowed views) and top keys."""
    frame = view.frame
    out: dict[str, Any] = {"name": view.name, "keys": list(view.keys), "windows": view.windows,
                           "rows": frame.height, "seq": view.seq,
                           "updated_ms": view.updated_ms or None, "metric": None,
                           "series": [], "top": []}
    skip = set(view.keys) | {"window_start", "window_end"}
    numeric = [c for c, t in frame.schema.items() if c not in skip and t.is_numeric()]
    if not numeric or not frame.height:
        return out
    windowed = view.windows is not None and "window_start" in frame.columns
    # events per window for windowed views; the first measure (spend, total, ...) otherwise
    metric = next((c for c in ("n", "count", "events") if c in numeric), numeric[0]) \
        if windowed else numeric[0]
    out["metric"] = metric
    latest = frame
    if windowed:
        start = pl.col("window_start")
        if isinstance(frame.schema["window_start"], pl.Datetime):
            start = start.dt.epoch("ms")
        per_window = (frame.group_by(start.alias("t")).agg(pl.col(metric).sum())
                      .sort("t").tail(_POINTS))
        out["series"] = [[int(t), _num(v)] for t, v in per_window.iter_rows()]
        last = frame.select(start.max()).item()
        latest = frame.filter(start == last)
    top = latest.sort(metric, descending=True, nulls_last=True).head(_TOP)
    out["top"] = [["/".join(str(v) for v in row[:-1]), _num(row[-1])]
                  for row in top.select(*view.keys, metric).iter_rows()]
    return out


# -- helpers --------------------------------------------------------------------------------
def _asset(name: str) -> bytes:
    return resources.files("tidal.serve").joinpath("static", name).read_bytes()


def _page_headers() -> dict[str, str]:
    return {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


def _pct(sorted_seconds: list[float], q: float) -> float | None:
    if not sorted_seconds:
        return None
    i = min(len(sorted_seconds) - 1, int(q * len(sorted_seconds)))
    return round(sorted_seconds[i] * 1000, 3)


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def _is_flow(obj: Any) -> bool:
    from tidal.api.flow import Flow

    return isinstance(obj, Flow)
