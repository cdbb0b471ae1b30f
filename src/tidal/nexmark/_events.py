"""Field values of the three event kinds (NEXMARK.md 3.4–3.6), as array expressions over event ids.

Each function takes the event ids ``e`` of events of one kind (with their adjusted numbers and
times) and returns the requested columns: int64 arrays (times in epoch ms) or string views.
Draw slots are numbered per kind; a kind's slots never change meaning, so adding a column never
changes another column's values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tidal.nexmark import _draws as dr
from tidal.nexmark._text import (
    HOT_CHANNELS,
    HOT_CHANNELS_RATIO,
    NUM_CHANNELS,
    POOL_SIZE,
    Pools,
    StrColumn,
    materialize,
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


def extra(
    pools: Pools, fixed: np.ndarray | int, average: int, h: np.ndarray, long_only: bool = False
) -> StrColumn:
    """The ``extra`` filler (3.5): a pool slice of about ``average − fixed`` bytes."""
    n = len(h)
    rest = average - np.broadcast_to(np.asarray(fixed, dtype=np.int64), (n,))
    rest = np.where(rest < 0, 0, rest)  # F > S: empty
    delta = np.floor(rest * 0.2 + 0.5).astype(np.int64)  # Java Math.round
    length = rest - delta + dr.below(dr.lo32(h), 2 * delta)
    off = dr.below(dr.hi32(h), POOL_SIZE - length)
    return StrColumn(pools.extra.views(off, length, long_only=long_only), pools.extra)


def persons(
    config: NexmarkConfig, pools: Pools, keys: Keys, e: np.ndarray, t: np.ndarray,
    columns: Sequence[str] = PERSON_COLUMNS,
) -> dict[str, Column]:  # fmt: skip
    """Person fields (3.5) of person events e with event times t."""
    want = set(columns)
    out: dict[str, Column] = {"id": FIRST_PERSON_ID + last_person(config, e), "dateTime": t}
    need_extra = "extra" in want
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
        digits = groups[:, :, None] // np.array([1000, 100, 10, 1]) % 10 + ord("0")
        chars = np.full((len(e), 4, 5), ord(" "), dtype=np.uint8)
        chars[:, :, :4] = digits
        out["creditCard"] = materialize(chars.reshape(len(e), 20)[:, :19], np.full(len(e), 19))
    if need_extra:
        name_len = np.array([len(s) for s in pools.names.strings]).take(name_idx)
        city_len = np.array([len(s) for s in pools.cities.strings]).take(city_idx)
        fixed = 8 + name_len + email_len + 19 + city_len + 2
        out["extra"] = extra(pools, fixed, config.avg_person_bytes, dr.draw(e, keys[P5]))
    return {c: out[c] for c in columns}


def _email(
    pools: Pools, o1: np.ndarray, l1: np.ndarray, o2: np.ndarray, l2: np.ndarray
) -> StrColumn:
    """``s(7) + "@" + s(5) + ".com"`` as a char matrix, then packed."""
    col = np.arange(15)[None, :]
    l1c, l2c = l1[:, None], l2[:, None]
    text = pools.text.bytes
    part1 = text.take(o1[:, None] + np.minimum(col, 5))
    p2 = col - l1c - 1
    part2 = text.take(o2[:, None] + np.clip(p2, 0, 3))
    dotcom = np.frombuffer(b".com", dtype=np.uint8).take(np.clip(p2 - l2c, 0, 3))
    chars = np.where(
        col < l1c, part1, np.where(p2 < 0, ord("@"), np.where(p2 < l2c, part2, dotcom))
    )
    return materialize(chars.astype(np.uint8), l1 + 1 + l2 + 4)


def auctions(
    config: NexmarkConfig, pools: Pools, keys: Keys, e: np.ndarray, nprime: np.ndarray,
    t: np.ndarray, columns: Sequence[str] = AUCTION_COLUMNS,
) -> dict[str, Column]:  # fmt: skip
    """Auction fields (3.4–3.6) of auction events e with adjusted numbers n' and times t."""
    want = set(columns)
    out: dict[str, Column] = {"id": FIRST_AUCTION_ID + last_auction(config, e), "dateTime": t}
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
            out["itemName"] = StrColumn(pools.text.views(o1, l1), pools.text)
        if "description" in want:
            out["description"] = StrColumn(pools.text.views(o2, l2), pools.text)
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


def bids(
    config: NexmarkConfig, pools: Pools, keys: Keys, e: np.ndarray, t: np.ndarray,
    columns: Sequence[str] = BID_COLUMNS, out: dict[str, np.ndarray] | None = None,
    tmp: dr.Alloc = dr.fresh,
) -> dict[str, Column]:  # fmt: skip
    """Bid fields (3.4, 3.5) of bid events e with event times t.

    The hot path of the benchmarks: operations are in place and branch-free, temporaries come
    from ``tmp``, and ``out`` may give destination arrays (int64, or (n, 2) uint64 views for
    strings) so that results land in the caller's batch without a copy.
    """
    want = set(columns)
    out = out or {}
    res: dict[str, Column] = {}
    n = len(e)
    A, P, T = config.auction_proportion, config.person_proportion, config.total_proportion
    epoch = np.floor_divide(e, T, out=tmp(n))  # a bid follows its epoch's persons and auctions
    if "dateTime" in want:
        res["dateTime"] = _put(out.get("dateTime"), t)
    if want & {"auction", "bidder"}:
        h0 = dr.draw(e, keys[B0], tmp)
    if "auction" in want:
        last_a = np.multiply(epoch, A, out=tmp(n))
        last_a += A - 1
        cold = recent_auction(config, last_a, h0, tmp)
        hot = np.floor_divide(last_a, HOT_BLOCK, out=last_a)
        hot *= HOT_BLOCK
        chosen = dr.select(dr.cold_mask(h0, 0, config.hot_auction_ratio, tmp), hot, cold)
        res["auction"] = np.add(chosen, FIRST_AUCTION_ID, out=out.get("auction"))
    if want & {"bidder", "price"}:
        h1 = dr.draw(e, keys[B1], tmp)
    if "bidder" in want:
        last_p = epoch if P == 1 else epoch * P + (P - 1)
        cold = recent_person(config, last_p, h1, tmp)
        hot = np.floor_divide(last_p, HOT_BLOCK, out=tmp(n))
        hot *= HOT_BLOCK
        hot += 1  # apart from the hot seller
        chosen = dr.select(dr.cold_mask(h0, 1, config.hot_bidders_ratio, tmp), hot, cold)
        res["bidder"] = np.add(chosen, config.bidder_offset, out=out.get("bidder"))
    if "price" in want:
        res["price"] = dr.price(dr.hi32(h1, tmp), out=out.get("price"), tmp=tmp)
    if want & {"channel", "url"}:
        h2 = dr.draw(e, keys[B2], tmp)
        cold = dr.hi32_below(h2, NUM_CHANNELS, tmp)
        cold += len(HOT_CHANNELS)
        hot = dr.hi32_below(h2, len(HOT_CHANNELS), tmp)
        idx = dr.select(dr.cold_mask(h2, 0, HOT_CHANNELS_RATIO, tmp), hot, cold)
        for name, choices in (("channel", pools.channels), ("url", pools.urls)):
            if name in want:
                res[name] = choices.take(idx, out=out.get(name))
    if "extra" in want:
        h3 = dr.draw(e, keys[B3], tmp)
        res["extra"] = bid_extra(config, pools, h3, out.get("extra"), tmp)
    return {c: res[c] for c in columns}


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
    return StrColumn(views, pools.extra)
