"""Generator parameters (NEXMARK.md 3.1) and the numbering and timing rules built on them (3.2, 3.3, 3.7)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tidal.errors import ConfigError

__all__ = ["NexmarkConfig", "event_time_ms", "watermark_for"]

BASE_TIME_2020 = 1_577_836_800_000
"""2020-01-01T00:00:00Z in epoch milliseconds: tidal's fixed base time."""

FIRST_PERSON_ID = 1000
FIRST_AUCTION_ID = 1000
FIRST_CATEGORY_ID = 10
NUM_CATEGORIES = 5
HOT_BLOCK = 100
PERSON_ID_LEAD = 10
AUCTION_ID_LEAD = 10

Profile = Literal["v1", "v2", "test"]


@dataclass(frozen=True)
class NexmarkConfig:
    """Everything that decides a Nexmark event stream: equal configs give identical events.

    Defaults are the Flink suite's (NEXMARK.md 3.1) with tidal's fixed base time and seed.

    >>> cfg = NexmarkConfig.profile("v1")
    >>> cfg.events, cfg.rate, cfg.generators
    (100000000, 10000000.0, 8)
    >>> cfg.inter_event_delay_us
    0.8
    """

    events: int = 0
    """N, events in the whole merged stream; 0 means unbounded."""
    rate: float = 10_000.0
    """Events per second of *event time* (all generators together); not a throughput cap."""
    generators: int = 1
    """G, parallel generators merged k-major (for each k, generators 0 ... G-1)."""
    out_of_order_group: int = 1
    """g, events shuffled within consecutive groups of g per generator (3.7); 1 = in order."""
    person_proportion: int = 1
    auction_proportion: int = 3
    bid_proportion: int = 46
    avg_person_bytes: int = 200
    avg_auction_bytes: int = 500
    avg_bid_bytes: int = 100
    hot_auction_ratio: int = 2
    hot_bidders_ratio: int = 4
    hot_sellers_ratio: int = 4
    active_people: int = 1000
    in_flight_auctions: int = 100
    bidder_offset: int = 2000
    """Added to a bidder's base-0 person id: 2000 in the Flink suite, 1000 elsewhere (3.9)."""
    first_event_id: int = 1
    first_event_number: int = 1
    base_time: int = BASE_TIME_2020
    """Event time of event number 0, epoch milliseconds UTC."""
    seed: int = 0

    def __post_init__(self) -> None:
        positive = {
            "rate": self.rate,
            "generators": self.generators,
            "out_of_order_group": self.out_of_order_group,
            "hot_auction_ratio": self.hot_auction_ratio,
            "hot_bidders_ratio": self.hot_bidders_ratio,
            "hot_sellers_ratio": self.hot_sellers_ratio,
            "active_people": self.active_people,
            "in_flight_auctions": self.in_flight_auctions,
            "person_proportion": self.person_proportion,
            "auction_proportion": self.auction_proportion,
            "bid_proportion": self.bid_proportion,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"NexmarkConfig.{name} must be positive, got {value!r}")
        if self.events < 0:
            raise ConfigError(
                f"NexmarkConfig.events must be >= 0 (0 = unbounded), got {self.events}"
            )
        if np.gcd(953, self.out_of_order_group) != 1:
            raise ConfigError(
                f"NexmarkConfig.out_of_order_group={self.out_of_order_group} shares a factor with 953:"
                " the shuffle would not be a permutation; pick a group size not divisible by 953"
            )
        if self.events and self.events < self.generators:
            raise ConfigError(
                f"NexmarkConfig.events={self.events} is fewer than generators={self.generators}"
            )

    @classmethod
    def profile(cls, name: Profile, **overrides: object) -> NexmarkConfig:
        """The tidal profiles of NEXMARK.md 3.1, with optional field overrides.

        - ``v1``: 100 M events at 10 M/s, G = 8 (10 s of event time);
        - ``v2``: 200 M events (150 M warm-up + 50 M measured) at 100 K/s, G = 8;
        - ``test``: 1 M events at 10 K/s, G = 1 (100 s of event time).

        >>> NexmarkConfig.profile("test", seed=7).seed
        7
        """
        presets: dict[str, dict[str, object]] = {
            "v1": {"events": 100_000_000, "rate": 10_000_000.0, "generators": 8},
            "v2": {"events": 200_000_000, "rate": 100_000.0, "generators": 8},
            "test": {"events": 1_000_000, "rate": 10_000.0, "generators": 1},
        }
        if name not in presets:
            raise ConfigError(f"unknown Nexmark profile {name!r}: use one of {sorted(presets)}")
        return cls(**{**presets[name], **overrides})  # type: ignore[arg-type]

    def replace(self, **changes: object) -> NexmarkConfig:
        """A copy with some fields changed.

        >>> NexmarkConfig().replace(events=10).events
        10
        """
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def total_proportion(self) -> int:
        """T, the length of one person/auction/bid cycle of event ids (50 by default)."""
        return self.person_proportion + self.auction_proportion + self.bid_proportion

    @property
    def max_events(self) -> int:
        """Events in the merged stream: ``events``, or Flink's overflow-safe bound when unbounded."""
        if self.events:
            return self.events
        biggest = max(self.avg_person_bytes, self.avg_auction_bytes, self.avg_bid_bytes)
        return (2**63 - 1) // (self.total_proportion * biggest)

    @property
    def events_per_generator(self) -> int:
        """⌊N/G⌋: events of every generator but the last, which also takes N mod G."""
        return self.max_events // self.generators

    @property
    def inter_event_delay_us(self) -> float:
        """d, microseconds of event time between consecutive events of one generator (3.3)."""
        return (1_000_000 / self.rate) * self.generators


def adjusted_number(config: NexmarkConfig, n: np.ndarray) -> np.ndarray:
    """n' of 3.7: event numbers shuffled within groups of g (identity when g = 1)."""
    g = config.out_of_order_group
    if g == 1:
        return n
    return (n // g) * g + (n * 953) % g


def event_time_ms(config: NexmarkConfig, n: np.ndarray | int) -> np.ndarray:
    """ts(n) of 3.3: ``base_time + trunc(n·d) div 1000`` in epoch ms, exactly as Flink computes it.

    >>> cfg = NexmarkConfig.profile("v1")
    >>> int(event_time_ms(cfg, 1250)) - cfg.base_time  # 1250 × 0.8 µs = 1000 µs
    1
    """
    x = np.asarray(n, dtype=np.int64).astype(np.float64) * config.inter_event_delay_us
    return config.base_time + x.astype(np.int64) // 1000


def watermark_for(config: NexmarkConfig, k: np.ndarray | int) -> np.ndarray:
    """A generator's watermark after emitting its k-th event (k from 0): ``ts(g·⌊n/g⌋)``, n = first_event_number + k.

    Every event a generator emits from then on has an event time at or after it (3.7). In the
    k-major merge, once all generators have emitted their k-th event the stream's watermark is
    ``watermark_for(config, k)``.

    >>> cfg = NexmarkConfig.profile("test", out_of_order_group=4)
    >>> int(watermark_for(cfg, 6)) - cfg.base_time  # n = 7, group start 4, 4 × 100 µs
    0
    >>> int(watermark_for(cfg, 40)) - cfg.base_time  # n = 41 -> 40 × 100 µs = 4 ms
    4
    """
    n = config.first_event_number + np.asarray(k, dtype=np.int64)
    g = config.out_of_order_group
    return event_time_ms(config, (n // g) * g)


def clip_range(config: NexmarkConfig, start: int, count: int) -> tuple[int, int]:
    """The part of merged positions [start, start + count) that a bounded stream holds."""
    if start < 0 or count < 0:
        raise ConfigError(f"start and count must be >= 0, got start={start}, count={count}")
    end = min(start + count, config.max_events)
    return start, max(end - start, 0)
