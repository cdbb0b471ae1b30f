"""The FastAPI application: one router per concern, all sharing the token check.

Routers are added in :func:`create_app`; later concerns (views, metrics, dashboard) add
theirs the same way, with ``dependencies=app.state.protected`` so the token applies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI

import tidal
from tidal.log import Log

from ._auth import bearer_token
from ._errors import RequestError, request_error_handler
from ._idempotency import DEFAULT_MAX_ENTRIES, DEFAULT_TTL_MS, IdempotencyStore
from ._topics import topics_router

DEFAULT_MAX_BODY_BYTES = 64 << 20
IDEMPOTENCY_FILE = "serve/idempotency.sqlite3"


def create_app(
    log: Log,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    token: str | None = None,
    idempotency_ttl_ms: int = DEFAULT_TTL_MS,
    idempotency_max_entries: int = DEFAULT_MAX_ENTRIES,
) -> FastAPI:
    """The HTTP app over an open ``log``: ingestion into topics, topic listing, health.

    ``token``, when set, is required as ``Authorization: Bearer TOKEN`` on every endpoint
    but ``/healthz``. Bodies above ``max_body_bytes`` are refused with 413. Responses to
    requests carrying an ``Idempotency-Key`` are remembered in
    ``<log dir>/serve/idempotency.sqlite3`` for ``idempotency_ttl_ms``, at most
    ``idempotency_max_entries`` of them. The caller keeps ownership of ``log``.
    """
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
    store = IdempotencyStore(
        log.path / IDEMPOTENCY_FILE, ttl_ms=idempotency_ttl_ms,
        max_entries=idempotency_max_entries,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            store.close()

    # No Swagger UI: it loads its assets from a CDN, and the server must work offline.
    app = FastAPI(title="tidal", version=tidal.__version__, lifespan=lifespan,
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.add_exception_handler(RequestError, request_error_handler)
    protected = [Depends(bearer_token(token))] if token else []
    app.state.log = log
    app.state.protected = protected
    app.include_router(_health_router())
    app.include_router(_openapi_router(app), dependencies=protected)
    app.include_router(
        topics_router(log, max_body_bytes=max_body_bytes, idempotency=store),
        dependencies=protected,
    )
    return app


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
