"""The embedded log as a source and a sink of flows."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import tidal as td
import tidal.log
from tidal.errors import SourceError


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "log"


def fill(log_dir: Path, topic: str, rows: list[dict], partitions: int = 3, key: str = "k") -> None:
    with tidal.log.open(log_dir) as log:
        log.create_topic(topic, partitions=partitions, exist_ok=True).append_batch(
            pl.DataFrame(rows), key=key)


def read_all(log_dir: Path, topic: str) -> pl.DataFrame:
    with tidal.log.open(log_dir) as log:
        t = log.topic(topic)
        parts = [pl.from_arrow(t.read_arrow(p, 0, max_rows=10**7).table) for p in range(t.partitions)]
    return pl.concat(parts)


ROWS = [{"k": f"k{i % 7}", "t": i * 100, "v": i} for i in range(1000)]


def test_topic_to_windows_to_topic_round_trip(log_dir: Path) -> None:
    fill(log_dir, "events", ROWS)
    flow = td.Flow("rt")
    s = flow.source(td.sources.log("events", log_dir=log_dir, bounded=True), timestamp="t")
    (s.key_by("k").window(td.tumbling("10s")).agg(n=td.agg.count(), total=td.agg.sum("v"))
     .sink(td.sinks.log("per-window", key="k", log_dir=log_dir, partitions=2)))
    flow.run(quiet=True)
    got = read_all(log_dir, "per-window").drop("offset", "partition")
    want = (pl.DataFrame(ROWS).group_by("k", (pl.col("t") // 10_000 * 10_000).alias("window_start"))
            .agg(n=pl.len().cast(pl.Int64), total=pl.col("v").sum()))
    assert got.select(want.columns).sort("k", "window_start").equals(want.sort("k", "window_start"))
    with tidal.log.open(log_dir) as log:  # partitioned by key, like the log's own partitioner
        t = log.topic("per-window")
        for p in range(2):
            keys = pl.from_arrow(t.read_arrow(p, 0).table)["k"].unique().to_list()
            assert all(t.partition_for(k.encode()) == p for k in keys)


def test_source_preserves_order_within_each_partition(log_dir: Path) -> None:
    fill(log_dir, "events", ROWS)
    flow = td.Flow("order")
    out = td.sinks.memory()
    flow.source(td.sources.log("events", log_dir=log_dir, bounded=True, metadata=True)).sink(out)
    flow.run(quiet=True, max_batch_rows=37)
    frame = out.frame()
    for _, part in frame.group_by("partition"):
        assert part["offset"].to_list() == sorted(part["offset"].to_list())
        assert part["v"].to_list() == sorted(part["v"].to_list())
    assert sorted(frame["v"].to_list()) == list(range(1000))


def test_group_offsets_let_a_restart_continue(log_dir: Path) -> None:
    fill(log_dir, "events", ROWS[:500])

    def run() -> list[int]:
        flow = td.Flow("grp")
        out = td.sinks.memory()
        flow.source(td.sources.log("events", group="g1", log_dir=log_dir, bounded=True)).sink(out)
        flow.run(quiet=True)
        return out.frame()["v"].to_list() if out.batches else []

    assert sorted(run()) == list(range(500))
    fill(log_dir, "events", ROWS[500:])
    assert sorted(run()) == list(range(500, 1000))
    assert run() == []


def test_json_records_are_decoded(log_dir: Path) -> None:
    with tidal.log.open(log_dir) as log:
        log.create_topic("raw").append([tidal.log.Record(b'{"a": 1, "b": "x"}'),
                                        tidal.log.Record(b'{"a": 2, "b": "y"}')])
    flow = td.Flow("json")
    out = td.sinks.memory()
    flow.source(td.sources.log("raw", log_dir=log_dir, bounded=True, format="json")).sink(out)
    flow.run(quiet=True)
    assert out.rows == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def test_unknown_topic_says_how_to_create_it(log_dir: Path) -> None:
    with pytest.raises(SourceError, match="tidal topics create nope"):
        td.sources.log("nope", log_dir=log_dir)


def test_exactly_once_sink_completes_an_interrupted_append(log_dir: Path, tmp_path: Path) -> None:
    """A crash after some partitions got a checkpoint's rows: repeating apply adds only the
    missing partitions."""
    sink = td.sinks.log("out", key="k", log_dir=log_dir, partitions=3)
    sink.open(td.sinks.SinkContext("f", "s", exactly_once=True))
    rows = pl.DataFrame(ROWS)
    sink.apply(rows.head(100), 1)
    # simulate the crash: intent written, one partition's slice appended, then death
    start = {str(p): sink.topic.end_offset(p) for p in range(3)}
    sink._write_marker({"checkpoint": 1, "pending": {"checkpoint": 2, "start": start}})
    (p0, first), *_ = sink.topic._split_table(rows.slice(100, 200).to_arrow(), "k", None)
    sink.topic.append_batch(first, key="k", partition=p0)
    sink.apply(rows.slice(100, 200), 2)
    sink.apply(rows.slice(100, 200), 2)  # and once more, as a second recovery would
    got = read_all(log_dir, "out")
    assert sorted(got["v"].to_list()) == list(range(300))
    assert sink.committed_checkpoint() == 2
    sink.close()
