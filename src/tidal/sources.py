"""Where streams come from. Pass one to :meth:`tidal.Flow.source`.

>>> import tidal as td
>>> src = td.sources.memory([{"x": 1}, {"x": 2}])
>>> src.partitions()
['0']
"""

from __future__ import annotations

import os
from typing import Literal

from tidal.connectors.base import Source, SourceContext, SourcePartition
from tidal.connectors.files import csv, jsonl, parquet
from tidal.connectors.generator import generator
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
