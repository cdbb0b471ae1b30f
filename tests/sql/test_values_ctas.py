"""``VALUES`` as a bounded source, ``CREATE TABLE ... AS SELECT`` (Flink's CTAS) and
``CREATE TABLE ... LIKE``."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

import tidal as td
from tidal.sql import SqlError, UnsupportedSql

BID = """CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND)
  WITH ('connector' = 'nexmark', 'events' = '3000');"""


def _rows(flow: td.Flow, query: str) -> tuple[pl.Schema, list[dict[str, object]]]:
    stream = flow.sql(query)
    out = td.sinks.memory()
    stream.sink(out)
    flow.run(quiet=True)
    return stream.schema, out.rows


def test_values_are_a_bounded_source_typed_like_flink_literals() -> None:
    schema, rows = _rows(td.Flow("values"), """
      SELECT x, y, z, x * 2 AS x2 FROM (VALUES (1, 'a', 1.5), (3000000000, 'bcd', 12.25),
        (NULL, NULL, 2)) AS t(x, y, z) WHERE y <> 'a' OR y IS NULL""")
    # INT and BIGINT widen to BIGINT; DECIMAL(2, 1), DECIMAL(4, 2) and INT to DECIMAL(11, 2)
    assert schema == pl.Schema({"x": pl.Int64, "y": pl.String, "z": pl.Decimal(12, 2),
                                "x2": pl.Int64})
    assert rows == [{"x": 3000000000, "y": "bcd", "z": Decimal("12.25"), "x2": 6000000000},
                    {"x": None, "y": None, "z": Decimal("2.00"), "x2": None}]


def test_values_without_names_give_flink_expr_columns_and_feed_aggregates() -> None:
    schema, rows = _rows(td.Flow("values-agg"), """
      SELECT EXPR$1 AS k, SUM(EXPR$0) AS s, COUNT(*) AS n
      FROM (VALUES (1, 'a'), (2, 'b'), (3, 'a')) GROUP BY EXPR$1""")
    assert schema["k"] == pl.String
    final = {r["k"]: (r["s"], r["n"]) for r in rows}  # the last upsert per key
    assert final == {"a": (4, 2), "b": (2, 1)}


def test_select_without_from_gives_one_row() -> None:
    schema, rows = _rows(td.Flow("no-from"), "SELECT UPPER('a') AS u, 1 + 1, CAST(NULL AS INT) AS n")
    assert schema == pl.Schema({"u": pl.String, "EXPR$1": pl.Int32, "n": pl.Int32})
    assert rows == [{"u": "A", "EXPR$1": 2, "n": None}]


def test_insert_into_values_writes_the_rows_cast_to_the_table(tmp_path: Path) -> None:
    flow = td.Flow("insert-values")
    flow.sql(f"""
      CREATE TABLE sink (id BIGINT, name STRING, score DOUBLE)
        WITH ('connector' = 'filesystem', 'path' = '{tmp_path}/out.jsonl', 'format' = 'json');
      CREATE TABLE other (id BIGINT, name STRING)
        WITH ('connector' = 'filesystem', 'path' = '{tmp_path}/other.jsonl', 'format' = 'json');
      INSERT INTO sink VALUES (1, 'ann', 1.5), (2, 'bob', NULL), (3, 'cy', 2);
      INSERT INTO other (name, id) VALUES ('dee', 4);""")
    flow.run(quiet=True)
    got = pl.read_ndjson(tmp_path / "out.jsonl").sort("id")
    assert got.to_dicts() == [{"id": 1, "name": "ann", "score": 1.5},
                              {"id": 2, "name": "bob", "score": None},
                              {"id": 3, "name": "cy", "score": 2.0}]
    assert pl.read_ndjson(tmp_path / "other.jsonl").to_dicts() == [{"id": 4, "name": "dee"}]


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT * FROM (VALUES (1, 'a'), (2)) AS t(x, y)",
     "line 1, column 34: VALUES: every row needs 2 value(s) (as many as its column names), "
     "this one has 1: (2)"),
    ("SELECT * FROM (VALUES (1), (2, 3))",
     "VALUES: every row needs 1 value(s) (as many as the first row), this one has 2"),
    ("SELECT * FROM (VALUES (1), ('a')) AS t(x)",
     "VALUES: column x mixes the types INT, STRING; CAST the values to one type"),
    ("SELECT * FROM (VALUES (NULL), (NULL)) AS t(x)",
     "VALUES: column x is NULL in every row; give it a type with CAST(NULL AS type)"),
])
def test_values_errors(query: str, message: str) -> None:
    flow = td.Flow("bad-values")
    with pytest.raises(SqlError) as info:
        flow.sql(query)
    assert message in str(info.value)
    assert flow.nodes == []


def test_create_table_as_select_takes_the_querys_columns_and_writes_them(tmp_path: Path) -> None:
    db = tmp_path / "out.db"
    flow = td.Flow("ctas")
    flow.sql(BID + f"""
      CREATE TABLE totals WITH ('connector' = 'sqlite', 'path' = '{db}')
        AS SELECT auction, COUNT(*) AS n, MAX(price) AS top FROM bid GROUP BY auction;""")
    assert flow.sql("SHOW CREATE TABLE totals") == (
        "CREATE TABLE `totals` (\n  `auction` BIGINT,\n  `n` BIGINT,\n  `top` BIGINT,\n"
        "  PRIMARY KEY (`auction`) NOT ENFORCED\n) WITH (\n  'connector' = 'sqlite',\n"
        f"  'path' = '{db}'\n)")
    flow.run(quiet=True)
    got = sorted(sqlite3.connect(db).execute("SELECT auction, n, top FROM totals").fetchall())
    from tidal.nexmark import NexmarkConfig, generate_bids
    bids = generate_bids(NexmarkConfig(events=3000), 0, 3000)
    want = bids.group_by("auction").agg(pl.len().cast(pl.Int64), pl.col("price").max())
    assert got == [tuple(r) for r in want.sort("auction").iter_rows()]


def test_create_table_as_values_appends_to_a_file(tmp_path: Path) -> None:
    flow = td.Flow("ctas-values")
    flow.sql(f"""CREATE TABLE names WITH ('connector' = 'filesystem',
                   'path' = '{tmp_path}/n.jsonl', 'format' = 'json')
                 AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS t(id, name);""")
    assert flow.sql("DESCRIBE names") == "name  type    extras\nid    INT\nname  STRING"
    flow.run(quiet=True)
    assert pl.read_ndjson(tmp_path / "n.jsonl").sort("id").to_dicts() == \
        [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def test_create_table_as_select_errors(tmp_path: Path) -> None:
    flow = td.Flow("ctas-bad")
    flow.sql(BID)
    with pytest.raises(SqlError, match="CREATE TABLE bid AS SELECT: table 'bid' already exists; "
                                       "DROP it first, or INSERT INTO it"):
        flow.sql("CREATE TABLE bid WITH ('connector' = 'blackhole') AS SELECT auction FROM bid")
    with pytest.raises(UnsupportedSql, match="a column list in CREATE TABLE ... AS SELECT is not "
                                             "supported; the table takes the query's columns"):
        flow.sql("CREATE TABLE t (a BIGINT) WITH ('connector' = 'blackhole') AS "
                 "SELECT auction FROM bid")
    with pytest.raises(SqlError, match="an updating result needs PRIMARY KEY"):
        flow.sql(f"CREATE TABLE t WITH ('connector' = 'sqlite', 'path' = '{tmp_path}/x.db') AS "
                 "SELECT COUNT(*) AS n FROM bid")
    assert flow.sql("SHOW TABLES") == "bid" and flow.nodes == []


def test_create_table_like_copies_the_table_and_overwrites_its_options() -> None:
    flow = td.Flow("like")
    flow.sql(BID + """
      CREATE TABLE few WITH ('events' = '40', 'kind' = 'bid') LIKE bid;
      CREATE VIEW v AS SELECT auction FROM bid;""")
    assert flow.sql("DESCRIBE few") == flow.sql("DESCRIBE bid")  # columns and watermark
    assert flow.sql("SHOW CREATE TABLE few") == \
        "CREATE TABLE few WITH ('events' = '40', 'kind' = 'bid') LIKE bid"
    _, rows = _rows(flow, "SELECT COUNT(*) AS n FROM few")
    from tidal.nexmark import NexmarkConfig, generate_bids
    assert rows[-1]["n"] == generate_bids(NexmarkConfig(events=40), 0, 40).height
    with pytest.raises(UnsupportedSql, match="CREATE TABLE ... LIKE with a column list or LIKE "
                                             "options is not supported"):
        flow.sql("CREATE TABLE t (x INT) WITH ('events' = '1') LIKE bid")
    with pytest.raises(UnsupportedSql, match="LIKE options is not supported"):
        flow.sql("CREATE TABLE t LIKE bid (EXCLUDING OPTIONS)")
    with pytest.raises(SqlError, match="CREATE TABLE t LIKE v: 'v' is not a table declared with "
                                       "CREATE TABLE"):
        flow.sql("CREATE TABLE t LIKE v")
