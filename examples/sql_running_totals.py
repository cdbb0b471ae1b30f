"""Running totals that reset every minute, and the top pages of every 10 seconds, in SQL.

    python examples/sql_running_totals.py

Input: 30,000 synthetic page views (``td.sources.generator("clicks")``, 500 per second of
event time, one minute of traffic), registered as the SQL table ``clicks``. Output, printed:

- ``running`` lines: per page, the views since the start of the minute, every 10 s
  (``CUMULATE`` windows: [0 s, 10 s), [0 s, 20 s), ..., [0 s, 60 s));
- ``top`` lines: the 3 pages with the most views of each 10 s window (window Top-N over a
  window aggregation), emitted once when the window ends.
"""

import tidal as td

flow = td.Flow("sql_running_totals")
clicks = flow.source(
    td.sources.generator("clicks", rate=500, events=30_000, paced=False, seed=7),
    timestamp="ts", watermark=td.bounded_delay("1s"),
)
flow.register_table("clicks", clicks)

running = flow.sql("""
  SELECT page, window_start, window_end, COUNT(*) AS views,
         COUNT(DISTINCT `user`) AS visitors
  FROM TABLE(CUMULATE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '10' SECOND, INTERVAL '1' MINUTE))
  GROUP BY page, window_start, window_end""")
running.print("running ")

top = flow.sql("""
  SELECT window_start, window_end, page, views, rn FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end
                                 ORDER BY views DESC, page) AS rn
    FROM (SELECT page, COUNT(*) AS views, window_start, window_end
          FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '10' SECOND))
          GROUP BY page, window_start, window_end))
  WHERE rn <= 3""")
top.print("top ")

flow.run(quiet=True)
