"""One partition: the append path (under a file lock), lock-free reads, retention, compaction.

Append protocol (one writer per partition at a time, across processes):

1. Take ``flock(LOCK_EX)`` on ``writer.lock`` in the partition folder.
2. Catch up with the files: another process may have appended or rolled since we last
   held the lock. New batches are CRC-checked; a torn or corrupt tail (a writer killed
   mid-append) is truncated, and index entries pointing past it are dropped.
3. Roll to a new segment if the active one is full (fsync the old one and the folder).
4. Write header and payload with one ``pwritev`` at the end of the last valid batch.
5. Add a sparse index entry if ``index_interval_bytes`` passed since the previous one.
6. fsync according to the topic's policy, then release the lock.

Readers take no lock: they read complete batches up to the end of the file, check every
batch's CRC before decoding it, and treat an incomplete batch at the tail of the last
segment as "not written yet".
"""

from __future__ import annotations

import bisect
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa

from tidal._fsutil import fsync_dir

from ._errors import CorruptRecordError, OffsetOutOfRangeError, UnknownTopicError
from ._format import FLAG_SPARSE, HEADER_SIZE, BadBatch, BatchHeader, frame, verify
from ._segment import (
    INDEX_ENTRY,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    Scanner,
    header_at,
    index_entries,
    list_segments,
    read_index,
    segment_name,
)
from ._settings import TopicSettings

logger = logging.getLogger("tidal.log")

LOCK_FILE = "writer.lock"
_ENTRY = INDEX_ENTRY.itemsize


class _SegmentReader:
    """A reader's open file and cached index for one segment."""

    __slots__ = ("fd", "index", "index_size", "index_path")

    def __init__(self, fd: int, index_path: str):
        self.fd = fd
        self.index_path = index_path
        self.index = read_index(index_path)
        self.index_size = -1

    def lookup(self, offset: int) -> int:
        """Position of a batch at or before ``offset`` (0 when the index cannot help)."""
        try:
            size = os.stat(self.index_path).st_size
        except FileNotFoundError:
            size = 0
        if size != self.index_size:
            self.index, self.index_size = read_index(self.index_path), size
        i = int(np.searchsorted(self.index["offset"], offset, side="right")) - 1
        while i >= 0:
            entry_offset, position = int(self.index["offset"][i]), int(self.index["position"][i])
            header = header_at(self.fd, position)
            if header is not None and header.base_offset == entry_offset:
                return position
            i -= 1  # stale entry (file rewritten by compaction or truncated): try an older one
        return 0


class Partition:
    """Storage of one partition of a topic; shared by every thread of a process."""

    def __init__(self, topic_dir: Path, number: int, settings: TopicSettings):
        self.number = number
        self.dir = topic_dir / str(number)
        self.settings = settings
        self._mutex = threading.RLock()
        # writer state, valid only while the file lock is held (refreshed on each lock)
        self._lock_fd: int | None = None
        self._wfd: int | None = None
        self._ifd: int | None = None
        self._wbase = -1
        self._wend = 0
        self._wnext = 0
        self._index_size = 0
        self._last_index_pos = -1
        self._rolled = False
        self._dirty = False
        self._unsynced_fds: list[int] = []
        self._dir_dirty = False
        self._last_sync = float("-inf")
        self._max_ts: dict[int, int] = {}
        # reader state
        self._bases: list[int] = []
        self._readers: dict[int, _SegmentReader] = {}
        self._hint: tuple[BatchHeader, _SegmentReader] | None = None

    # -- paths ---------------------------------------------------------------------------

    def _log_path(self, base: int) -> str:
        return os.path.join(self.dir, segment_name(base) + LOG_SUFFIX)

    def _index_path(self, base: int) -> str:
        return os.path.join(self.dir, segment_name(base) + INDEX_SUFFIX)

    # -- writer --------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._mutex:
            if self._lock_fd is None:
                try:
                    self._lock_fd = os.open(
                        os.path.join(self.dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644
                    )
                except FileNotFoundError:
                    raise UnknownTopicError(f"partition folder {self.dir} is gone") from None
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                self._catch_up()
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def recover(self) -> None:
        """Check the active segment's tail and index now (done by every writer anyway)."""
        with self._locked():
            pass

    def _catch_up(self) -> None:
        bases = list_segments(self.dir)
        if not bases:
            open(self._log_path(0), "ab").close()
            bases = [0]
        if bases[-1] != self._wbase:
            self._open_active(bases[-1])
        elif os.fstat(self._wfd).st_size != self._wend:
            self._scan_tail()

    def _close_writer_files(self) -> None:
        for fd in (self._wfd, self._ifd):
            if fd is not None:
                os.close(fd)
        self._wfd = self._ifd = None
        self._wbase = -1

    def _open_active(self, base: int) -> None:
        """Full recovery scan of the active segment: CRC every batch, truncate a bad tail."""
        self._close_writer_files()
        fd = os.open(self._log_path(base), os.O_RDWR | os.O_CREAT, 0o644)
        interval = self.settings.index_interval_bytes
        entries: list[tuple[int, int]] = []
        end, nxt, last_index, max_ts = 0, base, -1, -1
        scanner = Scanner(fd, 0, check_crc=True)
        try:
            for h, _, _ in scanner:
                if h.base_offset != nxt:
                    break
                if last_index < 0 or h.position - last_index >= interval:
                    entries.append((h.base_offset, h.position))
                    last_index = h.position
                end, nxt, max_ts = h.end_position, h.next_offset, max(max_ts, h.max_timestamp)
        except BadBatch:
            pass
        self._truncate_tail(fd, base, end, scanner.size)
        ifd = os.open(self._index_path(base), os.O_RDWR | os.O_CREAT, 0o644)
        wanted = index_entries(entries)
        if os.pread(ifd, os.fstat(ifd).st_size + 1, 0) != wanted:
            os.ftruncate(ifd, 0)
            os.pwrite(ifd, wanted, 0)
        self._wfd, self._ifd, self._wbase = fd, ifd, base
        self._wend, self._wnext = end, nxt
        self._index_size, self._last_index_pos = len(wanted), last_index
        self._max_ts[base] = max_ts

    def _scan_tail(self) -> None:
        """Pick up batches other processes appended since we last held the lock."""
        fd = self._wfd
        end, nxt, max_ts = self._wend, self._wnext, self._max_ts.get(self._wbase, -1)
        scanner = Scanner(fd, end, check_crc=True)
        try:
            for h, _, _ in scanner:
                if h.base_offset != nxt:
                    break
                end, nxt, max_ts = h.end_position, h.next_offset, max(max_ts, h.max_timestamp)
        except BadBatch:
            pass
        truncated = self._truncate_tail(fd, self._wbase, end, scanner.size)
        self._wend, self._wnext, self._max_ts[self._wbase] = end, nxt, max_ts
        size = os.fstat(self._ifd).st_size
        index = np.frombuffer(os.pread(self._ifd, size, 0), INDEX_ENTRY, size // _ENTRY)
        keep = index[index["position"] < end] if truncated else index
        if truncated or size % _ENTRY:
            os.ftruncate(self._ifd, len(keep) * _ENTRY)
        self._index_size = len(keep) * _ENTRY
        self._last_index_pos = int(keep["position"][-1]) if len(keep) else -1

    def _truncate_tail(self, fd: int, base: int, end: int, size: int) -> bool:
        if size <= end:
            return False
        logger.warning(
            "truncating %d bytes of torn or corrupt data at position %d of %s",
            size - end,
            end,
            self._log_path(base),
        )
        os.ftruncate(fd, end)
        if self.settings.fsync != "never":
            os.fsync(fd)
        return True

    def _roll(self) -> None:
        policy = self.settings.fsync
        old_fd, old_ifd = self._wfd, self._ifd
        base = self._wnext
        fd = os.open(self._log_path(base), os.O_RDWR | os.O_CREAT, 0o644)
        ifd = os.open(self._index_path(base), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        if policy == "interval":
            # the closed segment and the new folder entry become durable with the next
            # interval fsync, like the rows themselves; appends do not wait for them
            self._unsynced_fds.append(old_fd)
            self._dir_dirty = self._dirty = True
        else:
            if policy == "batch":  # rows were fsynced by each append; make the file durable
                fsync_dir(self.dir)
            os.close(old_fd)
        os.close(old_ifd)
        self._wfd, self._ifd, self._wbase = fd, ifd, base
        self._wend, self._index_size, self._last_index_pos = 0, 0, -1
        self._max_ts[base] = -1
        self._rolled = True

    def append(
        self, fmt: int, payload, span: int, count: int, max_ts: int, flags: int = 0
    ) -> tuple[int, bool]:
        """Append one batch; return its base offset and whether it is already fsynced."""
        with self._locked():
            if self._wend >= self.settings.segment_bytes:
                self._roll()
            base = self._wnext
            parts = frame(fmt, base, span, count, max_ts, payload, flags)
            total = sum(len(p) for p in parts)
            position = self._wend
            written = os.pwritev(self._wfd, parts, position)
            if written != total:
                os.ftruncate(self._wfd, position)
                raise OSError(f"short write appending to {self._log_path(self._wbase)}")
            self._wend += total
            self._wnext += span
            self._max_ts[self._wbase] = max(self._max_ts.get(self._wbase, -1), max_ts)
            if self._last_index_pos < 0 or position - self._last_index_pos >= (
                self.settings.index_interval_bytes
            ):
                os.pwrite(self._ifd, index_entries([(base, position)]), self._index_size)
                self._index_size += _ENTRY
                self._last_index_pos = position
            durable = self._sync_after_write()
            if self._rolled:
                self._rolled = False
                self._apply_retention_locked(None)
        return base, durable

    def _sync_after_write(self) -> bool:
        policy = self.settings.fsync
        if policy == "batch":
            os.fdatasync(self._wfd)
            return True
        if policy == "never":
            return False
        if time.monotonic() - self._last_sync >= self.settings.fsync_interval_ms / 1000:
            self._sync_all()
            return True
        self._dirty = True
        return False

    def _sync_all(self) -> None:
        os.fdatasync(self._wfd)
        for fd in self._unsynced_fds:  # segments closed by a roll since the last sync
            os.fdatasync(fd)
            os.close(fd)
        self._unsynced_fds.clear()
        if self._dir_dirty:
            fsync_dir(self.dir)
            self._dir_dirty = False
        self._last_sync, self._dirty = time.monotonic(), False

    def flush(self, only_if_due: bool = False) -> None:
        """fsync appends this process made that are not durable yet."""
        with self._mutex:
            if not self._dirty or self._wfd is None:
                return
            if only_if_due and (
                time.monotonic() - self._last_sync < self.settings.fsync_interval_ms / 1000
            ):
                return
            self._sync_all()

    @property
    def dirty(self) -> bool:
        """True while this process has appended data that is not fsynced yet."""
        return self._dirty

    def close(self) -> None:
        """fsync pending data (unless the policy is ``never``) and close every file."""
        with self._mutex:
            if self.settings.fsync != "never":
                self.flush()
            for fd in self._unsynced_fds:
                os.close(fd)
            self._unsynced_fds.clear()
            self._close_writer_files()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            for reader in self._readers.values():
                os.close(reader.fd)
            self._readers.clear()
            self._hint = None

    # -- retention -----------------------------------------------------------------------

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete whole closed segments past the size or age limit; return how many."""
        with self._locked():
            return self._apply_retention_locked(now_ms)

    def _apply_retention_locked(self, now_ms: int | None) -> int:
        s = self.settings
        if s.retention_bytes is None and s.retention_ms is None:
            return 0
        bases = list_segments(self.dir)
        closed = bases[:-1]  # the active (last) segment is never deleted
        doomed: list[int] = []
        if s.retention_ms is not None:
            cutoff = (time.time_ns() // 1_000_000 if now_ms is None else now_ms) - s.retention_ms
            for base in closed:
                if self._segment_max_ts(base) >= cutoff:
                    break
                doomed.append(base)
        if s.retention_bytes is not None:
            sizes = {b: os.stat(self._log_path(b)).st_size for b in bases}
            total = sum(sizes.values()) - sum(sizes[b] for b in doomed)
            for base in closed[len(doomed) :]:
                if total - sizes[base] < s.retention_bytes:
                    break
                doomed.append(base)
                total -= sizes[base]
        for base in doomed:
            self._delete_segment(base)
        if doomed and s.fsync != "never":
            fsync_dir(self.dir)
        return len(doomed)

    def _delete_segment(self, base: int) -> None:
        for path in (self._log_path(base), self._index_path(base)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self._max_ts.pop(base, None)

    def _segment_max_ts(self, base: int) -> int:
        if base not in self._max_ts:
            fd = os.open(self._log_path(base), os.O_RDONLY)
            try:
                self._max_ts[base] = max(
                    (h.max_timestamp for h, _, _ in Scanner(fd, 0, check_crc=False)), default=-1
                )
            finally:
                os.close(fd)
        return self._max_ts[base]

    # -- compaction ----------------------------------------------------------------------

    @contextmanager
    def compaction(self) -> Iterator[list[int]]:
        """Hold the writer lock and give the base offsets of every segment, oldest first."""
        with self._locked():
            yield list_segments(self.dir)

    def replace_segment(self, base: int, batches: list[tuple[BatchHeader, object]]) -> None:
        """Atomically replace a closed segment by ``batches`` (header fields + new payload).

        Called under :meth:`compaction`. The new file keeps every batch's base offset and
        span, so offsets never move. A segment left empty stays as an empty file so the
        partition's start offset does not move (only retention moves it).
        """
        tmp_log = self._log_path(base) + ".cleaning"
        tmp_index = self._index_path(base) + ".cleaning"
        entries: list[tuple[int, int]] = []
        position, last_index, max_ts = 0, -1, -1
        with open(tmp_log, "wb") as f:
            for h, payload in batches:
                parts = frame(
                    h.format, h.base_offset, h.span, h.count, h.max_timestamp, payload, FLAG_SPARSE
                )
                if last_index < 0 or position - last_index >= self.settings.index_interval_bytes:
                    entries.append((h.base_offset, position))
                    last_index = position
                for p in parts:
                    f.write(p)
                position += sum(len(p) for p in parts)
                max_ts = max(max_ts, h.max_timestamp)
            f.flush()
            os.fsync(f.fileno())
        with open(tmp_index, "wb") as f:
            f.write(index_entries(entries))
        os.replace(tmp_log, self._log_path(base))
        os.replace(tmp_index, self._index_path(base))
        fsync_dir(self.dir)
        self._max_ts[base] = max_ts

    # -- readers -------------------------------------------------------------------------

    def _refresh(self) -> list[int]:
        try:
            bases = list_segments(self.dir)
        except FileNotFoundError:
            raise UnknownTopicError(f"partition folder {self.dir} is gone") from None
        present = set(bases)
        for base in [b for b in self._readers if b not in present]:
            os.close(self._readers.pop(base).fd)
        self._bases = bases
        return bases

    def _reader(self, base: int) -> _SegmentReader:
        reader = self._readers.get(base)
        if reader is None:
            fd = os.open(self._log_path(base), os.O_RDONLY)
            reader = self._readers[base] = _SegmentReader(fd, self._index_path(base))
        return reader

    def forget_readers(self, bases: list[int]) -> None:
        """Drop cached readers of segments that were rewritten, so the new files are used."""
        with self._mutex:
            for base in bases:
                reader = self._readers.pop(base, None)
                if reader is not None:
                    os.close(reader.fd)
            self._hint = None

    def start_offset(self) -> int:
        """The first offset still stored (the base offset of the oldest segment)."""
        with self._mutex:
            bases = self._refresh()
            return bases[0] if bases else 0

    def end_offset(self) -> int:
        """The offset the next appended row will get (as far as complete batches show)."""
        with self._mutex:
            for _ in range(3):
                bases = self._refresh()
                try:
                    reader = self._reader(bases[-1])
                except FileNotFoundError:
                    continue
                nxt = bases[-1]
                position = reader.lookup(1 << 62)
                try:
                    for h, _, _ in Scanner(reader.fd, position, check_crc=False):
                        nxt = h.next_offset
                except BadBatch:
                    pass
                return nxt
            raise UnknownTopicError(f"partition folder {self.dir} keeps changing")

    def size_bytes(self) -> tuple[int, int]:
        """Bytes on disk in this partition's segment files, and the number of segments."""
        bases = list_segments(self.dir)
        total = 0
        for base in bases:
            try:
                total += os.stat(self._log_path(base)).st_size
            except FileNotFoundError:
                pass
        return total, len(bases)

    def batches(
        self, offset: int, max_rows: int, max_bytes: int = 1 << 62
    ) -> list[tuple[BatchHeader, pa.Buffer]]:
        """CRC-checked batches holding rows from ``offset`` on, about ``max_rows`` rows.

        Raises :class:`OffsetOutOfRangeError` below the start of the partition and
        :class:`CorruptRecordError` when a stored batch fails its checks.
        """
        with self._mutex:
            for _ in range(3):
                try:
                    return self._batches(offset, max_rows, max_bytes)
                except FileNotFoundError:  # a segment was deleted or replaced meanwhile
                    self._hint = None
            return self._batches(offset, max_rows, max_bytes)

    def _batches(
        self, offset: int, max_rows: int, max_bytes: int
    ) -> list[tuple[BatchHeader, pa.Buffer]]:
        bases = self._refresh()
        if offset < bases[0]:
            raise OffsetOutOfRangeError(
                f"offset {offset} of partition {self.number} in {self.dir.parent.name!r} was "
                f"deleted by retention; the partition now starts at offset {bases[0]}"
            )
        out: list[tuple[BatchHeader, pa.Buffer]] = []
        rows = nbytes = 0
        i = bisect.bisect_right(bases, offset) - 1
        while i < len(bases):
            base, last = bases[i], i == len(bases) - 1
            reader = self._reader(base)
            hint = self._hint
            if (
                hint is not None
                and hint[1] is reader
                and hint[0].base_offset <= offset <= hint[0].next_offset
            ):
                # sequential reads continue where the previous read stopped
                hh = hint[0]
                position = hh.end_position if offset >= hh.next_offset else hh.position
            else:
                position = reader.lookup(offset)
            buffers: dict[int, pa.Buffer] = {}
            done = False
            for attempt in range(2):
                scanner = Scanner(reader.fd, position, check_crc=False)
                try:
                    for h, buf, at in scanner:
                        position = h.end_position
                        if h.next_offset <= offset:
                            continue
                        try:
                            verify(buf, at, h)
                        except BadBatch:
                            position = h.position
                            raise
                        pbuf = buffers.get(id(buf))
                        if pbuf is None:
                            buffers.clear()
                            pbuf = buffers[id(buf)] = pa.py_buffer(buf)
                        out.append((h, pbuf.slice(at + HEADER_SIZE, h.length)))
                        rows += h.count if h.base_offset >= offset else h.next_offset - offset
                        nbytes += h.length
                        if rows >= max_rows or nbytes >= max_bytes:
                            done = True
                            self._hint = (h, reader)
                            break
                    break
                except BadBatch as e:
                    if not last or attempt == 1:
                        raise CorruptRecordError(
                            f"corrupt batch in {self._log_path(base)} at position {position}: {e}; "
                            f"it is not served. Offsets before it are readable; "
                            f"reopening the log truncates a corrupt tail of the active segment"
                        ) from None
                    # the tail of the last segment may be being rewritten by a writer that
                    # is truncating a torn batch: look once more before calling it corrupt
            if done:
                return out
            if not last and not scanner.clean:
                raise CorruptRecordError(
                    f"incomplete batch in closed segment {self._log_path(base)} at position "
                    f"{scanner.end}; it is not served"
                )
            if out and self._readers.get(base) is reader and out[-1][0].end_position == scanner.end:
                self._hint = (out[-1][0], reader)
            i += 1
        return out
