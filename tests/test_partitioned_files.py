"""The partitioned filesystem sink (td.sinks.partitioned_files, SQL 'filesystem' tables with
PARTITIONED BY): hidden in-progress files, rolling, partition commit, formats, recovery."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import tidal as td
from tidal._time import MAX_TIME
from tidal.connectors.base import SinkContext
from tidal.connectors.partitioned import PartitionCommit, PartitionedFiles
from tidal.errors import ConfigError

MINUTE = 60_000


class Clock:
    """Processing time the test moves by hand (seconds, like time.time)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def rows(minute: int, n: int, start: int = 0) -> pl.DataFrame:
    return pl.DataFrame({"id": list(range(start, start + n)), "v": [f"x{i}" for i in range(n)],
                         "dt": ["2024-05-01"] * n, "hm": [f"10:{minute:02d}"] * n})


def visible(part: Path) -> list[Path]:
    return sorted(p for p in part.iterdir() if p.name.startswith("part-"))


def read(part: Path) -> pl.DataFrame:
    return pl.concat([pl.read_csv(f) for f in visible(part)]).sort("id")


def sink(path: Path, clock: Clock, exactly_once: bool = False, **kw) -> PartitionedFiles:
    s = PartitionedFiles(path, format=kw.pop("format", "csv"), partition_by=["dt", "hm"],
                         clock=clock, **kw)
    s.open(SinkContext("f", "files", exactly_once))
    return s


def test_in_progress_files_are_hidden_until_they_roll(tmp_path: Path) -> None:
    clock = Clock()
    s = sink(tmp_path, clock, rollover_ms=MINUTE, check_interval_ms=10_000)
    s.write(rows(1, 5))
    part = tmp_path / "dt=2024-05-01" / "hm=10:01"
    assert visible(part) == []
    assert [p.name.endswith(".csv.inprogress") and p.name.startswith(".part-") for p in part.iterdir()] == [True]
    clock.now += 30
    s.flush()
    assert visible(part) == []  # younger than the rollover interval
    clock.now += 31
    s.flush()
    assert read(part)["id"].to_list() == [0, 1, 2, 3, 4]
    assert read(part).columns == ["id", "v"]  # partition columns live in the directory names


def test_files_roll_at_the_size_limit_and_each_has_a_header(tmp_path: Path) -> None:
    s = sink(tmp_path, Clock(), file_size=200)
    for i in range(10):
        s.write(rows(1, 10, start=i * 10))
    s.close()
    part = tmp_path / "dt=2024-05-01" / "hm=10:01"
    files = visible(part)
    assert len(files) > 1
    assert all(f.read_text().startswith("id,v\n") for f in files)
    assert read(part)["id"].to_list() == list(range(100))


def test_partition_time_commit_waits_for_the_watermark_and_late_rows_commit_again(tmp_path: Path) -> None:
    commit = PartitionCommit("partition-time", delay_ms=MINUTE, time_pattern="$dt $hm:00")
    s = sink(tmp_path, Clock(), commit=commit)
    s.write(rows(1, 3))
    s.write(rows(2, 3, start=3))
    p1, p2 = (tmp_path / "dt=2024-05-01" / f"hm=10:0{m}" for m in (1, 2))
    ten_oh_one = 1_714_557_660_000  # 2024-05-01 10:01 UTC
    s.on_watermark(ten_oh_one + MINUTE)  # not past 10:01 + 1 min yet
    assert not (p1 / "_SUCCESS").exists()
    s.on_watermark(ten_oh_one + MINUTE + 1)
    assert (p1 / "_SUCCESS").exists() and not (p2 / "_SUCCESS").exists()
    assert read(p1)["id"].to_list() == [0, 1, 2]  # committing rolled the partition's file
    s.write(rows(1, 2, start=10))  # late rows: a new file, the partition is pending again
    (p1 / "_SUCCESS").unlink()
    s.on_watermark(ten_oh_one + 2 * MINUTE + 1)
    assert (p1 / "_SUCCESS").exists() and (p2 / "_SUCCESS").exists()
    assert len(visible(p1)) == 2 and read(p1)["id"].to_list() == [0, 1, 2, 10, 11]


def test_process_time_commit_after_the_delay(tmp_path: Path) -> None:
    clock = Clock()
    s = sink(tmp_path, clock, commit=PartitionCommit("process-time", delay_ms=5_000),
             check_interval_ms=1_000)
    s.write(rows(1, 3))
    part = tmp_path / "dt=2024-05-01" / "hm=10:01"
    clock.now += 2
    s.flush()
    assert not (part / "_SUCCESS").exists()
    clock.now += 4
    s.flush()
    assert (part / "_SUCCESS").exists() and read(part).height == 3


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_json_and_parquet_partitions(tmp_path: Path, fmt: str) -> None:
    s = sink(tmp_path, Clock(), format=fmt)
    s.write(rows(1, 3))
    s.write(rows(1, 2, start=3))
    s.close()
    files = visible(tmp_path / "dt=2024-05-01" / "hm=10:01")
    assert all(f.suffix == f".{fmt}" for f in files)
    read_one = pl.read_ndjson if fmt == "json" else pl.read_parquet
    got = pl.concat([read_one(f) for f in files]).sort("id")
    assert got.columns == ["id", "v"] and got["id"].to_list() == [0, 1, 2, 3, 4]


def test_exactly_once_parquet_writes_one_finished_file_per_checkpoint(tmp_path: Path) -> None:
    s = sink(tmp_path, Clock(), exactly_once=True, format="parquet")
    s.apply(rows(1, 3), 1)
    s.apply(rows(1, 3), 1)  # recovery applying the same checkpoint again: nothing happens
    s.apply(rows(1, 2, start=3), 2)
    part = tmp_path / "dt=2024-05-01" / "hm=10:01"
    assert len(visible(part)) == 2 and not list(part.glob(".*"))
    assert pl.read_parquet(part / "*.parquet")["id"].sort().to_list() == [0, 1, 2, 3, 4]
    assert s.committed_checkpoint() == 2


def test_reopening_drops_what_an_unrecorded_attempt_wrote(tmp_path: Path) -> None:
    s = sink(tmp_path, Clock(), exactly_once=True)
    s.apply(rows(1, 3), 1)
    part = tmp_path / "dt=2024-05-01" / "hm=10:01"
    (hidden,) = part.glob(".part-*.inprogress")
    recorded = hidden.stat().st_size
    with open(hidden, "ab") as f:
        f.write(b"99,half a row of a crashed attempt")
    (part.parent / "hm=10:02").mkdir()
    stray = part.parent / "hm=10:02" / hidden.name.replace("-0-1.", "-0-2.")
    stray.write_bytes(b"id,v\n7,x\n")
    again = sink(tmp_path, Clock(), exactly_once=True)
    assert again.committed_checkpoint() == 1
    assert hidden.stat().st_size == recorded and not stray.exists()
    again.close()
    assert read(part)["id"].to_list() == [0, 1, 2]


def test_sql_partitioned_table_writes_hive_directories(tmp_path: Path) -> None:
    flow = td.Flow("fs")
    flow.sql(f"""
        CREATE TABLE src (id BIGINT, v VARCHAR, dt VARCHAR) WITH (
          'connector' = 'datagen', 'number-of-rows' = '20', 'fields.id.kind' = 'sequence',
          'fields.id.start' = '0', 'fields.id.end' = '19');
        CREATE TABLE out (id BIGINT, v VARCHAR, part VARCHAR) PARTITIONED BY (part) WITH (
          'connector' = 'filesystem', 'path' = '{tmp_path}/out', 'format' = 'json');
        INSERT INTO out SELECT id, v, CAST(id % 2 AS VARCHAR) FROM src;""")
    flow.run(quiet=True)
    even = pl.read_ndjson(next((tmp_path / "out" / "part=0").glob("part-*.json")))
    assert even.columns == ["id", "v"] and even["id"].to_list() == list(range(0, 20, 2))
    assert not (tmp_path / "out" / "part=0" / "_SUCCESS").exists()  # no commit policy, like Flink


def test_sql_bad_options_say_what_to_write(tmp_path: Path) -> None:
    base = ("CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '2');"
            "CREATE TABLE out (id BIGINT, dt VARCHAR) PARTITIONED BY (dt) WITH ('connector' = "
            f"'filesystem', 'path' = '{tmp_path}/o', 'format' = 'csv', {{}});"
            "INSERT INTO out SELECT id, 'x' FROM src;")
    with pytest.raises(ConfigError, match=r"'sink.partition-commit.delay' = '1 minn' is not a "
                                          r"duration; write a number and a unit"):
        td.Flow("a").sql(base.format("'sink.partition-commit.delay' = '1 minn'"))
    with pytest.raises(ConfigError, match=r"'sink.rolling-policy.file-size' = '12 parsecs' is not a size"):
        td.Flow("b").sql(base.format("'sink.rolling-policy.file-size' = '12 parsecs'"))
    with pytest.raises(ConfigError, match=r"option\(s\) \['sink.rolling-policy.rolover-interval'\] "
                                          "are not known"):
        td.Flow("c").sql(base.format("'sink.rolling-policy.rolover-interval' = '1 min'"))


def test_a_partition_without_a_time_commits_when_the_input_ends(tmp_path: Path) -> None:
    commit = PartitionCommit("partition-time", delay_ms=MINUTE, time_pattern="$dt $hm:00")
    s = sink(tmp_path, Clock(), commit=commit)
    s.write(rows(1, 2).with_columns(hm=pl.lit(None, pl.String)))
    part = tmp_path / "dt=2024-05-01" / "hm=__DEFAULT_PARTITION__"
    s.on_watermark(4_000_000_000_000)  # far past any minute of 2024
    assert not (part / "_SUCCESS").exists()
    s.on_watermark(MAX_TIME)  # the final watermark of a bounded run
    assert (part / "_SUCCESS").exists() and read(part).height == 2


def test_an_apply_that_fails_half_way_is_applied_once_after_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tidal.connectors import partitioned

    s = sink(tmp_path, Clock(), exactly_once=True)
    calls = {"n": 0}
    real = partitioned._ENCODE["csv"]

    def disk_full(batch: pl.DataFrame, out: object, header: bool) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("No space left on device")
        real(batch, out, header)

    monkeypatch.setitem(partitioned._ENCODE, "csv", disk_full)
    both = pl.concat([rows(1, 3), rows(2, 3, start=3)])
    with pytest.raises(OSError):
        s.apply(both, 1)
    s.close()  # the runtime closes sinks after a failure
    monkeypatch.undo()
    again = sink(tmp_path, Clock(), exactly_once=True)
    assert again.committed_checkpoint() is None
    again.apply(both, 1)  # recovery applies the checkpoint again
    again.close()
    got = pl.concat([read(tmp_path / "dt=2024-05-01" / f"hm=10:0{m}") for m in (1, 2)])
    assert got["id"].to_list() == [0, 1, 2, 3, 4, 5]
