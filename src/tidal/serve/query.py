"""``POST /query``: read-only SQL over the materialized views, run by DuckDB.

Nothing but the views is reachable. The database is an in-memory DuckDB opened with

- ``enable_external_access = false``: no files, URLs, ``ATTACH``, ``COPY``, extension
  installs or external extension loads;
- extension auto-install and auto-load off, community extensions off;
- ``python_enable_replacements = false``: Python variables are not tables;
- ``max_temp_directory_size = 0B``: nothing spills to disk;
- ``lock_configuration = true``: a query cannot change any of that.

Each query runs on its own cursor where the current frame of every view is registered as
an Arrow table under the view's name (zero copy), so a query sees one consistent version of
each view. Only a single ``SELECT`` statement is accepted (``WITH``, ``UNION`` and the like
included); anything else is refused with 400 before it runs, and so is a query DuckDB
refuses (a file read, a syntax error), with DuckDB's reason. A query running longer than
``timeout_s`` is interrupted (408); results are capped at ``max_rows`` rows
(``"truncated": true`` says when more were cut).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import anyio.to_thread
import duckdb
import polars as pl
import pyarrow as pa
from fastapi import APIRouter, Request
from fastapi.responses import Response

from tidal.operators.view import ViewRegistry

from ._body import read_body
from ._errors import RequestError
from .views import frame_json

__all__ = ["DEFAULT_MAX_QUERY_BYTES", "DEFAULT_MAX_ROWS", "DEFAULT_TIMEOUT_S", "SqlEngine",
           "query_router"]

DEFAULT_MAX_ROWS = 10_000
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_QUERY_BYTES = 64 << 10

LOCKED_CONFIG: dict[str, Any] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "python_enable_replacements": False,
    "max_temp_directory_size": "0B",
    "lock_configuration": True,
}


class QueryRefused(Exception):
    """The SQL is not a single read-only SELECT, or DuckDB refused it; the message says why."""


class QueryTimeout(Exception):
    """The query ran past its time limit and was interrupted."""


class SqlEngine:
    """Runs read-only SQL over the views of ``views`` in a locked-down DuckDB.

    >>> import polars as pl
    >>> from tidal.operators.view import View, ViewRegistry
    >>> views = ViewRegistry(); v = View("t", ["k"]); views.add(v)
    >>> _ = v.upsert(pl.DataFrame({"k": ["a", "b"], "n": [1, 2]}))
    >>> SqlEngine(views).run("SELECT sum(n) AS n FROM t")[0].to_dicts()
    [{'n': 3}]
    >>> SqlEngine(views).run("COPY t TO 'x.csv'")
    Traceback (most recent call last):
    tidal.serve.query.QueryRefused: only a single SELECT statement is allowed; this is a COPY statement
    """

    def __init__(self, views: ViewRegistry, *, threads: int = 2, memory_limit: str = "1GB",
                 max_rows: int = DEFAULT_MAX_ROWS, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.views = views
        self.max_rows = max_rows
        self.timeout_s = timeout_s
        self._db = duckdb.connect(
            ":memory:", config={"threads": threads, "memory_limit": memory_limit, **LOCKED_CONFIG}
        )

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def run(self, sql: str) -> tuple[pl.DataFrame, bool]:
        """The result of ``sql`` (at most ``max_rows`` rows) and whether rows were cut."""
        cursor = self._db.cursor()
        try:
            try:
                statements = cursor.extract_statements(sql)
            except duckdb.Error as e:
                raise QueryRefused(_reason(e)) from None
            if len(statements) != 1:
                raise QueryRefused(
                    f"send exactly one SELECT statement, not {len(statements)}"
                    + (" (is there a stray ';'?)" if len(statements) > 1 else "")
                )
            kind = statements[0].type
            if kind != duckdb.StatementType.SELECT:
                raise QueryRefused(
                    f"only a single SELECT statement is allowed; this is a "
                    f"{kind.name} statement"
                )
            for view in self.views.all():
                frame = view.frame
                cursor.register(view.name, frame.to_arrow() if frame.width else pa.table(
                    {k: pa.array([], pa.null()) for k in view.row_keys}))
            timer = threading.Timer(self.timeout_s, cursor.interrupt)
            timer.start()
            try:
                reader = cursor.execute(sql).to_arrow_reader(8192)
                batches, rows, truncated = [], 0, False
                for batch in reader:
                    batches.append(batch)
                    rows += batch.num_rows
                    if rows > self.max_rows:
                        truncated = True
                        break
                table = pa.Table.from_batches(batches, schema=reader.schema)
            except duckdb.InterruptException:
                raise QueryTimeout(
                    f"the query ran longer than {self.timeout_s:g} s and was stopped"
                ) from None
            except duckdb.Error as e:
                raise QueryRefused(_reason(e)) from None
            finally:
                timer.cancel()
        finally:
            cursor.close()
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return _plain_numbers(frame.head(self.max_rows)), truncated


def _plain_numbers(frame: pl.DataFrame) -> pl.DataFrame:
    # DuckDB sums integers into HUGEINT (a Decimal here): give JSON clients integers back
    # when they fit, floats otherwise.
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Decimal):
            column = frame.get_column(name)
            try:
                if dtype.scale != 0:
                    raise pl.exceptions.InvalidOperationError("has a fraction")
                column = column.cast(pl.Int64, strict=True)
            except pl.exceptions.PolarsError:
                column = column.cast(pl.Float64)
            frame = frame.with_columns(column)
    return frame


def _reason(e: duckdb.Error) -> str:
    return str(e).strip()


def query_router(engine: SqlEngine, *, max_body_bytes: int = DEFAULT_MAX_QUERY_BYTES) -> APIRouter:
    """``POST /query`` over ``engine``; bodies above ``max_body_bytes`` get 413."""
    router = APIRouter(tags=["query"])

    @router.post(
        "/query",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object", "required": ["sql"],
                       "properties": {"sql": {"type": "string"}}},
            "example": {"sql": "SELECT card, total FROM card_totals ORDER BY total DESC LIMIT 5"},
        }}}},
    )
    async def query(request: Request) -> Response:
        """Run one read-only SELECT over the views (each a table named like the view).

        Answers ``{"columns": [...], "types": [...], "rows": [{...}], "truncated": bool}``;
        400 with the reason for anything but a single SELECT over the views."""
        body = await read_body(request, max_body_bytes)
        sql = _sql_of(body)
        try:
            frame, truncated = await anyio.to_thread.run_sync(engine.run, sql)
        except QueryRefused as e:
            raise RequestError(400, f"query refused: {e}") from None
        except QueryTimeout as e:
            raise RequestError(408, str(e)) from None
        text = (
            f'{{"columns":{json.dumps(frame.columns)},'
            f'"types":{json.dumps([str(t) for t in frame.dtypes])},'
            f'"rows":{frame_json(frame)},"truncated":{json.dumps(truncated)}}}'
        )
        return Response(text, media_type="application/json")

    return router


def _sql_of(body: bytes) -> str:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RequestError(
            400, 'send a JSON object {"sql": "SELECT ..."} (the body is not JSON)'
        ) from None
    sql = payload.get("sql") if isinstance(payload, dict) else None
    if not isinstance(sql, str) or not sql.strip():
        raise RequestError(400, 'send a JSON object {"sql": "SELECT ..."} with a non-empty sql')
    return sql
