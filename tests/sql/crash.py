"""Crash a SQL pipeline after some checkpoints and restart it (the recovery tests' harness)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import tidal as td
from tidal.runtime.executor import Executor


def crash_and_restart(build: Callable[[], td.Flow], checkpoints: Path, *, batch_rows: int,
                      steps: int = 30, every: int = 11) -> Executor:
    """Run ``build()``'s flow for ``steps`` steps, checkpointing every ``every``, die (the
    checkpoint directory's lock is released, as the kernel does for a killed process), then
    run a new instance of the flow to the end from the last checkpoint; return that one."""
    ex = build().executor(max_batch_rows=batch_rows, checkpoint_dir=checkpoints)
    ex.open()
    for i in range(steps):
        ex.step()
        if i % every == every - 1:
            ex.checkpoint()
    assert ex.store is not None
    ex.store.unlock()
    again = build().executor(max_batch_rows=batch_rows, checkpoint_dir=checkpoints)
    again.run()
    assert again.restored is not None, "the restart began from scratch, not from a checkpoint"
    return again
