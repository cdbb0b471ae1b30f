"""Field values of the three event kinds (NEXMARK.md 3.4–3.6), as array expressions over event ids.

Each function takes the event ids ``e`` of events of one kind (with their adjusted numbers and
times) and returns the requested columns: int64 arrays (times in epoch ms) or string views.
Draw slots are numbered per kind; a kind's slots never change meaning, so adding a column never
changes another column's values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tidal.nexmark import _draws as dr
from tidal.nexmark._text import (
    HOT_CHANNELS_RATIO,
    NUM_CHANNELS,
    POOL_SIZE,
    Pools,
    StrColumn,
    matrix_strings,
)
from tidal.nexmark.config import (
    AUCTION_ID_LEAD,
    FIRST_AUCTION_ID,
    FIRST_CATEGORY_ID,
    FIRST_PERSON_ID,
    HOT_BLOCK,
    NUM_CATEGORIES,
    PERSON_ID_LEAD,
    NexmarkConfig,
    event_time_ms,
)

Column = np.ndarray | StrColumn

PERSON_COLUMNS = ("id", "name", "emailAddress", "creditCard", "city", "state", "dateTime", "extra")
AUCTION_COLUMNS = (
    "id", "itemName", "description", "initialBid", "reserve", "dateTime", "expires", "seller",
    "category", "extra",
)  # fmt: skip
BID_COLUMNS = ("auction", "bidder", "price", "channel", "url", "dateTime", "extra")
TIME_COLUMNS = frozenset({"dateTime", "expires"})
STRING_COLUMNS = frozenset(
    {"name", "emailAddress", "creditCard", "city", "state", "extra", "itemName", "description",
     "channel", "url"}
)  # fmt: skip

# Draw slots. Person: P0 name/city/state, P1-P2 email, P3-P4 card, P5 extra.
# Auction: A0 seller/category, A1 itemName, A2 description, A3 prices, A4 expires, A5 extra.
# Bid: B0 hot coins + recent auction, B1 recent person + price, B2 channel, B3 extra.
P0, P1, P2, P3, P4, P5 = range(0, 6)
A0, A1, A2, A3, A4, A5 = range(10, 16)
B0, B1, B2, B3 = range(20, 24)


class Keys:
    """The slot keys of one seed, computed once."""

    def __init__(self, seed: int) -> None:
        self._keys = {
            s: dr.slot_key(seed, s) for s in (*range(0, 6), *range(10, 16), *range(20, 24))
        }

    def __getitem__(self, slot: int) -> np.uint64:
        return self._keys[slot]


def last_person(config: NexmarkConfig, e: np.ndarray) -> np.ndarray:
    """Base-0 id of the newest person at event id e (Flink ``lastBase0PersonId``)."""
    T, P = config.total_proportion, config.person_proportion
    epoch, off = np.divmod(e, T)
    return epoch * P + np.minimum(off, P - 1)


def last_auction(config: NexmarkConfig, e: np.ndarray) -> np.ndarray:
    """Base-0 id of the newest auction at event id e (Flink ``lastBase0AuctionId``)."""
    T, P, A = config.total_proportion, config.person_proportion, config.auction_proportion
    epoch, off = np.divmod(e, T)
    return epoch * A + np.clip(off - P, -1, A - 1)


def recent_person(
    config: NexmarkConfig, last_p: np.ndarray, h: np.ndarray, tmp: dr.Alloc = dr.fresh
) -> np.ndarray:
    """Base-0 id among the last ``active_people`` persons (+10 not yet created); draws lo32(h)."""
    active = config.active_people
    if len(last_p) and last_p.min() + 1 >= active:  # the usual case: a full window, fixed width
        r = dr.lo32_below(h, active + PERSON_ID_LEAD, tmp)
        r += last_p
        r += 1 - active
        return r
    m = last_p + 1
    w = np.minimum(m, active)
    return m - w + dr.below(dr.lo32(h), w + PERSON_ID_LEAD)


def recent_auction(
    config: NexmarkConfig, last_a: np.ndarray, h: np.ndarray, tmp: dr.Alloc = dr.fresh
) -> np.ndarray:
    """Base-0 id among the last ``in_flight_auctions`` auctions (+10 not yet created); draws hi32(h)."""
    n = config.in_flight_auctions
    if len(last_a) and last_a.min() >= n:  # the usual case: a full window, fixed width
        r = dr.hi32_below(h, n + 1 + AUCTION_ID_LEAD, tmp)
        r += last_a
        r -= n
        return r
    lo = np.maximum(last_a - n, 0)
    return lo + dr.below(dr.hi32(h), last_a - lo + 1 + AUCTION_ID_LEAD)


def extra(pools: Pools, fixed: np.ndarray | int, average: int, h: np.ndarray) -> StrColumn:
    """The ``extra`` filler (3.5): a pool slice of about ``average − fixed`` bytes."""
    n = len(h)
    rest = average - np.broadcast_to(np.asarray(fixed, dtype=np.int64), (n,))
    rest = np.where(rest < 0, 0, rest)  # F > S: empty
    delta = np.floor(rest * 0.2 + 0.5).astype(np.int64)  # Java Math.round
    length = rest - delta + dr.below(dr.lo32(h), 2 * delta)
    off = dr.below(dr.hi32(h), POOL_SIZE - length)
    long_only = bool(n) and int(length.min()) > 12
    return StrColumn(pools.extra.views(off, length, long_only=long_only), pools.extra.buffer)


def persons(
    config: NexmarkConfig, pools: Pools, keys: Keys, e: np.ndarray, t: np.ndarray,
    columns: Sequence[str] = PERSON_COLUMNS,
) -> dict[str, Column]:  # fmt: skip
    """Person fields (3.5) of person events e with event times t."""
    want = set(columns)
    out: dict[str, Column] = {"dateTime": t}
    if "id" in want:
        out["id"] = FIRST_PERSON_ID + last_person(config, e)
    need_extra = "extra" in want
    if want & {"name", "city", "state", "extra"}:
        h0 = dr.draw(e, keys[P0])
        first, last = dr.below16(dr.field16(h0, 0), 11), dr.below16(dr.field16(h0, 1), 9)
        name_idx = first * 9 + last
        city_idx = dr.below16(dr.field16(h0, 2), 10)
        state_idx = dr.below16(dr.field16(h0, 3), 6)
    if "name" in want:
        out["name"] = pools.names.take(name_idx)
    if "city" in want:
        out["city"] = pools.cities.take(city_idx)
    if "state" in want:
        out["state"] = pools.states.take(state_idx)
    email_len = None
    if "emailAddress" in want or need_extra:
        h1, h2 = dr.draw(e, keys[P1]), dr.draw(e, keys[P2])
        o1, l1 = pools.text.strings(dr.lo32(h1), dr.hi32(h1), 7)
        o2, l2 = pools.text.strings(dr.lo32(h2), dr.hi32(h2), 5)
        email_len = l1 + 1 + l2 + 4
        if "emailAddress" in want:
            out["emailAddress"] = _email(pools, o1, l1, o2, l2)
    if "creditCard" in want:
        h3, h4 = dr.draw(e, keys[P3]), dr.draw(e, keys[P4])
        groups = np.stack(
            [dr.below(f, 10_000) for f in (dr.lo32(h3), dr.hi32(h3), dr.lo32(h4), dr.hi32(h4))],
            axis=1,
        )
        chars = _CARD_GROUPS.take(groups, axis=0).reshape(len(e), 20)  # "dddd " four times
        out["creditCard"] = matrix_strings(chars, np.full(len(e), 19))
    if need_extra:
        name_len = pools.names.lengths.take(name_idx)
        city_len = pools.cities.lengths.take(city_idx)
        fixed = 8 + name_len + email_len + 19 + city_len + 2
        out["extra"] = extra(pools, fixed, config.avg_person_bytes, dr.draw(e, keys[P5]))
    return {c: out[c] for c in columns}


_CARD_GROUPS = np.array([list(f"{g:04d} ".encode()) for g in range(10_000)], dtype=np.uint8)


def _email(
    pools: Pools, o1: np.ndarray, l1: np.ndarray, o2: np.ndarray, l2: np.ndarray
) -> StrColumn:
    """``s(7) + "@" + s(5) + ".com"`` (at most 6 + 1 + 4 + 4 bytes) as 16-byte rows, then views.

    A row is a 128-bit little-endian number (lo, hi): each part is ORed in at its byte offset.
    """
    n = len(o1)
    rows = np.zeros((n, 2), dtype=np.uint64)
    lo, hi = rows[:, 0], rows[:, 1]
    words = pools.text.words
    name = words.take(o1).astype(np.uint64) | (words.take(o1 + 4).astype(np.uint64) << _U32)
    _or_at(lo, hi, name & _BYTE_MASKS.take(l1), 0)
    _or_at(lo, hi, np.full(n, ord("@"), dtype=np.uint64), l1)
    _or_at(lo, hi, words.take(o2).astype(np.uint64) & _BYTE_MASKS.take(l2), l1 + 1)
    _or_at(lo, hi, np.full(n, _DOT_COM, dtype=np.uint64), l1 + 1 + l2)
    return matrix_strings(rows.view(np.uint8).reshape(n, 16), l1 + 1 + l2 + 4)


_U32 = np.uint64(32)
_BYTE_MASKS = np.array([(1 << 8 * k) - 1 for k in range(9)], dtype=np.uint64)
_DOT_COM = int.from_bytes(b".com", "little")


def _or_at(lo: np.ndarray, hi: np.ndarray, value: np.ndarray, at_byte: np.ndarray | int) -> None:
    """``(lo, hi) |= value << 8·at_byte`` for values below 2⁶⁴ and at_byte < 16 (numpy shifts
    by 64 or more give 0, and negative shift counts wrap to large ones)."""
    bits = np.asarray(8 * at_byte, dtype=np.uint64)
    lo |= value << bits
    hi |= (value >> (np.uint64(64) - bits)) | (value << (bits - np.uint64(64)))


def auctions(
    config: NexmarkConfig, pools: Pools, keys: Keys, e: np.ndarray, nprime: np.ndarray,
    t: np.ndarray, columns: Sequence[str] = AUCTION_COLUMNS,
) -> dict[str, Column]:  # fmt: skip
    """Auction fields (3.4–3.6) of auction events e with adjusted numbers n' and times t."""
    want = set(columns)
    out: dict[str, Column] = {"dateTime": t}
    if "id" in want:
        out["id"] = FIRST_AUCTION_ID + last_auction(config, e)
    if want & {"seller", "category"}:
        h0 = dr.draw(e, keys[A0])
    if "seller" in want:
        last_p = last_person(config, e)
        hot = dr.coin(dr.field16(h0, 2), config.hot_sellers_ratio)
        cold = recent_person(config, last_p, h0)  # lo32
        out["seller"] = FIRST_PERSON_ID + np.where(hot, last_p // HOT_BLOCK * HOT_BLOCK, cold)
    if "category" in want:
        out["category"] = FIRST_CATEGORY_ID + dr.below16(dr.field16(h0, 3), NUM_CATEGORIES)
    text_len = None
    if want & {"itemName", "description", "extra"}:
        h1, h2 = dr.draw(e, keys[A1]), dr.draw(e, keys[A2])
        o1, l1 = pools.text.strings(dr.lo32(h1), dr.hi32(h1), 20)
        o2, l2 = pools.text.strings(dr.lo32(h2), dr.hi32(h2), 100)
        text_len = l1 + l2
        if "itemName" in want:
            out["itemName"] = StrColumn(pools.text.views(o1, l1), pools.text.buffer)
        if "description" in want:
            out["description"] = StrColumn(pools.text.views(o2, l2), pools.text.buffer)
    if want & {"initialBid", "reserve"}:
        h3 = dr.draw(e, keys[A3])
        initial = dr.price(dr.lo32(h3))
        out["initialBid"] = initial
        out["reserve"] = initial + dr.price(dr.hi32(h3))
    if "expires" in want:
        ahead = config.in_flight_auctions * config.total_proportion // config.auction_proportion
        horizon = event_time_ms(config, nprime + ahead) - t
        length = 1 + dr.below(dr.lo32(dr.draw(e, keys[A4])), np.maximum(2 * horizon, 1))
        out["expires"] = t + length
    if "extra" in want:
        out["extra"] = extra(pools, 48 + text_len, config.avg_auction_bytes, dr.draw(e, keys[A5]))
    return {c: out[c] for c in columns}


@dataclass(frozen=True)
class BidIds:
    """Bid event ids ``e = base + shift`` (shift a multiple of T) in the form the bid fields use.

    Draws need ``e·φ`` and ids need the epoch ``e div T``. Steps of the walk share one layout of
    base ids and differ by a shift that is a multiple of T, which moves ``e·φ`` by a constant
    (folded into the draw key) and the epoch by ``shift / T``: computed once for the layout, they
    cost nothing per step. A layout also numbers its few distinct epochs, so that values that
    depend on the epoch alone (the hot auction and bidder) are a lookup per bid.
    """

    e_phi: np.ndarray
    """``base·φ`` mod 2⁶⁴ (uint64)."""
    epoch: np.ndarray
    """``base div T``."""
    epoch_min: int
    total_proportion: int
    shift: int = 0
    epochs: np.ndarray | None = None
    """The distinct values of ``epoch``, sorted, when numbered."""
    epoch_index: np.ndarray | None = None
    """Per bid, the position of its epoch in ``epochs``."""

    @classmethod
    def of(
        cls, e: np.ndarray, total_proportion: int, tmp: dr.Alloc = dr.fresh, numbered: bool = False
    ) -> BidIds:
        n = len(e)
        e_phi = np.multiply(e.view(np.uint64), dr.PHI, out=tmp(n, np.uint64))
        epoch = np.floor_divide(e, total_proportion, out=tmp(n))
        epochs, index = np.unique(epoch, return_inverse=True) if numbered else (None, None)
        return cls(e_phi, epoch, int(epoch.min()) if n else 0, total_proportion, 0, epochs, index)

    def shifted(self, shift: int) -> BidIds:
        return dataclasses.replace(self, shift=self.shift + shift)

    def __len__(self) -> int:
        return len(self.epoch)

    @property
    def epoch_shift(self) -> int:
        return self.shift // self.total_proportion

    def draw(self, key: np.uint64, tmp: dr.Alloc) -> np.ndarray:
        return dr.draw_phi(self.e_phi, dr.shifted_key(key, self.shift), tmp)

    def per_epoch(self, f: Callable[[np.ndarray], np.ndarray], tmp: dr.Alloc) -> np.ndarray:
        """``f(epoch)`` per bid for an elementwise function f: a lookup when epochs are numbered."""
        if self.epochs is None:
            return f(np.add(self.epoch, self.epoch_shift, out=tmp(len(self))))
        return f(self.epochs + self.epoch_shift).take(
            self.epoch_index, out=tmp(len(self)), mode="clip"
        )


def bids(
    config: NexmarkConfig, pools: Pools, keys: Keys, ids: BidIds, t: np.ndarray | None,
    columns: Sequence[str] = BID_COLUMNS, out: dict[str, np.ndarray] | None = None,
    tmp: dr.Alloc = dr.fresh,
) -> dict[str, Column]:  # fmt: skip
    """Bid fields (3.4, 3.5) of bid events ``ids`` with event times t (None without dateTime).

    The hot path of the benchmarks: operations are in place and branch-free, temporaries come
    from ``tmp``, and ``out`` may give destination arrays (int64, or (n, 2) uint64 views for
    strings) so that results land in the caller's batch without a copy.
    """
    want = set(columns)
    out = out or {}
    res: dict[str, Column] = {}
    n = len(ids)
    if "dateTime" in want:
        res["dateTime"] = _put(out.get("dateTime"), t)
    # each column is done in a scope of temporaries, so the working set stays in the CPU cache
    with dr.scope(tmp):
        if want & {"auction", "bidder"}:
            h0 = ids.draw(keys[B0], tmp)
        if want & {"bidder", "price"}:
            h1 = ids.draw(keys[B1], tmp)
        if "auction" in want:
            with dr.scope(tmp):
                res["auction"] = _bid_auction(config, ids, h0, _dest(out, "auction", n), tmp)
        if "bidder" in want:
            with dr.scope(tmp):
                res["bidder"] = _bid_bidder(config, ids, h0, h1, _dest(out, "bidder", n), tmp)
        if "price" in want:
            with dr.scope(tmp):
                res["price"] = dr.price_of(h1, 32, out=out.get("price"), tmp=tmp)
    if want & {"channel", "url"}:
        with dr.scope(tmp):
            h2 = ids.draw(keys[B2], tmp)
            # U[0, 10000) picks a cached channel; the hot one is U[0, 4) of the same bits, which
            # is exactly that number div 2500, so one table of 2 × 10000 views covers both cases
            idx = dr.hi32_below(h2, NUM_CHANNELS, tmp)
            cold = dr.cold_mask(h2, 0, HOT_CHANNELS_RATIO, tmp)
            cold &= NUM_CHANNELS
            idx += cold
            for name, choices in (("channel", pools.channels), ("url", pools.urls)):
                if name in want:
                    res[name] = choices.by_draw(idx, out=out.get(name))
    if "extra" in want:
        with dr.scope(tmp):
            h3 = ids.draw(keys[B3], tmp)
            res["extra"] = bid_extra(config, pools, h3, out.get("extra"), tmp)
    return {c: res[c] for c in columns}


def _dest(out: dict[str, np.ndarray], name: str, n: int) -> np.ndarray:
    dest = out.get(name)
    return np.empty(n, dtype=np.int64) if dest is None else dest


def _bid_auction(
    config: NexmarkConfig, ids: BidIds, h0: np.ndarray, dest: np.ndarray, tmp: dr.Alloc
) -> np.ndarray:
    """bid.auction: the hot auction's block (field 0 of h0) or a recent auction (hi32 of h0)."""
    A, window = config.auction_proportion, config.in_flight_auctions
    n = len(ids)

    def last_auction(epoch: np.ndarray) -> np.ndarray:  # a bid follows its epoch's A auctions
        return A * epoch + (A - 1)

    def hot_block(epoch: np.ndarray) -> np.ndarray:  # FIRST_AUCTION_ID is a block start
        return FIRST_AUCTION_ID + last_auction(epoch) // HOT_BLOCK * HOT_BLOCK

    if last_auction(ids.epoch_min + ids.epoch_shift) >= window:  # usual: a full window
        cold = dr.hi32_below(h0, window + 1 + AUCTION_ID_LEAD, tmp)
        cold += np.multiply(ids.epoch, A, out=tmp(n))
        cold += last_auction(ids.epoch_shift) - window + FIRST_AUCTION_ID
    else:
        last_a = last_auction(ids.epoch + ids.epoch_shift)
        cold = FIRST_AUCTION_ID + recent_auction(config, last_a, h0)
    hot = ids.per_epoch(hot_block, tmp)
    return dr.select(dr.cold_mask(h0, 0, config.hot_auction_ratio, tmp), hot, cold, dest)


def _bid_bidder(
    config: NexmarkConfig, ids: BidIds, h0: np.ndarray, h1: np.ndarray, dest: np.ndarray,
    tmp: dr.Alloc,
) -> np.ndarray:  # fmt: skip
    """bid.bidder: the hot bidder (field 1 of h0) or a recent person (lo32 of h1)."""
    P, active, offset = config.person_proportion, config.active_people, config.bidder_offset
    n = len(ids)

    def last_person(epoch: np.ndarray) -> np.ndarray:  # a bid follows its epoch's P persons
        return P * epoch + (P - 1)

    def hot_bidder(epoch: np.ndarray) -> np.ndarray:  # + 1: apart from the hot seller
        return offset + 1 + last_person(epoch) // HOT_BLOCK * HOT_BLOCK

    if last_person(ids.epoch_min + ids.epoch_shift) + 1 >= active:  # usual: a full window
        cold = dr.lo32_below(h1, active + PERSON_ID_LEAD, tmp)
        cold += ids.epoch if P == 1 else np.multiply(ids.epoch, P, out=tmp(n))
        cold += last_person(ids.epoch_shift) + 1 - active + offset
    else:
        last_p = last_person(ids.epoch + ids.epoch_shift)
        cold = offset + recent_person(config, last_p, h1)
    hot = ids.per_epoch(hot_bidder, tmp)
    return dr.select(dr.cold_mask(h0, 1, config.hot_bidders_ratio, tmp), hot, cold, dest)


def _put(dest: np.ndarray | None, values: np.ndarray) -> np.ndarray:
    if dest is None or dest is values:
        return values
    dest[...] = values
    return dest


def bid_extra(
    config: NexmarkConfig, pools: Pools, h: np.ndarray, out: np.ndarray | None = None,
    tmp: dr.Alloc = dr.fresh,
) -> StrColumn:  # fmt: skip
    """Bid ``extra``: the fixed part is 32 bytes, so the length rule has scalar bounds."""
    rest = max(config.avg_bid_bytes - 32, 0)
    delta = int(np.floor(rest * 0.2 + 0.5))
    length = dr.lo32_below(h, 2 * delta, tmp)
    length += rest - delta
    off = np.subtract(POOL_SIZE, length, out=tmp(len(h)))
    off *= dr.hi32(h, tmp)
    off >>= 32
    views = pools.extra.views(off, length, long_only=rest - delta > 12, out=out, tmp=tmp)
    return StrColumn(views, pools.extra.buffer)
