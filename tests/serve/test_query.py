"""``POST /query``: read-only SQL over the views through a real uvicorn server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

from tidal.operators.view import View, ViewRegistry, registry
from tidal.serve.query import QueryRefused, QueryTimeout, SqlEngine
from tidal.testing import Harness

from .conftest import raw_http


@pytest.fixture(autouse=True)
def fresh_views() -> Iterator[None]:
    registry.clear()
    yield
    registry.clear()


@pytest.fixture
def srv(start_server: Any, tmp_path: Any) -> Any:
    h = Harness(schema={"card": pl.String, "country": pl.String, "total": pl.Float64})
    h.stream.to_view("card_totals", key="card")
    h.stream.select("country").to_view("countries", key="country")
    h.add({"card": "c1", "country": "FR", "total": 10.0},
          {"card": "c2", "country": "DE", "total": 5.0},
          {"card": "c3", "country": "FR", "total": 7.5},
          {"card": "c1", "country": "FR", "total": 12.0})
    (tmp_path / "secret.csv").write_text("a,b\n1,2\n")
    return start_server()


def query(srv: Any, sql: str) -> Any:
    return srv.client.post("/query", json={"sql": sql})


def test_select_over_views(srv):
    r = query(srv, "SELECT country, count(*) AS cards, sum(total) AS total FROM card_totals "
                   "GROUP BY country ORDER BY country")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "columns": ["country", "cards", "total"], "types": ["String", "Int64", "Float64"],
        "rows": [{"country": "DE", "cards": 1, "total": 5.0},
                 {"country": "FR", "cards": 2, "total": 19.5}],
        "truncated": False,
    }


def test_joins_ctes_and_quoted_names(srv):
    r = query(srv, 'WITH t AS (SELECT * FROM "card_totals") SELECT c.country, max(t.total) m '
                   "FROM t JOIN countries c USING (country) GROUP BY 1 ORDER BY m DESC LIMIT 1")
    assert r.json()["rows"] == [{"country": "FR", "m": 12.0}]


@pytest.mark.parametrize("sql, reason", [
    ("SELECT * FROM read_csv('{dir}/secret.csv')",
     'Permission Error: Cannot access file "{dir}/secret.csv" - file system operations are '
     "disabled by configuration"),
    ("SELECT * FROM '/etc/passwd'", "Table with name /etc/passwd does not exist"),
    ("SELECT * FROM read_text('/etc/hostname')", "file system operations are disabled"),
    ("SELECT * FROM glob('/*')", "file system operations are disabled"),
    ("COPY card_totals TO '{dir}/out.csv'",
     "only a single SELECT statement is allowed; this is a COPY statement"),
    ("ATTACH '{dir}/x.duckdb' AS x",
     "only a single SELECT statement is allowed; this is a ATTACH statement"),
    ("INSTALL httpfs", "only a single SELECT statement is allowed; this is a LOAD statement"),
    ("LOAD httpfs", "only a single SELECT statement is allowed; this is a LOAD statement"),
    ("CREATE TABLE t AS SELECT 1", "this is a CREATE statement"),
    ("INSERT INTO card_totals VALUES ('x', 'y', 1)", "this is a INSERT statement"),
    ("SET enable_external_access = true", "this is a SET statement"),
    ("SELECT 1; SELECT 2", "send exactly one SELECT statement, not 2 (is there a stray ';'?)"),
    ("SELECT * FROM query('COPY card_totals TO ''x.csv''')", "Expected a single SELECT statement"),
    ("SELECT * FROM nowhere", "Table with name nowhere does not exist"),
    ("SELEC 1", 'Parser Error: syntax error at or near "SELEC"'),
    ("SELECT count(* FROM card_totals", "Parser Error"),
])
def test_refused_with_the_reason(srv, tmp_path, sql, reason):
    r = query(srv, sql.format(dir=tmp_path))
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert detail.startswith("query refused: ")
    assert reason.format(dir=tmp_path) in detail
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "x.duckdb").exists()


def test_external_access_stays_off(srv):
    r = query(srv, "SELECT current_setting('enable_external_access') AS on")
    assert r.json()["rows"] == [{"on": False}]


@pytest.mark.parametrize("body, detail", [
    (b"not json", 'send a JSON object {"sql": "SELECT ..."} (the body is not JSON)'),
    (b'{"query": "SELECT 1"}', 'send a JSON object {"sql": "SELECT ..."} with a non-empty sql'),
    (b'{"sql": "   "}', 'send a JSON object {"sql": "SELECT ..."} with a non-empty sql'),
    (b'["SELECT 1"]', 'send a JSON object {"sql": "SELECT ..."} with a non-empty sql'),
])
def test_bad_bodies(srv, body, detail):
    r = srv.client.post("/query", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["detail"] == detail


def test_body_limit_is_enforced_before_reading(srv):
    big = b'{"sql": "SELECT ' + b"1" * (70 << 10) + b'"}'
    r = srv.client.post("/query", content=big)
    assert r.status_code == 413
    # a Content-Length over the limit is refused without waiting for the body
    status, body = raw_http(srv.port, b"POST /query HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Length: 10000000\r\n\r\n")
    assert status == 413 and b"exceeds the limit of 65,536 bytes" in body


def test_empty_views_are_tables_too(start_server):
    h = Harness(schema={"k": pl.Int64, "v": pl.String})
    h.stream.to_view("empty", key="k")
    h.executor  # noqa: B018 - opens the flow, registering the view
    srv = start_server()
    r = query(srv, "SELECT count(*) AS n FROM empty")
    assert r.json()["rows"] == [{"n": 0}]


# -- the engine on its own ----------------------------------------------------------------
def engine(max_rows: int = 10_000, timeout_s: float = 10.0) -> SqlEngine:
    views = ViewRegistry()
    v = View("t", ["k"])
    views.add(v)
    v.upsert(pl.DataFrame({"k": list(range(100)), "x": [i * 2 for i in range(100)]}))
    return SqlEngine(views, max_rows=max_rows, timeout_s=timeout_s)


def test_results_are_capped():
    frame, truncated = engine(max_rows=10).run("SELECT * FROM t ORDER BY k")
    assert frame.height == 10 and truncated
    frame, truncated = engine(max_rows=100).run("SELECT * FROM t")
    assert frame.height == 100 and not truncated


def test_long_queries_are_interrupted():
    with pytest.raises(QueryTimeout, match="ran longer than 0.3 s and was stopped"):
        engine(timeout_s=0.3).run("SELECT count(*) FROM range(1000000000000)")


def test_python_variables_are_not_tables():
    secret = pl.DataFrame({"password": ["hunter2"]})  # noqa: F841 - what a scan would find
    with pytest.raises(QueryRefused, match="Table with name secret does not exist"):
        engine().run("SELECT * FROM secret")
