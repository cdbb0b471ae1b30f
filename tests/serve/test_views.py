"""Pull queries over materialized views through a real uvicorn server; the view operator;
token checks; views restored from a checkpoint; ``flow.run(serve=True)`` and
``tidal run --serve``."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

import tidal as td
import tidal.log
from tidal.errors import ConfigError, PlanError
from tidal.operators.view import View, registry
from tidal.serve.metrics import RunningFlow
from tidal.serve.runner import run_served
from tidal.testing import Harness

from .conftest import SRC, free_port

TOKEN = "s3cret-token"


@pytest.fixture(autouse=True)
def fresh_views() -> Iterator[None]:
    registry.clear()
    yield
    registry.clear()


def card_harness() -> Harness:
    """A scripted flow with two views: totals per card, and per (card, currency)."""
    h = Harness(schema={"card": pl.String, "currency": pl.String, "n": pl.Int64,
                        "total": pl.Float64})
    h.stream.to_view("cards", key="card")
    h.stream.to_view("spend", key=["card", "currency"])
    h.flow.last_run = h.executor  # what Flow.run does; /readyz and /metrics read it
    return h


def rows(*specs: tuple[str, str, int, float]) -> pl.DataFrame:
    return pl.DataFrame(
        [dict(zip(("card", "currency", "n", "total"), s, strict=True)) for s in specs],
        schema={"card": pl.String, "currency": pl.String, "n": pl.Int64, "total": pl.Float64},
    )


@pytest.fixture
def cards(start_server: Any) -> tuple[Harness, Any]:
    h = card_harness()
    h.add(rows(("c1", "EUR", 1, 10.0), ("c2", "USD", 1, 5.0), ("c1", "USD", 2, 7.5),
               ("c3", "EUR", 4, 1.25)))
    h.add(rows(("c1", "EUR", 3, 30.0)))
    srv = start_server(running=RunningFlow(h.flow))
    return h, srv


# -- the view operator -----------------------------------------------------------------------
def test_upsert_keeps_the_last_row_per_key_and_numbers_changes():
    view = View("v", ["k"])
    seen = []
    frame, seq = view.subscribe(seen.append)
    assert frame.height == 0 and seq == 0
    assert view.upsert(pl.DataFrame({"k": ["a", "b", "a"], "x": [1, 2, 3]})).rows() == [
        ("b", 2), ("a", 3)]
    view.upsert(pl.DataFrame({"k": ["b", None], "x": [20, 9]}))
    view.upsert(pl.DataFrame({"k": [None], "x": [10]}))  # a null key is a key like others
    assert sorted(view.frame.rows(), key=str) == [("a", 3), ("b", 20), (None, 10)]
    assert [c.seq for c in seen] == [1, 2, 3]
    assert seen[1].upserts.rows() == [("b", 20), (None, 9)]


def test_windowed_view_keeps_the_last_windows_and_reports_evictions():
    view = View("w", ["k"], windows=2)
    seen = []
    view.subscribe(seen.append)
    view.upsert(pl.DataFrame({"k": ["a", "b"], "window_start": [0, 0], "n": [1, 1]}))
    view.upsert(pl.DataFrame({"k": ["a"], "window_start": [10], "n": [2]}))
    view.upsert(pl.DataFrame({"k": ["b", "a"], "window_start": [20, 0], "n": [3, 9]}))
    assert sorted(view.frame.rows()) == [("a", 10, 2), ("b", 20, 3)]
    assert sorted(seen[-1].deletes.rows()) == [("a", 0), ("b", 0)]
    assert seen[-1].upserts.rows() == [("b", 20, 3)]  # the late update of window 0 is gone


def test_to_view_checks_its_arguments():
    flow = td.Flow("bad")
    s = flow.source(td.sources.memory([{"k": 1}]))
    with pytest.raises(PlanError, match="unknown column 'card'"):
        s.to_view("v", key="card")
    with pytest.raises(PlanError, match="bad view name 'my view'"):
        s.to_view("my view", key="k")
    with pytest.raises(PlanError, match="window_start"):
        s.to_view("v", key="k", windows=3)
    s.to_view("v", key="k")
    with pytest.raises(PlanError, match="already has a step named 'v'"):
        s.to_view("v", key="k")


def test_a_flow_whose_only_output_is_a_view_runs():
    flow = td.Flow("only_view")
    out = flow.source(td.sources.memory([{"k": "a", "x": 1}, {"k": "a", "x": 2}]))
    out.to_view("only", key="k")
    flow.run(quiet=True, dead_letters_to_log=False)
    assert registry.get("only").frame.rows() == [("a", 2)]


# -- pull ------------------------------------------------------------------------------------
def test_list_views_with_sizes(cards):
    _, srv = cards
    body = srv.client.get("/views").json()
    by_name = {v["name"]: v for v in body["views"]}
    assert sorted(by_name) == ["cards", "spend"]
    assert by_name["cards"]["rows"] == 3 and by_name["cards"]["keys"] == ["card"]
    assert by_name["spend"]["rows"] == 4 and by_name["spend"]["row_keys"] == ["card", "currency"]
    assert by_name["cards"]["columns"] == {"card": "String", "currency": "String", "n": "Int64",
                                           "total": "Float64"}
    assert by_name["cards"]["seq"] == 2


def test_rows_sorted_by_key_and_paginated(cards):
    _, srv = cards
    body = srv.client.get("/views/cards").json()
    assert body["total"] == 3 and body["offset"] == 0 and body["limit"] == 100
    assert body["rows"] == [
        {"card": "c1", "currency": "EUR", "n": 3, "total": 30.0},
        {"card": "c2", "currency": "USD", "n": 1, "total": 5.0},
        {"card": "c3", "currency": "EUR", "n": 4, "total": 1.25},
    ]
    page = srv.client.get("/views/cards", params={"limit": 1, "offset": 1}).json()
    assert [r["card"] for r in page["rows"]] == ["c2"] and page["total"] == 3
    assert srv.client.get("/views/cards", params={"offset": 5}).json()["rows"] == []
    for bad in ({"limit": "x"}, {"limit": -1}, {"limit": 10_001}, {"offset": -2}):
        r = srv.client.get("/views/cards", params=bad)
        assert r.status_code == 400, bad
        assert "must be an integer" in r.json()["detail"]


def test_filters(cards):
    _, srv = cards
    get = srv.client.get
    assert [r["card"] for r in get("/views/spend", params={"currency": "EUR"}).json()["rows"]] \
        == ["c1", "c3"]
    r = get("/views/spend", params={"currency": "USD", "n": "2"}).json()
    assert r["total"] == 1 and r["rows"][0]["card"] == "c1"
    assert get("/views/spend", params={"total": "1.25"}).json()["rows"][0]["card"] == "c3"
    r = get("/views/spend", params={"colour": "red"})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("view 'spend' has no column 'colour'; its columns are")
    r = get("/views/spend", params={"n": "two"})
    assert r.status_code == 400
    assert r.json()["detail"] == "column 'n' holds Int64; 'two' is not such a value"


def test_key_lookup_and_404s(cards):
    h, srv = cards
    get = srv.client.get
    assert get("/views/cards/c1").json() == {
        "view": "cards", "key": {"card": "c1"},
        "row": {"card": "c1", "currency": "EUR", "n": 3, "total": 30.0},
    }
    assert get("/views/spend/c1/USD").json()["row"]["total"] == 7.5  # a composite key
    r = get("/views/cards/nobody")
    assert r.status_code == 404
    assert r.json() == {"detail": "view 'cards' has no row for key 'nobody'", "key": "nobody"}
    r = get("/views/spend/c1")
    assert r.status_code == 400
    assert "keyed by card, currency: give 2 as path segments, not 1" in r.json()["detail"]
    for path in ("/views/nope", "/views/nope/c1", "/views/nope/changes"):
        r = get(path)
        assert r.status_code == 404, path
        assert r.json()["detail"] == "view 'nope' does not exist; the views are cards, spend"
    # a key that looks like a route is still reachable through a filter
    h.add(rows(("changes", "EUR", 1, 1.0)))
    assert get("/views/cards", params={"card": "changes"}).json()["total"] == 1


def test_typed_and_windowed_keys(start_server):
    h = Harness(timestamp="ts", schema={"dev": pl.Int64, "ts": pl.Int64, "v": pl.Float64})
    h.stream.key_by("dev").window(td.tumbling("10s")).agg(n=td.agg.count(), top=td.agg.max("v")) \
        .to_view("per_dev", key="dev", windows=2)
    srv = start_server()
    h.add(*[{"dev": d, "ts": t, "v": float(t)} for d in (1, 2) for t in (1_000, 11_000, 21_000)])
    h.advance_watermark(30_000)
    get = srv.client.get
    body = get("/views/per_dev/1").json()
    assert [r["window_start"] for r in body["rows"]] == [20_000, 10_000]  # newest first
    assert get("/views/per_dev/2/10000").json()["row"] == {
        "dev": 2, "window_start": 10_000, "window_end": 20_000, "n": 1, "top": 11_000.0}
    assert get("/views/per_dev/2/0").status_code == 404  # evicted: only 2 windows kept
    assert get("/views/per_dev/x").json()["detail"] == \
        "column 'dev' holds Int64; 'x' is not such a value"
    assert get("/views/per_dev/1/2/3").status_code == 400


def test_datetime_values_are_iso_text_and_accepted_as_keys(start_server):
    h = Harness(schema={"at": pl.Datetime("ms"), "x": pl.Int64})
    h.stream.to_view("by_time", key="at")
    srv = start_server()
    h.add({"at": pl.datetime(2024, 6, 1, 12), "x": 1} if False else
          pl.DataFrame({"at": [1_717_243_200_000], "x": [1]}).with_columns(
              pl.col("at").cast(pl.Datetime("ms"))))
    row = srv.client.get("/views/by_time").json()["rows"][0]
    assert row == {"at": "2024-06-01T12:00:00.000", "x": 1}
    for key in ("2024-06-01T12:00:00", "2024-06-01T12:00:00Z", "1717243200000"):
        assert srv.client.get(f"/views/by_time/{key}").json()["row"]["x"] == 1, key


# -- token -----------------------------------------------------------------------------------
def test_token_is_required_everywhere_but_health(start_server):
    card_harness()
    srv = start_server(token=TOKEN)
    for path in ("/views", "/views/cards", "/views/cards/c1", "/metrics", "/metrics.json",
                 "/readyz", "/openapi.json"):
        r = srv.client.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == "Bearer"
        r = srv.client.get(path, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401, path
    assert srv.client.post("/query", json={"sql": "select 1"}).status_code == 401
    assert srv.client.get("/healthz").status_code == 200
    ok = {"Authorization": f"Bearer {TOKEN}"}
    assert srv.client.get("/views", headers=ok).status_code == 200
    assert srv.client.post("/query", json={"sql": "select 1 as x"}, headers=ok).json()["rows"] \
        == [{"x": 1}]


def test_refused_requests_are_logged_without_the_token(start_server, caplog):
    card_harness()
    srv = start_server(token=TOKEN)
    with caplog.at_level("WARNING", logger="tidal.serve"):
        srv.client.get("/views", headers={"Authorization": "Bearer guess"})
    assert any("refused GET /views from 127.0.0.1: a wrong token" in m for m in caplog.messages)
    assert not any("guess" in m for m in caplog.messages)


# -- a flow with its server ------------------------------------------------------------------
def payments_flow(log_dir: Path) -> td.Flow:
    flow = td.Flow("payments")
    src = flow.source(td.sources.log("payments", log_dir=log_dir), name="payments")
    src.key_by("card").agg(total=td.agg.sum("amount"), name="totals") \
        .to_view("card_totals", key="card")
    return flow


class FlowThread:
    """``flow.run(serve=True, ...)`` in a thread, stopped by ``stop()``."""

    def __init__(self, flow: td.Flow, **options: Any) -> None:
        self.stop_event = threading.Event()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.error: BaseException | None = None
        self.result: Any = None

        def run() -> None:
            try:
                self.result = flow.run(serve=True, port=self.port, stop=self.stop_event,
                                       quiet=True, dead_letters_to_log=False, **options)
            except BaseException as e:  # noqa: BLE001 - reported by the test
                self.error = e

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait(self, check: Callable[[], bool], what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.error is not None:
                raise AssertionError(f"the flow failed: {self.error!r}")
            try:
                if check():
                    return
            except (httpx.TransportError, KeyError):  # not up yet, or no row yet (a 404)
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error


def test_views_are_restored_from_a_checkpoint_after_restart(tmp_path):
    log_dir, ck = tmp_path / "log", tmp_path / "ck"
    with tidal.log.open(log_dir) as log:
        log.create_topic("payments")
        log.topic("payments").append_batch(pl.DataFrame({
            "card": ["a", "b", "a"], "amount": [1.0, 2.0, 3.0]}).to_arrow())
    first = FlowThread(payments_flow(log_dir), checkpoint_dir=ck, checkpoint_interval="100ms",
                       log_dir=log_dir)
    first.wait(lambda: httpx.get(f"{first.url}/views/card_totals/a").json()["row"]["total"] == 4.0,
               "the first run's view")
    first.stop()
    registry.clear()  # a new process would start with no views

    second = FlowThread(payments_flow(log_dir), checkpoint_dir=ck, checkpoint_interval="100ms",
                        log_dir=log_dir)
    try:
        second.wait(lambda: httpx.get(f"{second.url}/readyz").status_code == 200, "readiness")
        # restored before any new input (the log source resumes after the 3 rows)
        body = httpx.get(f"{second.url}/views/card_totals").json()
        assert {r["card"]: r["total"] for r in body["rows"]} == {"a": 4.0, "b": 2.0}
        # the log exists, so the same server ingests: the flow reads it into the view
        r = httpx.post(f"{second.url}/topics/payments", json=[{"card": "a", "amount": 10.0},
                                                              {"card": "c", "amount": 1.0}])
        assert r.status_code == 200, r.text
        second.wait(lambda: httpx.get(f"{second.url}/views/card_totals/a").json()["row"]["total"]
                    == 14.0, "the ingested rows in the view")
        assert httpx.get(f"{second.url}/views/card_totals/c").json()["row"]["total"] == 1.0
    finally:
        second.stop()
    with pytest.raises(httpx.TransportError):  # the server stopped with the flow
        httpx.get(f"{second.url}/healthz", timeout=2)


def test_serving_elsewhere_than_loopback_needs_a_token(monkeypatch):
    monkeypatch.delenv("TIDAL_TOKEN", raising=False)
    flow = td.Flow("exposed")
    flow.source(td.sources.memory([{"k": 1}])).to_view("exposed", key="k")
    with pytest.raises(ConfigError, match="refusing to listen on '0.0.0.0' without a token"):
        run_served(flow, host="0.0.0.0", port=free_port())
    with pytest.raises(ConfigError, match="give --tls-cert and --tls-key together"):
        run_served(flow, port=free_port(), tls_cert="cert.pem")


@pytest.mark.skipif(not Path("/usr/bin/openssl").exists(), reason="needs openssl")
def test_tls(tmp_path, monkeypatch):
    monkeypatch.setenv("TIDAL_HOME", str(tmp_path))
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    flow = td.Flow("tls")
    flow.source(td.sources.generator("transactions", rate=10)).to_view("tls_view", key="card")
    port = free_port()
    errors: list[BaseException] = []
    stop = threading.Event()

    def run() -> None:
        try:
            run_served(flow, port=port, tls_cert=cert, tls_key=key,
                       run={"stop": stop, "quiet": True, "dead_letters_to_log": False,
                            "duration": "30s"})
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    trusted = ssl.create_default_context(cafile=str(cert))
    deadline = time.monotonic() + 20
    while True:
        try:
            r = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=trusted, timeout=2)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline and not errors, errors
            time.sleep(0.05)
    assert r.status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    stop.set()
    thread.join(30)


CLI_FLOW = """
import tidal as td
flow = td.Flow("cli_served")
tx = flow.source(td.sources.generator("transactions", rate=500), timestamp="ts")
tx.key_by("merchant").agg(n=td.agg.count()).to_view("merchants", key="merchant")
"""


def test_tidal_run_serve(tmp_path):
    file = tmp_path / "served.py"
    file.write_text(CLI_FLOW)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "TIDAL_HOME": str(tmp_path / "home")}
    env.pop("TIDAL_TOKEN", None)
    cmd = [sys.executable, "-m", "tidal.cli", "run", str(file), "--serve", "--port", str(port),
           "--quiet"]
    # SIGINT as at a terminal, even when the tests run where it is ignored (a background job)
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/views/merchants", timeout=2).json()
                if body["total"] > 0:
                    break
            except (httpx.TransportError, KeyError):
                pass
            assert time.monotonic() < deadline, "no view rows over HTTP"
            time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["status"] == "running"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
        output = proc.stdout.read().decode()  # type: ignore[union-attr]
        # 0: Ctrl-C stopped the run and the server. Under heavy load the command has been seen
        # to exit with typer's 130 instead (a KeyboardInterrupt escaping the run; not found
        # yet, see docs/serving.md): the process must still stop promptly, server included.
        assert code in (0, 130), output
        assert f"serving flow 'cli_served' at http://127.0.0.1:{port}" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    bad = subprocess.run([*cmd[:-3], "--host", "0.0.0.0"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "refusing to listen on '0.0.0.0' without a token" in bad.stderr
