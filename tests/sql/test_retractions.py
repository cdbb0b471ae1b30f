"""GROUP BY over updating results (tidal.operators.retract, tidal.sql.updating): groups
moving, groups deleted, MIN/MAX after retractions, checkpoints, and the deletes reaching
SQL sinks."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import polars as pl
import pytest

import tidal as td
import tidal.api.agg as agg
from tidal.operators.base import OperatorContext
from tidal.operators.changelog import DELETE, apply_changelog, split_deletes
from tidal.operators.retract import UpsertAggregate
from tidal.sql import SqlError

INPUT = pl.Schema({"k": pl.Int64(), "g": pl.String(), "v": pl.Int64()})
AGGS = {"n": agg.count(), "lo": agg.min("v"), "hi": agg.max("v"), "total": agg.sum("v"),
        "kinds": agg.count_distinct("v"), "avg": agg.mean("v")}
OUTPUT = pl.Schema({"g": pl.String(), "n": pl.Int64(), "lo": pl.Int64(), "hi": pl.Int64(),
                    "total": pl.Int64(), "kinds": pl.Int64(), "avg": pl.Float64(),
                    DELETE: pl.Boolean()})


def _operator(out: list[pl.DataFrame]) -> UpsertAggregate:
    op = UpsertAggregate("retract", ["k"], ["g"], AGGS, INPUT, OUTPUT)
    op.open(OperatorContext(op.name, lambda b, port: out.append(b), lambda r, why: None,
                            lambda: 0, lambda n: None))
    return op


def _batch(rows: list[tuple[int, str | None, int | None, bool]]) -> pl.DataFrame:
    k, g, v, d = zip(*rows, strict=True)
    return pl.DataFrame({"k": k, "g": g, "v": v, DELETE: d}, schema={**INPUT, DELETE: pl.Boolean})


def _batch_answer(inputs: list[pl.DataFrame]) -> pl.DataFrame:
    """The same GROUP BY computed on the table the input changelog describes."""
    table = apply_changelog(pl.concat(inputs), ["k"])
    return table.group_by("g").agg(
        pl.len().cast(pl.Int64).alias("n"), pl.col("v").min().alias("lo"),
        pl.col("v").max().alias("hi"), pl.col("v").sum().alias("total"),
        pl.col("v").drop_nulls().n_unique().cast(pl.Int64).alias("kinds"),
        (pl.col("v").sum() / pl.col("v").count()).alias("avg")).sort("g")  # td.agg.mean's


def test_groups_move_retract_their_old_values_and_empty_groups_are_deleted() -> None:
    out: list[pl.DataFrame] = []
    op = _operator(out)
    op.on_batch(_batch([(1, "a", 5, False), (2, "a", 9, False), (3, "b", 1, False)]), 0)
    # key 2 moves to b: a's MAX falls back to 5 (a retraction, not a running max)
    op.on_batch(_batch([(2, "b", 2, False)]), 0)
    assert out[-1].sort("g").select("g", "n", "lo", "hi", DELETE).rows() == [
        ("a", 1, 5, 5, False), ("b", 2, 1, 2, False)]
    # key 1 moves to b too, then key 3 is deleted: a has no row left and is deleted
    op.on_batch(_batch([(1, "b", 7, False), (3, None, None, True)]), 0)
    last = out[-1].sort("g")
    assert last.select("g", DELETE).rows() == [("a", True), ("b", False)]
    assert last.row(1, named=True) == {
        "g": "b", "n": 2, "lo": 2, "hi": 7, "total": 9, "kinds": 2, "avg": 4.5, DELETE: False}
    assert last.schema == OUTPUT
    final = apply_changelog(pl.concat(out), ["g"])
    assert final.rows() == [("b", 2, 2, 7, 9, 2, 4.5)]


def test_a_group_whose_result_did_not_change_is_not_emitted_again() -> None:
    out: list[pl.DataFrame] = []
    aggs = {"hi": agg.max("v")}
    op = UpsertAggregate("retract", ["k"], ["g"], aggs, INPUT,
                         pl.Schema({"g": pl.String(), "hi": pl.Int64(), DELETE: pl.Boolean()}))
    op.open(OperatorContext(op.name, lambda b, port: out.append(b), lambda r, why: None,
                            lambda: 0, lambda n: None))
    op.on_batch(_batch([(1, "a", 5, False), (2, "a", 9, False), (3, "b", None, False)]), 0)
    assert sorted(out[-1].rows(), key=str) == [("a", 9, False), ("b", None, False)]
    # key 1 changes below a's MAX, key 3 stays NULL: neither group's result changes (Flink
    # emits nothing then either); key 4 starts group c, whose first result is NULL
    op.on_batch(_batch([(1, "a", 6, False), (3, "b", None, False), (4, "c", None, False)]), 0)
    assert out[-1].rows() == [("c", None, False)]
    op.on_batch(_batch([(2, "a", 1, False)]), 0)  # now a's MAX falls to 6
    assert out[-1].rows() == [("a", 6, False)]
    restored = UpsertAggregate("retract", ["k"], ["g"], aggs, INPUT, op.output)
    restored.open(OperatorContext(op.name, lambda b, port: out.append(b), lambda r, why: None,
                                  lambda: 0, lambda n: None))
    restored.restore(op.snapshot())
    restored.on_batch(_batch([(2, "a", 3, False), (4, None, None, True)]), 0)
    assert out[-1].rows() == [("c", None, True)]  # a is still 6; c lost its only row


def test_matches_the_batch_answer_after_every_batch_of_random_changes() -> None:
    rng = random.Random(11)
    out: list[pl.DataFrame] = []
    op = _operator(out)
    inputs: list[pl.DataFrame] = []
    for _ in range(60):
        rows = [(rng.randrange(6), rng.choice("abcd"), rng.choice([None, *range(8)]),
                 rng.random() < 0.3) for _ in range(rng.randrange(1, 6))]
        inputs.append(_batch(rows))
        op.on_batch(inputs[-1], 0)
        got = apply_changelog(pl.concat(out), ["g"]).sort("g")
        want = _batch_answer(inputs)
        nan = pl.col("avg").fill_nan(None)  # 0 / 0 (no values) is NaN on both sides
        assert got.with_columns(nan).rows() == want.with_columns(nan).rows()
    assert any(b[DELETE].any() for b in out)  # some group did empty


def test_restored_operator_continues_where_the_checkpoint_was() -> None:
    rng = random.Random(5)
    batches = [_batch([(rng.randrange(10), rng.choice("xyz"), rng.randrange(100),
                        rng.random() < 0.25) for _ in range(8)]) for _ in range(20)]
    whole: list[pl.DataFrame] = []
    op = _operator(whole)
    for b in batches:
        op.on_batch(b, 0)
    resumed: list[pl.DataFrame] = []
    first = _operator(resumed)
    for b in batches[:9]:
        first.on_batch(b, 0)
    second = _operator(resumed)
    second.restore(first.snapshot())
    for b in batches[9:]:
        second.on_batch(b, 0)
    final = apply_changelog(pl.concat(whole), ["g"]).sort("g")
    assert final.rows() == apply_changelog(pl.concat(resumed), ["g"]).sort("g").rows()
    assert final.rows() == _batch_answer(batches).rows()


def test_split_deletes_keeps_the_last_change_of_each_key() -> None:
    b = pl.DataFrame({"k": [1, 2, 1, 3], "v": [1, 2, None, 3], DELETE: [False, True, True, False]})
    up, gone = split_deletes(b, ["k"])
    assert up.rows() == [(3, 3)] and sorted(gone["k"]) == [1, 2]


# -- SQL -----------------------------------------------------------------------------------------
LEVELS = [  # (user, level, t): each user's bucket is their highest level so far
    ("ann", 1, 1000), ("bob", 1, 2000), ("ann", 2, 3000), ("cid", 2, 4000), ("bob", 3, 5000),
]


def _flow(name: str) -> td.Flow:
    flow = td.Flow(name)
    rows = [{"user": u, "level": lv, "t": t} for u, lv, t in LEVELS]
    flow.register_table("levels", flow.source(td.sources.memory(rows), timestamp="t"))
    return flow


BUCKETS = """SELECT best AS bucket, COUNT(*) AS users, MIN(`user`) AS first_user
             FROM (SELECT `user`, MAX(level) AS best FROM levels GROUP BY `user`)
             GROUP BY best"""


def test_deleted_group_disappears_from_a_sqlite_upsert_table(tmp_path: Path) -> None:
    db = tmp_path / "buckets.db"
    flow = _flow("buckets")
    flow.sql(f"""CREATE TABLE buckets (bucket BIGINT, users BIGINT, first_user STRING,
                   PRIMARY KEY (bucket) NOT ENFORCED) WITH ('connector' = 'sqlite', 'path' = '{db}');
                 INSERT INTO buckets {BUCKETS};""")
    changes = td.sinks.memory()
    flow.sql(BUCKETS).sink(changes)
    flow.run(quiet=True, max_batch_rows=1)  # one change at a time: bucket 1 fills, then empties
    log = changes.frame()
    assert (1, 2, "ann") in log.select("bucket", "users", "first_user").rows()
    assert log.filter(pl.col(DELETE))["bucket"].to_list() == [1]
    rows = sqlite3.connect(db).execute("SELECT bucket, users, first_user FROM buckets "
                                       "ORDER BY bucket").fetchall()
    assert rows == [(2, 2, "ann"), (3, 1, "bob")]


def test_print_sink_shows_deletes(capsys: pytest.CaptureFixture[str]) -> None:
    flow = _flow("printed")
    flow.sql(f"""CREATE TABLE out (bucket BIGINT, users BIGINT, first_user STRING)
                   WITH ('connector' = 'print');
                 INSERT INTO out {BUCKETS};""")
    flow.run(quiet=True, max_batch_rows=1)
    lines = capsys.readouterr().out.splitlines()
    assert "-D bucket=1 users=None first_user=None" in lines
    assert "bucket=3 users=1 first_user=bob" in lines[-2:]  # bob left bucket 1 for 3


def test_select_star_does_not_show_the_delete_column() -> None:
    flow = _flow("star")
    out = td.sinks.memory()
    flow.sql(f"SELECT * FROM ({BUCKETS})").sink(out)
    flow.run(quiet=True)
    assert [c for c in out.frame().columns if c != DELETE] == ["bucket", "users", "first_user"]


@pytest.mark.parametrize(("query", "key", "want"), [
    # ann's best passes level < 2 at first, then leaves it: her row must go, not stay at 1
    ("SELECT `user`, best FROM (SELECT `user`, MAX(level) AS best FROM levels GROUP BY `user`) "
     "WHERE best < 2", ["user"], []),
    ("SELECT `user`, MAX(level) AS best FROM levels GROUP BY `user` HAVING MAX(level) < 3",
     ["user"], [("ann", 2), ("cid", 2)]),
    # bucket 1 holds two users, then none: HAVING over a retracting aggregate deletes it
    (BUCKETS + " HAVING COUNT(*) >= 1", ["bucket"], [(2, 2, "ann"), (3, 1, "bob")]),
    (BUCKETS + " HAVING COUNT(*) > 1", ["bucket"], [(2, 2, "ann")]),
])
def test_where_and_having_on_updating_results_delete_rows_that_stop_passing(
        query: str, key: list[str], want: list[tuple]) -> None:
    flow = _flow("filtered")
    out = td.sinks.memory()
    flow.sql(query).sink(out)
    flow.run(quiet=True, max_batch_rows=1)  # every intermediate version reaches the filter
    final = apply_changelog(out.frame(), key)
    assert sorted(final.drop(DELETE, strict=False).rows()) == want


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE (SELECT `user`, MAX(t) AS t FROM "
     "levels GROUP BY `user`), DESCRIPTOR(t), INTERVAL '1' SECOND)) GROUP BY window_start, "
     "window_end", "not a time attribute"),
])
def test_what_is_not_planned_is_named(query: str, message: str) -> None:
    flow = _flow("refused")
    with pytest.raises(SqlError, match=message):
        flow.sql(query)
