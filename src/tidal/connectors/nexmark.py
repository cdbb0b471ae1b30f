"""The Nexmark generator (shared/NEXMARK.md) as a source: one view (``bid``, ``auction`` or
``person``) of the seeded, vectorized stream of :mod:`tidal.nexmark`, or the one interleaved
table of all three (:func:`nexmark_union`, Flink's ``datagen`` table: ``event_type`` and the
``person``, ``auction`` and ``bid`` ROWs).

The source has one partition holding the merged stream of all G generators (k-major, as
NEXMARK.md 3.7 defines it). Its position is the merged event number reached, so a
restarted flow regenerates exactly the events after it. Only the requested ``columns`` are
built (the string columns cost most).

>>> import tidal as td
>>> from tidal.connectors.nexmark import nexmark
>>> flow = td.Flow("bids")
>>> out = td.sinks.memory()
>>> flow.source(nexmark("bid", events=1000, columns=["auction", "price"])).sink(out)
>>> _ = flow.run(quiet=True)
>>> out.frame().height
920
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import polars as pl

from tidal.connectors.base import Source, SourceContext, SourcePartition
from tidal.errors import ConfigError
from tidal.nexmark import NexmarkConfig, generate_bids, generate_union
from tidal.nexmark._events import AUCTION_COLUMNS, BID_COLUMNS, PERSON_COLUMNS
from tidal.nexmark.generate import _frame, _run

__all__ = ["KINDS", "Nexmark", "NexmarkUnion", "nexmark", "nexmark_union"]

KINDS: dict[str, tuple[str, ...]] = {
    "bid": tuple(BID_COLUMNS), "auction": tuple(AUCTION_COLUMNS), "person": tuple(PERSON_COLUMNS),
}
_EVENTS_PER_POLL_MAX = 1 << 20


class _Generated(Source):
    """What the Nexmark sources share: one partition whose position is the next event
    number, read through :meth:`generate` (a pure function of the event range)."""

    name = "nexmark"
    config: NexmarkConfig
    events_per_row: int

    @abstractmethod
    def generate(self, start: int, count: int) -> pl.DataFrame:
        """The source's rows for merged events ``[start, start + count)``."""

    def partitions(self) -> list[str]:
        return ["0"]

    def open(self, partition: str, position: Any, ctx: SourceContext) -> SourcePartition:
        return _NexmarkPartition(self, position)

    def schema(self) -> pl.Schema:
        return self.generate(0, 0).schema

    @property
    def bounded(self) -> bool:
        return self.config.events > 0


class _NexmarkPartition(SourcePartition):
    def __init__(self, src: _Generated, position: int | None) -> None:
        self.src = src
        self.k = int(position or 0)

    def poll(self, max_rows: int) -> pl.DataFrame | None:
        src = self.src
        left = src.config.max_events - self.k
        if left <= 0:
            return None
        # max_rows counts output rows; a bid view keeps 92 % of events, the others far fewer
        n = min(left, max(1, min(max_rows * src.events_per_row, _EVENTS_PER_POLL_MAX)))
        frame = src.generate(self.k, n)
        self.k += n
        return frame

    @property
    def done(self) -> bool:
        return self.k >= self.src.config.max_events

    def position(self) -> int:
        return self.k


class Nexmark(_Generated):
    """One view of the Nexmark stream configured by ``config`` (see :func:`nexmark`)."""

    name = "nexmark"

    def __init__(self, kind: str, config: NexmarkConfig, columns: Sequence[str] | None = None,
                 event_id: bool = False) -> None:
        if kind not in KINDS:
            raise ConfigError(f"unknown Nexmark kind {kind!r}: use one of {', '.join(KINDS)}")
        cols = tuple(KINDS[kind] if columns is None else columns)
        unknown = [c for c in cols if c not in KINDS[kind]]
        if unknown:
            raise ConfigError(f"unknown {kind} column(s) {unknown}: choose from {list(KINDS[kind])}")
        self.kind, self.config, self.columns, self.event_id = kind, config, cols, event_id
        share = {"bid": config.bid_proportion, "auction": config.auction_proportion,
                 "person": config.person_proportion}[kind]
        self.events_per_row = max(1, round(config.total_proportion / share))

    def generate(self, start: int, count: int) -> pl.DataFrame:
        """The view's rows among merged events ``[start, start + count)``."""
        if self.kind == "bid":
            frame = generate_bids(self.config, start, count, columns=list(self.columns),
                                  with_event_id=self.event_id)
        else:
            # only this kind's columns are built (generate_events builds all three views)
            data, pos, _, _ = _run(self.config, start, count, {self.kind: self.columns},
                                   with_positions=self.event_id)
            frame = _frame(data[self.kind], pos[self.kind] if self.event_id else None)
        return frame


def nexmark(kind: str = "bid", *, events: int = 0, rate: float = 10_000.0, generators: int = 1,
            out_of_order_group: int = 1, seed: int = 0, columns: Sequence[str] | None = None,
            event_id: bool = False, config: NexmarkConfig | None = None, **options: Any) -> Nexmark:
    """The ``kind`` view (``"bid"``, ``"auction"``, ``"person"``) of a Nexmark stream of
    ``events`` events (0: unbounded) at ``rate`` events per second of event time from
    ``generators`` generators; ``columns`` limits what is built; ``event_id=True`` adds the
    merged position (arrival order). Other :class:`~tidal.nexmark.NexmarkConfig` fields may
    be given as keywords, or a whole ``config``."""
    if config is None:
        config = NexmarkConfig(events=events, rate=rate, generators=generators,
                               out_of_order_group=out_of_order_group, seed=seed, **options)
    return Nexmark(kind, config, columns, event_id)


UNION_COLUMNS = ("event_type", "person", "auction", "bid", "dateTime", "event_id")
"""The columns of the interleaved table, in :func:`tidal.nexmark.generate_union`'s order."""


class NexmarkUnion(_Generated):
    """The interleaved Nexmark table configured by ``config`` (see :func:`nexmark_union`)."""

    name = "nexmark"
    events_per_row = 1

    def __init__(self, config: NexmarkConfig, columns: Sequence[str] | None = None,
                 fields: dict[str, Sequence[str]] | None = None,
                 types: dict[str, pl.DataType] | None = None) -> None:
        cols = tuple(UNION_COLUMNS[:4] if columns is None else columns)
        unknown = [c for c in cols if c not in UNION_COLUMNS]
        if unknown:
            raise ConfigError(f"the Nexmark table has no column(s) {unknown}; its columns are "
                              f"{list(UNION_COLUMNS)}")
        fields = {k: tuple(v) for k, v in (fields or {}).items()}
        for kind, names in fields.items():
            bad = [f for f in names if f not in KINDS.get(kind, ())]
            if bad:
                raise ConfigError(f"the Nexmark {kind} ROW has no field(s) {bad}; its fields "
                                  f"are {list(KINDS.get(kind, ()))}")
        self.config, self.columns, self.types = config, cols, dict(types or {})
        # only the declared structs are built, with their declared fields in their order
        self._structs = {c: fields.get(c, KINDS[c]) for c in cols if c in KINDS}
        self._select = [pl.col(c).cast(self.types[c]) if c in self.types else pl.col(c)
                        for c in cols]

    def generate(self, start: int, count: int) -> pl.DataFrame:
        """The table's rows for merged events ``[start, start + count)``."""
        frame = generate_union(self.config, start, count, with_event_id="event_id" in self.columns,
                               structs=self._structs)
        return frame.select(self._select)


def nexmark_union(*, events: int = 0, rate: float = 10_000.0, generators: int = 1,
                  out_of_order_group: int = 1, seed: int = 0, columns: Sequence[str] | None = None,
                  fields: dict[str, Sequence[str]] | None = None,
                  config: NexmarkConfig | None = None, **options: Any) -> NexmarkUnion:
    """The one interleaved Nexmark table (NEXMARK.md 2.1): ``event_type`` (0 person, 1 auction,
    2 bid) and the ``person``, ``auction`` and ``bid`` structs, exactly one non-NULL per row.

    ``columns`` picks from ``event_type, person, auction, bid, dateTime, event_id`` (the
    populated record's time and the arrival position); ``fields`` keeps some fields of a
    struct, in the order given. Only the chosen structs and fields are built, but every event
    is walked: it costs more than one view (:func:`nexmark`).

    >>> import tidal as td
    >>> from tidal.connectors.nexmark import nexmark_union
    >>> flow = td.Flow("union")
    >>> out = td.sinks.memory()
    >>> flow.source(nexmark_union(events=100, fields={"bid": ["auction", "price"]})).sink(out)
    >>> _ = flow.run(quiet=True)
    >>> out.frame().filter(event_type=2)["bid"].struct.field("price").len()
    92
    """
    if config is None:
        config = NexmarkConfig(events=events, rate=rate, generators=generators,
                               out_of_order_group=out_of_order_group, seed=seed, **options)
    return NexmarkUnion(config, columns, fields)
