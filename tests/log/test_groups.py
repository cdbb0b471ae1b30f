"""Consumer-group positions: durable, merged per partition, shown as lag."""

from __future__ import annotations

import pytest

import tidal.log
from tidal.log import Consumer, Record


def test_committed_offsets_survive_reopen(tmp_path):
    with tidal.log.open(tmp_path) as lg:
        lg.create_topic("t", partitions=3)
        lg.commit("g", "t", {0: 5, 2: 7})
        lg.commit("g", "t", {2: 9})
        lg.commit("other", "t", {1: 1})
    assert not list((tmp_path / "groups" / "g").glob("*.tmp"))
    with tidal.log.open(tmp_path) as lg:
        assert lg.committed("g", "t") == {0: 5, 2: 9}
        assert lg.committed("other", "t") == {1: 1}
        assert lg.committed("nobody", "t") == {}


def test_commit_validates_input(log):
    log.create_topic("t", partitions=2)
    with pytest.raises(ValueError, match="partition 2 does not exist"):
        log.commit("g", "t", {2: 0})
    with pytest.raises(ValueError, match="offset for partition 0 must be a non-negative int"):
        log.commit("g", "t", {0: -1})
    with pytest.raises(tidal.log.UnknownTopicError):
        log.commit("g", "nope", {0: 0})


def test_describe_shows_groups_and_lag(log):
    t = log.create_topic("t", partitions=2)
    t.append([Record(b"x")] * 10, partition=0)
    t.append([Record(b"x")] * 4, partition=1)
    log.commit("g", "t", {0: 6})
    (g,) = log.describe("t").groups
    assert g.group == "g"
    assert g.committed == {0: 6}
    assert g.lag == {0: 4, 1: 4}
    assert g.total_lag == 8


def test_consumer_polls_commits_and_resumes(tmp_path):
    with tidal.log.open(tmp_path) as lg:
        t = lg.create_topic("t", partitions=2)
        t.append([Record(str(i).encode(), key=str(i).encode()) for i in range(20)])
        c = Consumer(lg, "t", group="g")
        got = c.poll(max_records=15)
        assert len(got) == 15
        c.commit()
    with tidal.log.open(tmp_path) as lg:
        c = Consumer(lg, "t", group="g")
        rest = c.poll(max_records=100)
        assert sorted(int(r.value) for r in got + rest) == list(range(20))
        assert c.poll() == []
        lg.topic("t").append([Record(b"new", key=b"1")])
        assert [r.value for r in c.poll()] == [b"new"]


def test_consumer_latest_and_arrow(log):
    t = log.create_topic("t")
    t.append([b"old"])
    c = Consumer(log, "t", start="latest")
    assert c.poll() == []
    t.append([b"new"])
    (table,) = c.poll_arrow()
    assert table.column("value").to_pylist() == [b"new"]
    assert c.positions == {0: 2}
    with pytest.raises(ValueError, match="has no group"):
        c.commit()
