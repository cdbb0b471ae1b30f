"""Flink's arithmetic, math and conditional functions, translated to Polars expressions.

A mixin of :class:`~tidal.sql.expressions.Translator` (``self`` is a Translator): methods
named ``_<sqlglot node class>`` translate the functions sqlglot parses into their own
nodes, and ``_fn_<name>`` the ones it leaves as ``Anonymous`` calls.
"""

from __future__ import annotations

__all__ = ["NumericFunctions"]


class NumericFunctions:
    """Math and conditional functions (see the module docstring)."""
