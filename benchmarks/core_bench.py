"""W1, W2, W3 on generated Nexmark bids, next to DuckDB's batch answer, on one core.

Run: ``.venv/bin/python benchmarks/core_bench.py [--bids 5000000] [--repeat 3]``

- W1: bids whose auction % 123 == 0;
- W2: per 10 s tumbling window and auction, count and max price;
- W3: per 10 s window sliding every 2 s and per auction, the count of bids.

tidal reads the pre-generated bids from an in-memory Arrow source and writes to a
discarding sink; DuckDB (one thread) computes the same answers from the same Arrow table.
Both results are checked equal; the figure reported is the median of ``--repeat`` runs.
"""

from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"  # one core, before polars is imported

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import duckdb  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402

import tidal as td  # noqa: E402
from tidal.nexmark import NexmarkConfig, bids_table  # noqa: E402

pa.set_cpu_count(1)

DUCKDB = {
    "W1": "SELECT * FROM bids WHERE auction % 123 = 0",
    "W2": """SELECT auction, (epoch_ms(dateTime) // 10000) * 10000 AS window_start,
                    count(*) AS n, max(price) AS top
             FROM bids GROUP BY ALL""",
    "W3": """SELECT auction, s.ws AS window_start, count(*) AS n
             FROM bids, LATERAL (SELECT unnest(range(
                 (epoch_ms(dateTime) // 2000) * 2000 - 8000,
                 (epoch_ms(dateTime) // 2000) * 2000 + 1, 2000)) AS ws) s
             GROUP BY ALL""",
}


def pipeline(name: str, stream: td.Stream) -> td.Stream:
    """The tidal version of each query."""
    if name == "W1":
        return stream.filter(pl.col("auction") % 123 == 0)
    keyed = stream.key_by("auction")
    if name == "W2":
        return keyed.window(td.tumbling("10s")).agg(n=td.agg.count(), top=td.agg.max("price"))
    return keyed.window(td.sliding("10s", every="2s")).agg(n=td.agg.count())


def run_tidal(name: str, table: pa.Table, batch_rows: int) -> tuple[float, pl.DataFrame]:
    flow = td.Flow(name)
    bids = flow.source(td.sources.memory(table), timestamp="dateTime")
    out = td.sinks.memory()
    pipeline(name, bids).sink(out)
    start = time.perf_counter()
    flow.run(quiet=True, max_batch_rows=batch_rows, dead_letter_path=False)
    return time.perf_counter() - start, out.frame()


def run_duckdb(name: str, table: pa.Table) -> tuple[float, pl.DataFrame]:
    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.register("bids", table)
    start = time.perf_counter()
    result = con.sql(DUCKDB[name]).to_arrow_table()
    elapsed = time.perf_counter() - start
    return elapsed, pl.from_arrow(result)  # type: ignore[return-value]


def same(name: str, ours: pl.DataFrame, theirs: pl.DataFrame) -> bool:
    if name != "W1":
        ours = ours.drop("window_end").with_columns(pl.col("window_start").dt.epoch("ms"))
    cols = theirs.columns
    a = ours.select(cols).sort(cols)
    b = theirs.select([pl.col(c).cast(ours.schema[c]) for c in cols]).sort(cols)
    return a.equals(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bids", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch-rows", type=int, default=100_000, help="the engine default")
    ap.add_argument("--rate", type=int, default=10_000, help="Nexmark events/s of event time")
    args = ap.parse_args()

    config = NexmarkConfig(rate=args.rate, generators=1)
    table = bids_table(args.bids, config, columns=["auction", "bidder", "price", "dateTime"]).to_arrow()
    span = (table["dateTime"][-1].value - table["dateTime"][0].value) / 1000
    print(f"{args.bids:,} bids, {span:,.0f} s of event time, batch {args.batch_rows:,} rows, "
          f"polars {pl.__version__}, duckdb {duckdb.__version__}, 1 thread each")
    goals = {"W1": 20e6, "W2": 8e6, "W3": 3e6}
    print(f"{'query':6} {'tidal ev/s':>12} {'goal':>8} {'duckdb ev/s':>12} {'tidal/duckdb time':>18}  same")
    for name in ("W1", "W2", "W3"):
        run_tidal(name, table.slice(0, 100_000), args.batch_rows)  # warm-up
        ours = [run_tidal(name, table, args.batch_rows) for _ in range(args.repeat)]
        theirs = [run_duckdb(name, table) for _ in range(args.repeat)]
        t_ours = statistics.median(t for t, _ in ours)
        t_theirs = statistics.median(t for t, _ in theirs)
        ok = same(name, ours[0][1], theirs[0][1])
        n = table.num_rows
        print(f"{name:6} {n / t_ours / 1e6:10.1f} M {goals[name] / 1e6:6.0f} M "
              f"{n / t_theirs / 1e6:10.1f} M {t_ours / t_theirs:17.2f}x  {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
