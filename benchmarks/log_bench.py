"""Throughput of the embedded log: Arrow batch append and read-back, 100-byte rows.

Run: ``.venv/bin/python benchmarks/log_bench.py [--rows N] [--dir PATH]``

Each row is about 100 bytes of Arrow data: an 8-character string key, an int64 epoch-ms
timestamp and a 76-byte binary value. Topics use ``fsync="interval"`` (the default).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

try:
    import tidal.log
except ModuleNotFoundError:  # running from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import tidal.log

VALUE_BYTES = 76


def make_table(rows: int, seed: int = 0) -> pa.Table:
    """``rows`` rows of ~100 bytes: key (8-char string), ts (int64), value (76 bytes)."""
    rng = np.random.default_rng(seed)
    keys = pa.array(np.char.mod("u%07d", rng.integers(0, 10_000_000, rows)).astype(object))
    data = pa.py_buffer(rng.integers(0, 256, rows * VALUE_BYTES, dtype=np.uint8).tobytes())
    offsets = pa.py_buffer(np.arange(0, (rows + 1) * VALUE_BYTES, VALUE_BYTES, dtype=np.int32))
    values = pa.Array.from_buffers(pa.binary(), rows, [None, offsets, data])
    ts = pa.array(1_700_000_000_000 + np.arange(rows, dtype=np.int64))
    return pa.table({"key": keys, "ts": ts, "value": values})


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def report(label: str, rows: int, nbytes: int, seconds: float) -> str:
    line = (
        f"{label:<44} {rows / seconds / 1e6:8.2f} M rows/s {nbytes / seconds / 1e6:9.0f} MB/s"
        f"   ({rows:,} rows in {seconds:.3f} s)"
    )
    print(line, flush=True)
    return line


def bench(root: Path, rows: int, repeats: int) -> list[str]:
    table = make_table(rows)
    nbytes = table.nbytes
    print(f"{rows:,} rows, {nbytes / rows:.0f} bytes/row of Arrow data, best of {repeats}\n")
    lines = []
    log = tidal.log.open(root)
    run = 0
    for batch_rows in (10_000, 100_000):
        batches = [table.slice(i, batch_rows) for i in range(0, rows, batch_rows)]
        best_append = best_read = float("inf")
        for _ in range(repeats):
            run += 1
            topic = log.create_topic(f"bench{run}", fsync="interval")

            def append(topic=topic, batches=batches):
                for b in batches:
                    topic.append_batch(b, key="key", timestamp="ts")

            best_append = min(best_append, timed(append))

            def read(topic=topic, batch_rows=batch_rows):
                offset, n = 0, 0
                while True:
                    got = topic.read_arrow(0, offset, max_rows=batch_rows)
                    if got.table.num_rows == 0:
                        break
                    n += got.table.num_rows
                    offset = got.next_offset
                assert n == rows, n

            best_read = min(best_read, timed(read))
            log.delete_topic(topic.name)
        lines.append(
            report(
                f"append_batch, 1 partition, {batch_rows:,}-row batches", rows, nbytes, best_append
            )
        )
        lines.append(
            report(f"read_arrow,   1 partition, {batch_rows:,}-row reads", rows, nbytes, best_read)
        )

    # fsync="batch": every append is on stable storage before it returns
    best = float("inf")
    batches = [table.slice(i, 100_000) for i in range(0, rows, 100_000)]
    for _ in range(repeats):
        run += 1
        topic = log.create_topic(f"bench{run}", fsync="batch")
        best = min(best, timed(lambda topic=topic: [topic.append_batch(b) for b in batches]))
        log.delete_topic(topic.name)
    lines.append(report('append_batch, fsync="batch", 100,000-row', rows, nbytes, best))

    # keyed: rows split over 8 partitions by murmur2 of the key, vectorized
    best = float("inf")
    batches = [table.slice(i, 100_000) for i in range(0, rows, 100_000)]
    for _ in range(repeats):
        run += 1
        topic = log.create_topic(f"bench{run}", partitions=8)
        best = min(
            best, timed(lambda topic=topic: [topic.append_batch(b, key="key") for b in batches])
        )
        log.delete_topic(topic.name)
    lines.append(report("append_batch, 8 partitions by key, 100,000-row", rows, nbytes, best))

    # the per-record API, for comparison (the documented slow path)
    n = min(rows, 200_000)
    records = [
        tidal.log.Record(v, key=k.encode(), timestamp=t)
        for k, t, v in zip(
            table.column("key").to_pylist()[:n],
            table.column("ts").to_pylist()[:n],
            table.column("value").to_pylist()[:n],
            strict=True,
        )
    ]
    topic = log.create_topic("records")
    chunks = [records[i : i + 1000] for i in range(0, n, 1000)]
    secs = timed(lambda: [topic.append(c) for c in chunks])
    lines.append(report("append(Record list), 1,000 per call", n, n * 100, secs))

    def read_records():
        offset, got = 0, 0
        while rs := topic.read(0, offset, max_records=10_000):
            got += len(rs)
            offset = rs[-1].offset + 1
        assert got == n

    lines.append(report("read() -> Records, 10,000 per call", n, n * 100, timed(read_records)))

    def read_records_arrow():
        offset, got = 0, 0
        while (r := topic.read_arrow(0, offset, max_rows=100_000)).table.num_rows:
            got += r.table.num_rows
            offset = r.next_offset
        assert got == n

    lines.append(
        report("read_arrow() of Record batches, 100,000", n, n * 100, timed(read_records_arrow))
    )
    log.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="log folder (default: a temp dir)")
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="tidal-log-bench-"))
    try:
        bench(root, args.rows, args.repeats)
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
