"""Push: a view's changes as Server-Sent Events and over a WebSocket.

Both start with a **snapshot** event (every row, and the sequence number it stands at),
then send every **change** in order: ``seq`` goes up by one per change, so a client that
applies them to the snapshot mirrors the view exactly, and can tell it missed nothing.

Events are JSON objects:

- ``{"type": "snapshot", "view": ..., "seq": N, "keys": [...], "rows": [...]}``
- ``{"type": "change", "view": ..., "seq": N + 1, "time_ms": ..., "upserts": [...],
  "deletes": [...]}``: rows that replaced (or added) the row of their key, and the keys of
  rows removed (windows falling out of a windowed view)
- ``{"type": "end", "view": ..., "reason": ...}``: the stream ends (the server stops, the
  view was replaced by a restarted flow, or the client fell ``max_pending`` changes
  behind); reconnect for a fresh snapshot.

SSE (``GET /views/{name}/changes``) sends ``id: <seq>``, ``event: <type>`` and
``data: <json>`` per event and a comment line every 15 s to keep proxies from closing the
connection. The WebSocket (``/views/{name}/ws``) sends one text message per event.

A slow client never slows the pipeline: changes wait in a bounded per-client queue, and a
client that falls too far behind is sent an ``end`` event and disconnected.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio.to_thread
import polars as pl
from fastapi import APIRouter
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from tidal.operators.view import Change, View, ViewRegistry

from ._errors import RequestError
from .views import frame_json, view_or_404

__all__ = ["DEFAULT_MAX_PENDING", "WS_SUBPROTOCOL", "Feed", "push_router", "websocket_router"]

logger = logging.getLogger("tidal.serve")

DEFAULT_MAX_PENDING = 10_000
HEARTBEAT_S = 15.0
WS_SUBPROTOCOL = "tidal"
"""The subprotocol the WebSocket answers with; browsers, which cannot send an
``Authorization`` header, offer ``["tidal", "bearer.<token>"]`` instead."""
_POLL_S = 0.5
_BIG = 5_000  # rows above which JSON is encoded in a worker thread, off the event loop


class Feed:
    """One client's subscription to a view: the snapshot, then changes in order.

    Created and read in the server's event loop; the pipeline's thread hands changes over
    with ``call_soon_threadsafe`` (never blocking).
    """

    def __init__(self, view: View, *, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.view = view
        self.max_pending = max_pending
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Change] = asyncio.Queue()
        self.overflowed = False
        self.snapshot, self.seq = view.subscribe(self._deliver)

    def _deliver(self, change: Change) -> None:  # the pipeline's thread, view locked
        try:
            self._loop.call_soon_threadsafe(self._put, change)
        except RuntimeError:  # the loop is closed: the server is gone
            self.overflowed = True

    def _put(self, change: Change) -> None:
        if self._queue.qsize() >= self.max_pending:
            self.overflowed = True
        elif not self.overflowed:
            self._queue.put_nowait(change)

    async def next(self, timeout: float) -> Change | None:
        """The next change, or None after ``timeout`` seconds without one."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        """Stop receiving changes."""
        self.view.unsubscribe(self._deliver)


async def events(
    feed: Feed, views: ViewRegistry, stopping: threading.Event,
    gone: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[tuple[str, int | None, str]]:
    """``(type, seq, json)`` of every event for ``feed``: snapshot, changes, maybe end.

    Stops without an event as soon as ``gone()`` says the client left (checked whenever
    no change came for half a second), so a closed connection frees its feed promptly.
    """
    view = feed.view
    rows = await _encode(feed.snapshot)
    yield "snapshot", feed.seq, (
        f'{{"type":"snapshot","view":{json.dumps(view.name)},"seq":{feed.seq},'
        f'"keys":{json.dumps(view.row_keys)},"rows":{rows}}}'
    )
    feed.snapshot = pl.DataFrame()  # not kept for the stream's lifetime
    quiet = 0.0
    while True:
        change = await feed.next(_POLL_S)
        if change is not None:
            quiet = 0.0
            yield "change", change.seq, await _change_json(view.name, change)
            continue
        if gone is not None and await gone():
            return
        reason = _ended(feed, views, stopping)
        if reason is not None:
            yield "end", None, json.dumps({"type": "end", "view": view.name, "reason": reason})
            return
        quiet += _POLL_S
        if quiet >= HEARTBEAT_S:
            quiet = 0.0
            yield "heartbeat", None, ""


def _ended(feed: Feed, views: ViewRegistry, stopping: threading.Event) -> str | None:
    if feed.overflowed:
        return (f"the client fell more than {feed.max_pending:,} changes behind; reconnect "
                "for a fresh snapshot")
    if stopping.is_set():
        return "the server is stopping"
    if views.get(feed.view.name) is not feed.view:
        return "the view was replaced (its flow restarted); reconnect for a fresh snapshot"
    return None


async def _encode(frame: pl.DataFrame) -> str:
    if frame.height > _BIG:
        return await anyio.to_thread.run_sync(frame_json, frame)
    return frame_json(frame)


async def _change_json(view: str, change: Change) -> str:
    # encoded once, shared by every client of the view
    text = change.cache.get("json")
    if text is None:
        text = (
            f'{{"type":"change","view":{json.dumps(view)},"seq":{change.seq},'
            f'"time_ms":{change.time_ms},"upserts":{await _encode(change.upserts)},'
            f'"deletes":{await _encode(change.deletes)}}}'
        )
        change.cache["json"] = text
    return text


def push_router(views: ViewRegistry, stopping: threading.Event, *,
                max_pending: int = DEFAULT_MAX_PENDING) -> APIRouter:
    """``GET /views/{name}/changes``: the view's snapshot and changes as Server-Sent Events."""
    router = APIRouter(prefix="/views", tags=["push"])

    @router.get(
        "/{name}/changes",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}},
                         "description": "snapshot, then every change in order"}},
    )
    async def changes(name: str, request: Request) -> StreamingResponse:
        """Server-Sent Events: ``snapshot`` (all rows), then one ``change`` event per change
        with consecutive ``id`` (the sequence number)."""
        view = view_or_404(views, name)
        feed = Feed(view, max_pending=max_pending)

        async def stream() -> AsyncIterator[str]:
            try:
                async for kind, seq, text in events(feed, views, stopping,
                                                    request.is_disconnected):
                    if kind == "heartbeat":
                        yield ": keep-alive\n\n"
                        continue
                    head = f"id: {seq}\n" if seq is not None else ""
                    yield f"{head}event: {kind}\ndata: {text}\n\n"
            finally:
                feed.close()

        return StreamingResponse(
            stream(), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router


def websocket_router(views: ViewRegistry, stopping: threading.Event, token: str | None, *,
                     max_pending: int = DEFAULT_MAX_PENDING) -> APIRouter:
    """``WS /views/{name}/ws``: the snapshot and changes, one text message per event.

    The token goes in ``Authorization: Bearer TOKEN`` or, from a browser, as the offered
    subprotocol ``bearer.TOKEN`` next to ``tidal``.
    """
    router = APIRouter(prefix="/views", tags=["push"])

    @router.websocket("/{name}/ws")
    async def changes_ws(websocket: WebSocket, name: str) -> None:
        if token is not None and not authorized(websocket, token):
            await _deny(websocket, RequestError(
                401, "this server requires a token: send 'Authorization: Bearer TOKEN' or "
                "offer the subprotocols ['tidal', 'bearer.TOKEN']"))
            return
        view = views.get(name)
        if view is None:
            try:
                view_or_404(views, name)
            except RequestError as e:
                await _deny(websocket, e)
            return
        offered = websocket.scope.get("subprotocols") or []
        await websocket.accept(subprotocol=WS_SUBPROTOCOL if WS_SUBPROTOCOL in offered else None)
        feed = Feed(view, max_pending=max_pending)
        receiver = asyncio.create_task(_drain(websocket))

        async def gone() -> bool:
            return receiver.done()

        try:
            async for kind, _, text in events(feed, views, stopping, gone):
                if receiver.done():
                    return  # the client left
                if kind == "heartbeat":
                    continue  # the WebSocket protocol's own pings keep it open
                await websocket.send_text(text)
            await websocket.close(1001 if stopping.is_set() else 1000)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            feed.close()
            receiver.cancel()

    return router


async def _drain(websocket: WebSocket) -> None:
    # Reads (and ignores) what the client sends, until it disconnects.
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return


async def _deny(websocket: WebSocket, error: RequestError) -> None:
    """Refuse the handshake with an HTTP response (status and JSON detail)."""
    response = JSONResponse({"detail": error.message}, status_code=error.status,
                            headers=error.headers)
    try:
        await websocket.send_denial_response(response)
    except RuntimeError:  # the server does not support denial responses
        await websocket.close(code=1008)


def authorized(connection: HTTPConnection, token: str) -> bool:
    """True when ``connection`` carries ``token`` (header or ``bearer.`` subprotocol),
    compared in constant time; refusals are logged like the HTTP ones."""
    expected = token.encode()
    scheme, _, given = connection.headers.get("authorization", "").partition(" ")
    ok = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)
    if not ok:
        for proto in connection.scope.get("subprotocols") or []:
            if proto.startswith("bearer.") and hmac.compare_digest(
                proto[len("bearer."):].encode(), expected
            ):
                ok = True
    if not ok:
        client = connection.client.host if connection.client else "?"
        logger.warning("refused WebSocket %s from %s: no or a wrong token",
                       connection.url.path, client)
    return ok
