"""Flink's date and time functions (tidal.sql.temporal): values from Flink's documentation,
DuckDB where it computes the same thing, a port of Flink's own month arithmetic for
TIMESTAMPDIFF, NULL handling, the refusals, and end-to-end queries."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import random
import re
from typing import Any

import duckdb
import polars as pl
import pytest
import sqlglot
import typer
from typer.testing import CliRunner

import tidal as td
from tidal.commands.sql import sql_command
from tidal.sql import SqlError
from tidal.sql.dialect import Flink
from tidal.sql.errors import UnsupportedSql
from tidal.sql.expressions import Field, Scope, Translator

D, T = dt.date, dt.datetime


def evaluate(sql: str, frame: pl.DataFrame | None = None) -> list[Any]:
    """The values of the SQL expression ``sql`` over ``frame``'s rows (one row if none)."""
    frame = frame if frame is not None else pl.DataFrame({"_": [0]})
    scope = Scope([Field(None, c, c) for c in frame.columns], frame.schema)
    e = Translator(scope).expr(sqlglot.parse_one(sql, read=Flink))
    return frame.select(e.alias("out")).to_series().to_list()


def value(sql: str) -> Any:
    (out,) = evaluate(sql)
    return out


# (SQL, expected): Flink's documented examples first, then edge cases and NULLs
CASES: list[tuple[str, Any]] = [
    # parts of a date (examples of Flink's docs)
    ("YEAR(DATE '1994-09-27')", 1994),
    ("QUARTER(DATE '1994-09-27')", 3),
    ("MONTH(DATE '1994-09-27')", 9),
    ("WEEK(DATE '1994-09-27')", 39),
    ("DAYOFYEAR(DATE '1994-09-27')", 270),
    ("DAYOFMONTH(DATE '1994-09-27')", 27),
    ("DAYOFWEEK(DATE '1994-09-27')", 3),  # a Tuesday; Sunday is 1
    ("DAYOFWEEK(DATE '2023-01-01')", 1),
    ("DAYOFWEEK(DATE '2022-12-31')", 7),
    ("SECOND(TIMESTAMP '1994-09-27 13:14:15')", 15),
    ("WEEK(DATE '2021-01-03')", 53),  # ISO week of the previous year
    ("YEAR(CAST(NULL AS TIMESTAMP(3)))", None),
    ("DAYOFWEEK(CAST(NULL AS DATE))", None),
    # DATE / TIMESTAMP literals and casts
    ("DATE '2020-02-29'", D(2020, 2, 29)),
    ("TIMESTAMP '2020-02-29 23:59:59'", T(2020, 2, 29, 23, 59, 59)),
    ("CAST(DATE '2020-02-29' AS STRING)", "2020-02-29"),
    ("CAST(TIMESTAMP '2020-02-29 23:59:59' AS DATE)", D(2020, 2, 29)),
    # TIMESTAMPDIFF: t2 - t1, truncated toward zero
    ("TIMESTAMPDIFF(DAY, TIMESTAMP '2003-01-02 10:00:00', TIMESTAMP '2003-01-03 10:00:00')", 1),
    ("TIMESTAMPDIFF(DAY, TIMESTAMP '2003-01-02 10:00:00', TIMESTAMP '2003-01-03 09:59:59')", 0),
    ("TIMESTAMPDIFF(DAY, TIMESTAMP '2003-01-03 10:00:00', TIMESTAMP '2003-01-02 10:00:01')", 0),
    ("TIMESTAMPDIFF(HOUR, TIMESTAMP '2003-01-03 10:00:00', TIMESTAMP '2003-01-02 10:00:00')", -24),
    ("TIMESTAMPDIFF(SECOND, TIMESTAMP '2003-01-02 10:00:00', TIMESTAMP '2003-01-02 10:01:59')",
     119),
    ("TIMESTAMPDIFF(MINUTE, TIMESTAMP '2003-01-02 10:00:00', TIMESTAMP '2003-01-02 10:01:59')", 1),
    ("TIMESTAMPDIFF(WEEK, DATE '2003-01-01', DATE '2003-01-15')", 2),
    ("TIMESTAMPDIFF(MONTH, TIMESTAMP '2021-01-31 10:00:00', TIMESTAMP '2021-02-28 10:00:00')", 1),
    ("TIMESTAMPDIFF(MONTH, TIMESTAMP '2021-01-31 10:00:00', TIMESTAMP '2021-02-28 09:00:00')", 0),
    ("TIMESTAMPDIFF(MONTH, DATE '2021-03-31', DATE '2021-02-28')", -1),
    ("TIMESTAMPDIFF(YEAR, DATE '2001-01-03', DATE '2002-01-02')", 0),
    ("TIMESTAMPDIFF(YEAR, DATE '2001-01-02', DATE '2002-01-03')", 1),
    ("TIMESTAMPDIFF(YEAR, DATE '2002-01-03', DATE '2001-01-02')", -1),
    ("TIMESTAMPDIFF(QUARTER, DATE '2002-04-02', DATE '2002-01-02')", -1),
    ("TIMESTAMPDIFF(QUARTER, DATE '2002-01-02', DATE '2002-06-02')", 1),
    ("TIMESTAMPDIFF(DAY, DATE '2020-02-28', TIMESTAMP '2020-03-01 12:00:00')", 2),
    ("TIMESTAMPDIFF(DAY, CAST(NULL AS DATE), DATE '2020-03-01')", None),
    ("TIMESTAMPDIFF(MONTH, DATE '2020-03-01', CAST(NULL AS DATE))", None),
    # TIMESTAMPADD: month arithmetic clamps to the month's last day
    ("TIMESTAMPADD(WEEK, 1, DATE '2003-01-02')", D(2003, 1, 9)),
    ("TIMESTAMPADD(MONTH, 1, TIMESTAMP '2021-01-31 10:00:00')", T(2021, 2, 28, 10)),
    ("TIMESTAMPADD(YEAR, 1, DATE '2020-02-29')", D(2021, 2, 28)),
    ("TIMESTAMPADD(QUARTER, -1, DATE '2020-05-31')", D(2020, 2, 29)),
    ("TIMESTAMPADD(HOUR, -3, TIMESTAMP '2021-01-01 01:00:00')", T(2020, 12, 31, 22)),
    ("TIMESTAMPADD(SECOND, 90, TIMESTAMP '2021-01-01 00:00:00')", T(2021, 1, 1, 0, 1, 30)),
    ("TIMESTAMPADD(DAY, CAST(NULL AS INT), DATE '2020-05-31')", None),
    ("TIMESTAMPADD(MONTH, CAST(NULL AS INT), DATE '2020-05-31')", None),
    # FLOOR / CEIL to a unit (weeks start on Sunday in Flink)
    ("FLOOR(TIMESTAMP '2020-05-13 12:44:31' TO MINUTE)", T(2020, 5, 13, 12, 44)),
    ("CEIL(TIMESTAMP '2020-05-13 12:44:31' TO MINUTE)", T(2020, 5, 13, 12, 45)),
    ("CEIL(TIMESTAMP '2020-05-13 12:44:00' TO MINUTE)", T(2020, 5, 13, 12, 44)),
    ("FLOOR(TIMESTAMP '2020-05-13 12:44:31' TO WEEK)", T(2020, 5, 10)),
    ("CEIL(TIMESTAMP '2020-05-13 12:44:31' TO WEEK)", T(2020, 5, 17)),
    ("FLOOR(TIMESTAMP '2020-05-10 12:44:31' TO WEEK)", T(2020, 5, 10)),
    ("CEIL(TIMESTAMP '2020-05-13 12:44:31' TO QUARTER)", T(2020, 7, 1)),
    ("CEIL(TIMESTAMP '2020-12-31 00:00:01' TO YEAR)", T(2021, 1, 1)),
    ("FLOOR(DATE '2020-05-13' TO MONTH)", D(2020, 5, 1)),
    ("CEIL(CAST(NULL AS TIMESTAMP(3)) TO DAY)", None),
    # UNIX_TIMESTAMP(string[, format]): seconds; unparseable is Long.MIN_VALUE (Flink's docs,
    # in UTC: 08:00:01 is 28801 s; trailing text after the pattern is ignored)
    ("UNIX_TIMESTAMP('1970-01-01 08:00:01.001', 'yyyy-MM-dd HH:mm:ss.SSS')", 28801),
    ("UNIX_TIMESTAMP('1970-01-01 08:00:01.001 +0800', 'yyyy-MM-dd HH:mm:ss.SSS')", 28801),
    ("UNIX_TIMESTAMP('2020-02-29 10:00:00')", 1582970400),
    ("UNIX_TIMESTAMP('1969-12-31 23:59:59')", -1),
    ("UNIX_TIMESTAMP('20200229', 'yyyyMMdd')", 1582934400),
    ("UNIX_TIMESTAMP('not a time')", -9223372036854775808),
    ("UNIX_TIMESTAMP(CAST(NULL AS STRING))", None),
    # FROM_UNIXTIME(seconds[, format]) is a STRING
    ("FROM_UNIXTIME(44)", "1970-01-01 00:00:44"),
    ("FROM_UNIXTIME(-1)", "1969-12-31 23:59:59"),
    ("FROM_UNIXTIME(1582970400, 'dd/MM/yyyy HH')", "29/02/2020 10"),
    ("FROM_UNIXTIME(CAST(NULL AS BIGINT))", None),
    # TO_DATE(string[, format]); an impossible date is NULL
    ("TO_DATE('2020-02-29')", D(2020, 2, 29)),
    ("TO_DATE('29.02.2020', 'dd.MM.yyyy')", D(2020, 2, 29)),
    ("TO_DATE('2021-02-29')", None),
    ("TO_DATE(CAST(NULL AS STRING))", None),
    # TO_TIMESTAMP(string[, format]) (parsed with Flink's signature, not PostgreSQL's)
    ("TO_TIMESTAMP('2020-02-29 10:11:12')", T(2020, 2, 29, 10, 11, 12)),
    ("TO_TIMESTAMP('2020-02-29 10:11:12.345')", T(2020, 2, 29, 10, 11, 12, 345_000)),
    ("TO_TIMESTAMP('29/02/2020 10:11', 'dd/MM/yyyy HH:mm')", T(2020, 2, 29, 10, 11)),
    # CONVERT_TZ (Flink's docs)
    ("CONVERT_TZ('1970-01-01 00:00:00', 'UTC', 'America/Los_Angeles')", "1969-12-31 16:00:00"),
    ("CONVERT_TZ('2021-07-01 12:00:00', 'Europe/Berlin', 'Asia/Tokyo')", "2021-07-01 19:00:00"),
    ("CONVERT_TZ(CAST(NULL AS STRING), 'UTC', 'Asia/Tokyo')", None),
]


@pytest.mark.parametrize(("sql", "expected"), CASES, ids=[c[0] for c in CASES])
def test_function_value(sql: str, expected: Any) -> None:
    assert value(sql) == expected


STAMPS = [T(2020, 2, 29, 23, 59, 58, 999_000), T(1969, 12, 31, 23, 59, 59, 500_000),
          T(2021, 1, 3, 0, 0), T(2022, 12, 31, 13, 14, 15, 16_000), T(2000, 1, 1, 0, 0, 1),
          T(2019, 12, 30, 6, 7, 8)]


@pytest.mark.parametrize(("flink", "duck"), [
    ("YEAR(t)", "year(t)"), ("QUARTER(t)", "quarter(t)"), ("MONTH(t)", "month(t)"),
    ("WEEK(t)", "week(t)"), ("DAYOFYEAR(t)", "dayofyear(t)"), ("DAYOFMONTH(t)", "day(t)"),
    ("DAYOFWEEK(t)", "dayofweek(t) + 1"), ("SECOND(t)", "second(t)"),
    ("FLOOR(t TO DAY)", "date_trunc('day', t)"), ("FLOOR(t TO MONTH)", "date_trunc('month', t)"),
    ("FLOOR(t TO QUARTER)", "date_trunc('quarter', t)"),
    ("FLOOR(t TO SECOND)", "date_trunc('second', t)"),
    ("TIMESTAMPADD(MONTH, 13, t)", "t + INTERVAL 13 MONTH"),
    ("TIMESTAMPADD(MINUTE, -61, t)", "t - INTERVAL 61 MINUTE"),
])
def test_matches_duckdb(flink: str, duck: str) -> None:
    frame = pl.DataFrame({"t": STAMPS + [None]}, schema={"t": pl.Datetime("ms")})
    want = duckdb.sql(f"SELECT {duck} AS out FROM frame").pl()["out"].to_list()
    assert evaluate(flink, frame) == want


@pytest.mark.parametrize(("unit", "duck"), [("DOW", "dayofweek(t) + 1"), ("DOY", "dayofyear(t)"),
                                            ("QUARTER", "quarter(t)"), ("WEEK", "week(t)"),
                                            ("MILLISECOND", "millisecond(t)")])
def test_extract_units_beyond_year_to_second(unit: str, duck: str) -> None:
    """``EXTRACT`` (also the units beyond YEAR..SECOND) agrees with DuckDB, whose
    MILLISECOND is also the milliseconds within the minute."""
    frame = pl.DataFrame({"t": STAMPS + [None]}, schema={"t": pl.Datetime("ms")})
    scope = Scope([Field(None, "t", "t")], frame.schema)
    node = sqlglot.parse_one(f"EXTRACT({unit} FROM t)", read=Flink)
    got = frame.select(Translator(scope).expr(node).alias("o"))["o"].to_list()
    assert got == duckdb.sql(f"SELECT {duck} AS out FROM frame").pl()["out"].to_list()


def _flink_add_months(date: dt.date, months: int) -> dt.date:
    """Flink's ``DateTimeUtils.addMonths`` on a date: the day clamped to the month's end."""
    year, month = divmod(date.year * 12 + date.month - 1 + months, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(date.day, last))


def _flink_subtract_months(t0: dt.datetime, t1: dt.datetime) -> int:
    """A line-by-line port of Flink's ``DateTimeUtils.subtractMonths(long, long)``."""
    def on_dates(d0: dt.date, d1: dt.date) -> int:
        if d0 < d1:
            return -on_dates(d1, d0)
        m = (d0 - d1).days // 31
        while True:
            if _flink_add_months(d1, m) >= d0 or _flink_add_months(d1, m + 1) > d0:
                return m
            m += 1

    x = on_dates(t0.date(), t1.date())
    if _flink_add_months(t1.date(), x) == t0.date() and t0.time() < t1.time():
        x -= 1
    return x


def test_timestampdiff_months_and_years_follow_flinks_algorithm() -> None:
    """Month ends, leap days, times of day and negative differences, against a port of
    Flink's code; YEAR is the month count divided by 12, truncated."""
    rng = random.Random(7)
    base = [T(2020, 1, 31), T(2020, 2, 29), T(2021, 2, 28), T(2020, 3, 31), T(2020, 4, 30),
            T(2019, 12, 31)]
    stamps = [b + dt.timedelta(hours=h) for b in base for h in (0, 12)]
    stamps += [T(2018, 1, 1) + dt.timedelta(minutes=rng.randrange(4 * 365 * 1440))
               for _ in range(150)]
    pairs = [(a, b) for a in stamps[:12] for b in stamps[:12]]
    pairs += [(rng.choice(stamps), rng.choice(stamps)) for _ in range(600)]
    frame = pl.DataFrame({"a": [p[0] for p in pairs], "b": [p[1] for p in pairs]},
                         schema={"a": pl.Datetime("ms"), "b": pl.Datetime("ms")})
    months = [_flink_subtract_months(b, a) for a, b in pairs]
    assert evaluate("TIMESTAMPDIFF(MONTH, a, b)", frame) == months
    assert evaluate("TIMESTAMPDIFF(YEAR, a, b)", frame) == [int(m / 12) for m in months]
    assert evaluate("TIMESTAMPDIFF(QUARTER, a, b)", frame) == [int(m / 3) for m in months]
    # Flink's quirk, kept: the same day with an earlier time of day is a month back
    assert value("TIMESTAMPDIFF(MONTH, TIMESTAMP '2020-01-01 12:00:00', "
                 "TIMESTAMP '2020-01-01 00:00:00')") == -1


def test_timestampdiff_day_time_units_truncate_toward_zero() -> None:
    rng = random.Random(3)
    ms = [rng.randrange(-10**11, 10**11) for _ in range(300)]
    frame = pl.DataFrame({"a": [0] * len(ms), "b": ms}).with_columns(
        pl.from_epoch("a", "ms"), pl.from_epoch("b", "ms"))
    for unit, size in [("SECOND", 1000), ("MINUTE", 60_000), ("HOUR", 3_600_000),
                       ("DAY", 86_400_000), ("WEEK", 604_800_000)]:
        assert evaluate(f"TIMESTAMPDIFF({unit}, a, b)", frame) == [int(m / size) for m in ms]


@pytest.mark.parametrize(("sql", "message"), [
    ("UNIX_TIMESTAMP()", "UNIX_TIMESTAMP() without an argument (the current time) in a "
                         "continuous query is not supported; use PROCTIME()"),
    ("CURRENT_DATE", "CURRENT_DATE in a continuous query is not supported; use PROCTIME()"),
    ("CURRENT_TIME", "CURRENT_TIME in a continuous query is not supported"),
    ("LOCALTIMESTAMP", "LOCALTIMESTAMP in a continuous query is not supported"),
    ("LOCALTIME", "LOCALTIME in a continuous query is not supported"),
    ("NOW()", "CURRENT_TIMESTAMP in a continuous query is not supported"),
    ("CURRENT_ROW_TIMESTAMP()", "CURRENT_ROW_TIMESTAMP() in a continuous query is not supported"),
    ("CURRENT_WATERMARK(t)", "CURRENT_WATERMARK is not supported; a scalar expression does not "
                             "see its operator's watermark"),
    ("TIMESTAMPDIFF(MILLISECOND, t, t)", "TIMESTAMPDIFF with the unit MILLISECOND is not "
                                         "supported; use SECOND, MINUTE, HOUR, DAY, WEEK"),
    ("TIMESTAMPADD(DECADE, 1, t)", "TIMESTAMPADD with the unit DECADE is not supported"),
    ("FLOOR(t TO DECADE)", "FLOOR(... TO DECADE) is not supported; use MILLISECOND, SECOND"),
    ("EXTRACT(EPOCH FROM t)", "EXTRACT(EPOCH FROM ...) is not supported"),
    ("WEEK(t, 3)", "WEEK with a mode (MySQL's second argument) is not supported"),
    ("CONVERT_TZ('1970-01-01 00:00:00', 'UTC', 'PST')",
     "the time zone 'PST' is not supported; use a region name such as 'America/Los_Angeles'"),
    ("UNIX_TIMESTAMP(s, s)", "UNIX_TIMESTAMP with a format that is not a string literal is "
                             "not supported"),
    ("TO_DATE(s, 'yyyy-MM-dd X')", "the date format letter 'X' in 'yyyy-MM-dd X' is not "
                                   "supported"),
])
def test_unsupported_is_refused_at_plan_time(sql: str, message: str) -> None:
    frame = pl.DataFrame({"t": [T(2020, 1, 1)], "s": ["x"]})
    with pytest.raises(UnsupportedSql, match=re.escape(message)):
        evaluate(sql, frame)


@pytest.mark.parametrize(("sql", "message"), [
    ("YEAR(s)", "expected a DATE or TIMESTAMP, got s of type STRING"),
    ("TIMESTAMPDIFF(DAY, t)", "TIMESTAMPDIFF takes 3 arguments (unit, ...), got 2"),
    ("TIMESTAMPADD(DAY, 1.5, t)", "TIMESTAMPADD needs an integer count, got 1.5"),
    ("TO_DATE(t)", "TO_DATE needs a STRING, got t of type"),
    ("FROM_UNIXTIME(s)", "FROM_UNIXTIME needs an integer number of seconds, got s"),
])
def test_wrong_arguments_are_errors(sql: str, message: str) -> None:
    frame = pl.DataFrame({"t": [T(2020, 1, 1)], "s": ["x"]})
    with pytest.raises(SqlError, match=re.escape(message)):
        evaluate(sql, frame)


def test_end_to_end_through_flow_sql() -> None:
    """Epoch milliseconds from a Python stream, through TO_TIMESTAMP_LTZ, into the functions,
    with a NULL row."""
    flow = td.Flow("temporal")
    rows = [{"id": 1, "a": 1_612_087_200_000, "b": 1_614_506_400_000},  # 01-31 10:00, 02-28
            {"id": 2, "a": 1_577_836_800_000, "b": None}]
    flow.register_table("t", flow.source(td.sources.memory(rows)))
    out = td.sinks.memory()
    flow.sql("SELECT id, TIMESTAMPDIFF(MONTH, TO_TIMESTAMP_LTZ(a, 3), TO_TIMESTAMP_LTZ(b, 3)) "
             "AS months, DAYOFWEEK(TO_TIMESTAMP_LTZ(a, 3)) AS dow, FROM_UNIXTIME(a / 1000) AS s, "
             "FLOOR(TO_TIMESTAMP_LTZ(b, 3) TO MONTH) AS m FROM t").sink(out)
    flow.run(quiet=True)
    got = sorted(out.frame().to_dicts(), key=lambda r: r["id"])
    assert [(r["months"], r["dow"], r["s"]) for r in got] == [
        (1, 1, "2021-01-31 10:00:00"), (None, 4, "2020-01-01 00:00:00")]
    assert got[0]["m"].replace(tzinfo=None) == T(2021, 2, 1) and got[1]["m"] is None


def test_end_to_end_through_tidal_sql() -> None:
    app = typer.Typer()
    app.command("sql")(sql_command)
    app.command("noop")(lambda: None)
    script = ("CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` "
              "TIMESTAMP(3), WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) "
              "WITH ('connector' = 'nexmark', 'events' = '3000'); "
              "SELECT `dateTime`, CEIL(`dateTime` TO SECOND) AS up, "
              "TIMESTAMPDIFF(SECOND, FLOOR(`dateTime` TO MINUTE), `dateTime`) AS s, "
              "FROM_UNIXTIME(UNIX_TIMESTAMP(DATE_FORMAT(`dateTime`, 'yyyy-MM-dd HH:mm:ss'))) "
              "AS back FROM bid WHERE MOD(auction, 2) = 0")
    result = CliRunner().invoke(app, ["sql", "-e", script])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows
    for r in rows:
        t = T.fromisoformat(r["dateTime"])
        up = t.replace(microsecond=0) + dt.timedelta(seconds=1 if t.microsecond else 0)
        assert T.fromisoformat(r["up"]) == up
        assert r["s"] == t.second
        assert r["back"] == t.strftime("%Y-%m-%d %H:%M:%S")
