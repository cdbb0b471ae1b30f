"""Nexmark q0-q8 through SQL (queries/nexmark/q*.sql) next to the hand-written Python-API
pipeline of the same query, in the same process, on the same nexmark source.

Both read the same generated events (generator inside the timed run, NEXMARK.md 5.1) and
write to a blackhole. Reports events/s (wall) and events per CPU-core-second, beside the
published per-core figures of NEXMARK.md 6.

    .venv/bin/python benchmarks/sql_bench.py --events 10000000 --runs 3 [--cli]

``--cli`` also runs each query as a user does, ``tidal sql script.sql`` in a new process
(the same DDL and query file), and reports its events/s including the process start.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

import tidal as td
from tidal.connectors.nexmark import nexmark
from tidal.operators.over import Frame, OverAgg, OverAggregate
from tidal.operators.rank import TopN
from tidal.operators.retract import upsert_aggregate
from tidal.operators.timeattr import TimeAttr
from tidal.sql import parse, session_for
from tidal.sql.nexmark import ddl

QUERIES = Path(__file__).resolve().parents[1] / "queries" / "nexmark"
PUBLISHED = {  # events/s per core: Flink 1.13 V1, Feldera (NEXMARK.md 6)
    "q0": ("155 K", "436 K"), "q1": ("158 K", "396 K"), "q2": ("175 K", "422 K"),
    "q3": ("152 K", "413 K"), "q4": ("34 K", "265 K"), "q5": ("22 K", "412 K"),
    "q6": ("—", "—"), "q7": ("12 K", "196 K"), "q8": ("146 K", "415 K"),
}
"""q6 has no published figure: Flink cannot run it (NEXMARK.md 4.5)."""
COLUMNS = {
    "q0": {"bid": ["auction", "bidder", "price", "extra"]},
    "q1": {"bid": ["auction", "bidder", "price", "extra"]},
    "q2": {"bid": ["auction", "price"]},
    "q3": {"auction": ["id", "seller", "category"], "person": ["id", "name", "city", "state"]},
    "q4": {"auction": ["id", "category", "expires"], "bid": ["auction", "price"]},
    "q5": {"bid": ["auction"]},
    "q6": {"auction": ["id", "seller", "expires"], "bid": ["auction", "price"]},
    "q7": {"bid": ["auction", "bidder", "price", "extra"]},
    "q8": {"person": ["id", "name"], "auction": ["seller"]},
}
TS = "dateTime"


def sql_flow(q: str, n: int) -> td.Flow:
    flow = td.Flow(f"sql-{q}")
    kinds = tuple(COLUMNS[q])
    flow.sql(ddl(events=n, rate=10_000_000, generators=8, kinds=kinds, columns=COLUMNS[q]))
    for stmt in parse((QUERIES / f"{q}.sql").read_text()):
        session_for(flow).statement(flow, stmt)
    return flow


def _src(flow: td.Flow, kind: str, q: str, n: int) -> td.Stream:
    cols = [c for c in (*COLUMNS[q][kind], TS)]
    return flow.source(nexmark(kind, events=n, rate=10_000_000, generators=8, columns=cols),
                       timestamp=TS, watermark=td.bounded_delay("4s"), name=kind)


def python_flow(q: str, n: int) -> td.Flow:
    flow = td.Flow(f"py-{q}")
    sink = td.sinks.blackhole()
    if q in ("q0", "q1", "q2", "q5", "q7"):
        bid = _src(flow, "bid", q, n)
    if q == "q0":
        bid.select("auction", "bidder", "price", TS, "extra").sink(sink)
    elif q == "q1":
        price = pl.lit(0.908).cast(pl.Decimal(3, 3)) * pl.col("price").cast(pl.Decimal(19, 0))
        bid.select("auction", "bidder", price.cast(pl.Decimal(23, 3)).alias("price"), TS,
                   "extra").sink(sink)
    elif q == "q2":
        bid.filter(pl.col("auction") % 123 == 0).select("auction", "price").sink(sink)
    elif q == "q3":
        a = _src(flow, "auction", q, n).filter(pl.col("category") == 10) \
            .with_columns(k=pl.col("seller"))
        p = _src(flow, "person", q, n).filter(pl.col("state").is_in(["OR", "ID", "CA"])) \
            .with_columns(k=pl.col("id"))
        a.join(p, on="k", ttl=10**15).select("name", "city", "state", "id").sink(sink)
    elif q == "q5":
        c = bid.key_by("auction").window(td.sliding("10s", every="2s")).agg(num=td.agg.count())
        m = c.with_columns(ws=pl.col("window_start"), we=pl.col("window_end")) \
            .key_by("ws", "we").window(td.tumbling("2s")).agg(maxn=td.agg.max("num"))
        c.join(m.select(pl.col("ws").alias("window_start"), pl.col("we").alias("window_end"),
                        "maxn"), on=["window_start", "window_end"], ttl=10**15) \
            .filter(pl.col("num") >= pl.col("maxn")).select("auction", "num").sink(sink)
    elif q == "q7":
        w = bid.key_by().window(td.tumbling("10s")).agg(maxprice=td.agg.max("price"))
        j = bid.with_columns(k=pl.col("price")).join(
            w.select(pl.col("maxprice").alias("k"), pl.col("window_end").alias("wend")),
            on="k", ttl=10**15)
        j.filter((pl.col(TS) >= pl.col("wend") - pl.duration(seconds=10))
                 & (pl.col(TS) <= pl.col("wend"))) \
            .select("auction", "price", "bidder", TS, "extra").sink(sink)
    elif q in ("q4", "q6"):
        # the q9-style join: each auction's bids inside [dateTime, expires]
        a = _src(flow, "auction", q, n).with_columns(k=pl.col("id"))
        b = _src(flow, "bid", q, n).with_columns(k=pl.col("auction"))
        j = a.join(b, on="k", ttl=10**15).filter(
            pl.col("dateTime_right").is_between(pl.col(TS), pl.col("expires")))
        if q == "q4":
            final = j.key_by("id", "category").agg(final=td.agg.max("price"))
            avg = upsert_aggregate(final, ["id", "category"], ["category"],
                                   {"s": td.agg.sum("final"), "n": td.agg.count("final")})
            avg.select("category", (pl.col("s") // pl.col("n")).alias("final")).sink(sink)
        else:
            top = j.select("id", "seller", pl.col("price").alias("final"),
                           pl.col("dateTime_right").alias("bt"))._then(
                "top_n", "top_n[id]", lambda name: TopN(name, ["id"], ["final", "bt"],
                                                        [True, False], 1),
                schema=None, time=None, stateful=True)
            top.node.schema = pl.Schema({"id": pl.Int64(), "seller": pl.Int64(),
                                         "final": pl.Int64(), "bt": pl.Datetime("ms")})
            aggs = [OverAgg("AVG", "final", "avg_price")]
            top._then("over", "over[seller]", lambda name: OverAggregate(
                name, ["seller"], TimeAttr("bt"), Frame("rows", 10), aggs, key=["id"]),
                schema=OverAggregate.output_schema(top.node.schema, aggs), stateful=True) \
                .select("id", "seller", "avg_price").sink(sink)
    elif q == "q8":
        p = _src(flow, "person", q, n).key_by("id", "name").window(td.tumbling("10s")) \
            .agg(c=td.agg.count())
        a = _src(flow, "auction", q, n).key_by("seller").window(td.tumbling("10s")) \
            .agg(c=td.agg.count())
        p.join(a.select(pl.col("seller").alias("id"), "window_start", "window_end"),
               on=["id", "window_start", "window_end"], ttl=10**15) \
            .select("id", "name", pl.col("window_start").alias("stime")).sink(sink)
    return flow


def measure(make: Callable[[str, int], td.Flow], q: str, n: int) -> tuple[float, float]:
    flow = make(q, n)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    flow.run(quiet=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu


def measure_cli(q: str, n: int) -> tuple[float, float]:
    """The same query as a user runs it: ``tidal sql script.sql`` in a new process (the
    nexmark DDL, then the query file), wall and CPU including the interpreter's start."""
    import subprocess
    import sys
    import tempfile

    kinds = tuple(COLUMNS[q])
    script = ddl(events=n, rate=10_000_000, generators=8, kinds=kinds, columns=COLUMNS[q]) + \
        ";\n" + (QUERIES / f"{q}.sql").read_text()
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run([sys.executable, "-m", "tidal.cli", "sql", f.name], check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    Path(f.name).unlink()
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--queries", default="q0,q1,q2,q3,q4,q5,q6,q7,q8")
    ap.add_argument("--cli", action="store_true",
                    help="also time `tidal sql FILE.sql` in a new process per run")
    args = ap.parse_args()
    n = args.events
    print(f"Nexmark, {n:,} events, G=8, rate 10 M/s (V1 event time), blackhole sink; "
          f"median of {args.runs} (one warm-up); polars {pl.__version__}")
    print(f"{'query':<6}{'SQL ev/s':>12}{'Python ev/s':>13}{'SQL/Py':>8}{'SQL ev/core-s':>15}"
          f"{'Py ev/core-s':>14}{'Flink 1.13/core':>17}{'Feldera/core':>14}"
          + (f"{'tidal sql CLI ev/s':>20}" if args.cli else ""))
    for q in args.queries.split(","):
        res: dict[str, list[tuple[float, float]]] = {"sql": [], "py": [], "cli": []}
        measure(sql_flow, q, min(n, 1_000_000))  # warm-up
        for _ in range(args.runs):  # interleaved, so drift hits both alike
            res["sql"].append(measure(sql_flow, q, n))
            res["py"].append(measure(python_flow, q, n))
            if args.cli:
                res["cli"].append(measure_cli(q, n))
        sw = statistics.median(w for w, _ in res["sql"])
        pw = statistics.median(w for w, _ in res["py"])
        sc = statistics.median(c for _, c in res["sql"])
        pc = statistics.median(c for _, c in res["py"])
        flink, feldera = PUBLISHED[q]
        print(f"{q:<6}{n / sw:>12,.0f}{n / pw:>13,.0f}{pw / sw:>8.2f}{n / sc:>15,.0f}"
              f"{n / pc:>14,.0f}{flink:>17}{feldera:>14}"
              + (f"{n / statistics.median(w for w, _ in res['cli']):>20,.0f}" if args.cli
                 else ""), flush=True)


if __name__ == "__main__":
    main()
