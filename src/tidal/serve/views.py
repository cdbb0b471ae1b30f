"""Pull queries over materialized views: list, detail (paginated, filtered), key lookup.

The shape of faust's ``tables`` web app: a list view, a detail view and a key view, each a
small function, with a 404 helper that says which views exist.

- ``GET /views``: every view with its keys, columns and size;
- ``GET /views/{name}?limit=&offset=&COLUMN=VALUE``: rows sorted by key, filtered by
  equality on any column, paginated;
- ``GET /views/{name}/{key}``: the row of one key. Composite keys are given as path
  segments in key order (``/views/spend/c1/EUR``); for windowed views,
  ``/views/{name}/{key...}`` gives the key's rows of every window kept and
  ``/views/{name}/{key...}/{window_start}`` one window's row.

Values in paths and filters are text converted to the column's type (integers, floats,
``true``/``false``, ISO 8601 or epoch milliseconds for datetimes). Rows are JSON objects;
datetimes are ISO 8601 text, durations milliseconds, binary base64, NaN null.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
from fastapi import APIRouter, Request
from fastapi.responses import Response

from tidal.operators.view import WINDOW_COLUMN, View, ViewRegistry

from ._errors import RequestError

__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "frame_json", "parse_value", "row_texts",
           "view_or_404", "views_router"]

DEFAULT_PAGE = 100
MAX_PAGE = 10_000
_PAGING = ("limit", "offset")


def views_router(views: ViewRegistry) -> APIRouter:
    """The ``/views`` pull routes over ``views``."""
    router = APIRouter(prefix="/views", tags=["views"])

    # Small answers are computed on the event loop (``async def``): a hop to the thread pool
    # costs more than the lookup, and more still when the pipeline holds the GIL.
    @router.get("")
    async def list_views() -> Response:
        """Every view: name, key columns, windows kept, columns and types, rows, last change."""
        return _json({"views": [describe(v) for v in views.all()]})

    @router.get("/{name}")
    def view_rows(name: str, request: Request) -> Response:
        """The view's rows sorted by key: ``?limit=`` (default 100, at most 10,000),
        ``?offset=``, and ``?COLUMN=VALUE`` filters (equality; all must hold)."""
        view = view_or_404(views, name)
        frame = view.frame
        params = request.query_params
        limit = _int_param(params.get("limit"), "limit", DEFAULT_PAGE, 0, MAX_PAGE)
        offset = _int_param(params.get("offset"), "offset", 0, 0, None)
        conditions = [
            _equals(frame, view, column, value)
            for column, value in params.multi_items() if column not in _PAGING
        ]
        if conditions:
            frame = frame.filter(conditions)
        if frame.height:
            frame = frame.sort(view.row_keys, nulls_last=True)
        page = frame.slice(offset, limit)
        return _raw(
            f'{{"view":{_dumps(view.name)},"seq":{view.seq},"total":{frame.height},'
            f'"offset":{offset},"limit":{limit},"rows":{frame_json(page)}}}'
        )

    @router.get("/{name}/{key:path}")
    async def view_key(name: str, key: str) -> Response:
        """The row of one key (segments in key order; for a windowed view, the key alone
        gives every kept window's row, newest first, and ``.../{window_start}`` one row)."""
        view = view_or_404(views, name)
        parts = key.split("/")
        frame = view.frame
        if len(parts) == len(view.row_keys):
            columns = view.row_keys
        elif view.windows is not None and len(parts) == len(view.keys):
            columns = view.keys
        else:
            raise RequestError(
                400,
                f"view {name!r} is keyed by {_key_text(view)}: give "
                f"{_segments_text(view)} as path segments, not {len(parts)} "
                f"({key!r})",
            )
        conditions = [_equals(frame, view, c, v) for c, v in zip(columns, parts, strict=True)]
        key_json = _dumps(dict(zip(columns, parts, strict=True)))
        if columns is view.keys and view.windows is not None:
            match = frame.filter(conditions).sort(WINDOW_COLUMN, descending=True, nulls_last=True)
            if match.height == 0:
                raise RequestError(404, f"view {name!r} has no row for key {key!r}", key=key)
            return _raw(f'{{"view":{_dumps(name)},"key":{key_json},"rows":{frame_json(match)}}}')
        values = [parse_value(v, frame.schema[c], c) for c, v in zip(columns, parts, strict=True)]
        row = view.row_text(values[0] if len(values) == 1 else tuple(values), row_texts)
        if row is None:
            raise RequestError(404, f"view {name!r} has no row for key {key!r}", key=key)
        return _raw(f'{{"view":{_dumps(name)},"key":{key_json},"row":{row}}}')

    return router


def describe(view: View) -> dict[str, Any]:
    """A view's description as ``GET /views`` lists it."""
    frame = view.frame
    return {
        "name": view.name,
        "keys": view.keys,
        "row_keys": view.row_keys,
        "windows": view.windows,
        "columns": {c: str(t) for c, t in frame.schema.items()},
        "rows": frame.height,
        "seq": view.seq,
        "updated_ms": view.updated_ms or None,
        "subscribers": view.subscribers,
    }


def view_or_404(views: ViewRegistry, name: str) -> View:
    """The view ``name``, or a 404 listing the views there are."""
    view = views.get(name)
    if view is None:
        have = views.names()
        raise RequestError(
            404,
            f"view {name!r} does not exist; "
            + (f"the views are {', '.join(have)}" if have else
               "no views yet (a flow makes one with stream.to_view(name, key=...))"),
        )
    return view


# -- values ----------------------------------------------------------------------------------
def parse_value(text: str, dtype: pl.DataType, column: str) -> Any:
    """``text`` (from a URL) as a value of ``dtype``; a 400 saying why when it is not one."""
    try:
        if dtype.is_integer():
            return int(text)
        if dtype.is_float():
            return float(text)
        if dtype == pl.Boolean:
            low = text.lower()
            if low in ("true", "1"):
                return True
            if low in ("false", "0"):
                return False
            raise ValueError(text)
        if isinstance(dtype, pl.Datetime):
            return _parse_datetime(text, dtype)
        if dtype == pl.Date:
            return dt.date.fromisoformat(text)
        if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
            return text
        return pl.Series([text]).cast(dtype, strict=True)[0]
    except (ValueError, OverflowError, pl.exceptions.PolarsError):
        raise RequestError(
            400, f"column {column!r} holds {dtype}; {text!r} is not such a value"
            + ("; give epoch milliseconds or ISO 8601" if isinstance(dtype, pl.Datetime) else ""),
        ) from None


def _parse_datetime(text: str, dtype: pl.Datetime) -> dt.datetime:
    if text.lstrip("-").isdigit():
        value = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=int(text))
    else:
        value = dt.datetime.fromisoformat(text)
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
    if dtype.time_zone is None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _equals(frame: pl.DataFrame, view: View, column: str, text: str) -> pl.Expr:
    if column not in frame.schema:
        if frame.width == 0:
            raise RequestError(404, f"view {view.name!r} has no rows yet")
        raise RequestError(
            400, f"view {view.name!r} has no column {column!r}; its columns are "
            f"{', '.join(frame.columns)} (limit and offset page the rows)",
        )
    return pl.col(column) == pl.lit(parse_value(text, frame.schema[column], column),
                                    dtype=frame.schema[column])


def _int_param(text: str | None, name: str, default: int, low: int, high: int | None) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high:,}" if high is not None else f"{low} or more"
        raise RequestError(400, f"{name} must be an integer {bound}, not {text!r}")
    return value


def _key_text(view: View) -> str:
    return ", ".join(view.row_keys)


def _segments_text(view: View) -> str:
    n = len(view.row_keys)
    if view.windows is not None:
        return f"{len(view.keys)} or {n}"
    return str(n)


# -- JSON ------------------------------------------------------------------------------------
def frame_json(frame: pl.DataFrame) -> str:
    """``frame`` as a JSON array of objects, encoded by Polars (no Python loop over rows):
    datetimes as ISO 8601 text, durations as milliseconds, binary as base64, NaN as null."""
    if frame.width == 0:
        return "[]"
    return _jsonable(frame).write_json()


def row_texts(frame: pl.DataFrame) -> list[str]:
    """Each row of ``frame`` as JSON object text (the same encoding as :func:`frame_json`),
    for the views' key index."""
    return _jsonable(frame).select(pl.struct(pl.all()).struct.json_encode()).to_series().to_list()


def _jsonable(frame: pl.DataFrame) -> pl.DataFrame:
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            fmt = {"ms": "%.3f", "us": "%.6f", "ns": "%.9f"}[dtype.time_unit or "us"]
            tz = "%:z" if dtype.time_zone else ""
            exprs.append(col.dt.to_string(f"%Y-%m-%dT%H:%M:%S{fmt}{tz}"))
        elif isinstance(dtype, pl.Duration):
            exprs.append(col.dt.total_milliseconds())
        elif dtype == pl.Binary:
            exprs.append(col.bin.encode("base64"))
        elif isinstance(dtype, pl.Decimal):
            exprs.append(col.cast(pl.Float64))
        elif dtype == pl.Object:
            exprs.append(col.map_elements(str, return_dtype=pl.String))
    return frame.with_columns(exprs) if exprs else frame


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), default=str)


def _json(value: Any) -> Response:
    return _raw(_dumps(value))


def _raw(text: str) -> Response:
    return Response(text, media_type="application/json")
