"""``tidal deadletters``: inspect a pipeline's dead letters and replay them once fixed.

A pipeline's dead letters are rows of the log topic ``<pipeline>.dead-letters`` with the
columns ``time`` (epoch ms), ``flow``, ``step``, ``reason``, ``record`` (the original
record as JSON), ``source`` (the source step; for a log source, its topic), ``source_partition``
and ``position``. Replay appends the original records to their source topic (or
``--to``) and commits the consumer group ``tidal-replay`` on the dead-letter topic, so a
letter is replayed once.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated, Any

import orjson
import polars as pl
import pyarrow as pa
import typer

from tidal._time import format_ms
from tidal.commands.topics import (
    DEFAULT_LOG_DIR,
    META_COLUMNS,
    CommandError,
    LogDir,
    _cell,
    _with_timestamp,
    clean_errors,
    require_topic,
)
from tidal.log import Log, Topic
from tidal.log._format import KEY_META, TIMESTAMP_META
from tidal.log._settings import validate_name

__all__ = ["REPLAY_GROUP", "dead_letter_topic", "deadletters_app"]

deadletters_app = typer.Typer(
    help="Inspect a pipeline's dead letters and replay them after fixing the cause.",
    no_args_is_help=True,
)

SUFFIX = ".dead-letters"
REPLAY_GROUP = "tidal-replay"
"""The consumer group whose committed offsets on a dead-letter topic mark what was replayed."""

# Reads add the dead-letter topic's own ``offset`` and ``partition``; the latter is renamed
# so it is not mistaken for the source's (``source_partition``).
_LETTER_COLUMNS = {"time": pl.Int64, "flow": pl.String, "step": pl.String,
                   "reason": pl.String, "record": pl.String, "source": pl.String,
                   "source_partition": pl.String, "position": pl.String,
                   "offset": pl.Int64, "letter_partition": pl.Int32}

Pipeline = Annotated[str, typer.Argument(help="The pipeline (flow) name.")]


def dead_letter_topic(pipeline: str) -> str:
    """The name of the log topic holding ``pipeline``'s dead letters.

    >>> dead_letter_topic("orders-enrich")
    'orders-enrich.dead-letters'
    """
    return validate_name(pipeline, "pipeline") + SUFFIX


def _open(log_dir: Path, pipeline: str) -> tuple[Log, Topic] | None:
    """The log and dead-letter topic, or None (with a note on stderr) when there is none."""
    import tidal.log

    name = dead_letter_topic(pipeline)
    if (log_dir / "topics").is_dir():
        log = tidal.log.open(log_dir)
        if name in log.topics():
            return log, log.topic(name)
        others = [t[: -len(SUFFIX)] for t in log.topics() if t.endswith(SUFFIX)]
        log.close()
    else:
        others = []
    hint = f"; pipelines with dead letters there: {', '.join(others)}" if others else ""
    typer.echo(f"pipeline {pipeline} has no dead letters in {log_dir} "
               f"(no topic {name}){hint}", err=True)
    return None


def _read_letters(topic: Topic, start: dict[int, int], end: dict[int, int]) -> pl.DataFrame:
    frames = []
    for p in range(topic.partitions):
        pos = max(start.get(p, 0), topic.start_offset(p))
        while pos < end[p]:
            table, nxt = topic.read_arrow(p, pos, min(65_536, end[p] - pos))
            if nxt <= pos:
                break
            frames.append(_letters_frame(table))
            pos = nxt
    if not frames:
        return pl.DataFrame(schema=_LETTER_COLUMNS)
    return pl.concat(frames, how="diagonal_relaxed").sort("letter_partition", "offset")


def _letters_frame(table: pa.Table) -> pl.DataFrame:
    frame: pl.DataFrame = pl.from_arrow(table)  # type: ignore[assignment]
    frame = frame.rename({"partition": "letter_partition"})
    missing = [pl.lit(None, dtype).alias(c) for c, dtype in _LETTER_COLUMNS.items()
               if c not in frame.columns]
    return frame.with_columns(missing) if missing else frame


def _ends(topic: Topic) -> dict[int, int]:
    return {p: topic.end_offset(p) for p in range(topic.partitions)}


def _matching(letters: pl.DataFrame, reason: str | None) -> pl.DataFrame:
    if reason is None:
        return letters
    return letters.filter(pl.col("reason").str.contains(reason, literal=True))


def _replayed_count(log: Log, topic: Topic) -> int:
    committed = log.committed(REPLAY_GROUP, topic.name)
    return sum(max(0, o - topic.start_offset(p)) for p, o in committed.items())


@deadletters_app.command("list")
def list_letters(
    pipeline: Pipeline,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    log_dir: LogDir = DEFAULT_LOG_DIR,
) -> None:
    """Dead letters of PIPELINE counted by step and reason, with the oldest and newest."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    with clean_errors("deadletters list"):
        opened = _open(log_dir, pipeline)
        if opened is None:
            return
        log, topic = opened
        with log:
            letters = _read_letters(topic, {}, _ends(topic))
            replayed = _replayed_count(log, topic)
        groups = (
            letters.group_by("step", "reason")
            .agg(pl.len().alias("count"), pl.col("time").min().alias("oldest"),
                 pl.col("time").max().alias("newest"))
            .sort(["count", "step", "reason"], descending=[True, False, False])
        )
        total = letters.height
        oldest, newest = letters["time"].min(), letters["time"].max()
        summary = {
            "pipeline": pipeline, "topic": topic.name, "total": total,
            "replayed": replayed, "pending": max(0, total - replayed),
            "oldest": oldest, "newest": newest, "by_step_and_reason": groups.to_dicts(),
        }
        if as_json:
            typer.echo(orjson.dumps(summary).decode())
            return
        console = Console()
        console.print(
            f"{total:,} dead letters of pipeline {pipeline} ({topic.name} in {log_dir}); "
            f"{replayed:,} replayed, {summary['pending']:,} pending; "
            f"oldest {format_ms(oldest)}, newest {format_ms(newest)}",  # type: ignore[arg-type]
            markup=False, highlight=False, soft_wrap=True,
        )
        if not total:
            return
        table = Table("step", "reason", "count", "oldest", "newest")
        for row in groups.iter_rows(named=True):
            table.add_row(Text(_cell(row["step"])), Text(_cell(row["reason"], 100)),
                          f"{row['count']:,}", format_ms(row["oldest"]),
                          format_ms(row["newest"]))
        console.print(table)


@deadletters_app.command("show")
def show(
    pipeline: Pipeline,
    limit: Annotated[int, typer.Option(min=1, help="Show at most N letters.")] = 50,
    reason: Annotated[str | None, typer.Option(
        help="Only letters whose reason contains this text.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per letter.")] = False,
    log_dir: LogDir = DEFAULT_LOG_DIR,
) -> None:
    """The dead letters of PIPELINE, oldest first: offset, time, step, reason and record."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    with clean_errors("deadletters show"):
        opened = _open(log_dir, pipeline)
        if opened is None:
            return
        log, topic = opened
        with log:
            letters = _matching(_read_letters(topic, {}, _ends(topic)), reason)
        shown = letters.head(limit)
        if as_json:
            for row in shown.iter_rows(named=True):
                typer.echo(orjson.dumps(_letter_json(row)).decode())
            return
        table = Table("offset", "time", "step", "reason", "source", "record")
        for row in shown.iter_rows(named=True):
            where = (str(row["offset"]) if topic.partitions == 1
                     else f"{row['letter_partition']}:{row['offset']}")
            table.add_row(where, format_ms(row["time"]), Text(_cell(row["step"])),
                          Text(_cell(row["reason"], 60)), Text(_cell(row["source"])),
                          Text(_cell(row["record"], 80)))
        console = Console()
        console.print(table)
        if letters.height > shown.height:
            console.print(f"showing {shown.height:,} of {letters.height:,}; use --limit for more",
                          highlight=False)


def _letter_json(row: dict[str, Any]) -> dict[str, Any]:
    out = {"partition": row["letter_partition"], "offset": row["offset"]}
    for k in ("time", "flow", "step", "reason", "source", "source_partition"):
        out[k] = row[k]
    for k in ("position", "record"):
        try:
            out[k] = None if row[k] is None else orjson.loads(row[k])
        except orjson.JSONDecodeError:
            out[k] = row[k]
    return out


@deadletters_app.command("replay")
def replay(
    pipeline: Pipeline,
    to: Annotated[str | None, typer.Option(
        help="Append to this topic (default: each letter's source topic).")] = None,
    reason: Annotated[str | None, typer.Option(
        help="Replay only letters whose reason contains this text; the others pending now "
             "are passed over for good.")] = None,
    key: Annotated[str | None, typer.Option(
        help="Key column for partitioning (default: the target topic's own).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Say what would be replayed; append and remember nothing.")] = False,
    log_dir: LogDir = DEFAULT_LOG_DIR,
) -> None:
    """Append the original records of PIPELINE's pending dead letters to their input topic.

    Replayed letters are remembered (group tidal-replay on the dead-letter topic), so
    running replay again replays only letters that arrived since.
    """
    with clean_errors("deadletters replay"):
        if to is not None:
            validate_name(to)
        opened = _open(log_dir, pipeline)
        if opened is None:
            return
        log, topic = opened
        with log:
            end = _ends(topic)
            pending = _read_letters(topic, log.committed(REPLAY_GROUP, topic.name), end)
            chosen = _matching(pending, reason)
            skipped = pending.height - chosen.height
            plan = _plan(log, chosen, to)
            verb = "would replay" if dry_run else "replayed"
            if not pending.height:
                typer.echo(f"nothing to replay: pipeline {pipeline} has no pending dead letters "
                           f"({_replayed_count(log, topic):,} replayed before)", err=True)
                return
            for target, letters in plan:
                frame = _records(letters, target)
                key_col, ts_col = _columns_of(target, key, frame)
                if not dry_run:
                    frame = _with_timestamp(frame, ts_col, 1)
                    result = target.append_batch(_like(target, frame), key=key_col,
                                                 timestamp=ts_col)
                    spans = ", ".join(f"partition {p} offsets {r.first}-{r.last}"
                                      for p, r in sorted(result.offsets.items()))
                else:
                    spans = f"key {key_col}" if key_col else "no key"
                typer.echo(f"{verb} {letters.height:,} dead letters to {target.name} ({spans})",
                           err=True)
            if skipped:
                typer.echo(f"{'would pass' if dry_run else 'passed'} over {skipped:,} pending "
                           f"dead letters whose reason does not contain {reason!r}", err=True)
            if not plan:
                typer.echo(f"{verb} 0 dead letters", err=True)
            if not dry_run:
                log.commit(REPLAY_GROUP, topic.name, end)


def _plan(log: Log, letters: pl.DataFrame, to: str | None) -> list[tuple[Topic, pl.DataFrame]]:
    """Which letters go to which topic; every source must be a topic unless ``--to``."""
    if not letters.height:
        return []
    if to is not None:
        return [(require_topic(log, to), letters)]
    topics = set(log.topics())
    plan, missing = [], []
    for (source,), part in letters.group_by("source", maintain_order=True):
        if source in topics:
            plan.append((log.topic(source), part))
        else:
            missing.append(f"{source!r} ({part.height:,} letters)")
    if missing:
        raise CommandError(
            f"dead letters from source {', '.join(missing)} have no topic of that name in "
            f"{log.path}; pass --to TOPIC to say where to replay them"
        )
    return plan


def _records(letters: pl.DataFrame, target: Topic) -> pl.DataFrame:
    """The original records, parsed from their JSON column in one vectorized read."""
    records = letters["record"]
    if records.null_count():
        first = letters.filter(pl.col("record").is_null())["offset"][0]
        raise CommandError(f"dead letter at offset {first} has no record to replay")
    text = "\n".join(records.to_list()).encode()
    try:
        frame = pl.read_ndjson(io.BytesIO(text))
    except Exception as exc:
        for offset, record in zip(letters["offset"], records, strict=True):
            try:
                if not isinstance(orjson.loads(record), dict):
                    raise orjson.JSONDecodeError("not a JSON object", record, 0)
            except orjson.JSONDecodeError as e:
                raise CommandError(
                    f"dead letter at offset {offset}: its record is not a JSON object ({e})"
                ) from None
        raise CommandError(f"the records for {target.name} do not form one table ({exc})") from None
    return frame.drop([c for c in META_COLUMNS if c in frame.columns])


def _last_schema(topic: Topic) -> pa.Schema | None:
    for p in range(topic.partitions):
        end = topic.end_offset(p)
        if end > topic.start_offset(p):
            table = topic.read_arrow(p, end - 1, 1).table
            if table.num_rows:
                return table.schema
    return None


def _columns_of(target: Topic, key: str | None, frame: pl.DataFrame) -> tuple[str | None, str | None]:
    """The key and timestamp columns the target topic's own batches were appended with."""
    schema = _last_schema(target)
    meta = (schema.metadata or {}) if schema is not None else {}
    stored_key = meta.get(KEY_META, b"").decode() or None
    stored_ts = meta.get(TIMESTAMP_META, b"").decode() or None
    if key is None and stored_key in frame.columns:
        key = stored_key
    return key, stored_ts if stored_ts in frame.columns else None


def _like(target: Topic, frame: pl.DataFrame) -> pa.Table | pl.DataFrame:
    """The frame with the target's column order and types where they match, so replayed rows
    read back in the same batches (and types) as the originals."""
    schema = _last_schema(target)
    if schema is None:
        return frame
    fields = [f for f in schema if f.name not in META_COLUMNS]
    if {f.name for f in fields} != set(frame.columns):
        return frame
    try:
        return frame.select([f.name for f in fields]).to_arrow().cast(pa.schema(fields))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return frame
