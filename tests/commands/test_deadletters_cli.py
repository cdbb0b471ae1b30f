"""``tidal deadletters list|show|replay`` on a dead-letter topic written like a pipeline does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import polars as pl
import pytest
import typer
from typer.testing import CliRunner

import tidal.log
from tidal.commands import deadletters_app, topics_app

app = typer.Typer()
app.add_typer(topics_app, name="topics")
app.add_typer(deadletters_app, name="deadletters")

T0 = 1_700_000_000_000


def tidal_cli(log_dir: Path, *args: str, input: str | None = None):  # noqa: A002
    result = CliRunner().invoke(app, [*args, "--log-dir", str(log_dir)], input=input,
                                env={"COLUMNS": "200"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def letters(rows: list[tuple[int, str, str, dict | str, str | None]]) -> pl.DataFrame:
    """Dead-letter rows in the schema the runtime appends (tidal.runtime.deadletters)."""
    return pl.DataFrame(
        {
            "time": [T0 + t for t, *_ in rows],
            "flow": ["enrich"] * len(rows),
            "step": [s for _, s, *_ in rows],
            "reason": [r for _, _, r, *_ in rows],
            "record": [rec if isinstance(rec, str) else orjson.dumps(rec).decode()
                       for *_, rec, _ in rows],
            "source": [src for *_, src in rows],
            "source_partition": ["0"] * len(rows),
            "position": [json.dumps({"offset": i}) for i in range(len(rows))],
        },
        schema={"time": pl.Int64, "flow": pl.String, "step": pl.String, "reason": pl.String,
                "record": pl.String, "source": pl.String, "source_partition": pl.String,
                "position": pl.String},
    )


FIRST = [
    (0, "parse", "bad amount 'x'", {"user": "ann", "amount": 5}, "orders"),
    (10, "enrich", "lookup failed: timeout", {"user": "max", "amount": 7}, "orders"),
    (20, "parse", "bad amount 'y'", {"user": "bob", "amount": 9}, "orders"),
]


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    log_dir = tmp_path / "log"
    with tidal.log.open(log_dir) as log:
        orders = log.create_topic("orders", partitions=2)
        orders.append_batch(pl.DataFrame({"user": ["eve"], "amount": [1]}), key="user")
        log.create_topic("enrich.dead-letters").append_batch(letters(FIRST))
    return log_dir


def orders_rows(log_dir: Path) -> list[dict]:
    with tidal.log.open(log_dir) as log:
        t = log.topic("orders")
        out = []
        for p in range(t.partitions):
            if t.end_offset(p):
                out += t.read_arrow(p, 0).table.drop_columns(["offset", "partition"]).to_pylist()
        return out


def test_list_counts_by_step_and_reason(log_dir):
    r = tidal_cli(log_dir, "deadletters", "list", "enrich")
    assert r.exit_code == 0, r.output
    assert "3 dead letters of pipeline enrich" in r.stdout
    assert "0 replayed, 3 pending" in r.stdout
    assert "oldest 2023-11-14T22:13:20.000Z, newest 2023-11-14T22:13:20.020Z" in r.stdout
    assert "lookup failed: timeout" in r.stdout
    summary = json.loads(tidal_cli(log_dir, "deadletters", "list", "enrich", "--json").stdout)
    assert (summary["total"], summary["oldest"], summary["newest"]) == (3, T0, T0 + 20)
    counts = {(g["step"], g["reason"]): g["count"] for g in summary["by_step_and_reason"]}
    assert counts == {("parse", "bad amount 'x'"): 1, ("enrich", "lookup failed: timeout"): 1,
                      ("parse", "bad amount 'y'"): 1}


def test_show_table_json_limit_and_reason(log_dir):
    r = tidal_cli(log_dir, "deadletters", "show", "enrich")
    assert r.exit_code == 0, r.output
    assert '{"user":"ann","amount":5}' in r.stdout and "lookup failed" in r.stdout
    shown = [json.loads(line) for line in
             tidal_cli(log_dir, "deadletters", "show", "enrich", "--json").stdout.splitlines()]
    assert [s["offset"] for s in shown] == [0, 1, 2]
    assert shown[0]["record"] == {"user": "ann", "amount": 5}
    assert shown[0]["position"] == {"offset": 0} and shown[0]["step"] == "parse"
    r = tidal_cli(log_dir, "deadletters", "show", "enrich", "--json", "--reason", "bad amount",
                  "--limit", "1")
    assert [json.loads(line)["offset"] for line in r.stdout.splitlines()] == [0]
    r = tidal_cli(log_dir, "deadletters", "show", "enrich", "--limit", "2")
    assert "showing 2 of 3" in r.stdout


def test_show_escapes_and_truncates_records(log_dir):
    long = {"text": "line one\nline two [bold]not markup[/bold] " + "z" * 200}
    with tidal.log.open(log_dir) as log:
        log.topic("enrich.dead-letters").append_batch(
            letters([(30, "parse", "weird\treason", long, "orders")]))
    r = tidal_cli(log_dir, "deadletters", "show", "enrich", "--reason", "weird")
    assert r.exit_code == 0, r.output
    assert "[bold]not" in r.stdout  # shown literally, not as rich markup
    assert "z" * 100 not in r.stdout and "…" in r.stdout


def test_replay_into_the_source_topic_once(log_dir):
    r = tidal_cli(log_dir, "deadletters", "replay", "enrich", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "would replay 3 dead letters to orders (key user)" in r.stderr
    assert len(orders_rows(log_dir)) == 1  # a dry run appends nothing ...
    with tidal.log.open(log_dir) as log:
        assert log.committed("tidal-replay", "enrich.dead-letters") == {}  # ... nor remembers

    r = tidal_cli(log_dir, "deadletters", "replay", "enrich")
    assert r.exit_code == 0, r.output
    assert r.stderr.startswith("replayed 3 dead letters to orders (partition ")
    assert sorted(row["user"] for row in orders_rows(log_dir)) == ["ann", "bob", "eve", "max"]
    with tidal.log.open(log_dir) as log:  # replayed rows keep the topic's key partitioning
        t = log.topic("orders")
        for p in range(t.partitions):
            for user in t.read_arrow(p, 0).table.column("user").to_pylist():
                assert t.partition_for(user.encode()) == p
        assert log.committed("tidal-replay", "enrich.dead-letters") == {0: 3}

    r = tidal_cli(log_dir, "deadletters", "replay", "enrich")
    assert r.exit_code == 0
    assert "nothing to replay: pipeline enrich has no pending dead letters (3 replayed before)" in r.stderr
    assert len(orders_rows(log_dir)) == 4  # no double replay

    with tidal.log.open(log_dir) as log:  # new letters arrive; only they are replayed
        log.topic("enrich.dead-letters").append_batch(
            letters([(40, "parse", "bad amount 'z'", {"user": "kim", "amount": 3}, "orders")]))
    assert "3 replayed, 1 pending" in tidal_cli(log_dir, "deadletters", "list", "enrich").stdout
    r = tidal_cli(log_dir, "deadletters", "replay", "enrich")
    assert "replayed 1 dead letters to orders" in r.stderr
    assert sorted(row["user"] for row in orders_rows(log_dir)) == ["ann", "bob", "eve", "kim", "max"]


def test_replay_by_reason_passes_over_the_rest(log_dir):
    r = tidal_cli(log_dir, "deadletters", "replay", "enrich", "--reason", "lookup failed")
    assert r.exit_code == 0, r.output
    assert "replayed 1 dead letters to orders" in r.stderr
    assert "passed over 2 pending dead letters whose reason does not contain 'lookup failed'" in r.stderr
    assert sorted(row["user"] for row in orders_rows(log_dir)) == ["eve", "max"]
    r = tidal_cli(log_dir, "deadletters", "replay", "enrich")
    assert "nothing to replay" in r.stderr


def test_replay_to_another_topic_and_unknown_sources(log_dir):
    with tidal.log.open(log_dir) as log:
        log.topic("enrich.dead-letters").append_batch(
            letters([(50, "parse", "bad", {"user": "lea", "amount": 4}, "http_in")]))
    r = tidal_cli(log_dir, "deadletters", "replay", "enrich")
    assert r.exit_code == 1
    assert ("dead letters from source 'http_in' (1 letters) have no topic of that name in "
            f"{log_dir}; pass --to TOPIC") in r.stderr
    assert len(orders_rows(log_dir)) == 1  # nothing was replayed
    r = tidal_cli(log_dir, "deadletters", "replay", "enrich", "--to", "retry")
    assert r.exit_code == 1 and "no topic retry in" in r.stderr
    tidal_cli(log_dir, "topics", "create", "retry")
    r = tidal_cli(log_dir, "deadletters", "replay", "enrich", "--to", "retry")
    assert r.exit_code == 0, r.output
    assert "replayed 4 dead letters to retry" in r.stderr
    r = tidal_cli(log_dir, "topics", "consume", "retry", "--from-beginning", "--exit-at-end")
    assert [json.loads(line)["user"] for line in r.stdout.splitlines()] == [
        "ann", "max", "bob", "lea"]


def test_replay_refuses_a_record_that_is_not_json(log_dir):
    with tidal.log.open(log_dir) as log:
        log.topic("enrich.dead-letters").append_batch(
            letters([(60, "parse", "bad", "not json {", "orders")]))
    r = tidal_cli(log_dir, "deadletters", "replay", "enrich")
    assert r.exit_code == 1
    assert "dead letter at offset 3: its record is not a JSON object" in r.stderr
    assert len(orders_rows(log_dir)) == 1
    with tidal.log.open(log_dir) as log:
        assert log.committed("tidal-replay", "enrich.dead-letters") == {}


def test_no_dead_letters_and_bad_pipeline_names(log_dir):
    r = tidal_cli(log_dir, "deadletters", "list", "billing")
    assert r.exit_code == 0
    assert ("pipeline billing has no dead letters in " in r.stderr
            and "(no topic billing.dead-letters); pipelines with dead letters there: enrich"
            in r.stderr)
    for command in ("list", "show", "replay"):
        r = tidal_cli(log_dir, "deadletters", command, "../x")
        assert r.exit_code == 2
        assert r.stderr.startswith(f"tidal deadletters {command}: invalid pipeline name '../x'")


def test_subprocess_replay(log_dir):
    code = "from tidal.commands.deadletters import deadletters_app; deadletters_app()"
    env = {**os.environ, "TIDAL_LOG_DIR": str(log_dir), "COLUMNS": "200"}
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", code, "replay", "enrich"], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    assert "nothing to replay" in r.stderr
    assert len(orders_rows(log_dir)) == 4
