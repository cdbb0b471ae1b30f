"""The log folder: topics, consumer-group positions, and the background fsync of appends."""

from __future__ import annotations

import errno
import os
import shutil
import threading
import uuid
from pathlib import Path

from tidal._fsutil import fsync_dir, read_json, write_json_atomic

from ._errors import TopicExistsError, UnknownTopicError
from ._groups import GroupOffsets
from ._record import GroupDescription, PartitionDescription, TopicDescription
from ._segment import LOG_SUFFIX, segment_name
from ._settings import (
    DEFAULT_FSYNC_INTERVAL_MS,
    DEFAULT_INDEX_INTERVAL_BYTES,
    DEFAULT_SEGMENT_BYTES,
    FsyncPolicy,
    TopicSettings,
    validate_name,
)
from ._topic import Topic

ENV_DIR = "TIDAL_LOG_DIR"
DEFAULT_DIR = "./.tidal/log"
TOPIC_FILE = "topic.json"


def open(path: str | os.PathLike[str] | None = None) -> Log:  # noqa: A001 - the module's verb
    """Open (creating if needed) the log stored in folder ``path``.

    ``path`` defaults to the ``TIDAL_LOG_DIR`` environment variable, else ``log`` under
    ``TIDAL_HOME`` (default ``./.tidal``). Several processes may open the same folder at once.
    """
    if path is None:
        home = os.environ.get("TIDAL_HOME")
        path = os.environ.get(ENV_DIR) or (Path(home) / "log" if home else DEFAULT_DIR)
    return Log(Path(path))


class Log:
    """An embedded, durable, partitioned log: Kafka's model in a local folder.

    Layout: ``topics/<name>/topic.json`` and ``topics/<name>/<partition>/`` holding
    segment and index files; ``groups/<group>/<topic>.json`` holding committed positions.
    Use :func:`tidal.log.open` to get one; close it (or use ``with``) to fsync pending
    appends and release files.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._topics_dir = self.path / "topics"
        self._topics_dir.mkdir(parents=True, exist_ok=True)
        self._groups = GroupOffsets(self.path / "groups")
        self._open: dict[str, Topic] = {}
        self._lock = threading.Lock()
        self._dirty: set[Topic] = set()
        self._wake = threading.Condition(self._lock)
        self._flusher: threading.Thread | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"Log({str(self.path)!r})"

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- topics --------------------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        *,
        retention_bytes: int | None = None,
        retention_ms: int | None = None,
        compact: bool = False,
        fsync: FsyncPolicy = "interval",
        fsync_interval_ms: int = DEFAULT_FSYNC_INTERVAL_MS,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        index_interval_bytes: int = DEFAULT_INDEX_INTERVAL_BYTES,
        exist_ok: bool = False,
    ) -> Topic:
        """Create a topic and return it.

        ``retention_bytes``/``retention_ms`` bound each partition by size and by the age of
        its newest row per segment (whole closed segments are deleted). ``compact`` allows
        :meth:`Topic.compact`. ``fsync`` is ``"batch"`` (every append is fsynced before it
        returns), ``"interval"`` (at most every ``fsync_interval_ms``; a background thread
        catches up) or ``"never"`` (left to the OS). Segments roll at ``segment_bytes``.
        Raises :class:`TopicExistsError` if the name is taken, unless ``exist_ok``.
        """
        settings = TopicSettings(
            name=validate_name(name),
            partitions=partitions,
            retention_bytes=retention_bytes,
            retention_ms=retention_ms,
            compact=compact,
            fsync=fsync,
            fsync_interval_ms=fsync_interval_ms,
            segment_bytes=segment_bytes,
            index_interval_bytes=index_interval_bytes,
        )
        final = self._topics_dir / name
        if (final / TOPIC_FILE).exists():
            if exist_ok:
                return self.topic(name)
            raise TopicExistsError(f"topic {name!r} already exists in {self.path}")
        # Build the topic in a hidden folder, then publish it with one rename: other
        # processes see no topic or a complete one, and two creators cannot both win.
        tmp = self._topics_dir / f".creating-{name}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            for p in range(partitions):
                (tmp / str(p)).mkdir()
                with (tmp / str(p) / (segment_name(0) + LOG_SUFFIX)).open("wb"):
                    pass
            write_json_atomic(tmp / TOPIC_FILE, settings.to_json())
            try:
                os.rename(tmp, final)
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                if exist_ok:
                    return self.topic(name)
                raise TopicExistsError(f"topic {name!r} already exists in {self.path}") from None
            fsync_dir(self._topics_dir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return self.topic(name)

    def topic(self, name: str) -> Topic:
        """The existing topic ``name``; its partitions are recovered on first access.

        Raises :class:`UnknownTopicError` if there is no such topic.
        """
        validate_name(name)
        with self._lock:
            self._check_open()
            topic = self._open.get(name)
            if topic is None:
                try:
                    settings = TopicSettings.from_json(
                        read_json(self._topics_dir / name / TOPIC_FILE)
                    )
                except FileNotFoundError:
                    raise UnknownTopicError(
                        f"topic {name!r} does not exist in {self.path}; create it with "
                        f"create_topic({name!r})"
                    ) from None
                topic = self._open[name] = Topic(
                    self._topics_dir / name, settings, self._mark_dirty
                )
            return topic

    def topics(self) -> list[str]:
        """Names of all topics, sorted."""
        return sorted(
            d.name
            for d in self._topics_dir.iterdir()
            if not d.name.startswith(".") and (d / TOPIC_FILE).is_file()
        )

    def delete_topic(self, name: str) -> None:
        """Delete a topic, its data and every group's positions on it."""
        validate_name(name)
        folder = self._topics_dir / name
        if not (folder / TOPIC_FILE).is_file():
            raise UnknownTopicError(f"topic {name!r} does not exist in {self.path}")
        with self._lock:
            topic = self._open.pop(name, None)
            self._dirty.discard(topic)
        if topic is not None:
            topic.close()
        graveyard = self._topics_dir / f".deleted-{name}-{uuid.uuid4().hex}"
        os.rename(folder, graveyard)  # the name disappears at once, the files follow
        fsync_dir(self._topics_dir)
        self._groups.forget_topic(name)
        shutil.rmtree(graveyard, ignore_errors=True)

    def describe(self, name: str) -> TopicDescription:
        """Partitions (offsets, sizes), settings, and every group's position and lag."""
        topic = self.topic(name)
        parts = []
        for p in range(topic.partitions):
            size, segments = topic._partitions[p].size_bytes()
            parts.append(
                PartitionDescription(
                    partition=p,
                    start_offset=topic.start_offset(p),
                    end_offset=topic.end_offset(p),
                    size_bytes=size,
                    segments=segments,
                )
            )
        groups = []
        for group in self._groups.groups_of(name):
            committed = self._groups.committed(group, name)
            lag = {
                d.partition: max(
                    0, d.end_offset - max(committed.get(d.partition, 0), d.start_offset)
                )
                for d in parts
            }
            groups.append(GroupDescription(group, committed, lag))
        return TopicDescription(name, topic.settings.to_json(), parts, groups)

    # -- consumer groups -----------------------------------------------------------------

    def commit(self, group: str, topic: str, offsets: dict[int, int]) -> None:
        """Durably record ``group``'s next offset to read per partition of ``topic``.

        Partitions not named keep their previous position. The file is replaced by an
        atomic rename after fsync, so a crash leaves the old or the new positions.
        """
        t = self.topic(topic)
        clean: dict[int, int] = {}
        for p, o in offsets.items():
            t._partition(p)
            if isinstance(o, bool) or not isinstance(o, int) or o < 0:
                raise ValueError(
                    f"commit({group!r}, {topic!r}): offset for partition {p} must be a "
                    f"non-negative int, got {o!r}"
                )
            clean[int(p)] = int(o)
        self._groups.commit(group, topic, clean)

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """``group``'s committed next offsets on ``topic`` by partition (empty if none)."""
        self.topic(topic)
        return self._groups.committed(group, topic)

    # -- durability ----------------------------------------------------------------------

    def _mark_dirty(self, topic: Topic) -> None:
        with self._lock:
            if self._closed:
                return
            self._dirty.add(topic)
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_loop, name="tidal-log-fsync", daemon=True
                )
                self._flusher.start()
            self._wake.notify()

    def _flush_loop(self) -> None:
        with self._lock:
            while not self._closed:
                if not self._dirty:
                    self._wake.wait()
                    continue
                period = min(t.settings.fsync_interval_ms for t in self._dirty) / 1000
                self._wake.wait(period)
                dirty = list(self._dirty)
                self._lock.release()
                try:
                    done = []
                    for topic in dirty:
                        for part in topic._partitions:
                            part.flush(only_if_due=True)
                        if not any(part.dirty for part in topic._partitions):
                            done.append(topic)
                finally:
                    self._lock.acquire()
                self._dirty.difference_update(done)

    def flush(self) -> None:
        """fsync every append this process made that is not durable yet."""
        with self._lock:
            topics = list(self._open.values())
        for topic in topics:
            topic.flush()

    def close(self) -> None:
        """fsync pending appends (except ``fsync="never"`` topics) and close all files."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
            flusher, topics = self._flusher, list(self._open.values())
            self._open.clear()
            self._dirty.clear()
        if flusher is not None:
            flusher.join()
        for topic in topics:
            topic.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{self!r} is closed")
