"""Consumer-group positions: ``groups/<group>/<topic>.json``, replaced by atomic rename."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from tidal._fsutil import read_json, write_json_atomic

from ._settings import validate_name


class GroupOffsets:
    """The committed next-offset of every (group, topic, partition) under one log folder."""

    def __init__(self, root: Path):
        self.root = root

    def _file(self, group: str, topic: str) -> Path:
        return self.root / validate_name(group, "group") / f"{validate_name(topic)}.json"

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """Committed positions of ``group`` on ``topic`` (empty when it never committed)."""
        try:
            data = read_json(self._file(group, topic))
        except FileNotFoundError:
            return {}
        return {int(p): int(o) for p, o in data["offsets"].items()}

    def commit(self, group: str, topic: str, offsets: dict[int, int]) -> None:
        """Merge ``offsets`` into the group's positions and make them durable before returning."""
        path = self._file(group, topic)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.parent / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # read-merge-write must not lose a concurrent commit
            merged = self.committed(group, topic)
            merged.update(offsets)
            write_json_atomic(path, {"offsets": {str(p): o for p, o in sorted(merged.items())}})
        finally:
            os.close(fd)

    def groups_of(self, topic: str) -> list[str]:
        """Names of the groups that committed positions on ``topic``."""
        if not self.root.is_dir():
            return []
        name = f"{topic}.json"
        return sorted(g.name for g in self.root.iterdir() if (g / name).is_file())

    def forget_topic(self, topic: str) -> None:
        """Remove every group's positions on a deleted topic."""
        for group in self.groups_of(topic):
            try:
                os.unlink(self.root / group / f"{topic}.json")
            except FileNotFoundError:
                pass
