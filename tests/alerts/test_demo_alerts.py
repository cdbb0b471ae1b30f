"""The demo's alerts fire and resolve by themselves, deterministically, in event time."""

from __future__ import annotations

import io
import threading
import time

from rich.console import Console

import tidal.log
from tidal import demo

BASE_MS = 1_767_225_600_000  # the generator's default start of event time (not paced)
EVENTS = 2_000 * 38  # 38 s of event time at 2,000 transactions/s


def test_demo_spike_and_silence_fire_and_resolve_once_each(tmp_path):
    out = io.StringIO()
    flow = demo.build(rate=2_000, events=EVENTS, paced=False, log_dir=str(tmp_path),
                      console=Console(file=out, width=120), origin_ms=BASE_MS)
    stop = threading.Event()

    def stop_when_all_read() -> None:
        # the generator is bounded but the log source is not: stop once it has read it all
        last, since = -1, time.monotonic()
        while not stop.is_set():
            ex = flow.last_run
            steps = ex.metrics.steps if ex is not None else {}
            if "generator" in steps and steps["generator"].rows_in >= EVENTS:
                read = steps["transactions"].rows_in
                if read != last:
                    last, since = read, time.monotonic()
                elif time.monotonic() - since > 1.0:
                    stop.set()
            time.sleep(0.05)

    watcher = threading.Thread(target=stop_when_all_read, daemon=True)
    watcher.start()
    # batches of 0.5 s of event time, so the log's four partitions move forward together
    flow.run(quiet=True, duration="120s", stop=stop, log_dir=tmp_path,
             dead_letters_to_log=False, max_batch_rows=1_000)
    stop.set()
    watcher.join()
    with tidal.log.open(tmp_path) as log:
        rows = log.topic(demo.ALERTS_TOPIC).read_arrow(0, 0).table.to_pylist()
    def of(rule: str) -> list[tuple[str, str, int]]:
        return [(r["state"], r["key"], r["at"] - BASE_MS) for r in rows if r["rule"] == rule]

    electronics = '{"category": "electronics"}'
    # the window [5 s, 10 s) is 4/5 spike (pending), [10 s, 15 s) holds it for 5 s (firing);
    # [15 s, 20 s) is still 3/5 spike: the first normal window ends at 25 s
    assert of("electronics-spike") == [("firing", electronics, 14_999),
                                       ("resolved", electronics, 24_999)]
    (fired, _, fired_at), (resolved, _, resolved_at) = of("category-silent")
    assert (fired, resolved) == ("firing", "resolved")
    assert 22_990 <= fired_at <= 23_000  # the last travel purchase before 20 s, + 3 s
    assert 30_000 <= resolved_at <= 30_050  # the first one from 30 s
    assert len(rows) == 4
    text = out.getvalue()
    assert "ALERT FIRING electronics-spike category=electronics" in text
    assert "ALERT RESOLVED category-silent category=travel" in text
