"""Flink's date and time functions, translated to Polars temporal expressions.

Timestamps are zone-less and read as UTC (a ``TIMESTAMP_LTZ`` too: the session time zone is
UTC). A mixin of :class:`~tidal.sql.expressions.Translator` (``self`` is a Translator):
methods named ``_<sqlglot node class>`` translate the functions sqlglot parses into their own
nodes, and ``_fn_<name>`` the ones it leaves as ``Anonymous`` calls.

Where Flink's results are surprising, the translation still follows Flink: ``TIMESTAMPDIFF``
truncates toward zero and counts months the way Flink's ``DateTimeUtils.subtractMonths``
does (from 31 January, the last day of February is one month later), ``DAYOFWEEK`` counts
from Sunday = 1, ``FLOOR``/``CEIL(... TO WEEK)`` round to a Sunday, ``EXTRACT(MILLISECOND
...)`` is the milliseconds within the minute, and ``UNIX_TIMESTAMP(s)`` is
``-9223372036854775808`` when ``s`` cannot be parsed.

>>> import polars as pl, sqlglot
>>> from tidal.sql.dialect import Flink
>>> from tidal.sql.expressions import Scope, Translator
>>> e = Translator(Scope([], pl.Schema())).expr(sqlglot.parse_one(
...     "TIMESTAMPDIFF(MONTH, TIMESTAMP '2021-01-31 10:00:00', TIMESTAMP '2021-02-28 10:00:00')",
...     read=Flink))
>>> pl.select(e).item()
1
"""

from __future__ import annotations

import zoneinfo
from typing import TYPE_CHECKING

import polars as pl
from sqlglot import exp

from tidal.sql.errors import error, refused, unsupported

if TYPE_CHECKING:
    from tidal.sql.expressions import Translator

__all__ = ["FLINK_SIGNATURES", "TimeFunctions"]

FLINK_SIGNATURES = ("TIMESTAMPDIFF", "TO_DATE", "TO_TIMESTAMP")
"""Functions the dialect must leave as plain calls: sqlglot parses them with other
databases' signatures (``TIMESTAMPDIFF``'s third argument as a unit, ``TO_DATE``'s Java
pattern as a PostgreSQL one, ``TO_TIMESTAMP(s)`` as epoch seconds)."""

_MS = {"MILLISECOND": 1, "SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000,
       "DAY": 86_400_000, "WEEK": 7 * 86_400_000}
_MONTHS = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}
_ADD_UNITS = ("SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR")
_ROUND_UNITS = {"MILLISECOND": "1ms", "SECOND": "1s", "MINUTE": "1m", "HOUR": "1h",
                "DAY": "1d", "WEEK": "1w", "MONTH": "1mo", "QUARTER": "1q", "YEAR": "1y"}
_PARTS = ("YEAR", "QUARTER", "MONTH", "WEEK", "DAY", "DOY", "DOW", "HOUR", "MINUTE", "SECOND",
          "MILLISECOND")
_DEFAULT_TIMESTAMP = "yyyy-MM-dd HH:mm:ss"
_ISO = "%Y-%m-%d %H:%M:%S"  # _DEFAULT_TIMESTAMP as strftime
_LONG_MIN = -(2**63)
_PROCESSING_TIME = "use PROCTIME() for processing time"


class TimeFunctions:
    """Date and time functions (see the module docstring)."""

    # -- parts of a date or timestamp -------------------------------------------------------
    def _year(self: Translator, node: exp.Year) -> pl.Expr:
        return _part(self, "YEAR", node.this, node)

    def _quarter(self: Translator, node: exp.Quarter) -> pl.Expr:
        return _part(self, "QUARTER", node.this, node)

    def _month(self: Translator, node: exp.Month) -> pl.Expr:
        return _part(self, "MONTH", node.this, node)

    def _week(self: Translator, node: exp.Week) -> pl.Expr:
        if node.args.get("mode") is not None:
            raise unsupported("WEEK with a mode (MySQL's second argument)", node,
                              "Flink's WEEK(t) is the ISO 8601 week")
        return _part(self, "WEEK", node.this, node)

    def _dayofyear(self: Translator, node: exp.DayOfYear) -> pl.Expr:
        return _part(self, "DOY", node.this, node)

    def _dayofmonth(self: Translator, node: exp.DayOfMonth) -> pl.Expr:
        return _part(self, "DAY", node.this, node)

    def _dayofweek(self: Translator, node: exp.DayOfWeek) -> pl.Expr:
        return _part(self, "DOW", node.this, node)

    def _second(self: Translator, node: exp.Second) -> pl.Expr:
        return _part(self, "SECOND", node.this, node)

    def _extract(self: Translator, node: exp.Extract) -> pl.Expr:
        """``EXTRACT(unit FROM t)`` for every unit of :data:`_PARTS`."""
        return _part(self, node.this.name.upper(), node.expression, node)

    def _cast_time(self: Translator, v: pl.Expr, src: pl.DataType,
                   to: pl.DataType) -> pl.Expr | None:
        """``CAST`` to or from DATE (``DATE '2020-01-31'`` is one), as Flink writes and reads
        dates (``yyyy-MM-dd``); None for other casts (Translator's ``_cast`` asks here
        first)."""
        if src == pl.String and to == pl.Date:
            return v.str.to_date("%Y-%m-%d", strict=False, exact=False)
        if src == pl.Date and to == pl.String:
            return v.dt.strftime("%Y-%m-%d")
        if isinstance(src, pl.Datetime) and to == pl.Date:
            return v.dt.date()
        return None

    # -- arithmetic and rounding ------------------------------------------------------------
    def _fn_timestampdiff(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        unit = _unit(node, args, 3, _ADD_UNITS)
        t1, t2 = _instant(self, args[1]), _instant(self, args[2])
        if unit in _MONTHS:
            months = _subtract_months(t2, t1)
            out = months.abs() // _MONTHS[unit] * months.sign()
        else:
            ms = t2.dt.epoch("ms") - t1.dt.epoch("ms")
            out = ms.abs() // _MS[unit] * ms.sign()
        return out.cast(pl.Int32, strict=False)  # Flink's INT

    def _fn_timestampadd(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        unit = _unit(node, args, 3, _ADD_UNITS)
        n, t = self.expr(args[1]), self.expr(args[2])
        if not self.dtype(n).is_integer():
            raise error(f"TIMESTAMPADD needs an integer count, got {args[1].sql()}", node)
        n = n.cast(pl.Int64)
        if unit in _MONTHS:
            return _temporal(self, t, args[2]).dt.offset_by(pl.format("{}mo", n * _MONTHS[unit]))
        if self.dtype(t) == pl.Date and unit in ("DAY", "WEEK"):
            return t + pl.duration(days=n * (_MS[unit] // _MS["DAY"]))  # stays a DATE
        return _instant(self, args[2]) + pl.duration(milliseconds=n * _MS[unit])

    def _floor_time(self: Translator, node: exp.Floor) -> pl.Expr:
        """``FLOOR(t TO unit)`` (numeric ``_floor`` delegates here when there is a unit)."""
        unit = _round_unit(node)
        return _floor_to(_temporal(self, self.expr(node.this), node.this), unit)

    def _ceil_time(self: Translator, node: exp.Ceil) -> pl.Expr:
        """``CEIL(t TO unit)``: ``t`` itself when it is on a boundary, else the next one."""
        unit = _round_unit(node)
        t = _temporal(self, self.expr(node.this), node.this)
        down = _floor_to(t, unit)
        return pl.when(down == t).then(down).otherwise(down.dt.offset_by(_ROUND_UNITS[unit]))

    # -- conversions ------------------------------------------------------------------------
    def _fn_unix_timestamp(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        if not args:
            raise unsupported("UNIX_TIMESTAMP() without an argument (the current time) in a "
                              "continuous query", node, _PROCESSING_TIME)
        fmt = _pattern(node, args, _DEFAULT_TIMESTAMP)
        s = _string(self, args[0], node)
        ms = s.str.to_datetime(fmt, time_unit="ms", strict=False, exact=False).dt.epoch("ms")
        seconds = ms.abs() // 1000 * ms.sign()  # Java's long division truncates
        return pl.when(s.is_null()).then(None).otherwise(seconds.fill_null(_LONG_MIN))

    def _fn_from_unixtime(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        fmt = _pattern(node, args, _DEFAULT_TIMESTAMP)
        n = self.expr(args[0])
        if not self.dtype(n).is_integer():
            raise error(f"FROM_UNIXTIME needs an integer number of seconds, got "
                        f"{args[0].sql()}", node)
        return pl.from_epoch(n.cast(pl.Int64), time_unit="s").dt.strftime(fmt)

    def _fn_to_date(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        fmt = _pattern(node, args, "yyyy-MM-dd")
        return _string(self, args[0], node).str.to_date(fmt, strict=False, exact=False)

    def _fn_convert_tz(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        if len(args) != 3:
            raise error(f"CONVERT_TZ takes 3 arguments (string, from zone, to zone), got "
                        f"{len(args)}", node)
        source, target = _zone(args[1], node), _zone(args[2], node)
        t = _string(self, args[0], node).str.to_datetime(_ISO, time_unit="ms", strict=False,
                                                          exact=False)
        t = t.dt.replace_time_zone(source, ambiguous="earliest", non_existent="null")
        return t.dt.convert_time_zone(target).dt.strftime(_ISO)

    # -- what a continuous query cannot compute ---------------------------------------------
    @refused
    def _currentdate(self: Translator, node: exp.CurrentDate) -> pl.Expr:
        raise unsupported("CURRENT_DATE in a continuous query", node, _PROCESSING_TIME)

    @refused
    def _currenttime(self: Translator, node: exp.CurrentTime) -> pl.Expr:
        raise unsupported("CURRENT_TIME in a continuous query", node, _PROCESSING_TIME)

    @refused
    def _localtimestamp(self: Translator, node: exp.Localtimestamp) -> pl.Expr:
        raise unsupported("LOCALTIMESTAMP in a continuous query", node, _PROCESSING_TIME)

    @refused
    def _localtime(self: Translator, node: exp.Localtime) -> pl.Expr:
        raise unsupported("LOCALTIME in a continuous query", node, _PROCESSING_TIME)

    @refused
    def _fn_current_row_timestamp(self: Translator, node: exp.Expr,
                                  args: list[exp.Expr]) -> pl.Expr:
        raise unsupported("CURRENT_ROW_TIMESTAMP() in a continuous query", node,
                          _PROCESSING_TIME)

    @refused
    def _fn_current_watermark(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        raise unsupported("CURRENT_WATERMARK", node,
                          "a scalar expression does not see its operator's watermark; event-"
                          "time windows, OVER and interval joins already drop late rows")


# -- helpers ----------------------------------------------------------------------------------
def _unit(node: exp.Expr, args: list[exp.Expr], count: int, units: tuple[str, ...]) -> str:
    """The unit named by a function's first argument (``TIMESTAMPADD(DAY, ...)``)."""
    name = node.name.upper()
    if len(args) != count:
        raise error(f"{name} takes {count} arguments (unit, ...), got {len(args)}", node)
    unit = args[0].name.upper() if isinstance(args[0], (exp.Column, exp.Var)) else ""
    if unit not in units:
        raise unsupported(f"{name} with the unit {args[0].sql()}", node,
                          f"use {', '.join(units)}")
    return unit


def _round_unit(node: exp.Floor | exp.Ceil) -> str:
    unit = node.args["to"].name.upper()
    if unit not in _ROUND_UNITS:
        raise unsupported(f"{node.key.upper()}(... TO {unit})", node,
                          f"use {', '.join(_ROUND_UNITS)}")
    return unit


def _temporal(t: Translator, e: pl.Expr, node: exp.Expr) -> pl.Expr:
    """``e`` as a zone-less DATE or TIMESTAMP (a TIMESTAMP_LTZ reads as UTC); an error for
    any other type."""
    dtype = t.dtype(e)
    if isinstance(dtype, pl.Datetime):
        e = e.dt.replace_time_zone(None) if dtype.time_zone else e
        return e.dt.cast_time_unit("ms")
    if dtype == pl.Date:
        return e
    from tidal.sql.catalog import describe_type

    raise error(f"expected a DATE or TIMESTAMP, got {node.sql()} of type "
                f"{describe_type(dtype)}", node)


def _instant(t: Translator, node: exp.Expr) -> pl.Expr:
    """``node`` as a TIMESTAMP(3): a DATE is its midnight."""
    return _temporal(t, t.expr(node), node).cast(pl.Datetime("ms"))


def _part(t: Translator, unit: str, node: exp.Expr, where: exp.Expr) -> pl.Expr:
    """A field of a DATE or TIMESTAMP as Flink's BIGINT (``unit`` as in ``EXTRACT``)."""
    if unit not in _PARTS:
        raise unsupported(f"EXTRACT({unit} FROM ...)", where, f"use {', '.join(_PARTS)}")
    v = _temporal(t, t.expr(node), node)
    if unit in ("HOUR", "MINUTE", "SECOND", "MILLISECOND"):
        v = v.cast(pl.Datetime("ms"))
    parts = {"YEAR": v.dt.year, "QUARTER": v.dt.quarter, "MONTH": v.dt.month,
             "WEEK": v.dt.week, "DAY": v.dt.day, "DOY": v.dt.ordinal_day,
             "DOW": lambda: v.dt.weekday() % 7 + 1,  # Polars: Monday = 1; Flink: Sunday = 1
             "HOUR": v.dt.hour, "MINUTE": v.dt.minute, "SECOND": v.dt.second,
             "MILLISECOND": lambda: v.dt.second().cast(pl.Int64) * 1000 + v.dt.millisecond()}
    return parts[unit]().cast(pl.Int64)


def _floor_to(t: pl.Expr, unit: str) -> pl.Expr:
    if unit == "WEEK":  # Flink's weeks start on Sunday, Polars' on Monday
        day = pl.duration(days=1)
        return (t + day).dt.truncate("1w") - day
    return t.dt.truncate(_ROUND_UNITS[unit])


def _subtract_months(t0: pl.Expr, t1: pl.Expr) -> pl.Expr:
    """Whole months from ``t1`` to ``t0``, as Flink's ``DateTimeUtils.subtractMonths``.

    On dates: the most months ``m`` with ``addMonths(d1, m) <= d0`` (``addMonths`` clamps to
    the month's last day), negated when ``d0 < d1``; then one less when ``addMonths(d1, m)``
    lands on ``d0`` and ``t0``'s time of day is before ``t1``'s.
    """
    d0, d1 = t0.dt.date(), t1.dt.date()
    y0, y1 = d0.dt.year().cast(pl.Int64), d1.dt.year().cast(pl.Int64)
    m0, m1 = d0.dt.month().cast(pl.Int64), d1.dt.month().cast(pl.Int64)
    day0, day1 = d0.dt.day().cast(pl.Int64), d1.dt.day().cast(pl.Int64)
    last0 = d0.dt.month_end().dt.day().cast(pl.Int64)
    last1 = d1.dt.month_end().dt.day().cast(pl.Int64)
    months = (y0 - y1) * 12 + (m0 - m1)
    landing = pl.min_horizontal(day1, last0)  # addMonths(d1, months)'s day of month
    x = pl.when(d0 >= d1) \
        .then(months - (landing > day0).cast(pl.Int64)) \
        .otherwise(months + (pl.min_horizontal(day0, last1) > day1).cast(pl.Int64))
    lands = (x == months) & (landing == day0) & (t0.dt.time() < t1.dt.time())
    return x - lands.cast(pl.Int64)


def _pattern(node: exp.Expr, args: list[exp.Expr], default: str) -> str:
    """The strftime form of the Java date pattern of ``F(value[, pattern])`` (a string
    literal), or of ``default`` when the call has none."""
    from tidal.sql.expressions import java_time_format

    if len(args) not in (1, 2):
        raise error(f"{node.name.upper()} takes 1 or 2 arguments, got {len(args)}", node)
    if len(args) == 1:
        return java_time_format(default, node)
    fmt = args[1]
    if not (isinstance(fmt, exp.Literal) and fmt.is_string):
        raise unsupported(f"{node.name.upper()} with a format that is not a string literal",
                          node)
    return java_time_format(fmt.this, node)


def _string(t: Translator, node: exp.Expr, where: exp.Expr) -> pl.Expr:
    e = t.expr(node)
    dtype = t.dtype(e)
    if dtype not in (pl.String, pl.Null):
        raise error(f"{where.name.upper()} needs a STRING, got {node.sql()} of type {dtype}",
                    where)
    return e.cast(pl.String)


def _zone(node: exp.Expr, where: exp.Expr) -> str:
    """A time zone given as a string literal, checked at plan time."""
    name = node.this if isinstance(node, exp.Literal) and node.is_string else None
    if name is None:
        raise unsupported("CONVERT_TZ with a time zone that is not a string literal", where)
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise unsupported(f"the time zone {name!r}", where,
                          "use a region name such as 'America/Los_Angeles' or 'UTC'") from None
    return name
