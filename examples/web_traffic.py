"""Web traffic: per-page 10-second windows and per-user sessions over generated clicks.

    python examples/web_traffic.py

Input: 30,000 synthetic page views (``td.sources.generator("clicks")``, 500 per second of
event time, so one minute of traffic) with ``ts``, ``user``, ``page``, ``country``,
``status`` and ``latency_ms``. Output, printed:

- ``page`` lines: per page and 10 s window, the views, the server-error rate
  (status >= 500) and the mean and max latency;
- ``session`` lines: per user, sessions that end after 10 s without a click (only the
  busiest users' sessions, with at least 40 clicks, are printed).
"""

import polars as pl

import tidal as td

flow = td.Flow("web_traffic")
clicks = flow.source(
    td.sources.generator("clicks", rate=500, events=30_000, paced=False, seed=7),
    timestamp="ts", watermark=td.bounded_delay("1s"),
)

# vectorized: one Polars kernel per batch flags the server errors
flagged = clicks.with_columns(error=(pl.col("status") >= 500).cast(pl.Int64))

per_page = (
    flagged.key_by("page")
    .window(td.tumbling("10s"), name="page_10s")
    .agg(views=td.agg.count(), errors=td.agg.sum("error"), error_rate=td.agg.mean("error"),
         mean_latency_ms=td.agg.mean("latency_ms"), max_latency_ms=td.agg.max("latency_ms"))
)
per_page.print("page ")

sessions = (
    clicks.key_by("user")
    .window(td.session("10s"), name="user_sessions")
    .agg(clicks=td.agg.count(), pages=td.agg.count_distinct("page"),
         landing=td.agg.first("page"), exit=td.agg.last("page"))
)
sessions.filter(pl.col("clicks") >= 40).print("session ")

if __name__ == "__main__":
    flow.run(max_batch_rows=5_000)  # small batches: windows fire as event time passes
