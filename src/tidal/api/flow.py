"""A flow: the graph of sources, operators and sinks of one pipeline, and how to run it."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import polars as pl

from tidal._time import Duration, duration_ms
from tidal.api.stream import Stream
from tidal.api.watermarks import BoundedDelay, bounded_delay
from tidal.connectors.base import Source
from tidal.errors import ConfigError, PlanError
from tidal.operators.timeattr import TimeAttr
from tidal.plan import Node, caller_location, check_columns, infer_schema
from tidal.runtime.clock import Clock
from tidal.runtime.deadletters import SCHEMA as DEAD_LETTER_SCHEMA
from tidal.runtime.deadletters import default_path
from tidal.runtime.deadletters import topic_name as dead_letter_topic
from tidal.runtime.executor import Executor, Metrics
from tidal.runtime.ingest import PROCESSING_TIME
from tidal.state.checkpoint import CheckpointStore

__all__ = ["Flow", "run_defaults"]

def _log(message: str) -> None:
    print(f"tidal: {message}", file=sys.stderr)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

run_defaults: dict[str, Any] = {}
"""Defaults for :meth:`Flow.run` set by the ``tidal run`` command (quiet, ...)."""


class Flow:
    """A named pipeline: add sources with :meth:`source`, then transform and sink streams.

    >>> import tidal as td
    >>> flow = td.Flow("hello")
    >>> flow.source(td.sources.memory([{"word": "hi"}])).print()
    >>> _ = flow.run(quiet=True)
    word=hi
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"bad flow name {name!r}: use letters, digits, '.', '_' or '-', e.g. 'bids'"
            )
        self.name = name
        self.nodes: list[Node] = []
        self._names: set[str] = set()
        self.last_run: Executor | None = None

    # -- graph building (used by Stream) -----------------------------------------------------
    def _unique_name(self, label: str, *, explicit: bool, stateful: bool) -> str:
        if label not in self._names:
            self._names.add(label)
            return label
        if explicit:
            raise PlanError(f"flow {self.name!r} already has a step named {label!r}; names must be unique")
        i = 2
        while f"{label}#{i}" in self._names:
            i += 1
        self._names.add(f"{label}#{i}")
        return f"{label}#{i}"

    def _add(self, node: Node) -> None:
        self.nodes.append(node)

    # -- sources -------------------------------------------------------------------------------
    def source(
        self, source: Source, *, timestamp: str | None = None,
        watermark: BoundedDelay | Duration | None = None,
        schema: dict[str, Any] | pl.Schema | None = None, processing_time: bool = False,
        name: str | None = None, computed: dict[str, pl.Expr] | None = None,
    ) -> Stream:
        """Read ``source`` as a stream.

        - ``timestamp``: the event-time column (epoch ms, datetime, or ISO 8601 strings);
        - ``computed``: columns computed from each batch as it is read, before its event
          time is taken, so ``timestamp`` may name one (SQL's ``ts AS
          TO_TIMESTAMP_LTZ(epoch_ms, 3), WATERMARK FOR ts AS ...``);
        - ``watermark``: how out of order events may be, ``td.bounded_delay("200ms")``
          (a plain duration means the same); default: in order (no delay);
        - ``schema``: declared column types; records that do not match go to the dead letters;
        - ``processing_time=True``: use arrival time instead (adds a ``proc_time`` column).
        """
        where = caller_location()
        if not isinstance(source, Source):
            raise PlanError(
                f"source at {where}: expected a source such as td.sources.jsonl('in.jsonl'), "
                f"got {type(source).__name__}"
            )
        if timestamp is not None and processing_time:
            raise ConfigError(f"source at {where}: give timestamp= or processing_time=True, not both")
        if watermark is None:
            watermark = bounded_delay(0)
        elif not isinstance(watermark, BoundedDelay):
            watermark = bounded_delay(watermark)
        declared = None if schema is None else pl.Schema(schema)
        known = declared or source.schema()
        if computed and known is not None:
            known = infer_schema("source computed columns", where, known,
                                 lambda lf: lf.with_columns(**computed))
        if timestamp is not None:
            check_columns("source timestamp", where, [timestamp], known)
        time: TimeAttr | None = None
        if timestamp is not None:
            time = TimeAttr(timestamp)
            if known is not None and known[timestamp] == pl.String:
                known = pl.Schema({**known, timestamp: pl.Datetime("ms")})
        if processing_time:
            time = TimeAttr(PROCESSING_TIME)
            if known is not None:
                known = pl.Schema({**known, PROCESSING_TIME: pl.Datetime("ms")})
        step = self._unique_name(name or source.name, explicit=name is not None, stateful=True)
        node = Node(
            "source", step, [], None, time=time, schema=known, where=where, source=source,
            options={"timestamp": timestamp, "watermark": watermark, "schema": declared,
                     "processing_time": processing_time, "computed": dict(computed or {})},
        )
        self._add(node)
        return Stream(self, node)

    def dead_letters(self) -> Stream:
        """The records this flow could not process, as a stream (see
        :mod:`tidal.runtime.deadletters` for the columns)."""
        for n in self.nodes:
            if n.kind == "dead_letters":
                return Stream(self, n)
        node = Node("dead_letters", "dead_letters", [], None, schema=DEAD_LETTER_SCHEMA,
                    where=caller_location())
        self._names.add(node.name)
        self._add(node)
        return Stream(self, node)

    # -- SQL (tidal.sql) -----------------------------------------------------------------------
    def sql(self, statements: str) -> Any:
        """Run Flink-dialect SQL against this flow (see docs/sql.md): ``CREATE TABLE``/``VIEW``,
        ``INSERT INTO`` (adds a sink), ``SHOW TABLES``, ``DESCRIBE``, ``EXPLAIN``. Returns the
        :class:`Stream` of the last ``SELECT``, the text of SHOW/DESCRIBE/EXPLAIN, or None."""
        from tidal.sql import execute

        return execute(self, statements)

    def register_table(self, name: str, stream: Stream) -> None:
        """Make ``stream`` readable from this flow's SQL as table ``name``."""
        from tidal.sql import session_for

        session_for(self).register_table(name, stream)

    def register_function(self, name: str, fn: Any, *, vectorized: bool = True,
                          return_type: Any = None) -> None:
        """Make ``fn`` callable from this flow's SQL as ``name(...)``: with ``vectorized`` it
        gets Polars Series and returns one; otherwise it is called per row (slow path).
        ``return_type``: a SQL type name (``'BIGINT'``) or a Polars type."""
        from tidal.sql import session_for

        session_for(self).register_function(name, fn, vectorized=vectorized,
                                            return_type=return_type)

    # -- running -------------------------------------------------------------------------------
    def executor(
        self, *, clock: Clock | None = None, max_batch_rows: int = 100_000,
        max_delay: Duration = "5ms", dead_letter_path: str | Path | None | bool = None,
        checkpoint_dir: str | Path | None = None, checkpoint_interval: Duration = "10s",
        restore_from: str | Path | None = None, keep_checkpoints: int = 3,
        dead_letters_to_log: bool = True, log_dir: str | Path | None = None,
    ) -> Executor:
        """An executor for this flow (for stepping it yourself; most code calls :meth:`run`)."""
        if dead_letter_path is True:
            dead_letter_path = default_path(self.name)
        elif dead_letter_path is False:
            dead_letter_path = None
        store = None if checkpoint_dir is None else CheckpointStore(checkpoint_dir, keep_checkpoints)
        if restore_from is not None and store is None:
            raise ConfigError("restore_from= needs checkpoint_dir= (where the resumed run checkpoints)")
        return Executor(
            self, clock=clock, max_batch_rows=max_batch_rows,
            max_delay_ms=duration_ms(max_delay, "max_delay"), dead_letter_path=dead_letter_path,
            checkpoints=store, checkpoint_interval_ms=duration_ms(checkpoint_interval, "checkpoint interval"),
            restore_from=restore_from, log=_log, log_dir=log_dir,
            dead_letter_topic=dead_letter_topic(self.name) if dead_letters_to_log else None,
        )

    def run(
        self, *, quiet: bool | None = None, max_batch_rows: int | None = None,
        max_delay: Duration = "5ms", duration: Duration | None = None,
        dead_letter_path: str | Path | None | bool = None, stop: threading.Event | None = None,
        checkpoint_dir: str | Path | None = None, checkpoint_interval: Duration | None = None,
        restore_from: str | Path | None = None, dead_letters_to_log: bool = True,
        log_dir: str | Path | None = None, serve: bool | None = None, host: str | None = None,
        port: int | None = None, token: str | None = None,
    ) -> Metrics:
        """Run the flow until its input ends (bounded sources), ``duration`` passes, ``stop``
        is set, or Ctrl-C. Returns the run's counters.

        With ``serve=True``, the HTTP server runs alongside on ``host:port`` (default
        127.0.0.1:8080; another address needs ``token``, default ``$TIDAL_TOKEN``) and
        serves the flow's views, ``/query``, ``/metrics`` and ingestion; it stops when the
        run ends (see docs/serving.md).

        A live status line (events/s, watermark lag, late and dead-letter counts) shows on a
        terminal unless ``quiet``.

        Dead letters go to the log topic ``<flow>.dead-letters`` (in ``log_dir``, default
        ``$TIDAL_LOG_DIR`` or ``.tidal/log``) unless ``dead_letters_to_log=False``, and also
        to the JSON-lines file ``dead_letter_path`` if given (``True``: under ``.tidal/``).

        With ``checkpoint_dir``, the flow checkpoints every ``checkpoint_interval`` (default
        10 s), resumes from the newest checkpoint there when restarted, and gives its
        transactional sinks exactly-once results; ``restore_from`` starts from a savepoint.
        Sending the process SIGUSR1 (``tidal savepoint DIR``) takes a savepoint and stops.
        """
        if serve or (serve is None and run_defaults.get("serve")):
            from tidal.serve.runner import run_served

            return run_served(
                self, host=host or run_defaults.get("host"),
                port=run_defaults.get("port") if port is None else port,
                token=token or run_defaults.get("token"), tls_cert=run_defaults.get("tls_cert"),
                tls_key=run_defaults.get("tls_key"),
                run=dict(quiet=quiet, max_batch_rows=max_batch_rows, max_delay=max_delay,
                         duration=duration, dead_letter_path=dead_letter_path, stop=stop,
                         checkpoint_dir=checkpoint_dir, checkpoint_interval=checkpoint_interval,
                         restore_from=restore_from, dead_letters_to_log=dead_letters_to_log,
                         log_dir=log_dir, serve=False),
            )
        if quiet is None:
            quiet = run_defaults.get("quiet", False)
        if max_batch_rows is None:
            max_batch_rows = int(run_defaults.get("max_batch_rows", os.environ.get(
                "TIDAL_MAX_BATCH_ROWS", 100_000)))
        checkpoint_dir = checkpoint_dir or run_defaults.get("checkpoint_dir")
        checkpoint_interval = checkpoint_interval or run_defaults.get("checkpoint_interval", "10s")
        restore_from = restore_from or run_defaults.get("restore_from")
        ex = self.executor(max_batch_rows=max_batch_rows, max_delay=max_delay,
                           dead_letter_path=dead_letter_path, checkpoint_dir=checkpoint_dir,
                           checkpoint_interval=checkpoint_interval, restore_from=restore_from,
                           dead_letters_to_log=dead_letters_to_log, log_dir=log_dir)
        self.last_run = ex
        duration_s = None if duration is None else duration_ms(duration, "duration") / 1000
        ex.open()
        if checkpoint_dir is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGUSR1, lambda *_: ex.savepoint_requested.set())
        status = None
        if not quiet:
            from tidal.status import StatusLine

            status = StatusLine.for_terminal(self.name)
        try:
            if status is None:
                return ex.run(stop=stop, duration_s=duration_s)
            with status:
                return ex.run(stop=stop, duration_s=duration_s, on_tick=status.update)
        finally:
            if ex.dead.count:
                _log(f"{ex.dead.count} dead letter(s) kept in {ex.dead.where}")

    def __repr__(self) -> str:
        return f"Flow({self.name!r}, steps={[n.name for n in self.nodes]})"
