"""Appending and reading back: records, Arrow batches, ordering, partitioning."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

import tidal.log
from tidal.log import OffsetRange, Record


def test_records_round_trip_with_keys_headers_and_timestamps(log):
    t = log.create_topic("t")
    recs = [
        Record(b"v0", key=b"k0", timestamp=1000, headers=(("h", b"x"), ("ü", b""))),
        Record(b"", key=None, timestamp=1001),
        Record(b"v2" * 1000, key=b"", timestamp=1002),
    ]
    result = t.append(recs)
    assert result.offsets == {0: OffsetRange(0, 2)}
    assert result.count == 3
    got = t.read(0, 0)
    assert [(r.key, r.value, r.timestamp, r.headers, r.offset, r.partition) for r in got] == [
        (b"k0", b"v0", 1000, (("h", b"x"), ("ü", b"")), 0, 0),
        (None, b"", 1001, (), 1, 0),
        (b"", b"v2" * 1000, 1002, (), 2, 0),
    ]


def test_default_timestamp_is_append_time(log):
    t = log.create_topic("t")
    before = tidal.log._record.now_ms()
    t.append([b"x"])
    (r,) = t.read(0, 0)
    assert before <= r.timestamp <= tidal.log._record.now_ms()


def test_read_from_any_offset_and_max_records(log):
    t = log.create_topic("t")
    for i in range(10):
        t.append([Record(f"{i}-{j}".encode()) for j in range(3)])
    assert [r.value for r in t.read(0, 7, max_records=4)] == [b"2-1", b"2-2", b"3-0", b"3-1"]
    assert [r.offset for r in t.read(0, 29)] == [29]
    assert t.read(0, 30) == []
    assert t.end_offset(0) == 30


def test_sequential_reads_see_every_row_once_in_order(log):
    t = log.create_topic("t", segment_bytes=4096)
    for i in range(200):
        t.append([Record(str(i).encode())])
    seen, offset = [], 0
    while batch := t.read(0, offset, max_records=7):
        seen += [int(r.value) for r in batch]
        offset = batch[-1].offset + 1
    assert seen == list(range(200))


def test_arrow_round_trip_keeps_schema_and_adds_offsets(log):
    t = log.create_topic("t")
    table = pa.table(
        {
            "id": pa.array(range(1000), pa.int64()),
            "name": pa.array([f"n{i}" for i in range(1000)]),
            "ts": pa.array(range(5000, 6000), pa.int64()),
            "tags": pa.array([[i, i + 1] for i in range(1000)]),
        }
    )
    result = t.append_batch(table, timestamp="ts")
    assert result.offsets == {0: OffsetRange(0, 999)}
    read = t.read_arrow(0, 0, max_rows=10_000)
    assert read.next_offset == 1000
    assert read.table.drop_columns(["offset", "partition"]).equals(table)
    assert read.table.column("offset").to_pylist() == list(range(1000))
    assert set(read.table.column("partition").to_pylist()) == {0}


def test_arrow_rows_have_their_own_offsets(log):
    t = log.create_topic("t")
    t.append_batch(pa.table({"x": range(100)}))
    t.append_batch(pa.table({"x": range(100, 200)}))
    read = t.read_arrow(0, 150, max_rows=30)
    assert read.table.column("x").to_pylist() == list(range(150, 180))
    assert read.next_offset == 180
    read = t.read_arrow(0, 42, max_rows=100)
    assert read.table.column("x").to_pylist() == list(range(42, 142))
    assert read.table.column("offset").to_pylist() == list(range(42, 142))
    assert read.next_offset == 142
    assert t.read_arrow(0, 200).table.num_rows == 0
    assert t.read_arrow(0, 200).next_offset == 200


def test_polars_dataframe_append(log):
    t = log.create_topic("t", partitions=3)
    df = pl.DataFrame({"user": [f"u{i % 10}" for i in range(300)], "v": list(range(300))})
    result = t.append_batch(df, key="user")
    assert result.count == 300
    back = pl.concat([pl.from_arrow(t.read_arrow(p, 0).table) for p in range(3)], how="vertical")
    assert sorted(back["v"].to_list()) == list(range(300))
    for p in range(3):
        part = pl.from_arrow(t.read_arrow(p, 0).table)
        # every key lives in exactly the partition the hash says, and order is kept
        assert {t.partition_for(u.encode()) for u in part["user"].to_list()} <= {p}
        assert part["v"].to_list() == sorted(part["v"].to_list())


def test_records_read_as_arrow(log):
    t = log.create_topic("t")
    t.append(
        [Record(b"a", key=b"k", timestamp=5), Record(b"b", timestamp=6, headers=(("h", b"1"),))]
    )
    table = t.read_arrow(0, 0).table
    assert table.column_names == ["key", "value", "timestamp", "headers", "offset", "partition"]
    assert table.column("key").to_pylist() == [b"k", None]
    assert table.column("value").to_pylist() == [b"a", b"b"]
    assert table.column("timestamp").to_pylist() == [5, 6]
    assert table.column("headers").to_pylist() == [[], [{"key": "h", "value": b"1"}]]
    assert table.column("offset").to_pylist() == [0, 1]


def test_read_arrow_stops_at_a_schema_change(log):
    t = log.create_topic("t")
    t.append_batch(pa.table({"x": [1, 2]}))
    t.append([b"r"])
    t.append_batch(pa.table({"x": [3]}))
    first = t.read_arrow(0, 0)
    assert first.table.column("x").to_pylist() == [1, 2] and first.next_offset == 2
    second = t.read_arrow(0, first.next_offset)
    assert second.table.column("value").to_pylist() == [b"r"] and second.next_offset == 3
    assert t.read_arrow(0, 3).table.column("x").to_pylist() == [3]


def test_arrow_rows_read_as_records_are_json(log):
    t = log.create_topic("t")
    t.append_batch(pa.table({"k": ["a"], "n": [1], "ts": [77]}), key="k", timestamp="ts")
    (r,) = t.read(0, 0)
    assert (r.key, r.value, r.timestamp, r.offset) == (b"a", b'{"k":"a","n":1,"ts":77}', 77, 0)


def test_order_is_kept_per_partition_across_appends(log):
    t = log.create_topic("t", partitions=4)
    for i in range(50):
        t.append([Record(f"{i}".encode(), key=f"key{i % 7}".encode())])
    for p in range(4):
        rows = t.read(0 if p == 0 else p, 0, max_records=1000)
        by_key: dict[bytes, list[int]] = {}
        for r in rows:
            by_key.setdefault(r.key, []).append(int(r.value))
        for values in by_key.values():
            assert values == sorted(values)
        assert [r.offset for r in rows] == list(range(len(rows)))


def test_murmur2_matches_kafka_reference_vectors():
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2
    assert tidal.log.murmur2(b"21") == -973932308
    assert tidal.log.murmur2(b"foobar") == -790332482
    assert tidal.log.murmur2(b"a-little-bit-long-string") == -985981536
    assert tidal.log.murmur2(b"a-little-bit-longer-string") == -1486304829
    assert tidal.log.murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert tidal.log.murmur2(b"abc") == 479470107
    assert tidal.log.murmur2(b"") == 275646681


def test_key_hash_partitioning_is_stable_across_apis_and_reopen(tmp_path):
    keys = [f"user-{i}" for i in range(200)] + ["", "é", "x" * 37]
    with tidal.log.open(tmp_path) as lg:
        t = lg.create_topic("t", partitions=7)
        expected = {k: (tidal.log.murmur2(k.encode()) & 0x7FFFFFFF) % 7 for k in keys}
        assert {k: t.partition_for(k.encode()) for k in keys} == expected
        res = t.append([Record(b"v", key=k.encode()) for k in keys])
        assert res.count == len(keys)
        t.append_batch(pa.table({"user": keys}), key="user")
    with tidal.log.open(tmp_path) as lg:
        t = lg.topic("t")
        for p in range(7):
            records = t.read(p, 0, max_records=10_000)
            assert {r.key.decode() for r in records} == {k for k, q in expected.items() if q == p}
            assert all(expected[r.key.decode()] == p for r in records)


def test_integer_keys_hash_like_their_text(log):
    t = log.create_topic("t", partitions=5)
    res = t.append_batch(pa.table({"id": list(range(100))}), key="id")
    for p, rng in res.offsets.items():
        ids = t.read_arrow(p, rng.first).table.column("id").to_pylist()
        assert all(t.partition_for(str(i).encode()) == p for i in ids)


def test_keyless_rows_rotate_over_partitions(log):
    t = log.create_topic("t", partitions=3)
    parts = [next(iter(t.append([b"x"]).offsets)) for _ in range(6)]
    assert sorted(parts) == [0, 0, 1, 1, 2, 2]
    parts = [next(iter(t.append_batch(pa.table({"x": [1, 2]})).offsets)) for _ in range(3)]
    assert sorted(parts) == [0, 1, 2]


def test_explicit_partition_and_bad_partition(log):
    t = log.create_topic("t", partitions=2)
    assert t.append([Record(b"x", key=b"anything")], partition=1).offsets == {1: OffsetRange(0, 0)}
    with pytest.raises(ValueError, match="partition 2 does not exist in topic 't'"):
        t.append([b"x"], partition=2)
    with pytest.raises(ValueError, match="partition -1 does not exist"):
        t.read(-1, 0)


def test_append_batch_argument_errors(log):
    t = log.create_topic("t")
    with pytest.raises(ValueError, match="key column 'nope' is not in the batch"):
        t.append_batch(pa.table({"x": [1]}), key="nope")
    with pytest.raises(ValueError, match=r"\['offset'\] are reserved"):
        t.append_batch(pa.table({"offset": [1]}))
    with pytest.raises(TypeError, match="integers \\(epoch ms\\) or Arrow timestamps"):
        t.append_batch(pa.table({"ts": ["yesterday"]}), timestamp="ts")
    with pytest.raises(TypeError, match="append_batch\\(\\) takes a pyarrow.Table"):
        t.append_batch([1, 2])
    with pytest.raises(TypeError, match="use append_batch\\(\\) for tables"):
        t.append([{"x": 1}])
    assert t.append([]).offsets == {}
    assert t.append_batch(pa.table({"x": pa.array([], pa.int64())})).offsets == {}


def test_segments_roll_and_reads_span_them(log):
    t = log.create_topic("t", segment_bytes=2048)
    for i in range(100):
        t.append_batch(pa.table({"i": [i] * 10}))
    d = log.describe("t")
    assert d.partitions[0].segments > 5
    assert d.partitions[0].end_offset == 1000
    read = t.read_arrow(0, 0, max_rows=2000)
    assert read.table.column("i").to_pylist() == [i for i in range(100) for _ in range(10)]


def test_describe_and_topics(log):
    log.create_topic("b", partitions=2, retention_ms=60_000)
    a = log.create_topic("a")
    a.append([b"1", b"2"])
    assert log.topics() == ["a", "b"]
    d = log.describe("a")
    assert d.name == "a"
    assert d.settings["retention_ms"] is None
    assert [(p.partition, p.start_offset, p.end_offset) for p in d.partitions] == [(0, 0, 2)]
    assert d.size_bytes > 0
    assert log.describe("b").settings["retention_ms"] == 60_000


def test_topic_settings_persist(tmp_path):
    with tidal.log.open(tmp_path) as lg:
        lg.create_topic("t", partitions=3, compact=True, fsync="batch", segment_bytes=4096)
    assert (tmp_path / "topics" / "t" / "topic.json").is_file()
    with tidal.log.open(tmp_path) as lg:
        s = lg.topic("t").settings
        assert (s.partitions, s.compact, s.fsync, s.segment_bytes) == (3, True, "batch", 4096)


def test_create_existing_and_unknown_and_delete(log):
    log.create_topic("t")
    with pytest.raises(tidal.log.TopicExistsError, match="topic 't' already exists"):
        log.create_topic("t")
    assert log.create_topic("t", exist_ok=True) is log.topic("t")
    with pytest.raises(tidal.log.UnknownTopicError, match="topic 'u' does not exist"):
        log.topic("u")
    log.commit("g", "t", {0: 0})
    log.delete_topic("t")
    assert log.topics() == []
    with pytest.raises(tidal.log.UnknownTopicError):
        log.topic("t")
    t = log.create_topic("t")
    assert t.end_offset(0) == 0
    assert log.committed("g", "t") == {}


def test_invalid_settings_are_refused(log):
    with pytest.raises(ValueError, match="fsync must be one of 'interval', 'batch', 'never'"):
        log.create_topic("t", fsync="always")
    with pytest.raises(ValueError, match="partitions must be >= 1"):
        log.create_topic("t", partitions=0)
    assert log.topics() == []


def test_default_path_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TIDAL_LOG_DIR", str(tmp_path / "envlog"))
    with tidal.log.open() as lg:
        lg.create_topic("t")
    assert (tmp_path / "envlog" / "topics" / "t" / "topic.json").is_file()


def test_fsync_policies_report_durability(log):
    assert log.create_topic("b", fsync="batch").append([b"x"]).durable is True
    assert log.create_topic("n", fsync="never").append([b"x"]).durable is False
    t = log.create_topic("i", fsync="interval", fsync_interval_ms=3_600_000)
    assert t.append([b"x"]).durable is True  # first append: interval since last sync elapsed
    assert t.append([b"y"]).durable is False  # within the interval: left to the flusher
    t.flush()
    assert not any(p.dirty for p in t._partitions)


def test_interval_fsync_is_caught_up_by_the_background_flusher(log):
    import time

    t = log.create_topic("t", fsync="interval", fsync_interval_ms=20, segment_bytes=1024)
    t.append([b"x"])
    results = [t.append([Record(b"y" * 300)]) for _ in range(10)]  # rolls segments too
    assert not all(r.durable for r in results)
    deadline = time.monotonic() + 5
    while t._partitions[0].dirty and time.monotonic() < deadline:
        time.sleep(0.01)  # waiting for the flusher thread's own timer
    assert not t._partitions[0].dirty
    assert t._partitions[0]._unsynced_fds == []
