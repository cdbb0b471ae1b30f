"""An updating result's deleted groups leave the real upsert sinks: PostgreSQL ('jdbc')
DELETEs the row, Redis DELs the key (tidal.operators.changelog)."""

from __future__ import annotations

import uuid

import polars as pl
import psycopg
import redis

import tidal as td
from tidal.operators.changelog import DELETE

# each user's bucket is their highest level so far: bucket 1 fills (ann, bob), then empties
LEVELS = [("ann", 1), ("bob", 1), ("ann", 2), ("cid", 2), ("bob", 3)]
BUCKETS = """SELECT best AS bucket, COUNT(*) AS users
             FROM (SELECT `user`, MAX(level) AS best FROM levels GROUP BY `user`) GROUP BY best"""


def _flow(name: str) -> td.Flow:
    flow = td.Flow(name)
    rows = [{"user": u, "level": lv, "t": i * 1000} for i, (u, lv) in enumerate(LEVELS)]
    flow.register_table("levels", flow.source(td.sources.memory(rows), timestamp="t"))
    return flow


def test_postgres_deletes_the_row_of_an_emptied_group(postgres_dsn: str) -> None:
    rest = postgres_dsn.removeprefix("postgresql://postgres@")
    flow = _flow("pg-deletes")
    flow.sql(f"""
        CREATE TABLE buckets (bucket BIGINT, users BIGINT, PRIMARY KEY (bucket) NOT ENFORCED)
        WITH ('connector' = 'jdbc', 'url' = 'jdbc:postgresql://{rest}',
              'table-name' = 'level_buckets', 'username' = 'postgres');
        INSERT INTO buckets {BUCKETS};""")
    changes = td.sinks.memory()
    flow.sql(BUCKETS).sink(changes)
    flow.run(quiet=True, max_batch_rows=1, dead_letters_to_log=False)
    assert changes.frame().filter(pl.col(DELETE))["bucket"].to_list() == [1]  # it did empty
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute("SELECT bucket, users FROM level_buckets ORDER BY bucket").fetchall()
    assert rows == [(2, 2), (3, 1)]


def test_redis_dels_the_key_of_an_emptied_group(redis_url: str) -> None:
    uid = uuid.uuid4().hex[:8]
    flow = _flow("redis-deletes")
    flow.sql(f"""
        CREATE TABLE buckets (bucket BIGINT, users BIGINT)
        WITH ('connector' = 'redis', 'url' = '{redis_url}', 'key' = '{uid}:bucket:{{bucket}}');
        INSERT INTO buckets {BUCKETS};""")
    flow.run(quiet=True, max_batch_rows=1, dead_letters_to_log=False)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert sorted(r.keys(f"{uid}:bucket:*")) == [f"{uid}:bucket:2", f"{uid}:bucket:3"]
    assert r.hgetall(f"{uid}:bucket:2") == {"bucket": "2", "users": "2"}
