"""``GET /alerts``: the rules of the served flows, their live alerts and recent history.

Include the router in the server's app (behind its token, like every data endpoint)::

    app.include_router(alerts_router(flow), dependencies=app.state.protected)

The answer::

    {"rules": [{"name", "kind", "condition", "key", "for_ms", "repeat_interval_ms",
                "severity", "labels", "channels", "alerts": [{"key", "state", "since",
                "value", "fired_at", "last_sent", "last_seen"}]}],
     "firing": N, "pending": N,
     "history": [{"rule", "key", "state", "at", "since", "value", "severity"}],  # newest first
     "channels": [{"name", "type", "sent", "retried", "failed", "dropped", "queued",
                   "last_error"}]}

>>> import polars as pl, tidal as td
>>> flow = td.Flow("doc")
>>> _ = td.alerts.rule("big", flow.source(td.sources.memory([{"x": 0}])), pl.col("x") > 1)
>>> alerts_state(flow)["rules"][0]["condition"]
'[(col("x")) > (dyn int: 1)]'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from ._rule import rules

if TYPE_CHECKING:
    from tidal.api.flow import Flow

__all__ = ["HISTORY_LIMIT", "alerts_router", "alerts_state"]

HISTORY_LIMIT = 100


def _flows(source: Any) -> list[Flow]:
    from tidal.api.flow import Flow

    if isinstance(source, Flow):
        return [source]
    if callable(source):
        source = source()
    return list(source)


def alerts_state(source: Any, history: int = HISTORY_LIMIT) -> dict[str, Any]:
    """The JSON of ``GET /alerts`` for a flow, flows, or a function returning flows."""
    described = []
    transitions: list[dict[str, Any]] = []
    channels: dict[int, Any] = {}
    for flow in _flows(source):
        for r in rules(flow):
            described.append(r.describe())
            transitions.extend(r.history())
            for c in r.channels:
                channels[id(c)] = c
    transitions.reverse()  # newest first, also among transitions at the same time
    transitions.sort(key=lambda t: t["at"], reverse=True)
    live = [a for r in described for a in r["alerts"]]
    return {
        "rules": described,
        "firing": sum(a["state"] == "firing" for a in live),
        "pending": sum(a["state"] == "pending" for a in live),
        "history": transitions[:history],
        "channels": [c.stats() for c in channels.values()],
    }


def alerts_router(source: Flow | Iterable[Flow] | Callable[[], Iterable[Flow]]) -> APIRouter:
    """The ``GET /alerts`` route over the rules of ``source`` (a flow, flows, or a function
    returning the flows being served)."""
    router = APIRouter(tags=["alerts"])

    @router.get("/alerts")
    def get_alerts(limit: int = HISTORY_LIMIT) -> dict[str, Any]:
        """Every rule with its pending and firing alerts, the most recent transitions
        (newest first, at most ``limit``) and the channels' delivery counters."""
        return alerts_state(source, max(0, min(limit, 1_000)))

    return router
