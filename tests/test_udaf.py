"""User-defined aggregates (``td.agg.udaf``) in windows, running aggregates and SQL."""

from __future__ import annotations

import polars as pl
import pytest

import tidal as td
from tidal.operators.changelog import DELETE, apply_changelog
from tidal.sql import SqlError

ROWS = [{"k": i % 3, "q": float(i % 7), "p": (i * 37) % 101, "t": i * 100} for i in range(300)]
FRAME = pl.DataFrame(ROWS)
spread = td.agg.udaf(lambda s: s.max() - s.min(), return_type="BIGINT", name="spread")
total = td.agg.udaf(lambda q, p: (q * p).sum(), merge=lambda s: s.sum(), return_type="DOUBLE",
                    name="total")


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_window_udafs_equal_the_same_functions_over_whole_groups(batch: int) -> None:
    flow = td.Flow("udaf")
    out = td.sinks.memory()
    flow.source(td.sources.memory(ROWS), timestamp="t").key_by("k") \
        .window(td.tumbling("4s")).agg(sp=spread("p"), tot=total("q", "p")).sink(out)
    flow.run(quiet=True, max_batch_rows=batch)
    got = out.frame().sort("k", "window_start").select("k", "window_start", "sp", "tot")
    want = FRAME.with_columns(window_start=pl.col("t") // 4000 * 4000) \
        .group_by("k", "window_start").agg(
            sp=(pl.col("p").max() - pl.col("p").min()),
            tot=(pl.col("q") * pl.col("p")).sum()).sort("k", "window_start")
    assert got.to_dicts() == want.to_dicts()


def test_sql_calls_registered_aggregates_with_expressions_and_having() -> None:
    flow = td.Flow("udaf-sql")
    flow.register_table("t", flow.source(td.sources.memory(ROWS), timestamp="t"))
    flow.register_function("spread", spread)
    flow.register_function("total", total)
    out = td.sinks.memory()
    flow.sql("SELECT k, spread(p) AS sp, total(q, p + 1) AS tot FROM t GROUP BY k "
             "HAVING spread(p) > 0").sink(out)
    flow.run(quiet=True, max_batch_rows=50)
    final = apply_changelog(out.frame(), ["k"]).drop(DELETE, strict=False).sort("k")
    want = FRAME.group_by("k").agg(sp=pl.col("p").max() - pl.col("p").min(),
                                   tot=(pl.col("q") * (pl.col("p") + 1)).sum()).sort("k")
    assert final.to_dicts() == want.to_dicts()


def test_sql_udaf_misuse_is_explained() -> None:
    flow = td.Flow("udaf-err")
    flow.register_table("t", flow.source(td.sources.memory(ROWS), timestamp="t"))
    flow.register_function("spread", spread)
    with pytest.raises(SqlError, match="aggregates are not allowed in WHERE"):
        flow.sql("SELECT k FROM t WHERE spread(p) > 3")
    with pytest.raises(SqlError, match="FILTER .* user-defined aggregate spread"):
        flow.sql("SELECT k, spread(p) FILTER (WHERE p > 3) FROM t GROUP BY k")
    with pytest.raises(td.errors.ConfigError, match="return_type"):
        td.agg.udaf(lambda s: s.sum(), return_type=42)
