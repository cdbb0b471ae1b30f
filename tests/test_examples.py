"""Every example in examples/ runs as users run it (a subprocess, from another directory)
and prints or writes what its docstring promises."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(args: list[str], cwd: Path, timeout: float = 30) -> str:
    """Run ``python args...`` in ``cwd``; return its standard output, failing on an error."""
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def lines(out: str, prefix: str) -> list[dict[str, str]]:
    """The console sink's ``prefix key=value ...`` lines as dicts (values stay text)."""
    rows = []
    for line in out.splitlines():
        if line.startswith(prefix):
            pairs = line[len(prefix):].split(" ")
            rows.append(dict(p.split("=", 1) for p in pairs if "=" in p))
    return rows


@pytest.mark.parametrize("command", [["{script}"], ["-m", "tidal.cli", "run", "--quiet", "{script}"]])
def test_quickstart_matches_a_batch_computation(tmp_path: Path, command: list[str]) -> None:
    import polars as pl

    script = EXAMPLES / "quickstart" / "pipeline.py"
    out_file = EXAMPLES / "quickstart" / "out.jsonl"
    out_file.unlink(missing_ok=True)
    out = run([c.format(script=script) for c in command], cwd=tmp_path)
    assert "wrote 91 window rows" in out
    got = pl.read_ndjson(out_file)
    assert got.columns == ["auction", "window_start", "window_end", "n", "top"]
    bids = pl.read_ndjson(EXAMPLES / "quickstart" / "bids.jsonl").with_columns(
        pl.col("date_time").str.to_datetime(time_unit="ms"))
    want = (bids.filter(pl.col("price") > 1_000)
            .group_by("auction", pl.col("date_time").dt.truncate("10s").alias("window_start"))
            .agg(n=pl.len().cast(pl.Int64), top=pl.col("price").max())
            .sort("auction", "window_start"))
    got = (got.with_columns(pl.col("window_start").str.to_datetime(time_unit="ms"))
           .select("auction", "window_start", "n", "top").sort("auction", "window_start"))
    assert got.equals(want)
    assert not (tmp_path / ".tidal").exists()  # no dead letters


def test_quickstart_data_is_reproducible(tmp_path: Path) -> None:
    bids = EXAMPLES / "quickstart" / "bids.jsonl"
    before = bids.read_bytes()
    run([str(EXAMPLES / "quickstart" / "make_data.py")], cwd=tmp_path)
    assert bids.read_bytes() == before
    first = json.loads(before.splitlines()[0])
    assert set(first) == {"auction", "bidder", "price", "date_time"}
    assert len(before.splitlines()) == 2_000


def test_web_traffic(tmp_path: Path) -> None:
    out = run([str(EXAMPLES / "web_traffic.py")], cwd=tmp_path)
    pages = lines(out, "page ")
    # 7 distinct pages x 6 ten-second windows over one minute of traffic
    assert len(pages) == 42
    assert {p["page"] for p in pages} == {"/", "/search", "/product", "/cart", "/checkout",
                                         "/login", "/help"}
    assert sum(int(p["views"]) for p in pages) == 30_000
    for p in pages:
        assert 0 <= float(p["error_rate"]) < 0.2
        assert abs(float(p["error_rate"]) - int(p["errors"]) / int(p["views"])) < 1e-5
        assert float(p["mean_latency_ms"]) <= int(p["max_latency_ms"])
    sessions = lines(out, "session ")
    assert sessions and all(int(s["clicks"]) >= 40 for s in sessions)
    assert all(s["window_start"] < s["window_end"] for s in sessions)


def test_fraud_card_spend(tmp_path: Path) -> None:
    out = run([str(EXAMPLES / "fraud_card_spend.py"), "--out", str(tmp_path), "--min-tx", "14"],
              cwd=tmp_path)
    assert "top spender card-" in out
    with sqlite3.connect(tmp_path / "spend.db") as conn:
        cards, total = conn.execute("SELECT count(*), sum(n) FROM card_spend").fetchone()
        dupes = conn.execute("SELECT count(*) - count(DISTINCT card) FROM card_spend").fetchone()[0]
    assert 9_000 < cards <= 10_000 and dupes == 0  # upsert: one row per card
    assert total <= 120_000
    with sqlite3.connect(tmp_path / "busy.db") as conn:
        rows = conn.execute("SELECT card, window_start, window_end, n FROM busy_cards").fetchall()
    assert rows and all(n > 14 for _, _, _, n in rows)
    assert f"busy_cards: {len(rows)} windows" in out


def test_iot_sensors(tmp_path: Path) -> None:
    out = run([str(EXAMPLES / "iot_sensors.py")], cwd=tmp_path)
    late = lines(out, "LATE ")
    assert sorted((r["device"], r["ts"]) for r in late) == [
        ("boiler-1", "1767225612140"), ("boiler-2", "1767225614145")]
    windows = lines(out, "window ")
    b1 = [int(w["n"]) for w in windows
          if w["device"] == "boiler-1" and w["window_start"] == "1767225610000"]
    assert b1 == [8, 9]  # fired without the 8 s late reading, then corrected within lateness
    alerts = lines(out, "ALERT ")
    rising = [a for a in alerts if a["alert"] == "temperature"]
    assert [a["device"] for a in rising] == ["boiler-2"]
    silent = [a["device"] for a in alerts if a["alert"] == "silent"]
    assert silent[0] == "fridge-1" and sorted(silent) == ["boiler-1", "boiler-2", "fridge-1"]


def test_socket_errors_prints_only_error_lines(tmp_path: Path) -> None:
    sent = ["GET / 200", "error: disk full", "all good", "another error here", "ERROR (upper case)",
            "done"]
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        server.settimeout(20)
        conn, _ = server.accept()
        with conn:
            for line in sent:
                conn.sendall(line.encode() + b"\n")
                time.sleep(0.02)
            time.sleep(0.2)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        out = run([str(EXAMPLES / "socket_errors.py"), "--host", "127.0.0.1", "--port", str(port),
                   "--max-lines", str(len(sent))], cwd=tmp_path, timeout=20)
    finally:
        thread.join(timeout=5)
        server.close()
    assert out.splitlines() == ["line=error: disk full", "line=another error here"]
