"""A pipeline's dead letters, inspected and replayed with `tidal deadletters` after the fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl

import tidal as td
import tidal.log


def run_flow(log_dir: Path, fixed: bool) -> list[dict]:
    flow = td.Flow("orders-pipeline")
    orders = flow.source(td.sources.log("orders", group="pipeline", log_dir=log_dir, bounded=True))

    def unit_price(r: dict) -> dict:
        qty = r["qty"] or (1 if fixed else 0)  # the bug: an order with qty 0
        return {**r, "unit": r["total"] / qty}

    out = td.sinks.memory()
    orders.map(unit_price).sink(out)
    flow.run(quiet=True, log_dir=log_dir)
    return out.rows


def cli(log_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidal.cli", "deadletters", *args,
                           "--log-dir", str(log_dir)], capture_output=True, text=True, timeout=60)


def test_dead_letters_of_a_real_run_replay_into_the_input(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    with tidal.log.open(log_dir) as log:
        log.create_topic("orders").append_batch(
            pl.DataFrame({"id": [1, 2, 3], "qty": [2, 0, 4], "total": [10.0, 7.0, 8.0]}))
    first = run_flow(log_dir, fixed=False)
    assert [r["id"] for r in first] == [1, 3]

    listed = cli(log_dir, "show", "orders-pipeline", "--json")
    assert listed.returncode == 0, listed.stderr
    [letter] = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    record = letter["record"] if isinstance(letter["record"], dict) else json.loads(letter["record"])
    assert "ZeroDivisionError" in letter["reason"] and record["id"] == 2

    replayed = cli(log_dir, "replay", "orders-pipeline")
    assert replayed.returncode == 0, replayed.stderr
    assert "orders" in replayed.stdout + replayed.stderr

    second = run_flow(log_dir, fixed=True)  # the group resumes after the first run's offsets
    assert [(r["id"], r["unit"]) for r in second] == [(2, 7.0)]
    again = cli(log_dir, "replay", "orders-pipeline")
    assert again.returncode == 0
    assert run_flow(log_dir, fixed=True) == []  # nothing replayed twice
