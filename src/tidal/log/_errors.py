"""Exceptions raised by the embedded log, one branch of :class:`tidal.errors.TidalError`.

LogError                                         (a tidal.errors.TidalError)
 ├── InvalidNameError      (also a ValueError)  a topic or group name breaks the naming rule
 ├── TopicExistsError                           create_topic on a name already taken
 ├── UnknownTopicError     (also a KeyError)    a topic that does not exist
 ├── OffsetOutOfRangeError (also an IndexError) an offset below the partition's start
 └── CorruptRecordError                         a stored batch fails its CRC or framing check
"""

from __future__ import annotations

from tidal.errors import TidalError


class LogError(TidalError):
    """Base class of every error raised by ``tidal.log``."""


class InvalidNameError(LogError, ValueError):
    """A topic or consumer-group name does not follow the naming rule."""


class TopicExistsError(LogError):
    """``create_topic`` was called with a name that already exists."""


class UnknownTopicError(LogError, KeyError):
    """The named topic does not exist in this log directory."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class OffsetOutOfRangeError(LogError, IndexError):
    """The requested offset is below the partition's start (deleted by retention)."""


class CorruptRecordError(LogError):
    """A stored batch failed its CRC32C or framing check; it is never returned."""
