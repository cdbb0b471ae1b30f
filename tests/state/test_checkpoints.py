"""Checkpoints: restart from the newest, fall back from a corrupt one, refuse what is unsafe."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest

import tidal as td
from tidal.errors import PlanError
from tidal.state import checkpoint as ckpt
from tidal.state.checkpoint import CheckpointError, CheckpointStore, DirectoryLocked

EVENTS = [{"k": f"k{i % 4}", "t": i * 250, "seq": i // 4 + 1} for i in range(400)]


def build(tmp: Path, agg: td.agg.Agg | None = None) -> td.Flow:
    """Windows + running aggregate into exactly-once JSONL and SQLite sinks."""
    flow = td.Flow("ck")
    s = flow.source(td.sources.memory(EVENTS), timestamp="t")
    (s.key_by("k").window(td.tumbling("10s"), name="win")
     .agg(n=agg or td.agg.count()).sink(td.sinks.jsonl(tmp / "windows.jsonl")))
    (s.key_by("k").agg(count=td.agg.count(), seq=td.agg.max("seq"), name="running")
     .sink(td.sinks.sqlite(tmp / "out.db", "running", key="k")))
    s.sink(td.sinks.jsonl(tmp / "raw.jsonl"), name="raw")
    return flow


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def crash_after(flow: td.Flow, steps: int, checkpoint_every: int, **kw) -> None:
    """Run ``steps`` steps, checkpointing every few, then stop dead (no finish, no flush)."""
    ex = flow.executor(max_batch_rows=10, **kw)
    ex.open()
    for i in range(steps):
        ex.step()
        if (i + 1) % checkpoint_every == 0:
            ex.checkpoint()
    ex.store.unlock()  # what the kernel does when the process dies


def test_restart_resumes_from_the_newest_checkpoint_exactly_once(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    build(ref).run(quiet=True, max_batch_rows=10)
    out = tmp_path / "out"
    crash_after(build(out), steps=17, checkpoint_every=5, checkpoint_dir=out / "ck")
    # rows of the three steps after the last checkpoint were never committed
    assert len(lines(out / "raw.jsonl")) == 150
    build(out).run(quiet=True, max_batch_rows=10, checkpoint_dir=out / "ck")
    assert lines(out / "raw.jsonl") == lines(ref / "raw.jsonl")
    assert sorted(map(str, lines(out / "windows.jsonl"))) == sorted(map(str, lines(ref / "windows.jsonl")))
    import sqlite3

    rows = sqlite3.connect(out / "out.db").execute("SELECT k, count, seq FROM running").fetchall()
    assert rows and all(count == seq for _, count, seq in rows)  # no event applied twice


def test_corrupt_newest_checkpoint_falls_back_to_the_previous(tmp_path: Path, capsys) -> None:
    crash_after(build(tmp_path), steps=10, checkpoint_every=5, checkpoint_dir=tmp_path / "ck")
    store = CheckpointStore(tmp_path / "ck")
    newest = store.checkpoints()[-1]
    state = next(newest.path.glob("op-*.pkl"))
    state.write_bytes(state.read_bytes()[:-3])  # truncated
    warnings: list[str] = []
    chosen = store.latest(warn=warnings.append)
    assert chosen is not None and chosen.id == newest.id - 1
    assert str(state) in warnings[0] and "falling back" in warnings[0]


def test_no_usable_checkpoint_refuses_and_names_the_file(tmp_path: Path) -> None:
    crash_after(build(tmp_path), steps=5, checkpoint_every=5, checkpoint_dir=tmp_path / "ck")
    (only,) = CheckpointStore(tmp_path / "ck").checkpoints()
    state = next(only.path.glob("op-*.pkl"))
    state.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=str(state).replace(".", r"\.") + ".*Refusing to start from scratch"):
        build(tmp_path).run(quiet=True, checkpoint_dir=tmp_path / "ck")


def test_a_checkpoint_without_manifest_is_ignored(tmp_path: Path) -> None:
    crash_after(build(tmp_path), steps=5, checkpoint_every=5, checkpoint_dir=tmp_path / "ck")
    partial = tmp_path / "ck" / "chk-0000000099"
    partial.mkdir()
    (partial / "op-000.pkl").write_bytes(b"half")
    cp = CheckpointStore(tmp_path / "ck").latest()
    assert cp is not None and cp.id == 1 and not partial.exists()


def test_disk_full_publishes_no_partial_checkpoint(tmp_path: Path, monkeypatch) -> None:
    flow = build(tmp_path)
    ex = flow.executor(max_batch_rows=10, checkpoint_dir=tmp_path / "ck")
    ex.open()
    ex.step()
    ex.checkpoint()
    ex.step()
    real = ckpt._write_file
    calls = {"n": 0}

    def full(path: Path, data: bytes) -> str:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    monkeypatch.setattr(ckpt, "_write_file", full)
    with pytest.raises(CheckpointError, match="No space left on device.*nothing was published"):
        ex.checkpoint()
    ex.store.unlock()
    assert [c.id for c in CheckpointStore(tmp_path / "ck").checkpoints()] == [1]
    assert not (tmp_path / "ck" / "chk-0000000002").exists()


def test_unwritable_checkpoint_directory_fails_clearly(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(CheckpointError, match="cannot use checkpoint directory"):
        build(tmp_path).run(quiet=True, checkpoint_dir=blocker)


def test_changed_operator_fails_at_start_naming_it(tmp_path: Path) -> None:
    crash_after(build(tmp_path), steps=5, checkpoint_every=5, checkpoint_dir=tmp_path / "ck")
    with pytest.raises(PlanError, match=r"operator 'win' changed since checkpoint 1.*count\(\).*max\(seq\)"):
        build(tmp_path, agg=td.agg.max("seq")).run(quiet=True, checkpoint_dir=tmp_path / "ck")


def test_removed_operator_fails_at_start(tmp_path: Path) -> None:
    crash_after(build(tmp_path), steps=5, checkpoint_every=5, checkpoint_dir=tmp_path / "ck")
    flow = td.Flow("ck")
    flow.source(td.sources.memory(EVENTS), timestamp="t").print()
    with pytest.raises(PlanError, match="holds state of operator 'win', which this flow no longer has"):
        flow.run(quiet=True, checkpoint_dir=tmp_path / "ck")


PIPELINE = textwrap.dedent("""
    import sys, tidal as td
    flow = td.Flow("live")
    src = td.sources.generator("clicks", rate=2000, paced=True, seed=3)
    s = flow.source(src, timestamp="ts")
    s.key_by("page").agg(n=td.agg.count(), name="views").sink(td.sinks.jsonl(sys.argv[2]))
    print("running", flush=True)
    flow.run(quiet=True, checkpoint_dir=sys.argv[1], checkpoint_interval="200ms")
""")


def start(tmp_path: Path, script: str = PIPELINE) -> subprocess.Popen[str]:
    path = tmp_path / "live.py"
    path.write_text(script)
    proc = subprocess.Popen([sys.executable, str(path), str(tmp_path / "ck"), str(tmp_path / "out.jsonl")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "running"
    return proc


def wait_for_lock(tmp_path: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        lock = tmp_path / "ck" / "LOCK"
        if lock.exists() and "pid" in lock.read_text():
            return
        time.sleep(0.05)
    raise AssertionError("the pipeline never locked its checkpoint directory")


def test_second_instance_refuses_even_while_the_first_is_stopped(tmp_path: Path) -> None:
    proc = start(tmp_path)
    try:
        wait_for_lock(tmp_path)
        os.kill(proc.pid, signal.SIGSTOP)
        flow = td.Flow("live")
        flow.source(td.sources.memory([{"x": 1}])).print()
        with pytest.raises(DirectoryLocked, match=f"pid {proc.pid}"):
            flow.run(quiet=True, checkpoint_dir=tmp_path / "ck")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def test_savepoint_stops_the_flow_and_resumes(tmp_path: Path) -> None:
    proc = start(tmp_path)
    try:
        wait_for_lock(tmp_path)
        deadline = time.monotonic() + 20  # wait until it has processed and checkpointed
        while not any((tmp_path / "ck").glob("chk-*/MANIFEST")):
            assert time.monotonic() < deadline, "the pipeline never checkpointed"
            time.sleep(0.05)
        cli = subprocess.run([sys.executable, "-m", "tidal.cli", "savepoint", str(tmp_path / "ck")],
                             capture_output=True, text=True, timeout=60)
        assert cli.returncode == 0, cli.stderr
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    savepoint = Path(cli.stdout.strip())
    assert savepoint.parent.name == "savepoints" and (savepoint / "MANIFEST").exists()
    manifest = json.loads((savepoint / "MANIFEST").read_text())
    assert manifest["savepoint"] and manifest["positions"]["generator"]["0"]["k"] > 0
    views = pl.read_ndjson(tmp_path / "out.jsonl")
    # the views committed by the savepoint add up to the events read before it
    final = views.group_by("page").agg(pl.col("n").max())
    assert final["n"].sum() == manifest["positions"]["generator"]["0"]["k"]
