"""``tidal topics``: create, list, describe and delete topics of the embedded log, and
produce to or consume from them on the command line (Kafka's console tools, no server).

Shared by the other log commands: the ``--log-dir`` option (:data:`LogDir`), opening the
log and a topic with one-line errors (:func:`open_log`, :func:`require_topic`), and
:func:`clean_errors`, which turns the errors users cause into a message and an exit code
instead of a traceback.
"""

from __future__ import annotations

import io
import os
import re
import select
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import orjson
import polars as pl
import pyarrow as pa
import typer

import tidal.log
from tidal._time import duration_ms, parse_iso8601
from tidal.errors import ConfigError, TidalError
from tidal.log import InvalidNameError, Log, Topic, UnknownTopicError
from tidal.log._log import DEFAULT_DIR, ENV_DIR
from tidal.log._settings import validate_name

__all__ = ["LogDir", "clean_errors", "open_log", "require_topic", "topics_app"]

topics_app = typer.Typer(
    help="Create, inspect, produce to and consume from topics of the embedded log.",
    no_args_is_help=True,
)

LogDir = Annotated[
    Path,
    typer.Option(
        "--log-dir", envvar=ENV_DIR, show_envvar=True, help="The log directory.",
    ),
]
"""The ``--log-dir`` option every log command takes (also ``$TIDAL_LOG_DIR``)."""

DEFAULT_LOG_DIR = Path(DEFAULT_DIR)
META_COLUMNS = ("offset", "partition")
POLL_INTERVAL_S = 0.2


class CommandError(Exception):
    """A mistake the user can fix; reported as one line, exit status ``code``."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@contextmanager
def clean_errors(command: str) -> Iterator[None]:
    """Report errors caused by input or state as ``tidal COMMAND: message`` and exit non-zero.

    Bad names and bad option values exit 2 (usage), everything else 1. Programming errors
    outside these types keep their traceback.
    """
    try:
        yield
    except CommandError as e:
        _fail(command, str(e), e.code)
    except (InvalidNameError, ConfigError) as e:
        _fail(command, str(e), 2)
    except (TidalError, ValueError, TypeError, OSError) as e:
        _fail(command, str(e), 1)


def _fail(command: str, message: str, code: int) -> None:
    typer.echo(f"tidal {command}: {message}", err=True)
    raise typer.Exit(code)


def open_log(log_dir: Path, *, create: bool = False) -> Log:
    """The log in ``log_dir``; unless ``create``, a folder that holds no log is an error."""
    if not create and not (log_dir / "topics").is_dir():
        raise CommandError(
            f"there is no log in {log_dir}; create a topic with `tidal topics create NAME` "
            f"or point --log-dir (or {ENV_DIR}) at an existing log"
        )
    return tidal.log.open(log_dir)


def require_topic(log: Log, name: str) -> Topic:
    """The topic ``name``, or a :class:`CommandError` that says how to create it."""
    validate_name(name)
    try:
        return log.topic(name)
    except UnknownTopicError:
        raise CommandError(
            f"no topic {name} in {log.path}; create it with `tidal topics create {name}`"
        ) from None


def _topic_in(log_dir: Path, name: str) -> tuple[Log, Topic]:
    validate_name(name)
    if not (log_dir / "topics").is_dir():
        raise CommandError(
            f"no topic {name} in {log_dir}; create it with `tidal topics create {name}`"
        )
    log = tidal.log.open(log_dir)
    try:
        return log, require_topic(log, name)
    except BaseException:
        log.close()
        raise


# -- create / list / describe / delete ----------------------------------------------------


class Fsync(StrEnum):
    """When appends reach stable storage."""

    batch = "batch"
    interval = "interval"
    never = "never"


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str, what: str = "size") -> int:
    """``"500MB"``, ``"1GiB"`` or plain ``"1048576"`` as a number of bytes.

    >>> parse_bytes("1.5KB"), parse_bytes("2MiB"), parse_bytes("42")
    (1500, 2097152, 42)
    """
    m = _SIZE.match(text)
    if m is None:
        raise ConfigError(
            f"bad {what} {text!r}: write a number of bytes, optionally with a unit "
            f"(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), for example '500MB'"
        )
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])


@topics_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Topic name: letters, digits, '.', '_', '-'.")],
    partitions: Annotated[int, typer.Option(min=1, help="Number of partitions.")] = 1,
    retention_bytes: Annotated[str | None, typer.Option(
        help="Keep at most this much per partition, e.g. 500MB (whole old segments go).")] = None,
    retention: Annotated[str | None, typer.Option(
        help="Delete segments whose newest row is older than this, e.g. 7d or 12h.")] = None,
    compact: Annotated[bool, typer.Option(
        "--compact", help="A changelog topic: compaction keeps the latest row per key.")] = False,
    fsync: Annotated[Fsync, typer.Option(help="When appends are fsynced.")] = Fsync.interval,
    log_dir: LogDir = DEFAULT_LOG_DIR,
) -> None:
    """Create topic NAME."""
    with clean_errors("topics create"):
        settings: dict[str, Any] = {"partitions": partitions, "compact": compact,
                                    "fsync": fsync.value}
        if retention_bytes is not None:
            settings["retention_bytes"] = parse_bytes(retention_bytes, "--retention-bytes")
        if retention is not None:
            settings["retention_ms"] = duration_ms(retention, "--retention")
        validate_name(name)
        with open_log(log_dir, create=True) as log:
            try:
                log.create_topic(name, **settings)
            except tidal.log.TopicExistsError:
                raise CommandError(f"topic {name} already exists in {log_dir}") from None
        typer.echo(f"created topic {name} with {partitions} partition"
                   f"{'s' if partitions != 1 else ''} in {log_dir}", err=True)


def _retention_text(settings: dict[str, Any]) -> str:
    parts = []
    if settings.get("retention_bytes") is not None:
        parts.append(f"{settings['retention_bytes']:,} B")
    if settings.get("retention_ms") is not None:
        parts.append(_ms_text(settings["retention_ms"]))
    return " / ".join(parts) or "forever"


def _ms_text(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _description_json(d: tidal.log.TopicDescription) -> dict[str, Any]:
    return {
        "name": d.name,
        "settings": {k: v for k, v in d.settings.items() if k not in ("name", "version")},
        "messages": sum(p.end_offset - p.start_offset for p in d.partitions),
        "size_bytes": d.size_bytes,
        "partitions": [
            {"partition": p.partition, "start_offset": p.start_offset,
             "end_offset": p.end_offset, "messages": p.end_offset - p.start_offset,
             "size_bytes": p.size_bytes, "segments": p.segments}
            for p in d.partitions
        ],
        "groups": [
            {"group": g.group, "total_lag": g.total_lag,
             "partitions": [{"partition": p, "committed": g.committed.get(p),
                             "lag": g.lag.get(p, 0)} for p in sorted(g.lag)]}
            for g in d.groups
        ],
    }


@topics_app.command("list")
def list_topics(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per topic.")] = False,
    log_dir: LogDir = DEFAULT_LOG_DIR,
) -> None:
    """Topics with their partitions, messages, size and retention."""
    from rich.console import Console
    from rich.table import Table

    with clean_errors("topics list"):
        if not (log_dir / "topics").is_dir():
            if not as_json:
                typer.echo(f"no topics in {log_dir}", err=True)
            return
        with open_log(log_dir) as log:
            descriptions = [_description_json(log.describe(n)) for n in log.topics()]
        if as_json:
            for d in descriptions:
                del d["partitions"]
                d["groups"] = [g["group"] for g in d["groups"]]
                typer.echo(orjson.dumps(d).decode())
            return
        if not descriptions:
            typer.echo(f"no topics in {log_dir}", err=True)
            return
        table = Table("topic", "partitions", "messages", "size", "retention", "compact",
                      "fsync", "groups")
        for d in descriptions:
            s = d["settings"]
            table.add_row(d["name"], str(s["partitions"]), f"{d['messages']:,}",
                          f"{d['size_bytes']:,} B", _retention_text(s),
                          "yes" if s["compact"] else "no", s["fsync"],
                          ", ".join(g["group"] for g in d["groups"]))
        Console().print(table)


@topics_app.command("describe")
def describe(
    name: Annotated[str, typer.Argument(help="The topic.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    log_dir: LogDir = DEFAULT_LOG_DIR,
) -> None:
    """Partitions (offsets, sizes, segments), settings, and each consumer group's lag."""
    from rich.console import Console
    from rich.table import Table

    with clean_errors("topics describe"):
        log, _ = _topic_in(log_dir, name)
        with log:
            d = _description_json(log.describe(name))
        if as_json:
            typer.echo(orjson.dumps(d, option=orjson.OPT_INDENT_2).decode())
            return
        s = d["settings"]
        console = Console()
        console.print(
            f"[bold]{name}[/]: {s['partitions']} partitions, {d['messages']:,} messages, "
            f"{d['size_bytes']:,} bytes; retention {_retention_text(s)}; "
            f"compact {'yes' if s['compact'] else 'no'}; fsync {s['fsync']}; "
            f"segments roll at {s['segment_bytes']:,} B",
            markup=True, highlight=False, soft_wrap=True,
        )
        t = Table("partition", "start offset", "end offset", "messages", "size", "segments",
                  title="partitions", title_justify="left")
        for p in d["partitions"]:
            t.add_row(str(p["partition"]), str(p["start_offset"]), str(p["end_offset"]),
                      f"{p['messages']:,}", f"{p['size_bytes']:,} B", str(p["segments"]))
        console.print(t)
        if not d["groups"]:
            console.print("no consumer group has committed offsets on this topic")
            return
        ends = {p["partition"]: p["end_offset"] for p in d["partitions"]}
        t = Table("group", "partition", "committed", "end offset", "lag",
                  title="consumer groups", title_justify="left")
        for g in d["groups"]:
            for p in g["partitions"]:
                committed = "-" if p["committed"] is None else str(p["committed"])
                t.add_row(g["group"], str(p["partition"]), committed,
                          str(ends[p["partition"]]), f"{p['lag']:,}")
            t.add_row(g["group"], "all", "", "", f"[bold]{g['total_lag']:,}[/]",
                      end_section=True)
        console.print(t)


@topics_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="The topic.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    log_dir: LogDir = DEFAULT_LOG_DIR,
) -> None:
    """Delete topic NAME, its data and every group's offsets on it."""
    with clean_errors("topics delete"):
        log, topic = _topic_in(log_dir, name)
        with log:
            messages = sum(topic.end_offset(p) - topic.start_offset(p)
                           for p in range(topic.partitions))
            if not yes:
                typer.confirm(f"Delete topic {name} ({messages:,} messages) from {log_dir}?",
                              abort=True, err=True)
            log.delete_topic(name)
        typer.echo(f"deleted topic {name} from {log_dir}", err=True)


# -- produce --------------------------------------------------------------------------------


class InputFormat(StrEnum):
    """How ``produce`` reads stdin."""

    json = "json"
    csv = "csv"
    text = "text"


def _line_batches(stream: BinaryIO, size: int) -> Iterator[tuple[int, list[bytes]]]:
    """Lines of ``stream`` in batches of at most ``size``, with the first line's number.

    A batch is also cut when the input pauses (nothing more to read right now), so lines
    typed or piped slowly are appended promptly rather than after ``size`` lines.
    """
    try:
        fd: int | None = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        fd = None
    number, batch = 1, []
    if fd is None:
        for line in stream:
            batch.append(line.rstrip(b"\r\n"))
            if len(batch) >= size:
                yield number, batch
                number, batch = number + len(batch), []
        if batch:
            yield number, batch
        return
    pending = b""
    while True:
        chunk = os.read(fd, 1 << 20)
        if chunk:
            pending += chunk
            lines = pending.split(b"\n")
            pending = lines.pop()
            batch.extend(line.rstrip(b"\r") for line in lines)
        while len(batch) >= size:
            yield number, batch[:size]
            number, batch = number + size, batch[size:]
        if not chunk:
            break
        if batch and not select.select([fd], [], [], 0)[0]:
            yield number, batch
            number, batch = number + len(batch), []
    if pending:
        batch.append(pending.rstrip(b"\r"))
    if batch:
        yield number, batch


class MalformedInput(CommandError):
    """A line of ``produce``'s input could not be parsed."""


def _parse_json(first: int, lines: list[bytes]) -> pl.DataFrame | None:
    keep = [line for line in lines if line.strip()]
    if not keep:
        return None
    try:
        return pl.read_ndjson(io.BytesIO(b"\n".join(keep)))
    except Exception as exc:  # polars names no line: find it on this, the slow, path
        for n, line in enumerate(lines, first):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                raise MalformedInput(
                    f"line {n}: not valid JSON ({e.msg} at column {e.colno}): {_excerpt(line)}"
                ) from None
            if not isinstance(value, dict):
                raise MalformedInput(
                    f"line {n}: expected a JSON object, got {type(value).__name__}: "
                    f"{_excerpt(line)}"
                ) from None
        raise MalformedInput(
            f"lines {first}-{first + len(lines) - 1}: cannot be read as one table ({exc})"
        ) from None


def _parse_csv(first: int, lines: list[bytes], header: bytes) -> pl.DataFrame | None:
    if not lines:
        return None
    try:
        return pl.read_csv(io.BytesIO(header + b"\n" + b"\n".join(lines)))
    except Exception as exc:
        import csv

        width = len(next(csv.reader([header.decode("utf-8", "replace")])))
        rows = csv.reader(line.decode("utf-8", "replace") for line in lines)
        for n, row in enumerate(rows, first):
            if len(row) > width:
                raise MalformedInput(
                    f"line {n}: {len(row)} fields, the header has {width}: "
                    f"{_excerpt(lines[n - first])}"
                ) from None
        raise MalformedInput(
            f"lines {first}-{first + len(lines) - 1}: not valid CSV ({exc})"
        ) from None


def _parse_text(first: int, lines: list[bytes]) -> pl.DataFrame:
    try:
        column = pa.array(lines, pa.binary()).cast(pa.string())
    except pa.ArrowInvalid:
        for n, line in enumerate(lines, first):
            try:
                line.decode()
            except UnicodeDecodeError as e:
                raise MalformedInput(f"line {n}: not UTF-8 ({e})") from None
        raise
    return pl.from_arrow(pa.table({"line": column}))  # type: ignore[return-value]


def _excerpt(line: bytes, width: int = 60) -> str:
    text = line.decode("utf-8", "replace")
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def _with_timestamp(frame: pl.DataFrame, column: str | None, first: int) -> pl.DataFrame:
    """Parse an ISO 8601 text timestamp column (the log wants integers or datetimes)."""
    if column is None or column not in frame.columns or frame[column].dtype != pl.String:
        return frame
    parsed = frame.select(parse_iso8601(column)).to_series()
    bad = (parsed.is_null() & frame[column].is_not_null()).arg_true()
    if len(bad):
        raise MalformedInput(
            f"row {first + bad[0]}: timestamp {frame[column][bad[0]]!r} in column {column!r} "
            f"is neither ISO 8601 nor epoch milliseconds"
        )
    return frame.with_columns(parsed)


@topics_app.command("produce")
def produce(
    name: Annotated[str, typer.Argument(help="The topic.")],
    key: Annotated[str | None, typer.Option(
        help="Field whose value picks the partition (murmur2, like Kafka).")] = None,
    input_format: Annotated[InputFormat, typer.Option(
        "--format", help="json: NDJSON; csv: with a header line; text: one column 'line'.",
    )] = InputFormat.json,
    timestamp: Annotated[str | None, typer.Option(
        help="Field holding the event time (epoch ms or ISO 8601), used by retention.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Lines per append.")] = 10_000,
    log_dir: LogDir = DEFAULT_LOG_DIR,
) -> None:
    """Append rows read from stdin to topic NAME: NDJSON (default), CSV or text lines.

    Rows are appended in batches; a malformed line stops the command with its line number
    and nothing of its batch is written (earlier batches stay appended).
    """
    with clean_errors("topics produce"):
        log, topic = _topic_in(log_dir, name)
        offsets: dict[int, list[int]] = {}
        count = 0
        try:
            with log:
                stream = sys.stdin.buffer
                header: bytes | None = None
                for first, lines in _line_batches(stream, batch_size):
                    if input_format is InputFormat.csv and header is None:
                        header, lines, first = lines[0], lines[1:], first + 1
                    if input_format is InputFormat.json:
                        frame = _parse_json(first, lines)
                    elif input_format is InputFormat.csv:
                        assert header is not None
                        frame = _parse_csv(first, lines, header)
                    else:
                        frame = _parse_text(first, lines)
                    if frame is None or frame.height == 0:
                        continue
                    frame = _with_timestamp(frame, timestamp, first)
                    result = topic.append_batch(frame, key=key, timestamp=timestamp)
                    count += result.count
                    for p, r in result.offsets.items():
                        span = offsets.setdefault(p, [r.first, r.last])
                        span[1] = r.last
        except MalformedInput as e:
            before = f" ({count:,} rows from earlier lines were appended)" if count else ""
            raise MalformedInput(f"{e}; nothing of its batch was written{before}") from None
        finally:
            if count:
                typer.echo(f"produced {count:,} rows to {name}: {_spans(offsets)}", err=True)
        if not count:
            typer.echo(f"produced 0 rows to {name} (no input)", err=True)


def _spans(offsets: dict[int, list[int]]) -> str:
    return ", ".join(f"partition {p} offsets {a}-{b}" for p, (a, b) in sorted(offsets.items()))


# -- consume --------------------------------------------------------------------------------


class OutputFormat(StrEnum):
    """How ``consume`` prints rows."""

    json = "json"
    table = "table"


_RECORD_COLUMNS = ["key", "value", "timestamp", "headers"]


def _json_lines(table: pa.Table, with_meta: bool) -> str:
    """Rows as NDJSON: Arrow rows as objects of their columns, record rows as their value."""
    if table.column_names[:4] == _RECORD_COLUMNS:
        return _record_lines(table, with_meta)
    if not with_meta:
        table = table.drop_columns([c for c in META_COLUMNS if c in table.column_names])
    frame: pl.DataFrame = pl.from_arrow(table)  # type: ignore[assignment]
    binary = [c for c, t in frame.schema.items() if t == pl.Binary]
    if binary:
        frame = frame.with_columns(pl.col(binary).bin.encode("base64"))
    return frame.write_ndjson()


def _record_lines(table: pa.Table, with_meta: bool) -> str:
    # Rows appended as records hold opaque bytes: a value that is JSON is printed as is,
    # other values as a JSON string (this per-row loop is the records' documented slow path).
    out = []
    cols = table.to_pydict()
    for i, value in enumerate(cols["value"]):
        try:
            orjson.loads(value)
            text = value.decode()
        except (orjson.JSONDecodeError, UnicodeDecodeError):
            text = orjson.dumps(value.decode("utf-8", "replace")).decode()
        if with_meta:
            k = cols["key"][i]
            meta = {"partition": cols["partition"][i], "offset": cols["offset"][i],
                    "timestamp": cols["timestamp"][i],
                    "key": None if k is None else k.decode("utf-8", "replace")}
            text = orjson.dumps(meta).decode()[:-1] + f',"value":{text}}}'
        out.append(text + "\n")
    return "".join(out)


def _print_tables(tables: list[pa.Table], console: Any) -> None:
    """One table per run of consecutive reads that share a schema."""
    run = [tables[0]]
    for t in tables[1:]:
        if t.schema.equals(run[0].schema, check_metadata=False):
            run.append(t)
        else:
            _print_table(pa.concat_tables(run), console)
            run = [t]
    _print_table(pa.concat_tables(run), console)


def _print_table(table: pa.Table, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    order = [c for c in ("partition", "offset") if c in table.column_names]
    order += [c for c in table.column_names if c not in META_COLUMNS]
    rich_table = Table(*order)
    columns = [table.column(c).to_pylist() for c in order]
    for row in zip(*columns, strict=True):
        rich_table.add_row(*(Text(_cell(v)) for v in row))
    console.print(rich_table)


def _cell(value: object, width: int = 80) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = value if isinstance(value, str) else str(value)
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= width else text[: width - 1] + "…"


@topics_app.command("consume")
def consume(
    name: Annotated[str, typer.Argument(help="The topic.")],
    from_beginning: Annotated[bool, typer.Option(
        "--from-beginning",
        help="Start at the oldest row (when the group has no committed offset).")] = False,
    group: Annotated[str | None, typer.Option(
        help="Consumer group: start at its committed offsets and commit after printing.")] = None,
    partition: Annotated[int | None, typer.Option(help="Read only this partition.")] = None,
    max_messages: Annotated[int | None, typer.Option(min=1, help="Stop after N rows.")] = None,
    exit_at_end: Annotated[bool, typer.Option(
        "--exit-at-end", help="Stop at the end offsets current at start.")] = False,
    output_format: Annotated[OutputFormat, typer.Option(
        "--format", help="json: one value per line; table: a table.")] = OutputFormat.json,
    with_meta: Annotated[bool, typer.Option(
        "--with-meta", help="Include partition and offset in JSON output.")] = False,
    log_dir: LogDir = DEFAULT_LOG_DIR,
) -> None:
    """Print rows of topic NAME; keeps polling for new rows until Ctrl-C unless told to stop.

    Like Kafka's console consumer: a group's committed offsets win; without them it starts
    at the end (only new rows) unless --from-beginning.
    """
    from rich.console import Console

    with clean_errors("topics consume"):
        if group is not None:
            validate_name(group, "group")
        log, topic = _topic_in(log_dir, name)
        console = Console()
        with log:
            parts = list(range(topic.partitions)) if partition is None else [partition]
            if partition is not None:
                topic._partition(partition)  # the library's error names the valid range
            committed = log.committed(group, name) if group is not None else {}
            positions = {
                p: committed.get(p, topic.start_offset(p) if from_beginning else topic.end_offset(p))
                for p in parts
            }
            stop_at = {p: topic.end_offset(p) for p in parts} if exit_at_end else None
            printed = 0
            try:
                while max_messages is None or printed < max_messages:
                    got, round_tables = 0, []
                    for p in parts:
                        want = 10_000 if max_messages is None else max_messages - printed
                        if stop_at is not None:
                            want = min(want, stop_at[p] - positions[p])
                        if want <= 0:
                            continue
                        table, positions[p] = _read(topic, p, positions[p], want)
                        if not table.num_rows:
                            continue
                        if output_format is OutputFormat.json:
                            sys.stdout.write(_json_lines(table, with_meta))
                            sys.stdout.flush()
                        else:
                            round_tables.append(table)
                        got += table.num_rows
                        printed += table.num_rows
                        if group is not None and output_format is OutputFormat.json:
                            log.commit(group, name, {p: positions[p]})
                    if round_tables:
                        _print_tables(round_tables, console)
                        if group is not None:
                            log.commit(group, name, {p: positions[p] for p in parts})
                    if stop_at is not None and all(positions[p] >= stop_at[p] for p in parts):
                        break
                    if not got:
                        time.sleep(POLL_INTERVAL_S)
            except KeyboardInterrupt:
                pass
            except BrokenPipeError:  # e.g. `| head`: stop quietly
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            typer.echo(f"consumed {printed:,} message{'s' if printed != 1 else ''}", err=True)


def _read(topic: Topic, partition: int, offset: int, max_rows: int) -> tuple[pa.Table, int]:
    try:
        return topic.read_arrow(partition, offset, max_rows)
    except tidal.log.OffsetOutOfRangeError:  # deleted by retention: go on from the oldest
        return topic.read_arrow(partition, topic.start_offset(partition), max_rows)
