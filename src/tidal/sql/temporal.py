"""Flink's date and time functions, translated to Polars temporal expressions.

Timestamps are zone-less and read as UTC. A mixin of
:class:`~tidal.sql.expressions.Translator` (``self`` is a Translator): methods named
``_<sqlglot node class>`` translate the functions sqlglot parses into their own nodes, and
``_fn_<name>`` the ones it leaves as ``Anonymous`` calls.
"""

from __future__ import annotations

__all__ = ["TimeFunctions"]


class TimeFunctions:
    """Date and time functions (see the module docstring)."""
