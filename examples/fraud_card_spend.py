"""Card fraud signals over generated transactions, written to SQLite.

    python examples/fraud_card_spend.py [--out DIR] [--min-tx N]

Input: 120,000 synthetic card transactions (``td.sources.generator("transactions")``,
1,000 per second of event time over 10,000 cards: two minutes of traffic). Two results go
to SQLite databases in ``--out`` (default: fraud_out/ next to this file, replaced on each
run), one database file per sink (two sqlite sinks on one file lock each other today):

- ``spend.db``, table ``card_spend``: per card, the running total spent and number of transactions,
  upserted by ``card`` (one row per card, always the latest value). ``ttl="1m"`` forgets a
  card after one minute of event time without a transaction, so state stays bounded.
- ``busy.db``, table ``busy_cards``: cards with more than ``--min-tx`` transactions (default 12) in a
  one-minute window sliding every 10 seconds, upserted by ``(card, window_start)``.

Then it prints the top spenders and the busiest cards read back from the database.
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

import polars as pl

import tidal as td

HERE = Path(__file__).resolve().parent


def build(out: Path, min_tx: int) -> td.Flow:
    flow = td.Flow("fraud")
    tx = flow.source(
        td.sources.generator("transactions", rate=1_000, events=120_000, paced=False, seed=3),
        timestamp="ts", watermark=td.bounded_delay("500ms"),
    )
    spend = tx.key_by("card").agg(spent=td.agg.sum("amount"), n=td.agg.count(), ttl="1m",
                                  name="card_spend")
    spend.sink(td.sinks.sqlite(out / "spend.db", table="card_spend", key="card"))

    busy = (
        tx.key_by("card")
        .window(td.sliding("1m", every="10s"), name="card_tx_1m")
        .agg(n=td.agg.count(), spent=td.agg.sum("amount"), merchants=td.agg.count_distinct("merchant"))
        .filter(pl.col("n") > min_tx)
    )
    busy.sink(td.sinks.sqlite(out / "busy.db", table="busy_cards", key=["card", "window_start"]))
    return flow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "fraud_out")
    parser.add_argument("--min-tx", type=int, default=12)
    args = parser.parse_args()
    for db in ("spend.db", "busy.db"):
        (args.out / db).unlink(missing_ok=True)

    build(args.out, args.min_tx).run(max_batch_rows=10_000)

    with sqlite3.connect(args.out / "spend.db") as conn:
        cards = conn.execute("SELECT count(*) FROM card_spend").fetchone()[0]
        print(f"card_spend: {cards} cards")
        for card, spent, n in conn.execute(
            "SELECT card, spent, n FROM card_spend ORDER BY spent DESC LIMIT 5"
        ):
            print(f"  top spender {card}: {spent:,.2f} in {n} transactions")
    with sqlite3.connect(args.out / "busy.db") as conn:
        rows = conn.execute("SELECT count(*), count(DISTINCT card) FROM busy_cards").fetchone()
        print(f"busy_cards: {rows[0]} windows, {rows[1]} cards with more than {args.min_tx} "
              "transactions in one minute")
        for card, start, end, n in conn.execute(
            "SELECT card, window_start, window_end, n FROM busy_cards ORDER BY n DESC, card LIMIT 5"
        ):
            print(f"  busy card {card}: {n} transactions in [{start}, {end})")
    print(f"results in {args.out}")


if __name__ == "__main__":
    main()
