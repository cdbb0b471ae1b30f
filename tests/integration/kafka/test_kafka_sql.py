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
