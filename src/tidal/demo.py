"""``tidal demo``: live card transactions through windows and keyed state, no server needed.

A paced generator emits card transactions into the topic ``demo.transactions`` of the
embedded log (``.tidal/log``, 4 partitions keyed by card), exactly as HTTP or Kafka
ingestion would land them; the flow reads that topic and computes, per 5-second window and
merchant category, the number of transactions, revenue and largest purchase, and keeps a
running spend per card; each time a window closes it prints a table of the categories and
the cards that spent most so far.
"""

from __future__ import annotations

import polars as pl
from rich.console import Console
from rich.table import Table

import tidal as td

__all__ = ["build", "main"]


TOPIC = "demo.transactions"


def build(rate: float = 20_000, events: int | None = None, paced: bool = True,
          console: Console | None = None, log_dir: str | None = None) -> td.Flow:
    """The demo flow (``console=None`` prints to standard output)."""
    import tidal.log

    console = console or Console()
    with tidal.log.open(log_dir) as log:
        log.create_topic(TOPIC, partitions=4, exist_ok=True)
    flow = td.Flow("demo")
    generated = flow.source(td.sources.generator("transactions", rate=rate, events=events,
                                                 paced=paced), name="generator")
    generated.sink(td.sinks.log(TOPIC, key="card", log_dir=log_dir), name="ingest")
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

    per_category.sink(td.sinks.callback(show, as_frame=True), name="show_windows")
    spend.sink(td.sinks.callback(remember, as_frame=True), name="track_cards")
    return flow


def main(duration: str | None = None, rate: float = 20_000, quiet: bool = False) -> None:
    """Run the demo until Ctrl-C (or ``duration``)."""
    console = Console()
    console.print(
        f"[bold cyan]tidal demo[/]: {rate:,.0f} card transactions/s -> 5 s windows per "
        "category + running spend per card. Ctrl-C to stop.\n"
    )
    build(rate=rate, console=console).run(duration=duration, quiet=quiet)
