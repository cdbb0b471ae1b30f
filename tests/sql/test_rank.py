"""The Top-N / deduplication operator behind ROW_NUMBER (tidal.operators.rank): upserts per
(key, rank), ties by arrival, checkpoints."""

from __future__ import annotations

import polars as pl

from tidal.operators.base import OperatorContext
from tidal.operators.rank import TopN


def _open(op: TopN, out: list[pl.DataFrame]) -> TopN:
    op.open(OperatorContext(op.name, lambda b, port: out.append(b), lambda r, why: None,
                            lambda: 0, lambda n: None))
    return op


def _final(out: list[pl.DataFrame], key: list[str]) -> pl.DataFrame:
    return pl.concat(out).unique(key, keep="last", maintain_order=True).sort(key)


BATCHES = [
    pl.DataFrame({"k": [1, 1, 2, 1], "v": [5, 7, 1, 7], "id": [0, 1, 2, 3]}),
    pl.DataFrame({"k": [2, 1, 2], "v": [9, 6, 1], "id": [4, 5, 6]}),
    pl.DataFrame({"k": [1, 3], "v": [8, 2], "id": [7, 8]}),
]


def test_top_n_upserts_by_key_and_rank_ties_by_arrival() -> None:
    out: list[pl.DataFrame] = []
    op = _open(TopN("t", ["k"], ["v"], [True], 2, rank_column="rn"), out)
    for b in BATCHES:
        op.on_batch(b, 0)
    got = _final(out, ["k", "rn"])
    assert got.select("k", "rn", "id").rows() == [(1, 1, 7), (1, 2, 1), (2, 1, 4), (2, 2, 2),
                                                  (3, 1, 8)]
    # only (key, rank)s whose row changed are emitted
    assert [b.height for b in out] == [3, 2, 3]


def test_keep_last_row_deduplication_and_checkpoint() -> None:
    whole: list[pl.DataFrame] = []
    op = _open(TopN("d", ["k"], ["v"], [True], 1, ties="last"), whole)
    for b in BATCHES:
        op.on_batch(b, 0)
    resumed: list[pl.DataFrame] = []
    first = _open(TopN("d", ["k"], ["v"], [True], 1, ties="last"), resumed)
    first.on_batch(BATCHES[0], 0)
    second = _open(TopN("d", ["k"], ["v"], [True], 1, ties="last"), resumed)
    second.restore(first.snapshot())
    for b in BATCHES[1:]:
        second.on_batch(b, 0)
    want = [(1, 8, 7), (2, 9, 4), (3, 2, 8)]
    assert _final(whole, ["k"]).rows() == want == _final(resumed, ["k"]).rows()
    assert "__rank" not in whole[0].columns
    # the later of the two v=7 rows of key 1 replaced the earlier within the first batch
    assert whole[0].filter(pl.col("k") == 1)["id"].to_list() == [3]
