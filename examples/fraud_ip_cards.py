"""Card fraud: more than 5 different cards used from one IP address within 10 minutes.

    python examples/fraud_ip_cards.py [--out DIR] [--min-cards N]

Input: one hour of synthetic card transactions (``td.sources.generator("transactions")``,
one every 2 seconds of event time; most IPs serve a few cards, ``10.0.0.7`` is shared by many).

1. ``key_by("ip").window(td.sliding("10m", every="1m"))`` counts the distinct cards of each
   IP in every 10-minute window, and a filter keeps the windows with more than
   ``--min-cards`` (default 5);
2. ``dedupe("ip", within="10m")`` keeps one alert per IP per 10 minutes (the overlapping
   windows of one burst would otherwise alert up to ten times);
3. ``lookup(td.table.from_frame(...), on="ip")`` adds who operates the address, from a
   reference table.

The alerts go to ``alerts.jsonl`` in ``--out`` (default: fraud_ip_out/ next to this file)
and a summary is printed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import polars as pl

import tidal as td

HERE = Path(__file__).resolve().parent
RATE, EVENTS, SEED = 0.5, 1_800, 5

NETWORKS = pl.DataFrame({
    "ip": [f"10.0.0.{i}" for i in range(251)],
    "network": ["cloud-hosting" if i == 7 else ("isp-north" if i % 2 else "isp-south")
                for i in range(251)],
})


def build(out: Path, min_cards: int) -> td.Flow:
    flow = td.Flow("fraud_ip")
    tx = flow.source(
        td.sources.generator("transactions", rate=RATE, events=EVENTS, paced=False, seed=SEED),
        timestamp="ts",
    )
    shared_ip = (
        tx.key_by("ip")
        .window(td.sliding("10m", every="1m"), name="cards_per_ip")
        .agg(cards=td.agg.count_distinct("card"), tx=td.agg.count(), spent=td.agg.sum("amount"))
        .filter(pl.col("cards") > min_cards)
    )
    alerts = (
        shared_ip.dedupe("ip", within="10m", name="one_alert_per_ip")
        .lookup(td.table.from_frame(NETWORKS), on="ip")
    )
    alerts.sink(td.sinks.jsonl(out / "alerts.jsonl"))
    return flow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "fraud_ip_out")
    parser.add_argument("--min-cards", type=int, default=5)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "alerts.jsonl").unlink(missing_ok=True)

    build(args.out, args.min_cards).run(quiet=True, max_batch_rows=1_000)

    alerts = [json.loads(line) for line in (args.out / "alerts.jsonl").read_text().splitlines()]
    ips = sorted({a["ip"] for a in alerts})
    print(f"{len(alerts)} alerts for {len(ips)} IPs with more than {args.min_cards} cards "
          "in 10 minutes")
    for a in sorted(alerts, key=lambda a: (-a["cards"], a["window_start"]))[:5]:
        print(f"  {a['ip']} ({a['network']}): {a['cards']} cards, {a['tx']} transactions in "
              f"[{a['window_start']}, {a['window_end']})")
    print(f"alerts in {args.out / 'alerts.jsonl'}")


if __name__ == "__main__":
    main()
