"""Several INSERTs into one table (tidal.sql.session): as in Flink, the rows of every
query go to the table, through one sink step named after it that reads their union."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl
import pytest

import tidal as td
from tidal.sql import SqlError, UnsupportedSql


def _flow(name: str) -> td.Flow:
    flow = td.Flow(name)
    bids = pl.DataFrame({"id": [1, 2, 3, 4, 5], "item": ["a", "b", "a", "c", "b"],
                         "price": [10, 250, 40, 900, 75], "t": [1000, 2000, 3000, 4000, 5000]})
    asks = pl.DataFrame({"ref": [7, 8], "what": ["z", "a"], "at": [1500, 6000]})
    flow.register_table("bids", flow.source(td.sources.memory(bids), timestamp="t"))
    flow.register_table("asks", flow.source(td.sources.memory(asks), timestamp="at"))
    return flow


def _sink_ddl(tmp_path: Path) -> str:
    return (f"CREATE TABLE alerts (id BIGINT, reason STRING) WITH ('connector' = 'filesystem', "
            f"'path' = '{tmp_path}/alerts.jsonl', 'format' = 'json');")


def _alerts(tmp_path: Path) -> list[tuple[int, str]]:
    rows = pl.read_ndjson(tmp_path / "alerts.jsonl").rows()
    return sorted(rows)


def test_two_inserts_write_both_queries_rows_into_one_file(tmp_path: Path) -> None:
    flow = _flow("two")
    flow.sql(_sink_ddl(tmp_path) + """
      INSERT INTO alerts SELECT id, 'expensive' FROM bids WHERE price > 200;
      INSERT INTO alerts SELECT ref, CONCAT('ask ', what) FROM asks;""")
    assert [n.name for n in flow.nodes if n.kind == "sink"] == ["alerts"]
    flow.run(quiet=True)
    assert _alerts(tmp_path) == [(2, "expensive"), (4, "expensive"), (7, "ask z"), (8, "ask a")]


def test_a_statement_set_of_three_inserts_into_one_table(tmp_path: Path) -> None:
    flow = _flow("set")
    flow.sql(_sink_ddl(tmp_path) + """
      EXECUTE STATEMENT SET BEGIN
        INSERT INTO alerts SELECT id, 'cheap' FROM bids WHERE price < 50;
        INSERT INTO alerts (id, reason) SELECT id, item FROM bids WHERE item = 'c';
        INSERT INTO alerts SELECT ref, what FROM asks WHERE ref = 8;
      END;""")
    unions = [n for n in flow.nodes if n.kind == "union"]
    assert [len(u.inputs) for u in unions] == [3]  # one union over the three results
    flow.run(quiet=True)
    assert _alerts(tmp_path) == [(1, "cheap"), (3, "cheap"), (4, "c"), (8, "a")]


def test_a_second_insert_keeps_the_first_ones_step_names(tmp_path: Path) -> None:
    """A checkpoint taken before the second INSERT was added must still restore: the
    first INSERT's steps and the sink keep their names."""
    first = """INSERT INTO alerts SELECT item, COUNT(*) FROM bids
               GROUP BY item, TUMBLE(t, INTERVAL '10' SECOND);"""
    ddl = (f"CREATE TABLE alerts (item STRING, n BIGINT) WITH ('connector' = 'filesystem', "
           f"'path' = '{tmp_path}/alerts.jsonl', 'format' = 'json');")
    one = _flow("names")
    one.sql(ddl + first)
    two = _flow("names")
    two.sql(ddl + first + "INSERT INTO alerts SELECT what, 1 FROM asks;")
    names = [n.name for n in two.nodes]
    assert all(n.name in names for n in one.nodes)
    stateful = [(n.name, n.signature) for n in one.nodes if n.stateful]
    assert [(n.name, n.signature) for n in two.nodes if n.stateful] == stateful
    two.run(quiet=True)
    assert sorted(pl.read_ndjson(tmp_path / "alerts.jsonl").rows()) == \
        [("a", 1), ("a", 2), ("b", 2), ("c", 1), ("z", 1)]


def test_two_updating_inserts_upsert_into_one_sqlite_table(tmp_path: Path) -> None:
    db = tmp_path / "out.db"
    flow = _flow("upserts")
    flow.sql(f"""
      CREATE TABLE totals (k STRING, n BIGINT, PRIMARY KEY (k) NOT ENFORCED)
        WITH ('connector' = 'sqlite', 'path' = '{db}');
      INSERT INTO totals SELECT item, COUNT(*) FROM bids GROUP BY item;
      INSERT INTO totals SELECT CONCAT('ask ', what), SUM(ref) FROM asks GROUP BY what;""")
    flow.run(quiet=True)
    got = sorted(sqlite3.connect(db).execute("SELECT k, n FROM totals").fetchall())
    assert got == [("a", 2), ("ask a", 8), ("ask z", 7), ("b", 2), ("c", 1)]


def test_an_updating_and_an_appending_insert_into_one_table_are_refused(tmp_path: Path) -> None:
    flow = _flow("mixed")
    flow.sql(f"""
      CREATE TABLE totals (k STRING, n BIGINT, PRIMARY KEY (k) NOT ENFORCED)
        WITH ('connector' = 'sqlite', 'path' = '{tmp_path}/out.db');
      INSERT INTO totals SELECT item, COUNT(*) FROM bids GROUP BY item;""")
    before = [n.name for n in flow.nodes]
    with pytest.raises(UnsupportedSql, match="INSERT INTO totals of an appending result beside "
                       "an updating one is not supported; write them into two tables"):
        flow.sql("INSERT INTO totals SELECT what, ref FROM asks;")
    assert [n.name for n in flow.nodes] == before  # the flow is as it was


def test_an_insert_into_a_table_made_by_ctas_adds_to_its_rows(tmp_path: Path) -> None:
    flow = _flow("ctas")
    flow.sql(f"""
      CREATE TABLE alerts WITH ('connector' = 'filesystem', 'path' = '{tmp_path}/alerts.jsonl',
        'format' = 'json') AS SELECT id, item AS reason FROM bids WHERE price > 800;
      INSERT INTO alerts SELECT ref, what FROM asks;""")
    flow.run(quiet=True)
    assert _alerts(tmp_path) == [(4, "c"), (7, "z"), (8, "a")]


def test_inserts_of_different_columns_into_one_table_are_an_error(tmp_path: Path) -> None:
    flow = _flow("columns")
    flow.sql(_sink_ddl(tmp_path) + "INSERT INTO alerts (id) SELECT id FROM bids;")
    with pytest.raises(SqlError, match="INSERT INTO alerts: this query writes the columns id, "
                       "reason but an earlier INSERT INTO alerts writes id; give both the same "
                       "columns"):
        flow.sql("INSERT INTO alerts SELECT ref, what FROM asks;")
