"""Bad input goes to dead letters and the pipeline keeps running; invalid pipelines fail
before they start with a message that names the problem and says what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import tidal as td


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TIDAL_HOME", str(tmp_path / ".tidal"))
    return tmp_path / ".tidal"


def dead_letter_file(home: Path, flow: str) -> list[dict[str, Any]]:
    """The dead letters a run kept in its log topic ``<flow>.dead-letters``."""
    import tidal.log

    with tidal.log.open(home / "log") as log:
        topic = log.topic(f"{flow}.dead-letters")
        table = topic.read_arrow(0, 0, max_rows=1_000_000).table
    return pl.from_arrow(table).drop("offset", "partition").to_dicts()


def run_with_dead_letters(flow: td.Flow, stream: td.Stream, **kwargs: Any) -> tuple[list, list]:
    out, dead = td.sinks.memory(), td.sinks.memory()
    stream.sink(out)
    flow.dead_letters().sink(dead)
    flow.run(quiet=True, **kwargs)
    return out.rows, dead.rows


# -- bad records -----------------------------------------------------------------------------
def test_record_not_matching_declared_schema_is_dead_lettered(home, capsys):
    records = [
        {"auction": 1, "price": 10, "t": 1_000},
        {"auction": 2, "price": "ten", "t": 2_000},
        {"auction": 3, "price": 30, "t": 3_000},
    ]
    flow = td.Flow("schema")
    bids = flow.source(td.sources.memory(records), timestamp="t",
                       schema={"auction": pl.Int64, "price": pl.Int64, "t": pl.Int64})
    good, dead = run_with_dead_letters(flow, bids.filter(pl.col("price") > 0))
    assert [(r["auction"], r["price"]) for r in good] == [(1, 10), (3, 30)]
    assert len(dead) == 1
    assert "'price'" in dead[0]["reason"] and "Int64" in dead[0]["reason"]
    assert json.loads(dead[0]["record"])["price"] == "ten"
    assert dead[0]["flow"] == "schema" and dead[0]["step"] == "memory"
    in_file = dead_letter_file(home, "schema")
    assert [d["reason"] for d in in_file] == [dead[0]["reason"]]
    assert json.loads(in_file[0]["record"])["price"] == "ten"
    assert "1 dead letter(s) kept in topic 'schema.dead-letters'" in capsys.readouterr().err
    assert flow.last_run is not None and flow.last_run.metrics.dead_letters == 1


def test_record_without_timestamp_is_dead_lettered_and_windows_continue(home):
    records = [
        {"k": "a", "t": 1_000},
        {"k": "a"},
        {"k": "a", "t": None},
        {"k": "a", "t": 2_000},
    ]
    flow = td.Flow("nots")
    s = flow.source(td.sources.memory(records), timestamp="t")
    counts = s.key_by("k").window(td.tumbling("10s")).agg(n=td.agg.count())
    good, dead = run_with_dead_letters(flow, counts, max_batch_rows=1)
    assert [(r["k"], r["n"]) for r in good] == [("a", 2)]
    assert [d["reason"] for d in dead] == ["record has no timestamp field 't'"] * 2
    assert len(dead_letter_file(home, "nots")) == 2


def test_bad_records_in_a_jsonl_file_with_declared_schema(tmp_path, home):
    path = tmp_path / "bids.jsonl"
    path.write_text(
        '{"auction": 1, "price": 5, "date_time": "2024-01-01T00:00:01"}\n'
        '{"auction": "x", "price": 6, "date_time": "2024-01-01T00:00:02"}\n'
        '{"auction": 3, "price": 7}\n'
        '{"auction": 4, "price": 8, "date_time": "2024-01-01T00:00:04"}\n'
    )
    flow = td.Flow("file-schema")
    s = flow.source(td.sources.jsonl(path), timestamp="date_time",
                    schema={"auction": pl.Int64, "price": pl.Int64, "date_time": pl.String})
    good, dead = run_with_dead_letters(flow, s)
    assert [r["auction"] for r in good] == [1, 4]
    reasons = sorted(d["reason"] for d in dead)
    assert len(reasons) == 2
    assert "'auction'" in reasons[0]
    assert reasons[1] == "record has no timestamp field 'date_time'"
    assert all(d["source_partition"] == str(path) for d in dead)


def test_malformed_json_lines_go_to_dead_letters_with_file_and_offset(tmp_path, home):
    lines = [b'{"n": 1}\n', b'{"n": 2, oops}\n', b'[1, 2]\n', b'{"n": 4}\n']
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(lines))
    flow = td.Flow("badjson")
    good, dead = run_with_dead_letters(flow, flow.source(td.sources.jsonl(path)))
    assert [r["n"] for r in good] == [1, 4]
    assert len(dead) == 2
    offsets = [len(lines[0]), len(lines[0]) + len(lines[1])]
    for d, offset, raw in zip(dead, offsets, lines[1:3], strict=True):
        assert d["reason"].startswith("invalid JSON line")
        assert json.loads(d["position"]) == {"file": str(path), "offset": offset}
        assert d["record"] == raw.decode().strip()
        assert d["source"] == "jsonl" and d["source_partition"] == str(path)
    assert [d["position"] for d in dead_letter_file(home, "badjson")] == [d["position"] for d in dead]


def test_csv_row_with_wrong_field_count_is_dead_lettered(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("a,b\n1,2\n3,4,5\n6,7\n")
    flow = td.Flow("badcsv")
    good, dead = run_with_dead_letters(flow, flow.source(td.sources.csv(path)))
    assert [(r["a"], r["b"]) for r in good] == [(1, 2), (6, 7)]
    assert [d["reason"] for d in dead] == ["expected 2 fields, found 3"]
    assert [d["record"] for d in dead] == ["3,4,5"]
    assert json.loads(dead[0]["position"]) == {"file": str(path), "offset": len("a,b\n1,2\n")}


def test_map_function_raising_dead_letters_that_record_only(home):
    def inverse(r: dict[str, Any]) -> dict[str, Any]:
        return {"x": r["x"], "inv": 1 / r["x"]}

    flow = td.Flow("raising")
    s = flow.source(td.sources.memory([{"x": 2}, {"x": 0}, {"x": 4}]))
    good, dead = run_with_dead_letters(flow, s.map(inverse, name="invert"))
    assert good == [{"x": 2, "inv": 0.5}, {"x": 4, "inv": 0.25}]
    [d] = dead
    assert d["step"] == "invert"
    assert "ZeroDivisionError" in d["reason"] and "inverse" in d["reason"]
    assert "'invert'" in d["reason"]
    assert json.loads(d["record"]) == {"x": 0}
    assert len(dead_letter_file(home, "raising")) == 1


def test_filter_and_flat_map_functions_raising_dead_letter_too():
    flow = td.Flow("raising2")
    s = flow.source(td.sources.memory([{"w": "a b"}, {"w": None}, {"w": "c"}]))
    words = s.flat_map(lambda r: [{"w": x} for x in r["w"].split()])
    kept = words.filter(lambda r: r["w"] != "b")
    good, dead = run_with_dead_letters(flow, kept)
    assert good == [{"w": "a"}, {"w": "c"}]
    assert len(dead) == 1 and "AttributeError" in dead[0]["reason"]


def test_dead_letters_can_be_kept_out_of_the_log(home):
    flow = td.Flow("nofile")
    s = flow.source(td.sources.memory([{"k": "a"}]), timestamp="t", schema={"k": pl.String,
                                                                             "t": pl.Int64})
    good, dead = run_with_dead_letters(flow, s, dead_letters_to_log=False)
    assert good == [] and len(dead) == 1
    assert not (home / "log" / "topics" / "nofile.dead-letters").exists()
    assert not (home / "dead-letters" / "nofile.jsonl").exists()


def test_dead_letter_path_can_be_chosen(tmp_path):
    flow = td.Flow("chosen")
    s = flow.source(td.sources.memory([{"x": 1}]))
    s.map(lambda r: {"y": 1 // 0}).print()
    flow.run(quiet=True, dead_letter_path=tmp_path / "dl" / "bad.jsonl")
    [d] = [json.loads(x) for x in (tmp_path / "dl" / "bad.jsonl").read_text().splitlines()]
    assert "ZeroDivisionError" in d["reason"]


# -- user functions breaking their contract --------------------------------------------------
def to_pair(r: dict[str, Any]) -> Any:
    return (r["x"], 1)


@pytest.mark.parametrize("build,step,fn,returned", [
    (lambda s: s.map(to_pair), "map", "to_pair", "tuple"),
    (lambda s: s.map(to_pair, name="pairs"), "pairs", "to_pair", "tuple"),
    (lambda s: s.filter(lambda r: "yes"), "filter", "<lambda>", "str"),
    (lambda s: s.flat_map(lambda r: {"x": 1}), "flat_map", "<lambda>", "dict"),
    (lambda s: s.flat_map(lambda r: [1, 2]), "flat_map", "<lambda>", "int"),
    (lambda s: s.map_batches(lambda df: df.to_dicts()), "map_batches", "<lambda>", "list"),
    (lambda s: s.key_by("x").reduce(lambda a, b: 3), "reduce[x]", "<lambda>", "int"),
    (lambda s: s.key_by("x").update_state(lambda k, rows, st: 42), "update_state[x]",
     "<lambda>", "int"),
])
def test_function_returning_wrong_type_raises_naming_step_and_function(build, step, fn, returned):
    flow = td.Flow("contract")
    s = flow.source(td.sources.memory([{"x": 1}, {"x": 1}]))
    build(s).print()
    with pytest.raises(td.errors.UserFunctionError) as info:
        flow.run(quiet=True, max_batch_rows=1)
    msg = str(info.value)
    assert f"step {step!r}" in msg
    assert fn in msg and "test_errors.py" in msg
    assert f"returned {returned}" in msg
    assert "must return" in msg


def test_user_function_error_is_a_type_error_and_a_tidal_error():
    assert issubclass(td.errors.UserFunctionError, TypeError)
    assert issubclass(td.errors.UserFunctionError, td.errors.TidalError)


# -- invalid pipelines fail at build time ---------------------------------------------------
BIDS = [{"auction": 1, "price": 5, "date_time": 1_000}]


def bids_stream(**kwargs: Any) -> td.Stream:
    return td.Flow("plan").source(td.sources.memory(BIDS), **kwargs)


def test_unknown_column_in_expression_fails_at_build_time():
    s = bids_stream(timestamp="date_time")
    with pytest.raises(td.errors.PlanError) as info:
        s.filter(pl.col("prise") > 10)
    msg = str(info.value)
    assert "unknown column 'prise'" in msg
    assert "did you mean 'price'?" in msg
    assert "test_errors.py:" in msg  # where in the user's code
    assert "auction, price, date_time" in msg


@pytest.mark.parametrize("build", [
    lambda s: s.select("auction", pl.col("pricee")),
    lambda s: s.with_columns(pl.col("pricee") * 2),
    lambda s: s.select(big=pl.col("pricee") > 1),
])
def test_unknown_column_in_select_and_with_columns(build):
    with pytest.raises(td.errors.PlanError, match=r"unknown column 'pricee'; did you mean 'price'\?"):
        build(bids_stream())


def test_unknown_key_column_fails_at_build_time():
    s = bids_stream(timestamp="date_time")
    with pytest.raises(td.errors.PlanError) as info:
        s.key_by("auctoin")
    assert "key_by" in str(info.value)
    assert "unknown column 'auctoin'; did you mean 'auction'?" in str(info.value)


def test_unknown_timestamp_column_fails_at_build_time():
    flow = td.Flow("plan")
    with pytest.raises(td.errors.PlanError) as info:
        flow.source(td.sources.memory(BIDS), timestamp="datetime")
    assert "unknown column 'datetime'; did you mean 'date_time'?" in str(info.value)
    assert "timestamp" in str(info.value)


def test_unknown_aggregate_column_fails_at_build_time():
    s = bids_stream(timestamp="date_time")
    with pytest.raises(td.errors.PlanError, match=r"unknown column 'prize'; did you mean 'price'\?"):
        s.key_by("auction").window(td.tumbling("10s")).agg(top=td.agg.max("prize"))


def test_unknown_column_after_a_projection_is_caught():
    s = bids_stream().select("auction")
    with pytest.raises(td.errors.PlanError, match="unknown column 'price'"):
        s.filter(pl.col("price") > 1)


def test_window_on_unkeyed_stream_tells_to_key_by():
    s = bids_stream(timestamp="date_time")
    with pytest.raises(td.errors.PlanError) as info:
        s.window(td.tumbling("10s"))
    msg = str(info.value)
    assert "keyed stream" in msg and ".key_by(" in msg
    assert "test_errors.py:" in msg


def test_window_without_event_time_says_how_to_get_one():
    s = bids_stream()
    with pytest.raises(td.errors.PlanError) as info:
        s.key_by("auction").window(td.tumbling("10s"))
    assert "no event time" in str(info.value) and "timestamp=" in str(info.value)


def test_window_needs_a_window_spec():
    s = bids_stream(timestamp="date_time")
    with pytest.raises(td.errors.PlanError, match=r"td\.tumbling"):
        s.key_by("auction").window("10s")  # type: ignore[arg-type]


def test_agg_needs_aggregates():
    s = bids_stream(timestamp="date_time")
    with pytest.raises(td.errors.PlanError, match=r"td\.agg\.count\(\)"):
        s.key_by("auction").window(td.tumbling("10s")).agg(n=len)  # type: ignore[arg-type]
    with pytest.raises(td.errors.PlanError, match="at least one aggregate"):
        s.key_by("auction").window(td.tumbling("10s")).agg()


@pytest.mark.parametrize("make", [
    lambda: td.tumbling("10 sec"),
    lambda: td.sliding("10 sec", every="2s"),
    lambda: td.session("10 sec"),
    lambda: td.bounded_delay("10 sec"),
    lambda: bids_stream(timestamp="date_time").key_by("auction").window(
        td.tumbling("10s"), allowed_lateness="10 sec"),
    lambda: bids_stream(timestamp="date_time").key_by("auction").agg(
        n=td.agg.count(), ttl="10 sec"),
])
def test_bad_duration_string_shows_a_valid_example(make):
    with pytest.raises(td.errors.ConfigError) as info:
        make()
    msg = str(info.value)
    assert "'10 sec'" in msg
    assert "'10s'" in msg and "'200ms'" in msg


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        td.tumbling("soon")


def test_zero_and_inverted_window_sizes_are_rejected():
    with pytest.raises(td.errors.ConfigError, match="longer than 0"):
        td.tumbling("0s")
    with pytest.raises(td.errors.ConfigError, match="slide <= size"):
        td.sliding("2s", every="10s")


def test_bad_flow_name_and_non_source():
    with pytest.raises(td.errors.ConfigError, match="bad flow name"):
        td.Flow("my flow!")
    with pytest.raises(td.errors.PlanError, match=r"expected a source such as td\.sources\.jsonl"):
        td.Flow("x").source([{"a": 1}])  # type: ignore[arg-type]


def test_duplicate_explicit_step_names_are_rejected():
    s = bids_stream()
    s.select("auction", name="proj")
    with pytest.raises(td.errors.PlanError, match="already has a step named 'proj'"):
        s.select("price", name="proj")


def test_invalid_pipeline_fails_before_any_sink_is_touched(tmp_path):
    out = tmp_path / "out.jsonl"
    flow = td.Flow("never")
    s = flow.source(td.sources.memory(BIDS), timestamp="date_time")
    s.sink(td.sinks.jsonl(out))
    with pytest.raises(td.errors.PlanError):
        s.key_by("nope")
    assert not out.exists()
