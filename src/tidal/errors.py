"""The one exception tree of tidal.

Every error tidal raises on purpose is a :class:`TidalError`; each message says what went
wrong, where (step, source position, column) and what to do about it::

    TidalError
    ├── PlanError          an invalid pipeline, found before it starts
    ├── ConfigError        wrong configuration (a bad duration, option or path)
    ├── SourceError        a source cannot be opened or read
    ├── SinkError          a sink cannot be opened or written
    └── UserFunctionError  a user function broke its contract (wrong return type)

Bad *records* never raise: they go to the dead-letter output with the reason.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "PlanError",
    "SinkError",
    "SourceError",
    "TidalError",
    "UserFunctionError",
]


class TidalError(Exception):
    """Base class of every error tidal raises on purpose."""


class PlanError(TidalError):
    """The pipeline is invalid; raised while it is built or before it starts."""


class ConfigError(TidalError, ValueError):
    """A configuration value is wrong; the message says which and what to write instead."""


class SourceError(TidalError):
    """A source could not be opened or read."""


class SinkError(TidalError):
    """A sink could not be opened or written."""


class UserFunctionError(TidalError, TypeError):
    """A user function returned something its step cannot use."""
