"""Silent devices: no reading from a device for 60 s of event time.

    python examples/silent_devices.py

Input: ten minutes of readings from five devices, one every ~10 s, arriving up to 3 s out
of order (``bounded_delay("3s")``). ``meter-2`` has an outage from 02:00 to 04:30 and
then reports again; ``meter-4`` stops for good at 07:00. The detector is an *absence*
pattern, per device, in event time::

    td.pattern("reading", pl.col("kwh").is_not_null())
      .not_followed_by("next_reading", pl.col("kwh").is_not_null()).within("60s")

Every reading starts a partial match that fires when the watermark passes its time +
60 s with no later reading from that device; ``match_start`` is the last reading before
the silence. When the recording ends the final watermark would time out every device's
last reading too, so the example keeps only silences that began at least 60 s before
the end. Printed: ``SILENT device=... last_reading=...``.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import polars as pl

import tidal as td

START = datetime(2026, 1, 1, 0, 0, 0)
END = START + timedelta(minutes=10)


def readings(seed: int = 5) -> list[dict[str, Any]]:
    """Ten minutes of readings, in arrival order."""
    rng = random.Random(seed)
    events = []
    for d in range(5):
        t = rng.uniform(0, 10)
        while t < 600:
            outage = d == 2 and 120 <= t < 270
            stopped = d == 4 and t >= 420
            if not (outage or stopped):
                events.append({"device": f"meter-{d}", "kwh": round(rng.uniform(0.1, 2.0), 3),
                               "at": t, "arrival": t + rng.uniform(0, 3)})
            t += rng.uniform(8, 12)
    events.sort(key=lambda e: e.pop("arrival"))
    for e in events:
        e["ts"] = START + timedelta(seconds=round(e.pop("at"), 3))
    return events


def build(events: list[dict[str, Any]]) -> td.Flow:
    flow = td.Flow("silent_devices")
    s = flow.source(td.sources.memory(events), timestamp="ts", watermark=td.bounded_delay("3s"),
                    name="readings")
    reading = pl.col("kwh").is_not_null()
    silent = (td.pattern("reading", reading).not_followed_by("next_reading", reading)
              .within("60s"))
    found = s.key_by("device").match(silent, name="silent_60s")
    (found.filter(pl.col("match_start") <= END - timedelta(seconds=60))
     .select("device", last_reading=pl.col("match_start").dt.strftime("%H:%M:%S"))
     .print("SILENT "))
    return flow


def main() -> None:
    build(readings()).run(quiet=True, max_batch_rows=20, dead_letters_to_log=False)


if __name__ == "__main__":
    main()
