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
from tidal.connectors.log import LogSink
from tidal.connectors.memory import Callback, Collect
from tidal.connectors.sqlite import sqlite

__all__ = ["Blackhole", "Sink", "SinkContext", "blackhole", "callback", "console", "csv", "jsonl", "kafka", "log", "memory", "parquet", "sqlite"]


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
