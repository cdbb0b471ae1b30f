"""examples/fraud_ip_cards.py runs as users run it and alerts exactly where a batch
computation over the same generated transactions says it should."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl

from tidal.generators import transactions

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BASE_MS = 1_767_225_600_000  # td.sources.generator's default start, unpaced


def test_fraud_ip_cards_alerts_once_per_ip_and_10_minutes_on_more_than_5_cards(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLES / "fraud_ip_cards.py"), "--out", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    alerts = pl.read_ndjson(tmp_path / "alerts.jsonl").with_columns(
        pl.col("window_start", "window_end").str.to_datetime(time_unit="ms"))
    assert alerts.columns == ["ip", "window_start", "window_end", "cards", "tx", "spent", "network"]

    tx = transactions(5, 0, 1_800, BASE_MS, interval_us=2e6)
    minute, size = 60_000, 600_000
    t = pl.col("ts").dt.epoch("ms")
    flagged = (
        tx.with_columns(pl.int_ranges(t - t % minute - 9 * minute, t - t % minute + 1, minute).alias("ws"))
        .explode("ws").group_by("ip", "ws")
        .agg(cards=pl.col("card").n_unique().cast(pl.Int64), tx=pl.len().cast(pl.Int64))
        .filter(pl.col("cards") > 5).sort("ws", "ip")
    )
    # one alert per IP per 10 minutes: the first flagged window, then the next one whose
    # end is at least 10 minutes after the last alert's
    last: dict[str, int] = {}
    want = []
    for ip, ws, cards, n in flagged.iter_rows():
        if ip not in last or ws - last[ip] >= size:
            last[ip] = ws
            want.append((ip, ws, cards, n))
    got = alerts.select("ip", pl.col("window_start").dt.epoch("ms"), "cards", "tx").sort("window_start", "ip")
    assert got.rows() == sorted(want, key=lambda r: (r[1], r[0]))
    assert set(alerts["network"]) <= {"cloud-hosting", "isp-north", "isp-south"}
    assert (alerts.filter(pl.col("ip") == "10.0.0.7")["network"] == "cloud-hosting").all()
    assert f"{len(want)} alerts for {len(last)} IPs with more than 5 cards in 10 minutes" in proc.stdout
