"""HTTP NDJSON ingest throughput of ``tidal serve``: records/s into a topic, server on one core.

Run: ``.venv/bin/python benchmarks/http_ingest_bench.py [--clients 4] [--records 10000]
[--seconds 10] [--core N] [--partitions 1] [--key]``

The server is ``tidal.serve.serve`` in a child process pinned to one CPU with
``os.sched_setaffinity`` (when the platform has it); client threads (httpx, keep-alive)
run in this process on the other CPUs and POST pre-built NDJSON bodies of ``--records``
records of about 100 bytes each. Every response is checked and the topic's end offsets
must equal the records acknowledged. The topic uses ``fsync="interval"``; the server
fsyncs before it answers, so every acknowledged record was on disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

try:
    import tidal.log
except ModuleNotFoundError:  # running from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import tidal.log

SRC = Path(__file__).resolve().parents[1] / "src"
TOPIC = "bench"


def make_body(records: int, seed: int) -> bytes:
    """``records`` NDJSON lines of about 100 bytes: user, ts, amount, a text note."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 100_000, records)
    amounts = rng.integers(1, 1_000_000, records) / 100
    lines = [
        b'{"user":"u%06d","ts":%d,"amount":%.2f,"note":"%s"}'
        % (u, 1_700_000_000_000 + i, a, b"x" * 35)
        for i, (u, a) in enumerate(zip(users.tolist(), amounts.tolist(), strict=True))
    ]
    return b"\n".join(lines) + b"\n"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), else 0."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(log_dir: Path, port: int, core: int | None) -> subprocess.Popen[bytes]:
    pin = f"os.sched_setaffinity(0, {{{core}}}); " if core is not None else ""
    code = (
        f"import os; {pin}from tidal.serve import serve; "
        f"serve(port={port}, log_dir={str(log_dir)!r})"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.1)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: argparse.Namespace, root: Path) -> None:
    log_dir = root / "log"
    with tidal.log.open(log_dir) as log:
        log.create_topic(TOPIC, partitions=args.partitions, fsync="interval")
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    core = args.core if args.core is not None else (cpus[-1] if len(cpus) > 1 else None)
    if core is not None and hasattr(os, "sched_setaffinity") and len(cpus) > 1:
        os.sched_setaffinity(0, set(cpus) - {core})  # clients stay off the server's core
    port = free_port()
    server = start_server(log_dir, port, core if hasattr(os, "sched_setaffinity") else None)
    url = f"http://127.0.0.1:{port}/topics/{TOPIC}" + ("?key=user" if args.key else "")
    bodies = [make_body(args.records, seed) for seed in range(4)]
    body_bytes = len(bodies[0])
    print(
        f"{args.clients} clients, bodies of {args.records:,} records "
        f"({body_bytes / args.records:.0f} bytes/record, {body_bytes / 1e6:.2f} MB), "
        f"{args.partitions} partition(s){', ?key=user' if args.key else ''}, "
        f"server pinned to CPU {core}, {args.seconds} s\n",
        flush=True,
    )
    headers = {"Content-Type": "application/x-ndjson"}
    acked = [0] * args.clients
    stop = threading.Event()
    errors: list[str] = []

    def client(i: int) -> None:
        with httpx.Client(timeout=60) as c:
            n = 0
            while not stop.is_set():
                r = c.post(url, content=bodies[(i + n) % len(bodies)], headers=headers)
                if r.status_code != 200 or not r.json()["durable"]:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                    return
                acked[i] += r.json()["count"]
                n += 1

    # warm up: imports, first topic access, page cache
    with httpx.Client(timeout=60) as c:
        for b in bodies:
            assert c.post(url, content=b, headers=headers).status_code == 200
    warm = len(bodies) * args.records
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed, cpu = time.perf_counter() - t0, cpu_seconds(server.pid) - cpu0
    server.terminate()
    server.wait(60)
    if errors:
        raise SystemExit(f"requests failed: {errors[:3]}")
    total = sum(acked)
    with tidal.log.open(log_dir) as log:
        t = log.topic(TOPIC)
        stored = sum(t.end_offset(p) for p in range(t.partitions))
    assert stored == total + warm, (stored, total + warm)
    print(f"records acknowledged : {total:,} in {elapsed:.2f} s ({total // args.records:,} requests)")
    print(f"throughput           : {total / elapsed / 1e3:,.0f} k records/s, "
          f"{total * body_bytes / args.records / elapsed / 1e6:,.1f} MB/s")
    if cpu:
        print(f"server CPU           : {cpu:.2f} s of one core ({cpu / elapsed:.0%}), "
              f"{total / cpu / 1e3:,.0f} k records per CPU-second")
    print(f"stored in the topic  : {stored:,} rows (warm-up included); all acknowledged, fsynced")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--records", type=int, default=10_000, help="records per body")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--core", type=int, default=None, help="CPU for the server (default: last)")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--key", action="store_true", help="partition by ?key=user")
    ap.add_argument("--dir", type=Path, default=None, help="log folder parent (default: temp)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tidal-http-bench-", dir=args.dir))
    try:
        run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
