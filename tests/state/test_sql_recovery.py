"""SQL pipelines are fault tolerant like Python ones: a run that dies after a checkpoint and
restarts from it writes exactly what an uninterrupted run writes, for every kind of SQL
state (retracting aggregates, OVER, cumulating windows, time sorts, window Top-N, interval
outer joins, pattern matches)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import tidal as td
from tidal.sql.nexmark import ddl

EVENTS = 30_000
SOURCES = ddl(events=EVENTS, out_of_order_group=20)

# name → (sink DDL columns, primary key or None for an append JSON-lines sink, query)
QUERIES = {
    "retracting aggregate (q4)": ("id BIGINT, final BIGINT", "id", """
        SELECT Q.category, AVG(Q.final) FROM (
          SELECT MAX(B.price) AS final, A.category FROM auction A, bid B
          WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
          GROUP BY A.id, A.category) Q
        GROUP BY Q.category"""),
    "OVER over a Top-N (q6)": ("auction BIGINT, seller BIGINT, avg_price BIGINT", "auction",
                               (Path(__file__).parents[2] / "queries/nexmark/q6.sql")
                               .read_text().split("INSERT INTO nexmark_q6", 1)[1]),
    "cumulating window": ("auction BIGINT, ws TIMESTAMP(3), we TIMESTAMP(3), n BIGINT", None, """
        SELECT auction, window_start, window_end, COUNT(*) FROM TABLE(CUMULATE(TABLE bid,
          DESCRIPTOR(`dateTime`), INTERVAL '200' MILLISECOND, INTERVAL '1' SECOND))
        WHERE MOD(auction, 10) = 0 GROUP BY auction, window_start, window_end"""),
    "time sort": ("auction BIGINT, price BIGINT, t TIMESTAMP(3)", None, """
        SELECT auction, price, `dateTime` FROM bid WHERE MOD(auction, 13) = 0
        ORDER BY `dateTime`, price, auction"""),
    "window Top-N": ("ws TIMESTAMP(3), auction BIGINT, price BIGINT", None, """
        SELECT window_start, auction, price FROM (
          SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end
                                       ORDER BY price DESC) AS rn
          FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '500' MILLISECOND)))
        WHERE rn <= 2"""),
    "interval left join": ("id BIGINT, bidder BIGINT", None, """
        SELECT A.id, B.bidder FROM auction A LEFT JOIN bid B ON A.id = B.auction
        AND B.`dateTime` BETWEEN A.`dateTime` AND A.`dateTime` + INTERVAL '20' MILLISECOND"""),
    "MATCH_RECOGNIZE": ("auction BIGINT, first_price BIGINT, last_price BIGINT", None, """
        SELECT * FROM bid MATCH_RECOGNIZE (
          PARTITION BY auction ORDER BY `dateTime`
          MEASURES FIRST(UP.price) AS first_price, LAST(UP.price) AS last_price
          ONE ROW PER MATCH AFTER MATCH SKIP PAST LAST ROW
          PATTERN (UP{3}) DEFINE UP AS UP.price > 1000)"""),
}


def build(out: Path, name: str) -> td.Flow:
    columns, key, query = QUERIES[name]
    if key is None:
        sink = f"WITH ('connector' = 'filesystem', 'path' = '{out / 'out.jsonl'}', 'format' = 'json')"
    else:
        sink = (f", PRIMARY KEY ({key}) NOT ENFORCED) WITH ('connector' = 'sqlite', "
                f"'path' = '{out / 'out.db'}')")
        columns = columns + " "
    flow = td.Flow("recovery")
    flow.sql(SOURCES)
    close = "" if key is not None else ")"
    flow.sql(f"CREATE TABLE out ({columns}{close} {sink}; INSERT INTO out {query};")
    return flow


def result(out: Path, name: str) -> list:
    if QUERIES[name][1] is None:
        return [json.loads(line) for line in (out / "out.jsonl").read_text().splitlines()]
    return sorted(sqlite3.connect(out / "out.db").execute("SELECT * FROM out").fetchall())


def read(ex: object) -> int:
    """Rows the run's sources read."""
    return sum(ex.metrics.steps[n].rows_out for n in ("bid", "auction", "person")  # type: ignore[attr-defined]
               if n in ex.metrics.steps)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", list(QUERIES))
def test_crash_and_restart_from_a_checkpoint_writes_what_one_run_writes(tmp_path: Path,
                                                                         name: str) -> None:
    ref, out = tmp_path / "ref", tmp_path / "out"
    ref.mkdir()
    out.mkdir()
    whole = build(ref, name).executor(max_batch_rows=500)
    whole.run()
    want = result(ref, name)
    assert want, "the query must give rows for the comparison to mean anything"
    ex = build(out, name).executor(max_batch_rows=500, checkpoint_dir=out / "ck")
    ex.open()
    for i in range(40):  # part of the input, checkpointing on the way, then die
        ex.step()
        if i % 13 == 12:
            ex.checkpoint()
    assert ex.store is not None
    ex.store.unlock()  # what the kernel does when the process dies
    again = build(out, name).executor(max_batch_rows=500, checkpoint_dir=out / "ck")
    again.run()
    assert again.restored is not None  # it went on from the checkpoint, not from scratch
    assert read(again) < read(whole)
    got = result(out, name)
    if QUERIES[name][1] is None and name != "time sort":
        got, want = sorted(map(str, got)), sorted(map(str, want))
    assert got == want
