"""Crash safety: a writer killed with SIGKILL at random moments loses no acknowledged append.

The child appends batches with ``fsync="batch"`` and prints each acknowledged offset
range; the parent kills it at a random point (often in the middle of a large write),
starts the next child on the same log, and finally checks the whole partition.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time

import orjson

import tidal.log

CHILD = textwrap.dedent(
    """
    import logging
    import sys
    import pyarrow as pa
    import tidal.log
    from tidal.log import Record

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    path, run = sys.argv[1], int(sys.argv[2])
    log = tidal.log.open(path)
    t = log.create_topic("t", fsync="batch", segment_bytes=1 << 20, exist_ok=True)
    print("ready", flush=True)
    pad = "p" * 3000
    n = 64
    seq = 0
    while True:
        if seq % 2:
            res = t.append_batch(
                pa.table({"run": [run] * n, "seq": [seq] * n, "j": list(range(n)), "pad": [pad] * n})
            )
        else:
            res = t.append([Record(f"{run}:{seq}:{j}:{pad}".encode()) for j in range(n)])
        r = res.offsets[0]
        assert res.durable
        print(seq, r.first, r.last, flush=True)
        seq += 1
    """
)
ROWS_PER_APPEND = 64


def _row(record):
    if record.value.startswith(b"{"):
        d = orjson.loads(record.value)
        return d["run"], d["seq"], d["j"]
    run, seq, j, _ = record.value.split(b":", 3)
    return int(run), int(seq), int(j)


def test_sigkill_at_random_moments_loses_no_acknowledged_append(tmp_path, child_env):
    rng = random.Random(1234)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    path = tmp_path / "log"
    acked: dict[int, list[tuple[int, int, int]]] = {}
    iterations = 20
    torn_tails_repaired = 0
    for run in range(iterations):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path), str(run)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env,
            text=True,
        )
        acked[run] = []
        try:
            assert proc.stdout.readline() == "ready\n"
            for _ in range(rng.randrange(0, 25)):
                seq, first, last = map(int, proc.stdout.readline().split())
                acked[run].append((seq, first, last))
            time.sleep(rng.random() * 0.01)  # not synchronization: vary the kill point
        finally:
            proc.send_signal(signal.SIGKILL)
            # read through the text wrappers, not communicate(): readline() above may have
            # buffered acks that communicate() (reading the raw pipes) would never see
            out, err = proc.stdout.read(), proc.stderr.read()
            proc.wait()
        torn_tails_repaired += err.count("truncating")
        # acks printed before the kill landed; a kill in the middle of a print leaves a
        # line without its newline, which was never an ack (and may parse as a wrong one)
        for line in out.split("\n")[:-1]:
            seq, first, last = map(int, line.split())
            acked[run].append((seq, first, last))
        assert proc.returncode == -signal.SIGKILL

    with tidal.log.open(path) as lg:
        t = lg.topic("t")
        rows, offset = [], 0
        while batch := t.read(0, offset, max_records=5000):
            rows += batch
            offset = batch[-1].offset + 1
    # offsets are dense: nothing lost in the middle, nothing duplicated
    assert [r.offset for r in rows] == list(range(len(rows)))
    by_offset = {r.offset: _row(r) for r in rows}
    # every acknowledged append is there, whole, at the offsets it was acknowledged with
    total_acked = 0
    for run, acks in acked.items():
        for seq, first, last in acks:
            assert last - first + 1 == ROWS_PER_APPEND
            assert [by_offset[o] for o in range(first, last + 1)] == [
                (run, seq, j) for j in range(ROWS_PER_APPEND)
            ]
            total_acked += 1
    assert total_acked > iterations  # the test really exercised appends
    # the log is exactly the runs in order, each a prefix of its appends: acknowledged ones
    # plus at most one whose ack was lost to the kill, never a partial append
    expected = []
    for run, acks in acked.items():
        present = sorted({s for (r, s, _) in by_offset.values() if r == run})
        assert present == list(range(len(present)))
        assert len(acks) <= len(present) <= len(acks) + 1
        expected += [(run, s, j) for s in present for j in range(ROWS_PER_APPEND)]
    assert [by_offset[o] for o in range(len(rows))] == expected
    print(
        f"{iterations} kills, {total_acked} acknowledged appends, "
        f"{torn_tails_repaired} torn tails truncated on reopen"
    )
