"""Key-lookup latency of ``GET /views/{name}/{key}`` under 200 concurrent clients, with the
pipeline running and updating the view.

Run: ``.venv/bin/python benchmarks/pull_query_bench.py [--clients 200] [--rate 2000]
[--seconds 10] [--events 20000] [--server-core 0]``

The server is ``flow.run(serve=True)`` in a child process (pinned to ``--server-core``
when the platform allows): ``--events`` card transactions per second, arriving in batches
every ``--tick-ms`` ms (as a broker hands out fetches; ``td.sources.generator`` would wake
the loop for every single event), feed ``key_by("card").agg(total=sum, n=count).to_view("card_totals", key="card")``
(10,000 cards), so the view changes every few milliseconds while it is read. Lookups ask
for the cards in the view when the load starts (half of them at least).

The load runs in this process on the other cores: ``--clients`` keep-alive HTTP/1.1
connections (a minimal asyncio client, so the client's own cost stays small), each asking
for a random card.

- ``--rate R`` (open loop): the clients together send R requests/s on a fixed schedule;
  a request's latency is measured from the time it *should* have been sent, so a slow
  server cannot hide its queueing (no coordinated omission).
- ``--rate 0`` (closed loop): every client sends its next request as soon as the previous
  answer arrives: the server's saturation throughput, and the latency that queueing at
  saturation gives.

Every response is checked (status 200, the card asked for).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"
CARDS = 10_000
VIEW = "card_totals"
SWITCH = float(os.environ.get("SWITCH", "0.005"))

SERVER = """
import sys, time
import tidal as td
from tidal.connectors.base import Source, SourcePartition
from tidal.generators import transactions

sys.setswitchinterval({switch})


class Ticks(SourcePartition):
    # {events} transactions/s released every {tick_ms} ms, as a broker fetch would hand them
    def __init__(self):
        self.k, self.start = 0, time.monotonic()

    def poll(self, max_rows):
        due = min(max_rows, int((time.monotonic() - self.start) * {events}) - self.k)
        if due < {events} * {tick_ms} / 1000:
            return None
        out = transactions(0, self.k, due, int(time.time() * 1000), 1e6 / {events})
        self.k += due
        return out

    def next_awake(self):
        return self.start + (self.k + {events} * {tick_ms} / 1000) / {events}

    def position(self):
        return self.k


class TickSource(Source):
    name = "transactions"

    def partitions(self):
        return ["0"]

    def open(self, partition, position, ctx):
        return Ticks()


flow = td.Flow("pull_bench")
tx = flow.source(TickSource(), timestamp="ts")
tx.key_by("card").agg(total=td.agg.sum("amount"), n=td.agg.count()) \\
    .to_view("card_totals", key="card")
flow.run(serve=True, port={port}, quiet=True, dead_letters_to_log=False)
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), else 0."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, events: int, tick_ms: int, core: int | None,
                 home: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TIDAL_HOME": home,
           "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}

    def pin() -> None:
        if core is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {core})

    return subprocess.Popen([sys.executable, "-c", SERVER.format(events=events, port=port, switch=SWITCH, tick_ms=tick_ms)],
                            env=env, preexec_fn=pin)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            body = httpx.get(f"{url}/views", timeout=2).json()
            if body["views"] and body["views"][0]["rows"] >= CARDS // 2:
                return
        except (httpx.HTTPError, KeyError, IndexError, ValueError):
            pass
        time.sleep(0.2)
    raise SystemExit("the view did not fill up in time")


class Connection:
    """One keep-alive HTTP/1.1 connection that sends GETs and reads the answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def get(self, path: str) -> tuple[int, bytes]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def client(conn: Connection, rng: random.Random, cards: list[str],
                 schedule: list[float] | None, until: float, latencies: list[float],
                 lags: list[float], errors: list[str]) -> None:
    clock = time.perf_counter  # the event loop's clock may tick in whole milliseconds
    i = 0
    while True:
        if schedule is not None:
            if i >= len(schedule):
                return
            due = schedule[i]
            i += 1
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
        else:
            due = clock()
            if due >= until:
                return
        card = rng.choice(cards)
        lags.append(clock() - due)  # the client's own lateness (scheduling, load)
        status, body = await conn.get(f"/views/{VIEW}/{card}")
        latencies.append(clock() - due)
        if status != 200 or json.loads(body)["row"]["card"] != card:
            errors.append(f"{status} {body[:200]!r}")


async def load(port: int, cards: list[str], clients: int, rate: float,
               seconds: float) -> dict[str, float]:
    conns = [await Connection.open(port) for _ in range(clients)]
    for c in conns[:10]:  # warm up
        await c.get(f"/views/{VIEW}/card-00001")
    start = time.perf_counter() + 0.2
    until = start + seconds
    schedules: list[list[float] | None] = [None] * clients
    if rate > 0:
        # one global fixed-rate schedule dealt round-robin to the clients
        times = start + np.arange(int(rate * seconds)) / rate
        schedules = [times[i::clients].tolist() for i in range(clients)]
    latencies: list[float] = []
    lags: list[float] = []
    errors: list[str] = []
    began = time.perf_counter()
    await asyncio.gather(*(client(c, random.Random(i), cards, schedules[i], until, latencies,
                                  lags, errors) for i, c in enumerate(conns)))
    elapsed = time.perf_counter() - began - 0.2
    for c in conns:
        c.close()
    if errors:
        raise SystemExit(f"{len(errors)} bad responses, e.g. {errors[0]}")
    ms = np.array(latencies) * 1000
    return {"requests": len(ms), "rps": len(ms) / elapsed, "p50": float(np.percentile(ms, 50)),
            "p90": float(np.percentile(ms, 90)), "p99": float(np.percentile(ms, 99)),
            "max": float(ms.max()), "lag_p99": float(np.percentile(np.array(lags) * 1000, 99))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--rate", type=float, default=2_000,
                    help="requests/s from all clients together (0: closed loop)")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--events", type=int, default=20_000, help="pipeline input events/s")
    ap.add_argument("--tick-ms", type=int, default=10,
                    help="the input arrives in batches this often")
    ap.add_argument("--server-core", type=int, default=0, help="-1: do not pin")
    args = ap.parse_args()
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    server_core = args.server_core if len(cores) > 1 and args.server_core >= 0 else None
    if server_core is not None:
        os.sched_setaffinity(0, cores - {server_core})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as home:
        proc = start_server(port, args.events, args.tick_ms, server_core, home)
        try:
            wait_ready(url, proc)
            before = httpx.get(f"{url}/views").json()["views"][0]["seq"]
            # keys that exist: the ones in the view now (it only grows)
            cards = [r["card"] for r in httpx.get(
                f"{url}/views/{VIEW}", params={"limit": CARDS}).json()["rows"]]
            try:
                import uvloop  # type: ignore[import-not-found]

                uvloop.install()
            except ImportError:
                pass
            cpu_before = cpu_seconds(proc.pid)
            result = asyncio.run(load(port, cards, args.clients, args.rate, args.seconds))
            server_cpu = cpu_seconds(proc.pid) - cpu_before
            after = httpx.get(f"{url}/views").json()["views"][0]["seq"]
            metrics = httpx.get(f"{url}/metrics.json").json()
        finally:
            proc.terminate()
            proc.wait(30)
    mode = f"open loop at {args.rate:,.0f} req/s" if args.rate else "closed loop"
    print(f"pull query bench: {args.clients} clients, {mode}, {args.seconds:g} s; pipeline at "
          f"{args.events:,} events/s every {args.tick_ms} ms, server pinned to core {server_core}")
    print(f"  view updated {after - before:,} times during the run "
          f"({(after - before) / args.seconds:,.0f} changes/s; "
          f"{metrics['events_in']:,} events in)")
    print(f"  {result['requests']:,} key lookups, {result['rps']:,.0f} req/s; latency ms: "
          f"p50 {result['p50']:.2f}  p90 {result['p90']:.2f}  p99 {result['p99']:.2f}  "
          f"max {result['max']:.2f}")
    print(f"  server process CPU during the load: {server_cpu:.1f} s "
          f"({server_cpu / args.seconds:.0%} of a core; pipeline and HTTP together)")
    print(f"  client-side send lateness p99 {result['lag_p99']:.2f} ms (included above)")
    goal = "met" if result["p99"] < 20 else "MISSED"
    print(f"  goal p99 < 20 ms: {goal}")


if __name__ == "__main__":
    main()
