"""``CROSS JOIN UNNEST(array)``: one row per element of each row's array, as in Flink."""

from __future__ import annotations

import polars as pl
import pytest

import tidal as td
from tidal.sql import SqlError, UnsupportedSql


def _flow() -> td.Flow:
    flow = td.Flow("unnest")
    orders = pl.DataFrame({
        "id": [1, 2, 3, 4],
        "tags": ["a,b", None, "c", ""],
        "items": [[{"sku": "x", "q": 2}, {"sku": "y", "q": None}], [], None, [{"sku": "z", "q": 1}]],
        "t": [1000, 2000, 3000, 4000],
    })
    flow.register_table("orders", flow.source(td.sources.memory(orders), timestamp="t"))
    return flow


def _rows(flow: td.Flow, query: str) -> list[dict[str, object]]:
    out = td.sinks.memory()
    flow.sql(query).sink(out)
    flow.run(quiet=True)
    return out.rows


def test_cross_join_unnest_gives_a_row_per_element() -> None:
    # SPLIT('', ',') is [''] (one empty string), a NULL string gives a NULL array: no row
    assert _rows(_flow(), "SELECT id, tag FROM orders CROSS JOIN UNNEST(SPLIT(tags, ',')) "
                          "AS u(tag)") == [{"id": 1, "tag": "a"}, {"id": 1, "tag": "b"},
                                           {"id": 3, "tag": "c"}, {"id": 4, "tag": ""}]


def test_comma_unnest_of_rows_gives_their_fields_with_ordinality() -> None:
    rows = _rows(_flow(), "SELECT o.id, i.sku, i.q, i.n FROM orders AS o, "
                          "UNNEST(o.items) WITH ORDINALITY AS i(sku, q, n)")
    assert rows == [{"id": 1, "sku": "x", "q": 2, "n": 1}, {"id": 1, "sku": "y", "q": None, "n": 2},
                    {"id": 4, "sku": "z", "q": 1, "n": 1}]


def test_left_join_unnest_on_true_keeps_rows_without_elements() -> None:
    rows = _rows(_flow(), "SELECT id, sku FROM orders LEFT JOIN UNNEST(items) AS i ON TRUE")
    assert rows == [{"id": 1, "sku": "x"}, {"id": 1, "sku": "y"}, {"id": 2, "sku": None},
                    {"id": 3, "sku": None}, {"id": 4, "sku": "z"}]


def test_unnested_rows_keep_their_event_time_for_windows() -> None:
    rows = _rows(_flow(), """
      SELECT window_start, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE (
        SELECT id, sku, t FROM orders CROSS JOIN UNNEST(items) AS i) , DESCRIPTOR(t),
        INTERVAL '2' SECOND)) GROUP BY window_start, window_end""")
    assert sorted((r["window_start"], r["n"]) for r in rows) == [(0, 2), (4000, 1)]


@pytest.mark.parametrize(("query", "error", "message"), [
    ("SELECT * FROM orders CROSS JOIN UNNEST(id) AS u(x)", SqlError,
     "UNNEST(id): it is BIGINT, not an array"),
    ("SELECT * FROM orders CROSS JOIN UNNEST(items) AS u(x)", SqlError,
     "UNNEST(items) gives 2 column(s) (sku, q) but the alias names 1 (x)"),
    ("SELECT * FROM orders LEFT JOIN UNNEST(items) AS u(a, b) ON id = 1", UnsupportedSql,
     "is not supported; write CROSS JOIN UNNEST(...) or LEFT JOIN UNNEST(...) ON TRUE"),
    ("SELECT * FROM orders CROSS JOIN UNNEST(items, items) AS u(a, b, c, d)", UnsupportedSql,
     "UNNEST of several arrays is not supported"),
])
def test_unnest_errors(query: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        _flow().sql(query)
    assert message in str(info.value)
