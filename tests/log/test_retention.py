"""Retention deletes whole old segments; compaction keeps the latest row per key."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from tidal.log import OffsetOutOfRangeError, Record
from tidal.log._record import now_ms


def _segments(topic, partition=0):
    folder = topic.directory / str(partition)
    return sorted(int(f[:20]) for f in os.listdir(folder) if f.endswith(".log"))


def test_size_retention_deletes_whole_oldest_segments_only(log):
    t = log.create_topic("t", segment_bytes=1024, retention_bytes=4096)
    for i in range(300):
        t.append([Record(f"{i:04d}".encode() * 10)])
    bases = _segments(t)
    d = log.describe("t").partitions[0]
    assert d.start_offset == bases[0] > 0  # old segments went
    assert d.end_offset == 300
    # the log keeps at least retention_bytes, and loses no more than whole segments
    assert 4096 <= d.size_bytes < 4096 + 2 * 1024 + 200
    # everything from the first kept segment on is intact, no partial segment remains
    rows = t.read(0, bases[0], max_records=1000)
    assert [r.offset for r in rows] == list(range(bases[0], 300))
    assert [r.value for r in rows] == [f"{i:04d}".encode() * 10 for i in range(bases[0], 300)]
    with pytest.raises(OffsetOutOfRangeError, match=f"now starts at offset {bases[0]}"):
        t.read(0, 0)


def test_age_retention_never_deletes_the_active_segment(log):
    t = log.create_topic("t", segment_bytes=1024, retention_ms=60_000)
    old = now_ms() - 120_000
    for i in range(60):
        t.append([Record(b"x" * 100, timestamp=old + i)])
    # every roll applied retention: all closed (old) segments are gone, the active one stays
    (active,) = _segments(t)
    assert active > 0
    assert [r.offset for r in t.read(0, active, max_records=100)] == list(range(active, 60))
    assert t.apply_retention() == 0
    assert _segments(t) == [active]
    # new rows roll new segments that are kept
    for _ in range(30):
        t.append([Record(b"y" * 100)])
    assert len(_segments(t)) > 2
    assert log.describe("t").partitions[0].end_offset == 90


def test_age_retention_keeps_segments_with_recent_rows(log):
    t = log.create_topic("t", segment_bytes=1024, retention_ms=1000)
    base = now_ms()
    for i in range(60):
        t.append([Record(b"x" * 100, timestamp=base + 1_000 * i)])
    before = _segments(t)
    deleted = t.apply_retention(now_ms=base + 30_500)
    after = _segments(t)
    assert deleted > 0 and after == before[deleted:]
    rows = t.read(0, after[0], max_records=1000)
    assert rows[0].offset == after[0]
    # the oldest surviving segment has a row newer than the cutoff, every deleted one had none
    next_base = after[1] if len(after) > 1 else 60
    assert max(r.timestamp for r in rows if r.offset < next_base) >= base + 29_500
    assert after[0] <= 30


def test_no_retention_configured_keeps_everything(log):
    t = log.create_topic("t", segment_bytes=1024)
    for _ in range(50):
        t.append([Record(b"x" * 100, timestamp=0)])
    assert t.apply_retention() == 0
    assert log.describe("t").partitions[0].start_offset == 0


def test_compaction_keeps_latest_per_key_and_preserves_offsets(log):
    t = log.create_topic("t", compact=True, segment_bytes=1024)
    written = []
    for i in range(200):
        key = f"k{i % 10}".encode()
        res = t.append([Record(f"v{i}".encode(), key=key)])
        written.append((res.offsets[0].first, key, f"v{i}".encode()))
    t.append([Record(b"nokey")])
    end = t.end_offset(0)
    removed = t.compact()
    assert removed > 150
    rows = t.read(0, 0, max_records=10_000)
    latest = {}
    for offset, key, value in written:
        latest[key] = (offset, value)
    active_base = _segments(t)[-1]
    by_offset = {o: (k, v) for o, k, v in written}
    for r in rows:
        assert by_offset.get(r.offset, (None, b"nokey")) == (r.key, r.value)  # offsets kept
        if r.offset < active_base and r.key is not None:
            assert latest[r.key][0] == r.offset  # closed segments hold only the latest
    assert {r.key: r.value for r in rows if r.key} == {k: v for k, (_, v) in latest.items()}
    assert [r.value for r in rows if r.key is None] == [b"nokey"]
    assert t.end_offset(0) == end
    assert t.append([Record(b"after", key=b"k1")]).offsets[0].first == end
    assert t.compact() >= 0
    assert t.read(0, end)[-1].value == b"after"


def test_compaction_of_arrow_batches(log):
    t = log.create_topic("t", compact=True, segment_bytes=1024)
    for i in range(30):
        t.append_batch(pa.table({"k": [f"k{j}" for j in range(5)], "i": [i] * 5}), key="k")
    t.append_batch(pa.table({"k": ["k0"], "i": [99]}), key="k")
    t.compact()
    table = t.read_arrow(0, 0, max_rows=1000).table
    offs = table.column("offset").to_pylist()
    assert offs == sorted(offs) and len(set(offs)) == len(offs)
    # latest value per key survives; k0's latest is 99
    latest = {}
    for k, i in zip(table.column("k").to_pylist(), table.column("i").to_pylist(), strict=True):
        latest[k] = i
    assert latest == {"k0": 99, "k1": 29, "k2": 29, "k3": 29, "k4": 29}
    assert len(table) < 60
    # reading from an offset inside a compacted gap skips to the next surviving row
    gap_read = t.read_arrow(0, 1, max_rows=1)
    assert gap_read.table.column("offset")[0].as_py() >= 1


def test_compaction_needs_a_compacted_topic(log):
    t = log.create_topic("t")
    with pytest.raises(ValueError, match="was not created with compact=True"):
        t.compact()
