"""Walking the merged stream in steps: which events of which kind sit at which positions.

The merge is k-major (NEXMARK.md 3.7): position p is generator ``p mod G``'s event ``p div G``
while all G generators still run; after G·⌊N/G⌋ positions only the last one (which also takes
N mod G) is left. Event ids, kinds and adjusted numbers repeat with a period: shifting k by
``L = lcm(g, T)`` shifts every n' and e by L and keeps ``e mod T``. So a step that starts at a
multiple of ``G·L`` positions is a fixed layout (computed once) plus k0: the hot path does one
add per event id and one gather per time, not a division per event.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tidal.nexmark._draws import Alloc, fresh
from tidal.nexmark._events import BidIds
from tidal.nexmark.config import NexmarkConfig, adjusted_number, event_time_ms

STEP = 1 << 15
"""Positions per step: the working set of a step stays in the CPU cache."""

PERSON, AUCTION, BID = 0, 1, 2


def skeleton(
    config: NexmarkConfig, start: int, count: int, tmp: Alloc = fresh
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Event ids e, ``e mod T`` and adjusted numbers n' of merged positions [start, start + count)."""
    G, T = config.generators, config.total_proportion
    q = config.events_per_generator
    end, split = start + count, G * q
    parts: list[tuple[np.ndarray, ...]] = []
    if start < split:
        stop = min(end, split)
        k0, k1 = start // G, (stop - 1) // G + 1
        nk = adjusted_number(config, config.first_event_number + np.arange(k0, k1, dtype=np.int64))
        first_ids = config.first_event_id + np.arange(G, dtype=np.int64) * q
        lo, hi = start - k0 * G, stop - k0 * G
        e = np.add.outer(nk, first_ids, out=tmp(len(nk) * G).reshape(-1, G)).ravel()[lo:hi]
        n = np.repeat(nk, G)[lo:hi] if G > 1 else nk
        parts.append((e, np.remainder(e, T, out=tmp(len(e))), n))
    if end > split:
        k = q + np.arange(max(start, split) - split, end - split, dtype=np.int64)
        nk = adjusted_number(config, config.first_event_number + k)
        e = config.first_event_id + (G - 1) * q + nk
        parts.append((e, e % T, nk))
    if len(parts) == 1:
        return parts[0]  # type: ignore[return-value]
    e, off, n = (np.concatenate(x) for x in zip(*parts, strict=True))
    return e, off, n


def kind_of(config: NexmarkConfig, off: np.ndarray) -> np.ndarray:
    """Kind codes (0 person, 1 auction, 2 bid) from ``e mod T``."""
    P, A = config.person_proportion, config.auction_proportion
    return (off >= P).astype(np.int32) + (off >= P + A)


@dataclass
class Events:
    """The events of one kind in one step: ids ``base_e + shift``, adjusted numbers ``base_n + shift``."""

    idx: np.ndarray
    """Positions relative to the step start."""
    base_e: np.ndarray
    base_n: np.ndarray
    shift: int
    _times: np.ndarray
    _rel: np.ndarray | None
    bid_ids: BidIds | None = None
    """For bids: the ids as the bid fields use them."""

    @property
    def e(self) -> np.ndarray:
        return self.base_e + self.shift if self.shift else self.base_e

    @property
    def nprime(self) -> np.ndarray:
        return self.base_n + self.shift if self.shift else self.base_n

    def times(self, out: np.ndarray | None = None) -> np.ndarray:
        """Event times (epoch ms), optionally written into ``out``."""
        if self._rel is None:
            return self._times.take(self.idx, out=out, mode="clip")
        return self._times.take(self._rel, out=out, mode="clip")


@dataclass
class Step:
    """One step of the walk: positions [start, start + count)."""

    start: int
    count: int
    events: dict[int, Events]
    kind: np.ndarray | None
    time: np.ndarray | None


class _Layout:
    """Kinds, ids and n' of the first ``size`` positions, valid shifted by any multiple of L in k."""

    def __init__(self, config: NexmarkConfig, size: int) -> None:
        e, off, n = skeleton(config, 0, size)
        self.kind = kind_of(config, off)
        self.n_min = int(n.min())
        self.n_span = int(n.max()) - self.n_min + 1
        self.rel = n - self.n_min
        self.by_kind = {}
        for k in (PERSON, AUCTION, BID):
            idx = np.flatnonzero(self.kind == k)
            self.by_kind[k] = (idx, e[idx], n[idx], self.rel[idx])
        self.bid_ids = BidIds.of(e[self.by_kind[BID][0]], config.total_proportion, numbered=True)


@functools.lru_cache(maxsize=8)
def _layout(config: NexmarkConfig, size: int) -> _Layout:
    return _Layout(config, size)


def walk(
    config: NexmarkConfig, start: int, count: int, kinds: set[int], per_event: bool,
    tmp: Alloc = fresh,
) -> Iterator[Step]:  # fmt: skip
    """Steps over [start, start + count); bid arrays come from ``tmp`` (valid for one step)."""
    G = config.generators
    split = G * config.events_per_generator
    end = start + count
    period = G * math.lcm(config.out_of_order_group, config.total_proportion)
    size = (STEP // period) * period
    layout = _layout(config, size) if size and end - start >= size else None
    pos = start
    while pos < end:
        if layout is not None and pos % period == 0 and pos + size <= min(end, split):
            yield _fast_step(config, layout, pos, size, kinds, per_event)
            pos += size
            continue
        stop = min(end, pos + STEP)
        if layout is not None and pos % period:
            stop = min(stop, pos + period - pos % period)  # reach alignment, then go fast
        yield _generic_step(config, pos, stop - pos, kinds, per_event, tmp)
        pos = stop


def _fast_step(
    config: NexmarkConfig, layout: _Layout, pos: int, size: int, kinds: set[int], per_event: bool
) -> Step:
    # k0 is a multiple of L = lcm(g, T): ids and n' move by k0, kinds and e mod T stay
    k0 = pos // config.generators
    tk = event_time_ms(config, layout.n_min + k0 + np.arange(layout.n_span, dtype=np.int64))
    events = {}
    for k in kinds:
        idx, e, n, rel = layout.by_kind[k]
        bid_ids = layout.bid_ids.shifted(k0) if k == BID else None
        events[k] = Events(idx, e, n, k0, tk, rel, bid_ids)
    kind = layout.kind if per_event else None
    time = tk.take(layout.rel) if per_event else None
    return Step(pos, size, events, kind, time)


def _generic_step(
    config: NexmarkConfig, pos: int, count: int, kinds: set[int], per_event: bool, tmp: Alloc
) -> Step:
    e, off, n = skeleton(config, pos, count, tmp)
    kind = kind_of(config, off)
    t = event_time_ms(config, n)
    events = {}
    for k in kinds:
        idx = np.flatnonzero(kind == k)
        ek = e.take(idx)
        bid_ids = BidIds.of(ek, config.total_proportion, tmp) if k == BID else None
        events[k] = Events(idx, ek, n.take(idx), 0, t, None, bid_ids)
    return Step(pos, count, events, kind if per_event else None, t if per_event else None)
