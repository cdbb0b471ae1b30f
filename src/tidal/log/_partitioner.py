"""Key-hash partitioning, vectorized, compatible with Kafka's default partitioner.

A key is hashed with Kafka's murmur2 (seed ``0x9747b28c``) and placed in partition
``(hash & 0x7fffffff) % partitions``, so a key lands in the same partition here as in a
Kafka topic with the same partition count. The hash is computed for a whole Arrow column
at once: the loop runs over 4-byte blocks of the longest key, never over rows.

Non-binary key columns are hashed through their text form (``pyarrow.compute.cast`` to
string, UTF-8), so an integer key ``42`` in a batch and the bytes key ``b"42"`` in a record
go to the same partition.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_SEED = np.uint32(0x9747B28C)
_M = np.uint32(0x5BD1E995)


def key_bytes(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The key column as one contiguous binary (or large_binary) array, nulls kept."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    t = column.type
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return column
    if pa.types.is_string(t):
        return column.cast(pa.binary())
    if pa.types.is_large_string(t):
        return column.cast(pa.large_binary())
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        return column.cast(pa.large_binary())
    if pa.types.is_fixed_size_binary(t):
        return column.cast(pa.binary())
    if pa.types.is_dictionary(t):
        return key_bytes(column.cast(t.value_type))
    return pc.cast(column, pa.large_string()).cast(pa.large_binary())


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data`` as a signed 32-bit int (the value the Java client computes)."""
    h = murmur2_array(pa.array([data], pa.binary()))[0]
    return int(h) - (1 << 32) if h >= 1 << 31 else int(h)


def murmur2_array(keys: pa.Array) -> np.ndarray:
    """Kafka's murmur2 of every value of a binary array, as uint32 (nulls hash as empty)."""
    n = len(keys)
    _, offsets_buf, data_buf = keys.buffers()
    off_dtype = np.int64 if pa.types.is_large_binary(keys.type) else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=off_dtype)[keys.offset : keys.offset + n + 1]
    offsets = offsets.astype(np.int64)
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    )
    starts = offsets[:-1]
    lens = offsets[1:] - starts
    if keys.null_count:
        lens = np.where(keys.is_null().to_numpy(zero_copy_only=False), 0, lens)
    h = _SEED ^ lens.astype(np.uint32)
    blocks = lens >> 2
    max_blocks = int(blocks.max()) if n else 0
    with np.errstate(over="ignore"):
        for i in range(max_blocks):
            active = blocks > i
            rows = None if active.all() else np.nonzero(active)[0]
            p = starts + 4 * i if rows is None else starts[rows] + 4 * i
            k = (
                data[p].astype(np.uint32)
                | (data[p + 1].astype(np.uint32) << 8)
                | (data[p + 2].astype(np.uint32) << 16)
                | (data[p + 3].astype(np.uint32) << 24)
            )
            k *= _M
            k ^= k >> np.uint32(24)
            k *= _M
            if rows is None:
                h *= _M
                h ^= k
            else:
                h[rows] = (h[rows] * _M) ^ k
        tail = lens & 3
        tail_start = starts + (lens & ~3)
        for t, shift in ((3, 16), (2, 8), (1, 0)):
            rows = np.nonzero(tail >= t)[0]
            if len(rows):
                h[rows] ^= data[tail_start[rows] + (t - 1)].astype(np.uint32) << np.uint32(shift)
        rows = np.nonzero(tail > 0)[0]
        h[rows] *= _M
        h ^= h >> np.uint32(13)
        h *= _M
        h ^= h >> np.uint32(15)
    return h


def assign_partitions(keys: pa.Array, partitions: int, keyless_partition: int) -> np.ndarray:
    """Partition number (int64) of every row: key hash for keyed rows, ``keyless_partition`` else."""
    pids = (murmur2_array(keys) & np.uint32(0x7FFFFFFF)).astype(np.int64) % partitions
    if keys.null_count:
        pids[keys.is_null().to_numpy(zero_copy_only=False)] = keyless_partition
    return pids
