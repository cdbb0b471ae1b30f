"""Turning stored batches into Arrow tables or :class:`Record` lists, and back for compaction."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ._format import (
    FORMAT_ARROW,
    KEY_META,
    OFFSET_DELTA_COLUMN,
    TIMESTAMP_META,
    BatchHeader,
    decode_arrow,
    decode_headers,
    decode_records,
    encode_arrow,
    encode_records,
    headers_array,
)
from ._partitioner import key_bytes
from ._record import Record

OFFSET_COLUMN = "offset"
PARTITION_COLUMN = "partition"
RESERVED_COLUMNS = (OFFSET_COLUMN, PARTITION_COLUMN, OFFSET_DELTA_COLUMN)


def timestamps_ms(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A timestamp column as int64 epoch milliseconds (integers are taken as epoch ms)."""
    t = column.type
    if pa.types.is_timestamp(t):
        return pc.cast(column, pa.timestamp("ms", t.tz)).cast(pa.int64())
    if pa.types.is_integer(t):
        return column.cast(pa.int64())
    raise TypeError(f"timestamp column must hold integers (epoch ms) or Arrow timestamps, got {t}")


def _arrow_parts(h: BatchHeader, payload: pa.Buffer) -> tuple[pa.Table, np.ndarray]:
    table = decode_arrow(payload)
    if OFFSET_DELTA_COLUMN in table.column_names:
        deltas = table.column(OFFSET_DELTA_COLUMN).to_numpy()
        table = table.drop_columns([OFFSET_DELTA_COLUMN])
        return table, h.base_offset + deltas.astype(np.int64)
    return table, np.arange(h.base_offset, h.base_offset + table.num_rows, dtype=np.int64)


def batch_table(h: BatchHeader, payload: pa.Buffer, partition: int) -> pa.Table:
    """One batch as a table with ``offset`` and ``partition`` columns appended.

    Arrow batches keep the columns they were appended with; record batches become
    ``key, value, timestamp, headers``.
    """
    if h.format == FORMAT_ARROW:
        table, offsets = _arrow_parts(h, payload)
    else:
        cols = decode_records(payload)
        offsets = h.base_offset + cols.offset_deltas.astype(np.int64)
        table = pa.table(
            {
                "key": cols.keys,
                "value": cols.values,
                "timestamp": pa.array(cols.timestamps, pa.int64()),
                "headers": headers_array(cols.header_blobs),
            }
        )
    n = table.num_rows
    return table.append_column(OFFSET_COLUMN, pa.array(offsets, pa.int64())).append_column(
        PARTITION_COLUMN, pa.array(np.full(n, partition, np.int32))
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return str(value)


def batch_records(h: BatchHeader, payload: pa.Buffer, partition: int, start: int) -> list[Record]:
    """The rows of one batch at offsets ``>= start`` as records.

    Rows of Arrow batches become records whose value is the row as a JSON object (bytes
    as base64), whose key is the key column's bytes and whose timestamp is the timestamp
    column (or the append time when the batch had none).
    """
    if h.format == FORMAT_ARROW:
        table, offsets = _arrow_parts(h, payload)
        first = int(np.searchsorted(offsets, start))
        table, offsets = table.slice(first), offsets[first:]
        meta = table.schema.metadata or {}
        n = table.num_rows
        key_col = meta.get(KEY_META, b"").decode()
        ts_col = meta.get(TIMESTAMP_META, b"").decode()
        keys = key_bytes(table.column(key_col)).to_pylist() if key_col else [None] * n
        ts = timestamps_ms(table.column(ts_col)).to_pylist() if ts_col else [h.max_timestamp] * n
        values = [orjson.dumps(row, default=_json_default) for row in table.to_pylist()]
        return [
            Record(v, k, t, (), o, partition)
            for v, k, t, o in zip(values, keys, ts, offsets.tolist(), strict=True)
        ]
    cols = decode_records(payload)
    offsets = h.base_offset + cols.offset_deltas.astype(np.int64)
    first = int(np.searchsorted(offsets, start))
    blobs = cols.header_blobs.slice(first)
    headers = [decode_headers(b) if b else () for b in blobs.to_pylist()]
    return [
        Record(v, k, t, hd, o, partition)
        for v, k, t, hd, o in zip(
            cols.values.slice(first).to_pylist(),
            cols.keys.slice(first).to_pylist(),
            cols.timestamps[first:].tolist(),
            headers,
            offsets[first:].tolist(),
            strict=True,
        )
    ]


def batch_keys(h: BatchHeader, payload: pa.Buffer) -> tuple[pa.Array, np.ndarray]:
    """Key bytes (null where a row has no key) and offsets of every row of a batch."""
    if h.format == FORMAT_ARROW:
        table, offsets = _arrow_parts(h, payload)
        key_col = (table.schema.metadata or {}).get(KEY_META, b"").decode()
        if not key_col:
            return pa.nulls(table.num_rows, pa.binary()), offsets
        keys = key_bytes(table.column(key_col))
        return keys.cast(pa.large_binary()), offsets
    cols = decode_records(payload)
    return cols.keys.cast(pa.large_binary()), h.base_offset + cols.offset_deltas.astype(np.int64)


def filter_batch(h: BatchHeader, payload: pa.Buffer, keep: np.ndarray) -> tuple[object, int, int]:
    """Payload of a batch reduced to the rows where ``keep`` is true.

    Offsets are preserved (as deltas from the batch's base offset). Returns the new
    payload, its row count and its largest timestamp.
    """
    count = int(keep.sum())
    if h.format == FORMAT_ARROW:
        table, offsets = _arrow_parts(h, payload)
        meta = table.schema.metadata or {}
        table = table.filter(pa.array(keep))
        deltas = pa.array((offsets[keep] - h.base_offset).astype(np.uint32))
        table = table.append_column(OFFSET_DELTA_COLUMN, deltas).replace_schema_metadata(meta)
        ts_col = meta.get(TIMESTAMP_META, b"").decode()
        max_ts = h.max_timestamp
        if ts_col and count:
            max_ts = pc.max(timestamps_ms(table.column(ts_col))).as_py()
        return encode_arrow(table), count, max_ts
    cols = decode_records(payload)
    mask = pa.array(keep)
    ts = cols.timestamps[keep]
    payload = encode_records(
        cols.keys.filter(mask).to_pylist(),
        cols.values.filter(mask).to_pylist(),
        ts,
        cols.header_blobs.filter(mask).to_pylist(),
        cols.offset_deltas[keep],
    )
    return payload, count, int(ts.max()) if count else h.max_timestamp
