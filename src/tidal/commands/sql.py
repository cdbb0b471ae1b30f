"""``tidal sql``: run a Flink-dialect SQL script (``FILE.sql``, ``-e``, or piped on stdin), or
with none of them on a terminal, open the interactive shell (:mod:`tidal.commands.sql_shell`).

A top-level SELECT prints its rows to stdout: JSON lines when stdout is not a terminal, an
aligned table on a terminal (``--format jsonl|csv|table`` to choose). An updating result (a
GROUP BY without windows, a Top-N) prints its changes with a first ``op`` column, as Flink's
changelog does: ``+I`` a new key, ``+U`` a key's new row, ``-D`` a key's row deleted. On
bounded inputs the command ends when the input is exhausted and every window has fired.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, TextIO

import orjson
import polars as pl
import typer

from tidal.connectors.base import Sink

__all__ = ["sql_command"]


class _Printer(Sink):
    """Writes a query's rows to stdout as JSON lines, CSV or a plain table."""

    name = "stdout"

    def __init__(self, fmt: str, out: TextIO, key: list[str] | None = None) -> None:
        self.fmt, self.out, self.header = fmt, out, False
        self.key = key
        self.seen: set[tuple[object, ...]] = set()

    def _changelog(self, batch: pl.DataFrame) -> pl.DataFrame:
        """An updating result's rows with Flink's ``op`` first (``__delete`` folded in)."""
        from tidal.operators.changelog import DELETE

        deleted = batch[DELETE].fill_null(False).to_list() if DELETE in batch.columns else \
            [False] * batch.height
        keys = batch.select(self.key).rows() if self.key else [None] * batch.height
        ops = []
        for k, gone in zip(keys, deleted, strict=True):
            if gone:
                ops.append("-D")
                self.seen.discard(k)
            else:
                ops.append("+U" if k in self.seen and k is not None else "+I")
                self.seen.add(k)
        return batch.drop(DELETE, strict=False).insert_column(0, pl.Series("op", ops))

    def write(self, batch: pl.DataFrame) -> None:
        if not batch.height:
            return
        if self.key is not None:
            batch = self._changelog(batch)
        if self.fmt == "jsonl":
            for row in batch.iter_rows(named=True):
                self.out.write(orjson.dumps(row, default=str).decode() + "\n")
        elif self.fmt == "csv":
            self.out.write(_flat(batch).write_csv(include_header=not self.header))
            self.header = True
        else:
            with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_hide_dataframe_shape=True,
                           tbl_hide_column_data_types=True):
                self.out.write(f"{batch}\n")
        self.out.flush()


def _flat(batch: pl.DataFrame) -> pl.DataFrame:
    """``batch`` with its nested columns (ARRAY, ROW) as JSON text, which CSV can hold."""
    nested = [c for c, t in batch.schema.items() if t.is_nested()]
    return batch.with_columns(
        pl.Series(c, [None if v is None else orjson.dumps(v, default=str).decode()
                      for v in batch[c].to_list()], pl.String) for c in nested)


def sql_command(
    file: Annotated[Path | None, typer.Argument(
        help="A .sql script to run (none: stdin, or the interactive shell on a terminal).")] = None,
    execute: Annotated[str | None, typer.Option("--execute", "-e",
                                                help="Statements to run instead of a file.")] = None,
    format: Annotated[str | None, typer.Option(  # noqa: A002 - the option's name
        "--format", help="How SELECT rows print: jsonl, csv or table "
                         "(default: table on a terminal, else jsonl).")] = None,
    max_batch_rows: Annotated[int, typer.Option(help="Largest micro-batch, in rows.")] = 100_000,
    checkpoint_dir: Annotated[Path | None, typer.Option(
        help="Checkpoint here and, when it holds a checkpoint, resume from it (Flink's "
             "SET 'state.checkpoints.dir' in the script does the same).")] = None,
    checkpoint_interval: Annotated[str | None, typer.Option(
        help="How often to checkpoint (default 10s; SET "
             "'execution.checkpointing.interval' in the script).")] = None,
) -> None:
    """Run streaming SQL (Flink's dialect): CREATE TABLE/VIEW, INSERT INTO, SELECT, SHOW
    TABLES, DESCRIBE, EXPLAIN. With no FILE or -e, read the script from stdin, or on a
    terminal open an interactive shell with live results. With a checkpoint directory the
    job is fault tolerant: killed and started again with the same command, it resumes from
    its last checkpoint and its exactly-once sinks hold every result once. See docs/sql.md."""
    from tidal.api.flow import Flow
    from tidal.errors import TidalError
    from tidal.sql import session_for

    if file is not None and execute is not None:
        typer.echo("tidal sql: give a FILE.sql or -e \"STATEMENTS\", not both", err=True)
        raise typer.Exit(2)
    if file is None and execute is None:
        if sys.stdin.isatty():
            from tidal.commands.sql_shell import run_shell

            run_shell(max_batch_rows=max_batch_rows)
            return
        execute = sys.stdin.read()  # a script piped in: `echo "SELECT ...;" | tidal sql`
    if file is not None and not file.exists():
        typer.echo(f"tidal sql: no such file {str(file)!r}", err=True)
        raise typer.Exit(2)
    fmt = format or ("table" if sys.stdout.isatty() else "jsonl")
    if fmt not in ("jsonl", "csv", "table"):
        typer.echo(f"tidal sql: --format must be jsonl, csv or table, not {fmt!r}", err=True)
        raise typer.Exit(2)
    script = execute if execute is not None else file.read_text()  # type: ignore[union-attr]
    flow = Flow(file.stem.replace(" ", "_") if file is not None else "sql")
    try:
        results = session_for(flow).execute(flow, script)
        for r in results:
            if r.text is not None:
                typer.echo(r.text)
            if r.kind == "select" and r.stream is not None:
                key = (r.key or []) if r.updating else None
                r.stream.sink(_Printer(fmt, sys.stdout, key))
        if any(n.kind == "sink" for n in flow.nodes):
            flow.run(quiet=True, max_batch_rows=max_batch_rows,
                     **_checkpointing(session_for(flow).settings, checkpoint_dir,
                                      checkpoint_interval))
    except TidalError as exc:
        typer.echo(f"tidal sql: {exc}", err=True)
        raise typer.Exit(1) from None


def _checkpointing(settings: dict[str, str], directory: Path | None,
                   interval: str | None) -> dict[str, object]:
    """``flow.run`` arguments for checkpoints: the command's options, else the script's
    Flink settings ``state.checkpoints.dir`` and ``execution.checkpointing.interval``."""
    from tidal.errors import ConfigError
    from tidal.sql.joins import interval_ms_text

    where = directory or settings.get("state.checkpoints.dir")
    every = interval or settings.get("execution.checkpointing.interval")
    if where is None:
        if every is not None:
            raise ConfigError("checkpoints every " + every + " need a directory: SET "
                              "'state.checkpoints.dir' = 'file:///path' or --checkpoint-dir")
        return {}
    path = str(where).removeprefix("file://")
    ms = interval_ms_text(every, "execution.checkpointing.interval") if every is not None \
        else 10_000
    return {"checkpoint_dir": path, "checkpoint_interval": f"{ms}ms"}
