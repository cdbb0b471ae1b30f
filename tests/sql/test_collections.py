"""Flink's collection values and functions in SQL (tidal.sql.collections): ARRAY[...] and
``arr[i]`` (from 1, NULL out of range), MAP[...] and ``map[key]``, ROW(...), CARDINALITY,
ELEMENT and the ARRAY_* / MAP_* functions, with NULL arrays, NULL elements and the results of
SPLIT, ARRAY_AGG and UNNEST; where DuckDB computes the same thing (its lists count from 1
too) the answer is compared with it, otherwise with Flink's documented results."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

import tidal as td
from tidal.sql import SqlError, UnsupportedSql

ARRAYS: list[list[int | None] | None] = [[1, 2, 3], [None, 5], [], None]
INDEXES = [2, 3, 1, 1]
TEXT = ["x,y", None, "", "z"]


def _flow() -> td.Flow:
    flow = td.Flow("collections")
    rows = pl.DataFrame({"id": [1, 2, 3, 4], "a": ARRAYS, "i": INDEXES, "s": TEXT,
                         "k": ["x", "y", "x", "y"], "t": [1000, 2000, 3000, 4000]},
                        schema={"id": pl.Int64, "a": pl.List(pl.Int64), "i": pl.Int32,
                                "s": pl.String, "k": pl.String, "t": pl.Int64})
    flow.register_table("r", flow.source(td.sources.memory(rows), timestamp="t"))
    return flow


def _column(expr: str) -> list[Any]:
    """``expr`` over the four rows of ``r`` (in id order)."""
    flow, out = _flow(), td.sinks.memory()
    flow.sql(f"SELECT id, {expr} AS x FROM r").sink(out)
    flow.run(quiet=True)
    return [row["x"] for row in sorted(out.rows, key=lambda row: row["id"])]


def _duckdb(expr: str) -> list[Any]:
    con = duckdb.connect()
    con.execute("CREATE TABLE r (id BIGINT, a BIGINT[], i INT, s VARCHAR)")
    con.executemany("INSERT INTO r VALUES (?, ?, ?, ?)",
                    list(zip([1, 2, 3, 4], ARRAYS, INDEXES, TEXT, strict=True)))
    return [row[0] for row in con.execute(f"SELECT {expr} FROM r ORDER BY id").fetchall()]


@pytest.mark.parametrize(("flink", "duck"), [
    ("a[1]", "a[1]"),
    ("a[i]", "a[i]"),
    ("a[4]", "a[4]"),  # past the end: NULL
    ("a[i + 1]", "a[i + 1]"),
    ("CARDINALITY(a)", "len(a)"),
    ("ARRAY_CONTAINS(a, 5)", "list_contains(a, 5)"),
    ("ARRAY_SLICE(a, 2, 3)", "list_slice(a, 2, 3)"),
    ("ARRAY_SLICE(a, -2, -1)", "list_slice(a, -2, -1)"),
    ("ARRAY_CONCAT(a, ARRAY[7, 8])", "CASE WHEN a IS NOT NULL THEN list_concat(a, [7, 8]) END"),
    ("ARRAY_REVERSE(a)", "list_reverse(a)"),
    ("ARRAY_MAX(a)", "list_max(a)"),
    ("ARRAY_MIN(a)", "list_min(a)"),
    ("SPLIT(s, ',')[2]", "string_split(s, ',')[2]"),
    ("CARDINALITY(SPLIT(s, ','))", "len(string_split(s, ','))"),
    ("ARRAY[i, 10, NULL]", "[i, 10, NULL]"),
])
def test_array_functions_match_duckdb(flink: str, duck: str) -> None:
    assert _column(flink) == _duckdb(duck)


@pytest.mark.parametrize(("expr", "expected"), [
    ("a[0]", [None] * 4),  # Flink counts from 1: there is no element 0
    ("a[-1]", [None] * 4),
    ("ARRAY[10, 20, 30][2]", [20] * 4),
    ("ELEMENT(a)", [None, None, None, None]),  # several elements: NULL (Flink fails the job)
    ("ELEMENT(SPLIT(s, ','))", [None, None, "", "z"]),
    ("ARRAY_CONTAINS(a, NULL)", [False, True, False, None]),  # NULL elements can be found
    ("ARRAY_POSITION(a, 3)", [3, 0, 0, None]),  # 0 when absent, NULL for a NULL array
    ("ARRAY_POSITION(a, i)", [2, 0, 0, None]),
    ("ARRAY_POSITION(a, NULL)", [None] * 4),
    ("ARRAY_DISTINCT(ARRAY[2, 1, 2, NULL, 1, NULL])", [[2, 1, None]] * 4),  # first ones kept
    ("ARRAY_JOIN(ARRAY['a', NULL, 'b'], '-')", ["a-b"] * 4),  # NULL elements left out
    ("ARRAY_JOIN(ARRAY['a', NULL, 'b'], '-', '?')", ["a-?-b"] * 4),
    ("ARRAY_JOIN(SPLIT(s, ','), '|')", ["x|y", None, "", "z"]),
    ("ARRAY_SLICE(a, 2)", [[2, 3], [5], [], None]),  # to the end
    ("ARRAY_SLICE(a, 0, 1)", [[1], [None], [], None]),  # 0 is the first position too
    ("ARRAY_SLICE(a, 3, 2)", [[], [], [], None]),  # start after end
    ("ARRAY_SLICE(a, 5, 6)", [[], [], [], None]),  # both past the end
    ("ARRAY_SLICE(a, NULL, 2)", [None] * 4),
    ("ARRAY_CONCAT(a, CAST(NULL AS ARRAY<BIGINT>))", [None] * 4),
    ("ARRAY_APPEND(a, i)", [[1, 2, 3, 2], [None, 5, 3], [1], None]),  # NULL array: NULL
    ("ARRAY_APPEND(a, NULL)", [[1, 2, 3, None], [None, 5, None], [None], None]),
    ("ARRAY_PREPEND(a, 0)", [[0, 1, 2, 3], [0, None, 5], [0], None]),
    ("ARRAY_REMOVE(ARRAY[2, 1, 2, NULL], 2)", [[1, None]] * 4),
    ("ARRAY_REMOVE(a, NULL)", [[1, 2, 3], [5], [], None]),  # NULL removes the NULLs
    ("ARRAY_SORT(ARRAY[3, NULL, 1])", [[None, 1, 3]] * 4),  # NULLs first when ascending
    ("ARRAY_SORT(ARRAY[3, NULL, 1], FALSE)", [[3, 1, None]] * 4),  # and last descending
    ("ARRAY_SORT(ARRAY[3, NULL, 1], FALSE, TRUE)", [[None, 3, 1]] * 4),
    ("ARRAY_SORT(ARRAY[3, NULL, 1], TRUE, FALSE)", [[1, 3, None]] * 4),
    ("ARRAY_SORT(a, NULL)", [None] * 4),
    ("ARRAY[1, 2.5]", [[1, 2.5]] * 4),
    ("CAST(ARRAY[1, 2] AS ARRAY<STRING>)", [["1", "2"]] * 4),
    ("ARRAY[a, NULL]", [[[1, 2, 3], None], [[None, 5], None], [[], None], [None, None]]),
])
def test_array_functions_follow_flink(expr: str, expected: list[Any]) -> None:
    got = _column(expr)
    assert [[float(v) for v in x] if expr == "ARRAY[1, 2.5]" else x for x in got] == expected


@pytest.mark.parametrize(("expr", "expected"), [
    ("MAP['a', 1, 'b', 2]['b']", [2] * 4),
    ("MAP['a', 1, 'b', 2]['c']", [None] * 4),  # an absent key: NULL
    ("MAP['x', i, 'y', 0][k]", [2, 0, 1, 0]),
    ("MAP[1, 'one', 2, 'two'][1]", ["one"] * 4),  # integer keys are keys, not positions
    ("MAP['a', 1, 'a', 2]['a']", [2] * 4),  # a repeated key keeps its last value
    ("CARDINALITY(MAP['a', 1, 'a', 2, 'b', 3])", [2] * 4),
    ("MAP_KEYS(MAP['a', 1, 'b', 2])", [["a", "b"]] * 4),
    ("MAP_VALUES(MAP['a', 1, 'b', 2])", [[1, 2]] * 4),
    ("MAP_ENTRIES(MAP['a', 1])", [[{"key": "a", "value": 1}]] * 4),
    ("CAST(MAP['a', 1] AS MAP<STRING, DOUBLE>)['a']", [1.0] * 4),
    ("MAP[s, 1]", [{"x,y": 1}, {}, {"": 1}, {"z": 1}]),  # a NULL key's entry is left out
    ("ROW(i, s)", [{"EXPR$0": 2, "EXPR$1": "x,y"}, {"EXPR$0": 3, "EXPR$1": None},
                   {"EXPR$0": 1, "EXPR$1": ""}, {"EXPR$0": 1, "EXPR$1": "z"}]),
    ("(1, 'a')", [{"EXPR$0": 1, "EXPR$1": "a"}] * 4),
])
def test_maps_and_rows_follow_flink(expr: str, expected: list[Any]) -> None:
    assert _column(expr) == expected


def test_array_agg_results_take_an_index_and_a_cardinality() -> None:
    flow, out = _flow(), td.sinks.memory()
    flow.sql("SELECT k, CARDINALITY(ids) AS n, ids[1] AS first_id, ids[3] AS third FROM "
             "(SELECT k, ARRAY_AGG(id) AS ids FROM r GROUP BY k)").sink(out)
    flow.run(quiet=True)
    final = {row["k"]: row for row in out.rows}  # the last update per key
    assert {k: (r["n"], r["first_id"], r["third"]) for k, r in final.items()} == \
        {"x": (2, 1, None), "y": (2, 2, None)}


def test_unnest_of_an_array_constructor() -> None:
    flow, out = _flow(), td.sinks.memory()
    flow.sql("SELECT id, v FROM r CROSS JOIN UNNEST(ARRAY[id, id * 10]) AS u(v) "
             "WHERE id <= 2").sink(out)
    flow.run(quiet=True)
    assert out.rows == [{"id": 1, "v": 1}, {"id": 1, "v": 10}, {"id": 2, "v": 2},
                        {"id": 2, "v": 20}]


def test_unnest_of_a_map_gives_its_keys_and_values() -> None:
    flow, out = _flow(), td.sinks.memory()
    flow.sql("SELECT id, k2, v FROM r CROSS JOIN UNNEST(MAP_ENTRIES(MAP['p', id, 'q', i])) "
             "AS u(k2, v) WHERE id = 1").sink(out)
    flow.run(quiet=True)
    assert out.rows == [{"id": 1, "k2": "p", "v": 1}, {"id": 1, "k2": "q", "v": 2}]


@pytest.mark.parametrize(("expr", "error", "message"), [
    ("ARRAY[1, 'a']", SqlError, "ARRAY mixes INT and STRING; CAST them to one type"),
    ("i[1]", SqlError, "i is INT, not an ARRAY or a MAP, so it takes no [...]"),
    ("a['x']", SqlError, "the index of a['x'] is STRING; an ARRAY index is an integer"),
    ("CARDINALITY(s)", SqlError, "CARDINALITY takes one ARRAY or MAP; s is STRING"),
    ("MAP['a', 1, 'b']", SqlError, "MAP[...] takes keys and values in pairs"),
    ("ARRAY_JOIN(a, ',')", SqlError, "ARRAY_JOIN joins an ARRAY<STRING>, not ARRAY<BIGINT>"),
    ("ARRAY_SORT(a, i > 1)", UnsupportedSql,
     "ARRAY_SORT with an order that is not TRUE or FALSE is not supported"),
    ("ARRAY_UNION(a, a)", UnsupportedSql, "the function ARRAY_UNION is not supported"),
    ("SORT_ARRAY(a, FALSE)", UnsupportedSql, "SORT_ARRAY with an order is not supported; "
     "write Flink's ARRAY_SORT(arr, ascending, nulls_first)"),
    ("CAST(s AS ARRAY<INT>)", UnsupportedSql,
     "CAST from STRING to ARRAY<INT> is not supported; an ARRAY casts to an ARRAY"),
    ("ARRAY_JOIN(SPLIT(s, ','), ',', s)", UnsupportedSql,
     "ARRAY_JOIN with a NULL replacement that is not a string literal is not supported"),
])
def test_collection_errors_are_plan_time(expr: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        _column(expr)


def test_array_and_map_columns_in_ddl_are_refused_at_plan_time(tmp_path: Path) -> None:
    """Not every format reads and writes nested values (CSV does not): until the connectors
    say which do, an ARRAY or MAP column fails at plan time, not when the job runs."""
    with pytest.raises(UnsupportedSql, match=re.escape(
            "the column type ARRAY<STRING> is not supported; ARRAY and MAP values are made in "
            "queries")):
        td.Flow("ddl").sql(f"CREATE TABLE t (id BIGINT, tags ARRAY<STRING>) WITH ("
                           f"'connector' = 'filesystem', 'path' = '{tmp_path}/t.csv', "
                           "'format' = 'csv')")
