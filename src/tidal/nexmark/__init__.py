"""Vectorized, seeded Nexmark generator (NEXMARK.md sections 2–3).

The Flink suite's rules (ids, hot keys, prices, strings, event time), with tidal's deliberate
choices: a fixed base time (2020-01-01T00:00:00Z), a seed, a k-major merge of the G generators
and a constant rate. Every random draw is a pure function of (seed, event id, draw slot), so
batches are independent of batch size and any range can be produced directly (seek).

- :class:`NexmarkConfig` — parameters and the ``v1``/``v2``/``test`` profiles;
- :func:`generate_bids` — the ``bid`` view of a range of the merged stream, optionally only some
  columns (the string columns cost most);
- :func:`generate_events` — the ``person``, ``auction`` and ``bid`` views of a range;
- :func:`generate_union` — the one interleaved table (``event_type`` + three struct columns);
- :func:`bids_table` — exactly n bids, for tests and benchmarks;
- :func:`event_time_ms`, :func:`watermark_for` — event time of an event number and the
  generator watermark (out-of-order groups).

Ranges are positions in the merged stream (all kinds, k-major over generators, from 0). The
optional ``event_id`` column is that position: the arrival order, a total order for tie-breaks.

>>> from tidal.nexmark import NexmarkConfig, generate_bids
>>> cfg = NexmarkConfig.profile("v1")
>>> generate_bids(cfg, 0, 1000, columns=["auction", "bidder", "price", "dateTime"]).height
920
"""

from tidal.nexmark.config import NexmarkConfig, event_time_ms, watermark_for
from tidal.nexmark.generate import bids_table, generate_bids, generate_events, generate_union

__all__ = [
    "NexmarkConfig",
    "bids_table",
    "event_time_ms",
    "generate_bids",
    "generate_events",
    "generate_union",
    "watermark_for",
]
