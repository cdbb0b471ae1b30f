"""The q10 pipeline the filesystem chaos test kills again and again (run as a script).

queries/nexmark/q10.sql over generated bids -> the partitioned filesystem sink in ARGV[1],
checkpointing every step into ARGV[1]/../ck. With TIDAL_CHAOS_SELF_KILL=p the process SIGKILLs
itself with probability p just before and just after each write of the sink's record: between
appending rows and recording them, between recording rolled files and renaming them, between
rolling a committed partition and writing its _SUCCESS.
"""

from __future__ import annotations

import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

import tidal as td
from tidal.connectors import partitioned
from tidal.sql.nexmark import ddl

out = Path(sys.argv[1])
events, rate = int(sys.argv[2]), int(sys.argv[3])
self_kill = float(os.environ.get("TIDAL_CHAOS_SELF_KILL", "0"))
rng = random.Random(os.environ.get("TIDAL_CHAOS_SEED"))
real_write = partitioned.write_json_atomic


def maybe_die(where: str) -> None:
    if rng.random() < self_kill:
        print(f"self-kill {where}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


def write_record(path: Path, data: Any) -> None:
    maybe_die("before the sink's record")
    real_write(path, data)
    maybe_die("after the sink's record")


partitioned.write_json_atomic = write_record
query = (Path(__file__).resolve().parents[2] / "queries" / "nexmark" / "q10.sql").read_text()
flow = td.Flow("q10")
flow.sql(ddl(events=events, rate=rate, out_of_order_group=100, kinds=("bid",)))
flow.sql(query.replace("file:///tmp/nexmark/q10/bid/", f"file://{out}/"))
flow.run(quiet=True, max_batch_rows=499, checkpoint_dir=out.parent / "ck", checkpoint_interval="1ms")
print("finished", flush=True)
