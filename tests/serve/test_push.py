"""Push through a real uvicorn server: SSE and WebSocket streams deliver the snapshot, then
every change of the view, in order."""

from __future__ import annotations

import asyncio
import json
import queue
import random
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import polars as pl
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

import tidal as td
from tidal.operators.view import Change, View, ViewRegistry, registry
from tidal.serve.push import Feed, events
from tidal.testing import Harness

from .test_views import FlowThread

TOKEN = "push-token"


@pytest.fixture(autouse=True)
def fresh_views() -> Iterator[None]:
    registry.clear()
    yield
    registry.clear()


class SseReader:
    """Reads ``GET /views/{name}/changes`` in a thread; events land in ``self.events``.

    Over a plain socket, so that ``close()`` really disconnects (as a client process that
    exits does) while the reading thread is blocked.
    """

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.events: queue.Queue[tuple[str, dict[str, Any], str | None]] = queue.Queue()
        parsed = httpx.URL(url)
        self.sock = socket.create_connection((parsed.host, parsed.port), timeout=60)
        lines = [f"GET {parsed.raw_path.decode()} HTTP/1.1", f"Host: {parsed.host}",
                 "Accept: text/event-stream", *(f"{k}: {v}" for k, v in (headers or {}).items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.status: int | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        stream = self.sock.makefile("rb")
        try:
            self.status = int(stream.readline().split()[1])
            while stream.readline() not in (b"\r\n", b""):
                pass  # headers
            kind, data, ident = None, None, None
            for raw in _chunked_lines(stream):
                line = raw.rstrip("\r\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line.startswith("id: "):
                    ident = line[4:]
                elif line == "" and kind is not None:
                    self.events.put((kind, json.loads(data or "null"), ident))
                    if kind == "end":
                        return
                    kind, data, ident = None, None, None
        except (OSError, ValueError):
            pass

    def next(self, timeout: float = 20) -> tuple[str, dict[str, Any], str | None]:
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _chunked_lines(stream: Any) -> Iterator[str]:
    """The text lines of a chunked HTTP body."""
    pending = ""
    while True:
        size = int(stream.readline().strip() or b"0", 16)
        if size == 0:
            return
        pending += stream.read(size).decode()
        stream.readline()
        *complete, pending = pending.split("\n")
        for line in complete:
            yield line + "\n"


class WsReader:
    """Reads ``WS /views/{name}/ws`` in a thread; events land in ``self.events``."""

    def __init__(self, url: str, **options: Any) -> None:
        self.ws = connect(url, open_timeout=20, **options)
        self.events: queue.Queue[tuple[str, dict[str, Any], None]] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for message in self.ws:
                event = json.loads(message)
                self.events.put((event["type"], event, None))
        except Exception:  # noqa: BLE001 - the test sees the missing events
            pass

    def next(self, timeout: float = 20) -> tuple[str, dict[str, Any], None]:
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        self.ws.close()


def feed_batches(h: Harness, batches: int, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(batches):
        n = rng.randint(1, 20)
        h.add(pl.DataFrame({"k": [f"k{rng.randint(0, 30)}" for _ in range(n)],
                            "x": [i * 100 + j for j in range(n)]}))


def check_in_order(reader: Any, h: Harness, view: View, batches: int = 60) -> None:
    """The stream's snapshot plus its changes equal the view's own changes, in order."""
    kind, snap, _ = reader.next()
    assert kind == "snapshot"
    truth: list[Change] = []
    _, start = view.subscribe(truth.append)
    assert snap["seq"] == start and snap["keys"] == view.row_keys
    mirror = {tuple(r[k] for k in view.row_keys): r for r in snap["rows"]}
    feeder = threading.Thread(target=feed_batches, args=(h, batches, 7))
    feeder.start()  # changes are made while the client reads
    feeder.join()
    assert len(truth) == view.seq - start > 0
    for expected in truth:
        kind, event, ident = reader.next()
        assert kind == "change"
        assert event["seq"] == expected.seq
        if ident is not None:
            assert int(ident) == expected.seq  # SSE's id: is the sequence number
        assert event["upserts"] == expected.upserts.to_dicts()
        assert event["deletes"] == expected.deletes.to_dicts()
        for r in event["deletes"]:
            mirror.pop(tuple(r[k] for k in view.row_keys), None)
        for r in event["upserts"]:
            mirror[tuple(r[k] for k in view.row_keys)] = r
    assert sorted(mirror.values(), key=lambda r: r["k"]) == view.frame.sort("k").to_dicts()
    assert reader.events.empty()


def counts_harness() -> tuple[Harness, View]:
    h = Harness(schema={"k": pl.String, "x": pl.Int64})
    h.stream.to_view("latest", key="k")
    h.add(pl.DataFrame({"k": ["k1", "k2"], "x": [1, 2]}))
    view = registry.get("latest")
    assert view is not None
    return h, view


def test_sse_snapshot_then_every_change_in_order(start_server):
    h, view = counts_harness()
    srv = start_server()
    reader = SseReader(f"{srv.url}/views/latest/changes")
    try:
        check_in_order(reader, h, view)
        assert reader.status == 200
    finally:
        reader.close()


def test_websocket_snapshot_then_every_change_in_order(start_server):
    h, view = counts_harness()
    srv = start_server(token=TOKEN)
    reader = WsReader(f"ws://127.0.0.1:{srv.port}/views/latest/ws",
                      additional_headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        check_in_order(reader, h, view)
    finally:
        reader.close()


def test_windowed_view_streams_evictions(start_server):
    h = Harness(timestamp="ts", schema={"k": pl.String, "ts": pl.Int64})
    h.stream.key_by("k").window(td.tumbling("1s")).agg(n=td.agg.count()) \
        .to_view("recent", key="k", windows=2)
    h.executor  # noqa: B018 - opens the flow, registering the view
    srv = start_server()
    reader = WsReader(f"ws://127.0.0.1:{srv.port}/views/recent/ws")
    try:
        assert reader.next()[0] == "snapshot"
        for second in range(5):
            h.add(*[{"k": k, "ts": second * 1000 + i} for i, k in enumerate("aab")])
            h.advance_watermark((second + 1) * 1000)
        mirror: dict[tuple[str, int], dict[str, Any]] = {}
        for seq in range(1, 6):
            _, event, _ = reader.next()
            assert event["seq"] == seq
            for r in event["deletes"]:
                del mirror[(r["k"], r["window_start"])]
            for r in event["upserts"]:
                mirror[(r["k"], r["window_start"])] = r
        assert sorted(mirror) == [("a", 3000), ("a", 4000), ("b", 3000), ("b", 4000)]
        assert mirror[("a", 4000)]["n"] == 2
    finally:
        reader.close()


def test_websocket_token_and_unknown_views(start_server):
    counts_harness()
    srv = start_server(token=TOKEN)
    url = f"ws://127.0.0.1:{srv.port}/views/latest/ws"
    for headers in ({}, {"Authorization": "Bearer nope"}):
        with pytest.raises(InvalidStatus) as e:
            connect(url, additional_headers=headers, open_timeout=20)
        assert e.value.response.status_code == 401
        assert b"requires a token" in e.value.response.body
    # browsers cannot send headers: they offer the token as a subprotocol
    with connect(url, subprotocols=["tidal", f"bearer.{TOKEN}"], open_timeout=20) as ws:
        assert ws.subprotocol == "tidal"
        assert json.loads(ws.recv(timeout=20))["type"] == "snapshot"
    with pytest.raises(InvalidStatus) as e:
        connect(f"ws://127.0.0.1:{srv.port}/views/nope/ws",
                additional_headers={"Authorization": f"Bearer {TOKEN}"}, open_timeout=20)
    assert e.value.response.status_code == 404
    assert b"view 'nope' does not exist" in e.value.response.body
    r = httpx.get(f"{srv.url}/views/latest/changes")
    assert r.status_code == 401


def test_sse_unknown_view_is_a_404(start_server):
    srv = start_server()
    r = srv.client.get("/views/nope/changes")
    assert r.status_code == 404


def test_a_replaced_view_ends_its_streams(start_server):
    counts_harness()
    srv = start_server()
    reader = SseReader(f"{srv.url}/views/latest/changes")
    try:
        assert reader.next()[0] == "snapshot"
        registry.add(View("latest", ["k"]))  # a restarted flow registers its view again
        kind, event, _ = reader.next()
        assert kind == "end"
        assert event["reason"].startswith("the view was replaced (its flow restarted)")
    finally:
        reader.close()


def test_a_client_too_far_behind_is_ended_not_waited_for():
    async def main() -> list[tuple[str, int | None, str]]:
        views = ViewRegistry()
        view = View("slow", ["k"])
        views.add(view)
        feed = Feed(view, max_pending=3)
        for i in range(10):  # the pipeline never blocks on the slow client
            view.upsert(pl.DataFrame({"k": ["a"], "x": [i]}))
        await asyncio.sleep(0.01)
        out = [e async for e in events(feed, views, threading.Event())]
        feed.close()
        return out

    out = asyncio.run(main())
    assert [(kind, seq) for kind, seq, _ in out] == [
        ("snapshot", 0), ("change", 1), ("change", 2), ("change", 3), ("end", None)]
    assert "fell more than 3 changes behind" in json.loads(out[-1][2])["reason"]


def test_streams_end_when_the_flow_and_its_server_stop(tmp_path, monkeypatch):
    monkeypatch.setenv("TIDAL_HOME", str(tmp_path))
    flow = td.Flow("pushed")
    flow.source(td.sources.generator("transactions", rate=200), timestamp="ts") \
        .key_by("merchant").agg(n=td.agg.count()).to_view("merchants", key="merchant")
    running = FlowThread(flow)
    running.wait(lambda: httpx.get(f"{running.url}/readyz").status_code == 200, "readiness")
    reader = SseReader(f"{running.url}/views/merchants/changes")
    try:
        assert reader.next()[0] == "snapshot"
        assert reader.next()[0] == "change"  # live changes from the running flow
        started = time.monotonic()
        running.stop()
        while (event := reader.next())[0] == "change":
            pass
        assert event[0] == "end" and event[1]["reason"] == "the server is stopping"
        assert time.monotonic() - started < 10
    finally:
        reader.close()
