"""The dashboard in a real headless browser: Debian's chromium driven by Playwright.

Needs ``apt-get install chromium`` and ``pip install playwright`` (never ``playwright
install``: the system chromium is used). Skipped, saying so, only when either is missing.
Set ``TIDAL_SCREENSHOT=path.png`` to keep a screenshot of the page.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import tidal as td

CHROMIUM = os.environ.get("TIDAL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
EVIL = '<img src=x onerror="window.__xss=1">'

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None,
                       reason="Playwright for Python is not installed (pip install playwright)"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"no chromium at {CHROMIUM} (apt-get install chromium)"),
]


class Served:
    """A live flow (paced generator -> windows, views, alerts) and the server beside it."""

    def __init__(self, token: str | None = None) -> None:
        import uvicorn

        from tidal.alerts.http import alerts_router
        from tidal.serve import create_app
        from tidal.serve.dashboard import dashboard_router
        from tidal.serve.metrics import RunningFlow

        self.flow = flow = td.Flow("browser")
        tx = flow.source(td.sources.generator("transactions", rate=3_000), timestamp="ts",
                         watermark="100ms", name="transactions")
        tx = tx.with_columns(  # a user-supplied key that must show as text, not markup
            pl.when(pl.col("category") == "jewelry").then(pl.lit(EVIL))
            .otherwise(pl.col("category")).alias("category"), name="rename")
        per_category = tx.key_by("category").window(td.tumbling("1s"), name="per_second") \
            .agg(n=td.agg.count(), revenue=td.agg.sum("amount"))
        spend = tx.key_by("card").agg(spent=td.agg.sum("amount"), name="spend")
        per_category.to_view("per_category", key="category", windows=30)
        spend.to_view("card_spend", key="card")
        td.alerts.rule("busy-category", per_category, pl.col("n") > 0, key="category",
                       severity="critical", labels={"team": "<script>x</script>"})
        per_category.sink(td.sinks.blackhole())
        self.running = RunningFlow(flow)
        self.app = create_app(token=token, running=self.running)
        self.app.include_router(alerts_router(flow), dependencies=self.app.state.protected)
        self.app.include_router(dashboard_router(flow, protected=self.app.state.protected))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning",
                                                   timeout_graceful_shutdown=1))
        self.server_thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                              daemon=True)
        self.stop = threading.Event()
        self.flow_thread = threading.Thread(
            target=flow.run, kwargs={"stop": self.stop, "quiet": True, "dead_letters_to_log": False},
            daemon=True)

    def __enter__(self) -> Served:
        self.flow_thread.start()
        self.server_thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.flow_thread.join(10)
        self.app.state.stopping.set()
        self.server.should_exit = True
        self.server_thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert sync_playwright is not None
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def _watch_console(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    return errors


def test_dashboard_draws_the_graph_charts_and_alerts_and_they_update(browser, tmp_path):
    with Served() as served:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = _watch_console(page)
        page.goto(served.url + "/")
        nodes = [n.name for n in served.flow.nodes]
        page.wait_for_function(f"() => document.querySelectorAll('#graph g.node').length === {len(nodes)}")
        drawn = page.eval_on_selector_all("#graph g.node", "gs => gs.map(g => g.dataset.node)")
        assert sorted(drawn) == sorted(nodes)
        edges = page.locator("#graph g.edge").count()
        assert edges == sum(len(n.inputs) for n in served.flow.nodes)

        # rates appear on the edges and change while data flows
        page.wait_for_function(
            "() => [...document.querySelectorAll('#graph g.edge text')].some(t => /\\/s$/.test(t.textContent))")
        source_edge = "#graph g.edge[data-from='transactions'] text"
        page.wait_for_function(f"() => parseFloat(document.querySelector(\"{source_edge}\").textContent) > 0")
        rows_before = int(page.get_attribute("#graph g.node[data-node='rename']", "data-rows-in"))
        points_before = int(page.get_attribute("#rate-chart", "data-points"))
        page.wait_for_function(f"() => +document.querySelector('#rate-chart').dataset.points >= {points_before + 2}")
        page.wait_for_function(
            f"+document.querySelector(\"#graph g.node[data-node='rename']\").dataset.rowsIn > {rows_before}")
        assert page.locator("#rate-chart polyline.line").count() == 1
        health = page.text_content("#graph g.node[data-node='per_second'] .health")
        assert "busy" in health and "lag" in health

        # the windowed view's chart grows window by window; the top-keys bars are drawn
        card = "#views section[data-view='per_category']"
        page.wait_for_selector(f"{card} svg.series polyline.line")
        seq = int(page.get_attribute(card, "data-seq"))
        page.wait_for_function(f"() => +document.querySelector(\"{card}\").dataset.seq > {seq}")
        assert int(page.get_attribute(f"{card} svg.top", "data-items")) >= 5
        page.wait_for_selector("#views section[data-view='card_spend'] svg.top rect.bar")

        # alerts: firing rows, history, and user values shown as text, never as markup
        page.wait_for_selector("#alerts tr.alert.firing")
        page.wait_for_function("() => document.querySelectorAll('#alert-history li').length > 0")
        assert "busy-category" in page.text_content("#alerts")
        page.wait_for_function(f"() => document.body.innerText.includes({EVIL!r})")
        assert page.locator("main img").count() == 0
        assert page.evaluate("window.__xss === undefined")
        counts = page.text_content("#alert-counts")
        assert "firing" in counts

        shot = os.environ.get("TIDAL_SCREENSHOT") or str(tmp_path / "dashboard.png")
        page.screenshot(path=shot, full_page=True)
        assert errors == [], errors
        page.close()


def test_dashboard_asks_for_the_token_and_uses_one_given_in_the_url(browser):
    with Served(token="s3cret") as served:
        page = browser.new_page()
        page.goto(served.url + "/")
        page.wait_for_selector("#token-box:not([hidden])")  # the state needs the token
        assert page.locator("#graph g.node").count() == 0
        page.close()

        page = browser.new_page()
        errors = _watch_console(page)
        page.goto(served.url + "/#token=s3cret")
        page.wait_for_selector("#graph g.node")
        assert page.evaluate("location.hash") == ""  # the token does not stay in the URL
        assert page.is_hidden("#token-box")
        assert errors == [], errors
        page.close()


def test_page_and_assets_are_served_with_a_strict_content_security_policy():
    import httpx

    with Served() as served:
        page = httpx.get(served.url + "/")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert "http" not in page.text.replace(served.url, "")  # nothing from elsewhere
        js = httpx.get(served.url + "/dashboard/static/dashboard.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert "innerHTML" not in js.text
        assert httpx.get(served.url + "/dashboard/static/../_app.py").status_code == 404
        state = httpx.get(served.url + "/dashboard/state").json()
        assert state["flow"] == "browser" and state["alerts"]["rules"][0]["name"] == "busy-category"
