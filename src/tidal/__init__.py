"""tidal: real-time stream processing for Python.

Columnar micro-batches (Arrow/Polars), event time with watermarks, keyed windows and state.

>>> import polars as pl, tidal as td
>>> flow = td.Flow("quick")
>>> src = td.sources.memory([{"k": "a", "t": 1_000}, {"k": "a", "t": 2_000}])
>>> out = td.sinks.memory()
>>> flow.source(src, timestamp="t").key_by("k").window(td.tumbling("10s")) \\
...     .agg(n=td.agg.count()).sink(out)
>>> _ = flow.run(quiet=True)
>>> out.rows
[{'k': 'a', 'window_start': 0, 'window_end': 10000, 'n': 2}]
"""

from tidal import agg, alerts, errors, sinks, sources, table
from tidal.api.flow import Flow
from tidal.api.pattern import pattern
from tidal.api.stream import KeyedStream, Stream, WindowedStream
from tidal.api.watermarks import bounded_delay
from tidal.api.windows import cumulate, session, sliding, tumbling
from tidal.operators.keyed import KeyState

__version__ = "0.1.0"

__all__ = [
    "Flow",
    "KeyState",
    "KeyedStream",
    "Stream",
    "WindowedStream",
    "__version__",
    "agg",
    "alerts",
    "bounded_delay",
    "cumulate",
    "errors",
    "pattern",
    "session",
    "sinks",
    "sliding",
    "sources",
    "table",
    "tumbling",
]
