"""Chaos: SIGKILL a checkpointing pipeline at random moments, many times, and check that
every exactly-once sink ends with exactly the correct output.

The correct output is computed independently with Polars over the same input. Kills come
from outside at random times, and from inside at the riskiest moments (in the middle of
a checkpoint write; after the checkpoint is durable but before the sinks committed it).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import sys
from pathlib import Path

import numpy as np
import polars as pl

import tidal.log

PIPELINE = Path(__file__).with_name("chaos_pipeline.py")
KEYS = 40
EVENTS = 24_000


def make_input(work: Path) -> pl.DataFrame:
    rng = np.random.default_rng(7)
    k = rng.integers(0, KEYS, EVENTS)
    t = np.arange(EVENTS) * 10 + rng.integers(0, 1_500, EVENTS)  # out of order < 2 s
    frame = pl.DataFrame({"k": [f"key{i:02d}" for i in k], "t": t, "v": rng.integers(0, 100, EVENTS)})
    frame = frame.with_columns(seq=pl.int_range(1, pl.len() + 1).over("k"))
    with tidal.log.open(work / "log") as log:
        topic = log.create_topic("events", partitions=4)
        for chunk in frame.iter_slices(2_000):
            topic.append_batch(chunk, key="k")
    return frame


def expected(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    tumbling = frame.group_by("k", (pl.col("t") // 10_000 * 10_000).alias("window_start")).agg(
        n=pl.len().cast(pl.Int64), total=pl.col("v").sum())
    starts = frame.with_columns(
        ws=pl.concat_list(pl.col("t") // 5_000 * 5_000, pl.col("t") // 5_000 * 5_000 - 5_000)
    ).explode("ws")
    sliding = starts.group_by("k", pl.col("ws").alias("window_start")).agg(n=pl.len().cast(pl.Int64))
    running = frame.group_by("k").agg(count=pl.len().cast(pl.Int64), seq=pl.col("seq").max())
    milestones = (frame.filter(pl.col("seq") % 50 == 0)
                  .select("k", pl.col("seq").alias("milestone"), "seq"))
    return {"tumbling": tumbling, "sliding": sliding, "running": running, "milestones": milestones}


def run_once(kill_run, work: Path, kill_after: float | None,  # type: ignore[no-untyped-def]
             self_kill: float) -> tuple[str, list[str]]:
    """Run the pipeline once, SIGKILLed `kill_after` seconds after its "started" line."""
    env = {**os.environ, "TIDAL_CHAOS_SELF_KILL": str(self_kill)}
    code, out, err = kill_run([sys.executable, str(PIPELINE), str(work)], kill_after, env=env)
    lines = out.splitlines()
    if code == -signal.SIGKILL:
        return ("self-killed" if any(x.startswith("self-kill") for x in lines) else "killed"), lines
    assert code == 0, err
    return "finished", lines


def sqlite_frame(path: Path, table: str) -> pl.DataFrame:
    with sqlite3.connect(path) as con:
        cur = con.execute(f"SELECT * FROM {table}")
        cols = [d[0] for d in cur.description]
        return pl.DataFrame(cur.fetchall(), schema=cols, orient="row")


def same(got: pl.DataFrame, want: pl.DataFrame) -> None:
    cols = want.columns
    got = got.select([pl.col(c).cast(want.schema[c]) for c in cols]).sort(cols)
    assert got.height == want.height, f"{got.height} rows, expected {want.height}"
    assert got.equals(want.sort(cols))


def test_kills_at_random_moments_lose_nothing_and_duplicate_nothing(tmp_path: Path,
                                                                     kill_run) -> None:  # type: ignore[no-untyped-def]
    frame = make_input(tmp_path)
    # 240 batches of 100 events, each held 20 ms by the pipeline: at least 4.8 s of work.
    # A run killed from outside gets at most 0.4 s of it, so ten kills cannot run out of job.
    rng = random.Random(11)
    kills, self_kills, recoveries, where = 0, 0, [], []
    for attempt in range(40):
        outside = rng.uniform(0.1, 0.4) if attempt < 30 else None
        outcome, lines = run_once(kill_run, tmp_path, outside, self_kill=0.03 if attempt < 30 else 0.0)
        where += [line.removeprefix("self-kill ") for line in lines if line.startswith("self-kill")]
        for line in lines:
            if line.startswith("started restored=") and not line.startswith("started restored=0"):
                recoveries.append(float(line.rsplit("=", 1)[1]))
        if outcome == "killed":
            kills += 1
        elif outcome == "self-killed":
            self_kills += 1
        else:
            break
    assert outcome == "finished"
    assert kills + self_kills >= 10, "the pipeline finished before it could be killed enough"
    want = expected(frame)
    tumbling = pl.read_ndjson(tmp_path / "tumbling.jsonl")
    same(tumbling.select("k", "window_start", "n", "total"), want["tumbling"])
    same(sqlite_frame(tmp_path / "out.db", "sliding").select("k", "window_start", "n"), want["sliding"])
    running = sqlite_frame(tmp_path / "out.db", "running")
    assert (running["count"] == running["seq"]).all(), "a replayed event was counted twice"
    same(running.select("k", "count", "seq"), want["running"])
    with tidal.log.open(tmp_path / "log") as log:
        t = log.topic("milestones")
        got = pl.concat([pl.from_arrow(t.read_arrow(p, 0, max_rows=10**6).table) for p in range(2)])
    same(got.select("k", "milestone", "seq"), want["milestones"])
    assert "during checkpoint write" in where and "between checkpoint and commit" in where
    report = {"kills": kills, "self_kills": self_kills,
              "self_kills_during_checkpoint_write": where.count("during checkpoint write"),
              "self_kills_between_checkpoint_and_commit": where.count("between checkpoint and commit"),
              "recovery_ms": {"median": float(np.median(recoveries)) if recoveries else None,
                              "max": max(recoveries, default=None)}}
    print("chaos:", json.dumps(report))
    (Path(os.environ.get("TIDAL_CHAOS_REPORT", tmp_path / "report.json"))).write_text(json.dumps(report))
