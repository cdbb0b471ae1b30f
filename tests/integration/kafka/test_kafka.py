"""The Kafka source and sink against a real broker (tansu unless TIDAL_TEST_KAFKA is set)."""

from __future__ import annotations

import json
import time
import uuid

import polars as pl
import pytest
from confluent_kafka import Consumer, TopicPartition
from kafka_helpers import consume_all, create_topic, produce

import tidal as td
from tidal.errors import ConfigError, SinkError, SourceError

ROWS = [{"k": f"k{i % 5}", "v": i, "price": i / 4, "t": 1_000 * i} for i in range(300)]


def read_back(bootstrap: str, topic: str, **options) -> pl.DataFrame:
    flow = td.Flow(f"read-{uuid.uuid4().hex[:6]}")
    out = td.sinks.memory()
    flow.source(td.sources.kafka(topic, bootstrap, bounded=True, **options)).sink(out)
    flow.run(quiet=True, dead_letters_to_log=False)
    return out.frame()


def write(bootstrap: str, topic: str, rows: list[dict] | pl.DataFrame, **options) -> None:
    flow = td.Flow(f"write-{uuid.uuid4().hex[:6]}")
    flow.source(td.sources.memory(rows)).sink(td.sinks.kafka(topic, bootstrap, **options))
    flow.run(quiet=True, dead_letters_to_log=False)


AVRO = {"type": "record", "name": "Row", "fields": [
    {"name": "k", "type": "string"}, {"name": "v", "type": "long"},
    {"name": "price", "type": "double"}, {"name": "t", "type": "long"}]}


@pytest.mark.parametrize("fmt, options", [
    ("json", {}),
    ("csv", {"schema": {"k": pl.String, "v": pl.Int64, "price": pl.Float64, "t": pl.Int64}}),
    ("avro", {"schema": AVRO}),
])
def test_round_trip(kafka_bootstrap: str, topic_name: str, fmt: str, options: dict) -> None:
    write(kafka_bootstrap, topic_name, ROWS, key="k", format=fmt, partitions=3,
          **({"schema": AVRO} if fmt == "avro" else {}))
    got = read_back(kafka_bootstrap, topic_name, format=fmt, metadata=True, **options)
    assert got.height == len(ROWS)
    assert got.drop("_key", "_timestamp", "_partition", "_offset").sort("v").to_dicts() == ROWS
    assert (got["_key"] == got["k"]).all()  # keyed by the key column
    assert got.group_by("k").agg(pl.col("_partition").n_unique())["_partition"].max() == 1


def test_text_and_bytes(kafka_bootstrap: str, topic_name: str) -> None:
    lines = ["hello", "wörld", ""]
    write(kafka_bootstrap, topic_name, [{"value": s} for s in lines], format="text")
    assert read_back(kafka_bootstrap, topic_name, format="text")["value"].to_list() == lines
    raw = read_back(kafka_bootstrap, topic_name, format="bytes")
    assert raw.schema["value"] == pl.Binary
    assert raw["value"].to_list() == [s.encode() for s in lines]


def test_explicit_partitions(kafka_bootstrap: str, topic_name: str) -> None:
    create_topic(kafka_bootstrap, topic_name, 4)
    produce(kafka_bootstrap, topic_name, [json.dumps({"i": i}).encode() for i in range(40)],
            partition=[i % 4 for i in range(40)])
    got = read_back(kafka_bootstrap, topic_name, partitions=[1, 3], metadata=True)
    assert sorted(got["i"].to_list()) == [i for i in range(40) if i % 4 in (1, 3)]
    assert set(got["_partition"]) == {1, 3}
    with pytest.raises(SourceError, match="has no partition 7"):
        read_back(kafka_bootstrap, topic_name, partitions=[7])


def test_start_modes(kafka_bootstrap: str, topic_name: str) -> None:
    create_topic(kafka_bootstrap, topic_name, 2)
    produce(kafka_bootstrap, topic_name, [json.dumps({"i": i}).encode() for i in range(10)])
    time.sleep(0.05)
    middle = int(time.time() * 1000)
    time.sleep(0.05)
    produce(kafka_bootstrap, topic_name, [json.dumps({"i": i}).encode() for i in range(10, 25)])
    assert read_back(kafka_bootstrap, topic_name, start="earliest").height == 25
    assert read_back(kafka_bootstrap, topic_name, start="latest").height == 0
    assert sorted(read_back(kafka_bootstrap, topic_name, start=middle)["i"]) == list(range(10, 25))
    with pytest.raises(ConfigError, match="needs group="):
        td.sources.kafka(topic_name, kafka_bootstrap, start="committed")
    with pytest.raises(ConfigError, match="start must be"):
        td.sources.kafka(topic_name, kafka_bootstrap, start="newest")  # type: ignore[arg-type]


def test_latest_reads_only_new_messages(kafka_bootstrap: str, topic_name: str) -> None:
    create_topic(kafka_bootstrap, topic_name, 1)
    produce(kafka_bootstrap, topic_name, [json.dumps({"i": i}).encode() for i in range(5)])
    flow = td.Flow("latest")
    out = td.sinks.memory()
    flow.source(td.sources.kafka(topic_name, kafka_bootstrap, start="latest")).sink(out)
    ex = flow.executor(dead_letters_to_log=False)
    ex.open()
    produce(kafka_bootstrap, topic_name, [json.dumps({"i": i}).encode() for i in range(5, 8)])
    deadline = time.monotonic() + 10
    while len(out.rows) < 3 and time.monotonic() < deadline:
        ex.step()
        time.sleep(0.01)
    ex.finish()
    assert [r["i"] for r in out.rows] == [5, 6, 7]


def test_group_offsets_committed_and_resumed(kafka_bootstrap: str, topic_name: str) -> None:
    create_topic(kafka_bootstrap, topic_name, 2)
    produce(kafka_bootstrap, topic_name, [json.dumps({"i": i}).encode() for i in range(20)],
            partition=[i % 2 for i in range(20)])
    group = f"g-{topic_name}"
    assert read_back(kafka_bootstrap, topic_name, group=group).height == 20
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    committed = consumer.committed([TopicPartition(topic_name, p) for p in (0, 1)], timeout=10)
    consumer.close()
    assert [tp.offset for tp in committed] == [10, 10]
    produce(kafka_bootstrap, topic_name, [json.dumps({"i": i}).encode() for i in range(20, 26)])
    # with a group, start defaults to the group's committed offsets
    assert sorted(read_back(kafka_bootstrap, topic_name, group=group)["i"]) == list(range(20, 26))


def test_bad_messages_go_to_dead_letters(kafka_bootstrap: str, topic_name: str) -> None:
    create_topic(kafka_bootstrap, topic_name, 1)
    values = [b'{"i": 0}', b"not json", b'{"i": 2}', b"[1, 2]", b'{"i": 4}']
    produce(kafka_bootstrap, topic_name, values, keys=[b"a", b"b", b"c", b"d", b"e"])
    flow = td.Flow("bad")
    out, dead = td.sinks.memory(), td.sinks.memory()
    flow.source(td.sources.kafka(topic_name, kafka_bootstrap, bounded=True)).sink(out)
    flow.dead_letters().sink(dead)
    flow.run(quiet=True, dead_letters_to_log=False)
    assert out.frame()["i"].to_list() == [0, 2, 4]
    letters = dead.frame().sort("position")
    assert letters.height == 2
    records = [json.loads(r) for r in letters["record"]]
    assert [(r["topic"], r["partition"], r["offset"], r["value"]) for r in records] == [
        (topic_name, 0, 1, "not json"), (topic_name, 0, 3, "[1, 2]")]
    assert all(f"topic {topic_name!r}, partition 0, offset" in r for r in letters["reason"])
    assert "cannot decode json" in letters["reason"][0]


def test_wrong_address_fails_fast_with_a_clear_message() -> None:
    start = time.monotonic()
    flow = td.Flow("nobroker")
    flow.source(td.sources.kafka("events", "127.0.0.1:1")).print()
    with pytest.raises(SourceError, match=r"cannot reach Kafka at '127.0.0.1:1' within 10 s"):
        flow.run(quiet=True, dead_letters_to_log=False)
    flow = td.Flow("nobroker-sink")
    flow.source(td.sources.memory([{"x": 1}])).sink(td.sinks.kafka("out", "127.0.0.1:1"))
    with pytest.raises(SinkError, match=r"cannot reach Kafka at '127.0.0.1:1'"):
        flow.run(quiet=True, dead_letters_to_log=False)
    assert time.monotonic() - start < 25


def test_missing_topic_is_a_source_error(kafka_bootstrap: str, topic_name: str) -> None:
    with pytest.raises(SourceError, match=f"no topic {topic_name!r}"):
        read_back(kafka_bootstrap, topic_name)


def test_sink_exactly_once_or_says_why(kafka_bootstrap: str, topic_name: str, tmp_path,
                                       capfd: pytest.CaptureFixture[str]) -> None:
    flow = td.Flow("eos")
    sink = td.sinks.kafka(topic_name, kafka_bootstrap, key="k", partitions=2)
    flow.source(td.sources.memory(ROWS)).sink(sink)
    flow.run(quiet=True, checkpoint_dir=tmp_path / "ck", dead_letters_to_log=False)
    err = capfd.readouterr().err
    assert ("EXACTLY-ONCE" in err) != ("AT-LEAST-ONCE" in err), err
    print("sink guarantee on this broker:", [x for x in err.splitlines() if "kafka" in x])
    assert sorted(json.loads(v)["v"] for *_, v in consume_all(kafka_bootstrap, topic_name)) == list(range(300))
    assert sink.committed_checkpoint() >= 1
    sink.apply(pl.DataFrame(ROWS), 1)  # already committed: a no-op
    assert len(consume_all(kafka_bootstrap, topic_name)) == 300
