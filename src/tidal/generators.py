"""Synthetic event generators for demos, tests and benchmarks, fully vectorized.

Every value is a pure function of ``(seed, event index, field)`` through a splitmix64 mix,
so any range of events can be produced directly (a restarted source seeks to its position)
and batch size never changes the data.

>>> from tidal.generators import transactions
>>> transactions(seed=1, start=0, count=3).columns
['ts', 'card', 'merchant', 'category', 'amount', 'country', 'ip']
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

__all__ = ["KINDS", "clicks", "mix", "transactions", "uniform"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix(seed: int, index: np.ndarray, slot: int) -> np.ndarray:
    """splitmix64 of (seed, index, slot): independent uniform uint64 values per event."""
    with np.errstate(over="ignore"):
        z = index.astype(np.uint64) * _GOLDEN + np.uint64((seed * 1_000_003 + slot * 7919) & (2**64 - 1))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(seed: int, index: np.ndarray, slot: int) -> np.ndarray:
    """Uniform floats in [0, 1) per event."""
    return (mix(seed, index, slot) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _pick(options: list[str], u: np.ndarray) -> pl.Series:
    idx = (u * len(options)).astype(np.uint32)
    return pl.Series(options).gather(idx)


_MERCHANTS = ["acme-market", "blue-bottle", "city-fuel", "daily-grocer", "electro-hub",
              "fresh-farm", "game-zone", "home-depot", "ink-books", "jet-travel",
              "kiosk-24", "lux-jewels", "metro-pharma", "night-owl-bar", "online-mega"]
_CATEGORIES = ["grocery", "fuel", "electronics", "travel", "dining", "pharmacy", "jewelry"]
_COUNTRIES = ["US", "US", "US", "GB", "DE", "FR", "NL", "BR", "IN", "NG"]
_PAGES = ["/", "/search", "/product", "/product", "/cart", "/checkout", "/login", "/help"]
_STATUS = [200] * 17 + [301, 404, 500]


def transactions(seed: int, start: int, count: int, base_ms: int = 0,
                 interval_us: float = 100.0) -> pl.DataFrame:
    """Card transactions: mostly small purchases, a few large ones, 10,000 cards, some IPs
    shared by many cards (the fraud-detection demo's input)."""
    k = np.arange(start, start + count, dtype=np.int64)
    amount = np.round(np.exp(uniform(seed, k, 4) * 6.5) - 0.5, 2) + 0.5
    card = (uniform(seed, k, 1) * 10_000).astype(np.int64)
    ip_host = np.where(uniform(seed, k, 6) < 0.02, 7, card % 251)
    return pl.DataFrame({
        "ts": pl.Series(base_ms + (k * interval_us / 1000).astype(np.int64)).cast(pl.Datetime("ms")),
        "card": pl.Series(card).cast(pl.String).str.zfill(5).str.replace(r"^", "card-"),
        "merchant": _pick(_MERCHANTS, uniform(seed, k, 2)),
        "category": _pick(_CATEGORIES, uniform(seed, k, 3)),
        "amount": amount,
        "country": _pick(_COUNTRIES, uniform(seed, k, 5)),
        "ip": pl.Series(ip_host).cast(pl.String).str.replace(r"^", "10.0.0."),
    })


def clicks(seed: int, start: int, count: int, base_ms: int = 0,
           interval_us: float = 100.0) -> pl.DataFrame:
    """Website traffic: page views with user, page, country, HTTP status and latency."""
    k = np.arange(start, start + count, dtype=np.int64)
    latency = (np.exp(uniform(seed, k, 5) * 6.0) + 5).astype(np.int64)
    return pl.DataFrame({
        "ts": pl.Series(base_ms + (k * interval_us / 1000).astype(np.int64)).cast(pl.Datetime("ms")),
        "user": pl.Series((uniform(seed, k, 1) ** 2 * 5_000).astype(np.int64)).cast(pl.String)
        .str.replace(r"^", "user-"),
        "page": _pick(_PAGES, uniform(seed, k, 2)),
        "country": _pick(_COUNTRIES, uniform(seed, k, 3)),
        "status": pl.Series(_STATUS).gather((uniform(seed, k, 4) * len(_STATUS)).astype(np.uint32)),
        "latency_ms": latency,
    })


KINDS: dict[str, Callable[..., pl.DataFrame]] = {"transactions": transactions, "clicks": clicks}
"""Generators by name, as ``td.sources.generator(kind=...)`` takes them."""
