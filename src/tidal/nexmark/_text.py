"""Strings without a per-event Python loop: Arrow string views over shared byte pools.

An Arrow ``string_view`` row is 16 bytes: its length and either the string itself (up to 12
bytes, inline) or a 4-byte prefix, a buffer index and an offset. A slice of a pool is therefore a
few integer array operations, and a choice among a few fixed strings is one ``take`` of their
views; nothing is copied per row. Polars imports such arrays without copying.

Pools are built once per seed (3.5): the random-text pool for ``s(m)``, the ``extra`` filler
pool, and the tables of names, cities, states, channels and URLs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tidal.nexmark import _draws as dr

POOL_SIZE = 1 << 20
_PAD = 16
_WORD_STEPS = np.array([[0], [4], [8]])
# masks of the 3 inline words (rows) per length 0-12 (columns); 13 stands for longer strings,
# whose view keeps the first word only (the prefix)
_INLINE_MASKS = np.array(
    [[(1 << 8 * min(max(k - 4 * i, 0), 4)) - 1 for k in range(13)] + [0xFFFFFFFF * (i == 0)]
     for i in range(3)],
    dtype=np.uint32,
)  # fmt: skip

FIRST_NAMES = ["Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"]  # fmt: skip
LAST_NAMES = ["Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"]  # fmt: skip
CITIES = ["Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"]  # fmt: skip
STATES = ["AZ", "CA", "ID", "OR", "WA", "WY"]
HOT_CHANNELS = ["Google", "Facebook", "Baidu", "Apple"]
HOT_CHANNELS_RATIO = 2
NUM_CHANNELS = 10_000

# Draw slots of the pools (event slots are small numbers, see _events).
_SLOT_TEXT_POOL = 1001
_SLOT_EXTRA_POOL = 1002
_SLOT_URL = 1003


class BytePool:
    """A byte buffer (padded for 12-byte inline reads) with its 4-byte little-endian words."""

    def __init__(self, data: np.ndarray) -> None:
        self.size = len(data)
        padded = np.zeros(self.size + _PAD, dtype=np.uint8)
        padded[: self.size] = data
        self.bytes = padded
        self.buffer = pa.py_buffer(padded)
        # words[i] = bytes i..i+3: a view's prefix or inline word at any offset is one gather
        words = np.lib.stride_tricks.as_strided(padded, (self.size + _PAD - 3, 4), (1, 1))
        self.words = np.ascontiguousarray(words).view("<u4").ravel()

    def views(
        self, off: np.ndarray, length: np.ndarray, long_only: bool = False,
        out: np.ndarray | None = None, tmp: dr.Alloc = dr.fresh,
    ) -> np.ndarray:  # fmt: skip
        """String views (n, 2) uint64 of the slices ``[off, off + length)`` of this pool.

        A view is four little-endian uint32: length, then the first 4 bytes, buffer index 0 and
        offset, or for up to 12 bytes the bytes themselves (zero-padded). ``long_only`` skips the
        inline case when every length is above 12.
        """
        off = np.asarray(off, dtype=np.int64)
        length = np.asarray(length, dtype=np.int64)
        n = len(off)
        if out is None:
            out = np.empty((n, 2), dtype=np.uint64)
        quad = out.view(np.uint32).reshape(n, 4)
        quad[:, 0] = length
        if long_only:
            quad[:, 1] = self.words.take(off, out=tmp(n, np.uint32), mode="clip")
            quad[:, 2] = 0
            quad[:, 3] = off
            return out
        # the 12 bytes from off, cut to the length, or for longer strings the prefix, buffer 0, off
        # (arrays are (3, n), not (n, 3): numpy loops fast over long rows only)
        words = self.words.take(off + _WORD_STEPS, mode="clip")
        words &= _INLINE_MASKS.take(np.minimum(length, 13), axis=1)
        for i in range(3):
            quad[:, 1 + i] = words[i]
        long = np.flatnonzero(length > 12)
        quad[long, 3] = off.take(long)
        return out


@dataclass(frozen=True)
class StrColumn:
    """A string column as views into one pool, ready for Arrow."""

    views: np.ndarray
    buffer: pa.Buffer
    """The bytes that views of more than 12 bytes point into."""

    def to_arrow(self, validity: pa.Buffer | None = None, null_count: int = 0) -> pa.Array:
        """A zero-copy ``string_view`` array."""
        n = len(self.views)
        return pa.Array.from_buffers(
            pa.string_view(), n, [validity, pa.py_buffer(self.views), self.buffer], null_count
        )


class Choices:
    """A small fixed list of strings; ``take(idx)`` picks one per row by copying its view."""

    def __init__(self, strings: list[str] | list[bytes]) -> None:
        raw = [s.encode() if isinstance(s, str) else s for s in strings]
        lengths = np.array([len(s) for s in raw], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self.pool = BytePool(np.frombuffer(b"".join(raw), dtype=np.uint8))
        self.table = self.pool.views(offsets, lengths)
        self._flat = self.table.view(np.complex128).ravel()  # one 16-byte item per view
        self.strings = [s.decode() for s in raw]
        self.lengths = lengths
        self._by_draw: np.ndarray | None = None

    def take(self, idx: np.ndarray, out: np.ndarray | None = None) -> StrColumn:
        flat_out = None if out is None else out.view(np.complex128).ravel()
        views = self._flat.take(idx, out=flat_out, mode="clip")
        return StrColumn(views.view(np.uint64).reshape(-1, 2), self.pool.buffer)

    def by_draw(self, idx: np.ndarray, out: np.ndarray | None = None) -> StrColumn:
        """Channel or URL of ``idx`` = U[0, 10000) (+ 10000 when not hot): see ``_events.bids``."""
        if self._by_draw is None:
            u = np.arange(NUM_CHANNELS)
            hot = u * len(HOT_CHANNELS) // NUM_CHANNELS
            self._by_draw = self._flat.take(np.concatenate([hot, len(HOT_CHANNELS) + u]))
        flat_out = None if out is None else out.view(np.complex128).ravel()
        views = self._by_draw.take(idx, out=flat_out, mode="clip")
        return StrColumn(views.view(np.uint64).reshape(-1, 2), self.pool.buffer)


def matrix_strings(chars: np.ndarray, lengths: np.ndarray) -> StrColumn:
    """Strings from the rows of a char matrix (n, w), w a multiple of 4 and at least 12, whose
    rows hold ``lengths`` leading bytes and zeros after them.

    The matrix itself is the data buffer: a view of a row of up to 12 bytes is the row's first
    12 bytes, a longer one points at the row (offset ``w·i``).
    """
    n, w = chars.shape
    views = np.empty((n, 4), dtype=np.uint32)
    views[:, 0] = lengths
    words = chars.view("<u4")
    for i in range(3):
        views[:, 1 + i] = words[:, i]
    long = np.flatnonzero(lengths > 12)
    views[long, 2] = 0
    views[long, 3] = long * w
    return StrColumn(views.view(np.uint64), pa.py_buffer(chars))


class TextPool(BytePool):
    """Random characters of ``s(m)`` (3.5): space with probability 1/13, else ``a``–``z``."""

    def __init__(self, data: np.ndarray) -> None:
        super().__init__(data)
        idx = np.arange(self.size + 1, dtype=np.int64)
        solid = np.append(data != ord(" "), True)
        # spaces from i on up to the first non-space, and right before i back to the last one:
        # runs of spaces are short, so small tables that stay in the CPU cache
        nxt = np.where(solid, idx, self.size)
        ends = np.concatenate([[0], np.where(solid[:-1], idx[1:], 0)])
        lead = np.minimum.accumulate(nxt[::-1])[::-1] - idx
        trail = idx - np.maximum.accumulate(ends)
        small = np.uint8 if max(lead.max(), trail.max()) < 256 else np.int64
        self.lead_spaces, self.trail_spaces = lead.astype(small), trail.astype(small)

    def strings(
        self, len_bits: np.ndarray, off_bits: np.ndarray, max_len: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Offsets and lengths of ``s(max_len).trim()``: length ``3 + U[0, max_len − 3)``."""
        length = 3 + dr.below(len_bits, max_len - 3)
        off = dr.below(off_bits, self.size - length)
        stop = off + length
        start = off + self.lead_spaces.take(off)
        stop -= self.trail_spaces.take(stop)
        return np.minimum(start, stop), np.maximum(stop - start, 0)


@dataclass(frozen=True)
class Pools:
    """Everything string-valued that is built once per seed."""

    text: TextPool
    extra: BytePool
    names: Choices
    cities: Choices
    states: Choices
    channels: Choices
    urls: Choices


def _random_chars(seed: int, slot: int, n: int, special: int) -> np.ndarray:
    h = dr.draw(np.arange(n, dtype=np.int64), dr.slot_key(seed, slot))
    letters = ord("a") + dr.below(dr.hi32(h), 26)
    return np.where(dr.below(dr.lo32(h), 13) == 0, special, letters).astype(np.uint8)


def _extra_pool(seed: int) -> np.ndarray:
    """Flink's filler: signed 32-bit ints, 6 chars each as ``'a' + (x rem 26)``, Java semantics."""
    h = dr.draw(np.arange(-(-POOL_SIZE // 6), dtype=np.int64), dr.slot_key(seed, _SLOT_EXTRA_POOL))
    x = dr.lo32(h).astype(np.uint32).view(np.int32).astype(np.int64)
    chars = np.empty((len(x), 6), dtype=np.uint8)
    for i in range(6):  # six digits per int, not a loop over events
        r = np.fmod(x, 26)  # sign of the dividend, like Java's %
        chars[:, i] = ord("a") + r
        x = (x - r) // 26  # exact, so equal to Java's truncating division
    return chars.ravel()[:POOL_SIZE]


def _java_reverse_abs(c: np.ndarray) -> np.ndarray:
    """``Math.abs(Integer.reverse(c))`` with Java int overflow (``abs(MIN_VALUE) < 0``)."""
    bits = ((c[:, None] >> np.arange(32)) & 1).astype(np.int64)
    rev = (bits << np.arange(31, -1, -1)).sum(axis=1)
    signed = np.where(rev >= 2**31, rev - 2**32, rev)
    return np.where(signed == -(2**31), signed, np.abs(signed))


def _urls(seed: int) -> list[bytes]:
    """The 4 hot URLs then the 10 000 cached ones (3.5), built from the seed."""
    n = len(HOT_CHANNELS) + NUM_CHANNELS
    h = dr.draw(np.arange(n, dtype=np.int64), dr.slot_key(seed, _SLOT_URL))
    chars = _random_chars(seed, _SLOT_URL + 1, n * 12, ord("_")).reshape(n, 3, 4)
    seg_len = 3 + ((dr.field16(h, 0)[:, None] >> np.array([0, 1, 2])) & 1)  # s(5): 3 + U[0, 2)
    with_id = dr.below16(dr.field16(h, 1), 10) > 0
    ids = _java_reverse_abs(np.arange(NUM_CHANNELS, dtype=np.int64))
    urls = []
    for i in range(n):  # once per seed, 10 004 URLs
        segs = [chars[i, s, : seg_len[i, s]].tobytes() for s in range(3)]
        url = b"https://www.nexmark.com/" + b"/".join(segs) + b"/item.htm?query=1"
        c = i - len(HOT_CHANNELS)
        if c >= 0 and with_id[i]:
            url += b"&channel_id=" + str(int(ids[c])).encode()
        urls.append(url)
    return urls


@functools.lru_cache(maxsize=8)
def pools(seed: int) -> Pools:
    """The string pools of one seed (cached)."""
    names = [f"{f} {la}" for f in FIRST_NAMES for la in LAST_NAMES]
    channels = HOT_CHANNELS + [f"channel-{c}" for c in range(NUM_CHANNELS)]
    return Pools(
        text=TextPool(_random_chars(seed, _SLOT_TEXT_POOL, POOL_SIZE, ord(" "))),
        extra=BytePool(_extra_pool(seed)),
        names=Choices(names),
        cities=Choices(CITIES),
        states=Choices(STATES),
        channels=Choices(channels),
        urls=Choices(_urls(seed)),
    )
