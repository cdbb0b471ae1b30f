"""The ``/topics`` endpoints: list, describe, and ingest a body into a topic of the log.

``POST /topics/{name}`` parses the whole body into one Arrow table (see ``_formats``),
appends it with one ``Topic.append_batch`` call, waits until it is durable per the topic's
fsync policy, and answers with the offsets. A body is stored whole or not at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

import anyio.to_thread
import polars as pl
import pyarrow as pa
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from tidal._time import parse_iso8601
from tidal.log import NAME_RULE, InvalidNameError, Log, Topic, UnknownTopicError

from ._body import read_body
from ._errors import RequestError
from ._formats import BodyError, Format, UnsupportedFormatError, body_format, parse_body
from ._idempotency import IdempotencyStore

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY_RE = re.compile(r"[\x21-\x7e]{1,255}")


def topics_router(
    log: Log, *, max_body_bytes: int, idempotency: IdempotencyStore
) -> APIRouter:
    """The ``/topics`` routes over ``log``; bodies above ``max_body_bytes`` get 413."""
    router = APIRouter(prefix="/topics", tags=["topics"])
    locks = _KeyLocks()

    @router.get("")
    def list_topics() -> dict[str, list[str]]:
        """Names of all topics, sorted."""
        return {"topics": log.topics()}

    # ``{name:path}`` so that names holding "/" (``a%2Fb``, ``../x``) reach the name check
    # and get a 400 naming the rule instead of a bare "Not Found".
    @router.get("/{name:path}")
    def describe_topic(name: str) -> dict[str, Any]:
        """Partitions (offsets, sizes), settings, and consumer groups with their lag."""
        _lookup(log, name)
        d = log.describe(name)
        return {
            "name": d.name,
            "settings": d.settings,
            "partitions": [asdict(p) for p in d.partitions],
            "groups": [
                {**asdict(g), "total_lag": g.total_lag} for g in d.groups
            ],
            "size_bytes": d.size_bytes,
        }

    @router.post("/{name:path}")
    async def ingest(
        name: str,
        request: Request,
        key: str | None = Query(None, description="field whose value picks the partition"),
        timestamp: str | None = Query(
            None, description="field holding the event time (epoch ms or ISO 8601)"
        ),
        idempotency_key: str | None = Header(None, alias=IDEMPOTENCY_HEADER),
    ) -> JSONResponse:
        """Append every record of the body to topic ``name``; answer with the offsets."""
        topic = await anyio.to_thread.run_sync(_lookup, log, name)
        if idempotency_key is not None and not _KEY_RE.fullmatch(idempotency_key):
            raise RequestError(
                400, f"{IDEMPOTENCY_HEADER} must be 1 to 255 visible ASCII characters"
            )
        body = await read_body(request, max_body_bytes)
        try:
            fmt = body_format(request.headers.get("content-type"), body)
        except UnsupportedFormatError as e:
            raise RequestError(415, str(e)) from None
        if idempotency_key is None:
            response = await anyio.to_thread.run_sync(_ingest, topic, body, fmt, key, timestamp)
            return JSONResponse(response)
        fingerprint = _fingerprint(fmt, key, timestamp, body)
        async with locks.hold((name, idempotency_key)):
            seen = await anyio.to_thread.run_sync(idempotency.get, name, idempotency_key)
            if seen is not None:
                if seen.fingerprint != fingerprint:
                    raise RequestError(
                        422,
                        f"{IDEMPOTENCY_HEADER} {idempotency_key!r} was already used for a "
                        f"different request to topic {name!r}; use a new key for new data",
                    )
                return JSONResponse(seen.response, headers={REPLAYED_HEADER: "true"})
            response = await anyio.to_thread.run_sync(_ingest, topic, body, fmt, key, timestamp)
            await anyio.to_thread.run_sync(
                idempotency.put, name, idempotency_key, fingerprint, response
            )
        return JSONResponse(response)

    return router


def _lookup(log: Log, name: str) -> Topic:
    try:
        return log.topic(name)
    except InvalidNameError:
        raise RequestError(400, f"invalid topic name {name!r}: {NAME_RULE}") from None
    except UnknownTopicError:
        raise RequestError(
            404,
            f"topic {name!r} does not exist; create it with `tidal topics create {name}`",
        ) from None


def _ingest(
    topic: Topic, body: bytes, fmt: Format, key: str | None, timestamp: str | None
) -> dict[str, Any]:
    """Parse, append in one call, make durable per the topic's policy; the response JSON."""
    try:
        table = parse_body(body, fmt)
    except BodyError as e:
        raise RequestError(400, str(e), line=e.line) from None
    if table.num_rows == 0:
        return {"topic": topic.name, "count": 0, "offsets": {}, "durable": True}
    for field, what in ((key, "key"), (timestamp, "timestamp")):
        if field is not None and field not in table.column_names:
            raise RequestError(
                400,
                f"{what} field {field!r} is not in the records; their fields are "
                f"{table.column_names}",
            )
    if timestamp is not None:
        table = _with_event_times(table, timestamp)
    try:
        result = topic.append_batch(table, key=key, timestamp=timestamp)
    except (ValueError, TypeError, pa.ArrowException) as e:  # checked before anything is written
        raise RequestError(400, f"cannot append the records: {e}") from None
    durable = result.durable
    if not durable and topic.settings.fsync == "interval":
        topic.flush()  # the client is told "stored" only once it is on disk
        durable = True
    return {
        "topic": topic.name,
        "count": result.count,
        "offsets": {
            str(p): {"first": r.first, "last": r.last} for p, r in sorted(result.offsets.items())
        },
        "durable": durable,
    }


def _with_event_times(table: pa.Table, field: str) -> pa.Table:
    """``table`` with its timestamp field as epoch ms or an Arrow timestamp (ISO text parsed)."""
    column = table.column(field)
    t = column.type
    if pa.types.is_integer(t) or pa.types.is_timestamp(t):
        return table
    if pa.types.is_floating(t):
        return table.set_column(table.column_names.index(field), field, column.cast(pa.int64()))
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        text = pl.from_arrow(pa.table({field: column}))
        assert isinstance(text, pl.DataFrame)
        parsed = text.select(parse_iso8601(field)).to_series()
        bad = parsed.is_null() & text.to_series().is_not_null()
        if bad.any():
            row = int(bad.arg_max() or 0)
            raise RequestError(
                400,
                f"timestamp field {field!r} of record {row + 1} is {text.item(row, 0)!r}, which "
                f"is not ISO 8601; send ISO 8601 text or epoch milliseconds",
            )
        return table.set_column(table.column_names.index(field), field, parsed.to_arrow())
    raise RequestError(
        400,
        f"timestamp field {field!r} holds {t}; it must hold epoch milliseconds (integers) "
        f"or ISO 8601 text",
    )


def _fingerprint(fmt: Format, key: str | None, timestamp: str | None, body: bytes) -> str:
    h = hashlib.sha256()
    h.update(f"{fmt}\0{key}\0{timestamp}\0".encode())
    h.update(body)
    return h.hexdigest()


class _KeyLocks:
    """One asyncio lock per idempotency key in use, so a retry waits for the original."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
