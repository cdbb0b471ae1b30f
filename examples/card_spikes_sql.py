"""Card spending spikes with a SQL OVER window, over generated card transactions.

    python examples/card_spikes_sql.py [--factor F]

Input: 120,000 synthetic card transactions (``td.sources.generator("transactions")``, 1,000
per second of event time over 10,000 cards), registered as the SQL table ``tx``. For every
transaction the query computes, over the card's last 11 transactions (this one and the 10
before it in event time: ``ROWS BETWEEN 10 PRECEDING AND CURRENT ROW``), the average amount
and the number of transactions. Rows come out in event-time order once the watermark has
passed them. A transaction more than ``--factor`` times (default 4) its window's average,
with at least 5 transactions in the window, is printed as a spike::

    spike card=card-01234 ts=2026-01-01T00:01:02.345000 amount=812.5 avg=120.43 n=9

and a last line counts them: ``120000 transactions, N spikes``.
"""

from __future__ import annotations

import argparse

import polars as pl

import tidal as td

QUERY = """
SELECT card, ts, amount, avg_amount, n
FROM (
  SELECT card, ts, amount,
         AVG(amount) OVER last11 AS avg_amount,
         COUNT(*) OVER last11 AS n
  FROM tx
  WINDOW last11 AS (PARTITION BY card ORDER BY ts ROWS BETWEEN 10 PRECEDING AND CURRENT ROW)
)
WHERE n >= 5 AND amount > {factor} * avg_amount
"""


def build(factor: float) -> tuple[td.Flow, td.Stream]:
    flow = td.Flow("card_spikes")
    tx = flow.source(
        td.sources.generator("transactions", rate=1_000, events=120_000, paced=False, seed=3),
        timestamp="ts", watermark=td.bounded_delay("500ms"),
    )
    flow.register_table("tx", tx)
    return flow, flow.sql(QUERY.format(factor=float(factor)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=float, default=4.0)
    args = parser.parse_args()
    flow, spikes = build(args.factor)
    found: list[pl.DataFrame] = []
    spikes.sink(td.sinks.callback(found.append, as_frame=True))
    flow.run(max_batch_rows=10_000, quiet=True)
    rows = pl.concat(found) if found else pl.DataFrame(schema=spikes.schema)
    for r in rows.iter_rows(named=True):
        print(f"spike card={r['card']} ts={r['ts'].isoformat()} amount={r['amount']} "
              f"avg={r['avg_amount']:.2f} n={r['n']}")
    print(f"120000 transactions, {rows.height} spikes")


if __name__ == "__main__":
    main()
