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
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(5)], dtype=np.uint32)

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
        quad[:, 1] = self.words.take(off) & _MASKS.take(np.minimum(length, 4))
        short = length <= 12
        inline1 = self.words.take(off + 4) & _MASKS.take(np.clip(length - 4, 0, 4))
        inline2 = self.words.take(off + 8) & _MASKS.take(np.clip(length - 8, 0, 4))
        quad[:, 2] = np.where(short, inline1, 0)
        quad[:, 3] = np.where(short, inline2, off)
        return out


@dataclass(frozen=True)
class StrColumn:
    """A string column as views into one pool, ready for Arrow."""

    views: np.ndarray
    pool: BytePool

    def to_arrow(self, validity: pa.Buffer | None = None, null_count: int = 0) -> pa.Array:
        """A zero-copy ``string_view`` array."""
        n = len(self.views)
        return pa.Array.from_buffers(
            pa.string_view(), n, [validity, pa.py_buffer(self.views), self.pool.buffer], null_count
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

    def take(self, idx: np.ndarray, out: np.ndarray | None = None) -> StrColumn:
        flat_out = None if out is None else out.view(np.complex128).ravel()
        views = self._flat.take(idx, out=flat_out, mode="clip")
        return StrColumn(views.view(np.uint64).reshape(-1, 2), self.pool)


def materialize(chars: np.ndarray, lengths: np.ndarray) -> StrColumn:
    """Strings from a char matrix (n, width) whose rows hold ``lengths`` leading valid bytes."""
    keep = np.arange(chars.shape[1]) < lengths[:, None]
    pool = BytePool(chars[keep])
    offsets = np.cumsum(lengths) - lengths
    return StrColumn(pool.views(offsets, lengths), pool)


class TextPool(BytePool):
    """Random characters of ``s(m)`` (3.5): space with probability 1/13, else ``a``–``z``."""

    def __init__(self, data: np.ndarray) -> None:
        super().__init__(data)
        idx = np.arange(self.size + 1, dtype=np.int64)
        solid = np.append(data != ord(" "), True)
        # first non-space index >= i, and one past the last non-space index < i
        nxt = np.where(solid, idx, self.size)
        self.next_solid = np.minimum.accumulate(nxt[::-1])[::-1]
        ends = np.concatenate([[0], np.where(solid[:-1], idx[1:], 0)])
        self.solid_end = np.maximum.accumulate(ends)

    def strings(
        self, len_bits: np.ndarray, off_bits: np.ndarray, max_len: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Offsets and lengths of ``s(max_len).trim()``: length ``3 + U[0, max_len − 3)``."""
        length = 3 + dr.below(len_bits, max_len - 3)
        off = dr.below(off_bits, self.size - length)
        start = self.next_solid.take(off)
        stop = self.solid_end.take(off + length)
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
