"""Flink's string, regex, JSON and hash functions (``tidal.sql.strings``): values and NULL
handling. Where DuckDB's function means the same thing the expected values come from DuckDB;
where Flink differs (ASCII of a non-ASCII character, CHR above 255, LEFT of a negative count,
REGEXP_SUBSTR without a match, the literal replacement of REGEXP_REPLACE) or DuckDB has no
such function, they come from Flink's documentation and runtime (SqlFunctionUtils)."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import parse_qs, urlsplit

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

FRAME = pl.DataFrame({
    "s": ["hello world", "héllo wörld", "", "Hi 1abc o'neil", None],
    "t": ["x", None, "y", "", "z"],
    "n": pl.Series([2, -1, 0, 20, 3], dtype=pl.Int32),
    "j": ['{"a": 1, "b": {"c": "x"}, "d": [10, 20], "e": true, "f": null, "g": 1.50, "h": "[x"}',
          '{"a": "s", "d": []}', "not json", '[{"a": 2}]', None],
    "u": ["http://facebook.com/path1/p.php?k1=v1&k2=v2#Ref1", "https://u:p@H.org:8080",
          "ftp://x.net/a?b=1&k1=", "foo://x.net/a", None],
})


def run(sql: str, frame: pl.DataFrame = FRAME) -> list:
    """``sql`` as a tidal expression over ``frame``, one value a row."""
    scope = Scope([Field(None, c, c) for c in frame.columns], frame.schema)
    e = Translator(scope).expr(sqlglot.parse_one(sql, read=Flink))
    return frame.with_columns(e.alias("r"))["r"].to_list()


# (tidal SQL, DuckDB SQL or None for the same text); every row includes a NULL input
LIKE_DUCKDB = [
    ("POSITION('l' IN s)", None),
    ("POSITION('ö' IN s)", None),
    ("INSTR(s, 'wo')", None),
    ("REPLACE(s, 'l', 'LL')", None),
    ("REGEXP(s, 'l+o')", "regexp_matches(s, 'l+o')"),
    ("REGEXP_REPLACE(s, 'l+|o', '_')", "regexp_replace(s, 'l+|o', '_', 'g')"),
    ("REGEXP_COUNT(s, 'l')", "len(regexp_extract_all(s, 'l'))::INT"),
    ("REGEXP_EXTRACT_ALL(s, '(l)(.)', 2)", "regexp_extract_all(s, '(l)(.)', 2)"),
    ("REGEXP_EXTRACT_ALL(s, '[a-z]+', 0)", "regexp_extract_all(s, '[a-z]+')"),
    # \w, \d and \s are ASCII classes in Java (and in DuckDB's RE2), not Unicode ones
    ("REGEXP_EXTRACT_ALL(s, '\\w+', 0)", "regexp_extract_all(s, '\\w+')"),
    ("REGEXP_REPLACE(s, '[\\s\\d]', '_')", "regexp_replace(s, '[\\s\\d]', '_', 'g')"),
    ("LPAD(s, 5, 'xy')", None),
    ("RPAD(s, 13, '.')", None),
    ("LPAD(s, n, '*')", "CASE WHEN n >= 0 THEN lpad(s, n, '*') END"),
    ("REPEAT(s, 2)", None),
    ("REPEAT(s, n)", "repeat(s, greatest(n, 0))"),
    ("REVERSE(s)", None),
    ("LEFT(s, 3)", None),
    ("RIGHT(s, 3)", None),
    ("CONCAT_WS('-', s, t, 'k')", None),
    ("MD5(s)", None),
    ("SHA1(s)", None),
    ("SHA256(s)", None),
    ("TO_BASE64(s)", "to_base64(encode(s))"),
    ("FROM_BASE64(TO_BASE64(s))", "decode(from_base64(to_base64(encode(s))))"),
    ("STARTSWITH(s, 'h')", "starts_with(s, 'h')"),
    ("ENDSWITH(s, 'd')", "ends_with(s, 'd')"),
    ("SPLIT(s, ' ')", "string_split(s, ' ')"),
]


@pytest.mark.parametrize(("sql", "duck"), LIKE_DUCKDB, ids=[c[0] for c in LIKE_DUCKDB])
def test_matches_duckdb(sql: str, duck: str | None) -> None:
    frame = FRAME  # noqa: F841  (read by DuckDB's replacement scan)
    want = duckdb.sql(f"SELECT {duck or sql} AS r FROM frame").fetchall()
    assert run(sql) == [r[0] for r in want]


# (tidal SQL over FRAME, the values Flink gives)
FLINK = [
    # Flink's documented examples
    ("REPLACE('hello world', 'world', 'flink')", ["hello flink"] * 5),
    ("REPLACE('ababab', 'abab', 'z')", ["zab"] * 5),
    ("REGEXP_REPLACE('foobar', 'oo|ar', '')", ["fb"] * 5),
    ("LPAD('hi', 4, '??')", ["??hi"] * 5),
    ("LPAD('hi', 1, '??')", ["h"] * 5),
    ("RPAD('hi', 4, '??')", ["hi??"] * 5),
    ("RPAD('hi', 1, '??')", ["h"] * 5),
    ("CONCAT_WS('~', 'AA', CAST(NULL AS STRING), 'BB', '', 'CC')", ["AA~BB~~CC"] * 5),
    ("FROM_BASE64('aGVsbG8gd29ybGQ=')", ["hello world"] * 5),
    ("TO_BASE64('hello world')", ["aGVsbG8gd29ybGQ="] * 5),
    ("ASCII('abc')", [97] * 5),
    ("CHR(97)", ["a"] * 5),
    ("CHR(353)", ["a"] * 5),
    ("REGEXP_INSTR('Steven Jones and Stephen Smith are the best players', 'Ste(v|ph)en')",
     [1] * 5),
    ("REGEXP_INSTR('Mary had a little lamb', 'Ste(v|ph)en')", [0] * 5),
    ("OVERLAY('xxxxxtest' PLACING 'xxxx' FROM 6)", ["xxxxxxxxx"] * 5),
    ("OVERLAY('xxxxxtest' PLACING 'xxxx' FROM 6 FOR 2)", ["xxxxxxxxxst"] * 5),
    ("REPEAT('This is a test String.', 2)", ["This is a test String.This is a test String."] * 5),
    ("PARSE_URL('http://facebook.com/path1/p.php?k1=v1&k2=v2#Ref1', 'HOST')",
     ["facebook.com"] * 5),
    ("PARSE_URL('http://facebook.com/path1/p.php?k1=v1&k2=v2#Ref1', 'QUERY', 'k1')", ["v1"] * 5),
    ("JSON_VALUE('{\"a\": true}', '$.a')", ["true"] * 5),
    ("JSON_VALUE('{\"a\": true}', '$.a' RETURNING BOOLEAN)", [True] * 5),
    ("JSON_QUERY('{ \"a\": { \"b\": 1 } }', '$.a')", ['{"b":1}'] * 5),
    ("JSON_QUERY('[1, 2]', '$')", ["[1,2]"] * 5),
    ("JSON_QUERY(1, '$')", [None] * 5),
    # Flink's runtime where DuckDB differs or has no such function
    ("REPLACE('ab', '', '-')", ["-a-b-"] * 5),  # Java's String.replace
    ("LOCATE('l', s)", [3, 3, 0, 14, None]),
    ("LOCATE('l', s, 4)", [4, 4, 0, 14, None]),
    ("LOCATE('o', s, n)", [5, 5, 0, 0, None]),
    ("LOCATE('', s, 4)", [1, 1, 1, 1, None]),
    ("LOCATE('o', s, -3)", [5, 5, 0, 9, None]),
    ("INSTR(s, 'o', 6)", [8, 0, 0, 9, None]),
    ("POSITION(t IN s)", [0, None, 0, 1, None]),
    ("OVERLAY(s PLACING 'AB' FROM n)", ["hABlo world", "héllo wörld", "", "Hi 1abc o'neil",
                                        None]),
    ("OVERLAY(s PLACING t FROM 2 FOR 0)", ["hx", None, "", "H", None]),  # FOR 0 drops the rest
    ("TRANSLATE(s, 'lol', 'L')", ["heLL wrLd", "héLL wörLd", "", "Hi 1abc 'neiL", None]),
    ("ELT(n, 'a', s, 'c')", ["hello world", None, None, None, "c"]),
    ("LEFT(s, n)", ["he", "", "", "Hi 1abc o'neil", None]),
    ("RIGHT(s, -1)", ["", "", "", "", None]),
    ("LPAD(s, -1, 'x')", [None] * 5),
    ("RPAD(s, 3, '')", [None] * 5),
    ("INITCAP(s)", ["Hello World", "HéLlo WöRld", "", "Hi 1abc O'Neil", None]),
    ("CONCAT_WS(NULL, s, t)", [None] * 5),
    ("CONCAT_WS('-', t, CAST(NULL AS STRING))", ["x", "", "y", "", "z"]),
    ("ASCII(s)", [104, 104, 0, 72, None]),
    ("ASCII('é')", [-61] * 5),  # the first UTF-8 byte, signed
    ("CHR(n - 1)", ["\x01", "", "", "\x13", "\x02"]),
    ("SHA2(s, 224)", [None if v is None else hashlib.sha224(v.encode()).hexdigest()
                      for v in FRAME["s"]]),
    ("SHA2(s, 512)", [None if v is None else hashlib.sha512(v.encode()).hexdigest()
                      for v in FRAME["s"]]),
    ("SHA224(t)", [None if v is None else hashlib.sha224(v.encode()).hexdigest()
                   for v in FRAME["t"]]),
    ("SHA384(t)", [None if v is None else hashlib.sha384(v.encode()).hexdigest()
                   for v in FRAME["t"]]),
    ("REGEXP(s, '')", [False, False, False, False, None]),
    ("REGEXP(s, '^h')", [True, True, False, False, None]),
    ("REGEXP_REPLACE(s, '(l+)', '[$1]')", ["he[$1]o wor[$1]d", "hé[$1]o wör[$1]d", "",
                                          "Hi 1abc o'nei[$1]", None]),
    ("REGEXP_REPLACE(s, 'o', t)", ["hellx wxrld", None, "", "Hi 1abc 'neil", None]),
    ("REPLACE(s, 'o', t)", ["hellx wxrld", None, "", "Hi 1abc 'neil", None]),
    ("REGEXP_SUBSTR(s, 'l+')", ["ll", "ll", None, "l", None]),
    ("REGEXP_INSTR(s, 'w')", [7, 7, 0, 0, None]),
    ("REGEXP_EXTRACT_ALL(s, 'o(.)')", [[" ", "r"], [" "], [], ["'"], None]),
    ("JSON_VALUE(j, '$.a')", ["1", "s", None, None, None]),
    ("JSON_VALUE(j, '$.a' RETURNING INT)", [1, None, None, None, None]),
    ("JSON_VALUE(j, 'lax $.b.c')", ["x", None, None, None, None]),
    ("JSON_VALUE(j, '$.b')", [None] * 5),
    ("JSON_VALUE(j, '$.d')", [None] * 5),
    ("JSON_VALUE(j, '$.d[1]' RETURNING BIGINT)", [20, None, None, None, None]),
    ("JSON_VALUE(j, '$.e' RETURNING BOOLEAN)", [True, None, None, None, None]),
    ("JSON_VALUE(j, '$.f')", [None] * 5),
    ("JSON_VALUE(j, '$.g' RETURNING DOUBLE)", [1.5, None, None, None, None]),
    ("JSON_VALUE(j, '$.h')", ["[x", None, None, None, None]),
    ("JSON_VALUE(j, '$[0].a' NULL ON EMPTY NULL ON ERROR)", [None, None, None, "2", None]),
    ("JSON_QUERY(j, '$.d')", ["[10,20]", "[]", None, None, None]),
    ("JSON_QUERY(j, '$.a')", [None] * 5),
    ("URL_ENCODE('https://flink.apache.org/data.csv?a=1&b=2 c~*')",
     ["https%3A%2F%2Fflink.apache.org%2Fdata.csv%3Fa%3D1%26b%3D2+c%7E*"] * 5),  # URLEncoder
    ("URL_DECODE(URL_ENCODE(s))", FRAME["s"].to_list()),
    ("URL_DECODE('a+b%C3%A9%FF')", ["a bé\ufffd"] * 5),
    ("URL_DECODE('100%')", [None] * 5),  # Java throws on a bad escape; Flink gives NULL
    ("PARSE_URL(u, 'HOST')", ["facebook.com", "H.org", "x.net", None, None]),
    ("PARSE_URL(u, 'PATH')", ["/path1/p.php", "", "/a", None, None]),
    ("PARSE_URL(u, 'QUERY')", ["k1=v1&k2=v2", None, "b=1&k1=", None, None]),
    ("PARSE_URL(u, 'QUERY', 'k1')", ["v1", None, "", None, None]),
    ("PARSE_URL(u, 'REF')", ["Ref1", None, None, None, None]),
    ("PARSE_URL(u, 'PROTOCOL')", ["http", "https", "ftp", None, None]),
    ("PARSE_URL(u, 'AUTHORITY')", ["facebook.com", "u:p@H.org:8080", "x.net", None, None]),
    ("PARSE_URL(u, 'USERINFO')", [None, "u:p", None, None, None]),
    ("PARSE_URL(u, 'FILE')", ["/path1/p.php?k1=v1&k2=v2", "", "/a?b=1&k1=", None, None]),
    ("PARSE_URL(u, 'HOST', 'k1')", [None] * 5),
    ("PARSE_URL(u, 'PORT')", [None] * 5),
]


@pytest.mark.parametrize(("sql", "want"), FLINK, ids=[c[0] for c in FLINK])
def test_flink_semantics(sql: str, want: list) -> None:
    assert run(sql) == want


TRIM_FLINK = [
    ("LTRIM(s)", ["ab  ", None]),
    ("RTRIM(s)", ["  ab", None]),
    ("TRIM(LEADING 'x' FROM 'xxaxx')", ["axx", "axx"]),
    ("TRIM(TRAILING 'x' FROM 'xxaxx')", ["xxa", "xxa"]),
]


@pytest.mark.parametrize(("sql", "want"), TRIM_FLINK, ids=[c[0] for c in TRIM_FLINK])
def test_one_sided_trims(sql: str, want: list) -> None:
    assert run(sql, pl.DataFrame({"s": ["  ab  ", None]})) == want


ERRORS = [
    ("REGEXP_REPLACE(s, t, 'x')", UnsupportedSql,
     "REGEXP_REPLACE with a pattern that is not a string literal is not supported"),
    ("REGEXP(s, '(?<=a)b')", UnsupportedSql, "look-around, including look-ahead and "
     "look-behind, is not supported) is not supported; tidal runs Rust regular expressions"),
    ("REGEXP_COUNT(s, '(a)\\1')", UnsupportedSql, "REGEXP_COUNT with the regular expression "
     "'(a)\\\\1' (backreferences are not supported) is not supported"),
    ("REGEXP(s, 'a++b')", UnsupportedSql, "(possessive quantifiers are not supported)"),
    ("REGEXP(s, '\\p{Alpha}')", UnsupportedSql, "Java's POSIX classes such as \\p{Alpha}"),
    ("REGEXP_EXTRACT_ALL(s, 'l')", SqlError, "REGEXP_EXTRACT_ALL group 1 does not exist: "
     "the pattern 'l' has 0 groups"),
    ("REGEXP_EXTRACT_ALL(s, '^(l)')", UnsupportedSql,
     "REGEXP_EXTRACT_ALL of group 1 with an anchored pattern '^(l)' is not supported"),
    ("REPLACE(s, t, 'x')", UnsupportedSql,
     "REPLACE with a search string that is not a string literal is not supported"),
    ("REPLACE(s, 'a')", SqlError, "REPLACE takes 3 arguments (string, search, replacement)"),
    ("CONCAT_WS(t, s)", UnsupportedSql, "CONCAT_WS with a separator that is not a string literal"),
    ("INSTR(s, 'a', 1, 2)", UnsupportedSql, "INSTR with an occurrence argument is not supported"),
    ("INSTR(s, 'a', -1)", UnsupportedSql,
     "INSTR with a start that is not a positive integer literal is not supported"),
    ("INSTR(s, 'a', n)", UnsupportedSql, "INSTR with a start that is not a positive integer"),
    ("SHA2(s, 100)", UnsupportedSql, "SHA2 with the bit length 100 is not supported; use a "
     "literal 224, 256, 384 or 512"),
    ("SHA224(s, t)", SqlError, "SHA224 takes 1 argument, got 2"),
    ("JSON_QUERY(j)", SqlError, "JSON_QUERY takes 2 arguments, got 1"),
    ("CHR(n, n)", SqlError, "CHR takes 1 argument, got 2"),
    ("INITCAP(s, '-')", UnsupportedSql, "INITCAP with more than 1 argument is not supported"),
    ("REGEXP_COUNT(s, 'l', 2)", UnsupportedSql,
     "REGEXP_COUNT with more than 2 arguments is not supported"),
    ("REGEXP_REPLACE(s, 'l', 'x', 2)", UnsupportedSql,
     "REGEXP_REPLACE with more than 3 arguments is not supported"),
    ("URL_DECODE(s, t)", SqlError, "URL_DECODE takes 1 argument, got 2"),
    ("JSON_VALUE(j, 'strict $.a')", UnsupportedSql,
     "JSON_VALUE with the path 'strict $.a' is not supported"),
    ("JSON_VALUE(j, '$.[\"a.b\"][0]')", UnsupportedSql, "JSON_VALUE with the path"),
    ("JSON_VALUE(j, '$.a' DEFAULT 'z' ON EMPTY)", UnsupportedSql,
     "JSON_VALUE with DEFAULT 'z' ON EMPTY is not supported"),
    ("JSON_EXISTS(j, '$.a')", UnsupportedSql, "the function JSON_EXISTS is not supported"),
    ("j IS JSON", UnsupportedSql, "IS JSON is not supported"),
    ("PARSE_URL(u, t)", UnsupportedSql, "PARSE_URL with a part that is not a string literal"),
    ("~n", UnsupportedSql, "the operator ~ is not supported"),
    ("TRANSLATE(s, t, 'x')", UnsupportedSql, "TRANSLATE with a from string that is not a "
     "string literal is not supported"),
]


@pytest.mark.parametrize(("sql", "kind", "message"), ERRORS, ids=[c[0] for c in ERRORS])
def test_errors_name_the_function(sql: str, kind: type[Exception], message: str) -> None:
    with pytest.raises(kind) as raised:
        run(sql)
    assert message in str(raised.value)


BID = ("CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, "
       "url STRING, `dateTime` TIMESTAMP(3), extra STRING, "
       "WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND) "
       "WITH ('connector' = 'nexmark', 'events' = '2000');")


def test_end_to_end_on_nexmark_urls() -> None:
    flow = td.Flow("strings")
    flow.sql(BID)
    out = td.sinks.memory()
    flow.sql("SELECT url, channel, PARSE_URL(url, 'HOST') AS host, "
             "PARSE_URL(url, 'QUERY', 'channel_id') AS cid, UPPER(LEFT(channel, 3)) AS c3, "
             "CONCAT_WS('/', channel, PARSE_URL(url, 'QUERY', 'channel_id')) AS tag, "
             "SPLIT(channel, '-') AS parts "
             "FROM bid WHERE REGEXP(url, 'channel_id=[0-9]+$')").sink(out)
    flow.run(quiet=True)
    frame = out.frame()
    assert frame.height > 0
    for row in frame.iter_rows(named=True):
        parts = urlsplit(row["url"])
        assert row["host"] == parts.hostname
        assert row["cid"] == parse_qs(parts.query)["channel_id"][0]
        assert row["c3"] == row["channel"][:3].upper()
        assert row["tag"] == f"{row['channel']}/{row['cid']}"
        assert row["parts"] == row["channel"].split("-")


def test_tidal_sql_command_runs_string_functions() -> None:
    app = typer.Typer()
    app.command("sql")(sql_command)
    app.command("noop")(lambda: None)
    doc = json.dumps({"k": {"v": [7, 8]}})
    result = CliRunner().invoke(app, ["sql", "--format", "csv", "-e", BID + " SELECT "
                                      "LPAD('7', 3, '0') AS p, INITCAP('hello wORLD') AS i, "
                                      "MD5('') AS m, "
                                      f"JSON_VALUE('{doc}', '$.k.v[1]' RETURNING INT) AS j "
                                      "FROM bid LIMIT 1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["p,i,m,j", "007,Hello World,"
                                          "d41d8cd98f00b204e9800998ecf8427e,8"]
