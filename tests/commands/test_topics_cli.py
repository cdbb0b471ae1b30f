"""``tidal topics``: create, list, describe, delete, produce and consume on real log folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import typer
from typer.testing import CliRunner

import tidal.log
from tidal.commands import deadletters_app, topics_app

app = typer.Typer()
app.add_typer(topics_app, name="topics")
app.add_typer(deadletters_app, name="deadletters")


def tidal_cli(log_dir: Path, *args: str, input: str | bytes | None = None):  # noqa: A002
    result = CliRunner().invoke(app, [*args, "--log-dir", str(log_dir)], input=input,
                                env={"COLUMNS": "200"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "log"


ORDERS = "".join(
    json.dumps({"user": u, "amount": a}) + "\n"
    for u, a in [("ann", 5), ("max", 7), ("bob", 9), ("ann", 11), ("eve", 13)]
)


def test_create_list_describe_delete(log_dir):
    r = tidal_cli(log_dir, "topics", "create", "orders", "--partitions", "3",
                  "--retention", "7d", "--retention-bytes", "1MiB", "--fsync", "batch")
    assert r.exit_code == 0, r.output
    assert "created topic orders with 3 partitions" in r.stderr
    with tidal.log.open(log_dir) as log:
        s = log.topic("orders").settings
        assert (s.partitions, s.retention_ms, s.retention_bytes, s.fsync) == (
            3, 7 * 86_400_000, 1 << 20, "batch")

    assert tidal_cli(log_dir, "topics", "create", "audit", "--compact").exit_code == 0
    r = tidal_cli(log_dir, "topics", "list")
    assert r.exit_code == 0
    assert "orders" in r.stdout and "audit" in r.stdout and "7d" in r.stdout
    listed = json_lines(tidal_cli(log_dir, "topics", "list", "--json").stdout)
    assert [d["name"] for d in listed] == ["audit", "orders"]
    assert listed[0]["settings"]["compact"] is True

    tidal_cli(log_dir, "topics", "produce", "orders", "--key", "user", input=ORDERS)
    tidal_cli(log_dir, "topics", "consume", "orders", "--group", "billing", "--from-beginning",
              "--max-messages", "2")
    r = tidal_cli(log_dir, "topics", "describe", "orders")
    assert r.exit_code == 0, r.output
    assert "partitions" in r.stdout and "billing" in r.stdout
    d = json.loads(tidal_cli(log_dir, "topics", "describe", "orders", "--json").stdout)
    assert d["messages"] == 5 and len(d["partitions"]) == 3
    assert sum(p["end_offset"] for p in d["partitions"]) == 5
    assert all(p["segments"] == 1 and p["start_offset"] == 0 for p in d["partitions"])
    (billing,) = d["groups"]
    assert billing["group"] == "billing" and billing["total_lag"] == 3

    r = tidal_cli(log_dir, "topics", "delete", "orders", input="n\n")
    assert r.exit_code == 1 and "Delete topic orders (5 messages)" in r.output
    with tidal.log.open(log_dir) as log:
        assert "orders" in log.topics()
    r = tidal_cli(log_dir, "topics", "delete", "orders", input="y\n")
    assert r.exit_code == 0, r.output
    assert tidal_cli(log_dir, "topics", "delete", "audit", "--yes").exit_code == 0
    with tidal.log.open(log_dir) as log:
        assert log.topics() == []


def test_create_refuses_existing_and_bad_values(log_dir):
    assert tidal_cli(log_dir, "topics", "create", "t").exit_code == 0
    r = tidal_cli(log_dir, "topics", "create", "t")
    assert r.exit_code == 1 and r.stderr.strip() == f"tidal topics create: topic t already exists in {log_dir}"
    r = tidal_cli(log_dir, "topics", "create", "u", "--retention", "soon")
    assert r.exit_code == 2 and "bad --retention 'soon'" in r.stderr
    r = tidal_cli(log_dir, "topics", "create", "u", "--retention-bytes", "lots")
    assert r.exit_code == 2 and "bad --retention-bytes 'lots'" in r.stderr


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "a b"])
@pytest.mark.parametrize("command", ["create", "describe", "delete", "produce", "consume"])
def test_bad_topic_names_are_refused(log_dir, tmp_path, name, command):
    r = tidal_cli(log_dir, "topics", command, name, input="")
    assert r.exit_code == 2
    assert r.stderr.startswith(f"tidal topics {command}: invalid topic name {name!r}: names must match")
    assert "Traceback" not in r.output
    assert not (tmp_path / "x").exists()


def test_bad_empty_name_is_refused(log_dir):
    r = tidal_cli(log_dir, "topics", "create", "")
    assert r.exit_code == 2 and "invalid topic name ''" in r.stderr


@pytest.mark.parametrize("command", ["describe", "delete", "produce", "consume"])
def test_unknown_topic(log_dir, command):
    r = tidal_cli(log_dir, "topics", command, "nope", input="")
    assert r.exit_code == 1
    assert r.stderr.strip() == (
        f"tidal topics {command}: no topic nope in {log_dir}; create it with "
        f"`tidal topics create nope`")
    assert not log_dir.exists()  # looking does not create a log
    tidal_cli(log_dir, "topics", "create", "other")
    r = tidal_cli(log_dir, "topics", command, "nope", input="")
    assert r.exit_code == 1 and "no topic nope in" in r.stderr


def test_list_without_a_log(log_dir):
    r = tidal_cli(log_dir, "topics", "list")
    assert r.exit_code == 0 and f"no topics in {log_dir}" in r.stderr


def test_log_dir_from_the_environment(tmp_path):
    env_dir = tmp_path / "from-env"
    runner = CliRunner()
    r = runner.invoke(app, ["topics", "create", "t"], env={"TIDAL_LOG_DIR": str(env_dir)})
    assert r.exit_code == 0, r.output
    with tidal.log.open(env_dir) as log:
        assert log.topics() == ["t"]


def test_produce_ndjson_and_consume_json(log_dir):
    tidal_cli(log_dir, "topics", "create", "orders")
    r = tidal_cli(log_dir, "topics", "produce", "orders", input=ORDERS + "\n")
    assert r.exit_code == 0, r.output
    assert r.stderr.strip() == "produced 5 rows to orders: partition 0 offsets 0-4"
    r = tidal_cli(log_dir, "topics", "consume", "orders", "--from-beginning", "--exit-at-end")
    assert r.exit_code == 0, r.output
    assert r.stdout == ORDERS.replace(" ", "")
    assert "consumed 5 messages" in r.stderr
    r = tidal_cli(log_dir, "topics", "consume", "orders", "--from-beginning", "--exit-at-end",
                  "--with-meta", "--max-messages", "2")
    assert json_lines(r.stdout) == [
        {"user": "ann", "amount": 5, "offset": 0, "partition": 0},
        {"user": "max", "amount": 7, "offset": 1, "partition": 0},
    ]


def test_produce_csv_and_text(log_dir):
    tidal_cli(log_dir, "topics", "create", "prices")
    r = tidal_cli(log_dir, "topics", "produce", "prices", "--format", "csv",
                  input="item,price\napple,1.5\npear,2\n")
    assert r.exit_code == 0, r.output
    tidal_cli(log_dir, "topics", "create", "lines")
    r = tidal_cli(log_dir, "topics", "produce", "lines", "--format", "text",
                  input="hello world\n  spaced  \n{not json}\n")
    assert r.exit_code == 0, r.output
    with tidal.log.open(log_dir) as log:
        prices = log.topic("prices").read_arrow(0, 0).table
        assert prices.column("item").to_pylist() == ["apple", "pear"]
        assert prices.column("price").to_pylist() == [1.5, 2.0]
        lines = log.topic("lines").read_arrow(0, 0).table
        assert lines.column("line").to_pylist() == ["hello world", "  spaced  ", "{not json}"]
    r = tidal_cli(log_dir, "topics", "consume", "lines", "--from-beginning", "--exit-at-end")
    assert json_lines(r.stdout)[2] == {"line": "{not json}"}


def test_consume_table(log_dir):
    tidal_cli(log_dir, "topics", "create", "orders", "--partitions", "2")
    tidal_cli(log_dir, "topics", "produce", "orders", "--key", "user", input=ORDERS)
    r = tidal_cli(log_dir, "topics", "consume", "orders", "--from-beginning", "--exit-at-end",
                  "--format", "table")
    assert r.exit_code == 0, r.output
    header = next(line for line in r.stdout.splitlines() if "partition" in line)
    assert header.index("partition") < header.index("offset") < header.index("user")
    for user in ("ann", "max", "bob", "eve"):
        assert user in r.stdout
    assert r.stdout.count("┏") == 1  # one table for the whole read


def test_produce_with_key_partitions_by_key(log_dir):
    tidal_cli(log_dir, "topics", "create", "orders", "--partitions", "4")
    r = tidal_cli(log_dir, "topics", "produce", "orders", "--key", "user", input=ORDERS)
    assert r.exit_code == 0, r.output
    with tidal.log.open(log_dir) as log:
        topic = log.topic("orders")
        for p in range(4):
            users = topic.read_arrow(p, 0).table.column("user").to_pylist() if topic.end_offset(p) else []
            assert all(topic.partition_for(u.encode()) == p for u in users)
        total = sum(topic.end_offset(p) for p in range(4))
        assert total == 5
    r = tidal_cli(log_dir, "topics", "consume", "orders", "--from-beginning", "--exit-at-end",
                  "--partition", str(topic.partition_for(b"ann")))
    assert [row["amount"] for row in json_lines(r.stdout) if row["user"] == "ann"] == [5, 11]
    r = tidal_cli(log_dir, "topics", "produce", "orders", "--key", "missing", input=ORDERS)
    assert r.exit_code == 1 and "key column 'missing' is not in the batch" in r.stderr


def test_produce_timestamp_column(log_dir):
    tidal_cli(log_dir, "topics", "create", "ticks")
    rows = '{"t":"2024-01-01T00:00:01Z","v":1}\n{"t":"2024-01-01T00:00:02Z","v":2}\n'
    r = tidal_cli(log_dir, "topics", "produce", "ticks", "--timestamp", "t", input=rows)
    assert r.exit_code == 0, r.output
    with tidal.log.open(log_dir) as log:
        (rec, _) = log.topic("ticks").read(0, 0)
        assert rec.timestamp == 1_704_067_201_000
    r = tidal_cli(log_dir, "topics", "produce", "ticks", "--timestamp", "t",
                  input='{"t":"yesterday","v":3}\n')
    assert r.exit_code == 1 and "timestamp 'yesterday'" in r.stderr


def test_malformed_ndjson_line_is_reported_and_nothing_appended(log_dir):
    tidal_cli(log_dir, "topics", "create", "orders")
    bad = ORDERS + '{"user": "zed", "amount": }\n' + ORDERS
    r = tidal_cli(log_dir, "topics", "produce", "orders", input=bad)
    assert r.exit_code == 1
    assert r.stderr.startswith("tidal topics produce: line 6: not valid JSON")
    assert "nothing of its batch was written" in r.stderr
    assert "Traceback" not in r.output
    with tidal.log.open(log_dir) as log:
        assert log.topic("orders").end_offset(0) == 0
    r = tidal_cli(log_dir, "topics", "produce", "orders", input='{"a":1}\n[1, 2]\n')
    assert r.exit_code == 1 and "line 2: expected a JSON object, got list" in r.stderr


def test_malformed_line_in_a_later_batch_keeps_earlier_batches(log_dir):
    tidal_cli(log_dir, "topics", "create", "orders")
    r = tidal_cli(log_dir, "topics", "produce", "orders", "--batch-size", "5",
                  input=ORDERS + ORDERS + "oops\n" + ORDERS)
    assert r.exit_code == 1
    assert "line 11: not valid JSON" in r.stderr
    assert "(10 rows from earlier lines were appended)" in r.stderr
    with tidal.log.open(log_dir) as log:
        assert log.topic("orders").end_offset(0) == 10


def test_malformed_csv_line(log_dir):
    tidal_cli(log_dir, "topics", "create", "prices")
    r = tidal_cli(log_dir, "topics", "produce", "prices", "--format", "csv",
                  input="item,price\napple,1\npear,2,extra\n")
    assert r.exit_code == 1 and "line 3: 3 fields, the header has 2" in r.stderr
    with tidal.log.open(log_dir) as log:
        assert log.topic("prices").end_offset(0) == 0


def test_consume_with_group_commits_and_resumes(log_dir):
    tidal_cli(log_dir, "topics", "create", "orders", "--partitions", "2")
    tidal_cli(log_dir, "topics", "produce", "orders", "--key", "user", input=ORDERS)
    args = ["topics", "consume", "orders", "--group", "g", "--from-beginning", "--exit-at-end"]
    first = json_lines(tidal_cli(log_dir, *args, "--max-messages", "3").stdout)
    assert len(first) == 3
    with tidal.log.open(log_dir) as log:
        assert sum(log.committed("g", "orders").values()) == 3
    rest = json_lines(tidal_cli(log_dir, *args).stdout)
    assert len(rest) == 2
    assert sorted(r["amount"] for r in first + rest) == [5, 7, 9, 11, 13]
    assert tidal_cli(log_dir, *args).stdout == ""  # all consumed: the commit wins
    tidal_cli(log_dir, "topics", "produce", "orders", input='{"user":"new","amount":1}\n')
    assert json_lines(tidal_cli(log_dir, *args).stdout) == [{"user": "new", "amount": 1}]


def test_consume_without_from_beginning_starts_at_the_end(log_dir):
    tidal_cli(log_dir, "topics", "create", "orders")
    tidal_cli(log_dir, "topics", "produce", "orders", input=ORDERS)
    r = tidal_cli(log_dir, "topics", "consume", "orders", "--exit-at-end")
    assert r.exit_code == 0 and r.stdout == "" and "consumed 0 messages" in r.stderr


def test_consume_reads_records_appended_by_the_library(log_dir):
    with tidal.log.open(log_dir) as log:
        t = log.create_topic("raw")
        t.append([tidal.log.Record(b'{"a": 1}', key=b"k"), tidal.log.Record(b"plain text")])
        t.append_batch(pa.table({"b": [b"\x00\x01"]}))
    r = tidal_cli(log_dir, "topics", "consume", "raw", "--from-beginning", "--exit-at-end")
    assert r.stdout.splitlines() == ['{"a": 1}', '"plain text"', '{"b":"AAE="}']
    r = tidal_cli(log_dir, "topics", "consume", "raw", "--from-beginning", "--exit-at-end",
                  "--with-meta", "--max-messages", "1")
    assert json.loads(r.stdout) | {"timestamp": 0} == {
        "partition": 0, "offset": 0, "timestamp": 0, "key": "k", "value": {"a": 1}}


# -- end to end, as a user runs it ----------------------------------------------------------

RUN_TOPICS = "from tidal.commands.topics import topics_app; topics_app()"


def run(log_dir: Path, *args: str, input: str | None = None, timeout: float = 60):  # noqa: A002
    env = {**os.environ, "TIDAL_LOG_DIR": str(log_dir), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", RUN_TOPICS, *args], input=input, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_subprocess_round_trip(log_dir):
    r = run(log_dir, "create", "orders", "--partitions", "2")
    assert r.returncode == 0, r.stderr
    big = "".join(json.dumps({"user": f"u{i % 7}", "n": i}) + "\n" for i in range(25_000))
    r = run(log_dir, "produce", "orders", "--key", "user", input=big)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("produced 25,000 rows to orders: partition 0 offsets 0-")
    r = run(log_dir, "consume", "orders", "--from-beginning", "--exit-at-end", "--group", "g")
    assert r.returncode == 0, r.stderr
    rows = json_lines(r.stdout)
    assert sorted(row["n"] for row in rows) == list(range(25_000))
    assert r.stderr.strip() == "consumed 25,000 messages"
    r = run(log_dir, "describe", "orders", "--json")
    d = json.loads(r.stdout)
    assert d["messages"] == 25_000 and d["groups"][0]["total_lag"] == 0
    r = run(log_dir, "produce", "orders", input='{"n": 1}\n{"n": 2\n')
    assert r.returncode == 1
    assert r.stderr.startswith("tidal topics produce: line 2: not valid JSON")
    assert "Traceback" not in r.stderr
    r = run(log_dir, "consume", "../etc")
    assert r.returncode == 2 and "invalid topic name '../etc'" in r.stderr


def test_subprocess_consume_polls_until_interrupted(log_dir):
    import signal
    import time

    run(log_dir, "create", "live")
    env = {**os.environ, "TIDAL_LOG_DIR": str(log_dir)}
    proc = subprocess.Popen([sys.executable, "-c", RUN_TOPICS, "consume", "live", "--group", "g"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until it polls (it starts at the end)
            time.sleep(0.3)
            run(log_dir, "produce", "live", input='{"v": 1}\n')
            with tidal.log.open(log_dir) as log:
                if log.committed("g", "live"):
                    break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert '{"v":1}' in out and "consumed" in err and "Traceback" not in err
