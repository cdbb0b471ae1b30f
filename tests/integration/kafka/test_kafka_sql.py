"""Kafka from SQL: Flink's option names, through the same connector as the Python API."""

from __future__ import annotations

import json

import confluent_kafka as ck
import polars as pl

import tidal as td


def test_sql_reads_and_writes_kafka_with_flink_options(kafka_bootstrap: str, topic_name: str, tmp_path) -> None:
    source_topic, result_topic = f"{topic_name}-in", f"{topic_name}-out"
    producer = ck.Producer({"bootstrap.servers": kafka_bootstrap})
    events = [{"auction": i % 3, "price": i, "ts": f"2024-01-01T00:00:{i:02d}"} for i in range(30)]
    for e in events:
        producer.produce(source_topic, json.dumps(e).encode())
    producer.flush(10)

    flow = td.Flow("kafka-sql")
    flow.sql(f"""
        CREATE TABLE bids (auction BIGINT, price BIGINT, ts TIMESTAMP(3),
                           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
        WITH ('connector' = 'kafka', 'topic' = '{source_topic}',
              'properties.bootstrap.servers' = '{kafka_bootstrap}',
              'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset',
              'format' = 'json');
        CREATE TABLE totals (auction BIGINT, window_start TIMESTAMP(3), n BIGINT, top BIGINT)
        WITH ('connector' = 'kafka', 'topic' = '{result_topic}',
              'properties.bootstrap.servers' = '{kafka_bootstrap}', 'format' = 'json',
              'sink.delivery-guarantee' = 'at-least-once');
        INSERT INTO totals
        SELECT auction, window_start, COUNT(*), MAX(price)
        FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND))
        GROUP BY auction, window_start, window_end;
    """)
    metrics = flow.run(quiet=True, dead_letters_to_log=False)
    assert metrics.events_in == 30 and metrics.dead_letters == 0

    check = td.Flow("read-back")
    out = td.sinks.memory()
    check.source(td.sources.kafka(result_topic, bootstrap_servers=kafka_bootstrap,
                                  start="earliest", bounded=True)).sink(out)
    check.run(quiet=True, dead_letters_to_log=False)
    got = out.rows
    want = (pl.DataFrame(events).with_columns(i=pl.int_range(pl.len()))
            .group_by("auction", (pl.col("i") // 10).alias("w"))
            .agg(n=pl.len(), top=pl.col("price").max()))
    assert sorted((r["auction"], r["n"], r["top"]) for r in got) == sorted(
        want.select("auction", "n", "top").iter_rows())


def test_upsert_kafka_writes_updates_by_key_and_tombstones_for_deletes(
        kafka_bootstrap: str, topic_name: str) -> None:
    """A group that empties (its users moved to higher levels) becomes a tombstone: the
    key with a null value, as Flink's upsert-kafka writes it."""
    flow = td.Flow("upsert-kafka")
    rows = [{"u": f"u{i % 4}", "level": i // 4, "t": i} for i in range(12)]
    flow.register_table("levels", flow.source(td.sources.memory(rows), timestamp="t"))
    flow.sql(f"""
        CREATE TABLE buckets (best BIGINT, users BIGINT, PRIMARY KEY (best) NOT ENFORCED)
        WITH ('connector' = 'upsert-kafka', 'topic' = '{topic_name}',
              'properties.bootstrap.servers' = '{kafka_bootstrap}', 'format' = 'json',
              'sink.delivery-guarantee' = 'at-least-once');
        INSERT INTO buckets
        SELECT best, COUNT(*) FROM (SELECT u, MAX(level) AS best FROM levels GROUP BY u)
        GROUP BY best;""")
    flow.run(quiet=True, max_batch_rows=2, dead_letters_to_log=False)

    consumer = ck.Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": topic_name,
                            "enable.auto.commit": False})
    consumer.assign([ck.TopicPartition(topic_name, 0, ck.OFFSET_BEGINNING)])
    table: dict[int, int] = {}
    tombstones = 0
    misses = 0  # polls in a row that found nothing: after the first message, 3 s ends it
    while misses < (40 if not table and not tombstones else 6):
        msg = consumer.poll(0.5)
        if msg is None:
            misses += 1
            continue
        misses = 0
        assert msg.error() is None, msg.error()
        best = int(msg.key())
        if msg.value() is None:
            tombstones += 1
            table.pop(best, None)
        else:
            table[best] = json.loads(msg.value())["users"]
    consumer.close()
    assert tombstones >= 1  # buckets 0 and 1 filled, then emptied
    assert table == {2: 4}
