"""Processing-time lookup joins (``JOIN t FOR SYSTEM_TIME AS OF a.p``) into bounded tables."""

from __future__ import annotations

from pathlib import Path

import polars as pl

import tidal as td

BID = """CREATE TABLE bid (auction BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND)
  WITH ('connector' = 'nexmark', 'events' = '3000');"""


def _run(script: str) -> pl.DataFrame:
    flow = td.Flow("lookup")
    out = td.sinks.memory()
    flow.sql(script).sink(out)
    flow.run(quiet=True)
    return out.frame()


def test_left_lookup_into_datagen_keeps_unmatched_rows() -> None:
    got = _run(BID + """
      CREATE TABLE side (k BIGINT, v AS CONCAT('n', CAST(k AS STRING)))
        WITH ('connector' = 'datagen', 'fields.k.kind' = 'sequence', 'fields.k.start' = '1000',
              'fields.k.end' = '1004');
      SELECT b.auction, s.v, s.k FROM (SELECT *, PROCTIME() AS p FROM bid) AS b
        LEFT JOIN side FOR SYSTEM_TIME AS OF b.p AS s ON b.auction = s.k""")
    assert got.columns == ["auction", "v", "k"]
    hit = got.filter(pl.col("auction") <= 1004)
    assert hit.height and (hit["v"] == "n" + hit["auction"].cast(pl.String)).all()
    assert got.filter(pl.col("auction") > 1004)["v"].null_count() == got.height - hit.height


def test_inner_lookup_into_a_csv_file_with_a_residual(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    pl.DataFrame({"id": [1000, 1001, 1002], "name": ["a", "b", "c"]}).write_csv(path)
    got = _run(BID + f"""
      CREATE TABLE names (id BIGINT, name STRING)
        WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv');
      SELECT b.auction, n.name FROM (SELECT *, PROCTIME() AS p FROM bid) AS b
        JOIN names FOR SYSTEM_TIME AS OF b.p AS n ON n.id = b.auction AND n.name <> 'b'""")
    assert set(got["auction"]) == {1000, 1002}
    assert (got["name"] == got["auction"].replace_strict({1000: "a", 1002: "c"})).all()
