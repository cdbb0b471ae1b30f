"""Counter-based randomness: every draw is a pure function of (seed, event id, draw slot).

A draw is the splitmix64 finaliser of ``e·φ + key(seed, slot)`` (φ the 64-bit golden ratio), so
any event can be generated alone, in any batch, on any machine, with the same result (3.8). One
64-bit draw is cut into independent fields: 16-bit fields for small choices (coins, name
indices), 32-bit fields for bounded integers, mapped to ``[0, m)`` with Lemire's multiply-shift
(bias below m / 2³²).

The functions used by the bid hot path take ``tmp``, an allocator for their temporaries (see
:class:`Scratch`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np

Alloc = Callable[..., np.ndarray]
"""``alloc(n, dtype=np.int64)`` -> an uninitialised array of n items."""

_MASK64 = (1 << 64) - 1
_PHI = 0x9E3779B97F4A7C15
_PHI_U = np.uint64(_PHI)
PHI = _PHI_U
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_LO32 = np.uint64(0xFFFFFFFF)
_LO16 = np.uint64(0xFFFF)
_U = np.uint64


def fresh(n: int, dtype: type | np.dtype = np.int64) -> np.ndarray:
    """The default allocator: a new array."""
    return np.empty(n, dtype=dtype)


class Scratch:
    """Temporaries for one step of a hot loop, reused step after step.

    numpy temporaries of a few hundred KB are mmap-ed and page-fault on every step, which costs
    more than the arithmetic. This bump allocator hands out slices of blocks allocated once;
    ``reset()`` at the start of each step makes them all reusable, so nothing handed out may be
    kept past the step. ``scope()`` takes back what was handed out inside it, so that the next
    temporaries reuse blocks still in the CPU cache.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._blocks: list[np.ndarray] = []
        self._used = 0

    def reset(self) -> None:
        self._used = 0

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        used = self._used
        try:
            yield
        finally:
            self._used = used

    def __call__(self, n: int, dtype: type | np.dtype = np.int64) -> np.ndarray:
        size = n * np.dtype(dtype).itemsize
        if size > 8 * self.capacity:
            return np.empty(n, dtype=dtype)
        if self._used == len(self._blocks):
            self._blocks.append(np.empty(8 * self.capacity, dtype=np.uint8))
        block = self._blocks[self._used]
        self._used += 1
        return block[:size].view(dtype)


def scope(tmp: Alloc) -> contextlib.AbstractContextManager[None]:
    """``tmp.scope()`` for a :class:`Scratch`; nothing to take back for other allocators."""
    return tmp.scope() if isinstance(tmp, Scratch) else contextlib.nullcontext()


def _fmix_int(z: int) -> int:
    z &= _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def slot_key(seed: int, slot: int) -> np.uint64:
    """The additive key of one draw slot under one seed."""
    return np.uint64(_fmix_int(_fmix_int(seed * _PHI + 0x632BE59BD9B4E019) + slot * _PHI))


def draw(e: np.ndarray, key: np.uint64, tmp: Alloc = fresh) -> np.ndarray:
    """64 random bits per event id (uint64), a pure function of (e, key)."""
    z = np.multiply(e.view(np.uint64), _PHI_U, out=tmp(len(e), np.uint64))
    z += key
    return mix(z, tmp)


def shifted_key(key: np.uint64, shift: int) -> np.uint64:
    """The key that draws for ids ``e + shift`` from ``e·φ``: ``(e + shift)·φ + key = e·φ + key'``."""
    return np.uint64((int(key) + shift * _PHI) & _MASK64)


def draw_phi(e_phi: np.ndarray, key: np.uint64, tmp: Alloc = fresh) -> np.ndarray:
    """:func:`draw` from precomputed ``e·φ`` (uint64), with a key from :func:`shifted_key`."""
    return mix(np.add(e_phi, key, out=tmp(len(e_phi), np.uint64)), tmp)


def mix(z: np.ndarray, tmp: Alloc = fresh) -> np.ndarray:
    """The splitmix64 finaliser, in place on z (uint64)."""
    with scope(tmp):
        t = np.right_shift(z, _U(30), out=tmp(len(z), np.uint64))
        z ^= t
        z *= _M1
        np.right_shift(z, _U(27), out=t)
        z ^= t
        z *= _M2
        np.right_shift(z, _U(31), out=t)
        z ^= t
    return z


def lo32(h: np.ndarray, tmp: Alloc = fresh) -> np.ndarray:
    """Bits 0–31 as int64 in [0, 2³²)."""
    return np.bitwise_and(h, _LO32, out=tmp(len(h), np.uint64)).view(np.int64)


def hi32(h: np.ndarray, tmp: Alloc = fresh) -> np.ndarray:
    """Bits 32–63 as int64 in [0, 2³²)."""
    return np.right_shift(h, _U(32), out=tmp(len(h), np.uint64)).view(np.int64)


def field16(h: np.ndarray, index: int) -> np.ndarray:
    """16-bit field ``index`` (0–3) as int64 in [0, 2¹⁶)."""
    return ((h >> _U(16 * index)) & _LO16).view(np.int64)


def below(bits32: np.ndarray, m: np.ndarray | int) -> np.ndarray:
    """U[0, m) from a 32-bit field (m < 2³¹): ``bits·m >> 32``."""
    return (bits32 * m) >> 32


def lo32_below(h: np.ndarray, m: int, tmp: Alloc = fresh) -> np.ndarray:
    """``below(lo32(h), m)`` for a scalar m, in place on one temporary."""
    x = lo32(h, tmp)
    x *= m
    x >>= 32
    return x


def hi32_below(h: np.ndarray, m: int, tmp: Alloc = fresh) -> np.ndarray:
    """``below(hi32(h), m)`` for a scalar m, in place on one temporary."""
    x = hi32(h, tmp)
    x *= m
    x >>= 32
    return x


def below16(bits16: np.ndarray, m: int) -> np.ndarray:
    """U[0, m) from a 16-bit field, for small m."""
    return (bits16 * m) >> 16


def coin(bits16: np.ndarray, ratio: int) -> np.ndarray:
    """Flink's ``nextInt(ratio) > 0``: true with probability 1 − 1/ratio."""
    return bits16 >= -(-65536 // ratio)


def cold_mask(h: np.ndarray, index: int, ratio: int, tmp: Alloc = fresh) -> np.ndarray:
    """int64 −1 where the :func:`coin` of 16-bit field ``index`` is *not* hot, else 0."""
    f = np.right_shift(h, _U(16 * index), out=tmp(len(h), np.uint64)).view(np.int64)
    if index < 3:
        f &= 0xFFFF
    f -= -(-65536 // ratio)
    f >>= 63
    return f


def select(
    cold_where: np.ndarray, hot: np.ndarray, cold: np.ndarray, out: np.ndarray
) -> np.ndarray:
    """``where(mask, cold, hot)`` for an int64 −1/0 mask, branch-free, written into ``out``."""
    np.bitwise_xor(cold, hot, out=out)
    out &= cold_where
    out ^= hot
    return out


# 10^(6u)·100 for u = a / 2³², as a product of three small tables indexed by 11 + 11 + 10 bits of
# a: table gathers cost a fraction of exp/pow, and a product of three correctly rounded factors
# stays within a few ulps of 10^(6u), far below the 0.5 used to round.
_P_HI = np.power(10.0, 6.0 * np.arange(2048) / 2**11) * 100.0
_P_MID = np.power(10.0, 6.0 * np.arange(2048) / 2**22)
_P_LO = np.power(10.0, 6.0 * np.arange(1024) / 2**32)


def price(bits32: np.ndarray, out: np.ndarray | None = None, tmp: Alloc = fresh) -> np.ndarray:
    """Flink's price: ``floor(10^(6u)·100 + 0.5)`` cents, log-uniform over 100 … 10⁸ (3.5)."""
    return price_of(bits32.view(np.uint64), 0, out, tmp)


def price_of(
    h: np.ndarray, shift: int, out: np.ndarray | None = None, tmp: Alloc = fresh
) -> np.ndarray:
    """:func:`price` of the 32-bit field ``(h >> shift) & 0xFFFFFFFF`` of uint64 draws h."""
    n = len(h)
    i = np.right_shift(h, _U(shift + 21), out=tmp(n, np.uint64))
    if shift + 32 < 64:
        i &= _U(2047)
    x = _P_HI.take(i.view(np.int64), out=tmp(n, np.float64), mode="clip")
    y = tmp(n, np.float64)
    np.right_shift(h, _U(shift + 10), out=i)
    i &= _U(2047)
    x *= _P_MID.take(i.view(np.int64), out=y, mode="clip")
    np.bitwise_and(np.right_shift(h, _U(shift), out=i) if shift else h, _U(1023), out=i)
    x *= _P_LO.take(i.view(np.int64), out=y, mode="clip")
    x += 0.5
    if out is None:
        out = np.empty(n, dtype=np.int64)
    np.copyto(out, x, casting="unsafe")  # truncation is floor for positive values
    return out
