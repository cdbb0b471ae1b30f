"""Where streams come from. Pass one to :meth:`tidal.Flow.source`.

>>> import tidal as td
>>> src = td.sources.memory([{"x": 1}, {"x": 2}])
>>> src.partitions()
['0']
"""

from __future__ import annotations

import os
from typing import Any, Literal

from tidal.connectors.base import Source, SourceContext, SourcePartition
from tidal.connectors.files import csv, jsonl, parquet
from tidal.connectors.generator import generator
from tidal.connectors.kafka import KafkaSource
from tidal.connectors.log import LogSource
from tidal.connectors.memory import Memory
from tidal.connectors.mqtt import MqttSource
from tidal.connectors.postgres import PostgresSource
from tidal.connectors.socket import socket_text

__all__ = [
    "Source",
    "SourceContext",
    "SourcePartition",
    "csv",
    "generator",
    "jsonl",
    "kafka",
    "log",
    "memory",
    "mqtt",
    "parquet",
    "postgres",
    "socket_text",
]


def log(topic: str, group: str | None = None, log_dir: str | os.PathLike[str] | None = None,
        start: Literal["earliest", "latest"] = "earliest", bounded: bool = False,
        format: str | None = None, metadata: bool = False) -> LogSource:
    """Read a topic of the embedded log (``log_dir``: ``$TIDAL_LOG_DIR`` or ``.tidal/log``).
    See :class:`tidal.connectors.log.LogSource` for the options."""
    return LogSource(topic, group, log_dir, start, bounded, format, metadata)


def memory(items, partitions: int = 1) -> Memory:  # type: ignore[no-untyped-def]
    """A bounded source over a list/iterable of dicts, or of Polars/Arrow frames, or one frame."""
    return Memory(items, partitions)


def kafka(topics: str | list[str], bootstrap_servers: str = "localhost:9092",
          group: str | None = None, partitions: list[int] | None = None,
          start: Literal["earliest", "latest", "committed"] | int | None = None,
          format: Literal["json", "csv", "text", "bytes", "avro"] = "json", schema: Any = None,
          schema_registry: str | None = None, bounded: bool = False, metadata: bool = False,
          properties: dict[str, Any] | None = None) -> KafkaSource:
    """Read Kafka topics, one stream partition per Kafka partition (docs/connectors/kafka.md).

    ``start``: where a partition without a checkpointed position begins: ``"earliest"``,
    ``"latest"``, ``"committed"`` (``group``'s offsets; the default when ``group`` is given)
    or a timestamp in epoch ms. ``bounded=True`` reads up to the end offsets at start, then
    finishes. ``metadata=True`` adds ``_key``, ``_timestamp``, ``_partition``, ``_offset``.
    ``properties`` pass through to librdkafka (``sasl.*``, ``ssl.*``; ``properties.`` prefix
    optional)."""
    return KafkaSource(topics, bootstrap_servers, group, partitions, start, format, schema,
                       schema_registry, bounded, metadata, properties)


def mqtt(topics: str | list[str], host: str = "localhost", port: int = 1883, qos: int = 1,
         client_id: str | None = None, clean_session: bool = False,
         topic_columns: str | None = None, format: Literal["json", "text", "bytes"] = "json",
         metadata: bool = False, connect_timeout: float = 10.0, username: str | None = None,
         password: str | None = None) -> MqttSource:
    """Subscribe to MQTT topic filters; ``topic_columns="sensors/{site}/{device}"`` turns topic
    levels into columns. At-least-once with ``qos>=1`` and the persistent session kept under
    ``client_id`` (default ``tidal-<flow>-<source>``). See docs/connectors/mqtt.md."""
    return MqttSource(topics, host, port, qos, client_id, clean_session, topic_columns, format,
                      metadata, connect_timeout, username, password)


def postgres(dsn: str, table: str | None = None, *, query: str | None = None,
             incrementing_column: str = "id", poll_interval: str | int | float = "1s",
             bounded: bool = False, connect_timeout: float = 10.0) -> PostgresSource:
    """Read a PostgreSQL table (or ``query=``): its rows now, then new rows as they appear, by
    ``incrementing_column``; ``bounded=True`` reads the rows present at start and finishes.
    See docs/connectors/postgres.md."""
    return PostgresSource(dsn, table, query, incrementing_column, poll_interval, bounded,
                          connect_timeout)
