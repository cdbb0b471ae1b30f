"""A TCP listener that turns every text line it receives into a row of a topic.

Rows have two columns: ``line`` (the text, without its line ending) and ``timestamp``
(epoch milliseconds when the server received it, used as the row's time). Lines from all
connections are gathered and appended in batches: a batch closes after ``max_delay_ms``
or ``max_rows`` lines, whichever comes first (small batches when traffic is slow, large
ones when it is fast). There is no acknowledgement on a raw socket, so a line is durable
once its batch is fsynced per the topic's policy; lines still in the gathering buffer
when the process is killed are lost (use ``POST /topics/{name}`` for acknowledged writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tidal.log import Log, Topic

logger = logging.getLogger("tidal.serve")


class LineListener:
    """Accepts TCP connections on ``host:port``; each line becomes a row of ``topic``.

    ``port=0`` picks a free port (read :attr:`port` after :meth:`start`). Lines longer than
    ``max_line_bytes`` are split. Invalid UTF-8 is replaced with U+FFFD. When appends fall
    behind, reading from the sockets pauses (TCP backpressure) rather than buffering
    without bound.

    >>> import asyncio, socket, tempfile, tidal.log
    >>> log = tidal.log.open(tempfile.mkdtemp())
    >>> _ = log.create_topic("lines")
    >>> async def demo():
    ...     listener = LineListener(log, "lines", port=0)
    ...     await listener.start()
    ...     reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    ...     writer.write(b"hello\\nworld\\n")
    ...     writer.close()
    ...     while listener.rows_appended < 2:  # batches close within max_delay_ms
    ...         await asyncio.sleep(0.01)
    ...     await listener.close()
    >>> asyncio.run(demo())
    >>> log.topic("lines").read_arrow(0, 0).table.column("line").to_pylist()
    ['hello', 'world']
    >>> log.close()
    """

    def __init__(
        self,
        log: Log,
        topic: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_rows: int = 10_000,
        max_delay_ms: int = 10,
        max_line_bytes: int = 1 << 20,
    ):
        self.topic: Topic = log.topic(topic)
        self.host = host
        self.port = port
        self.max_rows = max_rows
        self.max_delay_ms = max_delay_ms
        self.max_line_bytes = max_line_bytes
        self.rows_appended = 0
        self._lines: list[str] = []
        self._times: list[tuple[int, int]] = []  # (lines so far, receive time) per chunk
        self._has_lines = asyncio.Event()
        self._full = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._server: asyncio.Server | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self) -> None:
        """Start listening and appending (call from the event loop that will run it)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._flusher = asyncio.create_task(self._flush_loop(), name="tidal-lines-flush")
        logger.info("line listener on %s:%d -> topic %r", self.host, self.port, self.topic.name)

    async def close(self) -> None:
        """Stop accepting, drop connections, and append the lines already received."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._room.set()
        self._has_lines.set()  # wake the flusher: it appends what is left, then returns
        if self._flusher is not None:
            await self._flusher

    # -- receiving ---------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        pending = b""
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    break
                pending += data
                cut = pending.rfind(b"\n")
                if cut < 0:
                    if len(pending) >= self.max_line_bytes:
                        self._add(pending)
                        pending = b""
                    continue
                self._add(pending[:cut])
                pending = pending[cut + 1 :]
                if len(self._lines) >= 8 * self.max_rows:
                    self._room.clear()
                    await self._room.wait()
            if pending:
                self._add(pending)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    def _add(self, chunk: bytes) -> None:
        """Add the lines of ``chunk`` (complete lines without the last line ending)."""
        lines = chunk.decode("utf-8", "replace").split("\n")
        self._lines.extend(lines)
        self._times.append((len(self._lines), time.time_ns() // 1_000_000))
        self._has_lines.set()
        if len(self._lines) >= self.max_rows:
            self._full.set()

    # -- appending ---------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await self._has_lines.wait()
            if not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.max_delay_ms / 1000)
            lines, times = self._take()
            try:
                await asyncio.to_thread(self._append, lines, times)
            except Exception:  # keep listening: one failed append must not stop ingestion
                logger.exception("appending %d lines to topic %r failed", len(lines),
                                 self.topic.name)
            self._room.set()
            if self._closing and not self._lines:
                return

    def _take(self) -> tuple[list[str], list[tuple[int, int]]]:
        lines, times = self._lines, self._times
        self._lines, self._times = [], []
        self._has_lines.clear()
        self._full.clear()
        return lines, times

    def _append(self, lines: list[str], times: list[tuple[int, int]]) -> None:
        if not lines:
            return
        ends = np.array([end for end, _ in times], np.int64)
        counts = np.diff(ends, prepend=0)
        stamps = np.repeat(np.array([t for _, t in times], np.int64), counts)
        text = pc.utf8_rtrim(pa.array(lines, pa.string()), characters="\r")
        self.topic.append_batch(
            pa.table({"line": text, "timestamp": stamps}), timestamp="timestamp"
        )
        self.rows_appended += len(lines)
