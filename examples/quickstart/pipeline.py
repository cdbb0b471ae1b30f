"""The README quickstart: bids above 1,000 per auction and 10-second window.

Reads bids.jsonl next to this file and writes out.jsonl next to it:

    python examples/quickstart/pipeline.py        # or: tidal run examples/quickstart/pipeline.py

Each output row holds ``auction``, ``window_start``, ``window_end``, ``n`` (how many bids
above 1,000) and ``top`` (the highest of them). Regenerate the input with make_data.py.
"""

from pathlib import Path

import polars as pl

import tidal as td

HERE = Path(__file__).resolve().parent

flow = td.Flow("bids")
bids = flow.source(td.sources.jsonl(HERE / "bids.jsonl"), timestamp="date_time",
                   watermark=td.bounded_delay("200ms"))
hot = (bids.filter(pl.col("price") > 1_000)
           .key_by("auction")
           .window(td.tumbling("10s"))
           .agg(n=td.agg.count(), top=td.agg.max("price")))
hot.sink(td.sinks.jsonl(HERE / "out.jsonl"))
flow.run()

if __name__ == "__main__":
    print(f"wrote {sum(1 for _ in open(HERE / 'out.jsonl'))} window rows to {HERE / 'out.jsonl'}")
