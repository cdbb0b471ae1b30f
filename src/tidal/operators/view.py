"""Materialized views: the latest row per key of a stream, kept for serving.

A :class:`View` holds one Polars frame with the latest row of every key (for windowed
results, of every key and window, for the last ``windows`` windows). The
:class:`ViewOperator` upserts each input batch into it with whole-frame kernels (a per-batch
``unique`` on the keys, an anti-join and a concat: no Python loop over rows), snapshots it
with checkpoints under the step's stable name, and publishes every change, numbered, to
subscribers (the server's push endpoints).

Readers never lock: the frame is immutable and replaced whole on each change, so a reader
that took ``view.frame`` keeps a consistent version while the pipeline moves on.

Views live in a process-wide :data:`registry` by name; ``tidal.serve`` reads it.

>>> import polars as pl
>>> view = View("totals", ["card"])
>>> _ = view.upsert(pl.DataFrame({"card": ["a", "b", "a"], "total": [1, 2, 3]}))
>>> view.frame.sort("card").rows()
[('a', 3), ('b', 2)]
>>> view.seq
1
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from tidal.connectors.base import Sink
from tidal.errors import PlanError
from tidal.operators.base import Operator
from tidal.operators.changelog import split_deletes

if TYPE_CHECKING:
    from tidal.api.stream import Stream

__all__ = ["WINDOW_COLUMN", "Change", "View", "ViewOperator", "ViewRegistry", "plan_view", "registry"]

WINDOW_COLUMN = "window_start"
"""The column that, with the keys, identifies a row of a windowed view."""

_VIEW_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


@dataclass(eq=False)
class Change:
    """One change of a view: the rows upserted and the rows removed by one batch.

    ``seq`` numbers a view's changes 1, 2, 3, ... without gaps, so a subscriber can tell
    that it saw every one. ``deletes`` holds the identifying columns (keys, and
    ``window_start`` for windowed views) of rows removed: by a row of an updating result
    that deletes its key (:mod:`tidal.operators.changelog`), or evicted because their window
    is no longer among the last ``windows``.
    """

    seq: int
    upserts: pl.DataFrame
    deletes: pl.DataFrame
    time_ms: int
    cache: dict[str, Any] = field(default_factory=dict)
    """Encodings made by readers (e.g. the JSON text), shared by every subscriber."""


Subscriber = Callable[[Change], None]


class View:
    """The latest row per key of a stream (see the module docstring).

    - ``keys``: the columns identifying a row; with ``windows``, ``window_start`` too;
    - ``windows``: keep only the rows of the last ``windows`` distinct ``window_start``
      values (over the whole view, so a key seen only in older windows disappears);
    - ``schema``: the stream's columns when known before running (an empty view has them).
    """

    def __init__(self, name: str, keys: list[str], windows: int | None = None,
                 schema: pl.Schema | None = None) -> None:
        if not keys:
            raise PlanError(f"view {name!r}: give at least one key column, e.g. key='card'")
        if windows is not None and windows < 1:
            raise PlanError(f"view {name!r}: windows must be at least 1, not {windows}")
        self.name = name
        self.keys = list(keys)
        self.windows = windows
        self.row_keys = [*self.keys, WINDOW_COLUMN] if windows is not None else list(self.keys)
        """Columns identifying one row (the keys, plus ``window_start`` when windowed)."""
        self.frame = pl.DataFrame(schema=schema)
        self.seq = 0
        self.updated_ms = 0
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._index: dict[Any, str] | None = None
        self._encode: Callable[[pl.DataFrame], list[str]] | None = None
        self.closed = False

    def __repr__(self) -> str:
        return f"View({self.name!r}, keys={self.row_keys}, rows={self.frame.height})"

    @property
    def rows(self) -> int:
        """Number of rows held."""
        return self.frame.height

    # -- writing (the pipeline's thread) ---------------------------------------------------
    def upsert(self, batch: pl.DataFrame) -> pl.DataFrame:
        """Apply ``batch`` (last row per key wins); publish and return the upserted rows."""
        missing = [c for c in self.row_keys if c not in batch.columns]
        if missing:
            raise PlanError(
                f"view {self.name!r}: the stream has no column {missing[0]!r} (its columns are "
                f"{batch.columns}); pass key= with columns the stream has"
                + (" (a windowed view needs window_start: build it on .window(...).agg(...))"
                   if missing[0] == WINDOW_COLUMN else "")
            )
        latest, removed = split_deletes(batch, self.row_keys)  # rows that delete their key
        latest = latest.unique(subset=self.row_keys, keep="last", maintain_order=True)
        old = self.frame
        deletes = latest.clear().select(self.row_keys)
        if old.height == 0:
            new = latest
        else:
            old, latest = _common_key_types(old, latest, self.row_keys)
            kept = old.join(latest.select(self.row_keys), on=self.row_keys, how="anti",
                            nulls_equal=True, maintain_order="left")
            if removed.height:
                removed = removed.cast(dict(latest.select(self.row_keys).schema), strict=False)
                deletes = kept.join(removed, on=self.row_keys, how="semi", nulls_equal=True) \
                    .select(self.row_keys)
                kept = kept.join(removed, on=self.row_keys, how="anti", nulls_equal=True,
                                 maintain_order="left")
            new = pl.concat([kept, latest], how="diagonal_relaxed")
        if self.windows is not None and new.height:
            starts = new.get_column(WINDOW_COLUMN).unique().sort(descending=True, nulls_last=True)
            if starts.len() > self.windows:
                cutoff = starts[self.windows - 1]
                keep = pl.col(WINDOW_COLUMN) >= cutoff
                if old.height:
                    deletes = pl.concat([deletes, old.filter(~keep).select(self.row_keys)],
                                        how="vertical_relaxed")
                new = new.filter(keep)
                latest = latest.filter(keep)
        self._publish(new, latest, deletes)
        return latest

    def load(self, frame: pl.DataFrame, seq: int) -> None:
        """Replace the contents (restoring a checkpoint); published as no change."""
        with self._lock:
            self.frame, self.seq = frame, seq
            if self._index is not None:
                self._index = self._build_index(frame)

    def _publish(self, frame: pl.DataFrame, upserts: pl.DataFrame, deletes: pl.DataFrame) -> None:
        if upserts.height == 0 and deletes.height == 0:
            self.frame = frame
            return
        with self._lock:
            self.frame = frame
            index = self._index
            if index is not None:
                for key in self._keys_of(deletes):
                    index.pop(key, None)
                index.update(zip(self._keys_of(upserts), self._encoded(upserts), strict=True))
            self.seq += 1
            self.updated_ms = int(time.time() * 1000)
            change = Change(self.seq, upserts, deletes, self.updated_ms)
            for deliver in list(self._subscribers):
                deliver(change)

    # -- reading (any thread) -------------------------------------------------------------
    def row_text(self, key: Any, encode: Callable[[pl.DataFrame], list[str]]) -> str | None:
        """The encoded row of ``key`` (a value, or a tuple of the ``row_keys`` values), or None.

        The first call builds a hash index of every row encoded by ``encode`` (a whole-frame
        kernel, e.g. to JSON text); from then on each change updates it with its upserted
        and deleted rows, so a lookup is one dict access whatever the view's size.
        """
        index = self._index
        if index is None:
            with self._lock:
                if self._index is None:
                    self._encode = encode
                    self._index = self._build_index(self.frame)
                index = self._index
        return index.get(key)

    def _build_index(self, frame: pl.DataFrame) -> dict[Any, str]:
        if frame.width == 0:
            return {}
        return dict(zip(self._keys_of(frame), self._encoded(frame), strict=True))

    def _keys_of(self, frame: pl.DataFrame) -> Any:
        if frame.height == 0:
            return ()
        columns = [frame.get_column(c).to_list() for c in self.row_keys]
        return columns[0] if len(columns) == 1 else zip(*columns, strict=True)

    def _encoded(self, frame: pl.DataFrame) -> list[str]:
        assert self._encode is not None
        return self._encode(frame) if frame.height else []

    def subscribe(self, deliver: Subscriber) -> tuple[pl.DataFrame, int]:
        """Call ``deliver(change)`` for every change from now on; returns the snapshot
        (frame and sequence number) that the first delivered change follows.

        ``deliver`` runs in the pipeline's thread while the view is locked: it must not
        block (hand the change to a queue and return).
        """
        with self._lock:
            self._subscribers.append(deliver)
            return self.frame, self.seq

    def unsubscribe(self, deliver: Subscriber) -> None:
        """Stop calling ``deliver``."""
        with self._lock:
            if deliver in self._subscribers:
                self._subscribers.remove(deliver)

    @property
    def subscribers(self) -> int:
        """How many subscribers the view has now."""
        return len(self._subscribers)


class ViewRegistry:
    """Views by name, for the server to read. The newest view opened with a name is the one
    served (a flow restarted in the same process replaces its views)."""

    def __init__(self) -> None:
        self._views: dict[str, View] = {}
        self._lock = threading.Lock()
        self.listeners: list[Callable[[View], None]] = []
        """Called with each view added or replaced (e.g. to end streams of the old one)."""

    def add(self, view: View) -> None:
        """Serve ``view`` under its name, replacing any view of that name."""
        with self._lock:
            self._views[view.name] = view
        for listener in list(self.listeners):
            listener(view)

    def get(self, name: str) -> View | None:
        """The view called ``name``, or None."""
        return self._views.get(name)

    def names(self) -> list[str]:
        """Names of all views, sorted."""
        return sorted(self._views)

    def all(self) -> list[View]:
        """All views, by name."""
        return [self._views[n] for n in self.names()]

    def remove(self, name: str) -> None:
        """Stop serving view ``name`` (no error when there is none)."""
        with self._lock:
            self._views.pop(name, None)

    def clear(self) -> None:
        """Forget every view (tests)."""
        with self._lock:
            self._views.clear()


registry = ViewRegistry()
"""The process-wide registry: every :class:`ViewOperator` registers its view here."""


class ViewOperator(Operator):
    """Upserts each batch into a :class:`View` and emits the rows it upserted.

    Stateful under the step's name: the view's rows and sequence number go into
    checkpoints and come back on restore.
    """

    stateful = True

    def __init__(self, name: str, view_name: str, keys: list[str], windows: int | None,
                 views: ViewRegistry | None = None, schema: pl.Schema | None = None) -> None:
        super().__init__(name)
        self.view = View(view_name, keys, windows, schema)
        self.views = registry if views is None else views
        self.views.add(self.view)

    def on_batch(self, batch: pl.DataFrame, port: int) -> None:
        self.emit(self.view.upsert(batch))

    def snapshot(self) -> Any:
        return {"frame": self.view.frame, "seq": self.view.seq}

    def restore(self, state: Any) -> None:
        self.view.load(state["frame"], int(state["seq"]))

    def close(self) -> None:
        # the view stays served (a bounded flow's final result is still worth querying)
        self.view.closed = True


def plan_view(stream: Stream, name: str, key: str | list[str] | tuple[str, ...],
              windows: int | None) -> Stream:
    """Add the view step named ``name`` (and the sink that ends it) after ``stream``; what
    :meth:`tidal.Stream.to_view` does."""
    from tidal.plan import Node, caller_location, check_columns

    where = caller_location()
    if not isinstance(name, str) or not name or not _VIEW_NAME.fullmatch(name):
        raise PlanError(
            f"to_view at {where}: bad view name {name!r}: use letters, digits and '_', not "
            "starting with a digit, e.g. 'card_totals' (it is a URL path segment and a SQL "
            "table name)"
        )
    keys = [key] if isinstance(key, str) else list(key)
    if not keys or not all(isinstance(k, str) for k in keys):
        raise PlanError(f"to_view at {where}: key= must name one column or a list of columns, "
                        f"got {key!r}")
    if windows is not None and (not isinstance(windows, int) or windows < 1):
        raise PlanError(f"to_view at {where}: windows= must be a positive integer, got {windows!r}")
    row_keys = [*keys, WINDOW_COLUMN] if windows is not None else keys
    check_columns(f"to_view {name!r}", where, row_keys, stream.schema)
    label = f"view[{','.join(row_keys)}]" + (f"(windows={windows})" if windows else "")
    schema = stream.schema
    out = stream._then("view", label,
                       lambda step: ViewOperator(step, name, keys, windows, schema=schema),
                       schema=stream.schema, name=name, stateful=True, where=where,
                       signature=label)
    # A flow must end in a sink, and a view is one: this lets a flow whose only output is
    # a view run. Its step shows in the graph as ``<view>.end``.
    flow = stream.flow
    end = _ViewEnd(f"{name}.end")
    step = flow._unique_name(end.name, explicit=False, stateful=False)
    flow._add(Node("sink", step, [(out.node, "out")], None, schema=out.schema, where=where,
                   sink=end))
    return out


class _ViewEnd(Sink):
    """Ends a view's branch of the graph; discards the rows (the view already has them)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, batch: pl.DataFrame) -> None:
        pass


def _common_key_types(old: pl.DataFrame, new: pl.DataFrame,
                      keys: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    # Batches without a declared schema may type a key differently (an all-null batch is
    # Null, a later one Int64 where earlier ones were Int32): join on the common supertype.
    for c in keys:
        a, b = old.schema[c], new.schema[c]
        if a != b:
            common = pl.concat([old.select(c).head(0), new.select(c).head(0)],
                               how="vertical_relaxed").schema[c]
            old = old.with_columns(pl.col(c).cast(common))
            new = new.with_columns(pl.col(c).cast(common))
    return old, new
