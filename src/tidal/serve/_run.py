"""``tidal serve``: the HTTP app and the optional TCP line listener in one process."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import threading
from types import FrameType

import uvicorn

import tidal.log
from tidal.errors import ConfigError
from tidal.log import InvalidNameError, Log, UnknownTopicError

from ._app import DEFAULT_MAX_BODY_BYTES, create_app
from ._lines import LineListener

TOKEN_ENV = "TIDAL_TOKEN"


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    log_dir: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    token: str | None = None,
    tcp_port: int | None = None,
    tcp_topic: str | None = None,
) -> None:
    """Serve the HTTP API on ``host:port`` over the log in ``log_dir`` until stopped.

    Blocks; returns after SIGINT or SIGTERM, once in-flight requests are answered, the
    line listener has appended what it received, and the log is flushed and closed.
    ``log_dir`` defaults as in :func:`tidal.log.open`. ``token`` (default: the
    ``TIDAL_TOKEN`` environment variable) is then required on every endpoint but
    ``/healthz``; listening on a non-loopback address without one is refused. With
    ``tcp_port`` and ``tcp_topic``, a TCP listener on 127.0.0.1 appends every line it
    receives to that (existing) topic.
    """
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    if not _is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to listen on {host!r} without a token: anyone who can reach it could "
            f"write to the log; pass a token (--token or {TOKEN_ENV}) or bind to 127.0.0.1"
        )
    if (tcp_port is None) != (tcp_topic is None):
        raise ConfigError("tcp_port and tcp_topic go together: give both or neither")
    log = tidal.log.open(log_dir)
    try:
        if tcp_topic is not None:
            _check_topic(log, tcp_topic)
        app = create_app(log, max_body_bytes=max_body_bytes, token=token)
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info"))
        with _stop_on_signals():
            asyncio.run(_run(server, log, tcp_port, tcp_topic))
    except _Stop:
        pass
    finally:
        log.close()


async def _run(
    server: uvicorn.Server, log: Log, tcp_port: int | None, tcp_topic: str | None
) -> None:
    listener = None
    if tcp_port is not None and tcp_topic is not None:
        listener = LineListener(log, tcp_topic, port=tcp_port)
        await listener.start()
    try:
        await server.serve()
    finally:
        if listener is not None:
            await listener.close()


def _check_topic(log: Log, name: str) -> None:
    try:
        log.topic(name)
    except InvalidNameError as e:
        raise ConfigError(f"tcp_topic: {e}") from None
    except UnknownTopicError:
        raise ConfigError(
            f"tcp_topic {name!r} does not exist; create it with `tidal topics create {name}`"
        ) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Stop(BaseException):
    """Raised by a stop signal once uvicorn has shut down and passes the signal on."""


class _stop_on_signals:
    # uvicorn catches SIGINT/SIGTERM, shuts down gracefully, then re-raises the signal to
    # the handler that was installed before it; this one unwinds the stack instead of
    # killing the process, so the listener and the log are closed properly.
    def __enter__(self) -> None:
        self.saved: dict[int, object] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._raise)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    @staticmethod
    def _raise(sig: int, frame: FrameType | None) -> None:
        raise _Stop(sig)
