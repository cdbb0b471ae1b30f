"""Checkpoint storage: consistent snapshots of a flow in a directory, published atomically.

Layout of a checkpoint directory::

    LOCK                    held (flock) by the one process running the flow
    chk-0000000007/         one checkpoint
        op-000.pkl          state of one stateful operator (pickle; Polars frames inside)
        sink-000.arrow      rows an exactly-once sink receives when this checkpoint commits
        MANIFEST            JSON: positions, watermarks, files with sizes and CRC32C
    savepoints/sp-.../      same layout, written on request, never pruned

A checkpoint exists only once its ``MANIFEST`` does; it is written last, as a temporary file
that is fsynced and renamed, then the directory is fsynced. A directory without one is a
checkpoint that a crash interrupted and is ignored (and removed). Every file is verified
against the manifest's CRC32C on load: a corrupt newest checkpoint makes recovery fall
back to the previous one, and when none is usable recovery refuses, naming the file.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pickle
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crc32c
import polars as pl

from tidal._fsutil import fsync_dir, write_durable
from tidal.errors import TidalError

__all__ = ["MANIFEST", "Checkpoint", "CheckpointError", "CheckpointStore", "DirectoryLocked"]

MANIFEST = "MANIFEST"
_PREFIX = "chk-"


class CheckpointError(TidalError):
    """A checkpoint could not be written or no usable checkpoint could be read."""


class DirectoryLocked(CheckpointError):
    """Another live process is running a flow on this checkpoint directory."""


def _write_file(path: Path, data: bytes) -> str:
    write_durable(path, data)
    return _checksum(data)


def _checksum(data: bytes) -> str:
    return f"{crc32c.crc32c(data):08x}"


@dataclass
class Checkpoint:
    """A complete checkpoint as read from disk (state files loaded lazily)."""

    path: Path
    manifest: dict[str, Any]

    @property
    def id(self) -> int:
        """Checkpoint number, increasing over the life of a checkpoint directory."""
        return int(self.manifest["id"])

    def _read(self, entry: dict[str, Any]) -> bytes:
        path = self.path / entry["file"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"checkpoint file {path} cannot be read: {exc}") from exc
        if len(data) != entry["size"] or _checksum(data) != entry["crc32c"]:
            raise CheckpointError(
                f"checkpoint file {path} is corrupt (size or CRC32C does not match {MANIFEST})"
            )
        return data

    def verify(self) -> None:
        """Check every file against the manifest; raise :class:`CheckpointError` if one fails."""
        for entry in [*self.manifest["operators"].values(), *self.manifest["sinks"].values()]:
            self._read(entry)

    def operator_state(self, name: str) -> Any:
        """The snapshot of operator ``name``."""
        return pickle.loads(self._read(self.manifest["operators"][name]))

    def sink_rows(self, name: str) -> pl.DataFrame | None:
        """Rows staged for exactly-once sink ``name`` in this checkpoint (None: none)."""
        entry = self.manifest["sinks"].get(name)
        if entry is None:
            return None
        return pl.read_ipc(io.BytesIO(self._read(entry)))


class CheckpointStore:
    """A checkpoint directory: lock it, write checkpoints, find the newest usable one."""

    def __init__(self, path: str | os.PathLike[str], keep: int = 3) -> None:
        self.path = Path(path)
        self.keep = max(1, keep)
        self._lock: io.TextIOWrapper | None = None

    # -- exclusive use ----------------------------------------------------------------------
    def lock(self, flow: str) -> None:
        """Take the directory for this process, or raise :class:`DirectoryLocked` naming the
        holder. The lock is an ``flock`` on ``LOCK``: released by the kernel when the holder
        dies, kept while it lives (even stopped with SIGSTOP)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            f = open(self.path / "LOCK", "a+")  # noqa: SIM115 - held for the run
        except OSError as exc:
            raise CheckpointError(f"cannot use checkpoint directory {self.path}: {exc}") from exc
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise DirectoryLocked(
                f"checkpoint directory {self.path} is in use by {holder}; two instances must "
                "never run one flow at once: stop that one first, or use another directory"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"flow {flow!r} pid {os.getpid()} on {socket.gethostname()} since "
                f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
        f.flush()
        self._lock = f

    def unlock(self) -> None:
        """Release the directory."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # -- writing ----------------------------------------------------------------------------
    def next_id(self) -> int:
        """One more than the highest checkpoint number ever written here."""
        ids = [int(p.name[len(_PREFIX):]) for p in self._dirs(self.path)]
        sp = self.path / "savepoints"
        ids += [int(m["id"]) for m in self._manifests(sp)] if sp.exists() else []
        return max(ids, default=0) + 1

    def write(self, checkpoint_id: int, meta: dict[str, Any], operators: dict[str, tuple[Any, str]],
              sinks: dict[str, pl.DataFrame], savepoint: bool = False) -> Checkpoint:
        """Write one checkpoint (see the module docstring for the protocol) and return it.

        ``operators`` maps name -> (snapshot, signature); ``sinks`` maps name -> staged rows.
        Any failure raises :class:`CheckpointError` and leaves no manifest behind.
        """
        base = self.path / "savepoints" if savepoint else self.path
        name = f"sp-{checkpoint_id:010d}" if savepoint else f"{_PREFIX}{checkpoint_id:010d}"
        target = base / name
        try:
            target.mkdir(parents=True, exist_ok=False)
            ops: dict[str, Any] = {}
            for i, (op_name, (state, signature)) in enumerate(operators.items()):
                data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
                fname = f"op-{i:03d}.pkl"
                ops[op_name] = {"file": fname, "size": len(data), "crc32c": _write_file(target / fname, data),
                                "signature": signature}
            staged: dict[str, Any] = {}
            for i, (sink_name, rows) in enumerate(sinks.items()):
                buf = io.BytesIO()
                rows.write_ipc(buf)
                data = buf.getvalue()
                fname = f"sink-{i:03d}.arrow"
                staged[sink_name] = {"file": fname, "size": len(data), "rows": rows.height,
                                     "crc32c": _write_file(target / fname, data)}
            manifest = {**meta, "id": checkpoint_id, "created_ms": int(time.time() * 1000),
                        "operators": ops, "sinks": staged, "savepoint": savepoint}
            tmp = target / f"{MANIFEST}.tmp"
            _write_file(tmp, json.dumps(manifest, indent=1, default=str).encode())
            os.replace(tmp, target / MANIFEST)
            fsync_dir(target)
            fsync_dir(base)
        except OSError as exc:
            shutil.rmtree(target, ignore_errors=True)
            raise CheckpointError(
                f"checkpoint {checkpoint_id} could not be written to {target}: {exc}; "
                "nothing was published (check free space and permissions of the directory)"
            ) from exc
        return Checkpoint(target, manifest)

    def prune(self) -> None:
        """Delete all but the newest ``keep`` complete checkpoints (savepoints stay)."""
        complete = [p for p in self._dirs(self.path) if (p / MANIFEST).exists()]
        for old in complete[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    # -- reading ----------------------------------------------------------------------------
    @staticmethod
    def _dirs(path: Path) -> list[Path]:
        if not path.exists():
            return []
        return sorted((p for p in path.iterdir() if p.name.startswith(_PREFIX) and p.is_dir()),
                      key=lambda p: p.name)

    @staticmethod
    def _manifests(path: Path) -> list[dict[str, Any]]:
        out = []
        for p in sorted(path.iterdir()):
            try:
                out.append(json.loads((p / MANIFEST).read_text()))
            except (OSError, ValueError):
                continue
        return out

    def checkpoints(self) -> list[Checkpoint]:
        """Complete checkpoints (with a readable manifest), oldest first; no verification."""
        return self.checkpoints_in(self.path)

    @staticmethod
    def checkpoints_in(path: Path) -> list[Checkpoint]:
        """Complete checkpoints or savepoints directly under ``path``."""
        out = []
        dirs = sorted(p for p in path.iterdir() if p.is_dir()) if path.exists() else []
        for p in dirs:
            try:
                out.append(Checkpoint(p, json.loads((p / MANIFEST).read_text())))
            except (OSError, ValueError):
                continue
        return out

    def latest(self, warn: Any = None) -> Checkpoint | None:
        """The newest checkpoint whose files all verify.

        Directories without a manifest (interrupted writes) are removed. A newer checkpoint
        that fails verification is reported through ``warn(message)`` and skipped; if
        checkpoints exist but none verifies, :class:`CheckpointError` names the bad file.
        """
        errors: list[str] = []
        for p in reversed(self._dirs(self.path)):
            manifest_path = p / MANIFEST
            if not manifest_path.exists():
                shutil.rmtree(p, ignore_errors=True)  # a write a crash interrupted
                continue
            try:
                cp = Checkpoint(p, json.loads(manifest_path.read_text()))
                cp.verify()
            except (OSError, ValueError) as exc:
                errors.append(f"{manifest_path} is unreadable: {exc}")
            except CheckpointError as exc:
                errors.append(str(exc))
            else:
                for e in errors:
                    if warn is not None:
                        warn(f"{e}; falling back to checkpoint {cp.id}")
                return cp
        if errors:
            raise CheckpointError(
                "no usable checkpoint in " + str(self.path) + ": " + "; ".join(errors) +
                ". Refusing to start from scratch: restore the directory, or delete it to "
                "start over deliberately"
            )
        return None

    @staticmethod
    def load(path: str | os.PathLike[str]) -> Checkpoint:
        """A specific checkpoint or savepoint directory, verified."""
        p = Path(path)
        try:
            cp = Checkpoint(p, json.loads((p / MANIFEST).read_text()))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{p} is not a complete checkpoint: {exc}") from exc
        cp.verify()
        return cp
