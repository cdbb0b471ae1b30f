"""The cost of checkpoints, and recovery time for a large window state.

Run: ``.venv/bin/python benchmarks/checkpoint_bench.py [--bids 20000000] [--state-gb 1]``

1. W2 (10 s tumbling count/max per auction) over pre-generated bids from memory, with no
   checkpoints and with checkpoints every 1 s (and every 100 ms), in the same run: events/s
   and the ratio to no checkpoints;
2. a window operator holding ``--state-gb`` of partial aggregates (distinct keys in open
   windows): time to write its checkpoint, and recovery time = find + verify + load +
   restore of that checkpoint in a new process state.
"""

from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"

import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

import tidal as td  # noqa: E402
from tidal.nexmark import NexmarkConfig, bids_table  # noqa: E402
from tidal.operators.timeattr import TimeAttr  # noqa: E402
from tidal.operators.window import WindowAggregate  # noqa: E402
from tidal.state.checkpoint import CheckpointStore  # noqa: E402


def w2(table: pl.DataFrame, checkpoint_dir: Path | None, interval: str) -> tuple[float, int]:
    flow = td.Flow("w2")
    bids = flow.source(td.sources.memory(table), timestamp="dateTime")
    (bids.key_by("auction").window(td.tumbling("10s"), name="w2")
     .agg(n=td.agg.count(), top=td.agg.max("price")).sink(td.sinks.blackhole()))
    start = time.perf_counter()
    ex = flow.executor(max_batch_rows=100_000, checkpoint_dir=checkpoint_dir,
                       checkpoint_interval=interval, dead_letters_to_log=False)
    ex.run()
    return time.perf_counter() - start, ex.checkpoint_count


def throughput(n_bids: int) -> None:
    table = bids_table(n_bids, NexmarkConfig(rate=10_000, generators=1),
                       columns=["auction", "bidder", "price", "dateTime"])
    print(f"W2 over {n_bids:,} bids, batches of 100,000 rows, one thread")
    base = None
    for label, interval in (("no checkpoints", None), ("every 1 s", "1s"), ("every 100 ms", "100ms")):
        runs = []
        for _ in range(3):
            d = Path(tempfile.mkdtemp()) if interval else None
            runs.append(w2(table, d, interval or "10s"))
            if d:
                shutil.rmtree(d)
        t, count = sorted(runs)[1]
        base = base or t
        print(f"  {label:15} {n_bids / t / 1e6:6.2f} M events/s  {count:3d} checkpoints  "
              f"{(t / base - 1) * 100:+5.1f}% time vs none")


def recovery(state_gb: float) -> None:
    rows_per_gb = (1 << 30) // 40  # key, window start and three partials: ~40 bytes a row
    n = int(rows_per_gb * state_gb)
    op = WindowAggregate("big", ["k"], TimeAttr("t"), td.tumbling("1h"),
                         {"n": td.agg.count(), "s": td.agg.sum("v"), "m": td.agg.max("v")})
    op.open(None)  # type: ignore[arg-type]
    chunk = 5_000_000
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        op.on_batch(pl.DataFrame({"k": np.arange(i, i + m), "t": np.zeros(m, np.int64),
                                  "v": np.ones(m, np.int64)}), 0)
    state = op.snapshot()
    size = state["state"].estimated_size()
    d = Path(tempfile.mkdtemp())
    store = CheckpointStore(d)
    start = time.perf_counter()
    store.write(1, {"positions": {}, "max_ts": {}, "watermarks": {}}, {"big": (state, "sig")}, {})
    written = time.perf_counter() - start
    del state
    op2 = WindowAggregate("big", ["k"], TimeAttr("t"), td.tumbling("1h"),
                          {"n": td.agg.count(), "s": td.agg.sum("v"), "m": td.agg.max("v")})
    start = time.perf_counter()
    cp = CheckpointStore(d).latest()
    assert cp is not None
    op2.restore(cp.operator_state("big"))
    recovered = time.perf_counter() - start
    on_disk = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
    assert op2.frames[0].height == n
    print(f"window state of {n:,} keys, {size / 2**30:.2f} GiB in memory, {on_disk / 2**30:.2f} GiB on disk:")
    print(f"  checkpoint write {written:.2f} s, recovery (find, verify CRC32C, load, restore) {recovered:.2f} s")
    shutil.rmtree(d)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bids", type=int, default=20_000_000)
    ap.add_argument("--state-gb", type=float, default=1.0)
    args = ap.parse_args()
    throughput(args.bids)
    recovery(args.state_gb)


if __name__ == "__main__":
    main()
