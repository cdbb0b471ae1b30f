"""The pipeline the Kafka kill/restart test runs as a script.

Kafka topic (4 partitions, keyed log-style records with per-key seq numbers) -> a slowed
pass-through -> Kafka topic, checkpointing every 100 ms. With TIDAL_CHAOS_SELF_KILL=p it
also SIGKILLs itself with probability p after a checkpoint is durable and before the sink
committed it.

Usage: kafka_pipeline.py BOOTSTRAP IN_TOPIC OUT_TOPIC WORK_DIR
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
from tidal.state import checkpoint as ckpt

bootstrap, in_topic, out_topic, work = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
self_kill = float(os.environ.get("TIDAL_CHAOS_SELF_KILL", "0"))
real_store_write = ckpt.CheckpointStore.write


def store_write(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    cp = real_store_write(self, *args, **kwargs)
    if random.random() < self_kill:
        print("self-kill between checkpoint and commit", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return cp


ckpt.CheckpointStore.write = store_write  # type: ignore[method-assign]


def slow(frame: pl.DataFrame) -> pl.DataFrame:
    time.sleep(0.02)  # stretch the run so kills land everywhere
    return frame


flow = td.Flow("kafka-chaos")
events = flow.source(td.sources.kafka(in_topic, bootstrap, group="chaos", bounded=True),
                     timestamp="t", watermark=td.bounded_delay("1s", idle="2s"))
events.map_batches(slow).sink(td.sinks.kafka(out_topic, bootstrap, key="k", partitions=4))
ex = flow.executor(max_batch_rows=100, checkpoint_dir=work / "ck", checkpoint_interval="100ms",
                   dead_letters_to_log=False)
ex.open()
print(f"started restored={ex.restored.id if ex.restored else 0}", flush=True)
ex.run()
print("finished", flush=True)
