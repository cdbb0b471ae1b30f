"""``tidal demo``: live card transactions through windows, views and alerts, no server needed.

A paced generator emits card transactions into the topic ``demo.transactions`` of the
embedded log (``.tidal/log``, 4 partitions keyed by card), exactly as HTTP or Kafka
ingestion would land them; the flow reads that topic and computes, per 5-second window and
merchant category, the number of transactions, revenue and largest purchase, and keeps a
running spend per card. Both are materialized views (``category_windows``,
``spend_per_card``), drawn live by the dashboard at ``http://127.0.0.1:8080/``; each time a
window closes a table of the categories and the cards that spent most so far is printed.

Two alerts fire and resolve by themselves, deterministically, in every 40 s cycle of
event time counted from the start:

- ``electronics-spike`` (threshold): from 6 s to 18 s electronics purchases are 5x larger;
  the average purchase per window goes over 250 for two windows (``for_="5s"``), the alert
  fires, and resolves with the first normal window;
- ``category-silent`` (absence): from 20 s to 30 s no travel purchase arrives; the alert
  fires when the watermark passes the last one + 3 s and resolves when travel returns.

Notifications go to the console and to the log topic ``demo.alerts``.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table

import tidal as td

__all__ = ["CYCLE_MS", "SILENT", "SPIKE", "build", "main"]


TOPIC = "demo.transactions"
ALERTS_TOPIC = "demo.alerts"
CYCLE_MS = 40_000
SPIKE = (6_000, 18_000)
"""Where in each cycle electronics purchases are 5x larger (ms from the cycle's start)."""
SILENT = (20_000, 30_000)
"""Where in each cycle no travel purchase happens."""


def build(rate: float = 20_000, events: int | None = None, paced: bool = True,
          console: Console | None = None, log_dir: str | None = None,
          origin_ms: int | None = None) -> td.Flow:
    """The demo flow (``console=None`` prints to standard output); the alert cycle counts
    from ``origin_ms`` of event time (default: now)."""
    import tidal.log

    console = console or Console()
    with tidal.log.open(log_dir) as log:
        log.create_topic(TOPIC, partitions=4, exist_ok=True)
    origin = time.time_ns() // 1_000_000 if origin_ms is None else origin_ms
    flow = td.Flow("demo")
    generated = flow.source(td.sources.generator("transactions", rate=rate, events=events,
                                                 paced=paced), name="generator")
    generated.filter(~_in_phase(origin, SILENT) | (pl.col("category") != "travel"),
                     name="silence_travel") \
        .with_columns(pl.when(_in_phase(origin, SPIKE) & (pl.col("category") == "electronics"))
                      .then(pl.col("amount") * 5).otherwise(pl.col("amount")).alias("amount"),
                      name="spike_electronics") \
        .sink(td.sinks.log(TOPIC, key="card", log_dir=log_dir), name="ingest")
    tx = flow.source(
        td.sources.log(TOPIC, log_dir=log_dir, start="latest"),
        timestamp="ts", watermark=td.bounded_delay("200ms", idle="2s"), name="transactions",
    )
    per_category = (
        tx.key_by("category")
        .window(td.tumbling("5s"), name="category_5s")
        .agg(n=td.agg.count(), revenue=td.agg.sum("amount"), largest=td.agg.max("amount"))
    )
    spend = tx.key_by("card").agg(spent=td.agg.sum("amount"), n=td.agg.count(), ttl="1m",
                                  name="card_spend")
    per_category.to_view("category_windows", key="category", windows=24)
    spend.to_view("spend_per_card", key="card")

    channels = [td.alerts.topic(ALERTS_TOPIC, log_dir=log_dir)]
    spike = td.alerts.rule(
        "electronics-spike", per_category, pl.col("revenue") / pl.col("n") > 250,
        key="category", for_="5s", severity="critical", labels={"team": "payments"},
        channels=channels, repeat_interval="1m",
        summary="average purchase in {category} is {value:,.0f} (normal: about 100)",
    )
    silent = td.alerts.absent(
        tx, key="category", after="3s", name="category-silent", channels=channels,
        labels={"team": "payments"}, summary="no {category} purchase for 3 s",
    )
    top_cards: dict[str, tuple[float, int]] = {}

    def remember(rows: pl.DataFrame) -> None:
        for card, spent, n in rows.select("card", "spent", "n").iter_rows():
            top_cards[card] = (spent, n)

    def show(rows: pl.DataFrame) -> None:
        for _, window in sorted(rows.group_by("window_start"), key=lambda g: g[0]):
            show_window(window.sort("revenue", descending=True))

    def show_window(rows: pl.DataFrame) -> None:
        start, end = rows["window_start"][0], rows["window_end"][0]
        table = Table(title=f"window {start:%H:%M:%S}-{end:%H:%M:%S}  ({rows['n'].sum():,} tx)",
                      title_justify="left")
        for col in ("category", "transactions", "revenue", "largest"):
            table.add_column(col, justify="left" if col == "category" else "right")
        for category, n, revenue, largest in rows.select("category", "n", "revenue", "largest").iter_rows():
            table.add_row(category, f"{n:,}", f"{revenue:,.2f}", f"{largest:,.2f}")
        best = sorted(top_cards.items(), key=lambda kv: kv[1][0], reverse=True)[:3]
        leaders = ", ".join(f"{card} {spent:,.0f} ({n} tx)" for card, (spent, n) in best)
        console.print(table)
        console.print(f"[bold]top cards so far:[/] {leaders}\n")

    def show_alerts(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            colour = "red" if r["state"] == "firing" else "green"
            console.print(f"[bold {colour}]ALERT {r['state'].upper()}[/] {r['rule']} "
                          f"category={r['category']}: {r['summary']}", markup=True)

    per_category.sink(td.sinks.callback(show, as_frame=True), name="show_windows")
    spend.sink(td.sinks.callback(remember, as_frame=True), name="track_cards")
    for r in (spike, silent):
        r.events.sink(td.sinks.callback(show_alerts), name=f"show_{r.name}")
    return flow


def _in_phase(origin: int, phase: tuple[int, int]) -> pl.Expr:
    at = (pl.col("ts").dt.epoch("ms") - origin) % CYCLE_MS
    return (at >= phase[0]) & (at < phase[1])


def main(duration: str | None = None, rate: float = 20_000, quiet: bool = False,
         serve: bool = True, port: int = 8080) -> None:
    """Run the demo until Ctrl-C (or ``duration``), serving the dashboard on ``port``
    unless ``serve`` is false (a busy port is replaced by a free one)."""
    console = Console()
    console.print(
        f"[bold cyan]tidal demo[/]: {rate:,.0f} card transactions/s -> 5 s windows per "
        "category + running spend per card, as live views; alerts on an electronics spike "
        f"and a silent category every {CYCLE_MS // 1000} s. Ctrl-C to stop.\n"
    )
    flow = build(rate=rate, console=console)
    if not serve:
        flow.run(duration=duration, quiet=quiet)
        return
    server = _Server(flow, port)
    console.print(f"[bold]dashboard:[/] {server.url}/   (views: {server.url}/views, "
                  f"alerts: {server.url}/alerts)\n")
    try:
        flow.run(duration=duration, quiet=quiet)
    finally:
        server.stop()


class _Server:
    """The HTTP app (views, metrics, alerts, dashboard) on loopback beside the flow."""

    def __init__(self, flow: td.Flow, port: int) -> None:
        import uvicorn

        from tidal.alerts.http import alerts_router
        from tidal.serve import create_app
        from tidal.serve.dashboard import dashboard_router
        from tidal.serve.metrics import RunningFlow

        self.running = RunningFlow(flow)
        app = create_app(running=self.running)
        paths = {getattr(r, "path", None) for r in app.routes}
        if "/alerts" not in paths:  # until create_app includes them itself
            app.include_router(alerts_router(flow), dependencies=app.state.protected)
        if "/dashboard/state" not in paths:
            app.include_router(dashboard_router(flow, protected=app.state.protected))
        self.app = app
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.bind(("127.0.0.1", 0))
            print(f"tidal demo: port {port} is busy; using {sock.getsockname()[1]}",
                  file=sys.stderr)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                                   timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       name="tidal-demo-serve", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self.running.ended = True
        self.app.state.stopping.set()
        self.server.should_exit = True
        self.thread.join(timeout=10)
