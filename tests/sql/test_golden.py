"""Golden SQL files (tests/sql/golden/*.sql): the header pins what a user sees.

- ``-- error: TEXT``: running the script raises a SQL error whose message contains TEXT;
- ``-- rows: JSON``: the script's last SELECT gives exactly these rows (for an updating
  result, the final row of each key), in any order.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import tidal as td
from tidal.errors import TidalError
from tidal.operators.changelog import DELETE

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.sql"))


def _header(text: str) -> tuple[str, str]:
    first = text.splitlines()[0]
    kind, _, value = first.removeprefix("-- ").partition(": ")
    return kind, value


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = path.read_text()
    kind, value = _header(text)
    flow = td.Flow("golden")
    if kind == "error":
        with pytest.raises(TidalError) as info:
            flow.sql(text)
        assert value in str(info.value)
        assert not flow.nodes or all(n.kind == "source" for n in flow.nodes)
        return
    assert kind == "rows", f"{path.name}: the header must be '-- error: ...' or '-- rows: ...'"
    stream = flow.sql(text)
    out = td.sinks.memory()
    stream.sink(out)
    flow.run(quiet=True)
    frame = out.frame()
    if DELETE in frame.columns:  # an updating result's deletes: rows that left it
        frame = frame.filter(~pl.col(DELETE)).drop(DELETE)
    frame = frame.with_columns(pl.col(c).cast(pl.String) for c, t in frame.schema.items()
                               if t.is_temporal())
    want = json.loads(value)
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert sorted(frame.to_dicts(), key=key) == sorted(want, key=key)
