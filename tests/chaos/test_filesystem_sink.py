"""Chaos for the partitioned filesystem sink: SIGKILL Nexmark q10 (tests/chaos/
filesystem_pipeline.py) at the sink's riskiest moments, restart it until it finishes, and
check every partition holds exactly its rows (computed independently with Polars), every
partition is committed and no in-progress file is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import polars as pl

from tidal.nexmark import NexmarkConfig, generate_events

PIPELINE = Path(__file__).with_name("filesystem_pipeline.py")
EVENTS, RATE = 20_000, 40
SCHEMA = {"auction": pl.Int64, "bidder": pl.Int64, "price": pl.Int64,
          "dateTime": pl.Datetime("ms"), "extra": pl.String}


def read_partitions(out: Path) -> pl.DataFrame:
    frames = []
    for d in sorted(out.glob("dt=*/hm=*")):
        assert (d / "_SUCCESS").exists(), f"{d} was never committed"
        dt, hm = (unquote(p.split("=", 1)[1]) for p in (d.parent.name, d.name))
        frames += [pl.read_csv(f, schema=SCHEMA).with_columns(dt=pl.lit(dt), hm=pl.lit(hm))
                   for f in sorted(d.glob("part-*.csv"))]
    return pl.concat(frames)


def test_sigkills_around_the_sink_record_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    out = tmp_path / "bid"
    kills, where = 0, []
    for attempt in range(40):
        proc = subprocess.run([sys.executable, str(PIPELINE), str(out), str(EVENTS), str(RATE)],
                              capture_output=True, text=True, timeout=240, cwd=tmp_path,
                              env={**os.environ, "TIDAL_CHAOS_SELF_KILL": "0.08",
                                   "TIDAL_CHAOS_SEED": str(attempt)})
        where += [x.removeprefix("self-kill ") for x in proc.stdout.splitlines() if x.startswith("self-kill")]
        if proc.returncode != -signal.SIGKILL:
            break
        kills += 1
    assert proc.returncode == 0 and "finished" in proc.stdout, proc.stderr[-2000:]
    print(f"filesystem chaos: {kills} kills, at {sorted(set(where))}")
    assert kills >= 3, "the pipeline finished before it could be killed enough"
    assert "before the sink's record" in where and "after the sink's record" in where
    bids = generate_events(NexmarkConfig(events=EVENTS, rate=RATE, out_of_order_group=100), 0, EVENTS)["bid"]
    want = bids.select(*SCHEMA, dt=pl.col("dateTime").dt.strftime("%Y-%m-%d"),
                       hm=pl.col("dateTime").dt.strftime("%H:%M"))
    got = read_partitions(out)
    assert got.height == want.height, f"{got.height} rows, expected {want.height}"
    assert got.sort(got.columns).equals(want.sort(want.columns))
    assert not list(out.rglob("*.inprogress"))
