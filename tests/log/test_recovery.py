"""Recovery: a torn or corrupt tail is truncated on open; corrupt data is never served."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

import tidal.log
from tidal.log import CorruptRecordError, Record


def _fill(path, batches=5, **settings):
    with tidal.log.open(path) as lg:
        t = lg.create_topic("t", **settings)
        for i in range(batches):
            t.append([Record(f"{i}-{j}".encode()) for j in range(4)])
    return path / "topics" / "t" / "0"


def _active(folder):
    return sorted(f for f in folder.iterdir() if f.suffix == ".log")[-1]


def _values(path):
    with tidal.log.open(path) as lg:
        return [r.value.decode() for r in lg.topic("t").read(0, 0, max_records=10_000)]


def _batch_positions(segment):
    from tidal.log._segment import Scanner

    fd = os.open(segment, os.O_RDONLY)
    try:
        return [(h.position, h.end_position) for h, _, _ in Scanner(fd, 0, check_crc=True)]
    finally:
        os.close(fd)


@pytest.mark.parametrize("cut", [1, 7, 39, 40, 41, 60])
def test_truncated_tail_is_cut_back_to_the_last_whole_batch(tmp_path, cut):
    folder = _fill(tmp_path)
    seg = _active(folder)
    positions = _batch_positions(seg)
    size = seg.stat().st_size
    os.truncate(seg, size - cut)
    with tidal.log.open(tmp_path) as lg:
        t = lg.topic("t")  # recovery happens here
        assert seg.stat().st_size == positions[-1][0]
        assert t.end_offset(0) == 16
        assert t.append([b"after"]).offsets[0].first == 16
    assert _values(tmp_path) == [f"{i}-{j}" for i in range(4) for j in range(4)] + ["after"]


@pytest.mark.parametrize("where", ["payload", "header"])
def test_corrupt_last_batch_is_never_served_and_truncated_on_open(tmp_path, where):
    folder = _fill(tmp_path)
    seg = _active(folder)
    start, end = _batch_positions(seg)[-1]
    flip = end - 3 if where == "payload" else start + 30  # a byte of base_offset/count
    data = bytearray(seg.read_bytes())
    data[flip] ^= 0xFF
    seg.write_bytes(bytes(data))
    # a reader that does not hold the writer lock refuses the batch
    from tidal.log._partition import Partition
    from tidal.log._settings import TopicSettings

    reader = Partition(folder.parent, 0, TopicSettings("t"))
    assert len(reader.batches(0, 12)) == 3
    with pytest.raises(CorruptRecordError, match="corrupt batch .* it is not served"):
        reader.batches(0, 1000)
    reader.close()
    # opening the topic recovers: the corrupt batch is cut, the rest is intact
    assert _values(tmp_path) == [f"{i}-{j}" for i in range(4) for j in range(4)]
    assert seg.stat().st_size == start


def test_garbage_appended_to_the_tail_is_removed(tmp_path):
    folder = _fill(tmp_path)
    seg = _active(folder)
    size = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(os.urandom(1000))
    assert len(_values(tmp_path)) == 20
    assert seg.stat().st_size == size


def test_corruption_in_a_closed_segment_raises_instead_of_serving(tmp_path):
    folder = _fill(tmp_path, batches=40, segment_bytes=1024)
    first = sorted(f for f in folder.iterdir() if f.suffix == ".log")[0]
    start, end = _batch_positions(first)[1]
    data = bytearray(first.read_bytes())
    data[end - 2] ^= 0x01
    first.write_bytes(bytes(data))
    with tidal.log.open(tmp_path) as lg:
        t = lg.topic("t")
        assert [r.offset for r in t.read(0, 0, max_records=4)] == [0, 1, 2, 3]
        with pytest.raises(CorruptRecordError, match="CRC mismatch"):
            t.read(0, 4)
        # the rest of the log, past the damaged segment, is still readable
        second_base = int(sorted(f.name for f in folder.iterdir() if f.suffix == ".log")[1][:20])
        assert t.read(0, second_base, max_records=1)[0].offset == second_base


def test_missing_or_damaged_index_is_rebuilt(tmp_path):
    folder = _fill(tmp_path, batches=200, index_interval_bytes=256)
    seg = _active(folder)
    index = seg.with_suffix(".index")
    good = index.read_bytes()
    assert len(good) > 16 * 10
    index.write_bytes(good[: len(good) // 2] + b"\x01\x02\x03")  # torn and short
    with tidal.log.open(tmp_path) as lg:
        t = lg.topic("t")
        assert index.read_bytes() == good
        assert [r.offset for r in t.read(0, 555, max_records=3)] == [555, 556, 557]
    index.unlink()
    assert len(_values(tmp_path)) == 800
    assert index.read_bytes() == good


def test_stale_index_entries_do_not_misplace_reads(tmp_path):
    folder = _fill(tmp_path, batches=100, index_interval_bytes=128)
    index = _active(folder).with_suffix(".index")
    import numpy as np

    entries = np.frombuffer(index.read_bytes(), dtype=[("o", "<i8"), ("p", "<i8")]).copy()
    entries["p"] += 8  # every entry now points into the middle of a batch
    from tidal.log._partition import Partition
    from tidal.log._settings import TopicSettings

    index.write_bytes(entries.tobytes())
    reader = Partition(folder.parent, 0, TopicSettings("t"))
    (h, _), *_ = reader.batches(250, 1)
    assert h.base_offset <= 250 < h.next_offset
    reader.close()


def test_arrow_batches_recover_too(tmp_path):
    with tidal.log.open(tmp_path) as lg:
        t = lg.create_topic("t")
        for i in range(3):
            t.append_batch(pa.table({"i": list(range(i * 100, (i + 1) * 100))}))
    seg = _active(tmp_path / "topics" / "t" / "0")
    os.truncate(seg, seg.stat().st_size - 100)
    with tidal.log.open(tmp_path) as lg:
        t = lg.topic("t")
        assert t.read_arrow(0, 0, 1000).table.column("i").to_pylist() == list(range(200))
        assert t.append_batch(pa.table({"i": [7]})).offsets[0].first == 200
