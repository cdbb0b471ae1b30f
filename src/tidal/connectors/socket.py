"""Lines of text over TCP, like Spark's ``socketTextStream``.

By default the source *connects* to a server that sends lines (as ``nc -lk 9999`` does),
retrying until it is up and reconnecting when it goes away; with ``listen=True`` it accepts
connections instead and reads lines from each. A socket cannot replay what it sent, so this
source is at-most-once across restarts; land data in the embedded log for exactly-once.

Lines arrive as one ``line`` column (``format="text"``), or decoded: ``format="json"`` (one
object per line) or ``format="csv"`` (fields named by ``columns``, as text: declare the
types with ``flow.source(..., schema=...)``). A line that does not decode goes to the dead
letters with the reason; the lines around it are kept.
"""

from __future__ import annotations

import csv
import socket
import threading
from collections import deque
from typing import Any, Literal

import polars as pl

from tidal.connectors.base import Source, SourceContext, SourcePartition
from tidal.connectors.files import json_object
from tidal.errors import ConfigError

__all__ = ["SocketText", "socket_text"]


class _SocketPartition(SourcePartition):
    def __init__(self, host: str, port: int, listen: bool, ctx: SourceContext,
                 retry_s: float, format: str = "text", columns: list[str] | None = None) -> None:
        self.host, self.port, self.listen, self.ctx, self.retry_s = host, port, listen, ctx, retry_s
        self.format, self.columns = format, columns or []
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
        start = self.count
        self.count += n
        if self.format == "json":
            return self._json(out, start)
        if self.format == "csv":
            return self._csv(out, start)
        name = self.columns[0] if self.columns else "line"
        return pl.DataFrame({name: out}, schema={name: pl.String})

    def _reject(self, line: str, reason: str, at: int) -> None:
        self.ctx.dead_letter(line, reason, {"socket": f"{self.host}:{self.port}", "line": at})

    def _json(self, lines: list[str], start: int) -> pl.DataFrame | None:
        text = "\n".join(line for line in lines if line.strip())
        if not text:
            return None
        try:
            frame = pl.read_ndjson(text.encode(), infer_schema_length=None)
            if frame.height == sum(1 for line in lines if line.strip()):
                return frame
        except (pl.exceptions.PolarsError, ValueError, OSError):
            pass
        rows = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rows.append(json_object(line))
            except ValueError as exc:
                self._reject(line, f"invalid JSON line: {exc}", start + i)
        return pl.from_dicts(rows, infer_schema_length=None) if rows else None

    def _csv(self, lines: list[str], start: int) -> pl.DataFrame | None:
        values: dict[str, list[str | None]] = {c: [] for c in self.columns}
        for i, fields in enumerate(csv.reader(lines)):
            if not fields:
                continue
            if len(fields) != len(self.columns):
                self._reject(lines[i], f"expected {len(self.columns)} fields "
                             f"({', '.join(self.columns)}), found {len(fields)}", start + i)
                continue
            for c, v in zip(self.columns, fields, strict=True):
                values[c].append(v if v != "" else None)
        if not values or not next(iter(values.values())):
            return None
        return pl.DataFrame(values, schema={c: pl.String for c in self.columns})

    def position(self) -> int:
        return self.count

    def close(self) -> None:
        self.closing.set()
        if self.server is not None:
            self.server.close()
        self.thread.join(timeout=2)


class SocketText(Source):
    """A stream of text lines from a TCP socket: one column named ``line``, or the lines
    decoded as JSON objects or CSV fields (see the module docstring)."""

    name = "socket"

    def __init__(self, host: str, port: int, listen: bool = False, retry_interval: float = 0.5,
                 format: Literal["text", "json", "csv"] = "text",
                 columns: list[str] | None = None) -> None:
        if format not in ("text", "json", "csv"):
            raise ConfigError(f"socket source: format must be 'text', 'json' or 'csv', not "
                              f"{format!r}")
        if format == "text" and columns is not None and len(columns) != 1:
            raise ConfigError("socket source: format='text' gives one column; name it with "
                              f"columns=['line'], not {columns!r}")
        if format == "csv" and not columns:
            raise ConfigError("socket source: format='csv' needs columns=[...], the names of "
                              "the fields of a line in order")
        self.host, self.port, self.listen, self.retry = host, int(port), listen, retry_interval
        self.format, self.columns = format, list(columns or [])

    def partitions(self) -> list[str]:
        return [f"{self.host}:{self.port}"]

    def open(self, partition: str, position: Any, ctx: SourceContext) -> SourcePartition:
        return _SocketPartition(self.host, self.port, self.listen, ctx, self.retry,
                                self.format, self.columns)

    def schema(self) -> pl.Schema | None:
        if self.format == "text":
            return pl.Schema({self.columns[0] if self.columns else "line": pl.String})
        if self.format == "csv":
            return pl.Schema({c: pl.String for c in self.columns})
        return None  # JSON: the objects' fields


def socket_text(host: str = "localhost", port: int = 9999, listen: bool = False,
                format: Literal["text", "json", "csv"] = "text",
                columns: list[str] | None = None) -> SocketText:
    """Read lines from ``host:port`` (connecting, with retries), or accept connections there
    with ``listen=True``. Yields one column, ``line`` (or ``columns[0]``); with
    ``format="json"`` the fields of one JSON object per line, with ``format="csv"`` the
    fields named ``columns`` (text)."""
    return SocketText(host, port, listen, format=format, columns=columns)
