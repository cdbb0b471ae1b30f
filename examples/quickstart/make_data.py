"""Write bids.jsonl: 2,000 seeded Nexmark-style bids for the quickstart pipeline.

Fields: ``auction`` (int), ``bidder`` (int), ``price`` (int, cents-like units; about one
bid in five is above 1,000) and ``date_time`` (ISO 8601 string in UTC, without an offset). Bids arrive about
every 50 ms over 100 seconds and up to 150 ms out of order, so the pipeline's
``bounded_delay("200ms")`` watermark accepts every one of them.

    python examples/quickstart/make_data.py
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
BASE = datetime(2026, 1, 1, tzinfo=UTC)
N = 2_000


def make_bids(n: int = N, seed: int = 42) -> pl.DataFrame:
    """``n`` bids, in arrival order, with timestamps up to 150 ms out of order."""
    rng = np.random.default_rng(seed)
    arrival_ms = np.arange(n) * 50
    event_ms = arrival_ms - rng.integers(0, 150, n)  # each bid is stamped a little before it arrives
    event_ms = np.maximum(event_ms, 0)
    return pl.DataFrame({
        "auction": rng.choice(np.arange(1000, 1010), n, p=[0.3] + [0.7 / 9] * 9),
        "bidder": rng.integers(1, 500, n),
        "price": np.round(rng.lognormal(6.0, 1.0, n)).astype(np.int64),
        "date_time": pl.Series(event_ms).cast(pl.Duration("ms")) + BASE,
    }).with_columns(pl.col("date_time").dt.to_string("%Y-%m-%dT%H:%M:%S%.3f"))


if __name__ == "__main__":
    bids = make_bids()
    path = HERE / "bids.jsonl"
    bids.write_ndjson(path)
    print(f"wrote {bids.height} bids to {path}")
