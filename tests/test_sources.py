"""Sources as users see them: memory, files (bounded, globbed, followed), positions, sockets."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

import tidal as td
from tidal.connectors.base import SourceContext

WAIT_S = 10.0


@pytest.fixture(autouse=True)
def _tidal_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDAL_HOME", str(tmp_path / ".tidal"))


def collect(stream: td.Stream) -> Any:
    out = td.sinks.memory()
    stream.sink(out)
    return out


def run_rows(flow: td.Flow, out: Any, **kwargs: Any) -> list[dict[str, Any]]:
    flow.run(quiet=True, **kwargs)
    return out.rows


class Background:
    """Runs a flow in a thread until stopped; collects its rows as they arrive."""

    def __init__(self, flow: td.Flow, stream: td.Stream) -> None:
        self.rows: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        stream.sink(td.sinks.callback(self._take))
        self.thread = threading.Thread(target=self._run, args=(flow,), daemon=True)

    def _take(self, rows: list[dict[str, Any]]) -> None:
        with self.arrived:
            self.rows.extend(rows)
            self.arrived.notify_all()

    def _run(self, flow: td.Flow) -> None:
        try:
            flow.run(quiet=True, stop=self.stop)
        except BaseException as exc:  # surfaced by wait_for / close
            self.error = exc

    def __enter__(self) -> Background:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), "flow did not stop when asked"

    def wait_for(self, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        deadline = time.monotonic() + WAIT_S
        with self.arrived:
            while not done(self.rows):
                assert self.error is None, f"flow failed: {self.error!r}"
                left = deadline - time.monotonic()
                assert left > 0, f"timed out; rows so far: {self.rows}"
                self.arrived.wait(min(left, 0.1))
            return list(self.rows)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ctx(part: str = "0") -> tuple[SourceContext, list[tuple[Any, str, Any]]]:
    dead: list[tuple[Any, str, Any]] = []
    return SourceContext("t", "src", part, lambda r, why, pos: dead.append((r, why, pos))), dead


def drain(partition: Any, max_rows: int) -> pl.DataFrame:
    frames = []
    while not partition.done:
        b = partition.poll(max_rows)
        if b is not None:
            frames.append(b if isinstance(b, pl.DataFrame) else pl.from_arrow(b))
    return pl.concat(frames) if frames else pl.DataFrame()


# -- memory ----------------------------------------------------------------------------------
def test_memory_source_of_dicts_keeps_rows_and_order():
    items = [{"k": "a", "v": 1}, {"k": "b", "v": 2}, {"k": "a", "v": 3}]
    flow = td.Flow("mem")
    out = collect(flow.source(td.sources.memory(items)))
    assert run_rows(flow, out) == items


def test_memory_source_of_dicts_with_missing_fields_gives_nulls():
    flow = td.Flow("mem")
    out = collect(flow.source(td.sources.memory([{"a": 1}, {"a": 2, "b": "x"}])))
    assert run_rows(flow, out) == [{"a": 1, "b": None}, {"a": 2, "b": "x"}]


def test_memory_source_of_polars_frames_and_a_single_frame():
    frames = [pl.DataFrame({"x": [1, 2]}), pl.DataFrame({"x": [3]})]
    flow = td.Flow("frames")
    out = collect(flow.source(td.sources.memory(frames)))
    assert [r["x"] for r in run_rows(flow, out)] == [1, 2, 3]

    flow = td.Flow("frame")
    out = collect(flow.source(td.sources.memory(pl.DataFrame({"x": [7, 8]}))))
    assert [r["x"] for r in run_rows(flow, out)] == [7, 8]


def test_memory_source_of_arrow_table_and_record_batches():
    table = pa.table({"x": [1, 2, 3], "s": ["a", "b", "c"]})
    flow = td.Flow("arrow")
    src = td.sources.memory(table)
    assert dict(src.schema()) == {"x": pl.Int64, "s": pl.String}
    out = collect(flow.source(src))
    assert run_rows(flow, out) == [{"x": 1, "s": "a"}, {"x": 2, "s": "b"}, {"x": 3, "s": "c"}]

    flow = td.Flow("arrow-batches")
    out = collect(flow.source(td.sources.memory(table.to_batches(max_chunksize=1))))
    assert [r["x"] for r in run_rows(flow, out)] == [1, 2, 3]


def test_memory_source_partitions_split_rows_and_lose_none():
    items = [{"i": i} for i in range(10)]
    src = td.sources.memory(items, partitions=3)
    assert src.partitions() == ["0", "1", "2"]
    per_part = {}
    for p in src.partitions():
        c, _ = ctx(p)
        per_part[p] = drain(src.open(p, None, c), 100)["i"].to_list()
    assert sorted(i for rows in per_part.values() for i in rows) == list(range(10))
    assert all(per_part.values()), "every partition gets rows"

    flow = td.Flow("parts")
    out = collect(flow.source(src))
    assert sorted(r["i"] for r in run_rows(flow, out)) == list(range(10))


def test_small_batches_still_deliver_everything():
    items = [{"i": i} for i in range(25)]
    flow = td.Flow("small")
    out = collect(flow.source(td.sources.memory(items)))
    assert [r["i"] for r in run_rows(flow, out, max_batch_rows=4)] == list(range(25))
    assert all(b.height <= 4 for b in out.batches)


# -- files -----------------------------------------------------------------------------------
def write_jsonl(path: Path, rows: list[dict[str, Any]], mode: str = "w") -> None:
    with open(path, mode) as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def test_jsonl_file_is_bounded_and_read_whole(tmp_path):
    rows = [{"id": i, "name": f"n{i}", "price": i * 1.5} for i in range(100)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    flow = td.Flow("jsonl")
    out = collect(flow.source(td.sources.jsonl(tmp_path / "in.jsonl")))
    assert run_rows(flow, out) == rows  # returns: the file is bounded


def test_jsonl_file_without_trailing_newline_keeps_last_line(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"a": 1}\n{"a": 2}')
    flow = td.Flow("jsonl")
    out = collect(flow.source(td.sources.jsonl(tmp_path / "in.jsonl")))
    assert run_rows(flow, out) == [{"a": 1}, {"a": 2}]


def test_jsonl_timestamps_as_iso_strings_drive_windows(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [
        {"k": "a", "t": "2024-01-01T00:00:01Z"},
        {"k": "a", "t": "2024-01-01T00:00:02Z"},
        {"k": "a", "t": "2024-01-01T00:00:12Z"},
    ])
    flow = td.Flow("iso")
    s = flow.source(td.sources.jsonl(tmp_path / "in.jsonl"), timestamp="t")
    out = collect(s.key_by("k").window(td.tumbling("10s")).agg(n=td.agg.count()))
    rows = run_rows(flow, out)
    assert [r["n"] for r in rows] == [2, 1]
    assert rows[0]["window_start"].replace(tzinfo=None).isoformat() == "2024-01-01T00:00:00"


def test_missing_file_fails_with_path_in_message(tmp_path):
    with pytest.raises(td.errors.SourceError, match="nope.jsonl"):
        td.sources.jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(td.errors.SourceError, match=r"no file matches"):
        td.sources.csv(tmp_path / "*.csv")


def test_csv_file_with_header(tmp_path):
    (tmp_path / "in.csv").write_text("id,city,amount\n1,Oslo,2.5\n2,Lima,3.0\n3,Pune,4.25\n")
    flow = td.Flow("csv")
    out = collect(flow.source(td.sources.csv(tmp_path / "in.csv")))
    assert run_rows(flow, out) == [
        {"id": 1, "city": "Oslo", "amount": 2.5},
        {"id": 2, "city": "Lima", "amount": 3.0},
        {"id": 3, "city": "Pune", "amount": 4.25},
    ]


def test_parquet_file(tmp_path):
    df = pl.DataFrame({"id": list(range(50)), "s": [f"v{i}" for i in range(50)]})
    df.write_parquet(tmp_path / "in.parquet", row_group_size=7)
    flow = td.Flow("pq")
    out = collect(flow.source(td.sources.parquet(tmp_path / "in.parquet")))
    assert run_rows(flow, out, max_batch_rows=10) == df.to_dicts()


@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet"])
def test_glob_makes_one_partition_per_file(tmp_path, kind):
    for i in range(3):
        df = pl.DataFrame({"f": [i] * 4, "n": list(range(4))})
        path = tmp_path / f"part-{i}.{kind}"
        {"jsonl": df.write_ndjson, "csv": df.write_csv, "parquet": df.write_parquet}[kind](path)
    (tmp_path / "other.txt").write_text("not matched\n")
    src = getattr(td.sources, kind)(str(tmp_path / f"part-*.{kind}"))
    assert [Path(p).name for p in src.partitions()] == [f"part-{i}.{kind}" for i in range(3)]
    flow = td.Flow("glob")
    out = collect(flow.source(src))
    rows = run_rows(flow, out)
    assert sorted((r["f"], r["n"]) for r in rows) == [(f, n) for f in range(3) for n in range(4)]
    for f in range(3):  # each file is read in order
        assert [r["n"] for r in rows if r["f"] == f] == [0, 1, 2, 3]


def test_jsonl_follow_tails_a_growing_file(tmp_path):
    path = tmp_path / "live.jsonl"
    write_jsonl(path, [{"n": 0}, {"n": 1}])
    flow = td.Flow("tail")
    s = flow.source(td.sources.jsonl(path, follow=True))
    with Background(flow, s) as bg:
        bg.wait_for(lambda rows: len(rows) >= 2)
        write_jsonl(path, [{"n": 2}, {"n": 3}], mode="a")
        bg.wait_for(lambda rows: len(rows) >= 4)
        with open(path, "a") as f:  # a line written in two pieces arrives once, whole
            f.write('{"n": ')
            f.flush()
            time.sleep(0.05)
            f.write("4}\n")
        rows = bg.wait_for(lambda rows: len(rows) >= 5)
    assert [r["n"] for r in rows] == [0, 1, 2, 3, 4]


def test_csv_follow_waits_for_a_file_that_does_not_exist_yet(tmp_path):
    path = tmp_path / "later.csv"
    flow = td.Flow("tail-csv")
    s = flow.source(td.sources.csv(path, follow=True))
    with Background(flow, s) as bg:
        path.write_text("a,b\n1,x\n")
        bg.wait_for(lambda rows: len(rows) >= 1)
        with open(path, "a") as f:
            f.write("2,y\n")
        rows = bg.wait_for(lambda rows: len(rows) >= 2)
    assert [(r["a"], r["b"]) for r in rows] == [(1, "x"), (2, "y")]


# -- positions and seeking -------------------------------------------------------------------
def _read_split(src: Any, part: str, first: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read ``first`` rows' worth, remember the position, reopen there and read the rest."""
    c, _ = ctx(part)
    p = src.open(part, None, c)
    head = None
    while head is None:
        head = p.poll(first)
    head = head if isinstance(head, pl.DataFrame) else pl.from_arrow(head)
    pos = p.position()
    json.dumps(pos)  # positions must be JSON-serializable (checkpoints store them)
    p.close()
    c2, _ = ctx(part)
    rest = drain(src.open(part, pos, c2), 1000)
    return head, rest


def test_memory_position_resumes_exactly():
    df = pl.DataFrame({"i": list(range(20))})
    src = td.sources.memory(df)
    head, rest = _read_split(src, "0", 7)
    assert head["i"].to_list() == list(range(7))
    assert rest["i"].to_list() == list(range(7, 20))


def test_parquet_position_resumes_exactly(tmp_path):
    df = pl.DataFrame({"i": list(range(100))})
    df.write_parquet(tmp_path / "p.parquet", row_group_size=30)
    src = td.sources.parquet(tmp_path / "p.parquet")
    head, rest = _read_split(src, src.partitions()[0], 45)
    assert pl.concat([head, rest])["i"].to_list() == list(range(100))
    assert rest.height == 100 - head.height


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_text_file_position_resumes_exactly(tmp_path, kind):
    df = pl.DataFrame({"i": list(range(200)), "s": [f"row-{i}" for i in range(200)]})
    path = tmp_path / f"f.{kind}"
    (df.write_ndjson if kind == "jsonl" else df.write_csv)(path)
    src = getattr(td.sources, kind)(path)
    head, rest = _read_split(src, src.partitions()[0], 1)
    assert 0 < head.height < 200
    assert pl.concat([head, rest]).to_dicts() == df.to_dicts()


def test_flow_executor_opens_sources_at_given_positions(tmp_path):
    path = tmp_path / "in.jsonl"
    write_jsonl(path, [{"i": i} for i in range(10)])
    first = td.Flow("resume")
    out1 = collect(first.source(td.sources.jsonl(path), name="in"))
    ex = first.executor(max_batch_rows=1, dead_letter_path=False)
    ex.open()
    while not out1.rows:
        ex.step()
    positions = ex.positions()
    seen = [r["i"] for r in out1.rows]
    ex.finish(flush=False)

    second = td.Flow("resume")
    out2 = collect(second.source(td.sources.jsonl(path), name="in"))
    ex2 = second.executor(dead_letter_path=False)
    ex2.open(positions=positions)
    ex2.run()
    assert seen + [r["i"] for r in out2.rows] == list(range(10))


# -- sockets ---------------------------------------------------------------------------------
class LineServer:
    """A TCP server that sends ``lines`` to each client that connects (like ``nc -lk``)."""

    def __init__(self, lines: list[str], port: int = 0) -> None:
        self.lines = lines
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.sendall("".join(line + "\n" for line in self.lines).encode())
                self.closing.wait()  # keep the connection open, as a live server does

    def close(self) -> None:
        self.closing.set()
        self.thread.join(2)
        self.sock.close()


def test_socket_text_connects_and_yields_line_column():
    server = LineServer(["first", "second line", "third"])
    try:
        flow = td.Flow("sock")
        s = flow.source(td.sources.socket_text("127.0.0.1", server.port))
        assert dict(s.schema) == {"line": pl.String}
        with Background(flow, s) as bg:
            rows = bg.wait_for(lambda rows: len(rows) >= 3)
    finally:
        server.close()
    assert rows == [{"line": "first"}, {"line": "second line"}, {"line": "third"}]


def test_socket_text_retries_until_the_server_is_up():
    port = free_port()
    flow = td.Flow("sock-retry")
    s = flow.source(td.sources.socket_text("127.0.0.1", port))
    with Background(flow, s) as bg:
        time.sleep(0.7)  # the source's first connection attempts fail: nothing listens yet
        assert bg.rows == []
        server = LineServer(["hello", "world"], port=port)
        try:
            rows = bg.wait_for(lambda rows: len(rows) >= 2)
        finally:
            server.close()
    assert [r["line"] for r in rows] == ["hello", "world"]


def test_socket_text_listen_accepts_clients():
    port = free_port()
    flow = td.Flow("sock-listen")
    s = flow.source(td.sources.socket_text("127.0.0.1", port, listen=True))
    with Background(flow, s) as bg:
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                client = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "source never listened"
                time.sleep(0.02)
        with client:
            client.sendall(b"one\r\ntwo\nthr")
            client.sendall(b"ee\n")
        rows = bg.wait_for(lambda rows: len(rows) >= 3)
    assert [r["line"] for r in rows] == ["one", "two", "three"]


def test_classic_socket_program_prints_lines_containing_error(capsys):
    server = LineServer(["ok: started", "error: disk full", "all good", "another error here"])
    try:
        flow = td.Flow("errors")
        lines = flow.source(td.sources.socket_text("127.0.0.1", server.port))
        lines.filter(pl.col("line").str.contains("error")).print()
        stop = threading.Event()
        t = threading.Thread(target=lambda: flow.run(quiet=True, stop=stop), daemon=True)
        t.start()
        deadline = time.monotonic() + WAIT_S
        printed = ""
        while printed.count("\n") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
            printed += capsys.readouterr().out
        stop.set()
        t.join(WAIT_S)
        printed += capsys.readouterr().out
    finally:
        server.close()
    assert printed.splitlines() == ["line=error: disk full", "line=another error here"]


def test_socket_json_and_csv_lines_decode_and_bad_lines_go_to_dead_letters():
    server = LineServer(['{"device": "a", "temp": 21.5}', "not json", '{"device": "b", "temp": 19}'])
    csv_server = LineServer(["a,21.5", "b", 'c,"19"'])
    try:
        flow = td.Flow("sock-decode")
        json_rows = flow.source(td.sources.socket_text("127.0.0.1", server.port, format="json"),
                                schema={"device": pl.String, "temp": pl.Float64})
        csv_rows = flow.source(td.sources.socket_text("127.0.0.1", csv_server.port, format="csv",
                                                      columns=["device", "temp"]),
                               schema={"device": pl.String, "temp": pl.Float64})
        both = json_rows.union(csv_rows)
        dead: list[dict[str, Any]] = []
        flow.dead_letters().sink(td.sinks.callback(dead.extend))
        with Background(flow, both) as bg:
            rows = bg.wait_for(lambda rows: len(rows) >= 4 and len(dead) >= 2)
    finally:
        server.close()
        csv_server.close()
    assert sorted((r["device"], r["temp"]) for r in rows) == [
        ("a", 21.5), ("a", 21.5), ("b", 19.0), ("c", 19.0)]
    reasons = sorted(d["reason"] for d in dead)
    assert "invalid JSON line" in reasons[1] and "expected 2 fields (device, temp), found 1" \
        in reasons[0], reasons


def test_sql_socket_table(tmp_path: Path):
    server = LineServer(['{"device": "a", "temp": 21.5, "ts": 1000}',
                         '{"device": "a", "temp": 23.5, "ts": 2000}',
                         '{"device": "b", "temp": 10, "ts": 3000}',
                         '{"device": "a", "temp": 0, "ts": 99000}'])
    try:
        flow = td.Flow("sock-sql")
        flow.sql(f"""CREATE TABLE readings (device STRING, temp DOUBLE, ts BIGINT,
                       t AS TO_TIMESTAMP_LTZ(ts, 3), WATERMARK FOR t AS t - INTERVAL '1' SECOND)
                     WITH ('connector' = 'socket', 'hostname' = '127.0.0.1',
                           'port' = '{server.port}', 'format' = 'json')""")
        result = flow.sql("""SELECT device, window_start, AVG(temp) AS avg_temp
                             FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(t), INTERVAL '10' SECOND))
                             GROUP BY device, window_start, window_end""")
        with Background(flow, result) as bg:
            rows = bg.wait_for(lambda rows: len(rows) >= 2)  # the last reading fires [0, 10 s)
    finally:
        server.close()
    assert sorted((r["device"], r["avg_temp"]) for r in rows) == [("a", 22.5), ("b", 10.0)]


def test_csv_lines_with_missing_fields_go_to_dead_letters(tmp_path: Path):
    path = tmp_path / "in.csv"
    path.write_text('a,b,c\n1,2,3\n4,5\n6\n7,"8,x",9\n\n10,11,12\n')
    flow = td.Flow("csv-short")
    out = td.sinks.memory()
    dead: list[dict[str, Any]] = []
    flow.source(td.sources.csv(path)).sink(out)
    flow.dead_letters().sink(td.sinks.callback(dead.extend))
    flow.run(quiet=True, dead_letter_path=False)
    assert out.frame().select("a", "c").rows() == [(1, 3), (7, 9), (10, 12)]
    assert sorted((d["record"], d["reason"]) for d in dead) == [
        ("4,5", "expected 3 fields, found 2"), ("6", "expected 3 fields, found 1")]
