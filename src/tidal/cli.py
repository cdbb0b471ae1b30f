"""The ``tidal`` command."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Annotated

import typer

from tidal import __version__
from tidal.commands import deadletters_app, topics_app
from tidal.commands.sql import sql_command

__all__ = ["app"]

app = typer.Typer(
    name="tidal", no_args_is_help=True, add_completion=False,
    help="tidal: real-time stream processing for Python.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tidal {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool | None, typer.Option("--version", callback=_version, is_eager=True,
                                                 help="Show the version and exit.")] = None,
) -> None:
    """tidal: real-time stream processing for Python."""


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="A Python file that builds (and may run) a flow.")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live status line.")] = False,
    max_batch_rows: Annotated[int, typer.Option(help="Largest micro-batch, in rows.")] = 100_000,
    checkpoint_dir: Annotated[Path | None, typer.Option(
        help="Checkpoint here and resume from here (exactly-once sinks).")] = None,
    checkpoint_interval: Annotated[str, typer.Option(help="How often to checkpoint.")] = "10s",
    from_savepoint: Annotated[Path | None, typer.Option(
        help="Start from this savepoint (needs --checkpoint-dir).")] = None,
    serve: Annotated[bool, typer.Option(
        "--serve", help="Also serve views, SQL, push, metrics and ingestion over HTTP.")] = False,
    host: Annotated[str, typer.Option(help="With --serve: address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="With --serve: HTTP port.")] = 8080,
    token: Annotated[str | None, typer.Option(
        envvar="TIDAL_TOKEN", help="With --serve: require 'Authorization: Bearer TOKEN'.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="With --serve: TLS certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="With --serve: TLS private key (PEM).")] = None,
) -> None:
    """Run a pipeline file. If the file builds a flow without running it, tidal runs it."""
    from tidal.api.flow import Flow, run_defaults

    if not file.exists():
        typer.echo(f"tidal run: no such file {str(file)!r}", err=True)
        raise typer.Exit(2)
    if from_savepoint is not None and checkpoint_dir is None:
        typer.echo("tidal run: --from-savepoint needs --checkpoint-dir", err=True)
        raise typer.Exit(2)
    run_defaults.update(quiet=quiet, max_batch_rows=max_batch_rows)
    if serve:
        from tidal.errors import ConfigError
        from tidal.serve.runner import check_options

        try:
            check_options(host, token, tls_cert, tls_key)
        except ConfigError as exc:
            typer.echo(f"tidal run: {exc}", err=True)
            raise typer.Exit(2) from None
        run_defaults.update(serve=True, host=host, port=port, token=token, tls_cert=tls_cert,
                            tls_key=tls_key)
    if checkpoint_dir is not None:
        run_defaults.update(checkpoint_dir=checkpoint_dir, checkpoint_interval=checkpoint_interval,
                            restore_from=from_savepoint)
    sys.path.insert(0, str(file.resolve().parent))
    ran: list[Flow] = []
    original = Flow.run

    def tracking_run(self: Flow, **kwargs):  # type: ignore[no-untyped-def]
        ran.append(self)
        return original(self, **kwargs)

    Flow.run = tracking_run  # type: ignore[method-assign]
    try:
        module = runpy.run_path(str(file), run_name="__main__")
    finally:
        Flow.run = original  # type: ignore[method-assign]
    if ran:
        return
    flows = [v for v in module.values() if isinstance(v, Flow)]
    if not flows:
        typer.echo(f"tidal run: {file} defines no td.Flow; create one, e.g. flow = td.Flow('x')",
                   err=True)
        raise typer.Exit(2)
    if len(flows) > 1:
        names = ", ".join(f.name for f in flows)
        typer.echo(f"tidal run: {file} defines several flows ({names}); call flow.run() on one",
                   err=True)
        raise typer.Exit(2)
    flows[0].run()


@app.command()
def demo(
    duration: Annotated[str | None, typer.Option(help="Stop after this long, e.g. 30s.")] = None,
    rate: Annotated[float, typer.Option(help="Transactions per second.")] = 20_000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live status line.")] = False,
    serve: Annotated[bool, typer.Option("--serve/--no-serve",
                                        help="Serve the live dashboard on 127.0.0.1.")] = True,
    port: Annotated[int, typer.Option(help="Dashboard port (a busy one is replaced by a free one).")] = 8080,
) -> None:
    """A live demo: card transactions through the embedded log, windows, keyed state, views on
    a live dashboard and alerts that fire and resolve (Ctrl-C to stop)."""
    from tidal.demo import main as demo_main

    demo_main(duration=duration, rate=rate, quiet=quiet, serve=serve, port=port)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8080,
    log_dir: Annotated[str | None, typer.Option(
        envvar="TIDAL_LOG_DIR", help="The embedded log's folder (default .tidal/log).")] = None,
    token: Annotated[str | None, typer.Option(
        envvar="TIDAL_TOKEN", help="Require 'Authorization: Bearer TOKEN' (needed off loopback).")] = None,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body accepted.")] = 64 << 20,
    tcp_port: Annotated[int | None, typer.Option(help="Also accept text lines on this TCP port.")] = None,
    tcp_topic: Annotated[str | None, typer.Option(help="Topic receiving the TCP lines.")] = None,
) -> None:
    """Serve HTTP ingestion into topics of the embedded log (POST /topics/NAME), and
    optionally a TCP line listener."""
    from tidal.errors import ConfigError
    from tidal.serve import serve as run_server

    try:
        run_server(host=host, port=port, log_dir=log_dir, max_body_bytes=max_body_bytes,
                   token=token, tcp_port=tcp_port, tcp_topic=tcp_topic)
    except ConfigError as exc:
        typer.echo(f"tidal serve: {exc}", err=True)
        raise typer.Exit(2) from None


checkpoints_app = typer.Typer(help="Inspect checkpoint directories.", no_args_is_help=True)
app.add_typer(checkpoints_app, name="checkpoints")
app.add_typer(topics_app, name="topics")
app.command("sql")(sql_command)
app.add_typer(deadletters_app, name="deadletters")


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@checkpoints_app.command("list")
def checkpoints_list(directory: Annotated[Path, typer.Argument(help="A checkpoint directory.")]) -> None:
    """Checkpoints and savepoints in DIRECTORY with their id, age, size and state sizes."""
    import time

    from rich.console import Console
    from rich.table import Table

    from tidal.state.checkpoint import CheckpointStore

    if not directory.is_dir():
        typer.echo(f"tidal checkpoints: {directory} is not a directory", err=True)
        raise typer.Exit(2)
    store = CheckpointStore(directory)
    table = Table("id", "kind", "age", "size", "operators", "sink rows", "path")
    points = [(cp, "checkpoint") for cp in store.checkpoints()]
    sp = directory / "savepoints"
    if sp.is_dir():
        points += [(cp, "savepoint") for cp in CheckpointStore(sp).checkpoints_in(sp)]
    now = time.time() * 1000
    for cp, kind in sorted(points, key=lambda p: p[0].id):
        m = cp.manifest
        table.add_row(str(cp.id), kind, f"{(now - m['created_ms']) / 1000:,.0f}s",
                      f"{_size(cp.path):,} B", str(len(m["operators"])),
                      str(sum(s["rows"] for s in m["sinks"].values())), str(cp.path))
    Console().print(table)


@checkpoints_app.command("inspect")
def checkpoints_inspect(
    path: Annotated[Path, typer.Argument(help="A checkpoint directory, or one checkpoint in it.")],
) -> None:
    """Sources' positions, watermarks and per-operator state size of a checkpoint (the newest
    usable one when given a checkpoint directory)."""
    from rich.console import Console
    from rich.table import Table

    from tidal._time import format_ms
    from tidal.state.checkpoint import MANIFEST, CheckpointError, CheckpointStore

    try:
        cp = (CheckpointStore.load(path) if (path / MANIFEST).exists()
              else CheckpointStore(path).latest(warn=lambda m: typer.echo(m, err=True)))
    except CheckpointError as exc:
        typer.echo(f"tidal checkpoints: {exc}", err=True)
        raise typer.Exit(1) from None
    if cp is None:
        typer.echo(f"tidal checkpoints: no checkpoint in {path}", err=True)
        raise typer.Exit(1)
    m = cp.manifest
    console = Console()
    console.print(f"[bold]checkpoint {cp.id}[/] of flow {m['flow']!r} at {cp.path} "
                  f"({_size(cp.path):,} bytes, written {format_ms(m['created_ms'])})")
    t = Table("source", "partition", "position", title="sources", title_justify="left")
    for src, parts in m["positions"].items():
        for part, pos in parts.items():
            t.add_row(src, part, str(pos))
    console.print(t)
    t = Table("operator", "state bytes", "watermark", "definition", title="operators",
              title_justify="left")
    for name, entry in m["operators"].items():
        t.add_row(name, f"{entry['size']:,}", format_ms(m["watermarks"].get(name)), entry["signature"])
    console.print(t)
    if m["sinks"]:
        t = Table("sink", "rows committed with this checkpoint", title="sinks", title_justify="left")
        for name, entry in m["sinks"].items():
            t.add_row(name, f"{entry['rows']:,}")
        console.print(t)


@app.command()
def savepoint(
    directory: Annotated[Path, typer.Argument(help="The running flow's checkpoint directory.")],
    wait: Annotated[float, typer.Option(help="Seconds to wait for the savepoint.")] = 60.0,
) -> None:
    """Ask the flow running on DIRECTORY to take a savepoint and stop (stop-with-savepoint)."""
    import os
    import re
    import signal
    import time

    lock = directory / "LOCK"
    holder = lock.read_text() if lock.exists() else ""
    m = re.search(r"pid (\d+)", holder)
    if m is None:
        typer.echo(f"tidal savepoint: no flow is running on {directory}", err=True)
        raise typer.Exit(1)
    sp = directory / "savepoints"
    before = set(sp.iterdir()) if sp.exists() else set()
    try:
        os.kill(int(m.group(1)), signal.SIGUSR1)
    except ProcessLookupError:
        typer.echo(f"tidal savepoint: the flow that held {directory} is gone", err=True)
        raise typer.Exit(1) from None
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        new = [p for p in (set(sp.iterdir()) if sp.exists() else set()) - before
               if (p / "MANIFEST").exists()]
        if new:
            typer.echo(str(new[0]))
            return
        time.sleep(0.1)
    typer.echo(f"tidal savepoint: no savepoint appeared within {wait:g}s", err=True)
    raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    app()
