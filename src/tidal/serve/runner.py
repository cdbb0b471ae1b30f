"""Running a flow and its HTTP server in one process (``flow.run(serve=True)``,
``tidal run --serve FILE.py``).

The flow runs in the calling thread (so Ctrl-C and ``tidal savepoint`` reach it as usual);
uvicorn runs in a worker thread with its own event loop. Both share the process-wide view
registry and the executor's :class:`~tidal.runtime.executor.Metrics`, read by ``/metrics``
as the flow runs. When the log folder exists, ingestion (``POST /topics/{name}``) is served
too, so a flow reading a log topic can be fed over HTTP by the same process.

Shutdown: when the run ends (input exhausted, ``duration``, ``stop``, Ctrl-C, an error),
push streams are sent an ``end`` event, in-flight requests are answered (up to 5 s), the
server stops, and only then does ``run`` return (or raise the flow's error).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

import tidal.log
from tidal.errors import ConfigError
from tidal.log._log import DEFAULT_DIR, ENV_DIR

from ._app import DEFAULT_MAX_BODY_BYTES, create_app
from ._run import TOKEN_ENV, _is_loopback
from .metrics import RunningFlow

if TYPE_CHECKING:
    from tidal.api.flow import Flow
    from tidal.runtime.executor import Metrics

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "check_options", "run_served"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
START_TIMEOUT_S = 30.0
GRACEFUL_S = 5


def check_options(host: str, token: str | None, tls_cert: str | os.PathLike[str] | None,
                  tls_key: str | os.PathLike[str] | None) -> None:
    """Refuse settings that would expose the server or cannot work, saying what to do."""
    if not _is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to listen on {host!r} without a token: anyone who can reach it could "
            f"read the views and write to the log; pass a token (--token or {TOKEN_ENV}) or "
            "bind to 127.0.0.1"
        )
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("TLS needs both a certificate and its key: give --tls-cert and "
                          "--tls-key together (or neither)")
    for what, path in (("certificate", tls_cert), ("key", tls_key)):
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"TLS {what} file {str(path)!r} does not exist")


def run_served(
    flow: Flow, *, host: str | None = None, port: int | None = None, token: str | None = None,
    tls_cert: str | os.PathLike[str] | None = None, tls_key: str | os.PathLike[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, run: dict[str, Any] | None = None,
) -> Metrics:
    """Run ``flow`` (with :meth:`tidal.Flow.run` options ``run``) while serving its views,
    metrics and, when the log folder exists, ingestion on ``host:port``.

    ``token`` defaults to ``$TIDAL_TOKEN``; without one, only a loopback address is
    accepted. ``tls_cert``/``tls_key`` (PEM files) make it HTTPS. ``port=0`` picks a free
    port (the address is printed). Returns the run's metrics once the server has stopped.
    """
    host = DEFAULT_HOST if host is None else host
    port = DEFAULT_PORT if port is None else port
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    check_options(host, token, tls_cert, tls_key)
    options = dict(run or {})
    log = _existing_log(options.get("log_dir"))
    running = RunningFlow(flow)
    flow.last_run = None
    try:
        app = create_app(log, max_body_bytes=max_body_bytes, token=token, running=running)
        server = uvicorn.Server(uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_S,
            ssl_certfile=None if tls_cert is None else str(tls_cert),
            ssl_keyfile=None if tls_key is None else str(tls_key),
        ))
        thread = threading.Thread(target=server.run, name=f"tidal-serve-{flow.name}",
                                  daemon=True)
        thread.start()
        _wait_started(server, thread, host, port)
        scheme = "https" if tls_cert is not None else "http"
        bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
        print(f"tidal: serving flow {flow.name!r} at {scheme}://{_url_host(host)}:{bound} "
              f"(views, /query, /metrics{', /topics' if log is not None else ''})",
              file=sys.stderr)
        try:
            return flow.run(**options)
        except BaseException as e:
            running.error = e
            raise
        finally:
            running.ended = True
            app.state.stopping.set()  # push streams end, so shutdown does not wait on them
            server.should_exit = True
            thread.join(timeout=GRACEFUL_S + 10)
    finally:
        if log is not None:
            log.close()


def _existing_log(log_dir: str | os.PathLike[str] | None) -> tidal.log.Log | None:
    # Ingestion is served only over a log that exists: serving must not create one.
    if log_dir is None:
        home = os.environ.get("TIDAL_HOME")
        log_dir = os.environ.get(ENV_DIR) or (Path(home) / "log" if home else DEFAULT_DIR)
    return tidal.log.open(log_dir) if Path(log_dir).is_dir() else None


def _wait_started(server: uvicorn.Server, thread: threading.Thread, host: str, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise ConfigError(
                f"the server could not listen on {host}:{port} (is the port in use? see the "
                "message above); pick another with --port"
            )
        if time.monotonic() > deadline:
            server.should_exit = True
            raise ConfigError(f"the server did not start within {START_TIMEOUT_S:g} s")
        time.sleep(0.01)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
