"""The runnable snippets of docs/alerts.md and docs/dashboard.md print what the pages show."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("page", ["alerts.md", "dashboard.md"])
def test_docs_snippets_run_and_print_what_the_page_shows(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (DOCS / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```\n(?:\n```text\n(.*?)```)?", text, re.S)
    assert blocks
    for code, expected in blocks:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(code, str(DOCS / page), "exec"), {"__name__": "__docs__"})
        if expected:
            assert buf.getvalue() == expected, f"{page} block:\n{code}"
