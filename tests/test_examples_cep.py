"""The pattern examples run as users run them (a subprocess, from another directory) and
print exactly the matches a brute-force scan of their input finds."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(script: str, cwd: Path) -> list[dict[str, str]]:
    """The console lines ``PREFIX key=value ...`` the example printed, as dicts."""
    proc = subprocess.run([sys.executable, str(EXAMPLES / script)], cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = []
    for line in proc.stdout.splitlines():
        _, *pairs = line.split(" ")
        rows.append(dict(p.split("=", 1) for p in pairs))
    return rows


def load(script: str) -> ModuleType:
    """Import an example for its data generator (its flow runs only under __main__)."""
    spec = importlib.util.spec_from_file_location(script.removesuffix(".py"), EXAMPLES / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fraud_small_then_large(tmp_path: Path) -> None:
    example = load("fraud_small_then_large.py")
    events = sorted(example.transactions(), key=lambda e: e["ts"])
    want = []
    for i, small in enumerate(events):
        if small["amount"] >= 1:
            continue
        large = next((e for e in events[i + 1:]
                      if e["card"] == small["card"] and e["amount"] > 500), None)
        if large is not None and large["ts"] - small["ts"] < timedelta(minutes=5):
            want.append({"card": small["card"], "small": str(small["amount"]),
                         "large": f"{large['amount']:g}", "at": large["ts"].strftime("%H:%M:%S"),
                         "after_s": f"{(large['ts'] - small['ts']).total_seconds():g}"})
    got = run("fraud_small_then_large.py", tmp_path)
    assert sorted(got, key=str) == sorted(want, key=str)
    assert {g["card"] for g in got} == {"card-07", "card-21"}  # the planted cases


def test_silent_devices(tmp_path: Path) -> None:
    example = load("silent_devices.py")
    events = sorted(example.readings(), key=lambda e: e["ts"])
    want = []
    for i, r in enumerate(events):
        nxt = next((e for e in events[i + 1:] if e["device"] == r["device"]), None)
        silent = nxt is None or nxt["ts"] - r["ts"] >= timedelta(seconds=60)
        if silent and r["ts"] <= example.END - timedelta(seconds=60):
            want.append({"device": r["device"], "last_reading": r["ts"].strftime("%H:%M:%S")})
    got = run("silent_devices.py", tmp_path)
    assert sorted(got, key=str) == sorted(want, key=str)
    assert [g["device"] for g in got] == ["meter-2", "meter-4"]
