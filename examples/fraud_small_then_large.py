"""Card fraud: a tiny purchase, then a large one on the same card within 5 minutes.

    python examples/fraud_small_then_large.py

Fraudsters often test a stolen card with a tiny purchase before a large one. Input: one
hour of seeded transactions from 40 cards (amounts 1-500, a few stray tiny and large
ones), arriving up to 2 s out of order (``bounded_delay("2s")``), with planted cases:
``card-07`` (0.50 then 899.00 two minutes later: fraud), ``card-12`` (tiny, then large
7 minutes later: too late, no match), ``card-21`` (tiny, a normal purchase, then large
4 minutes later: fraud; ``followed_by`` skips the purchase in between).

The pattern, per card, in event time::

    td.pattern("small", pl.col("amount") < 1)
      .followed_by("large", pl.col("amount") > 500).within("5m")

Each match is printed as ``FRAUD card=... small=... large=... at=... after_s=...``.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import polars as pl

import tidal as td

START = datetime(2026, 1, 1, 9, 0, 0)


def transactions(seed: int = 11) -> list[dict[str, Any]]:
    """One hour of transactions from 40 cards, in arrival order (up to 2 s out of order)."""
    rng = random.Random(seed)
    events = []
    for card in range(40):
        t = rng.uniform(0, 300)
        while t < 3_600:
            amount = round(rng.uniform(1, 500), 2)
            if rng.random() < 0.02:
                amount = round(rng.uniform(0.1, 0.99), 2)  # a stray tiny purchase
            elif rng.random() < 0.02:
                amount = round(rng.uniform(501, 2_000), 2)  # a stray large one
            events.append({"card": f"card-{card:02d}", "amount": amount, "at": t})
            t += rng.uniform(420, 900)  # stray ones are 7+ minutes apart: never a match
    planted = [("card-07", 0.50, 600), ("card-07", 899.00, 720),
               ("card-12", 0.10, 1_200), ("card-12", 1_500.00, 1_620),
               ("card-21", 0.99, 2_400), ("card-21", 35.00, 2_460), ("card-21", 640.00, 2_640)]
    events += [{"card": c, "amount": a, "at": t + 0.5} for c, a, t in planted]
    for e in events:
        e["arrival"] = e["at"] + rng.uniform(0, 2)
        e["ts"] = START + timedelta(seconds=round(e.pop("at"), 3))
    events.sort(key=lambda e: e.pop("arrival"))
    return events


def build(events: list[dict[str, Any]]) -> td.Flow:
    flow = td.Flow("fraud_patterns")
    tx = flow.source(td.sources.memory(events), timestamp="ts", watermark=td.bounded_delay("2s"),
                     name="transactions")
    tiny_then_large = (td.pattern("small", pl.col("amount") < 1)
                       .followed_by("large", pl.col("amount") > 500).within("5m"))
    matches = tx.key_by("card").match(tiny_then_large, name="tiny_then_large")
    matches.select(
        "card",
        small=pl.col("small").struct.field("amount"),
        large=pl.col("large").struct.field("amount"),
        at=pl.col("match_end").dt.strftime("%H:%M:%S"),
        after_s=(pl.col("match_end") - pl.col("match_start")).dt.total_seconds(),
    ).print("FRAUD ")
    return flow


def main() -> None:
    build(transactions()).run(quiet=True, max_batch_rows=50, dead_letters_to_log=False)


if __name__ == "__main__":
    main()
