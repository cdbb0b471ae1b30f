"""A small polling consumer over the partitions of one topic."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal, TypeVar

import pyarrow as pa

from ._errors import OffsetOutOfRangeError
from ._record import Record

if TYPE_CHECKING:
    from ._log import Log

T = TypeVar("T")


class Consumer:
    """Reads a topic's partitions in turn from remembered positions.

    Positions start at the group's committed offsets (when ``group`` is given), else at
    ``start``: ``"earliest"`` (the oldest stored row) or ``"latest"`` (only new rows).
    A position deleted by retention restarts at the partition's oldest row.
    :meth:`commit` stores the positions for the group.

    >>> import tempfile, tidal.log
    >>> log = tidal.log.open(tempfile.mkdtemp())
    >>> _ = log.create_topic("events").append([b"a", b"b"])
    >>> c = tidal.log.Consumer(log, "events", group="audit")
    >>> [r.value for r in c.poll()]
    [b'a', b'b']
    >>> c.commit(); log.committed("audit", "events")
    {0: 2}
    >>> log.close()
    """

    def __init__(
        self,
        log: Log,
        topic: str,
        group: str | None = None,
        partitions: Iterable[int] | None = None,
        start: Literal["earliest", "latest"] = "earliest",
    ):
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', got {start!r}")
        self.log = log
        self.topic = log.topic(topic)
        self.group = group
        self.partitions = (
            list(range(self.topic.partitions)) if partitions is None else list(partitions)
        )
        committed = log.committed(group, topic) if group is not None else {}
        self.positions: dict[int, int] = {}
        for p in self.partitions:
            if p in committed:
                self.positions[p] = committed[p]
            elif start == "earliest":
                self.positions[p] = self.topic.start_offset(p)
            else:
                self.positions[p] = self.topic.end_offset(p)
        self._turn = 0

    def seek(self, partition: int, offset: int) -> None:
        """Read ``partition`` from ``offset`` next."""
        if partition not in self.positions:
            raise ValueError(f"partition {partition} is not assigned to this consumer")
        self.positions[partition] = offset

    def _order(self) -> list[int]:
        # start with a different partition each poll so none is starved
        self._turn = (self._turn + 1) % len(self.partitions)
        return self.partitions[self._turn :] + self.partitions[: self._turn]

    def poll(self, max_records: int = 500, timeout_ms: int = 0) -> list[Record]:
        """Up to ``max_records`` new records; waits up to ``timeout_ms`` for some to arrive."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            out: list[Record] = []
            for p in self._order():
                if len(out) >= max_records:
                    break
                n = max_records - len(out)
                records = self._read(p, lambda o, p=p, n=n: self.topic.read(p, o, n))
                if records:
                    self.positions[p] = records[-1].offset + 1
                    out.extend(records)
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(0.005)

    def poll_arrow(self, max_rows: int = 65536) -> list[pa.Table]:
        """New rows as Arrow tables (one per partition that had some), without waiting."""
        out = []
        for p in self._order():
            read = self._read(p, lambda o, p=p: self.topic.read_arrow(p, o, max_rows))
            if read.table.num_rows:
                out.append(read.table)
            self.positions[p] = read.next_offset
        return out

    def _read(self, partition: int, read: Callable[[int], T]) -> T:
        try:
            return read(self.positions[partition])
        except OffsetOutOfRangeError:
            self.positions[partition] = self.topic.start_offset(partition)
            return read(self.positions[partition])

    def commit(self) -> None:
        """Store the current positions as the group's committed offsets."""
        if self.group is None:
            raise ValueError("this Consumer has no group; pass group=... to commit positions")
        self.log.commit(self.group, self.topic.name, dict(self.positions))
