"""GET /alerts through a real uvicorn server on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import polars as pl
import pytest
import uvicorn

import tidal as td
from tidal.alerts.http import alerts_router
from tidal.serve import create_app


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(flow: td.Flow, token: str | None = None) -> str:
        app = create_app(token=token)
        app.include_router(alerts_router(flow), dependencies=app.state.protected)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning",
                                               timeout_graceful_shutdown=1))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        servers.append((server, thread))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def _flow() -> td.Flow:
    flow = td.Flow("disks")
    rows = [{"host": "db-1", "used": 0.97, "t": 0}, {"host": "db-2", "used": 0.95, "t": 0},
            {"host": "db-2", "used": 0.5, "t": 5_000}, {"host": "<b>x</b>", "used": 0.99, "t": 6_000}]
    disks = flow.source(td.sources.memory(rows), timestamp="t")
    td.alerts.rule("disk-full", disks, pl.col("used") > 0.9, key="host", severity="critical",
                   labels={"team": "storage"}, channels=[td.alerts.log()]).events \
        .sink(td.sinks.blackhole())
    td.alerts.absent(disks, key="host", after="1h")
    flow.run(quiet=True, max_batch_rows=1)
    return flow


def test_alerts_endpoint_shows_rules_live_alerts_history_and_channels(serve):
    url = serve(_flow())
    body = httpx.get(url + "/alerts").json()
    assert (body["firing"], body["pending"]) == (2, 0)
    full, silent = body["rules"]
    assert (full["name"], full["kind"], full["severity"], full["key"]) == (
        "disk-full", "threshold", "critical", ["host"])
    assert full["labels"] == {"team": "storage"} and full["channels"] == ["log:tidal.alerts"]
    assert [(a["key"]["host"], a["state"], a["value"]) for a in full["alerts"]] == [
        ("db-1", "firing", 0.97), ("<b>x</b>", "firing", 0.99)]
    assert silent["name"] == "absent-host" and silent["alerts"] == []
    assert [(h["state"], h["key"]["host"], h["at"]) for h in body["history"]] == [
        ("firing", "<b>x</b>", 6_000), ("pending", "<b>x</b>", 6_000),
        ("resolved", "db-2", 5_000), ("firing", "db-2", 0), ("pending", "db-2", 0),
        ("firing", "db-1", 0), ("pending", "db-1", 0)]
    assert body["channels"][0]["name"] == "log:tidal.alerts"
    assert body["channels"][0]["sent"] == 4
    assert len(httpx.get(url + "/alerts?limit=2").json()["history"]) == 2


def test_alerts_endpoint_needs_the_token_when_the_server_has_one(serve):
    url = serve(_flow(), token="t0ken")
    refused = httpx.get(url + "/alerts")
    assert refused.status_code == 401 and "Authorization: Bearer TOKEN" in refused.json()["detail"]
    ok = httpx.get(url + "/alerts", headers={"Authorization": "Bearer t0ken"})
    assert ok.status_code == 200 and ok.json()["firing"] == 2
