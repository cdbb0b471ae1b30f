"""Streaming SQL in Flink's dialect, planned onto the same Stream API and runtime.

>>> import tidal as td
>>> flow = td.Flow("sql")
>>> _ = flow.sql('''
...   CREATE TABLE bid (auction BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
...     WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND)
...   WITH ('connector' = 'nexmark', 'events' = '1000')''')
>>> out = td.sinks.memory()
>>> flow.sql("SELECT auction, price FROM bid WHERE auction % 7 = 0").sink(out)
>>> _ = flow.run(quiet=True)
>>> out.frame().columns
['auction', 'price']

See docs/sql.md for the statements, functions and connectors supported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tidal.sql.errors import SqlError, UnsupportedSql
from tidal.sql.session import Result, Session, parse, session_for, udf

if TYPE_CHECKING:
    from tidal.api.flow import Flow
    from tidal.api.stream import Stream

__all__ = ["Result", "Session", "SqlError", "UnsupportedSql", "execute", "parse", "session_for",
           "udf"]


def execute(flow: Flow, script: str) -> Stream | str | None:
    """Run ``script`` against ``flow`` (what :meth:`tidal.Flow.sql` does): the stream of the
    last SELECT, the text of a SHOW/DESCRIBE/EXPLAIN (also printed), or None."""
    results = session_for(flow).execute(flow, script)
    out: Any = None
    for r in results:
        if r.kind == "select":
            out = r.stream
        elif r.text is not None:
            print(r.text)
            out = r.text
    return out
