"""SQLite, the embedded database for results: append rows, or upsert the latest row per key."""

from __future__ import annotations

import os
import sqlite3
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from tidal.connectors.base import SinkContext, TransactionalSink
from tidal.errors import ConfigError, SinkError
from tidal.operators.changelog import DELETE, split_deletes

__all__ = ["Sqlite", "sqlite"]


def _sql_type(dtype: pl.DataType) -> str:
    if dtype.is_integer() or dtype == pl.Boolean:
        return "INTEGER"
    if dtype.is_float() or dtype.is_decimal():
        return "REAL"
    if dtype == pl.Binary:
        return "BLOB"
    return "TEXT"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _value(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, list | dict):
        return orjson.dumps(v, default=str).decode()
    return v


class Sqlite(TransactionalSink):
    """Writes rows to ``table`` in the SQLite database at ``path``.

    Without ``key`` rows are appended; with ``key`` (a column or list of columns) the table
    keeps the latest row per key (``INSERT ... ON CONFLICT DO UPDATE``), and rows marked
    deleted (:mod:`tidal.operators.changelog`) remove their key's row. The table is
    created from the first batch's columns when it does not exist. Each batch is
    written in its own short transaction (several sinks may share a database file). With
    checkpoints, each checkpoint's rows and its id (in
    table ``_tidal_commits``) are committed in one transaction: exactly once.
    """

    name = "sqlite"

    def __init__(self, path: str | os.PathLike[str], table: str, key: str | list[str] | None) -> None:
        if not table or not table.replace("_", "").isalnum():
            raise ConfigError(f"bad SQLite table name {table!r}: use letters, digits and '_'")
        self.path = Path(path)
        self.table = table
        self.key = [key] if isinstance(key, str) else list(key or [])
        self.conn: sqlite3.Connection | None = None
        self.sql: str | None = None
        self.columns: list[str] = []

    def open(self, ctx: SinkContext) -> None:
        self.exactly_once = ctx.exactly_once
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
        except (OSError, sqlite3.Error) as exc:
            raise SinkError(f"sink {ctx.sink!r} cannot open SQLite database {str(self.path)!r}: {exc}") from exc

    def _prepare(self, batch: pl.DataFrame) -> None:
        assert self.conn is not None
        missing = [k for k in self.key if k not in batch.columns]
        if missing:
            raise SinkError(f"sqlite sink {self.table!r}: key column(s) {missing} not in the rows ({batch.columns})")
        cols = ", ".join(f"{_quote(c)} {_sql_type(t)}" for c, t in batch.schema.items())
        pk = f", PRIMARY KEY ({', '.join(map(_quote, self.key))})" if self.key else ""
        self.conn.execute(f"CREATE TABLE IF NOT EXISTS {_quote(self.table)} ({cols}{pk})")
        self.columns = batch.columns
        names = ", ".join(map(_quote, self.columns))
        marks = ", ".join("?" * len(self.columns))
        self.sql = f"INSERT INTO {_quote(self.table)} ({names}) VALUES ({marks})"
        if self.key:
            updates = ", ".join(f"{_quote(c)} = excluded.{_quote(c)}" for c in self.columns if c not in self.key)
            action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
            self.sql += f" ON CONFLICT ({', '.join(map(_quote, self.key))}) {action}"

    def write(self, batch: pl.DataFrame) -> None:
        self._insert(batch)
        if not self.exactly_once:
            self.conn.commit()  # type: ignore[union-attr]

    def _insert(self, batch: pl.DataFrame) -> None:
        gone = None
        if DELETE in batch.columns:  # an updating result that removes keys
            if not self.key:
                raise SinkError(f"sqlite sink {self.table!r}: the rows delete keys ({DELETE!r} "
                                "column); give the sink key= (SQL: PRIMARY KEY) to apply them")
            batch, gone = split_deletes(batch, self.key)
        if self.sql is None:
            self._prepare(batch)
        assert self.conn is not None and self.sql is not None
        if gone is not None and gone.height:
            where = " AND ".join(f"{_quote(k)} IS ?" for k in self.key)
            try:
                self.conn.executemany(f"DELETE FROM {_quote(self.table)} WHERE {where}",
                                      (tuple(map(_value, r)) for r in gone.iter_rows()))
            except sqlite3.Error as exc:
                raise SinkError(f"sqlite sink {self.table!r} in {str(self.path)!r}: {exc}") from exc
        batch = batch.select(self.columns)
        nested = [c for c, t in batch.schema.items() if t.is_nested() or t.is_temporal()]
        rows = batch.iter_rows() if not nested else (tuple(map(_value, r)) for r in batch.iter_rows())
        try:
            self.conn.executemany(self.sql, rows)
        except sqlite3.Error as exc:
            raise SinkError(f"sqlite sink {self.table!r} in {str(self.path)!r}: {exc}") from exc

    def flush(self) -> None:
        if self.conn is not None:
            self.conn.commit()

    def _commits_table(self) -> None:
        assert self.conn is not None
        self.conn.execute("CREATE TABLE IF NOT EXISTS _tidal_commits "
                          "(tbl TEXT PRIMARY KEY, checkpoint INTEGER NOT NULL)")

    def committed_checkpoint(self) -> int | None:
        assert self.conn is not None
        self._commits_table()
        row = self.conn.execute("SELECT checkpoint FROM _tidal_commits WHERE tbl = ?",
                                (self.table,)).fetchone()
        return None if row is None else int(row[0])

    def apply(self, rows: pl.DataFrame, checkpoint_id: int) -> None:
        assert self.conn is not None
        if (self.committed_checkpoint() or 0) >= checkpoint_id:
            return
        with self.conn:  # one transaction: the rows and the checkpoint id, or neither
            if rows.height:
                self._insert(rows)
            self.conn.execute(
                "INSERT INTO _tidal_commits (tbl, checkpoint) VALUES (?, ?) "
                "ON CONFLICT (tbl) DO UPDATE SET checkpoint = excluded.checkpoint",
                (self.table, checkpoint_id),
            )

    def close(self) -> None:
        if self.conn is not None:
            self.conn.commit()
            self.conn.close()
            self.conn = None


def sqlite(path: str | os.PathLike[str], table: str, key: str | list[str] | None = None) -> Sqlite:
    """Write rows to a SQLite table; ``key`` makes it an upsert (latest row per key)."""
    return Sqlite(path, table, key)
