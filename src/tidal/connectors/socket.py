"""Lines of text over TCP, like Spark's ``socketTextStream``.

By default the source *connects* to a server that sends lines (as ``nc -lk 9999`` does),
retrying until it is up and reconnecting when it goes away; with ``listen=True`` it accepts
connections instead and reads lines from each. A socket cannot replay what it sent, so this
source is at-most-once across restarts; land data in the embedded log for exactly-once.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from typing import Any

import polars as pl

from tidal.connectors.base import Source, SourceContext, SourcePartition

__all__ = ["SocketText", "socket_text"]


class _SocketPartition(SourcePartition):
    def __init__(self, host: str, port: int, listen: bool, ctx: SourceContext,
                 retry_s: float) -> None:
        self.host, self.port, self.listen, self.ctx, self.retry_s = host, port, listen, ctx, retry_s
        self.lines: deque[str] = deque()
        self.count = 0
        self.closing = threading.Event()
        self.server: socket.socket | None = None
        if listen:
            self.server = socket.create_server((host, port), reuse_port=False)
            self.server.settimeout(0.2)
        self.thread = threading.Thread(target=self._run, name=f"socket-{host}:{port}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.closing.is_set():
            conn = self._accept() if self.listen else self._connect()
            if conn is None:
                continue
            if self.listen:
                threading.Thread(target=self._read, args=(conn,), daemon=True).start()
            else:
                self._read(conn)

    def _connect(self) -> socket.socket | None:
        try:
            return socket.create_connection((self.host, self.port), timeout=self.retry_s)
        except OSError:
            self.closing.wait(self.retry_s)  # not up yet: retry, as socketTextStream does
            return None

    def _accept(self) -> socket.socket | None:
        assert self.server is not None
        try:
            conn, _ = self.server.accept()
            return conn
        except (TimeoutError, OSError):
            return None

    def _read(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        pending = b""
        with conn:
            while not self.closing.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                pending += data
                *complete, pending = pending.split(b"\n")
                if complete:
                    self.lines.extend(c.decode(errors="replace").rstrip("\r") for c in complete)
                    self.ctx.wake()
        if pending:
            self.lines.append(pending.decode(errors="replace").rstrip("\r"))
            self.ctx.wake()

    def poll(self, max_rows: int) -> pl.DataFrame | None:
        if not self.lines:
            return None
        n = min(max_rows, len(self.lines))
        out = [self.lines.popleft() for _ in range(n)]
        self.count += n
        return pl.DataFrame({"line": out}, schema={"line": pl.String})

    def position(self) -> int:
        return self.count

    def close(self) -> None:
        self.closing.set()
        if self.server is not None:
            self.server.close()
        self.thread.join(timeout=2)


class SocketText(Source):
    """A stream of text lines from a TCP socket, in one column named ``line``."""

    name = "socket"

    def __init__(self, host: str, port: int, listen: bool = False, retry_interval: float = 0.5) -> None:
        self.host, self.port, self.listen, self.retry = host, int(port), listen, retry_interval

    def partitions(self) -> list[str]:
        return [f"{self.host}:{self.port}"]

    def open(self, partition: str, position: Any, ctx: SourceContext) -> SourcePartition:
        return _SocketPartition(self.host, self.port, self.listen, ctx, self.retry)

    def schema(self) -> pl.Schema:
        return pl.Schema({"line": pl.String})


def socket_text(host: str = "localhost", port: int = 9999, listen: bool = False) -> SocketText:
    """Read lines from ``host:port`` (connecting, with retries), or accept connections there
    with ``listen=True``. Yields one column, ``line``."""
    return SocketText(host, port, listen)
