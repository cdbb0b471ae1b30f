"""examples/sql_match_recognize.py runs as users run it, and its matches equal a plain
left-to-right scan written from the query's definition."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sql_match_recognize.py"


def _module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("sql_match_recognize", EXAMPLE)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def v_shapes(prices: list[int]) -> list[tuple[int, int, int]]:
    """(start, bottom, end) row indexes of the query's matches over one symbol's prices:
    START, then PRICE_DOWN rows taken greedily (a row that is a PRICE_DOWN is never the
    PRICE_UP), then PRICE_UP; after a match the search resumes at its PRICE_UP row."""
    out, s = [], 0
    while s < len(prices):
        downs: list[int] = []
        j = s + 1
        while j < len(prices):
            p = prices[j]
            prev_down = prices[downs[-1]] if downs else None
            down = (p < prices[s]) if prev_down is None else p < prev_down
            if down:
                downs.append(j)
                j += 1
                continue
            second_last = prices[downs[-2]] if len(downs) >= 2 else None
            if second_last is not None and p > second_last:
                out.append((s, downs[-1], j))
            break
        if out and out[-1][0] == s:
            s = out[-1][2]
        else:
            s += 1
    return out


def test_example_prints_flink_documented_match_and_the_scan_results(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--symbols", "2", "--ticks", "300"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == ("v symbol=ACME start_tstamp=2011-04-01 10:00:04 bottom_tstamp=2011-04-01 "
                        "10:00:07 end_tstamp=2011-04-01 10:00:08 drop=11")
    rows = _module().ticks(2, 300)
    want = {}
    got_ends: dict[str, list[str]] = {}
    for line in lines[:-1]:
        fields = dict(re.findall(r"(\w+)=(.*?)(?= \w+=|$)", line.removeprefix("v ")))
        got_ends.setdefault(fields["symbol"], []).append(fields["start_tstamp"])
    for sym in ("ACME", "S0", "S1"):
        mine = [r for r in rows if r["symbol"] == sym]
        matches = v_shapes([r["price"] for r in mine])
        want[sym] = len(matches)
        assert got_ends.get(sym, []) == [str(mine[start]["rowtime"]) for start, _, _ in matches]
    assert lines[-1] == f"matches: ACME={want['ACME']} S0={want['S0']} S1={want['S1']}"
    assert want["S0"] > 5 and want["S1"] > 5
