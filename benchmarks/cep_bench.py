"""Pattern matching throughput: tiny purchase then a large one within 5 minutes, per card.

    python benchmarks/cep_bench.py [--events 10000000] [--cards 200000] [--strict]

Generates ``--events`` card transactions over one day (sorted by time, 100,000-row
batches), where 1% of the cards make a tiny purchase (< 1) followed by a large one
(> 500) within 5 minutes; everyone else buys for 1-500, with a few stray tiny and large
purchases (0.1% each) that rarely line up. Runs
``key_by("card").match(tiny -> large within 5m)`` through a whole flow (memory source,
watermarks, matcher, sink) on one core (``POLARS_MAX_THREADS=1``) and prints events/s
and how many cards matched. The generator's time is not counted.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ["POLARS_MAX_THREADS"] = "1"  # one core: set before polars is imported

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

import tidal as td  # noqa: E402

DAY_MS = 86_400_000


def transactions(n: int, cards: int, seed: int = 1) -> pl.DataFrame:
    """``n`` transactions sorted by time; 1% of the cards carry a tiny-then-large pair."""
    rng = np.random.default_rng(seed)
    card = rng.integers(0, cards, n)
    t = np.sort(rng.integers(0, DAY_MS, n))
    amount = np.round(rng.uniform(1, 500, n), 2)
    stray = rng.random(n)
    amount[stray < 0.001] = 0.5
    amount[stray > 0.999] = 900.0
    fraud = rng.choice(cards, cards // 100, replace=False)
    start = rng.integers(0, DAY_MS - 600_000, fraud.size)
    gap = rng.integers(1_000, 240_000, fraud.size)
    extra = pl.DataFrame({
        "card": np.concatenate([fraud, fraud]),
        "t": np.concatenate([start, start + gap]),
        "amount": np.concatenate([np.full(fraud.size, 0.3), np.full(fraud.size, 1_500.0)]),
    })
    base = pl.DataFrame({"card": card, "t": t, "amount": amount}).head(n - extra.height)
    frame = pl.concat([base, extra]).sort("t")
    return frame.with_columns(pl.format("card-{}", pl.col("card")).alias("card"))


def run(frame: pl.DataFrame, strict: bool = False) -> tuple[float, int, int]:
    """(seconds, matches, matching cards) for the whole flow."""
    flow = td.Flow("cep_bench")
    tx = flow.source(td.sources.memory(frame), timestamp="t", watermark="1s")
    small = td.pattern("small", pl.col("amount") < 1)
    large = pl.col("amount") > 500
    fraud = (small.next("large", large) if strict else small.followed_by("large", large)).within("5m")
    out = td.sinks.memory()
    tx.key_by("card").match(fraud, name="tiny_then_large").select("card", "match_start").sink(out)
    started = time.perf_counter()
    flow.run(quiet=True, max_batch_rows=100_000, dead_letters_to_log=False)
    elapsed = time.perf_counter() - started
    matches = out.frame()
    cards = matches["card"].n_unique() if matches.height else 0
    return elapsed, matches.height, cards


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--cards", type=int, default=200_000)
    ap.add_argument("--strict", action="store_true",
                    help="use next(...) (strict contiguity: every event's key and time is kept)")
    args = ap.parse_args()
    frame = transactions(args.events, args.cards)
    elapsed, matches, cards = run(frame, args.strict)
    print(f"{frame.height:,} transactions, {args.cards:,} cards: {matches:,} matches on "
          f"{cards:,} cards ({cards / args.cards:.1%}) in {elapsed:.2f} s = "
          f"{frame.height / elapsed / 1e6:.2f} M events/s (1 core, whole flow"
          f"{', strict contiguity' if args.strict else ''})")


if __name__ == "__main__":
    main()
