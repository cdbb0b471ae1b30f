"""Where results go. Pass one to :meth:`tidal.Stream.sink`.

>>> import tidal as td
>>> out = td.sinks.memory()
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal

import polars as pl

from tidal.connectors.base import Sink, SinkContext
from tidal.connectors.console import Console
from tidal.connectors.files import CsvSink, JsonLinesSink, ParquetSink
from tidal.connectors.kafka import KafkaSink
from tidal.connectors.lake import DeltaSink, ParquetDataset
from tidal.connectors.log import LogSink
from tidal.connectors.memory import Callback, Collect
from tidal.connectors.mqtt import MqttSink
from tidal.connectors.partitioned import PartitionCommit, PartitionedFiles
from tidal.connectors.postgres import PostgresSink
from tidal.connectors.redis import RedisSink
from tidal.connectors.sqlite import sqlite

__all__ = [
    "Blackhole",
    "Sink",
    "SinkContext",
    "blackhole",
    "callback",
    "console",
    "csv",
    "delta",
    "jsonl",
    "kafka",
    "log",
    "memory",
    "mqtt",
    "parquet",
    "parquet_dataset",
    "partitioned_files",
    "postgres",
    "redis",
    "sqlite",
]


def console(prefix: str = "") -> Console:
    """Print every row to standard output (what ``stream.print()`` uses)."""
    return Console(prefix)


def callback(fn: Callable[[Any], Any], as_frame: bool = False) -> Callback:
    """Call ``fn(rows)`` for every output batch (a list of dicts; the frame with ``as_frame``).
    At-least-once: after a crash and recovery a batch may be passed again."""
    return Callback(fn, as_frame)


def memory() -> Collect:
    """Keep the output in memory: ``sink.rows`` / ``sink.frame()`` (handy in tests)."""
    return Collect()


def log(topic: str, key: str | None = None, log_dir: str | os.PathLike[str] | None = None,
        partitions: int = 1) -> LogSink:
    """Append rows to a topic of the embedded log, partitioned by ``key``; exactly-once when
    the flow checkpoints. A missing topic is created with ``partitions`` partitions."""
    return LogSink(topic, key, log_dir, partitions)


def jsonl(path: str | os.PathLike[str], append: bool = False) -> JsonLinesSink:
    """Write rows as JSON lines to ``path`` (replaced at start unless ``append``)."""
    return JsonLinesSink(path, append)


def csv(path: str | os.PathLike[str], append: bool = False) -> CsvSink:
    """Write rows as CSV with a header to ``path`` (replaced at start unless ``append``)."""
    return CsvSink(path, append)


def parquet(path: str | os.PathLike[str]) -> ParquetSink:
    """Write rows to one Parquet file at ``path``, complete when the flow ends."""
    return ParquetSink(path)


class Blackhole(Sink):
    """Discards rows, counting them (for benchmarks; Flink's ``blackhole``)."""

    name = "blackhole"

    def __init__(self) -> None:
        self.rows = 0

    def write(self, batch: pl.DataFrame) -> None:
        self.rows += batch.height


def blackhole() -> Blackhole:
    """Discard every row (counting them in ``.rows``)."""
    return Blackhole()


def kafka(topic: str, bootstrap_servers: str = "localhost:9092", key: str | None = None,
          format: Literal["json", "csv", "text", "bytes", "avro"] = "json", schema: Any = None,
          properties: dict[str, Any] | None = None,
          delivery: Literal["exactly-once", "at-least-once"] = "exactly-once",
          partitions: int = 1) -> KafkaSink:
    """Write rows to a Kafka topic, keyed by column ``key`` (docs/connectors/kafka.md).

    With checkpoints, exactly-once through Kafka transactions where the broker honours them
    (said at start on stderr), else at-least-once; without checkpoints, at-least-once with an
    idempotent producer, flushed at every step. A missing topic is created with
    ``partitions`` partitions."""
    return KafkaSink(topic, bootstrap_servers, key, format, schema, properties, delivery,
                     partitions)


def mqtt(topic: str, host: str = "localhost", port: int = 1883, qos: int = 1,
         format: Literal["json", "text", "bytes"] = "json", client_id: str | None = None,
         retain: bool = False, connect_timeout: float = 10.0, publish_timeout: float = 30.0,
         username: str | None = None, password: str | None = None) -> MqttSink:
    """Publish each row as an MQTT message to ``topic``, a fixed topic or a template over the
    columns (``"alerts/{device}"``); at-least-once. See docs/connectors/mqtt.md."""
    return MqttSink(topic, host, port, qos, format, client_id, retain, connect_timeout,
                    publish_timeout, username, password)


def postgres(dsn: str, table: str, key: str | list[str] | None = None,
             connect_timeout: float = 10.0) -> PostgresSink:
    """Append rows to a PostgreSQL table, or upsert them by ``key``; exactly-once when the flow
    checkpoints. See docs/connectors/postgres.md."""
    return PostgresSink(dsn, table, key, connect_timeout)


def redis(url: str, key: str, mode: Literal["hash", "string", "stream"] = "hash",
          ttl: str | int | float | None = None, maxlen: int | None = None,
          connect_timeout: float = 10.0) -> RedisSink:
    """Write the latest value per key (``mode="hash"`` or ``"string"``) or append to streams
    (``"stream"``); ``key`` is a column or a template like ``"card:{card}"``; at-least-once.
    See docs/connectors/redis.md."""
    return RedisSink(url, key, mode, ttl, maxlen, connect_timeout)


def parquet_dataset(path: str | os.PathLike[str], partition_by: str | list[str] | None = None,
                    compression: str = "zstd") -> ParquetDataset:
    """Write a Hive-partitioned Parquet dataset (``path/date=.../hour=.../part-*.parquet``);
    exactly-once file commits when the flow checkpoints. See docs/connectors/lake.md."""
    return ParquetDataset(path, partition_by, compression)


def partitioned_files(path: str | os.PathLike[str], partition_by: list[str] | None = None,
                      format: Literal["csv", "json", "parquet"] = "csv",  # noqa: A002
                      commit: PartitionCommit | None = None, **rolling: Any) -> PartitionedFiles:
    """Write CSV, JSON lines or Parquet files into Hive-style partition directories, rolled
    (``file_size``, ``rollover_ms``, ``inactivity_ms``, ``check_interval_ms``) and committed
    with a ``_SUCCESS`` file (``commit``) like Flink's filesystem sink; exactly-once when the
    flow checkpoints. See docs/connectors/filesystem.md."""
    return PartitionedFiles(path, format=format, partition_by=partition_by, commit=commit, **rolling)


def delta(path: str | os.PathLike[str], partition_by: str | list[str] | None = None,
          mode: Literal["append", "overwrite"] = "append",
          storage_options: dict[str, str] | None = None) -> DeltaSink:
    """Append rows to a Delta Lake table; exactly-once when the flow checkpoints (each commit
    carries the checkpoint id as an application transaction). See docs/connectors/lake.md."""
    return DeltaSink(path, partition_by, mode, storage_options)
