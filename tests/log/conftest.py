"""Shared fixtures for the embedded log tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
if str(SRC) not in sys.path:  # the package may not be installed in the test environment
    sys.path.insert(0, str(SRC))

import tidal.log  # noqa: E402


@pytest.fixture
def log(tmp_path: Path):
    """A fresh log in a temporary folder, closed after the test."""
    lg = tidal.log.open(tmp_path / "log")
    yield lg
    lg.close()


@pytest.fixture
def child_env() -> dict[str, str]:
    """Environment for child Python processes that import tidal from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env
