"""Flink's string, regex, JSON and hash functions, translated to Polars string expressions.

A mixin of :class:`~tidal.sql.expressions.Translator` (``self`` is a Translator): methods
named ``_<sqlglot node class>`` translate the functions sqlglot parses into their own
nodes, and ``_fn_<name>`` the ones it leaves as ``Anonymous`` calls.
"""

from __future__ import annotations

__all__ = ["StringFunctions"]


class StringFunctions:
    """String, regex, JSON and hash functions (see the module docstring)."""
