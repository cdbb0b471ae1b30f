"""Key-lookup latency of ``GET /views/{name}/{key}`` under 200 concurrent clients, with the
pipeline running and updating the view.

Run: ``.venv/bin/python benchmarks/pull_query_bench.py [--clients 200] [--rate 2000]
[--seconds 10] [--events 20000] [--server-core 0]``

The server is ``flow.run(serve=True)`` in a child process (pinned to ``--server-core``
when the platform allows): a paced generator of ``--events`` card transactions per second
feeds ``key_by("card").agg(total=sum, n=count).to_view("card_totals", key="card")``
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

SERVER = """
import tidal as td
flow = td.Flow("pull_bench")
tx = flow.source(td.sources.generator("transactions", rate={events}), timestamp="ts")
tx.key_by("card").agg(total=td.agg.sum("amount"), n=td.agg.count()) \\
    .to_view("card_totals", key="card")
flow.run(serve=True, port={port}, quiet=True, dead_letters_to_log=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, events: int, core: int | None, home: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TIDAL_HOME": home,
           "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}

    def pin() -> None:
        if core is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {core})

    return subprocess.Popen([sys.executable, "-c", SERVER.format(events=events, port=port)],
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
                 errors: list[str]) -> None:
    loop = asyncio.get_running_loop()
    i = 0
    while True:
        if schedule is not None:
            if i >= len(schedule):
                return
            due = schedule[i]
            i += 1
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        else:
            due = loop.time()
            if due >= until:
                return
        card = rng.choice(cards)
        status, body = await conn.get(f"/views/{VIEW}/{card}")
        latencies.append(loop.time() - due)
        if status != 200 or json.loads(body)["row"]["card"] != card:
            errors.append(f"{status} {body[:200]!r}")


async def load(port: int, cards: list[str], clients: int, rate: float,
               seconds: float) -> dict[str, float]:
    conns = [await Connection.open(port) for _ in range(clients)]
    for c in conns[:10]:  # warm up
        await c.get(f"/views/{VIEW}/card-00001")
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    until = start + seconds
    schedules: list[list[float] | None] = [None] * clients
    if rate > 0:
        # one global fixed-rate schedule dealt round-robin to the clients
        times = start + np.arange(int(rate * seconds)) / rate
        schedules = [times[i::clients].tolist() for i in range(clients)]
    latencies: list[float] = []
    errors: list[str] = []
    began = time.perf_counter()
    await asyncio.gather(*(client(c, random.Random(i), cards, schedules[i], until, latencies,
                                  errors) for i, c in enumerate(conns)))
    elapsed = time.perf_counter() - began - 0.2
    for c in conns:
        c.close()
    if errors:
        raise SystemExit(f"{len(errors)} bad responses, e.g. {errors[0]}")
    ms = np.array(latencies) * 1000
    return {"requests": len(ms), "rps": len(ms) / elapsed, "p50": float(np.percentile(ms, 50)),
            "p90": float(np.percentile(ms, 90)), "p99": float(np.percentile(ms, 99)),
            "max": float(ms.max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--rate", type=float, default=2_000,
                    help="requests/s from all clients together (0: closed loop)")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--events", type=int, default=20_000, help="pipeline input events/s")
    ap.add_argument("--server-core", type=int, default=0)
    args = ap.parse_args()
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    server_core = args.server_core if len(cores) > 1 else None
    if server_core is not None:
        os.sched_setaffinity(0, cores - {server_core})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as home:
        proc = start_server(port, args.events, server_core, home)
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
            result = asyncio.run(load(port, cards, args.clients, args.rate, args.seconds))
            after = httpx.get(f"{url}/views").json()["views"][0]["seq"]
            metrics = httpx.get(f"{url}/metrics.json").json()
        finally:
            proc.terminate()
            proc.wait(30)
    mode = f"open loop at {args.rate:,.0f} req/s" if args.rate else "closed loop"
    print(f"pull query bench: {args.clients} clients, {mode}, {args.seconds:g} s; pipeline at "
          f"{args.events:,} events/s, server pinned to core {server_core}")
    print(f"  view updated {after - before:,} times during the run "
          f"({(after - before) / args.seconds:,.0f} changes/s; "
          f"{metrics['events_in']:,} events in)")
    print(f"  {result['requests']:,} key lookups, {result['rps']:,.0f} req/s; latency ms: "
          f"p50 {result['p50']:.2f}  p90 {result['p90']:.2f}  p99 {result['p99']:.2f}  "
          f"max {result['max']:.2f}")
    goal = "met" if result["p99"] < 20 else "MISSED"
    print(f"  goal p99 < 20 ms: {goal}")


if __name__ == "__main__":
    main()
