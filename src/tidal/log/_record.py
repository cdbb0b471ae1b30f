"""The values the log hands in and out: records, append results, read results, descriptions."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import NamedTuple

import pyarrow as pa


def now_ms() -> int:
    """Wall-clock time as integer epoch milliseconds (tidal's unit for timestamps)."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Record:
    """One event: an optional key, a value, an epoch-ms timestamp and headers.

    ``offset`` and ``partition`` are filled in by reads; leave them ``None`` when appending.
    A ``timestamp`` of ``None`` is replaced by the append time.

    >>> Record(b"hello", key=b"user-1", timestamp=1_700_000_000_000).value
    b'hello'
    """

    value: bytes
    key: bytes | None = None
    timestamp: int | None = None
    headers: tuple[tuple[str, bytes], ...] = field(default=())
    offset: int | None = None
    partition: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes | bytearray | memoryview):
            raise TypeError(f"Record.value must be bytes, got {type(self.value).__name__}")
        if self.key is not None and not isinstance(self.key, bytes | bytearray | memoryview):
            raise TypeError(f"Record.key must be bytes or None, got {type(self.key).__name__}")
        if self.timestamp is not None and (
            isinstance(self.timestamp, bool) or not isinstance(self.timestamp, int)
        ):
            raise TypeError(
                f"Record.timestamp must be an int (epoch ms) or None, got {type(self.timestamp).__name__}"
            )
        if not isinstance(self.headers, tuple):
            object.__setattr__(self, "headers", tuple(tuple(h) for h in self.headers))
        for h in self.headers:
            if len(h) != 2 or not isinstance(h[0], str) or not isinstance(h[1], bytes):
                raise TypeError(f"Record.headers must be (str, bytes) pairs, got {h!r}")


class OffsetRange(NamedTuple):
    """The first and last offset (inclusive) given to the rows of one append in one partition."""

    first: int
    last: int


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append did: offsets per partition and whether they are already fsynced.

    ``durable`` is True when every row of this append was on stable storage before the call
    returned (always with ``fsync="batch"``, when the interval had elapsed with
    ``fsync="interval"``, never with ``fsync="never"``).
    """

    offsets: dict[int, OffsetRange]
    durable: bool

    @property
    def count(self) -> int:
        """Number of offsets assigned by this append, over all partitions."""
        return sum(r.last - r.first + 1 for r in self.offsets.values())


class ArrowRead(NamedTuple):
    """Rows read as one Arrow table, and the offset to read next."""

    table: pa.Table
    next_offset: int


@dataclass(frozen=True, slots=True)
class PartitionDescription:
    """One partition as ``Log.describe`` sees it."""

    partition: int
    start_offset: int
    end_offset: int
    size_bytes: int
    segments: int


@dataclass(frozen=True, slots=True)
class GroupDescription:
    """A consumer group's committed positions on one topic and its lag per partition."""

    group: str
    committed: dict[int, int]
    lag: dict[int, int]

    @property
    def total_lag(self) -> int:
        """Rows not yet consumed by the group, over all partitions."""
        return sum(self.lag.values())


@dataclass(frozen=True, slots=True)
class TopicDescription:
    """A snapshot of a topic: settings, partitions, and the consumer groups reading it."""

    name: str
    settings: dict[str, object]
    partitions: list[PartitionDescription]
    groups: list[GroupDescription]

    @property
    def size_bytes(self) -> int:
        """Bytes on disk in all segments of all partitions."""
        return sum(p.size_bytes for p in self.partitions)
