"""The README's quickstart written in SQL gives the same rows as the Python version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl

import tidal as td

HERE = Path(__file__).resolve().parents[1] / "examples" / "quickstart"


def test_sql_quickstart_equals_the_python_pipeline(tmp_path: Path) -> None:
    flow = td.Flow("bids")
    bids = flow.source(td.sources.jsonl(HERE / "bids.jsonl"), timestamp="date_time",
                       watermark=td.bounded_delay("200ms"))
    out = td.sinks.memory()
    (bids.filter(pl.col("price") > 1_000).key_by("auction").window(td.tumbling("10s"))
     .agg(n=td.agg.count(), top=td.agg.max("price")).sink(out))
    flow.run(quiet=True, dead_letters_to_log=False)
    python = out.frame().with_columns(pl.col("window_start", "window_end").dt.to_string("%Y-%m-%dT%H:%M:%S"))

    r = subprocess.run([sys.executable, "-m", "tidal.cli", "sql", "pipeline.sql"], cwd=HERE,
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "TIDAL_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    sql = pl.read_ndjson(r.stdout.encode())
    cols = ["auction", "window_start", "window_end", "n", "top"]
    assert sql.height > 10
    assert sql.select(cols).sort(cols).equals(python.select(cols).cast(sql.schema).sort(cols))
