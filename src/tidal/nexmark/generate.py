"""Batches of the merged Nexmark stream: bids only, three per-kind frames, or the one union table.

Positions are numbers in the merged stream (k-major over the G generators, NEXMARK.md 3.7),
counted from 0; a call returns exactly the events at positions [start, start + count), so any
range can be produced directly and splitting a range into several calls changes nothing.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from tidal.nexmark import _events as ev
from tidal.nexmark import _walk as _wk
from tidal.nexmark._draws import Scratch
from tidal.nexmark._memory import Recycler
from tidal.nexmark._text import Pools, StrColumn, pools
from tidal.nexmark.config import ConfigError, NexmarkConfig, clip_range

__all__ = ["bids_table", "generate_bids", "generate_events", "generate_union"]

_KINDS = ("person", "auction", "bid")
_CODES = {"person": _wk.PERSON, "auction": _wk.AUCTION, "bid": _wk.BID}
_COLUMNS = {"person": ev.PERSON_COLUMNS, "auction": ev.AUCTION_COLUMNS, "bid": ev.BID_COLUMNS}


@functools.lru_cache(maxsize=8)
def _keys(seed: int) -> ev.Keys:
    return ev.Keys(seed)


_OUTPUT = Recycler()
_local = threading.local()


def _scratch() -> Scratch:
    """This thread's temporaries for the steps of a walk (allocated once, not per call)."""
    if not hasattr(_local, "scratch"):
        _local.scratch = Scratch(_wk.STEP)
    _local.scratch.reset()
    return _local.scratch


def _check_columns(kind: str, columns: Sequence[str] | None) -> tuple[str, ...]:
    valid = _COLUMNS[kind]
    if columns is None:
        return valid
    if isinstance(columns, str):
        columns = [columns]
    unknown = [c for c in columns if c not in valid]
    if unknown:
        raise ConfigError(f"unknown {kind} column(s) {unknown}: choose from {list(valid)}")
    return tuple(columns)


def _bid_buffer(p: Pools, column: str) -> pa.Buffer:
    return {"channel": p.channels.pool, "url": p.urls.pool, "extra": p.extra}[column].buffer


def _run(
    config: NexmarkConfig,
    start: int,
    count: int,
    want: dict[str, tuple[str, ...]],
    keep_kinds: bool = False,
    with_positions: bool = True,
) -> tuple[dict[str, dict[str, ev.Column]], dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Columns and merged positions per wanted kind, and (if keep_kinds) kind and time per event.

    The range is walked in cache-sized steps. Bids are computed per step straight into the
    output arrays (sized for the worst case, every event a bid); persons and auctions (8 % of
    events) are gathered and computed once at the end.
    """
    start, count = clip_range(config, start, count)
    p, keys = pools(config.seed), _keys(config.seed)
    bid_cols = want.get("bid")
    bid_out: dict[str, np.ndarray] = {}
    if bid_cols is not None:
        for c in bid_cols:
            shape = (count, 2) if c in ev.STRING_COLUMNS else (count,)
            dtype = np.uint64 if c in ev.STRING_COLUMNS else np.int64
            bid_out[c] = _OUTPUT.empty(shape, dtype)
    bid_pos = _OUTPUT.empty(count if bid_cols is not None and with_positions else 0, np.int64)
    nb = 0
    scratch = _scratch()
    picked: dict[str, list[tuple[np.ndarray, ...]]] = {"person": [], "auction": []}
    kinds: list[np.ndarray] = []
    times: list[np.ndarray] = []
    codes = {_CODES[k] for k in want}
    for step in _wk.walk(config, start, count, codes, keep_kinds, scratch):
        if keep_kinds:
            kinds.append(step.kind)
            times.append(step.time)
        if bid_cols is not None:
            bids = step.events[_wk.BID]
            m = len(bids.idx)
            dest = {c: a[nb : nb + m] for c, a in bid_out.items()}
            tb = bids.times(out=dest["dateTime"]) if "dateTime" in dest else None
            ev.bids(config, p, keys, bids.bid_ids, tb, bid_cols, out=dest, tmp=scratch)
            if with_positions:
                np.add(bids.idx, step.start, out=bid_pos[nb : nb + m])
            nb += m
        for kind in ("person", "auction"):
            if kind in want:
                x = step.events[_CODES[kind]]
                picked[kind].append((step.start + x.idx, x.e, x.nprime, x.times()))
        scratch.reset()
    columns: dict[str, dict[str, ev.Column]] = {}
    positions: dict[str, np.ndarray] = {}
    if bid_cols is not None:
        columns["bid"] = {
            c: StrColumn(a[:nb], _bid_buffer(p, c)) if c in ev.STRING_COLUMNS else a[:nb]
            for c, a in bid_out.items()
        }
        positions["bid"] = bid_pos[:nb] if with_positions else bid_pos
    for kind in ("person", "auction"):
        if kind not in want:
            continue
        parts = picked[kind] or [tuple(np.empty(0, np.int64) for _ in range(4))]
        arrays = [np.concatenate(a) for a in zip(*parts, strict=True)]
        positions[kind] = arrays[0]
        if kind == "person":
            columns[kind] = ev.persons(config, p, keys, arrays[1], arrays[3], want[kind])
        else:
            columns[kind] = ev.auctions(
                config, p, keys, arrays[1], arrays[2], arrays[3], want[kind]
            )
    kind_all = np.concatenate(kinds) if kinds else np.empty(0, np.int32)
    time_all = np.concatenate(times) if times else np.empty(0, np.int64)
    return columns, positions, kind_all, time_all


def _series(name: str, col: ev.Column) -> pl.Series:
    if isinstance(col, StrColumn):
        return pl.Series(name, pl.from_arrow(col.to_arrow()))
    s = pl.Series(name, col)
    return s.cast(pl.Datetime("ms")) if name in ev.TIME_COLUMNS else s


def _frame(cols: dict[str, ev.Column], positions: np.ndarray | None) -> pl.DataFrame:
    series = [_series(name, col) for name, col in cols.items()]
    if positions is not None:
        series.append(pl.Series("event_id", positions))
    return pl.DataFrame(series)


def generate_bids(
    config: NexmarkConfig,
    start: int,
    count: int,
    *,
    columns: Sequence[str] | None = None,
    with_event_id: bool = False,
) -> pl.DataFrame:
    """The bids among merged-stream positions [start, start + count), as the ``bid`` view.

    ``start``/``count`` count *events* (all kinds), not bids. ``columns`` picks a subset of
    ``auction, bidder, price, channel, url, dateTime, extra`` (in the order given): the string
    columns cost most, so skip them when unused. ``with_event_id`` adds ``event_id``, the
    event's merged-stream position (the arrival order, a total order for tie-breaks).

    >>> cfg = NexmarkConfig.profile("test")
    >>> df = generate_bids(cfg, 0, 50, columns=["auction", "bidder", "price"], with_event_id=True)
    >>> df.height, df.columns
    (46, ['auction', 'bidder', 'price', 'event_id'])
    >>> df["event_id"][0]  # positions 0 and 1 are auctions 1001 and 1002
    2
    """
    cols = _check_columns("bid", columns)
    data, pos, _, _ = _run(config, start, count, {"bid": cols}, with_positions=with_event_id)
    return _frame(data["bid"], pos["bid"] if with_event_id else None)


def generate_events(
    config: NexmarkConfig, start: int, count: int, *, with_event_id: bool = False
) -> dict[str, pl.DataFrame]:
    """The events at merged-stream positions [start, start + count) as three per-kind frames.

    Keys ``person``, ``auction``, ``bid``; columns in the view order of NEXMARK.md 2.3, plus
    ``event_id`` (merged-stream position) when asked.

    >>> frames = generate_events(NexmarkConfig.profile("test"), 0, 100)
    >>> {k: v.height for k, v in frames.items()}
    {'person': 2, 'auction': 6, 'bid': 92}
    >>> frames["person"]["id"].to_list()
    [1001, 1002]
    """
    data, pos, _, _ = _run(config, start, count, dict(_COLUMNS), with_positions=with_event_id)
    return {k: _frame(data[k], pos[k] if with_event_id else None) for k in _KINDS}


def _struct(cols: dict[str, ev.Column], mask: np.ndarray) -> pa.Array:
    """A struct column holding ``cols`` at the rows where ``mask`` is set, NULL elsewhere."""
    n = len(mask)
    validity = pa.py_buffer(np.packbits(mask, bitorder="little"))
    nulls = n - int(np.count_nonzero(mask))
    children, fields = [], []
    for name, col in cols.items():
        if isinstance(col, StrColumn):
            views = np.zeros(n, dtype=np.complex128)  # 16-byte items; zero = the empty string
            views[mask] = col.views.view(np.complex128).ravel()
            child = StrColumn(views.view(np.uint64).reshape(n, 2), col.buffer).to_arrow(
                validity, nulls
            )
        else:
            values = np.zeros(n, dtype=np.int64)
            values[mask] = col
            typ = pa.timestamp("ms") if name in ev.TIME_COLUMNS else pa.int64()
            child = pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(values)], nulls)
        children.append(child)
        fields.append(pa.field(name, child.type))
    return pa.Array.from_buffers(pa.struct(fields), n, [validity], nulls, children=children)


def generate_union(
    config: NexmarkConfig,
    start: int,
    count: int,
    *,
    with_event_id: bool = False,
    structs: Mapping[str, Sequence[str]] | None = None,
) -> pl.DataFrame:
    """The one interleaved table of NEXMARK.md 2.1 for merged positions [start, start + count).

    Columns ``event_type`` (int32: 0 person, 1 auction, 2 bid), the ``person``, ``auction`` and
    ``bid`` structs (exactly one non-NULL per row), the top-level ``dateTime``, and ``event_id``
    (merged-stream position) when asked. ``structs`` builds only some of the structs, each with
    some of its fields in the order given (by default all three with every field): what is left
    out costs nothing.

    >>> df = generate_union(NexmarkConfig.profile("test"), 0, 50)
    >>> df["event_type"].value_counts(sort=True).rows()
    [(2, 46), (1, 3), (0, 1)]
    >>> df["auction"].struct.field("id").drop_nulls().to_list()
    [1001, 1002, 1003]
    >>> generate_union(NexmarkConfig.profile("test"), 0, 50, structs={"bid": ["price"]}).columns
    ['event_type', 'bid', 'dateTime']
    """
    if structs is None:
        want = dict(_COLUMNS)
    else:
        unknown = [k for k in structs if k not in _COLUMNS]
        if unknown:
            raise ConfigError(f"unknown Nexmark struct(s) {unknown}: choose from {list(_KINDS)}")
        want = {k: _check_columns(k, structs[k]) for k in _KINDS if k in structs}
    first, n = clip_range(config, start, count)
    data, _, kind, t = _run(config, first, n, want, keep_kinds=True, with_positions=False)
    series = [pl.Series("event_type", kind)]
    for code, k in enumerate(_KINDS):
        if k in want:
            series.append(pl.Series(k, pl.from_arrow(_struct(data[k], kind == code))))
    series.append(pl.Series("dateTime", t).cast(pl.Datetime("ms")))
    if with_event_id:
        series.append(pl.Series("event_id", np.arange(first, first + n, dtype=np.int64)))
    return pl.DataFrame(series)


def bids_table(
    n_bids: int, config: NexmarkConfig | None = None, *, columns: Sequence[str] | None = None
) -> pl.DataFrame:
    """Exactly ``n_bids`` bids from the start of the stream (default config: profile ``v1``).

    >>> bids_table(1000, columns=["auction", "price"]).shape
    (1000, 2)
    """
    config = config or NexmarkConfig.profile("v1")
    share = config.bid_proportion / config.total_proportion
    # enough events for n_bids plus slack for the start of each generator's cycle
    count = int(n_bids / share) + config.total_proportion * (config.generators + 1)
    if config.events:
        count = min(count, config.events)
    df = generate_bids(config, 0, count, columns=columns)
    if df.height < n_bids:
        raise ConfigError(
            f"bids_table: the stream has only {df.height} bids; raise config.events (now {config.events})"
        )
    return df.head(n_bids)
