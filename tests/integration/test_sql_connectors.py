"""SQL tables on PostgreSQL ('jdbc') and the data lake, with Flink's option names."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import psycopg

import tidal as td


def test_sql_upserts_an_updating_result_into_postgres(postgres_dsn: str, tmp_path: Path) -> None:
    rest = postgres_dsn.removeprefix("postgresql://postgres@")
    events = tmp_path / "events.jsonl"
    pl.DataFrame({"card": ["a", "b", "a", "c", "a"], "amount": [1, 2, 3, 4, 5]}).write_ndjson(events)
    flow = td.Flow("pg-sql")
    flow.sql(f"""
        CREATE TABLE tx (card STRING, amount BIGINT)
        WITH ('connector' = 'filesystem', 'path' = '{events}', 'format' = 'json');
        CREATE TABLE spend (card STRING, total BIGINT, n BIGINT, PRIMARY KEY (card) NOT ENFORCED)
        WITH ('connector' = 'jdbc', 'url' = 'jdbc:postgresql://{rest}',
              'table-name' = 'card_spend', 'username' = 'postgres');
        INSERT INTO spend SELECT card, SUM(amount), COUNT(*) FROM tx GROUP BY card;
    """)
    flow.run(quiet=True, dead_letters_to_log=False)
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute("SELECT card, total, n FROM card_spend ORDER BY card").fetchall()
    assert rows == [("a", 9, 3), ("b", 2, 1), ("c", 4, 1)]


def test_sql_rejects_a_non_postgres_jdbc_url(tmp_path: Path) -> None:
    import pytest

    flow = td.Flow("bad-url")
    flow.sql("CREATE TABLE t (x BIGINT) WITH ('connector' = 'jdbc', 'url' = 'jdbc:mysql://h/db')")
    with pytest.raises(td.errors.TidalError, match="only PostgreSQL URLs"):
        flow.sql("SELECT x FROM t")


def test_lookup_enriches_from_a_postgres_reference_table(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("CREATE TABLE cards (card TEXT PRIMARY KEY, owner TEXT)")
        conn.execute("INSERT INTO cards VALUES ('c1', 'ann'), ('c2', 'bob')")
    flow = td.Flow("pg-lookup")
    out = td.sinks.memory()
    tx = flow.source(td.sources.memory([{"card": "c1", "amount": 5}, {"card": "c3", "amount": 7},
                                        {"card": "c2", "amount": 9}]))
    tx.lookup(td.table.from_postgres(postgres_dsn, "SELECT card, owner FROM cards"), on="card").sink(out)
    flow.run(quiet=True, dead_letters_to_log=False)
    assert sorted(out.rows, key=lambda r: r["card"]) == [
        {"card": "c1", "amount": 5, "owner": "ann"}, {"card": "c2", "amount": 9, "owner": "bob"},
        {"card": "c3", "amount": 7, "owner": None}]
