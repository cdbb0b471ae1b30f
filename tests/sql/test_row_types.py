"""ROW column types (``ROW<name TYPE, ...>``, ``ROW(name TYPE, ...)``) and field access
(``col.field``, ``tbl.col.field``), resolved as Flink does: a leading name that is a table or
alias in scope qualifies a column, otherwise it is a ROW column."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import sqlglot

import tidal as td
from tidal.sql import session_for
from tidal.sql.catalog import table_from_ddl
from tidal.sql.dialect import Flink
from tidal.sql.errors import SqlError

ROWS = [
    {"id": 1, "p": {"name": "ann", "age": 31, "addr": {"city": "Bend"}}},
    {"id": 2, "p": {"name": "bob", "age": 45, "addr": {"city": "Kent"}}},
    {"id": 3, "p": {"name": "cyd", "age": 52, "addr": {"city": "Kent"}}},
    {"id": 4, "p": None},
]
TABLE = ("CREATE TABLE t (id BIGINT, p ROW(name STRING, age INT, addr ROW<city STRING>)) "
         "WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'json')")


@pytest.fixture
def flow(tmp_path: Path) -> td.Flow:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    flow = td.Flow("rows")
    flow.sql(TABLE.format(path=path))
    return flow


def rows(flow: td.Flow, query: str) -> list[dict]:
    out = td.sinks.memory()
    flow.sql(query).sink(out)
    flow.run(quiet=True)
    return out.frame().to_dicts()


def test_row_types_become_structs() -> None:
    node = sqlglot.parse_one(
        "CREATE TABLE t (a INT, p ROW<id BIGINT, `dateTime` TIMESTAMP(3), q ROW(x INT)>, "
        "r ROW(s ROW<y DECIMAL(10, 2)>, n STRING)) WITH ('connector' = 'datagen')", read=Flink)
    table = table_from_ddl(node)  # type: ignore[arg-type]
    assert table.columns == {
        "a": pl.Int32(),
        "p": pl.Struct({"id": pl.Int64(), "dateTime": pl.Datetime("ms"),
                        "q": pl.Struct({"x": pl.Int32()})}),
        "r": pl.Struct({"s": pl.Struct({"y": pl.Decimal(10, 2)}), "n": pl.String()}),
    }


def test_row_constructor_in_an_expression_is_not_a_type() -> None:
    node = sqlglot.parse_one("SELECT ROW(1, 2) FROM t", read=Flink)
    assert node.expressions[0].sql() == "ROW(1, 2)"


def test_describe_shows_row_types(flow: td.Flow) -> None:
    lines = session_for(flow).describe("t").splitlines()
    assert lines[2].split(None, 1) == ["p", "ROW<`name` STRING, `age` INT, `addr` ROW<`city` STRING>>"]


def test_field_access_in_select_and_where(flow: td.Flow) -> None:
    got = rows(flow, "SELECT id, p.name, p.age + 1 AS next_age, p.addr.city, x.p.addr.city AS c "
                     "FROM t AS x WHERE p.age > 40 OR p IS NULL")
    assert got == [
        {"id": 2, "name": "bob", "next_age": 46, "city": "Kent", "c": "Kent"},
        {"id": 3, "name": "cyd", "next_age": 53, "city": "Kent", "c": "Kent"},
        {"id": 4, "name": None, "next_age": None, "city": None, "c": None},
    ]


def test_a_whole_row_column_is_selected_as_a_struct(flow: td.Flow) -> None:
    got = rows(flow, "SELECT p FROM t WHERE id = 1")
    assert got == [{"p": {"name": "ann", "age": 31, "addr": {"city": "Bend"}}}]


def test_group_by_a_field(flow: td.Flow) -> None:
    got = rows(flow, "SELECT p.addr.city, COUNT(*) AS n, SUM(p.age) AS ages FROM t "
                     "WHERE p IS NOT NULL GROUP BY p.addr.city")
    final = {r["city"]: (r["n"], r["ages"]) for r in got if not r.get("__delete")}
    assert final == {"Bend": (1, 31), "Kent": (2, 97)}


def test_a_table_alias_comes_before_a_row_column_of_the_same_name(flow: td.Flow) -> None:
    # `p` is an alias here, so p.id is the column id, as in Flink
    assert rows(flow, "SELECT p.id FROM t AS p WHERE p.id < 3") == [{"id": 1}, {"id": 2}]


def test_join_on_fields(flow: td.Flow) -> None:
    got = rows(flow, "SELECT a.id AS a, b.id AS b FROM t AS a JOIN t AS b "
                     "ON a.p.addr.city = b.p.addr.city AND a.id < b.id")
    assert got == [{"a": 2, "b": 3}]


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT p.nme FROM t",
     "unknown field 'nme' of the ROW column 'p'; did you mean 'name'? (fields: name, age, addr)"),
    ("SELECT p.addr.City FROM t",
     "unknown field 'City' of the ROW column 'p.addr'; did you mean 'city'? (fields: city)"),
    ("SELECT id.x FROM t",
     "'id' is not a ROW (its type is BIGINT), so it has no field 'x'; no table or alias of "
     "that name is in scope"),
    ("SELECT t.p.age FROM t AS x",
     "unknown table, alias or ROW column 't' in t.p.age (tables: x; ROW columns: p)"),
])
def test_field_errors(flow: td.Flow, query: str, message: str) -> None:
    with pytest.raises(SqlError) as info:
        flow.sql(query)
    assert message in str(info.value)
