"""The ``tidal`` command, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import tidal as td

TIMEOUT_S = 60


def tidal(*args: str, cwd: Path, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIDAL_HOME": str(cwd / ".tidal"), "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "tidal.cli", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=timeout,
    )


def test_version(tmp_path):
    r = tidal("--version", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"tidal {td.__version__}"


def test_console_script_is_installed(tmp_path):
    script = Path(sys.executable).parent / "tidal"
    r = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("tidal ")


PIPELINE = """\
import polars as pl
import tidal as td

flow = td.Flow("bids")
bids = flow.source(td.sources.jsonl("bids.jsonl"), timestamp="date_time",
                   watermark=td.bounded_delay("200ms"))
hot = (bids.filter(pl.col("price") > 1_000)
           .key_by("auction")
           .window(td.tumbling("10s"))
           .agg(n=td.agg.count(), top=td.agg.max("price")))
hot.sink(td.sinks.jsonl("out.jsonl"))
"""


def write_bids(folder: Path) -> None:
    rows = [
        {"auction": 1, "price": 2_000, "date_time": 1_000},
        {"auction": 1, "price": 500, "date_time": 2_000},
        {"auction": 2, "price": 5_000, "date_time": 3_000},
        {"auction": 1, "price": 9_000, "date_time": 4_000},
        {"auction": 1, "price": 1_500, "date_time": 12_000},
    ]
    (folder / "bids.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


EXPECTED = [
    {"auction": 1, "window_start": 0, "window_end": 10_000, "n": 2, "top": 9_000},
    {"auction": 1, "window_start": 10_000, "window_end": 20_000, "n": 1, "top": 1_500},
    {"auction": 2, "window_start": 0, "window_end": 10_000, "n": 1, "top": 5_000},
]


def read_out(folder: Path) -> list[dict]:
    rows = [json.loads(line) for line in (folder / "out.jsonl").read_text().splitlines()]
    return sorted(rows, key=lambda r: (r["auction"], r["window_start"]))


def test_run_a_file_that_calls_flow_run(tmp_path):
    write_bids(tmp_path)
    (tmp_path / "pipeline.py").write_text(PIPELINE + "flow.run()\nprint('ran to the end')\n")
    r = tidal("run", "pipeline.py", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "ran to the end" in r.stdout
    assert read_out(tmp_path) == EXPECTED


def test_run_a_file_that_only_builds_a_flow(tmp_path):
    write_bids(tmp_path)
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    r = tidal("run", "pipeline.py", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert read_out(tmp_path) == EXPECTED


def test_run_takes_a_path_from_another_folder_and_imports_its_siblings(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    write_bids(tmp_path)
    (project / "helpers.py").write_text("THRESHOLD = 1_000\n")
    (project / "job.py").write_text(textwrap.dedent("""\
        import polars as pl
        import tidal as td
        from helpers import THRESHOLD

        flow = td.Flow("job")
        s = flow.source(td.sources.jsonl("bids.jsonl"))
        s.filter(pl.col("price") > THRESHOLD).select("auction", "price").print()
    """))
    r = tidal("run", str(project / "job.py"), "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "auction=1 price=2000", "auction=2 price=5000", "auction=1 price=9000",
        "auction=1 price=1500",
    ]


def test_run_reports_a_missing_file(tmp_path):
    r = tidal("run", "nope.py", cwd=tmp_path)
    assert r.returncode != 0
    assert "no such file" in r.stderr and "nope.py" in r.stderr


def test_run_reports_a_file_without_a_flow(tmp_path):
    (tmp_path / "empty.py").write_text("x = 1\n")
    r = tidal("run", "empty.py", cwd=tmp_path)
    assert r.returncode != 0
    assert "defines no td.Flow" in r.stderr


def test_run_shows_plan_errors_with_the_users_line(tmp_path):
    write_bids(tmp_path)
    (tmp_path / "bad.py").write_text(PIPELINE.replace('key_by("auction")', 'key_by("auctoin")'))
    r = tidal("run", "bad.py", "-q", cwd=tmp_path)
    assert r.returncode != 0
    assert "PlanError" in r.stderr
    assert "did you mean 'auction'?" in r.stderr
    assert "bad.py:" in r.stderr


def test_demo_prints_window_tables(tmp_path):
    r = tidal("demo", "--duration", "3s", "--rate", "2000", "--quiet", "--no-serve", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "tidal demo" in out
    assert "window " in out and "transactions" in out and "revenue" in out
    assert "top cards so far:" in out
    assert any(c in out for c in ("grocery", "fuel", "electronics", "travel", "dining"))
