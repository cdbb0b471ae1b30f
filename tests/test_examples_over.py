"""examples/card_spikes_sql.py runs as users run it and prints the spikes a batch computation
over the same transactions finds (per card, the average of its last 11 transactions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl

import tidal as td

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "card_spikes_sql.py"


def test_card_spikes_match_a_batch_rolling_average(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    got = sorted((f["card"], f["ts"], f["amount"]) for f in (
        dict(p.split("=", 1) for p in line.removeprefix("spike ").split(" "))
        for line in lines if line.startswith("spike ")))
    flow = td.Flow("tx")
    out = td.sinks.memory()
    flow.source(td.sources.generator("transactions", rate=1_000, events=120_000, paced=False,
                                     seed=3), timestamp="ts").sink(out)
    flow.run(quiet=True)
    tx = out.frame().with_row_index("arrival").sort("ts", "arrival")
    window = tx.with_columns(
        avg=pl.col("amount").rolling_mean(11, min_samples=1).over("card"),
        n=pl.int_range(pl.len()).over("card").clip(upper_bound=10) + 1)
    want = window.filter((pl.col("n") >= 5) & (pl.col("amount") > 4 * pl.col("avg")))
    assert want.height > 0
    assert got == sorted((c, t.isoformat(), str(a)) for c, t, a in
                         want.select("card", "ts", "amount").iter_rows())
    assert lines[-1] == f"120000 transactions, {want.height} spikes"
