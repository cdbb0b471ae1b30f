"""End-to-end latency from an open-loop paced source (shared/NEXMARK.md, "How to measure").

Run: ``.venv/bin/python benchmarks/latency_bench.py [--rate 100000] [--seconds 10]``

Bids are pre-generated with event time tracking their intended emission time (G = 1) and
released by one driving loop when due (every row already due; when the pipeline falls
behind, all overdue rows go at once); each row carries ``intended_ns``, the monotonic time it was due. Reported:

- W1 (filter): per-row latency = sink clock - ``intended_ns``: p50/p90/p99/p99.9/max;
- W2 (10 s tumbling count/max per auction): window-final latency = emission clock - the
  moment the watermark passed the window end (the intended time of the event that moved
  it there).
"""

from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

import tidal as td  # noqa: E402
from tidal.connectors.base import Source, SourceContext, SourcePartition  # noqa: E402
from tidal.nexmark import NexmarkConfig, generate_bids  # noqa: E402

DELAY_MS = 200


class Paced(SourcePartition):
    """Releases pre-generated rows when their intended time comes."""

    def __init__(self, frame: pl.DataFrame, rate: float) -> None:
        self.frame = frame
        self.rate = rate
        self.k = 0
        self.t0 = time.monotonic_ns()

    def poll(self, max_rows: int) -> pl.DataFrame | None:
        due = int((time.monotonic_ns() - self.t0) * self.rate / 1e9) + 1 - self.k
        n = min(due, self.frame.height - self.k)
        if n <= 0:
            return None
        start = self.k
        self.k += n
        ids = pl.int_range(start, start + n, eager=True)
        return self.frame.slice(start, n).with_columns(
            (self.t0 + ids * (1e9 / self.rate)).cast(pl.Int64).alias("intended_ns"))

    def next_awake(self) -> float | None:
        return (self.t0 + (self.k + 1) * 1e9 / self.rate) / 1e9

    @property
    def done(self) -> bool:
        return self.k >= self.frame.height

    def position(self) -> int:
        return self.k


class PacedSource(Source):
    name = "paced"

    def __init__(self, frame: pl.DataFrame, rate: float) -> None:
        self.frame, self.rate, self.part = frame, rate, None

    def partitions(self) -> list[str]:
        return ["0"]

    def open(self, partition: str, position: Any, ctx: SourceContext) -> Paced:
        self.part = Paced(self.frame, self.rate)
        return self.part


def pct(values: np.ndarray) -> str:
    if not len(values):
        return "no samples"
    q = np.percentile(values, [50, 90, 99, 99.9]) / 1e6
    return (f"p50 {q[0]:.2f} ms  p90 {q[1]:.2f} ms  p99 {q[2]:.2f} ms  p99.9 {q[3]:.2f} ms  "
            f"max {values.max() / 1e6:.2f} ms  (n={len(values):,})")


def run(query: str, rate: float, seconds: float) -> np.ndarray:
    # event time advances by exactly 1000/rate ms per event, as the intended times do
    config = NexmarkConfig(rate=rate * 50 / 46, generators=1)
    n = int(rate * seconds)
    bids = generate_bids(config, 0, int(n * 50 / 46) + 100, columns=["auction", "price", "dateTime"])
    bids = bids.head(n).with_columns(
        (pl.col("dateTime").first() + pl.duration(milliseconds=pl.int_range(0, pl.len()) * 1000 / rate)
         ).alias("dateTime"))
    base_ms = bids["dateTime"][0].timestamp() * 1000
    source = PacedSource(bids, rate)
    flow = td.Flow(f"latency-{query}")
    s = flow.source(source, timestamp="dateTime", watermark=td.bounded_delay(f"{DELAY_MS}ms"))
    samples: list[np.ndarray] = []

    if query == "W1":
        def measure(batch: pl.DataFrame) -> None:
            now = time.monotonic_ns()
            samples.append(now - batch["intended_ns"].to_numpy())

        s.filter(pl.col("auction") % 123 == 0).sink(td.sinks.callback(measure, as_frame=True))
    else:
        def measure(batch: pl.DataFrame) -> None:
            now = time.monotonic_ns()
            assert source.part is not None
            ends = batch["window_end"].dt.epoch("ms").unique().to_numpy()
            # the watermark passes `end` when the event at end + delay arrives
            passed = source.part.t0 + (ends + DELAY_MS - base_ms) * 1e6
            if (ends + DELAY_MS - base_ms).max() < seconds * 1000:  # not the final flush
                samples.append((now - passed).astype(np.int64))

        (s.key_by("auction").window(td.tumbling("10s"))
         .agg(n=td.agg.count(), top=td.agg.max("price"))
         .sink(td.sinks.callback(measure, as_frame=True)))
    flow.run(quiet=True, dead_letter_path=False)
    return np.concatenate(samples) if samples else np.array([])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=100_000)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    print(f"open loop at {args.rate:,.0f} events/s for {args.seconds:g} s, one core")
    print("W1 per-row latency:        ", pct(run("W1", args.rate, args.seconds)))
    print("W2 window-final latency:   ", pct(run("W2", args.rate, max(args.seconds, 25))))


if __name__ == "__main__":
    main()
