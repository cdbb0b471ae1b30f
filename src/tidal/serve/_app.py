"""The FastAPI application: one router per concern, all sharing the token check.

Routers are added in :func:`create_app`; later concerns (views, metrics, dashboard) add
theirs the same way, with ``dependencies=app.state.protected`` so the token applies.

``app.state`` holds what routers share: ``log`` (None without a log), ``protected``,
``views`` (the :class:`~tidal.operators.view.ViewRegistry` served), ``metrics`` (the
:class:`~tidal.serve.metrics.Collector`), ``running`` (the flow run with the server, or
None), ``sql`` (the :class:`~tidal.serve.query.SqlEngine`) and ``stopping`` (a
``threading.Event`` set when the server begins to stop: push streams end on it).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI

import tidal
from tidal.log import Log
from tidal.operators.view import ViewRegistry
from tidal.operators.view import registry as default_views

from ._auth import bearer_token
from ._errors import RequestError, request_error_handler
from ._idempotency import DEFAULT_MAX_ENTRIES, DEFAULT_TTL_MS, IdempotencyStore
from ._topics import topics_router
from .metrics import FOLD_INTERVAL_S, Collector, RunningFlow, metrics_router
from .push import push_router, websocket_router
from .query import DEFAULT_MAX_QUERY_BYTES, SqlEngine, query_router
from .views import views_router

DEFAULT_MAX_BODY_BYTES = 64 << 20
IDEMPOTENCY_FILE = "serve/idempotency.sqlite3"


def create_app(
    log: Log | None = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    token: str | None = None,
    idempotency_ttl_ms: int = DEFAULT_TTL_MS,
    idempotency_max_entries: int = DEFAULT_MAX_ENTRIES,
    views: ViewRegistry | None = None,
    running: RunningFlow | None = None,
    max_query_bytes: int = DEFAULT_MAX_QUERY_BYTES,
) -> FastAPI:
    """The HTTP app: views (pull, SQL, push), metrics, health, and, over an open ``log``,
    ingestion into topics and topic listing.

    ``token``, when set, is required as ``Authorization: Bearer TOKEN`` on every endpoint
    but ``/healthz``. Bodies above ``max_body_bytes`` (``max_query_bytes`` for
    ``POST /query``) are refused with 413. Responses to
    requests carrying an ``Idempotency-Key`` are remembered in
    ``<log dir>/serve/idempotency.sqlite3`` for ``idempotency_ttl_ms``, at most
    ``idempotency_max_entries`` of them. The caller keeps ownership of ``log``.
    ``views`` defaults to the process-wide registry; ``running`` is the flow run
    alongside (for ``/metrics`` and ``/readyz``).
    """
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
    store = None if log is None else IdempotencyStore(
        log.path / IDEMPOTENCY_FILE, ttl_ms=idempotency_ttl_ms,
        max_entries=idempotency_max_entries,
    )
    views = default_views if views is None else views
    collector = Collector(views, running)
    sql = SqlEngine(views)
    stopping = threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        folding = asyncio.create_task(_fold_forever(collector))
        try:
            yield
        finally:
            stopping.set()
            folding.cancel()
            sql.close()
            if store is not None:
                store.close()

    # No Swagger UI: it loads its assets from a CDN, and the server must work offline.
    app = FastAPI(title="tidal", version=tidal.__version__, lifespan=lifespan,
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.add_exception_handler(RequestError, request_error_handler)
    protected = [Depends(bearer_token(token))] if token else []
    app.state.log = log
    app.state.protected = protected
    app.state.views = views
    app.state.metrics = collector
    app.state.running = running
    app.state.sql = sql
    app.state.stopping = stopping
    app.include_router(_health_router())
    app.include_router(_openapi_router(app), dependencies=protected)
    # push before pull: /views/{name}/changes must not be read as a key lookup
    app.include_router(push_router(views, stopping), dependencies=protected)
    app.include_router(websocket_router(views, stopping, token))  # checks the token itself
    app.include_router(views_router(views), dependencies=protected)
    app.include_router(query_router(sql, max_body_bytes=max_query_bytes), dependencies=protected)
    app.include_router(metrics_router(collector), dependencies=protected)
    if running is not None:  # a flow served with its results: its alerts and dashboard too
        from tidal.alerts.http import alerts_router
        from tidal.serve.dashboard import dashboard_router

        app.include_router(alerts_router(lambda: [running.flow]), dependencies=protected)
        app.include_router(dashboard_router(lambda: running.flow, views=views, protected=protected))
    if log is not None and store is not None:
        app.include_router(
            topics_router(log, max_body_bytes=max_body_bytes, idempotency=store),
            dependencies=protected,
        )
    return app


async def _fold_forever(collector: Collector) -> None:
    while True:
        await asyncio.sleep(FOLD_INTERVAL_S)
        collector.fold()


def _openapi_router(app: FastAPI) -> APIRouter:
    router = APIRouter(tags=["meta"])

    @router.get("/openapi.json", include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        """The OpenAPI document of every endpoint (behind the token like the rest)."""
        return app.openapi()

    return router


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: answers while the server runs (no token needed)."""
        return {"status": "ok"}

    return router
