"""Shared test set-up."""

from __future__ import annotations

import signal
import subprocess
import threading

import pytest

# Scripts that tests run as subprocesses are not test modules (and must not be imported
# by --doctest-modules: they do their work at import time).
# conftest files are loaded as plugins, never collected as doctest modules (that would
# import each under the same module name "conftest").
collect_ignore_glob = ["chaos/*_pipeline.py", "conftest.py", "*/conftest.py", "*/*/conftest.py"]


def run_and_kill(args: list[str], kill_after: float | None, env: dict[str, str] | None = None,
                 timeout: float = 240) -> tuple[int, str, str]:
    """Run a pipeline script; with ``kill_after``, SIGKILL it that many seconds after it
    printed its ``started`` line, so how long the interpreter takes to start decides neither
    whether the kill lands nor how much of the job a run gets. Returns the exit status and
    the output (a SIGKILL is ``-signal.SIGKILL``)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # blocks until started (or the process ended)
    killer = None
    if kill_after is not None and first.startswith("started"):
        killer = threading.Timer(kill_after, proc.send_signal, args=(signal.SIGKILL,))
        killer.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if killer is not None:
            killer.cancel()
    return proc.returncode, first + out, err


@pytest.fixture
def kill_run():  # type: ignore[no-untyped-def]
    """:func:`run_and_kill`, for the kill-and-restart tests."""
    return run_and_kill
