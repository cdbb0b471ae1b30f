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
    "parquet",
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
