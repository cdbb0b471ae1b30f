"""Nexmark q10 (log to file system, NEXMARK.md 4.2): queries/nexmark/q10.sql writes every bid
as CSV into dt=.../hm=... partitions through the filesystem sink. Checked on generated,
out-of-order events: the files of every partition hold exactly DuckDB's rows for it, every
partition is committed (``_SUCCESS``) when the bounded run ends and only partitions whose
minute + 1 min the watermark has passed are committed before, no in-progress file is left,
and a run that crashes (also in the middle of applying a checkpoint) and restarts ends with
the same partitions and rows as a run that never crashed."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import duckdb
import polars as pl
import pytest

import tidal as td
from tidal.connectors import partitioned
from tidal.nexmark import NexmarkConfig, generate_events
from tidal.sql.nexmark import ddl

from .nexmark_reference import REFERENCE

QUERY = Path(__file__).resolve().parents[2] / "queries" / "nexmark" / "q10.sql"
PLACEHOLDER = "file:///tmp/nexmark/q10/bid/"
# 40 bids a second of event time: the 60 000 events span about 25 minutes, 25 partitions
EVENTS, OOO, RATE = 60_000, 100, 40
SCHEMA = {"auction": pl.Int64, "bidder": pl.Int64, "price": pl.Int64,
          "dateTime": pl.Datetime("ms"), "extra": pl.String}


def q10_flow(out: Path) -> td.Flow:
    """queries/nexmark/q10.sql over the generated events, its sink path pointed at ``out``."""
    text = QUERY.read_text()
    assert PLACEHOLDER in text
    flow = td.Flow("q10")
    flow.sql(ddl(events=EVENTS, rate=RATE, out_of_order_group=OOO, kinds=("bid",)))
    flow.sql(text.replace(PLACEHOLDER, f"file://{out}/"))
    return flow


@pytest.fixture(scope="module")
def want() -> pl.DataFrame:
    events = generate_events(NexmarkConfig(events=EVENTS, rate=RATE, out_of_order_group=OOO), 0, EVENTS)
    con = duckdb.connect()
    con.register("bid", events["bid"].to_arrow())
    return con.sql(REFERENCE["q10"]).pl()


def partitions(out: Path) -> dict[str, Path]:
    return {str(d.relative_to(out)): d for d in sorted(out.glob("dt=*/hm=*"))}


def read_back(out: Path) -> pl.DataFrame:
    """Every visible CSV file, with dt and hm taken from its directory names."""
    frames = []
    for d in partitions(out).values():
        dt, hm = (unquote(p.split("=", 1)[1]) for p in (d.parent.name, d.name))
        for f in sorted(d.glob("part-*.csv")):
            frames.append(pl.read_csv(f, schema=SCHEMA).with_columns(dt=pl.lit(dt), hm=pl.lit(hm)))
    return pl.concat(frames)


def rows(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.with_columns(pl.col("dateTime").dt.epoch("ms")).iter_rows(), key=repr)


def check_output(out: Path, want: pl.DataFrame) -> None:
    got = read_back(out)
    assert got.columns == want.columns
    assert got.height == want.height
    assert rows(got) == rows(want)
    parts = partitions(out)
    assert set(parts) == {f"dt={dt}/hm={hm}" for dt, hm in want.select("dt", "hm").unique().iter_rows()}
    assert all((d / "_SUCCESS").exists() for d in parts.values())
    assert not list(out.rglob("*.inprogress"))


def test_q10_partitions_match_duckdb_and_are_all_committed(tmp_path: Path, want: pl.DataFrame) -> None:
    assert want.select("dt", "hm").n_unique() >= 20
    q10_flow(tmp_path / "bid").run(quiet=True, max_batch_rows=7_919)
    check_output(tmp_path / "bid", want)


def test_q10_commits_a_partition_only_once_the_watermark_passes_its_minute_plus_delay(
        tmp_path: Path) -> None:
    out = tmp_path / "bid"
    ex = q10_flow(out).executor(max_batch_rows=997, checkpoint_dir=tmp_path / "ck")
    ex.open()
    seen_committed = seen_open = False
    for i in range(40):
        ex.step()
        if i % 4 == 3:
            ex.checkpoint()
            (sink,) = [n for n in ex.nodes if n.kind == "sink"]
            watermark = ex.wm[sink]
            for name, d in partitions(out).items():
                minute = pl.Series([name.replace("dt=", "").replace("/hm=", " ")]).str.to_datetime(
                    "%Y-%m-%d %H:%M", time_unit="ms").dt.epoch("ms")[0]
                committed = (d / "_SUCCESS").exists()
                assert committed == (watermark > minute + 60_000), (name, watermark)
                seen_committed |= committed
                seen_open |= not committed
    ex.finish()
    assert seen_committed and seen_open


class Crash(Exception):
    """Stands for the process dying."""


def test_q10_crash_and_restart_gives_the_same_partitions(tmp_path: Path, want: pl.DataFrame,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out, ck = tmp_path / "bid", tmp_path / "ck"
    ex = q10_flow(out).executor(max_batch_rows=997, checkpoint_dir=ck)
    ex.open()
    for i in range(23):
        ex.step()
        if i % 5 == 4:
            ex.checkpoint()  # the rows of the 3 steps after the last one are lost with the crash
    # the next checkpoint becomes durable, but the process dies while the sink applies it:
    # its rows are in the in-progress files, its record is not written
    def die(*args: object) -> None:
        raise Crash
    monkeypatch.setattr(partitioned, "write_json_atomic", die)
    with pytest.raises(Crash):
        ex.checkpoint()
    monkeypatch.undo()
    ex.store.unlock()  # what the kernel does when the process dies
    assert list(out.rglob("*.inprogress")), "the crash should leave in-progress files behind"
    q10_flow(out).run(quiet=True, max_batch_rows=997, checkpoint_dir=ck)
    check_output(out, want)
