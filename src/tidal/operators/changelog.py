"""The changelog of an updating stream: how a row says "this key is gone".

An *updating* stream (SQL's non-windowed GROUP BY, Top-N, a GROUP BY over those) is an
upsert stream: each row replaces the row of its key. A stream that can also *remove* a key's
row carries the reserved Boolean column :data:`DELETE` (``"__delete"``):

- ``__delete = false``: the row is the key's new row (an upsert, Flink's ``+I``/``+U``);
- ``__delete = true``: the key's row is gone (Flink's ``-D``); only the key columns of such
  a row are meaningful, the others are null.

Streams that never delete have no such column, so append and upsert-only pipelines are
unchanged. Like every ``__`` column it is hidden from SQL's ``SELECT *``. Consumers of
updating results honour it: the upsert sinks (sqlite and postgres ``DELETE`` the key's row,
Kafka sends a tombstone, redis ``DEL``\\ s the key, the console prints ``-D``), materialized
views drop the row, and :func:`apply_changelog` turns a captured changelog into the table it
describes. Sinks call :func:`split_deletes`.

>>> import polars as pl
>>> log = pl.DataFrame({"k": [1, 2, 1, 2], "v": [10, 20, 11, None],
...                     DELETE: [False, False, False, True]})
>>> apply_changelog(log, ["k"]).rows()
[(1, 11)]
"""

from __future__ import annotations

import polars as pl

__all__ = ["DELETE", "apply_changelog", "split_deletes"]

DELETE = "__delete"
"""The reserved Boolean column marking a key's row as deleted (see the module docstring)."""


def split_deletes(batch: pl.DataFrame, key: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(upserts, deletes)`` of a changelog batch: the last change per ``key`` wins; the
    upserts without the :data:`DELETE` column, the deletes as their key columns only.

    A batch without the column is all upserts (returned as is). Sinks that apply updating
    results call this, then write the upserts and remove the deleted keys.

    >>> b = pl.DataFrame({"k": [1, 1, 2], "v": [1, None, 2], DELETE: [False, True, False]})
    >>> up, gone = split_deletes(b, ["k"])
    >>> up.rows(), gone.rows()
    ([(2, 2)], [(1,)])
    """
    if DELETE not in batch.columns:
        return batch, batch.clear().select(key)
    if key:
        batch = batch.unique(subset=key, keep="last", maintain_order=True)
    gone = batch.get_column(DELETE).fill_null(False)
    return batch.filter(~gone).drop(DELETE), batch.filter(gone).select(key)


def apply_changelog(changelog: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """The table a changelog describes: the last row of each ``key``, deleted keys left out,
    without the :data:`DELETE` column (what an upsert sink holds at the end)."""
    latest = changelog.unique(subset=key, keep="last", maintain_order=True)
    if DELETE not in latest.columns:
        return latest
    return latest.filter(~latest.get_column(DELETE).fill_null(False)).drop(DELETE)
