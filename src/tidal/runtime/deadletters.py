"""Dead letters: records that could not be processed, kept with the reason.

Each dead letter is one row: ``time`` (processing time, epoch ms), ``flow``, ``step`` (the
source or operator that rejected it), ``reason``, ``record`` (the record as JSON),
``source``, ``source_partition`` and ``position`` (where it came from, when known). They are
appended to the topic ``<flow>.dead-letters`` of the embedded log (inspect and replay them
with ``tidal deadletters``), optionally to a JSON-lines file, and are readable as a stream
with :meth:`tidal.Flow.dead_letters`. Like the console sink they are at-least-once: a
record rejected again after a recovery is kept again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import polars as pl

__all__ = ["DeadLetters", "default_path", "topic_name"]

SCHEMA = pl.Schema({
    "time": pl.Int64(), "flow": pl.String(), "step": pl.String(), "reason": pl.String(),
    "record": pl.String(), "source": pl.String(), "source_partition": pl.String(),
    "position": pl.String(),
})


def topic_name(flow: str) -> str:
    """The log topic holding a flow's dead letters."""
    return f"{flow}.dead-letters"


def default_path(flow: str) -> Path:
    """Where a flow's dead letters go unless told otherwise."""
    return Path(os.environ.get("TIDAL_HOME", ".tidal")) / "dead-letters" / f"{flow}.jsonl"


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


class DeadLetters:
    """Collects dead letters of one run: counts them, writes them, hands them downstream."""

    def __init__(self, flow: str, path: str | Path | None, now: Callable[[], int],
                 topic: str | None = None, log_dir: str | Path | None = None) -> None:
        self.flow = flow
        self.path = Path(path) if path is not None else None
        self.now = now
        self.count = 0
        self.listeners: list[Callable[[pl.DataFrame], None]] = []
        self._file: Any = None
        self.topic = topic
        self.log_dir = log_dir
        self._log: Any = None

    def add(
        self, records: pl.DataFrame | list[dict[str, Any]] | list[Any], reason: str, *, step: str,
        source: str | None = None, partition: str | None = None, position: Any = None,
    ) -> None:
        """Keep ``records`` (a frame or a list of records) with ``reason``."""
        rows = records.to_dicts() if isinstance(records, pl.DataFrame) else list(records)
        if not rows:
            return
        now = self.now()
        pos = None if position is None else _json(position)
        frame = pl.DataFrame(
            {
                "time": [now] * len(rows), "flow": [self.flow] * len(rows),
                "step": [step] * len(rows), "reason": [reason] * len(rows),
                "record": [r if isinstance(r, str) else _json(r) for r in rows],
                "source": [source] * len(rows), "source_partition": [partition] * len(rows),
                "position": [pos] * len(rows),
            },
            schema=SCHEMA,
        )
        self.count += frame.height
        if self.path is not None:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the run
            self._file.write(b"".join(orjson.dumps(r) + b"\n" for r in frame.iter_rows(named=True)))
            self._file.flush()
        if self.topic is not None:
            self._append_to_log(frame)
        for listener in self.listeners:
            listener(frame)

    def _append_to_log(self, frame: pl.DataFrame) -> None:
        import tidal.log

        if self._log is None:
            self._log = tidal.log.open(self.log_dir)
            self._topic = self._log.create_topic(self.topic, partitions=1, exist_ok=True)
        self._topic.append_batch(frame)
        self._topic.flush()

    @property
    def where(self) -> str:
        """Where this run's dead letters went, for messages."""
        places = []
        if self.topic is not None:
            places.append(f"topic {self.topic!r} (see `tidal deadletters list {self.flow}`)")
        if self.path is not None:
            places.append(str(self.path))
        return " and ".join(places) or "the dead-letter stream only"

    def close(self) -> None:
        """Close the dead-letter file and log."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._log is not None:
            self._log.close()
            self._log = None
