"""PostgreSQL: a sink that appends or upserts rows, exactly once with checkpoints, and a
source reading a table (or query) snapshot and then its new rows.

Sink: each batch goes to the server in one ``COPY`` (rows encoded as CSV by Polars, column
by column). Without ``key`` it is copied straight into the table; with ``key`` it is copied
into a temporary table and merged with ``INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE``
(the last row of a key in a batch wins), and rows of an updating result that delete their
key (``__delete``, :mod:`tidal.operators.changelog`) ``DELETE`` its row. The table is
created from the first batch's columns when it does not exist. With checkpoints the sink is transactional: a
checkpoint's rows and its id (table ``_tidal_commits``) are committed in one transaction,
so after any crash every row is in the table exactly once.

Source: reads ``SELECT ... WHERE <incrementing_column> > <last value> ORDER BY it`` in pages,
every ``poll_interval``, in a background thread. Its position is the last value seen, so a
restarted flow continues after it.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import polars as pl

from tidal._time import duration_ms
from tidal.connectors.base import (
    SinkContext,
    Source,
    SourceContext,
    SourcePartition,
    TransactionalSink,
)
from tidal.connectors.mqtt import json_text
from tidal.errors import ConfigError, SinkError, SourceError
from tidal.operators.changelog import DELETE, split_deletes

__all__ = ["PostgresSink", "PostgresSource"]

_PAGE = 50_000


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigError("the PostgreSQL connector needs psycopg 3: "
                          "pip install 'tidal[postgres]'") from exc
    return psycopg


def _address(dsn: str) -> str:
    """``host:port/dbname`` of a connection string, for messages (never the password)."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - only used to word a message
        return "the configured server"
    return f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}/{info.get('dbname') or ''}"


def _connect(dsn: str, timeout: float, what: str, error: type[Exception]) -> Any:
    psycopg = _psycopg()
    try:
        return psycopg.connect(dsn, connect_timeout=max(1, round(timeout)))
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise error(f"{what} cannot connect to PostgreSQL at {_address(dsn)}: {reason}; check "
                    "the connection string and that the server is running") from exc


def _table_ident(table: str) -> Any:
    from psycopg import sql

    parts = table.split(".")
    if len(parts) > 2 or not all(parts):
        raise ConfigError(f"bad PostgreSQL table name {table!r}: write 'table' or 'schema.table'")
    return sql.Identifier(*parts)


def _pg_type(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "BOOLEAN"
    if dtype in (pl.Int8, pl.Int16, pl.UInt8):
        return "SMALLINT"
    if dtype in (pl.Int32, pl.UInt16):
        return "INTEGER"
    if dtype in (pl.Int64, pl.UInt32):
        return "BIGINT"
    if dtype.is_integer() or dtype.is_decimal():
        return "NUMERIC"
    if dtype == pl.Float32:
        return "REAL"
    if dtype.is_float():
        return "DOUBLE PRECISION"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    if dtype == pl.Date:
        return "DATE"
    if dtype == pl.Time:
        return "TIME"
    if isinstance(dtype, pl.Duration):
        return "INTERVAL"
    if dtype == pl.Binary:
        return "BYTEA"
    if dtype.is_nested():
        return "JSONB"
    return "TEXT"


def _csv(batch: pl.DataFrame) -> bytes:
    """The rows as CSV for ``COPY ... (FORMAT csv)``: NULL is an empty unquoted field."""
    fixes = []
    for c, t in batch.schema.items():
        if t == pl.Binary:
            fixes.append(pl.concat_str(pl.lit("\\x"), pl.col(c).bin.encode("hex")).alias(c))
        elif t.is_nested():
            fixes.append(json_text(c))
        elif isinstance(t, pl.Duration):
            fixes.append((pl.col(c).dt.total_microseconds().cast(pl.String) + " microseconds").alias(c))
    if fixes:
        batch = batch.with_columns(fixes)
    return batch.write_csv(include_header=False).encode()


class PostgresSink(TransactionalSink):
    """Appends or upserts rows into a PostgreSQL table; see the module docstring."""

    name = "postgres"

    def __init__(self, dsn: str, table: str, key: str | list[str] | None,
                 connect_timeout: float) -> None:
        self.dsn = dsn
        self.table = table
        self.ident = _table_ident(table)
        self.key = [key] if isinstance(key, str) else list(key or [])
        self.connect_timeout = connect_timeout
        self.conn: Any = None
        self.columns: list[str] = []
        self.commit_key = table
        self.exactly_once = False

    def open(self, ctx: SinkContext) -> None:
        self.exactly_once = ctx.exactly_once
        self.commit_key = f"{ctx.flow}/{self.table}"
        self.conn = _connect(self.dsn, self.connect_timeout, f"sink {ctx.sink!r}", SinkError)

    def _where(self) -> str:
        return f"postgres sink {self.table!r} at {_address(self.dsn)}"

    def _prepare(self, batch: pl.DataFrame) -> None:
        from psycopg import sql

        missing = [k for k in self.key if k not in batch.columns]
        if missing:
            raise SinkError(f"{self._where()}: key column(s) {missing} not in the rows ({batch.columns})")
        cols = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_pg_type(t))) for c, t in batch.schema.items())
        pk = (sql.SQL(", PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, self.key)))
              if self.key else sql.SQL(""))
        with self.conn.transaction():
            self.conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}{})").format(self.ident, cols, pk))
        self.columns = batch.columns
        names = sql.SQL(", ").join(map(sql.Identifier, self.columns))
        if not self.key:
            self.copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(self.ident, names)
            return
        # a session-lifetime staging table shaped like the batch, emptied at every commit
        self.stage = sql.Identifier(f"_tidal_stage_{abs(hash(self.table)) % 10**8}")
        with self.conn.transaction():
            self.conn.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS")
                              .format(self.stage, sql.SQL(", ").join(
                                  sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_pg_type(t)))
                                  for c, t in batch.schema.items())))
        self.copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(self.stage, names)
        updates = [c for c in self.columns if c not in self.key]
        action = (sql.SQL("DO UPDATE SET {}").format(sql.SQL(", ").join(
            sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in updates))
            if updates else sql.SQL("DO NOTHING"))
        self.merge_sql = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) {}").format(
            self.ident, names, names, self.stage,
            sql.SQL(", ").join(map(sql.Identifier, self.key)), action)

    def _insert(self, batch: pl.DataFrame) -> None:
        """COPY (and merge) ``batch`` inside the current transaction; rows marked deleted
        (:mod:`tidal.operators.changelog`) delete their key's row."""
        gone = None
        if DELETE in batch.columns:
            if not self.key:
                raise SinkError(f"{self._where()}: the rows delete keys ({DELETE!r} column); "
                                "give the sink key= (SQL: PRIMARY KEY) to apply them")
            batch, gone = split_deletes(batch, self.key)
        if not self.columns:
            self._prepare(batch)
        missing = [c for c in self.columns if c not in batch.columns]
        if missing:
            raise SinkError(f"{self._where()}: the rows lack column(s) {missing} that earlier "
                            f"rows had ({self.columns})")
        batch = batch.select(self.columns)
        if self.key:
            batch = batch.unique(subset=self.key, keep="last", maintain_order=True)
        psycopg = _psycopg()
        try:
            with self.conn.cursor() as cur:
                with cur.copy(self.copy_sql) as copy:
                    copy.write(_csv(batch))
                if self.key:
                    cur.execute(self.merge_sql)
                if gone is not None and gone.height:
                    cur.executemany(self._delete_sql(), gone.rows())
        except psycopg.Error as exc:
            raise SinkError(f"{self._where()}: {exc}".rstrip()) from exc

    def _delete_sql(self) -> Any:
        from psycopg import sql

        return sql.SQL("DELETE FROM {} WHERE {}").format(self.ident, sql.SQL(" AND ").join(
            sql.SQL("{} IS NOT DISTINCT FROM %s").format(sql.Identifier(k)) for k in self.key))

    def write(self, batch: pl.DataFrame) -> None:
        if batch.height:
            self._insert(batch)

    def flush(self) -> None:
        if self.conn is not None and not self.exactly_once:
            self.conn.commit()

    def _commits_table(self) -> None:
        self.conn.execute("CREATE TABLE IF NOT EXISTS _tidal_commits "
                          "(sink TEXT PRIMARY KEY, checkpoint BIGINT NOT NULL)")

    def committed_checkpoint(self) -> int | None:
        with self.conn.transaction():
            self._commits_table()
            row = self.conn.execute("SELECT checkpoint FROM _tidal_commits WHERE sink = %s",
                                    (self.commit_key,)).fetchone()
        return None if row is None else int(row[0])

    def apply(self, rows: pl.DataFrame, checkpoint_id: int) -> None:
        """In one transaction: the rows and the checkpoint id, or neither (idempotent)."""
        with self.conn.transaction():
            self._commits_table()
            row = self.conn.execute("SELECT checkpoint FROM _tidal_commits WHERE sink = %s "
                                    "FOR UPDATE", (self.commit_key,)).fetchone()
            if row is not None and int(row[0]) >= checkpoint_id:
                return
            if rows.height:
                self._insert(rows)
            self.conn.execute(
                "INSERT INTO _tidal_commits (sink, checkpoint) VALUES (%s, %s) "
                "ON CONFLICT (sink) DO UPDATE SET checkpoint = EXCLUDED.checkpoint",
                (self.commit_key, checkpoint_id))

    def close(self) -> None:
        if self.conn is not None:
            try:
                if not self.conn.closed and not self.exactly_once:
                    self.conn.commit()
            finally:
                self.conn.close()
                self.conn = None


# -- source --------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


class PostgresSource(Source):
    """A table (or query) read as a snapshot, then its new rows; see the module docstring."""

    name = "postgres"

    def __init__(self, dsn: str, table: str | None, query: str | None, incrementing_column: str,
                 poll_interval: str | int | float, bounded: bool, connect_timeout: float) -> None:
        if (table is None) == (query is None):
            raise ConfigError("postgres source needs either a table or query=, not both")
        self.dsn, self.table, self.query = dsn, table, query
        self.column = incrementing_column
        self.interval_s = duration_ms(poll_interval, "poll_interval") / 1000
        self.is_bounded = bounded
        self.connect_timeout = connect_timeout
        if table is not None:
            _table_ident(table)

    def partitions(self) -> list[str]:
        return [self.table or "query"]

    @property
    def bounded(self) -> bool:
        return self.is_bounded

    def open(self, partition: str, position: Any, ctx: SourceContext) -> SourcePartition:
        return _PostgresPartition(self, position, ctx)

    def _inner(self) -> Any:
        from psycopg import sql

        if self.table is not None:
            return sql.SQL("SELECT * FROM {}").format(_table_ident(self.table))
        return sql.SQL(self.query)  # type: ignore[arg-type]

    def select(self, resume: bool, bounded: bool) -> Any:
        """The page query: rows after ``%(after)s`` (when resuming), up to ``%(end)s`` (when
        bounded), in incrementing order."""
        from psycopg import sql

        col = sql.Identifier(self.column)
        where = [sql.SQL("{} > %(after)s").format(col)] if resume else []
        if bounded:
            where.append(sql.SQL("{} <= %(end)s").format(col))
        clause = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
        return sql.SQL("SELECT * FROM ({}) AS _q{} ORDER BY {} LIMIT %(limit)s").format(
            self._inner(), clause, col)

    def newest(self) -> Any:
        from psycopg import sql

        return sql.SQL("SELECT max({}) FROM ({}) AS _q").format(sql.Identifier(self.column),
                                                                 self._inner())


class _PostgresPartition(SourcePartition):
    def __init__(self, src: PostgresSource, position: Any, ctx: SourceContext) -> None:
        self.src, self.ctx = src, ctx
        self.last = position  # the last incrementing value returned by poll
        self.frames: deque[tuple[pl.DataFrame, Any]] = deque()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.error: Exception | None = None
        self.conn = _connect(src.dsn, src.connect_timeout, f"source {ctx.source!r}", SourceError)
        self.conn.autocommit = True
        self.end: Any = None
        if src.is_bounded:  # read up to the newest value present at start, then finish
            self.end = self._execute(src.newest(), {}).fetchone()[0]
        self.thread = threading.Thread(target=self._run, name=f"tidal-postgres-{ctx.source}",
                                       daemon=True)
        self.thread.start()

    def _execute(self, query: Any, params: dict[str, Any]) -> Any:
        psycopg = _psycopg()
        try:
            return self.conn.execute(query, params)
        except psycopg.Error as exc:
            raise SourceError(f"postgres source {self.ctx.source!r} at {_address(self.src.dsn)}: "
                              f"{str(exc).strip()}") from exc

    def _fetch(self, after: Any) -> tuple[pl.DataFrame, Any] | None:
        bounded = self.src.is_bounded
        query = self.src.select(after is not None, bounded)
        cur = self._execute(query, {"after": after, "end": self.end, "limit": _PAGE})
        rows = cur.fetchall()
        if not rows:
            return None
        names = [d.name for d in cur.description]
        if self.src.column not in names:
            raise SourceError(f"postgres source {self.ctx.source!r}: incrementing column "
                              f"{self.src.column!r} is not among the columns {names}")
        frame = pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)
        return frame, rows[-1][names.index(self.src.column)]

    def _run(self) -> None:
        after = self.last
        while not self.stop.is_set():
            if self.src.is_bounded and self.end is None:
                return  # an empty table
            try:
                got = self._fetch(after)
            except SourceError as exc:
                self.error = exc
                self.ctx.wake()
                return
            if got is not None:
                frame, after = got
                with self.lock:
                    self.frames.append((frame, after))
                self.ctx.wake()
                if frame.height == _PAGE:
                    continue  # more of the snapshot: no pause
            if self.src.is_bounded:
                return
            self.stop.wait(self.src.interval_s)

    def poll(self, max_rows: int) -> pl.DataFrame | None:
        if self.error is not None:
            raise self.error
        with self.lock:
            if not self.frames:
                return None
            frame, last = self.frames[0]
            if frame.height > max_rows:
                head = frame.head(max_rows)
                self.frames[0] = (frame.slice(max_rows), last)
                self.last = _jsonable(head[self.src.column][-1])
                return head
            self.frames.popleft()
        self.last = _jsonable(last)
        return frame

    @property
    def done(self) -> bool:
        return self.src.is_bounded and not self.thread.is_alive() and not self.frames

    def position(self) -> Any:
        return self.last

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        self.conn.close()
