"""Request bodies (a JSON array, NDJSON or CSV) parsed into one Arrow table, vectorized.

A body is parsed whole by a columnar reader (Arrow's JSON reader, Polars' CSV reader);
only when that fails is it walked line by line, to name the first bad line in the error.
Either every row of a body becomes part of the table or the body is refused.

>>> parse_body(b'{"user": "ann", "n": 1}\\n\\n{"user": "max", "n": 2}\\n', "ndjson").to_pylist()
[{'user': 'ann', 'n': 1}, {'user': 'max', 'n': 2}]
>>> parse_body(b'user,n\\nann,1\\n', "csv").to_pylist()
[{'user': 'ann', 'n': 1}]
>>> parse_body(b'{"n": 1}\\n{"n": \\n', "ndjson")
Traceback (most recent call last):
...
tidal.serve._formats.BodyError: line 2 is not valid JSON: unexpected end of data at column 7
"""

from __future__ import annotations

import csv
import io
import re
from typing import Literal

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json

from tidal.errors import TidalError

Format = Literal["json", "ndjson", "csv"]

NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines",
     "application/jsonlines"}
)
SNIFFED_TYPES = frozenset(
    {"", "text/plain", "application/octet-stream", "application/x-www-form-urlencoded"}
)
_ROW_RE = re.compile(r"in row (\d+)")
_COLUMN_RE = re.compile(r"Column\(/?([^)]*)\)")


class BodyError(TidalError, ValueError):
    """A request body that cannot be turned into rows; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


class UnsupportedFormatError(TidalError, ValueError):
    """The request's Content-Type names a format the endpoint does not read."""


def body_format(content_type: str | None, body: bytes) -> Format:
    """The format of a body, from its Content-Type, else from its first non-blank byte.

    ``application/json`` holding a top-level array is a JSON array, holding objects is
    read as NDJSON (one object is a one-line NDJSON body). Bodies sent without a useful
    type (none, ``text/plain``, ``application/octet-stream``, or curl's default
    ``application/x-www-form-urlencoded``) are sniffed the same way.

    >>> body_format("application/x-ndjson; charset=utf-8", b"{}")
    'ndjson'
    >>> body_format(None, b'  [{"a": 1}]')
    'json'
    """
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime in NDJSON_TYPES:
        return "ndjson"
    if mime in ("text/csv", "application/csv"):
        return "csv"
    if mime == "application/json" or mime in SNIFFED_TYPES:
        first = body.lstrip()[:1]
        if first == b"[":
            return "json"
        if first == b"{" or (not first and mime == "application/json"):
            return "ndjson"
        if not first:
            return "ndjson"  # an empty body: no rows in any format
        raise UnsupportedFormatError(
            f"cannot tell the format of a body starting with {first!r} sent as "
            f"{mime or 'no Content-Type'}; send Content-Type: application/json (an array of "
            f"objects), application/x-ndjson (one object per line) or text/csv (a header line)"
        )
    raise UnsupportedFormatError(
        f"Content-Type {mime!r} is not supported; send application/json (an array of "
        f"objects), application/x-ndjson (one object per line) or text/csv (a header line)"
    )


def parse_body(body: bytes, fmt: Format) -> pa.Table:
    """All rows of ``body`` as one Arrow table, or :class:`BodyError` naming what is wrong."""
    _check_utf8(body)
    if fmt == "csv":
        return _parse_csv(body)
    if fmt == "json":
        body = _array_to_ndjson(body)
    return _parse_ndjson(body)


def _check_utf8(body: bytes) -> None:
    # Arrow's JSON reader copies string bytes without validating them; refuse bad text here
    # rather than store a string column that readers cannot decode.
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as e:
        line = body.count(b"\n", 0, e.start) + 1
        raise BodyError(f"line {line} is not valid UTF-8 (byte {e.start} of the body)", line) from None


# -- NDJSON ----------------------------------------------------------------------------------


def _read_ndjson(body: bytes, schema: pa.Schema | None = None) -> pa.Table:
    # One block and one thread: the server handles many bodies at once, and a single block
    # keeps Arrow's "row N" in errors relative to the whole body.
    return pa_json.read_json(
        io.BytesIO(body),
        read_options=pa_json.ReadOptions(use_threads=False, block_size=max(len(body), 1 << 16)),
        parse_options=pa_json.ParseOptions(explicit_schema=schema),
    )


def _parse_ndjson(body: bytes) -> pa.Table:
    if not body.strip():
        return pa.table({})
    try:
        table = _read_ndjson(body)
    except pa.ArrowInvalid as e:
        raise _ndjson_error(body, e) from None
    if _has_timestamp(table.schema):
        # Arrow turns whole-second ISO 8601 strings into timestamps, but not ones with a
        # fraction, so the type of a field would depend on the data; keep text as text.
        table = _read_ndjson(body, pa.schema([f.with_type(_no_timestamps(f.type))
                                              for f in table.schema]))
    if table.num_columns == 0:
        raise BodyError("the records have no fields; send JSON objects with at least one field")
    return table


def _has_timestamp(schema: pa.Schema) -> bool:
    return any(_no_timestamps(f.type) != f.type for f in schema)


def _no_timestamps(t: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(t):
        return pa.string()
    if pa.types.is_struct(t):
        return pa.struct([t.field(i).with_type(_no_timestamps(t.field(i).type))
                          for i in range(t.num_fields)])
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_no_timestamps(t.value_type)))
    return t


def _ndjson_error(body: bytes, error: Exception) -> BodyError:
    """The first bad line of an NDJSON body, found by checking line by line."""
    row = -1
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        row += 1
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            return BodyError(
                f"line {number} is not valid JSON: {e.msg} at column {e.colno}", number
            )
        if not isinstance(value, dict):
            return BodyError(
                f"line {number} holds a JSON {_json_type(value)}; every line must be an object",
                number,
            )
        m = _ROW_RE.search(str(error))
        if m and int(m.group(1)) == row:  # Arrow counts non-blank rows from 0
            return BodyError(f"line {number}: {_arrow_reason(error)}", number)
    return BodyError(f"the body is not valid NDJSON: {_arrow_reason(error)}")


def _arrow_reason(error: Exception) -> str:
    text = str(error).removeprefix("JSON parse error: ")
    text = _ROW_RE.sub("", text).strip().removesuffix(".")
    text = _COLUMN_RE.sub(lambda m: f"field {m.group(1).replace('/', '.')!r}", text)
    if "changed from" in text:
        text += " (a field must keep one JSON type in all records of a body)"
    return text


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


# -- JSON array ------------------------------------------------------------------------------


def _array_to_ndjson(body: bytes) -> bytes:
    """A JSON array of objects (or one object) re-encoded as NDJSON for the columnar reader."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BodyError(
            f"the body is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}", e.lineno
        ) from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise BodyError(
            f"the body is a JSON {_json_type(value)}; send an array of objects, one per record"
        )
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise BodyError(
                f"element {i} of the array is a JSON {_json_type(item)}; every element must "
                f"be an object"
            )
    return b"\n".join(map(orjson.dumps, value))


# -- CSV -------------------------------------------------------------------------------------


def _parse_csv(body: bytes) -> pa.Table:
    if not body.strip():
        return pa.table({})
    try:
        frame = pl.read_csv(body, infer_schema_length=None)
    except pl.exceptions.PolarsError as e:
        raise _csv_error(body, e) from None
    return frame.to_arrow()


def _csv_error(body: bytes, error: Exception) -> BodyError:
    """The first line whose field count differs from the header's, else Polars' reason."""
    try:
        rows = csv.reader(io.StringIO(body.decode("utf-8"), newline=""))
        header = next(rows)
        for row in rows:
            if row and len(row) != len(header):
                line = rows.line_num
                return BodyError(
                    f"line {line} has {len(row)} fields but the header line has {len(header)}",
                    line,
                )
    except csv.Error as e:
        return BodyError(f"the body is not valid CSV: {e}")
    reason = str(error).strip().split("\n", 1)[0]
    return BodyError(f"the body is not valid CSV: {reason}")
