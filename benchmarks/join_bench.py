"""Interval join throughput on generated events, on one core, checked against DuckDB.

Run: ``.venv/bin/python benchmarks/join_bench.py [--events 2000000] [--keys 100000]
[--repeat 3]``

Two streams of ``--events`` rows each (one event per millisecond of event time per side,
keys uniform over ``--keys``), arriving in batches of 100,000 rows and slightly out of
order (up to 200 ms, ``bounded_delay("200ms")``), joined with
``left.join(right, on="k", within=("-60s", "+0s"))``: every right row of the same key from
the 60 seconds before the left row. Throughput is input events (both sides) per second of
wall time, the median of ``--repeat`` runs; the number of joined rows is checked against
DuckDB's batch join of the same rows.
"""

from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"  # one core, before polars is imported

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

import tidal as td  # noqa: E402


def side(seed: int, n: int, keys: int, value: str) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.int64)
    arrival = t + rng.integers(0, 200, n)
    return pl.DataFrame({"k": rng.integers(0, keys, n), "t": t, value: rng.integers(0, 1_000, n),
                         "arrival": arrival}).sort("arrival").drop("arrival")


def run_tidal(left: pl.DataFrame, right: pl.DataFrame) -> tuple[float, int]:
    flow = td.Flow("join_bench")
    a = flow.source(td.sources.memory(left), timestamp="t", watermark="200ms", name="left")
    b = flow.source(td.sources.memory(right), timestamp="t", watermark="200ms", name="right")
    rows = [0]

    def count(frame: pl.DataFrame) -> None:
        rows[0] += frame.height

    a.join(b, on="k", within=("-60s", "+0s"), name="ij").sink(td.sinks.callback(count, as_frame=True))
    started = time.perf_counter()
    metrics = flow.run(quiet=True, max_batch_rows=100_000)
    elapsed = time.perf_counter() - started
    assert metrics.late == 0
    return elapsed, rows[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000, help="rows per side")
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    left = side(1, args.events, args.keys, "v")
    right = side(2, args.events, args.keys, "w")
    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.register("left_", left.to_arrow())
    con.register("right_", right.to_arrow())
    started = time.perf_counter()
    want = con.sql("SELECT count(*) FROM left_ l JOIN right_ r ON l.k = r.k "
                   "AND r.t BETWEEN l.t - 60000 AND l.t").fetchone()[0]
    duck_s = time.perf_counter() - started
    times = []
    for _ in range(args.repeat):
        elapsed, rows = run_tidal(left, right)
        assert rows == want, f"tidal joined {rows} rows, DuckDB {want}"
        times.append(elapsed)
    median = statistics.median(times)
    total = 2 * args.events
    print(f"interval join, {args.events:,} events per side, {args.keys:,} keys, "
          f"within (-60s, +0s): {want:,} joined rows")
    print(f"  tidal   {median:6.2f} s  {total / median / 1e6:6.2f} M events/s (one core, "
          f"median of {args.repeat})")
    print(f"  duckdb  {duck_s:6.2f} s  (batch join of the same rows, one thread, for reference)")


if __name__ == "__main__":
    main()
