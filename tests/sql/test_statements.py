"""Statements beyond queries: DDL, SHOW/DESCRIBE/EXPLAIN, INSERT into an upsert sink,
Python streams as tables, UDFs, and the ``tidal sql`` command."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

import tidal as td
from tidal.commands.sql import sql_command
from tidal.sql import SqlError

BID = """CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND)
  WITH ('connector' = 'nexmark', 'events' = '5000', 'out-of-order-group' = '10');"""


def test_show_describe_explain_view_and_drop(capsys: pytest.CaptureFixture[str]) -> None:
    flow = td.Flow("ddl")
    flow.sql(BID + " CREATE TEMPORARY VIEW cheap AS SELECT auction, price FROM bid WHERE price < 100;")
    assert flow.sql("SHOW TABLES") == "bid\ncheap"
    text = flow.sql("DESCRIBE bid")
    assert "dateTime  TIMESTAMP(3)  *ROWTIME*" in text
    plan = flow.sql("EXPLAIN SELECT auction, COUNT(*) AS n FROM cheap GROUP BY auction")
    assert "agg[auction]" in plan and plan.endswith("result: updating (upserts by auction)")
    assert flow.nodes == []  # EXPLAIN plans into a scratch flow
    flow.sql("DROP VIEW cheap")
    with pytest.raises(SqlError, match="unknown table 'cheap'"):
        flow.sql("SELECT * FROM cheap")
    capsys.readouterr()


def test_updating_result_upserts_into_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "out.db"
    flow = td.Flow("upsert")
    flow.sql(BID + f"""
      CREATE TABLE totals (auction BIGINT, n BIGINT, top BIGINT, PRIMARY KEY (auction) NOT ENFORCED)
        WITH ('connector' = 'sqlite', 'path' = '{db}');
      INSERT INTO totals SELECT auction, COUNT(*), MAX(price) FROM bid GROUP BY auction;""")
    flow.run(quiet=True)
    got = sorted(sqlite3.connect(db).execute("SELECT auction, n, top FROM totals").fetchall())
    from tidal.nexmark import NexmarkConfig, generate_bids
    bids = generate_bids(NexmarkConfig(events=5000, out_of_order_group=10), 0, 5000)
    want = bids.group_by("auction").agg(pl.len().cast(pl.Int64), pl.col("price").max()).sort("auction")
    assert got == [tuple(r) for r in want.iter_rows()]


def test_python_stream_as_table_and_udfs() -> None:
    flow = td.Flow("mix")
    events = flow.source(td.sources.memory([{"user": "ann", "n": 3, "t": 1000},
                                             {"user": "bob", "n": 5, "t": 2000}]), timestamp="t")
    flow.register_table("events", events.filter(pl.col("n") > 0))
    flow.register_function("twice", lambda s: s * 2, return_type="BIGINT")
    flow.register_function("shout", lambda s: s.upper() + "!", vectorized=False, return_type="STRING")
    out = td.sinks.memory()
    flow.sql("SELECT shout(`user`) AS u, twice(n) AS n2 FROM events WHERE n BETWEEN 3 AND 4").sink(out)
    flow.run(quiet=True)
    assert out.rows == [{"u": "ANN!", "n2": 6}]


def test_failed_statement_leaves_the_flow_unchanged() -> None:
    flow = td.Flow("rollback")
    flow.sql(BID)
    with pytest.raises(SqlError):
        flow.sql("SELECT auction, nope FROM bid")
    assert flow.nodes == []


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("sql")(sql_command)
    app.command("noop")(lambda: None)
    return app


def test_tidal_sql_prints_json_lines_and_ends_on_bounded_input(tmp_path: Path) -> None:
    script = tmp_path / "q.sql"
    script.write_text(BID + """
      SELECT window_start, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`),
        INTERVAL '100' MILLISECOND)) GROUP BY window_start, window_end;""")
    result = CliRunner().invoke(_app(), ["sql", str(script)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert sum(r["n"] for r in rows) == 4600 and len(rows) == 5
    csv = CliRunner().invoke(_app(), ["sql", "--format", "csv", "-e", BID + " SELECT COUNT(*) AS n "
                                      "FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), "
                                      "INTERVAL '1' SECOND)) GROUP BY window_start, window_end"])
    assert csv.stdout == "n\n4600\n"


def test_tidal_sql_csv_writes_arrays_as_json_text() -> None:
    result = CliRunner().invoke(_app(), ["sql", "--format", "csv", "-e",
                                         "SELECT SPLIT('a,b', ',') AS parts, 1 AS n"])
    assert result.exit_code == 0, result.output
    assert result.stdout == 'parts,n\n"[""a"",""b""]",1\n'


def test_tidal_sql_reports_errors_with_position() -> None:
    result = CliRunner().invoke(_app(), ["sql", "-e", "SELECT a FROM nowhere"])
    assert result.exit_code == 1
    assert "SQL error at line 1, column 15: unknown table 'nowhere'" in result.output


def test_execute_statement_set_runs_its_inserts_on_shared_sources(tmp_path: Path) -> None:
    flow = td.Flow("set")
    flow.sql(BID + f"""
      CREATE TABLE cheap (auction BIGINT, kind STRING)
        WITH ('connector' = 'filesystem', 'path' = '{tmp_path}/cheap.jsonl', 'format' = 'json');
      CREATE TABLE bidders (bidder BIGINT)
        WITH ('connector' = 'filesystem', 'path' = '{tmp_path}/bidders.jsonl', 'format' = 'json');
      EXECUTE STATEMENT SET
      BEGIN
        INSERT INTO cheap SELECT auction, CASE WHEN price < 100 THEN 'low' END FROM bid
          WHERE price < 1000;
        INSERT INTO bidders SELECT bidder FROM bid;
      END;""")
    assert [n.kind for n in flow.nodes].count("source") == 1
    flow.run(quiet=True)
    cheap = pl.read_ndjson(tmp_path / "cheap.jsonl")
    bidders = pl.read_ndjson(tmp_path / "bidders.jsonl")
    assert cheap.height and bidders.height > cheap.height
    with pytest.raises(SqlError, match="EXECUTE STATEMENT SET takes INSERT INTO statements only"):
        td.Flow("bad").sql(BID + "EXECUTE STATEMENT SET BEGIN SELECT * FROM bid; END;")


def test_plan_filters_before_joins_and_shares_identical_aggregations() -> None:
    """What EXPLAIN shows a user tuning a query: conditions on one side of a join run
    before it (fewer rows kept in join state), and two identical GROUP BYs (Nexmark q5's
    two HOP counts) are one stateful step read twice."""
    from tidal.sql.nexmark import ddl

    flow = td.Flow("plan")
    flow.sql(ddl(events=1000))
    q3 = flow.sql("""EXPLAIN SELECT P.name, A.id FROM auction AS A JOIN person AS P
                     ON A.seller = P.id AND P.city <> 'x'
                     WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'CA')""")
    lines = q3.splitlines()
    joined = next(i for i, line in enumerate(lines) if " join: " in line)
    filtered = [line.split(" <- ")[1].split("]")[0] for line in lines if " filter: " in line]
    assert sorted(filtered) == ["[auction", "[person"]  # each side filtered at its source
    assert not any(" filter: " in line for line in lines[joined:])
    q5 = flow.sql((Path(__file__).parents[2] / "queries/nexmark/q5.sql").read_text()
                  .split("INSERT INTO nexmark_q5", 1)[1].replace(";", "").join(["EXPLAIN ", ""]))
    windows = [line for line in q5.splitlines() if "sliding(10s, every=2s)" in line
               and " window: " in line]
    assert len(windows) == 1, q5


def test_mod_takes_the_sign_of_the_dividend_in_values_and_comparisons() -> None:
    """SQL's MOD truncates (Java's %): MOD(-7, 3) = -1, not Python's 2; ``MOD(a, b) = 0``
    (planned as a cheaper floor modulo) agrees with it for every sign."""
    import math

    flow = td.Flow("mod")
    rows = [{"a": a, "b": b} for a in range(-7, 8) for b in (3, -3, 5)]
    flow.register_table("t", flow.source(td.sources.memory(rows)))
    out = td.sinks.memory()
    flow.sql("SELECT a, b, MOD(a, b) AS m, MOD(a, b) = 0 AS z, 0 <> MOD(a, b) AS nz, "
             "a % b AS p FROM t").sink(out)
    flow.run(quiet=True)
    got = out.frame().to_dicts()
    assert len(got) == len(rows)
    for r in got:
        want = int(math.fmod(r["a"], r["b"]))
        assert (r["m"], r["p"], r["z"], r["nz"]) == (want, want, want == 0, want != 0), r


@pytest.mark.parametrize("windowed", [True, False])
def test_sum_of_no_values_is_null_like_duckdb(windowed: bool) -> None:
    """SUM over only NULLs, or with a FILTER that keeps no row, is NULL (not 0)."""
    import duckdb

    rows = [{"k": i % 3, "x": None if i % 3 == 1 else i, "t": i * 1000} for i in range(9)]
    flow = td.Flow("sums")
    flow.register_table("t", flow.source(td.sources.memory(rows), timestamp="t"))
    source = ("TABLE(TUMBLE(TABLE t, DESCRIPTOR(t), INTERVAL '1' MINUTE))" if windowed else "t")
    group = "k, window_start, window_end" if windowed else "k"
    out = td.sinks.memory()
    query = ("SELECT k, SUM(x) AS s, SUM(x) FILTER (WHERE x > 100) AS big, "
             "SUM(x) FILTER (WHERE x >= 3) AS some FROM {} GROUP BY {}")
    flow.sql(query.format(source, group)).sink(out)
    flow.run(quiet=True)
    got = out.frame().group_by("k", maintain_order=True).last().select("k", "s", "big", "some")
    con = duckdb.connect()
    con.register("t", pl.DataFrame(rows).to_arrow())
    want = con.sql(query.format("t", "k")).pl()
    assert sorted(got.rows()) == sorted(want.rows())
    assert None in got["s"].to_list() and got["big"].null_count() == 3


def test_select_distinct_is_a_group_by_of_the_selected_values() -> None:
    """Updating over a plain stream (keyed by the values), append over a window TVF."""
    import duckdb

    from tidal.nexmark import NexmarkConfig, generate_events
    from tidal.operators.changelog import DELETE, apply_changelog
    from tidal.sql.nexmark import ddl

    n = 20_000
    con = duckdb.connect()
    con.register("bid", generate_events(NexmarkConfig(events=n, out_of_order_group=10), 0, n)[
        "bid"].to_arrow())
    plain = "SELECT DISTINCT auction % 10 AS a10, bidder % 3 AS b3 FROM bid WHERE price > 1000"
    windowed = ("SELECT DISTINCT window_start, auction % 5 AS a5 FROM TABLE(TUMBLE(TABLE bid, "
                "DESCRIPTOR(`dateTime`), INTERVAL '1' SECOND))")
    results = {}
    for name, query in (("plain", plain), ("windowed", windowed)):
        flow = td.Flow(f"distinct-{name}")
        flow.sql(ddl(events=n, out_of_order_group=10))
        out = td.sinks.memory()
        flow.sql(query).sink(out)
        flow.run(quiet=True, max_batch_rows=999)
        results[name] = out.frame()
    got = apply_changelog(results["plain"], ["a10", "b3"]).drop(DELETE, strict=False)
    assert sorted(got.rows()) == sorted(con.sql(plain).fetchall())
    want = con.sql('SELECT DISTINCT time_bucket(INTERVAL 1 SECOND, "dateTime") AS ws, '
                   "auction % 5 AS a5 FROM bid").fetchall()
    windows = results["windowed"]
    assert windows.height == len(want)  # append: each (window, value) once
    assert sorted((r[0].replace(tzinfo=None), r[1]) for r in windows.rows()) == \
        sorted((w.replace(tzinfo=None), a) for w, a in want)
    flow = td.Flow("distinct-errors")
    flow.sql(ddl(events=10))
    with pytest.raises(SqlError, match=r"SELECT DISTINCT \*"):
        flow.sql("SELECT DISTINCT * FROM bid")
    with pytest.raises(SqlError, match="DISTINCT with GROUP BY"):
        flow.sql("SELECT DISTINCT auction, COUNT(*) FROM bid GROUP BY auction")


def test_create_function_imports_python_functions_and_aggregates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shop_functions.py").write_text(
        "import tidal as td\nfrom tidal.sql import udf\n\n"
        "@udf('BIGINT')\ndef twice(s):\n    return s * 2\n\n"
        "@udf('STRING', vectorized=False)\ndef shout(s):\n    return s.upper() + '!'\n\n"
        "spread = td.agg.udaf(lambda s: s.max() - s.min(), return_type='BIGINT')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    flow = td.Flow("create-function")
    flow.register_table("t", flow.source(td.sources.memory(
        [{"k": k, "name": n} for k, n in [(1, "ann"), (4, "bob"), (9, "ann")]])))
    flow.sql("""CREATE FUNCTION twice AS 'shop_functions.twice' LANGUAGE PYTHON;
                CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS shout AS 'shop_functions.shout';
                CREATE FUNCTION spread AS 'shop_functions.spread';
                CREATE FUNCTION IF NOT EXISTS twice AS 'shop_functions.nothing'""")
    rows, groups = td.sinks.memory(), td.sinks.memory()
    flow.sql("SELECT twice(k) AS k2, shout(name) AS loud FROM t").sink(rows)
    flow.sql("SELECT name, spread(k) AS s FROM t GROUP BY name").sink(groups)
    flow.run(quiet=True)
    assert rows.frame().rows() == [(2, "ANN!"), (8, "BOB!"), (18, "ANN!")]
    final = groups.frame().group_by("name", maintain_order=True).last()
    assert sorted(final.select("name", "s").rows()) == [("ann", 8), ("bob", 0)]
    flow.sql("DROP FUNCTION twice")
    with pytest.raises(SqlError, match="unknown function 'twice'|twice"):
        flow.sql("SELECT twice(k) FROM t")
    with pytest.raises(SqlError, match="cannot import it .*PYTHONPATH"):
        flow.sql("CREATE FUNCTION f AS 'no_such_module.f'")
    with pytest.raises(SqlError, match="exists already"):
        flow.sql("CREATE FUNCTION shout AS 'shop_functions.shout'")
    with pytest.raises(SqlError, match="LANGUAGE JAVA is not supported"):
        flow.sql("CREATE FUNCTION j AS 'com.example.Fn' LANGUAGE JAVA")


def test_show_functions_lists_built_ins_by_introspection_and_user_functions() -> None:
    flow = td.Flow("functions")
    assert flow.sql("SHOW USER FUNCTIONS") == ""
    flow.register_function("Twice", lambda s: s * 2, return_type="BIGINT")
    assert flow.sql("SHOW USER FUNCTIONS") == "Twice"
    names = flow.sql("SHOW FUNCTIONS").splitlines()
    assert names == sorted(names) and "Twice" in names
    # names parsed into a node the Translator plans (lpad: by a sqlglot builder), its _fn_
    # functions, and the aggregates
    assert {"upper", "substring", "substr", "lpad", "coalesce", "cast", "date_format",
            "proctime", "count", "sum", "avg"} <= set(names)
    assert not {"and", "or", "anonymous", "case", "pad", "str_position", "weight_string"} & \
        set(names)
    # functions tidal only refuses (clocks, random values) are not offered
    assert not {"rand", "rand_integer", "uuid", "current_date", "localtimestamp",
                "current_watermark", "current_timestamp"} & set(names)
    with pytest.raises(SqlError, match="the statement SHOW SYSTEM is not supported"):
        flow.sql("SHOW SYSTEM FUNCTIONS")


def test_show_create_table_and_view_print_their_ddl() -> None:
    flow = td.Flow("show-create")
    flow.sql(BID + "\n  CREATE VIEW cheap AS SELECT auction FROM bid WHERE price < 100 ;")
    assert flow.sql("SHOW CREATE TABLE bid") == BID.rstrip(";")
    assert flow.sql("SHOW CREATE VIEW cheap") == \
        "CREATE VIEW cheap AS SELECT auction FROM bid WHERE price < 100"
    with pytest.raises(SqlError, match="SHOW CREATE TABLE cheap: 'cheap' is a view"):
        flow.sql("SHOW CREATE TABLE cheap")
    with pytest.raises(SqlError, match="unknown table 'nope'"):
        flow.sql("SHOW CREATE VIEW nope")


def test_session_window_tvf_partition_by_keys_its_sessions() -> None:
    flow = td.Flow("session-partition")
    events = flow.source(td.sources.memory(
        [{"u": "a", "v": 1, "t": 1000}, {"u": "b", "v": 2, "t": 1500}, {"u": "a", "v": 3, "t": 1800},
         {"u": "a", "v": 4, "t": 5000}, {"u": "b", "v": 5, "t": 9000}]), timestamp="t")
    flow.register_table("ev", events)
    window = "TABLE(SESSION(TABLE ev PARTITION BY u, DESCRIPTOR(t), INTERVAL '1' SECOND))"
    out = td.sinks.memory()
    flow.sql(f"SELECT u, window_start, window_end, SUM(v) AS s FROM {window} "
             "GROUP BY window_start, window_end, u").sink(out)
    flow.run(quiet=True)
    assert sorted(out.rows, key=lambda r: (r["u"], r["window_start"])) == [
        {"u": "a", "window_start": 1000, "window_end": 2800, "s": 4},
        {"u": "a", "window_start": 5000, "window_end": 6000, "s": 4},
        {"u": "b", "window_start": 1500, "window_end": 2500, "s": 2},
        {"u": "b", "window_start": 9000, "window_end": 10000, "s": 5}]
    with pytest.raises(SqlError, match=r"SESSION\(... PARTITION BY u ...\): GROUP BY "
                                       "window_start, window_end needs the partition key"):
        flow.sql(f"SELECT COUNT(*) FROM {window} GROUP BY window_start, window_end")
    with pytest.raises(SqlError, match="GROUP BY v beyond the PARTITION BY keys of SESSION is "
                                       "not supported; add them to PARTITION BY"):
        flow.sql(f"SELECT COUNT(*) FROM {window} GROUP BY window_start, window_end, u, v")
