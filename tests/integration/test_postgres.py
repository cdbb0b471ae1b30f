"""PostgreSQL sink and source against a real server (see conftest.py)."""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import psycopg
import pytest

import tidal as td
import tidal.log
from tidal.connectors.base import SinkContext
from tidal.errors import SinkError, SourceError


def fetch(dsn: str, query: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


def test_append_creates_the_table_from_the_first_batch(postgres_dsn: str, uid: str) -> None:
    rows = [{"id": 1, "name": "a", "amount": 1.5, "ok": True, "t": datetime(2026, 1, 1, 12),
             "tags": [1, 2], "blob": b"\x00\x01"},
            {"id": 2, "name": "", "amount": None, "ok": False, "t": datetime(2026, 1, 2),
             "tags": None, "blob": None}]
    table = f"append_{uid}"
    flow = td.Flow("pg-append")
    flow.source(td.sources.memory(rows)).sink(td.sinks.postgres(postgres_dsn, table))
    flow.run(quiet=True, max_batch_rows=1)
    flow.run(quiet=True)  # appends again
    types = dict(fetch(postgres_dsn, "SELECT column_name, data_type FROM information_schema.columns "
                                     f"WHERE table_name = '{table}'"))
    assert types == {"id": "bigint", "name": "text", "amount": "double precision", "ok": "boolean",
                     "t": "timestamp without time zone", "tags": "jsonb", "blob": "bytea"}
    got = fetch(postgres_dsn, f"SELECT id, name, amount, ok, t, tags, blob FROM {table} ORDER BY id")
    assert got == [(1, "a", 1.5, True, datetime(2026, 1, 1, 12), [1, 2], b"\x00\x01")] * 2 + [
        (2, "", None, False, datetime(2026, 1, 2), None, None)] * 2


def test_upsert_keeps_the_latest_row_per_key(postgres_dsn: str, uid: str) -> None:
    rows = [{"card": f"c{i % 3}", "amount": float(i)} for i in range(10)]
    table = f"spend_{uid}"
    flow = td.Flow("pg-upsert")
    spend = flow.source(td.sources.memory(rows)).key_by("card").agg(
        total=td.agg.sum("amount"), n=td.agg.count())
    spend.sink(td.sinks.postgres(postgres_dsn, table, key="card"))
    flow.run(quiet=True, max_batch_rows=3)
    got = fetch(postgres_dsn, f"SELECT card, total, n FROM {table} ORDER BY card")
    assert got == [("c0", 18.0, 4), ("c1", 12.0, 3), ("c2", 15.0, 3)]
    pk = fetch(postgres_dsn, "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON "
                             "a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE "
                             f"i.indrelid = '{table}'::regclass AND i.indisprimary")
    assert pk == [("card",)]


def test_apply_is_atomic_and_idempotent(postgres_dsn: str, uid: str) -> None:
    sink = td.sinks.postgres(postgres_dsn, f"eo_{uid}", key="k")
    sink.open(SinkContext("pg-eo", "out", exactly_once=True))
    try:
        assert sink.committed_checkpoint() is None
        rows = pl.DataFrame({"k": ["a", "b", "a"], "v": [1, 2, 3]})
        sink.apply(rows, 1)
        sink.apply(rows.with_columns(v=pl.col("v") * 100), 1)  # the same checkpoint again: skipped
        assert sink.committed_checkpoint() == 1
        sink.apply(pl.DataFrame({"k": ["b"], "v": [20]}), 2)
    finally:
        sink.close()
    assert fetch(postgres_dsn, f"SELECT k, v FROM eo_{uid} ORDER BY k") == [("a", 3), ("b", 20)]
    assert fetch(postgres_dsn, f"SELECT checkpoint FROM _tidal_commits WHERE sink = 'pg-eo/eo_{uid}'") == [(2,)]


# -- kill and restart ----------------------------------------------------------------------------
PIPELINE = '''
import os, random, signal, sys, time
import tidal as td
from tidal.state import checkpoint as ckpt

work, dsn, table = sys.argv[1], sys.argv[2], sys.argv[3]
self_kill = float(os.environ.get("TIDAL_PG_SELF_KILL", "0"))
real_write = ckpt.CheckpointStore.write

def write(self, *args, **kwargs):
    cp = real_write(self, *args, **kwargs)
    if random.random() < self_kill:  # durable checkpoint, rows not yet committed to PostgreSQL
        print("self-kill between checkpoint and commit", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return cp

ckpt.CheckpointStore.write = write

def slow(frame):
    time.sleep(0.02)
    return frame

flow = td.Flow("pgchaos")
events = flow.source(td.sources.log("events", log_dir=f"{work}/log", bounded=True)).map_batches(slow)
events.sink(td.sinks.postgres(dsn, f"{table}_events"))
(events.key_by("k").agg(count=td.agg.count(), seq=td.agg.max("seq"), name="running")
 .sink(td.sinks.postgres(dsn, f"{table}_running", key="k")))
ex = flow.executor(max_batch_rows=50, checkpoint_dir=f"{work}/ck", checkpoint_interval="40ms",
                   dead_letters_to_log=False, log_dir=f"{work}/log")
ex.open()
print("started", ex.restored.id if ex.restored else 0, flush=True)
ex.run()
print("finished", flush=True)
'''


def test_kill_and_restart_ends_with_exactly_the_correct_table(postgres_dsn: str, uid: str,
                                                              tmp_path: Path, kill_run) -> None:  # type: ignore[no-untyped-def]
    keys, events = 20, 6_000
    rng = np.random.default_rng(3)
    frame = pl.DataFrame({"k": [f"k{i:02d}" for i in rng.integers(0, keys, events)],
                          "v": rng.integers(0, 100, events)})
    frame = frame.with_columns(seq=pl.int_range(1, pl.len() + 1).over("k"),
                               n=pl.int_range(0, pl.len()))
    with tidal.log.open(tmp_path / "log") as log:
        topic = log.create_topic("events", partitions=4)
        for chunk in frame.iter_slices(1_000):
            topic.append_batch(chunk, key="k")
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    table = f"chaos_{uid}"
    pick = random.Random(5)
    kills, restored, outcome = 0, [], ""
    for attempt in range(25):
        env = {**os.environ, "TIDAL_PG_SELF_KILL": "0.02" if attempt < 6 else "0"}
        code, out, err = kill_run([sys.executable, str(script), str(tmp_path), postgres_dsn, table],
                                  pick.uniform(0.2, 0.6) if attempt < 6 else None, env=env)
        restored += [int(line.split()[1]) for line in out.splitlines() if line.startswith("started")]
        if code == 0:
            outcome = "finished"
            break
        assert code == -signal.SIGKILL, err
        kills += 1
    assert outcome == "finished"
    print(f"kills={kills} restored={restored}")
    assert kills >= 5, f"killed only {kills} times"
    assert any(r > 0 for r in restored), "never restarted from a checkpoint"
    running = pl.DataFrame(fetch(postgres_dsn, f"SELECT k, count, seq FROM {table}_running"),
                           schema=["k", "count", "seq"], orient="row")
    want = frame.group_by("k").agg(count=pl.len().cast(pl.Int64), seq=pl.col("seq").max())
    assert (running["count"] == running["seq"]).all(), "a replayed event was counted twice"
    assert running.sort("k").equals(want.select("k", "count", "seq").sort("k"))
    stored = fetch(postgres_dsn, f"SELECT count(*), count(DISTINCT n) FROM {table}_events")
    assert stored == [(events, events)], "the appended events are not exactly the input"


# -- source --------------------------------------------------------------------------------------
def test_source_reads_the_snapshot_then_new_rows(postgres_dsn: str, uid: str) -> None:
    table = f"merchants_{uid}"
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute(f"CREATE TABLE {table} (id SERIAL PRIMARY KEY, name TEXT, risk REAL)")
        conn.execute(f"INSERT INTO {table} (name, risk) VALUES ('m1', 0.1), ('m2', 0.5), ('m3', 0.9)")
    flow = td.Flow("pg-source")
    out = td.sinks.memory()
    flow.source(td.sources.postgres(postgres_dsn, table, poll_interval="50ms"), name="merchants").sink(out)
    stop = threading.Event()
    runner = threading.Thread(target=flow.run, kwargs={"quiet": True, "stop": stop})
    runner.start()
    try:
        wait_for(lambda: len(out.rows) == 3)
        with psycopg.connect(postgres_dsn) as conn:
            conn.execute(f"INSERT INTO {table} (name, risk) VALUES ('m4', 0.2), ('m5', 0.3)")
        wait_for(lambda: len(out.rows) == 5)
    finally:
        stop.set()
        runner.join(10)
    assert [r["name"] for r in out.rows] == ["m1", "m2", "m3", "m4", "m5"]
    assert flow.last_run.positions() == {"merchants": {table: 5}}

    # a bounded read of a query, resumed after a position: only the newer rows, then it ends
    flow = td.Flow("pg-source-query")
    out = td.sinks.memory()
    src = td.sources.postgres(postgres_dsn, query=f"SELECT id, upper(name) AS name FROM {table}",
                              bounded=True)
    flow.source(src, name="q").sink(out)
    ex = flow.executor()
    ex.open({"q": {"query": 3}})
    ex.run()
    assert out.rows == [{"id": 4, "name": "M4"}, {"id": 5, "name": "M5"}]


def wait_for(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


# -- wrong address -------------------------------------------------------------------------------
def test_a_wrong_address_fails_fast_naming_it(unused_port: int) -> None:
    port = unused_port
    flow = td.Flow("pg-wrong")
    flow.source(td.sources.memory([{"x": 1}])).sink(
        td.sinks.postgres(f"postgresql://postgres@127.0.0.1:{port}/postgres", "t", connect_timeout=3))
    started = time.monotonic()
    with pytest.raises(SinkError, match=f"PostgreSQL at 127.0.0.1:{port}/postgres"):
        flow.run(quiet=True)
    assert time.monotonic() - started < 5
    flow = td.Flow("pg-wrong-source")
    flow.source(td.sources.postgres(f"postgresql://postgres@127.0.0.1:{port}/db", "t")).print()
    with pytest.raises(SourceError, match=f"PostgreSQL at 127.0.0.1:{port}/db"):
        flow.run(quiet=True)
