"""IoT sensors: out-of-order readings, watermarks, lateness and per-device state.

    python examples/iot_sensors.py

Three devices report a temperature every second for one minute. The readings arrive out
of order: most up to 1.5 s late (the ``bounded_delay("2s")`` watermark absorbs that), one
8 s late (within ``allowed_lateness="5s"`` of its window, which is re-emitted corrected)
and two from a buffered outage 25 s late (too late: printed from ``late()``). One device,
``fridge-1``, stops reporting after 30 s. Output, printed:

- ``window``: per device and 10 s window, the number of readings and mean/max temperature;
- ``LATE``: readings that arrived after their window was closed for good;
- ``ALERT``: from ``update_state``, a device whose temperature rose by at least 1 degree
  three readings in a row, and a device silent for 10 s of event time (``timeout``; at the
  end of the input the final watermark times out every device).
"""

from __future__ import annotations

import random
from typing import Any

import polars as pl

import tidal as td

BASE = 1_767_225_600_000  # 2026-01-01T00:00:00Z in epoch milliseconds


def readings(seed: int = 1) -> list[dict[str, Any]]:
    """One minute of readings from three devices, in arrival order."""
    rng = random.Random(seed)
    events = []
    for s in range(60):
        for device, temp in (("boiler-1", 70.0), ("boiler-2", 65.0), ("fridge-1", 4.0)):
            if device == "fridge-1" and s >= 30:
                continue  # the fridge goes silent
            if device == "boiler-2" and 20 <= s <= 23:
                temp += 1.5 * (s - 19)  # overheating: rises 1.5 degrees a reading
            ts = BASE + s * 1_000 + rng.randrange(0, 200)
            arrival = ts + rng.randrange(0, 1_500)
            events.append({"device": device, "ts": ts,
                           "temp": round(temp + rng.uniform(-0.3, 0.3), 2), "arrival": arrival})
    late = {("boiler-1", 17): 8_000, ("boiler-1", 12): 25_000, ("boiler-2", 14): 25_000}
    for e in events:
        e["arrival"] += late.get((e["device"], (e["ts"] - BASE) // 1_000), 0)
    events.sort(key=lambda e: e["arrival"])
    for e in events:
        del e["arrival"]
    return events


def rising(key: tuple[Any, ...], rows: pl.DataFrame, state: td.KeyState) -> list[dict[str, Any]]:
    """Alert when a device's temperature rose >= 1 degree three readings in a row."""
    (device,) = key
    if state.timed_out:
        last_ts = state.get({}).get("ts")
        state.remove()  # forget the device; it starts afresh if it reports again
        return [{"alert": "silent for 10s", "ts": last_ts, "temps": []}]
    s = state.get({"ts": None, "temps": []})
    alerts = []
    for ts, temp in rows.sort("ts").select("ts", "temp").iter_rows():
        if s["ts"] is not None and ts <= s["ts"]:
            continue  # a reading older than one already seen: ignore it here
        temps = [*s["temps"], temp][-4:]
        s = {"ts": ts, "temps": temps}
        if len(temps) == 4 and all(b - a >= 1.0 for a, b in zip(temps[:-1], temps[1:], strict=True)):
            alerts.append({"alert": "temperature rising", "ts": ts, "temps": temps})
            s = {"ts": ts, "temps": [temp]}  # one alert per run of rises
    state.set(s)
    return alerts


flow = td.Flow("iot")
sensors = flow.source(td.sources.memory(readings()), timestamp="ts",
                      watermark=td.bounded_delay("2s"))

per_device = (
    sensors.key_by("device")
    .window(td.tumbling("10s"), allowed_lateness="5s", name="device_10s")
    .agg(n=td.agg.count(), mean_temp=td.agg.mean("temp"), max_temp=td.agg.max("temp"))
)
per_device.print("window ")
per_device.late().print("LATE ")

sensors.key_by("device").update_state(rising, timeout="10s", name="device_alerts").print("ALERT ")

if __name__ == "__main__":
    # small batches, as a live feed would deliver them: the watermark advances between them
    flow.run(max_batch_rows=6)
