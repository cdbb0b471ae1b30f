"""``/metrics`` (Prometheus text format), ``/metrics.json`` and ``/readyz`` while a flow
runs with its server."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import httpx
import polars as pl
import pytest

import tidal as td
from tidal.operators.view import registry
from tidal.serve.metrics import BUCKETS, RunningFlow
from tidal.testing import Harness

from .test_views import FlowThread

_SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)'
    r'(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})?'
    r' (?P<value>[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+|NaN|\+Inf|-Inf))$'
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


def parse(text: str) -> dict[str, Any]:
    """A strict reader of the text exposition format: families with their type, and
    samples ``{(name, frozenset(labels)): value}``; fails on any malformed line."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert name not in types, f"family {name} declared twice"
            types[name] = kind
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name = m["name"]
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"{name} has no # TYPE line before it"
        labels = frozenset(_LABEL.findall(m["labels"] or ""))
        key = (name, labels)
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(m["value"])
    return {"types": types, "samples": samples}


def value(metrics: dict[str, Any], name: str, **labels: str) -> float:
    want = set(labels.items())
    found = [v for (n, ls), v in metrics["samples"].items() if n == name and want <= ls]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


@pytest.fixture(autouse=True)
def fresh_views(tmp_path: Any, monkeypatch: Any) -> Iterator[None]:
    monkeypatch.setenv("TIDAL_HOME", str(tmp_path))
    registry.clear()
    yield
    registry.clear()


@pytest.fixture
def running(tmp_path: Any) -> Iterator[FlowThread]:
    flow = td.Flow("metered")
    tx = flow.source(td.sources.generator("transactions", rate=2_000), timestamp="ts",
                     name="tx")
    tx.key_by("card").agg(total=td.agg.sum("amount"), name="spend") \
        .to_view("card_totals", key="card")
    tx.key_by("merchant").window(td.tumbling("200ms"), name="per_merchant") \
        .agg(n=td.agg.count()).to_view("merchant_windows", key="merchant", windows=3)
    run = FlowThread(flow, checkpoint_dir=tmp_path / "ck", checkpoint_interval="300ms")
    run.wait(lambda: httpx.get(f"{run.url}/readyz").status_code == 200, "readiness")
    yield run
    run.stop()


def scrape(run: FlowThread) -> dict[str, Any]:
    r = httpx.get(f"{run.url}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(r.text)


def test_metrics_parse_and_move_while_data_flows(running):
    running.wait(lambda: value(scrape(running), "tidal_checkpoints_total") >= 1,
                 "a checkpoint")
    first = scrape(running)
    types = first["types"]
    for name, kind in {
        "tidal_flow_info": "gauge", "tidal_events_in_total": "counter",
        "tidal_late_events_total": "counter", "tidal_dead_letters_total": "counter",
        "tidal_watermark_ms": "gauge", "tidal_watermark_lag_seconds": "gauge",
        "tidal_step_rows_in_total": "counter", "tidal_step_rows_out_total": "counter",
        "tidal_step_rows_in_per_second": "gauge", "tidal_step_busy_ratio": "gauge",
        "tidal_step_batch_seconds": "histogram", "tidal_step_watermark_lag_seconds": "gauge",
        "tidal_checkpoints_total": "counter", "tidal_checkpoint_duration_seconds": "gauge",
        "tidal_checkpoint_size_bytes": "gauge", "tidal_view_rows": "gauge",
        "tidal_view_changes_total": "counter", "tidal_view_subscribers": "gauge",
    }.items():
        assert types.get(name) == kind, name
    assert value(first, "tidal_flow_info", flow="metered", status="running") == 1
    assert value(first, "tidal_checkpoint_size_bytes") > 0
    assert value(first, "tidal_step_watermark_ms", step="per_merchant", kind="window") > 0
    assert 0 <= value(first, "tidal_watermark_lag_seconds") < 60

    running.wait(lambda: value(scrape(running), "tidal_events_in_total")
                 > value(first, "tidal_events_in_total") + 500, "more events")
    second = scrape(running)
    for name, labels in (("tidal_step_rows_in_total", {"step": "spend", "kind": "agg"}),
                         ("tidal_step_rows_out_total", {"step": "tx", "kind": "source"}),
                         ("tidal_view_changes_total", {"view": "card_totals"})):
        assert value(second, name, **labels) > value(first, name, **labels), name
    assert value(second, "tidal_view_rows", view="card_totals") > 0
    assert 0 < value(second, "tidal_view_rows", view="merchant_windows") <= 3 * 20
    assert value(second, "tidal_step_rows_in_per_second", step="spend", kind="agg") > 100

    # the histogram: cumulative buckets ending in +Inf == _count, for every timed step
    step = {"step": "spend", "kind": "agg"}
    buckets = sorted(
        (float(dict(ls)["le"]), v) for (n, ls), v in second["samples"].items()
        if n == "tidal_step_batch_seconds_bucket" and set(step.items()) <= ls
    )
    assert [b for b, _ in buckets] == [*BUCKETS, math.inf]
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and counts[-1] > 0
    assert counts[-1] == value(second, "tidal_step_batch_seconds_count", **step)
    assert 0 < value(second, "tidal_step_batch_seconds_sum", **step) < math.inf


def test_metrics_json_describes_the_graph(running):
    running.wait(lambda: httpx.get(f"{running.url}/metrics.json").json()["events_in"] > 0,
                 "events")
    body = httpx.get(f"{running.url}/metrics.json").json()
    assert body["flow"] == "metered" and body["status"] == "running"
    steps = {s["name"]: s for s in body["steps"]}
    assert steps["spend"]["inputs"] == ["tx"] and steps["card_totals"]["inputs"] == ["spend"]
    assert steps["card_totals"]["kind"] == "view"
    assert {v["name"] for v in body["views"]} == {"card_totals", "merchant_windows"}


def test_readyz_follows_the_flow(start_server):
    h = Harness(schema={"k": pl.String})
    h.stream.to_view("ready_view", key="k")
    running = RunningFlow(h.flow)
    srv = start_server(running=running)
    r = srv.client.get("/readyz")
    assert r.status_code == 503 and r.json() == {"status": "starting", "flow": "test"}
    h.flow.last_run = h.executor
    assert srv.client.get("/readyz").json() == {"status": "running", "flow": "test"}
    running.ended = True
    assert srv.client.get("/readyz").status_code == 200
    running.error = RuntimeError("boom")
    r = srv.client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["error"] == "RuntimeError: boom"


def test_without_a_flow_metrics_list_the_views(start_server):
    h = Harness(schema={"k": pl.String})
    h.stream.to_view("labels", key="k")
    h.add({"k": "a"})
    srv = start_server()
    m = parse(srv.client.get("/metrics").text)
    assert value(m, "tidal_view_rows", view="labels") == 1
    assert srv.client.get("/readyz").json() == {"status": "ready"}
