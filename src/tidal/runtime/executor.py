"""The executor: runs a flow's graph over micro-batches in one thread.

One step of the loop:

1. poll every open source partition once (non-blocking) for up to ``max_batch_rows`` rows;
2. push each batch through the graph depth-first (operators emit straight into their
   downstream operators and sinks);
3. recompute watermarks in topological order: a source's is the minimum over its active
   partitions, any other node's the minimum over its inputs; an operator whose input
   watermark advanced gets ``on_watermark`` and its results reach downstream before the
   new watermark does;
4. fire processing-time timers that are due; flush sinks.

When no partition had data, the loop sleeps until a source wakes it or ``max_delay_ms``
passes, so a slow input gives small batches at low latency and a fast one large batches at
high throughput. When every bounded source is exhausted, a final watermark of +inf fires
every open window and the run ends.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from tidal._time import MAX_TIME, MIN_TIME
from tidal.connectors.base import SinkContext, SourceContext, TransactionalSink
from tidal.errors import PlanError, SourceError
from tidal.operators.base import Operator, OperatorContext
from tidal.plan import Node
from tidal.runtime.clock import Clock, SystemClock
from tidal.runtime.deadletters import DeadLetters
from tidal.runtime.ingest import PartitionReader
from tidal.state.checkpoint import Checkpoint, CheckpointStore

if TYPE_CHECKING:
    from tidal.api.flow import Flow

__all__ = ["Executor", "Metrics", "StepMetrics"]


@dataclass
class StepMetrics:
    """Counters of one step (node) of the graph."""

    rows_in: int = 0
    """Rows received (for a source: rows read)."""
    rows_out: int = 0
    """Rows emitted on any port."""
    batches: int = 0
    busy_s: float = 0.0
    """Seconds spent in the step's own code (``on_batch``/``on_watermark``/``write``),
    including what it emitted downstream synchronously."""
    batch_seconds: list[float] = field(default_factory=list)
    """Recent per-batch processing times (the last 1,024), for latency histograms."""

    def record(self, seconds: float) -> None:
        self.busy_s += seconds
        self.batch_seconds.append(seconds)
        if len(self.batch_seconds) > 1024:
            del self.batch_seconds[:512]


@dataclass
class Metrics:
    """Counters of a run, read by the status line, ``/metrics`` and returned by
    :meth:`tidal.Flow.run`."""

    events_in: int = 0
    rows_out: int = 0
    late: int = 0
    dead_letters: int = 0
    batches: int = 0
    watermark: int = MIN_TIME
    started_ms: int = 0
    checkpoints: int = 0
    last_checkpoint_s: float = 0.0
    last_checkpoint_bytes: int = 0
    steps: dict[str, StepMetrics] = field(default_factory=dict)
    """Per step name."""
    watermarks: dict[str, int] = field(default_factory=dict)
    """Current watermark of every step, by name."""


class Executor:
    """Runs one flow; see the module docstring for the loop."""

    def __init__(
        self, flow: Flow, *, clock: Clock | None = None, max_batch_rows: int = 100_000,
        max_delay_ms: int = 5, dead_letter_path: str | Path | None = None,
        checkpoints: CheckpointStore | None = None, checkpoint_interval_ms: int = 10_000,
        restore_from: str | Path | None = None, log: Callable[[str], None] | None = None,
        dead_letter_topic: str | None = None, log_dir: str | Path | None = None,
    ) -> None:
        if max_batch_rows < 1:
            raise PlanError(f"max_batch_rows must be at least 1, not {max_batch_rows}")
        self.flow = flow
        self.clock = clock or SystemClock()
        self.max_batch_rows = max_batch_rows
        self.max_delay_ms = max_delay_ms
        self.nodes = list(flow.nodes)
        self.metrics = Metrics(started_ms=self.clock.now())
        self.dead = DeadLetters(flow.name, dead_letter_path, self.clock.now, dead_letter_topic,
                                log_dir)
        self.wakeup = threading.Event()
        self.ops: dict[Node, Operator] = {}
        self.readers: dict[Node, list[PartitionReader]] = {}
        self.downstream: dict[tuple[Node, str], list[tuple[Node, int]]] = defaultdict(list)
        self.wm: dict[Node, int] = {}
        self.next_timer: dict[Node, int] = {}
        self.opened = False
        self.finished = False
        self.store = checkpoints
        self.checkpoint_interval_ms = checkpoint_interval_ms
        self.restore_from = restore_from
        self.log = log or (lambda msg: None)
        self.pending: dict[Node, list[pl.DataFrame]] = {}
        self.restored: Checkpoint | None = None
        self.last_checkpoint_ms = 0
        self.checkpoint_count = 0
        self.savepoint_requested: threading.Event = threading.Event()
        self._origin: tuple[str, str, Any] | None = None
        self._opened_sinks: set[str] = set()
        self.last_savepoint: Path | None = None

    # -- set-up ------------------------------------------------------------------------------
    def open(self, positions: dict[str, dict[str, Any]] | None = None) -> None:
        """Create operators, open sinks and source partitions (at ``positions`` if given).

        If anything fails to open, what was already opened is closed again (connections,
        files, the checkpoint directory's lock) before the error propagates."""
        try:
            self._open(positions)
        except BaseException:
            self._close_opened()
            raise

    def _close_opened(self) -> None:
        for readers in self.readers.values():
            for r in readers:
                try:
                    r.reader.close()
                except Exception:  # noqa: BLE001 - best effort while failing already
                    pass
        for node in self.nodes:
            if node.kind == "sink" and node.name in self._opened_sinks:
                try:
                    node.sink.close()
                except Exception:  # noqa: BLE001
                    pass
        self.dead.close()
        if self.store is not None:
            self.store.unlock()

    def _open(self, positions: dict[str, dict[str, Any]] | None) -> None:
        if not self.flow.nodes:
            raise PlanError(f"flow {self.flow.name!r} has no steps; add a source and a sink")
        if not any(n.kind == "sink" for n in self.nodes):
            raise PlanError(
                f"flow {self.flow.name!r} has no sink, so its results would go nowhere; "
                "add one, e.g. stream.print() or stream.sink(td.sinks.jsonl('out.jsonl'))"
            )
        now = self.clock.now()
        self.last_checkpoint_ms = now
        if self.store is not None:
            self.store.lock(self.flow.name)
            if self.restore_from is not None:
                self.restored = CheckpointStore.load(self.restore_from)
            else:
                self.restored = self.store.latest(warn=self.log)
            if self.restored is not None:
                positions = self.restored.manifest["positions"]
                self._check_restorable(self.restored)
        for node in self.nodes:
            self.metrics.steps[node.name] = StepMetrics()
            for idx, (up, port) in enumerate(node.inputs):
                self.downstream[(up, port)].append((node, idx))
            self.wm[node] = MIN_TIME
            if node.kind == "source":
                self._open_source(node, (positions or {}).get(node.name), now)
            elif node.kind == "dead_letters":
                self.wm[node] = MAX_TIME
                self.dead.listeners.append(lambda f, n=node: self._deliver(n, "out", f))
            elif node.kind == "sink":
                exactly_once = self.store is not None and isinstance(node.sink, TransactionalSink)
                node.sink.open(SinkContext(self.flow.name, node.name, exactly_once))
                self._opened_sinks.add(node.name)
                if exactly_once:
                    self.pending[node] = []
            else:
                assert node.make is not None
                op = node.make()
                op.open(OperatorContext(
                    name=node.name, emit=lambda b, port, n=node: self._deliver(n, port, b),
                    dead_letter=lambda recs, reason, n=node: self._operator_dead_letter(n, recs, reason),
                    now=self.clock.now, count_late=self._count_late,
                ))
                self.ops[node] = op
                if op.timer_interval_ms:
                    self.next_timer[node] = now + op.timer_interval_ms
        if self.restored is not None:
            self._restore(self.restored)
        self.opened = True

    # -- checkpoints -------------------------------------------------------------------------
    def _check_restorable(self, cp: Checkpoint) -> None:
        """Refuse a checkpoint whose operator state does not fit this flow, saying why."""
        saved = cp.manifest["operators"]
        ours = {n.name: n for n in self.nodes if n.stateful and n.kind not in ("source", "sink")}
        for name, entry in saved.items():
            node = ours.get(name)
            if node is None:
                raise PlanError(
                    f"checkpoint {cp.id} in {cp.path.parent} holds state of operator {name!r}, "
                    "which this flow no longer has; give the operator that should keep it "
                    f"name={name!r}, or start from another checkpoint directory"
                )
            if entry["signature"] != node.signature:
                raise PlanError(
                    f"operator {name!r} changed since checkpoint {cp.id}: its state was written "
                    f"by `{entry['signature']}` but the flow now defines `{node.signature}`; "
                    "restore the old definition, or give the changed operator a new name= to "
                    "start its state afresh"
                )

    def _restore(self, cp: Checkpoint) -> None:
        m = cp.manifest
        by_name = {n.name: n for n in self.nodes}
        for name, wm in m["watermarks"].items():
            if name in by_name:
                self.wm[by_name[name]] = int(wm)
        for node, op in self.ops.items():
            if node.name in m["operators"]:
                op.restore(cp.operator_state(node.name))
            op.watermark = self.wm[node]
        for node, readers in self.readers.items():
            for r in readers:
                r.max_ts = int(m["max_ts"].get(node.name, {}).get(r.partition, r.max_ts))
        for node in self.pending:
            rows = cp.sink_rows(node.name)
            sink: TransactionalSink = node.sink
            if rows is not None and (sink.committed_checkpoint() or 0) < cp.id:
                sink.apply(rows, cp.id)  # the crash came between checkpoint and commit
        self.metrics.watermark = min((self.wm[n] for n in self.readers), default=MIN_TIME)
        self.log(f"restored checkpoint {cp.id} from {cp.path}")

    def checkpoint(self, savepoint: bool = False) -> Checkpoint:
        """Take a checkpoint now, at a batch boundary (numbered steps as in the code):

        1. snapshot source positions, watermarks and every stateful operator;
        2. write them and the rows each exactly-once sink received since the last
           checkpoint into a new checkpoint directory, publishing it by an atomic rename
           of its manifest (:class:`tidal.state.checkpoint.CheckpointStore`);
        3. only then let each exactly-once sink apply its rows, tagged with the checkpoint
           id (idempotent, so recovery can safely apply them again), then tell it the
           checkpoint's watermark (``Sink.on_watermark``);
        4. prune old checkpoints.
        """
        assert self.store is not None
        # 1.
        meta = {
            "flow": self.flow.name,
            "positions": self.positions(),
            "max_ts": {n.name: {r.partition: r.max_ts for r in rs} for n, rs in self.readers.items()},
            "watermarks": {n.name: self.wm[n] for n in self.nodes if n.kind != "sink"},
        }
        operators = {n.name: (op.snapshot(), n.signature) for n, op in self.ops.items() if op.stateful}
        staged = {n.name: pl.concat(b, how="diagonal_relaxed") for n, b in self.pending.items() if b}
        # 2.
        started = time.perf_counter()
        cp = self.store.write(self.store.next_id(), meta, operators, staged, savepoint=savepoint)
        self.metrics.last_checkpoint_s = time.perf_counter() - started
        self.metrics.last_checkpoint_bytes = sum(
            e["size"] for e in [*cp.manifest["operators"].values(), *cp.manifest["sinks"].values()])
        # 3. (then the watermark of the checkpoint: what it committed is complete up to it)
        for node, batches in self.pending.items():
            if batches:
                node.sink.apply(staged[node.name], cp.id)
                batches.clear()
            node.sink.on_watermark(self.wm[node])
        self._commit_sources(meta["positions"])
        # 4.
        if not savepoint:
            self.store.prune()
        self.last_checkpoint_ms = self.clock.now()
        self.checkpoint_count += 1
        self.metrics.checkpoints = self.checkpoint_count
        return cp

    def _open_source(self, node: Node, positions: dict[str, Any] | None, now: int) -> None:
        src = node.source
        readers: list[PartitionReader] = []
        self.readers[node] = readers  # filled as partitions open, so a failure can close them
        for part in src.partitions():
            ctx = SourceContext(
                self.flow.name, node.name, part,
                dead_letter=lambda rec, reason, pos, n=node, p=part: self.dead.add(
                    [rec], reason, step=n.name, source=n.name, partition=p, position=pos),
                wakeup=self.wakeup,
            )
            try:
                reader = src.open(part, (positions or {}).get(part), ctx)
            except OSError as exc:
                raise SourceError(f"source {node.name!r} partition {part!r}: {exc}") from exc
            opts = node.options
            readers.append(PartitionReader(
                node.name, part, reader, opts["timestamp"], opts["watermark"], opts["schema"],
                opts["processing_time"], self._source_dead_letter(node), now,
                computed=opts.get("computed"),
            ))

    def _source_dead_letter(self, node: Node) -> Callable[..., None]:
        def reject(rows: pl.DataFrame, reason: str, **where: Any) -> None:
            self.dead.add(rows, reason, step=node.name, **where)
        return reject

    def _operator_dead_letter(self, node: Node, records: Any, reason: str) -> None:
        """Keep records an operator rejected, with the source partition and position of
        the batch being processed (when the records came from a source's batch)."""
        origin = self._origin or (None, None, None)
        self.dead.add(records, reason, step=node.name, source=origin[0], partition=origin[1],
                      position=origin[2])

    def _count_late(self, n: int) -> None:
        self.metrics.late += n

    # -- data --------------------------------------------------------------------------------
    def _deliver(self, node: Node, port: str, batch: pl.DataFrame) -> None:
        steps = self.metrics.steps
        steps[node.name].rows_out += batch.height
        for child, idx in self.downstream.get((node, port), ()):
            m = steps[child.name]
            m.rows_in += batch.height
            m.batches += 1
            start = time.perf_counter()
            if child.kind == "sink":
                held = self.pending.get(child)
                if held is not None:
                    held.append(batch)  # applied when the next checkpoint is durable
                else:
                    child.sink.write(batch)
                self.metrics.rows_out += batch.height
            else:
                self.ops[child].on_batch(batch, idx)
            m.record(time.perf_counter() - start)

    def positions(self) -> dict[str, dict[str, Any]]:
        """Every source partition's position after the last batch read."""
        return {n.name: {r.partition: r.reader.position() for r in rs}
                for n, rs in self.readers.items()}

    def step(self) -> bool:
        """One pass of the loop; True when any source produced rows."""
        progressed = False
        now = self.clock.now()
        for node, readers in self.readers.items():
            for reader in readers:
                if reader.closed:
                    continue
                batch = reader.poll(self.max_batch_rows, now)
                if batch is not None:
                    progressed = True
                    reader.dirty = True
                    self.metrics.events_in += batch.height
                    self.metrics.steps[node.name].rows_in += batch.height
                    self.metrics.batches += 1
                    self._origin = (node.name, reader.partition, reader.reader.position())
                    self._deliver(node, "out", batch)
                    self._origin = None
                if reader.done:
                    reader.reader.close()
                    reader.closed = True
        self.advance_watermarks(self.clock.now())
        self.fire_timers(self.clock.now())
        for node in self.nodes:
            if node.kind == "sink":
                node.sink.flush()
        if self.store is None:
            self._commit_sources(None)
        self.metrics.dead_letters = self.dead.count
        return progressed

    def _commit_sources(self, positions: dict[str, dict[str, Any]] | None) -> None:
        """Tell source partitions what is fully processed (after a step's sinks flushed, or
        with checkpoints after the checkpoint committed), e.g. to commit group offsets."""
        for node, readers in self.readers.items():
            for r in readers:
                if r.dirty:
                    pos = r.reader.position() if positions is None else positions[node.name][r.partition]
                    r.reader.commit(pos)
                    r.dirty = False

    def source_watermark(self, node: Node, now: int) -> int:
        """Minimum watermark over the source's active partitions (idle ones excluded)."""
        marks = [r.watermark(now) for r in self.readers[node]]
        active = [wm for wm, idle in marks if not idle]
        if active:
            return min(active)
        return max(wm for wm, _ in marks) if marks else MAX_TIME

    def advance_watermarks(self, now: int, force: int | None = None) -> None:
        """Recompute every node's watermark and let operators react, in topological order."""
        for node in self.nodes:
            if node.kind == "dead_letters":
                continue
            if node.kind == "source":
                wm = force if force is not None else self.source_watermark(node, now)
            else:
                wm = min(self.wm[up] for up, _ in node.inputs)
            if wm <= self.wm[node]:
                continue
            self.wm[node] = wm
            self.metrics.watermarks[node.name] = wm
            op = self.ops.get(node)
            if op is not None:
                start = time.perf_counter()
                op.on_watermark(wm)
                self.metrics.steps[node.name].busy_s += time.perf_counter() - start
            elif node.kind == "sink" and node not in self.pending:
                node.sink.on_watermark(wm)  # exactly-once sinks: after the checkpoint's apply
        sources = [self.wm[n] for n in self.readers]
        self.metrics.watermark = min(sources) if sources else MAX_TIME

    def fire_timers(self, now: int) -> None:
        """Call ``on_timer`` of operators whose processing-time interval has elapsed."""
        for node, due in self.next_timer.items():
            if now >= due:
                op = self.ops[node]
                op.on_timer(now)
                interval = op.timer_interval_ms or 1
                self.next_timer[node] = now + interval

    @property
    def exhausted(self) -> bool:
        """True when every source partition has ended (bounded input fully read)."""
        return all(r.closed for rs in self.readers.values() for r in rs)

    def finish(self, flush: bool = True, checkpoint: bool = True) -> None:
        """End the run: on ``flush``, a final +inf watermark fires every open window; with
        checkpoints, a last checkpoint commits what the sinks hold (unless ``checkpoint`` is
        false: after an error nothing more is committed)."""
        if self.finished:
            return
        self.finished = True
        if flush:
            self.advance_watermarks(self.clock.now(), force=MAX_TIME)
        if self.store is not None and checkpoint:
            self.checkpoint(savepoint=self.savepoint_requested.is_set())
        for op in self.ops.values():
            op.close()
        for node in self.nodes:
            if node.kind == "sink":
                node.sink.close()
        for readers in self.readers.values():
            for r in readers:
                if not r.closed:
                    r.reader.close()
                    r.closed = True
        self.metrics.dead_letters = self.dead.count
        self.dead.close()
        if self.store is not None:
            self.store.unlock()

    def run(
        self, *, stop: threading.Event | None = None, duration_s: float | None = None,
        on_tick: Callable[[Executor], None] | None = None, tick_s: float = 0.5,
    ) -> Metrics:
        """Run until the input ends or ``duration_s`` passes (both end with a final watermark
        that fires every open window), or until ``stop`` is set, a savepoint is requested
        or Ctrl-C (these stop without firing open windows; with checkpoints, their state
        is kept for the next run)."""
        if not self.opened:
            self.open()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        next_tick = time.monotonic() + tick_s
        interrupted = False
        try:
            while True:
                progressed = self.step()
                if self.exhausted:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break  # a run bounded in time ends like bounded input: windows flush
                if (stop is not None and stop.is_set()) or self.savepoint_requested.is_set():
                    interrupted = True
                    break
                if (self.store is not None
                        and self.clock.now() - self.last_checkpoint_ms >= self.checkpoint_interval_ms):
                    self.checkpoint()
                if on_tick is not None and time.monotonic() >= next_tick:
                    on_tick(self)
                    next_tick = time.monotonic() + tick_s
                if not progressed:
                    self.wakeup.wait(self._idle_wait())
                    self.wakeup.clear()
        except KeyboardInterrupt:
            interrupted = True
        except BaseException:
            self.finish(flush=False, checkpoint=False)
            raise
        self.finish(flush=not interrupted)
        if on_tick is not None:
            on_tick(self)
        return self.metrics

    def _idle_wait(self) -> float:
        wait = self.max_delay_ms / 1000
        if self.next_timer:
            until = (min(self.next_timer.values()) - self.clock.now()) / 1000
            wait = min(wait, until)
        now = time.monotonic()
        for readers in self.readers.values():
            for r in readers:
                awake = None if r.closed else r.reader.next_awake()
                if awake is not None:
                    wait = min(wait, awake - now)
        return max(0.0, wait)
