"""On-disk format of a batch: a fixed header followed by a payload.

Header (40 bytes, little-endian)::

    magic          4s   b"TDLB"
    length         u32  payload bytes (a multiple of 8)
    crc            u32  CRC32C of header bytes [12:40] followed by the payload
    format         u8   1 = records, 2 = arrow
    flags          u8   bit 0: offsets are sparse (compacted); the payload says which
    reserved       u16
    base_offset    i64  offset of the first row
    span           u32  offsets covered: rows are in [base_offset, base_offset + span)
    count          u32  rows stored (== span unless compacted)
    max_timestamp  i64  largest row timestamp, epoch ms

Records payload (columnar, so a batch becomes Arrow arrays without a per-row loop)::

    n u32, reserved u32, timestamps i64[n], offset_deltas u32[n],
    key_lengths i32[n] (-1 = null key), value_lengths i32[n], header_lengths i32[n],
    key bytes, value bytes, header bytes, zero padding to 8

Arrow payload: one Arrow IPC stream (schema + record batches). Schema metadata
``tidal.key`` / ``tidal.timestamp`` name the key and timestamp columns; a compacted batch
carries its offset deltas in a ``__tidal_offset_delta`` uint32 column.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

import crc32c
import numpy as np
import pyarrow as pa

from ._record import Record

HEADER = struct.Struct("<4sIIBBHqIIq")
HEADER_SIZE = HEADER.size
MAGIC = b"TDLB"
FORMAT_RECORDS = 1
FORMAT_ARROW = 2
FLAG_SPARSE = 1
OFFSET_DELTA_COLUMN = "__tidal_offset_delta"
KEY_META = b"tidal.key"
TIMESTAMP_META = b"tidal.timestamp"
HEADERS_TYPE = pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))
_PAD = bytes(8)


class BatchHeader(NamedTuple):
    """A decoded batch header plus where the batch starts in its segment file."""

    position: int
    length: int
    crc: int
    format: int
    flags: int
    base_offset: int
    span: int
    count: int
    max_timestamp: int

    @property
    def next_offset(self) -> int:
        """The offset after the last one this batch covers."""
        return self.base_offset + self.span

    @property
    def end_position(self) -> int:
        """File position just past this batch."""
        return self.position + HEADER_SIZE + self.length


class BadBatch(Exception):
    """Internal: bytes at a position are not a valid batch (wrong magic or CRC)."""


def parse_header(buf: bytes | memoryview, at: int, position: int) -> BatchHeader:
    """Decode the header found at ``buf[at:]``; raise :class:`BadBatch` if the magic is wrong."""
    magic, length, crc, fmt, flags, _, base, span, count, max_ts = HEADER.unpack_from(buf, at)
    if magic != MAGIC or fmt not in (FORMAT_RECORDS, FORMAT_ARROW) or length % 8 or count > span:
        raise BadBatch(f"no batch header at position {position}")
    return BatchHeader(position, length, crc, fmt, flags, base, span, count, max_ts)


def verify(buf: bytes | memoryview, at: int, header: BatchHeader) -> None:
    """Check the CRC of the whole batch starting at ``buf[at:]``; raise :class:`BadBatch`."""
    mv = memoryview(buf)
    crc = crc32c.crc32c(mv[at + 12 : at + HEADER_SIZE])
    crc = crc32c.crc32c(mv[at + HEADER_SIZE : at + HEADER_SIZE + header.length], crc)
    if crc != header.crc:
        raise BadBatch(f"CRC mismatch in batch at position {header.position}")


def frame(
    fmt: int, base_offset: int, span: int, count: int, max_ts: int, payload, flags: int = 0
) -> list:
    """Header and payload buffers of a batch, ready for ``os.writev``."""
    pad = -len(payload) % 8
    parts = [payload, _PAD[:pad]] if pad else [payload]
    length = len(payload) + pad
    tail = struct.pack("<BBHqIIq", fmt, flags, 0, base_offset, span, count, max_ts)
    crc = crc32c.crc32c(tail)
    for p in parts:
        crc = crc32c.crc32c(p, crc)
    return [MAGIC + struct.pack("<II", length, crc) + tail, *parts]


# -- records payload --------------------------------------------------------------------------


def encode_headers(headers: Sequence[tuple[str, bytes]]) -> bytes:
    """Serialize one record's headers: u16 count, then (u16 len, key, u32 len, value) each."""
    out = [struct.pack("<H", len(headers))]
    for k, v in headers:
        kb = k.encode()
        out.append(struct.pack("<H", len(kb)) + kb + struct.pack("<I", len(v)) + bytes(v))
    return b"".join(out)


def decode_headers(blob: bytes) -> tuple[tuple[str, bytes], ...]:
    """Inverse of :func:`encode_headers`."""
    if not blob:
        return ()
    (n,) = struct.unpack_from("<H", blob, 0)
    pos, out = 2, []
    for _ in range(n):
        (kl,) = struct.unpack_from("<H", blob, pos)
        key = blob[pos + 2 : pos + 2 + kl].decode()
        pos += 2 + kl
        (vl,) = struct.unpack_from("<I", blob, pos)
        out.append((key, bytes(blob[pos + 4 : pos + 4 + vl])))
        pos += 4 + vl
    return tuple(out)


def encode_records(
    keys: Sequence[bytes | None],
    values: Sequence[bytes],
    timestamps: np.ndarray,
    header_blobs: Sequence[bytes],
    offset_deltas: np.ndarray,
) -> bytes:
    """Build a records payload from parallel columns."""
    n = len(values)
    klens = np.fromiter((-1 if k is None else len(k) for k in keys), np.int32, n)
    vlens = np.fromiter(map(len, values), np.int32, n)
    hlens = np.fromiter(map(len, header_blobs), np.int32, n)
    return b"".join(
        [
            struct.pack("<II", n, 0),
            np.ascontiguousarray(timestamps, "<i8").tobytes(),
            np.ascontiguousarray(offset_deltas, "<u4").tobytes(),
            klens.tobytes(),
            vlens.tobytes(),
            hlens.tobytes(),
            b"".join(k for k in keys if k is not None),
            b"".join(values),
            b"".join(header_blobs),
        ]
    )


def encode_record_list(records: Sequence[Record], default_ts: int) -> tuple[bytes, int]:
    """Records payload for ``records`` (offsets contiguous) and the largest timestamp."""
    n = len(records)
    ts = np.fromiter(
        (default_ts if r.timestamp is None else r.timestamp for r in records), np.int64, n
    )
    blobs = [encode_headers(r.headers) if r.headers else b"" for r in records]
    payload = encode_records(
        [None if r.key is None else bytes(r.key) for r in records],
        [bytes(r.value) for r in records],
        ts,
        blobs,
        np.arange(n, dtype=np.uint32),
    )
    return payload, int(ts.max()) if n else default_ts


class RecordColumns(NamedTuple):
    """A decoded records payload, column by column (zero-copy views of the payload)."""

    timestamps: np.ndarray
    offset_deltas: np.ndarray
    keys: pa.Array
    values: pa.Array
    header_blobs: pa.Array


def _binary_from_lengths(lengths: np.ndarray, data: pa.Buffer, nullable: bool) -> pa.Array:
    n = len(lengths)
    valid = lengths >= 0
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(np.where(valid, lengths, 0), out=offsets[1:])
    validity = None
    null_count = 0
    if nullable and not valid.all():
        validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
        null_count = int(n - valid.sum())
    return pa.Array.from_buffers(
        pa.binary(), n, [validity, pa.py_buffer(offsets), data], null_count=null_count
    )


def decode_records(payload: pa.Buffer) -> RecordColumns:
    """Split a records payload into columns without copying the bytes."""
    (n,) = struct.unpack_from("<I", payload, 0)
    pos = 8
    ts = np.frombuffer(payload, "<i8", n, pos)
    pos += 8 * n
    deltas = np.frombuffer(payload, "<u4", n, pos)
    pos += 4 * n
    klens = np.frombuffer(payload, "<i4", n, pos)
    vlens = np.frombuffer(payload, "<i4", n, pos + 4 * n)
    hlens = np.frombuffer(payload, "<i4", n, pos + 8 * n)
    pos += 12 * n
    ksize = int(klens[klens > 0].sum())
    vsize = int(vlens.sum())
    hsize = int(hlens.sum())
    keys = _binary_from_lengths(klens, payload.slice(pos, ksize), nullable=True)
    pos += ksize
    values = _binary_from_lengths(vlens, payload.slice(pos, vsize), nullable=False)
    pos += vsize
    blobs = _binary_from_lengths(hlens, payload.slice(pos, hsize), nullable=False)
    return RecordColumns(ts, deltas, keys, values, blobs)


def headers_array(blobs: pa.Array) -> pa.Array:
    """The ``headers`` column (list of key/value structs) for a batch of header blobs."""
    n = len(blobs)
    lengths = np.diff(
        np.frombuffer(blobs.buffers()[1], np.int32)[blobs.offset : blobs.offset + n + 1]
    )
    if not lengths.any():
        empty = pa.array([], HEADERS_TYPE.value_type)
        return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), empty)
    rows = [[{"key": k, "value": v} for k, v in decode_headers(b)] for b in blobs.to_pylist()]
    return pa.array(rows, HEADERS_TYPE)


# -- arrow payload ----------------------------------------------------------------------------


def encode_arrow(table: pa.Table) -> pa.Buffer:
    """One Arrow IPC stream holding ``table``."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def decode_arrow(payload: pa.Buffer) -> pa.Table:
    """Inverse of :func:`encode_arrow` (zero-copy over ``payload``)."""
    return pa.ipc.open_stream(payload).read_all()
