"""Flink's arithmetic, math and conditional functions (``tidal.sql.numeric``): values, NULL
handling and result types. Where DuckDB computes the same thing the expected values come
from DuckDB; where Flink differs from it (ROUND of a DOUBLE on its decimal form, GREATEST and
LEAST with a NULL argument, BIN/HEX of negative numbers) they come from Flink's documented
behaviour."""

from __future__ import annotations

import math
from decimal import Decimal

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

D = Decimal
NAN = float("nan")

FRAME = pl.DataFrame({
    "i": pl.Series([15, -15, 25, 0, None], dtype=pl.Int32),
    "b": pl.Series([7, -3, 100, 1, None], dtype=pl.Int64),
    "f": [2.5, -2.5, 1.005, 2.675, None],
    "d": pl.Series([D("1.25"), D("-1.25"), D("1234.56"), D("0.05"), None], dtype=pl.Decimal(6, 2)),
    "p": [0.5, 1.0, 2.0, 10.0, None],
    "s": ["hello,world", "a", "", "é", None],
})


def run(sql: str, frame: pl.DataFrame = FRAME) -> pl.Series:
    """``sql`` as a tidal expression over ``frame``."""
    scope = Scope([Field(None, c, c) for c in frame.columns], frame.schema)
    e = Translator(scope).expr(sqlglot.parse_one(sql, read=Flink))
    return frame.select(e.alias("r")).to_series()


def same(got: list, want: list) -> bool:
    """Equal lists, floats to 1e-12 relative, NaN equal to NaN."""
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if isinstance(w, float) and isinstance(g, float):
            if not (g == pytest.approx(w, rel=1e-12) or (math.isnan(g) and math.isnan(w))):
                return False
        elif g != w:
            return False
    return True


# (tidal SQL, DuckDB SQL or None for the same text, tidal's result type)
LIKE_DUCKDB = [
    ("ABS(i)", None, pl.Int32),
    ("ABS(d)", None, pl.Decimal(6, 2)),
    ("ABS(f)", None, pl.Float64),
    ("SIGN(i)", None, pl.Int32),
    ("SIGN(f)", None, pl.Float64),
    ("ROUND(i, -1)", None, pl.Int32),
    ("ROUND(b, -1)", None, pl.Int64),
    ("ROUND(d, 1)", None, pl.Decimal(6, 1)),
    ("ROUND(d)", None, pl.Decimal(5, 0)),
    ("ROUND(p, 0)", None, pl.Float64),
    ("TRUNCATE(d, 1)", "TRUNC(d, 1)", pl.Decimal(6, 1)),
    ("TRUNCATE(f)", "TRUNC(f)", pl.Float64),
    ("FLOOR(d)", None, pl.Decimal(6, 0)),
    ("CEIL(d)", None, pl.Decimal(6, 0)),
    ("CEILING(f)", None, pl.Float64),
    ("FLOOR(f)", None, pl.Float64),
    ("FLOOR(i)", None, pl.Int32),
    ("POWER(i, 2)", "POWER(i, 2)::DOUBLE", pl.Float64),
    ("POWER(p, 0.5)", None, pl.Float64),
    ("SQRT(p)", None, pl.Float64),
    ("SQRT(ABS(d))", None, pl.Float64),
    ("EXP(p)", None, pl.Float64),
    ("LN(p)", None, pl.Float64),
    ("LOG10(p)", None, pl.Float64),
    ("LOG2(p)", None, pl.Float64),
    ("LOG(p)", "LN(p)", pl.Float64),
    ("LOG(2, p)", "LOG2(p)", pl.Float64),
    ("SIN(f)", None, pl.Float64),
    ("COS(d)", "COS(d::DOUBLE)", pl.Float64),
    ("TAN(i)", None, pl.Float64),
    ("COT(f)", None, pl.Float64),
    ("ASIN(p / 10)", None, pl.Float64),
    ("ACOS(p / 10)", None, pl.Float64),
    ("ATAN(f)", None, pl.Float64),
    ("ATAN2(f, p)", None, pl.Float64),
    ("SINH(p)", None, pl.Float64),
    ("COSH(p)", None, pl.Float64),
    ("TANH(f)", None, pl.Float64),
    ("DEGREES(f)", None, pl.Float64),
    ("RADIANS(i)", None, pl.Float64),
    ("PI() * p", None, pl.Float64),
    ("NULLIF(i, 0)", None, pl.Int32),
    ("NULLIF(i, b)", None, pl.Int32),  # the first argument's type, as in Calcite
    ("IFNULL(i, 7)", None, pl.Int32),
    ("i IS DISTINCT FROM 15", None, pl.Boolean),
    ("i IS NOT DISTINCT FROM 15", None, pl.Boolean),
    ("b IS NOT DISTINCT FROM NULL", None, pl.Boolean),
]


@pytest.mark.parametrize(("sql", "duck", "dtype"), LIKE_DUCKDB, ids=[c[0] for c in LIKE_DUCKDB])
def test_matches_duckdb(sql: str, duck: str | None, dtype: pl.DataType) -> None:
    got = run(sql)
    frame = FRAME  # noqa: F841 (read by DuckDB's replacement scan)
    want = duckdb.sql(f"SELECT {duck or sql} AS r FROM frame").pl().to_series()
    assert got.dtype == dtype
    values = [float(v) if isinstance(v, Decimal) and not isinstance(w, Decimal) else v
              for v, w in zip(got.to_list(), want.to_list(), strict=True)]
    assert same(values, want.to_list()), (values, want.to_list())


# Flink's own behaviour, where DuckDB differs or has no such function
FLINK = [
    # ROUND/TRUNCATE of a DOUBLE work on its shortest decimal form (BigDecimal.valueOf), half
    # away from zero: ROUND(1.005, 2) is 1.01 (binary rounding gives 1.0), as in Flink
    ("ROUND(f, 2)", [2.5, -2.5, 1.01, 2.68, None], pl.Float64),
    ("ROUND(f)", [3.0, -3.0, 1.0, 3.0, None], pl.Float64),
    ("ROUND(f, 1)", [2.5, -2.5, 1.0, 2.7, None], pl.Float64),
    ("TRUNCATE(f, 2)", [2.5, -2.5, 1.0, 2.67, None], pl.Float64),
    ("TRUNCATE(42.324, 2)", [D("42.32")], pl.Decimal(5, 2)),  # Flink's docs' example
    ("ROUND(i, -1)", [20, -20, 30, 0, None], pl.Int32),  # halves away from zero
    ("TRUNCATE(i, -1)", [10, -10, 20, 0, None], pl.Int32),
    ("ROUND(d, -2)", [D(0), D(0), D(1200), D(0), None], pl.Decimal(5, 0)),
    ("ROUND(d, 1)", [D("1.3"), D("-1.3"), D("1234.6"), D("0.1"), None], pl.Decimal(6, 1)),
    ("ROUND(d, 5)", [D("1.25"), D("-1.25"), D("1234.56"), D("0.05"), None], pl.Decimal(6, 2)),
    ("ROUND(f * 1000, -3)", [3000.0, -3000.0, 1000.0, 3000.0, None], pl.Float64),
    ("ROUND(CAST(NULL AS DOUBLE), 2)", [None], pl.Float64),
    ("FLOOR(CAST(NULL AS DECIMAL(10, 3)))", [None], pl.Decimal(10, 0)),
    # Java's Math: NaN and infinities, not errors
    ("SQRT(-1.0)", [NAN], pl.Float64),
    ("LN(0)", [-math.inf], pl.Float64),
    ("LOG10(1000)", [3.0], pl.Float64),  # Math.log10 is exact on powers of ten
    ("LOG10(i)", [math.log10(15), NAN, math.log10(25), -math.inf, None], pl.Float64),
    # Flink's LOG and LOG2 fail the job where x <= 0 or b <= 1; tidal gives NULL there
    ("LOG(i)", [math.log(15), None, math.log(25), None, None], pl.Float64),
    ("LOG2(i)", [math.log(15) / math.log(2), None, math.log(25) / math.log(2), None, None],
     pl.Float64),
    ("LOG(1, 5)", [None], pl.Float64),
    ("LOG(2, 8)", [3.0], pl.Float64),
    ("E()", [math.e], pl.Float64),
    ("PI()", [math.pi], pl.Float64),
    ("POWER(2, 10)", [1024.0], pl.Float64),
    # BIN and HEX print a long's two's complement (Long.toBinaryString / toHexString)
    ("BIN(4)", ["100"], pl.String),  # Flink's docs' examples
    ("BIN(12)", ["1100"], pl.String),
    ("BIN(i)", ["1111", "1" * 60 + "0001", "11001", "0", None], pl.String),
    ("HEX(20)", ["14"], pl.String),
    ("HEX(100)", ["64"], pl.String),
    ("HEX(b)", ["7", "FFFFFFFFFFFFFFFD", "64", "1", None], pl.String),
    ("HEX(s)", ["68656C6C6F2C776F726C64", "61", "", "C3A9", None], pl.String),
    # GREATEST and LEAST are NULL when any argument is (Flink's docs; DuckDB skips NULLs)
    ("GREATEST(i, 3, 1)", [15, 3, 25, 3, None], pl.Int32),
    ("LEAST(i, b)", [7, -15, 25, 0, None], pl.Int64),
    ("GREATEST(p, NULL)", [None] * 5, pl.Float64),
    ("LEAST(s, 'b')", ["b", "a", "", "b", None], pl.String),
    ("NULLIF(s, '')", ["hello,world", "a", None, "é", None], pl.String),
    ("NULL IS DISTINCT FROM NULL", [False], pl.Boolean),  # Flink's docs' examples
    ("1 IS DISTINCT FROM NULL", [True], pl.Boolean),
]


@pytest.mark.parametrize(("sql", "want", "dtype"), FLINK, ids=[c[0] for c in FLINK])
def test_flink_semantics(sql: str, want: list, dtype: pl.DataType) -> None:
    got = run(sql)
    if len(want) == 1:
        got = got[:1]
    assert got.dtype == dtype
    assert same(got.to_list(), want), got.to_list()


ERRORS = [
    ("RAND()", UnsupportedSql, "RAND() is not supported; its values would differ when the job "
     "replays from a checkpoint"),
    ("RAND(42)", UnsupportedSql, "RAND(42) is not supported; its values would differ"),
    ("RAND_INTEGER(10)", UnsupportedSql, "RAND_INTEGER is not supported; its values would"),
    ("UUID()", UnsupportedSql, "UUID() is not supported; its values would differ"),
    ("ROUND(f, i)", UnsupportedSql, "ROUND with a number of decimal places that is not an "
     "integer literal (i) is not supported"),
    ("BIN(f)", SqlError, "BIN expects an integer, got DOUBLE"),
    ("HEX(d)", SqlError, "HEX expects an integer or a string, got DECIMAL(6, 2)"),
    ("ROUND(s, 1)", SqlError, "ROUND expects a number, got STRING"),
    ("E(1)", SqlError, "E takes 0 arguments, got 1"),
    ("GREATEST(s, i)", SqlError, "GREATEST compares values of one kind (all numbers, all "
     "strings, ...), got STRING, INT"),
    ("BITAND(i, 1)", UnsupportedSql, "the function BITAND is not supported"),  # not in Flink
]


@pytest.mark.parametrize(("sql", "kind", "message"), ERRORS, ids=[c[0] for c in ERRORS])
def test_errors_name_the_function(sql: str, kind: type[Exception], message: str) -> None:
    with pytest.raises(kind) as info:
        run(sql)
    assert message in str(info.value)


def test_floor_to_a_time_unit_is_left_to_the_time_functions() -> None:
    """``FLOOR(ts TO MINUTE)`` goes to the temporal mixin's ``_floor_time``, not to numbers."""
    frame = pl.DataFrame({"ts": [0]})
    scope = Scope([Field(None, "ts", "ts")], frame.schema)

    class Probe(Translator):
        def _floor_time(self, node: sqlglot.exp.Floor) -> pl.Expr:
            return pl.lit(f"floor to {node.args['to'].name}")

        def _ceil_time(self, node: sqlglot.exp.Ceil) -> pl.Expr:
            return pl.lit(f"ceil to {node.args['to'].name}")

    for sql, want in [("FLOOR(ts TO MINUTE)", "floor to MINUTE"), ("CEIL(ts TO HOUR)", "ceil to HOUR")]:
        e = Probe(scope).expr(sqlglot.parse_one(sql, read=Flink))
        assert frame.select(e).item() == want


BID = ("CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3), "
       "WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) "
       "WITH ('connector' = 'nexmark', 'events' = '2000');")


def test_end_to_end_in_a_query() -> None:
    flow = td.Flow("math")
    flow.sql(BID)
    out = td.sinks.memory()
    flow.sql("SELECT price, ROUND(price * 0.908, 1) AS eur, SIGN(price - 1000) AS s, "
             "GREATEST(price, 1000) AS g, POWER(price, 2) AS sq, HEX(price) AS h "
             "FROM bid WHERE MOD(auction, 7) = 0").sink(out)
    flow.run(quiet=True)
    frame = out.frame()
    assert frame.height > 0
    for row in frame.iter_rows(named=True):
        p = row["price"]
        assert row["eur"] == (Decimal(p) * Decimal("0.908")).quantize(Decimal("0.1"), "ROUND_HALF_UP")
        assert row["s"] == (p > 1000) - (p < 1000)
        assert row["g"] == max(p, 1000) and row["sq"] == float(p) ** 2
        assert row["h"] == format(p, "X")


def test_tidal_sql_command_runs_math() -> None:
    app = typer.Typer()
    app.command("sql")(sql_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["sql", "--format", "csv", "-e", BID + " SELECT "
                                      "ROUND(2.675, 2) AS r, TRUNCATE(-2.675, 2) AS t, "
                                      "ROUND(CAST(1.005 AS DOUBLE), 2) AS f, "
                                      "LEAST(1, CAST(NULL AS INT)) AS l, BIN(12) AS b "
                                      "FROM bid LIMIT 1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["r,t,f,l,b", "2.68,-2.67,1.01,,1100"]
