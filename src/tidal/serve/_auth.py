"""Bearer-token check for every endpoint but health, compared in constant time."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request

from ._errors import RequestError

logger = logging.getLogger("tidal.serve")


def bearer_token(token: str) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency refusing requests without ``Authorization: Bearer <token>``.

    Refused requests are logged (method, path, client address), never the token sent.
    """
    expected = token.encode()

    async def require_token(request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
            return
        client = request.client.host if request.client else "?"
        reason = "no bearer token" if scheme.lower() != "bearer" else "a wrong token"
        logger.warning("refused %s %s from %s: %s", request.method, request.url.path, client,
                       reason)
        raise RequestError(
            401,
            f"this server requires a token: send the header 'Authorization: Bearer TOKEN' "
            f"(the request had {reason})",
            headers={"WWW-Authenticate": "Bearer"},
        )

    return require_token
