"""Reading a request body with a size limit enforced before and while it arrives."""

from __future__ import annotations

from starlette.requests import Request

from ._errors import RequestError


def _too_large(limit: int, what: str) -> RequestError:
    return RequestError(
        413,
        f"request body {what} the limit of {limit:,} bytes; send smaller bodies "
        f"(or start the server with a larger max_body_bytes)",
        headers={"Connection": "close"},
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing with 413 before reading when Content-Length exceeds ``limit``.

    Chunked bodies (no Content-Length) are counted as they stream in, and the request is
    refused as soon as the count passes ``limit``: at most ``limit`` bytes (plus one
    network read) are ever held in memory.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise RequestError(400, f"Content-Length {declared!r} is not a number") from None
        if length > limit:
            raise _too_large(limit, f"of {length:,} bytes (Content-Length) exceeds")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit, "exceeds")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
