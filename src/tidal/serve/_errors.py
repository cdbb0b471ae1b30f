"""HTTP errors of the server: a status, a message saying what to do, and extra JSON fields.

Every error response is JSON: ``{"detail": "<message>", ...extra fields}``, the shape
FastAPI uses for its own errors, so clients handle one shape.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse


class RequestError(Exception):
    """Raised by an endpoint to answer with ``status`` and ``{"detail": message, **fields}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **fields: Any,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.fields = fields


async def request_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Render a :class:`RequestError` as its JSON response."""
    assert isinstance(exc, RequestError)
    return JSONResponse(
        {"detail": exc.message, **exc.fields}, status_code=exc.status, headers=exc.headers
    )
