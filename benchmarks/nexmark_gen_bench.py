"""Throughput of the vectorized Nexmark generator (events/s, events per CPU-second).

Run single-threaded, as the suite's per-core figures are::

    POLARS_MAX_THREADS=1 .venv/bin/python benchmarks/nexmark_gen_bench.py
    POLARS_MAX_THREADS=1 .venv/bin/python benchmarks/nexmark_gen_bench.py --events 20000000 --batch 1000000

Each case generates ``--events`` events of profile v1 (G = 8, 10 M/s) in calls of ``--batch``
events (a source's batch), after one unmeasured warm-up; it prints the median with min–max over
``--repeat`` runs. Rates count *events* of the merged stream (all kinds), also for bids-only
cases, which return the 92 % of them that are bids. Each batch is dropped before the next call,
so its output memory is reused (``tidal.nexmark._memory``); ``--keep N`` holds the last N
batches alive instead, like a consumer that is still using them.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

try:
    import tidal.nexmark as nx
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import tidal.nexmark as nx

import numpy as np
import polars as pl
import pyarrow as pa

NUMERIC_BID_COLUMNS = ["auction", "bidder", "price", "dateTime"]


def cases(config: nx.NexmarkConfig) -> dict[str, Callable[[int, int], pl.DataFrame | dict]]:
    return {
        "generate_bids (auction, bidder, price, dateTime)": lambda s, n: nx.generate_bids(
            config, s, n, columns=NUMERIC_BID_COLUMNS
        ),
        "generate_bids (all 7 columns, with strings)": lambda s, n: nx.generate_bids(config, s, n),
        "generate_events (3 frames, all columns)": lambda s, n: nx.generate_events(config, s, n),
        "generate_union (one table, struct columns)": lambda s, n: nx.generate_union(config, s, n),
    }


def run(
    fn: Callable[[int, int], object], events: int, batch: int, keep: int = 0
) -> tuple[float, float]:
    """Wall and CPU seconds to generate [0, events) in calls of ``batch`` events."""
    kept: collections.deque[object] = collections.deque(maxlen=keep or None)
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, events, batch):
        result = fn(start, min(batch, events - start))
        if keep:
            kept.append(result)
        del result
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=1_000_000, help="events per call")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--keep", type=int, default=0, help="batches held alive (0: none)")
    args = parser.parse_args()

    config = nx.NexmarkConfig.profile("v1")
    print(
        f"Python {platform.python_version()}, numpy {np.__version__}, polars {pl.__version__}, "
        f"pyarrow {pa.__version__}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, POLARS_MAX_THREADS={os.environ.get('POLARS_MAX_THREADS', 'unset')}"
    )
    print(
        f"profile v1: G={config.generators}, rate={config.rate:,.0f}/s; {args.events:,} events "
        f"in calls of {args.batch:,}, {args.keep} kept alive; median (min-max) of {args.repeat} runs\n"
    )
    for name, fn in cases(config).items():
        if args.only not in name:
            continue
        run(fn, min(args.events, 2 * args.batch), args.batch)  # warm-up: pools, caches, pages
        walls, cpus = [], []
        for _ in range(args.repeat):
            wall, cpu = run(fn, args.events, args.batch, args.keep)
            walls.append(args.events / wall / 1e6)
            cpus.append(args.events / cpu / 1e6)
        print(
            f"{name:52s} {statistics.median(walls):6.1f} M events/s ({min(walls):.1f}-{max(walls):.1f})"
            f"   {statistics.median(cpus):6.1f} M events/CPU-s"
        )


if __name__ == "__main__":
    main()
