"""Responses remembered by ``Idempotency-Key``, durable in a small SQLite file.

A client that retries a request with the same key (for the same topic) gets the original
response back and nothing is stored twice: the HTTP counterpart of Kafka's idempotent
producer. Entries are kept for ``ttl_ms`` and at most ``max_entries`` of them (oldest go
first), so the file stays small.

>>> import tempfile, pathlib
>>> store = IdempotencyStore(pathlib.Path(tempfile.mkdtemp()) / "idempotency.sqlite3")
>>> store.get("orders", "k1") is None
True
>>> store.put("orders", "k1", "f" * 64, {"count": 2})
>>> store.get("orders", "k1")
Remembered(fingerprint='ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', response={'count': 2})
>>> store.close()
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import orjson

DEFAULT_TTL_MS = 24 * 3_600_000
DEFAULT_MAX_ENTRIES = 100_000
_PRUNE_EVERY = 256


class Remembered(NamedTuple):
    """A stored response and the fingerprint of the request that produced it."""

    fingerprint: str
    response: dict[str, Any]


class IdempotencyStore:
    """Topic + key -> (request fingerprint, response JSON), committed with fsync.

    Thread-safe; several processes may share the file (SQLite WAL with a busy timeout).
    """

    def __init__(
        self,
        path: Path,
        *,
        ttl_ms: int = DEFAULT_TTL_MS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ):
        self.path = Path(path)
        self.ttl_ms = ttl_ms
        self.max_entries = max_entries
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._lock = threading.Lock()
        self._puts = 0
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a remembered response survives a crash
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                " topic TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,"
                " response BLOB NOT NULL, created_ms INTEGER NOT NULL,"
                " PRIMARY KEY (topic, key))"
            )
            self._db.execute(
                "CREATE INDEX IF NOT EXISTS responses_created ON responses (created_ms)"
            )
            self._db.commit()

    def get(self, topic: str, key: str) -> Remembered | None:
        """The response remembered for ``key`` on ``topic``, unless expired."""
        cutoff = _now_ms() - self.ttl_ms
        with self._lock:
            row = self._db.execute(
                "SELECT fingerprint, response FROM responses"
                " WHERE topic = ? AND key = ? AND created_ms >= ?",
                (topic, key, cutoff),
            ).fetchone()
        if row is None:
            return None
        return Remembered(row[0], orjson.loads(row[1]))

    def put(self, topic: str, key: str, fingerprint: str, response: dict[str, Any]) -> None:
        """Remember ``response`` durably; prunes expired and excess entries now and then."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                (topic, key, fingerprint, orjson.dumps(response), _now_ms()),
            )
            self._puts += 1
            if self._puts % _PRUNE_EVERY == 1:
                self._prune()
            self._db.commit()

    def _prune(self) -> None:
        self._db.execute("DELETE FROM responses WHERE created_ms < ?", (_now_ms() - self.ttl_ms,))
        self._db.execute(
            "DELETE FROM responses WHERE rowid IN (SELECT rowid FROM responses"
            " ORDER BY created_ms DESC LIMIT -1 OFFSET ?)",
            (self.max_entries,),
        )

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._db.close()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
