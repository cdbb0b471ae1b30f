"""``tidal.serve.serve`` as a real process, and the TCP line listener."""

from __future__ import annotations

import asyncio
import signal
import socket
import time

import httpx
import pytest

import tidal.log
from tidal.errors import ConfigError
from tidal.serve import LineListener, serve

from .conftest import free_port


def wait_for_rows(log: tidal.log.Log, topic: str, rows: int, timeout: float = 20) -> None:
    t = log.topic(topic)
    deadline = time.monotonic() + timeout
    while sum(t.end_offset(p) for p in range(t.partitions)) < rows:
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic}: {t.end_offset(0)} of {rows} rows after {timeout} s")
        time.sleep(0.02)


def send_lines(port: int, data: bytes, pieces: int = 1) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        step = max(1, len(data) // pieces)
        for i in range(0, len(data), step):
            sock.sendall(data[i : i + step])


def test_tcp_lines_land_in_the_topic(serve_process, log_dir):
    with tidal.log.open(log_dir) as log:
        log.create_topic("lines")
    tcp_port = free_port()
    proc = serve_process(tcp_port=tcp_port, tcp_topic="lines")
    before = time.time_ns() // 1_000_000
    # A line split across packets, CRLF endings, a last line without an ending.
    send_lines(tcp_port, b"first\r\nsecond li", pieces=1)
    with socket.create_connection(("127.0.0.1", tcp_port), timeout=10) as sock:
        sock.sendall(b"one\r\ntw")
        time.sleep(0.05)
        sock.sendall(b"o\nthree")
    with tidal.log.open(log_dir) as log:
        wait_for_rows(log, "lines", 5)
        table = log.topic("lines").read_arrow(0, 0).table
    after = time.time_ns() // 1_000_000
    assert sorted(table.column("line").to_pylist()) == ["first", "one", "second li", "three", "two"]
    lines = table.column("line").to_pylist()
    assert lines.index("one") < lines.index("two") < lines.index("three")
    assert all(before <= t <= after for t in table.column("timestamp").to_pylist())
    assert proc.stop() == 0


def test_many_lines_from_concurrent_connections_arrive_whole_and_in_order(log_dir):
    """In-process: 3 connections x 30,000 lines, batched at most 10,000 rows per append."""
    log = tidal.log.open(log_dir)
    log.create_topic("lines")
    n = 30_000

    async def main() -> int:
        listener = LineListener(log, "lines", port=0, max_rows=10_000, max_delay_ms=10)
        await listener.start()

        async def client(c: int) -> None:
            _, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            data = b"".join(b"c%d-%06d\n" % (c, i) for i in range(n))
            for i in range(0, len(data), 4093):  # cuts lines anywhere
                writer.write(data[i : i + 4093])
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        await asyncio.gather(*(client(c) for c in range(3)))
        while listener.rows_appended < 3 * n:
            await asyncio.sleep(0.01)
        await listener.close()
        return listener.port

    asyncio.run(main())
    topic = log.topic("lines")
    table = topic.read_arrow(0, 0, max_rows=1 << 20).table
    lines = table.column("line").to_pylist()
    assert len(lines) == 3 * n
    for c in range(3):
        mine = [x for x in lines if x.startswith(f"c{c}-")]
        assert mine == [f"c{c}-{i:06d}" for i in range(n)]
    log.close()


def test_sigterm_stops_the_server_cleanly_and_keeps_received_lines(serve_process, log_dir):
    with tidal.log.open(log_dir) as log:
        log.create_topic("lines")
        log.create_topic("orders")
    tcp_port = free_port()
    proc = serve_process(tcp_port=tcp_port, tcp_topic="lines")
    r = httpx.post(f"{proc.url}/topics/orders", json=[{"a": 1}])
    assert r.status_code == 200
    send_lines(tcp_port, b"".join(b"%d\n" % i for i in range(1000)))
    time.sleep(0.2)
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(30) == 0, proc.output.read_text()
    with tidal.log.open(log_dir) as log:
        assert log.topic("lines").end_offset(0) == 1000
        assert log.topic("orders").end_offset(0) == 1


def test_idempotency_survives_a_process_restart(serve_process, log_dir):
    with tidal.log.open(log_dir) as log:
        log.create_topic("orders", partitions=2)
    headers = {"Idempotency-Key": "abc-123", "Content-Type": "application/x-ndjson"}
    body = b'{"user": "ann"}\n{"user": "max"}\n'
    proc = serve_process()
    first = httpx.post(f"{proc.url}/topics/orders?key=user", content=body, headers=headers)
    assert first.status_code == 200
    proc.proc.kill()  # no graceful shutdown: the remembered response must be on disk already
    proc.proc.wait()
    proc = serve_process()
    again = httpx.post(f"{proc.url}/topics/orders?key=user", content=body, headers=headers)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    with tidal.log.open(log_dir) as log:
        t = log.topic("orders")
        assert t.end_offset(0) + t.end_offset(1) == 2


def test_a_public_address_needs_a_token(log_dir, monkeypatch):
    monkeypatch.delenv("TIDAL_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="refusing to listen on '0.0.0.0' without a token"):
        serve(host="0.0.0.0", port=free_port(), log_dir=str(log_dir))


def test_the_tcp_topic_must_exist(log_dir):
    with pytest.raises(ConfigError, match="create it with `tidal topics create nope`"):
        serve(port=free_port(), log_dir=str(log_dir), tcp_port=free_port(), tcp_topic="nope")
    with pytest.raises(ConfigError, match="give both or neither"):
        serve(port=free_port(), log_dir=str(log_dir), tcp_port=free_port())
