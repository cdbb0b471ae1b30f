"""Several processes appending to one partition at once, and a lock-free reader watching."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import tidal.log
from tidal.log import Record

WRITER = textwrap.dedent(
    """
    import sys
    import tidal.log
    from tidal.log import Record

    path, name, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
    t = tidal.log.open(path).topic("t")
    print("ready", flush=True)
    assert sys.stdin.readline() == "go\\n"
    for i in range(batches):
        t.append([Record(f"{name}:{i}:{j}".encode()) for j in range(1 + i % 5)], partition=0)
    print("done", flush=True)
    """
)


def _parse(record):
    name, i, j = record.value.decode().split(":")
    return name, int(i), int(j)


def _check_prefix(rows, batches):
    """Offsets dense; each writer's appends in its order; no append split or interleaved."""
    assert [r.offset for r in rows] == list(range(len(rows)))
    parsed = [_parse(r) for r in rows]
    seen: dict[str, int] = {}
    k = 0
    while k < len(parsed):
        name, i, _ = parsed[k]
        assert i == seen.get(name, -1) + 1, f"{name} append {i} out of order"
        seen[name] = i
        size = 1 + i % 5
        assert parsed[k : k + size] == [(name, i, j) for j in range(size)]
        k += size
    return seen


def test_two_processes_appending_to_one_partition_lose_nothing(tmp_path, child_env):
    path = tmp_path / "log"
    with tidal.log.open(path) as lg:
        lg.create_topic("t", partitions=2, fsync="never")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    batches = 400
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(path), name, str(batches)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=child_env,
            text=True,
        )
        for name in ("a", "b")
    ]
    with tidal.log.open(path) as reader_log:
        reader = reader_log.topic("t")
        try:
            for p in procs:
                assert p.stdout.readline() == "ready\n"
            for p in procs:  # release both writers together
                p.stdin.write("go\n")
                p.stdin.flush()
            # read while they write: every read is a consistent, growing prefix
            reads = 0
            while any(p.poll() is None for p in procs) or reads == 0:
                rows = reader.read(0, 0, max_records=1_000_000)
                _check_prefix(rows, batches)
                reads += 1
            for p in procs:
                assert p.stdout.readline() == "done\n"
                assert p.wait() == 0
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        rows = reader.read(0, 0, max_records=1_000_000)
    per_writer = sum(1 + i % 5 for i in range(batches))
    assert len(rows) == 2 * per_writer
    assert _check_prefix(rows, batches) == {"a": batches - 1, "b": batches - 1}
    switches = sum(1 for x, y in zip(rows, rows[1:], strict=False) if x.value[:1] != y.value[:1])
    print(f"writers alternated {switches} times; reader checked {reads} snapshots")


def test_two_log_objects_in_one_process_share_the_lock(tmp_path):
    a = tidal.log.open(tmp_path)
    b = tidal.log.open(tmp_path)
    try:
        ta = a.create_topic("t")
        tb = b.topic("t")
        for i in range(50):
            ra = ta.append([Record(f"a:{i}:0".encode())])
            rb = tb.append([Record(f"b:{i}:0".encode())])
            assert rb.offsets[0].first == ra.offsets[0].first + 1
        rows = ta.read(0, 0, max_records=1000)
        assert len(rows) == 100
        assert [r.offset for r in rows] == list(range(100))
    finally:
        a.close()
        b.close()
