"""Where streams come from. Pass one to :meth:`tidal.Flow.source`.

>>> import tidal as td
>>> src = td.sources.memory([{"x": 1}, {"x": 2}])
>>> src.partitions()
['0']
"""

from __future__ import annotations

from tidal.connectors.base import Source, SourceContext, SourcePartition
from tidal.connectors.files import csv, jsonl, parquet
from tidal.connectors.generator import generator
from tidal.connectors.memory import Memory
from tidal.connectors.socket import socket_text

__all__ = [
    "Source",
    "SourceContext",
    "SourcePartition",
    "csv",
    "generator",
    "jsonl",
    "memory",
    "parquet",
    "socket_text",
]


def memory(items, partitions: int = 1) -> Memory:  # type: ignore[no-untyped-def]
    """A bounded source over a list/iterable of dicts, or of Polars/Arrow frames, or one frame."""
    return Memory(items, partitions)
