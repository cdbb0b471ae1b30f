"""Durations and timestamps. Internally all time is integer epoch milliseconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import polars as pl

from tidal.errors import ConfigError

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)\s*$")

Duration = str | int | float | timedelta
"""A duration: ``"200ms"``, ``"10s"``, ``"5m"``, ``"1h"``, ``"1d"``, a ``timedelta``, or
integer milliseconds."""

MIN_TIME = -(2**63)
MAX_TIME = 2**63 - 1


def duration_ms(value: Duration, what: str = "duration") -> int:
    """Convert a duration to whole milliseconds, or raise a :class:`ConfigError` that says
    what a valid one looks like.

    >>> duration_ms("1.5s"), duration_ms("200ms"), duration_ms(250)
    (1500, 200, 250)
    """
    if isinstance(value, bool):
        raise ConfigError(f"bad {what} {value!r}: use a string such as '10s' or '200ms'")
    if isinstance(value, timedelta):
        return int(value.total_seconds() * 1000)
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigError(f"bad {what} {value!r}: durations cannot be negative")
        return int(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return int(float(m.group(1)) * _UNITS_MS[m.group(2)])
    raise ConfigError(
        f"bad {what} {value!r}: write a number followed by a unit (ms, s, m, h, d), "
        "for example '10s', '200ms' or '5m'"
    )


def time_ms_expr(column: str, dtype: pl.DataType) -> pl.Expr:
    """An expression giving the event time of ``column`` as Int64 epoch milliseconds."""
    col = pl.col(column)
    if isinstance(dtype, pl.Datetime):
        return col.dt.epoch("ms")
    if isinstance(dtype, pl.Date):
        return col.cast(pl.Datetime("ms")).dt.epoch("ms")
    if dtype.is_integer():
        return col.cast(pl.Int64)
    if dtype.is_float():
        return col.cast(pl.Int64)
    raise ConfigError(
        f"timestamp column {column!r} has type {dtype}; it must hold epoch milliseconds "
        "(an integer) or datetimes (strings are parsed as ISO 8601 at the source)"
    )


def parse_iso8601(column: str) -> pl.Expr:
    """ISO 8601 strings (``2024-01-01T00:00:01Z``, with an offset, naive, with a space
    instead of ``T``, or a bare date) as naive UTC ``Datetime("ms")``; null when unparsable."""
    text = pl.col(column).str.replace(r"Z$", "+00:00")
    aware = [
        text.str.to_datetime(f, time_unit="ms", strict=False)
        .dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        for f in ("%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%:z")
    ]
    naive = [
        text.str.to_datetime(f, time_unit="ms", strict=False)
        for f in ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d")
    ]
    return pl.coalesce([*aware, *naive])


def time_ms_series(series: pl.Series) -> pl.Series:
    """The event times in ``series`` as an Int64 series of epoch milliseconds (fast path of
    :func:`time_ms_expr` for one column: no expression engine per batch)."""
    dtype = series.dtype
    if isinstance(dtype, pl.Datetime):
        physical = series.to_physical()
        if dtype.time_unit == "ms":
            return physical
        return physical // (1_000 if dtype.time_unit == "us" else 1_000_000)
    if dtype == pl.Int64:
        return series
    if dtype.is_integer() or dtype.is_float():
        return series.cast(pl.Int64)
    return series.to_frame().select(time_ms_expr(series.name, dtype)).to_series()


def from_ms(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def format_ms(ms: int | None) -> str:
    """A short human form of an epoch-millisecond time (or of the open ends)."""
    if ms is None or ms <= MIN_TIME:
        return "-inf"
    if ms >= MAX_TIME:
        return "+inf"
    return from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")
