"""Data-lake sinks: Hive-partitioned Parquet datasets and Delta tables, read back with Polars
and DuckDB."""

from __future__ import annotations

import os
import random
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import orjson
import polars as pl
from deltalake import DeltaTable

import tidal as td
import tidal.log
from tidal.connectors.base import SinkContext


def events(n: int = 1_000) -> pl.DataFrame:
    start = datetime(2026, 3, 1, 22)
    ts = [start + timedelta(minutes=7 * i) for i in range(n)]
    return pl.DataFrame({"ts": ts, "id": list(range(n)), "amount": [i * 0.5 for i in range(n)]}).with_columns(
        date=pl.col("ts").dt.date().cast(pl.String), hour=pl.col("ts").dt.hour())


def test_parquet_dataset_is_hive_partitioned(tmp_path: Path) -> None:
    frame = events(300)
    flow = td.Flow("lake")
    flow.source(td.sources.memory(frame)).sink(
        td.sinks.parquet_dataset(tmp_path / "ds", partition_by=["date", "hour"]))
    flow.run(quiet=True, max_batch_rows=64)
    dirs = sorted(str(p.relative_to(tmp_path / "ds")) for p in (tmp_path / "ds").glob("*/*"))
    assert dirs[0] == "date=2026-03-01/hour=22" and len(dirs) == frame.select("date", "hour").n_unique()
    got = pl.scan_parquet(tmp_path / "ds", hive_partitioning=True).collect()
    assert got.sort("id").select("id", "amount", "date", "hour").cast({"hour": pl.Int64}).equals(
        frame.select("id", "amount", "date", "hour").cast({"hour": pl.Int64}))
    n, hours = duckdb.sql(
        f"SELECT count(*), count(DISTINCT (date, hour)) FROM read_parquet('{tmp_path}/ds/**/*.parquet', "
        "hive_partitioning = true) WHERE date = '2026-03-02'").fetchone()
    assert n == frame.filter(pl.col("date") == "2026-03-02").height and hours == 24


def test_parquet_dataset_apply_is_idempotent_and_recovers(tmp_path: Path) -> None:
    rows = events(100)
    sink = td.sinks.parquet_dataset(tmp_path / "ds", partition_by="date")
    sink.open(SinkContext("lake", "out", exactly_once=True))
    sink.apply(rows, 1)
    sink.apply(rows, 1)  # again, as recovery does: nothing new
    assert sink.committed_checkpoint() == 1
    # a crash after the commit record, before the renames: the next start finishes them
    real_replace = os.replace
    calls = []

    def crash_after_record(src, dst):  # type: ignore[no-untyped-def]
        real_replace(src, dst)
        calls.append(dst)
        if str(dst).endswith("0000000002.json"):
            raise KeyboardInterrupt  # stands for the process dying here

    os.replace = crash_after_record
    try:
        sink.apply(rows.with_columns(id=pl.col("id") + 100), 2)
    except KeyboardInterrupt:
        pass
    finally:
        os.replace = real_replace
    staging = tmp_path / ".ds.tidal" / "staging"
    assert len(list(staging.rglob("*.parquet"))) == 2  # staged beside the dataset, unseen
    assert pl.scan_parquet(tmp_path / "ds", hive_partitioning=True).collect().height == 100
    # an uncommitted attempt's leftovers are removed at the next start
    (staging / "date=2026-03-01" / "part-0000000003.parquet").write_bytes(b"junk")
    again = td.sinks.parquet_dataset(tmp_path / "ds", partition_by="date")
    again.open(SinkContext("lake", "out", exactly_once=True))
    assert again.committed_checkpoint() == 2
    assert not staging.exists()
    got = pl.scan_parquet(tmp_path / "ds", hive_partitioning=True).collect()
    assert sorted(got["id"].to_list()) == list(range(200))


PIPELINE = '''
import sys, time
import tidal as td

work = sys.argv[1]

def slow(frame):
    time.sleep(0.03)
    return frame

flow = td.Flow("lakechaos")
s = flow.source(td.sources.log("events", log_dir=f"{work}/log", bounded=True)).map_batches(slow)
s.sink(td.sinks.parquet_dataset(f"{work}/ds", partition_by=["date", "hour"]))
s.sink(td.sinks.delta(f"{work}/delta", partition_by="date"))
ex = flow.executor(max_batch_rows=50, checkpoint_dir=f"{work}/ck", checkpoint_interval="50ms",
                   dead_letters_to_log=False, log_dir=f"{work}/log")
ex.open()
print("started", ex.restored.id if ex.restored else 0, flush=True)
ex.run()
'''


def test_parquet_dataset_and_delta_are_exactly_once_after_kills(tmp_path: Path, kill_run) -> None:  # type: ignore[no-untyped-def]
    frame = events(4_000).drop("ts")
    with tidal.log.open(tmp_path / "log") as log:
        topic = log.create_topic("events", partitions=2)
        for chunk in frame.iter_slices(500):
            topic.append_batch(chunk, key="id")
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    pick = random.Random(9)
    kills, finished = 0, False
    for attempt in range(20):
        code, _, err = kill_run([sys.executable, str(script), str(tmp_path)],
                                pick.uniform(0.2, 0.6) if attempt < 4 else None)
        if code == 0:
            finished = True
            break
        assert code == -signal.SIGKILL, err
        kills += 1
    print(f"kills={kills}")
    assert finished and kills >= 3
    ds = pl.scan_parquet(tmp_path / "ds", hive_partitioning=True).collect()
    assert ds.height == frame.height and ds["id"].n_unique() == frame.height
    delta = pl.read_delta(str(tmp_path / "delta"))
    assert delta.height == frame.height and delta["id"].n_unique() == frame.height
    assert np.isclose(delta["amount"].sum(), frame["amount"].sum())


def test_delta_append_and_idempotent_reapply(tmp_path: Path) -> None:
    path = str(tmp_path / "table")
    flow = td.Flow("delta-plain")
    flow.source(td.sources.memory(events(50))).sink(td.sinks.delta(path, partition_by="date"))
    flow.run(quiet=True)
    assert pl.read_delta(path).height == 50

    sink = td.sinks.delta(path, partition_by="date")
    sink.open(SinkContext("delta-eo", "out", exactly_once=True))
    assert sink.committed_checkpoint() is None
    rows = events(10).with_columns(id=pl.col("id") + 1000)
    sink.apply(rows, 7)
    version = DeltaTable(path).version()
    sink.apply(rows, 7)  # re-applied after a recovery: recognized, skipped
    sink.apply(rows, 6)
    assert DeltaTable(path).version() == version
    assert sink.committed_checkpoint() == 7
    table = DeltaTable(path)
    assert table.transaction_version("tidal/delta-eo/out") == 7
    assert orjson.loads(orjson.dumps(table.history(1)[0]))["tidal.checkpoint"] == "7"
    got = pl.read_delta(path)
    assert got.height == 60 and got.filter(pl.col("id") >= 1000).height == 10
    assert duckdb.sql(f"SELECT count(*) FROM delta_scan('{path}')").fetchone()[0] == 60 \
        if _duckdb_has_delta() else True


def _duckdb_has_delta() -> bool:
    try:
        duckdb.sql("LOAD delta")
        return True
    except duckdb.Error:
        return False
