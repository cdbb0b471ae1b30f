"""Topic settings, their validation, and the naming rule for topics and groups."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ._errors import InvalidNameError

NAME_RULE = (
    "names must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$ "
    "(a letter or digit, then letters, digits, '.', '_' or '-'; at most 201 characters)"
)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")

FsyncPolicy = Literal["interval", "batch", "never"]
_FSYNC_POLICIES = ("interval", "batch", "never")

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
DEFAULT_INDEX_INTERVAL_BYTES = 4096
DEFAULT_FSYNC_INTERVAL_MS = 1000


def validate_name(name: object, what: str = "topic") -> str:
    """Return ``name`` if it is a valid topic/group name, else raise :class:`InvalidNameError`.

    The rule keeps every name a single plain path component: no separators, no ``.``/``..``,
    nothing that could reach outside the log directory.
    """
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise InvalidNameError(f"invalid {what} name {name!r}: {NAME_RULE}")
    return name


@dataclass(frozen=True, slots=True)
class TopicSettings:
    """How a topic is stored; persisted as ``topic.json`` in the topic's folder."""

    name: str
    partitions: int = 1
    retention_bytes: int | None = None
    retention_ms: int | None = None
    compact: bool = False
    fsync: FsyncPolicy = "interval"
    fsync_interval_ms: int = DEFAULT_FSYNC_INTERVAL_MS
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    index_interval_bytes: int = DEFAULT_INDEX_INTERVAL_BYTES

    def __post_init__(self) -> None:
        validate_name(self.name)
        _check_int("partitions", self.partitions, minimum=1)
        if self.retention_bytes is not None:
            _check_int("retention_bytes", self.retention_bytes, minimum=0)
        if self.retention_ms is not None:
            _check_int("retention_ms", self.retention_ms, minimum=0)
        if not isinstance(self.compact, bool):
            raise TypeError(f"compact must be a bool, got {type(self.compact).__name__}")
        if self.fsync not in _FSYNC_POLICIES:
            raise ValueError(
                f"fsync must be one of {', '.join(map(repr, _FSYNC_POLICIES))}, got {self.fsync!r}"
            )
        _check_int("fsync_interval_ms", self.fsync_interval_ms, minimum=1)
        _check_int("segment_bytes", self.segment_bytes, minimum=1024)
        _check_int("index_interval_bytes", self.index_interval_bytes, minimum=1)

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored in ``topic.json``."""
        return {"version": 1, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TopicSettings:
        """Rebuild settings from ``topic.json``; unknown keys from newer versions are ignored."""
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})


def _check_int(what: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
