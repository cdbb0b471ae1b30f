"""The classic first program: keep the lines containing "error" from a TCP server.

Start a server that sends lines, run this program (it retries until the server is up),
then type lines into the server:

    nc -lk 9999                                   # terminal 1
    python examples/socket_errors.py              # terminal 2 (Ctrl-C to stop)

Options: ``--host``/``--port`` (default localhost:9999); ``--max-lines N`` stops after N
lines were read and ``--duration 10s`` after that long (both handy in tests).
"""

from __future__ import annotations

import argparse
import threading

import polars as pl

import tidal as td


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--max-lines", type=int, default=None,
                        help="stop after this many lines were read")
    parser.add_argument("--duration", default=None, help="stop after this long, e.g. 10s")
    args = parser.parse_args()

    flow = td.Flow("errors")
    lines = flow.source(td.sources.socket_text(args.host, args.port))
    lines.filter(pl.col("line").str.contains("error")).print()

    stop = threading.Event()
    if args.max_lines is not None:
        seen = 0

        def count(rows: list[dict]) -> None:
            nonlocal seen
            seen += len(rows)
            if seen >= args.max_lines:
                stop.set()

        lines.sink(td.sinks.callback(count), name="line_counter")
    flow.run(stop=stop, duration=args.duration)


if __name__ == "__main__":
    main()
