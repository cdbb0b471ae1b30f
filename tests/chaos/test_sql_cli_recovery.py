"""Chaos for SQL jobs run from the command line: ``tidal sql job.sql`` with Flink's
checkpoint settings is SIGKILLed at random moments and started again with the same command
until it finishes; its exactly-once file sink then holds exactly what one uninterrupted run
writes."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tidal.state.checkpoint import CheckpointStore

ROWS = 2_000_000
JOB = """
CREATE TABLE readings (id BIGINT, device BIGINT, temp BIGINT) WITH (
  'connector' = 'datagen', 'number-of-rows' = '{rows}',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '{rows}',
  'fields.device.min' = '1', 'fields.device.max' = '50', 'fields.temp.min' = '-20',
  'fields.temp.max' = '60', 'seed' = '7');
CREATE TABLE hot (id BIGINT, device BIGINT, temp BIGINT) WITH (
  'connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
{settings}
INSERT INTO hot SELECT id, device, temp FROM readings WHERE temp > 40;
"""


def run(work: Path, name: str, settings: str = "") -> tuple[Path, list[str]]:
    out = work / f"{name}.jsonl"
    job = work / f"{name}.sql"
    job.write_text(JOB.format(rows=ROWS, out=out, settings=settings))
    return out, [sys.executable, "-m", "tidal.cli", "sql", str(job), "--max-batch-rows", "500"]


def test_killed_sql_job_resumes_from_its_checkpoint_exactly_once(tmp_path: Path) -> None:
    ref, command = run(tmp_path, "ref")
    subprocess.run(command, check=True, timeout=300)
    want = ref.read_text().splitlines()
    assert len(want) > 10_000
    ck = tmp_path / "ck"
    out, command = run(tmp_path, "chaos", f"SET 'state.checkpoints.dir' = 'file://{ck}';\n"
                                          "SET 'execution.checkpointing.interval' = '50 ms';")
    rng, kills = random.Random(5), 0
    for _ in range(40):
        proc = subprocess.Popen(command)
        deadline = time.monotonic() + 120
        # once it has checkpointed since it started, kill it at a random moment after that
        seen = len(CheckpointStore(ck).checkpoints()) if ck.exists() else 0
        while proc.poll() is None and time.monotonic() < deadline and \
                (len(CheckpointStore(ck).checkpoints()) if ck.exists() else 0) <= seen:
            time.sleep(0.01)
        time.sleep(rng.random() * 0.15)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        if proc.wait(timeout=120) == 0:
            break
    else:
        raise AssertionError("the job never finished")
    assert kills >= 2, f"only {kills} kill(s) landed before the job finished"
    got = out.read_text().splitlines()
    assert len(got) == len(want) and sorted(got) == sorted(want)
    assert [json.loads(line)["id"] for line in got] == sorted(json.loads(x)["id"] for x in got)
