"""V-shaped price moves per stock symbol with SQL MATCH_RECOGNIZE (Flink's ticker example).

    python examples/sql_match_recognize.py [--symbols N] [--ticks N]

Input: the ticker of Flink's MATCH_RECOGNIZE documentation (symbol ACME, one price a second
from 2011-04-01 10:00:00) followed by ``--symbols`` (default 3) synthetic symbols with
``--ticks`` (default 600) random-walk prices each, one a second, registered as the SQL table
``Ticker`` with ``rowtime`` as its event time. The query finds, per symbol, a price that falls
at least once and then rises above the second-to-last low, within an hour; each match skips
to its last row, as in Flink's documentation. Each match is printed as::

    v symbol=ACME start_tstamp=2011-04-01 10:00:04 bottom_tstamp=2011-04-01 10:00:07 end_tstamp=2011-04-01 10:00:08 drop=11

(``drop``: the start price minus the lowest price) and a last line counts the matches per
symbol: ``matches: ACME=1 S0=... S1=... S2=...``. ACME's single match is the one Flink
documents.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
from collections import Counter

import tidal as td

QUERY = """
SELECT * FROM Ticker MATCH_RECOGNIZE (
  PARTITION BY symbol
  ORDER BY rowtime
  MEASURES
    START_ROW.rowtime AS start_tstamp,
    LAST(PRICE_DOWN.rowtime) AS bottom_tstamp,
    LAST(PRICE_UP.rowtime) AS end_tstamp,
    START_ROW.price - MIN(PRICE_DOWN.price) AS `drop`
  ONE ROW PER MATCH
  AFTER MATCH SKIP TO LAST PRICE_UP
  PATTERN (START_ROW PRICE_DOWN+ PRICE_UP) WITHIN INTERVAL '1' HOUR
  DEFINE
    PRICE_DOWN AS
      (LAST(PRICE_DOWN.price, 1) IS NULL AND PRICE_DOWN.price < START_ROW.price) OR
      PRICE_DOWN.price < LAST(PRICE_DOWN.price, 1),
    PRICE_UP AS PRICE_UP.price > LAST(PRICE_DOWN.price, 1)
) MR
"""

ACME = [12, 17, 19, 21, 25, 18, 15, 14, 24, 25, 19]
START = dt.datetime(2011, 4, 1, 10, 0, 0)


def ticks(symbols: int, n: int, seed: int = 7) -> list[dict]:
    """ACME's documented ticks, then ``n`` random-walk ticks for each synthetic symbol."""
    rng = random.Random(seed)
    rows = [{"symbol": "ACME", "rowtime": START + dt.timedelta(seconds=i), "price": p}
            for i, p in enumerate(ACME)]
    for s in range(symbols):
        price = 100
        for i in range(n):
            price = max(1, price + rng.choice([-3, -2, -1, 1, 2, 3]))
            rows.append({"symbol": f"S{s}", "rowtime": START + dt.timedelta(seconds=i),
                         "price": price})
    rows.sort(key=lambda r: r["rowtime"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=3)
    parser.add_argument("--ticks", type=int, default=600)
    args = parser.parse_args()
    flow = td.Flow("v_shapes")
    ticker = flow.source(td.sources.memory(ticks(args.symbols, args.ticks)),
                         timestamp="rowtime", watermark=td.bounded_delay("2s"))
    flow.register_table("Ticker", ticker)
    out = td.sinks.memory()
    flow.sql(QUERY).sink(out)
    flow.run(quiet=True)
    for r in out.rows:
        print("v " + " ".join(f"{k}={v}" for k, v in r.items()))
    counts = Counter(r["symbol"] for r in out.rows)
    names = ["ACME", *(f"S{s}" for s in range(args.symbols))]
    print("matches: " + " ".join(f"{s}={counts[s]}" for s in names))


if __name__ == "__main__":
    main()
