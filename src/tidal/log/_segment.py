"""Segment files: naming, the sparse offset index, and scanning batches in a file.

A partition folder holds ``<base_offset>.log`` segment files (20-digit, zero-padded, like
Kafka) and, beside each, ``<base_offset>.index``: 16-byte entries ``(offset i64, position
i64)`` pointing at the start of a batch, one every ``index_interval_bytes`` of log. The
index is an accelerator only: every entry is checked against the batch header it points
at, and a missing or stale index falls back to scanning from the segment start.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ._format import HEADER_SIZE, BadBatch, BatchHeader, parse_header, verify

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
INDEX_ENTRY = np.dtype([("offset", "<i8"), ("position", "<i8")])
_EMPTY_INDEX = np.zeros(0, INDEX_ENTRY)
READ_CHUNK = 1 << 20


def segment_name(base_offset: int) -> str:
    """File stem of the segment starting at ``base_offset``."""
    return f"{base_offset:020d}"


def list_segments(directory: Path) -> list[int]:
    """Base offsets of the segment files in ``directory``, ascending."""
    bases = []
    for name in os.listdir(directory):
        if name.endswith(LOG_SUFFIX) and len(name) == 20 + len(LOG_SUFFIX):
            stem = name[:20]
            if stem.isdigit():
                bases.append(int(stem))
    bases.sort()
    return bases


def read_index(path: Path | str) -> np.ndarray:
    """Entries of an index file; a torn last entry is ignored, a missing file is empty."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return _EMPTY_INDEX
    usable = len(data) - len(data) % INDEX_ENTRY.itemsize
    return np.frombuffer(data, INDEX_ENTRY, usable // INDEX_ENTRY.itemsize)


def index_entries(entries: list[tuple[int, int]]) -> bytes:
    """Bytes of an index holding ``(offset, position)`` entries."""
    return np.array(entries, INDEX_ENTRY).tobytes()


def header_at(fd: int, position: int) -> BatchHeader | None:
    """The batch header at ``position``, or None when there is none (EOF or bad magic)."""
    buf = os.pread(fd, HEADER_SIZE, position)
    if len(buf) < HEADER_SIZE:
        return None
    try:
        return parse_header(buf, 0, position)
    except BadBatch:
        return None


class Scanner:
    """Iterate over the complete batches of a segment file from ``position`` on.

    Yields ``(header, buffer, at)`` where the batch occupies ``buffer[at : at + 40 +
    header.length]``. Iteration stops quietly at end of file or at an incomplete batch (a
    write in progress or a torn tail) and raises :class:`BadBatch` on bytes that are not a
    batch or, with ``check_crc``, on a CRC mismatch. After iteration, ``end`` is the
    position just past the last complete batch and ``clean`` tells whether it is the end
    of the file.
    """

    def __init__(self, fd: int, position: int, *, check_crc: bool, size: int | None = None):
        self.fd = fd
        self.end = position
        self.size = os.fstat(fd).st_size if size is None else size
        self.check_crc = check_crc

    @property
    def clean(self) -> bool:
        """True when scanning stopped exactly at the end of the file."""
        return self.end == self.size

    def __iter__(self) -> Iterator[tuple[BatchHeader, bytes, int]]:
        fd, size = self.fd, self.size
        pos = self.end
        buf, buf_pos = b"", pos
        while pos + HEADER_SIZE <= size:
            at = pos - buf_pos
            if at + HEADER_SIZE > len(buf):
                buf, buf_pos, at = os.pread(fd, READ_CHUNK, pos), pos, 0
                if len(buf) < HEADER_SIZE:
                    return  # truncated under us
            header = parse_header(buf, at, pos)
            end = header.end_position
            if end > size:
                return
            if at + HEADER_SIZE + header.length > len(buf):
                buf, buf_pos, at = os.pread(fd, max(READ_CHUNK, end - pos), pos), pos, 0
                if len(buf) < end - pos:
                    return
            if self.check_crc:
                verify(buf, at, header)
            yield header, buf, at
            pos = self.end = end
