"""The live status line shown while a pipeline runs on a terminal."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.text import Text

from tidal._time import MAX_TIME, MIN_TIME, format_ms

if TYPE_CHECKING:
    from tidal.runtime.executor import Executor

__all__ = ["StatusLine", "render"]


def _rate(n: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def render(flow: str, ex: Executor, events_per_s: float) -> Text:
    """One line: flow, events/s, totals, watermark and its lag, late and dead letters."""
    m = ex.metrics
    wm = m.watermark
    if wm in (MIN_TIME,):
        wm_text = "watermark -"
    elif wm >= MAX_TIME:
        wm_text = "watermark end"
    else:
        lag = max(0, ex.clock.now() - wm) / 1000
        wm_text = f"watermark {format_ms(wm)[11:23]} (lag {lag:.1f}s)"
    t = Text()
    t.append(f"{flow} ", style="bold cyan")
    t.append(f"{_rate(events_per_s)} ev/s", style="bold")
    t.append(f" | in {m.events_in:,} | out {m.rows_out:,} | {wm_text}")
    t.append(f" | late {m.late:,}", style="yellow" if m.late else "")
    t.append(f" | dead letters {m.dead_letters:,}", style="red" if m.dead_letters else "")
    return t


class StatusLine:
    """A rich ``Live`` line on standard error, refreshed from the run loop."""

    def __init__(self, flow: str, console: Console) -> None:
        self.flow = flow
        self.console = console
        self.live = Live(Text(""), console=console, refresh_per_second=4, transient=False)
        self.last_events = 0
        self.last_time = time.monotonic()

    @classmethod
    def for_terminal(cls, flow: str) -> StatusLine | None:
        """A status line on stderr if it is a terminal, else ``None``."""
        if not sys.stderr.isatty():
            return None
        return cls(flow, Console(file=sys.stderr))

    def __enter__(self) -> StatusLine:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def update(self, ex: Executor) -> None:
        """Refresh from the executor's counters."""
        now = time.monotonic()
        rate = (ex.metrics.events_in - self.last_events) / max(now - self.last_time, 1e-9)
        self.last_events, self.last_time = ex.metrics.events_in, now
        self.live.update(render(self.flow, ex, rate))
