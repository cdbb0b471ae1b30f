"""The pipeline the chaos test kills again and again (run as a script).

log topic "events" (4 partitions) -> tumbling and sliding windows, a running aggregate and
an update_state milestone detector -> exactly-once JSONL, SQLite and log sinks.

With TIDAL_CHAOS_SELF_KILL=p, the process also SIGKILLs itself with probability p at the
two moments that matter most: in the middle of writing a checkpoint, and after a checkpoint
is durable but before the sinks committed it.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from pathlib import Path

import polars as pl

import tidal as td
from tidal.runtime.executor import Executor
from tidal.state import checkpoint as ckpt

work = Path(sys.argv[1])
self_kill = float(os.environ.get("TIDAL_CHAOS_SELF_KILL", "0"))
rng = random.Random()


def maybe_die(where: str, weight: float = 1.0) -> None:
    if rng.random() < self_kill * weight:
        print(f"self-kill {where}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


real_write_file = ckpt._write_file


def write_file(path: Path, data: bytes) -> str:
    maybe_die("during checkpoint write")
    return real_write_file(path, data)


ckpt._write_file = write_file
real_checkpoint = Executor.checkpoint
real_store_write = ckpt.CheckpointStore.write


def store_write(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    cp = real_store_write(self, *args, **kwargs)
    maybe_die("between checkpoint and commit", weight=12.0)  # one chance per checkpoint, not per file
    return cp


ckpt.CheckpointStore.write = store_write  # type: ignore[method-assign]


def milestones(key: tuple, rows: pl.DataFrame, state: td.KeyState) -> list[dict]:
    count = state.get(0)
    out = []
    for seq in rows["seq"].to_list():
        count += 1
        if count % 50 == 0:
            out.append({"k": key[0], "milestone": count, "seq": seq})
    state.set(count)
    return out


def slow(frame: pl.DataFrame) -> pl.DataFrame:
    time.sleep(0.02)  # stretch the run so kills land everywhere
    return frame


started = time.monotonic()
flow = td.Flow("chaos")
events = flow.source(td.sources.log("events", log_dir=work / "log", bounded=True),
                     timestamp="t", watermark=td.bounded_delay("2s")).map_batches(slow)
keyed = events.key_by("k")
(keyed.window(td.tumbling("10s"), name="tumbling")
 .agg(n=td.agg.count(), total=td.agg.sum("v")).sink(td.sinks.jsonl(work / "tumbling.jsonl")))
(keyed.window(td.sliding("10s", every="5s"), name="sliding")
 .agg(n=td.agg.count()).sink(td.sinks.sqlite(work / "out.db", "sliding")))
(keyed.agg(count=td.agg.count(), seq=td.agg.max("seq"), name="running")
 .sink(td.sinks.sqlite(work / "out.db", "running", key="k")))
(keyed.update_state(milestones, name="milestones")
 .sink(td.sinks.log("milestones", key="k", log_dir=work / "log", partitions=2)))

ex = flow.executor(max_batch_rows=100, checkpoint_dir=work / "ck", checkpoint_interval="30ms",
                   dead_letters_to_log=False, log_dir=work / "log")
ex.open()
restored = ex.restored.id if ex.restored else 0
print(f"started restored={restored} recovery_ms={(time.monotonic() - started) * 1000:.0f}", flush=True)
ex.run()
print("finished", flush=True)
