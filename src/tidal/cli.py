"""The ``tidal`` command."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Annotated

import typer

from tidal import __version__

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
) -> None:
    """Run a pipeline file. If the file builds a flow without running it, tidal runs it."""
    from tidal.api.flow import Flow, run_defaults

    if not file.exists():
        typer.echo(f"tidal run: no such file {str(file)!r}", err=True)
        raise typer.Exit(2)
    run_defaults.update(quiet=quiet, max_batch_rows=max_batch_rows)
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
) -> None:
    """A live demo: card transactions through windows and keyed state (Ctrl-C to stop)."""
    from tidal.demo import main as demo_main

    demo_main(duration=duration, rate=rate, quiet=quiet)


if __name__ == "__main__":  # pragma: no cover
    app()
