"""Alert rules with the Harness: deterministic event time, no sleeps."""

from __future__ import annotations

import pickle

import polars as pl
import pytest

import tidal as td
from tidal.alerts._rule import AlertOperator
from tidal.errors import ConfigError, PlanError
from tidal.testing import Harness


class Recorder(td.alerts.Channel):
    """A channel that keeps what it was sent (delivery still goes through the worker)."""

    def __init__(self) -> None:
        super().__init__("recorder")
        self.notes: list[td.alerts.Notification] = []

    def send(self, note: td.alerts.Notification) -> None:
        self.notes.append(note)

    def take(self) -> list[tuple[str, str, int, bool]]:
        assert self.flush(5)
        out = [(n.state, n.key_text(), n.at, n.repeat) for n in self.notes]
        self.notes.clear()
        return out


def _harness() -> Harness:
    return Harness(timestamp="t", schema={"host": pl.String, "cpu": pl.Float64, "t": pl.Int64})


def test_pending_then_firing_after_for_one_notification_then_one_resolution():
    h = _harness()
    ch = Recorder()
    r = td.alerts.rule("cpu-high", h.stream, pl.col("cpu") > 90, key="host", for_="30s",
                       channels=[ch], repeat_interval="1h")
    events = h.collect(r.events)
    h.add({"host": "a", "cpu": 95.0, "t": 1_000}, {"host": "b", "cpu": 10.0, "t": 1_000})
    assert [(a["key"], a["state"], a["since"]) for a in r.alerts()] == [({"host": "a"}, "pending", 1_000)]
    h.add({"host": "a", "cpu": 97.0, "t": 20_000})
    h.advance_watermark(30_999)
    assert ch.take() == [] and events.take() == []
    h.advance_watermark(31_000)  # held for 30 s: fires, exactly once
    assert ch.take() == [("firing", "host=a", 31_000, False)]
    assert r.alerts()[0]["state"] == "firing"
    h.add({"host": "a", "cpu": 99.0, "t": 40_000})
    h.advance_watermark(60_000)
    assert ch.take() == []  # still firing: no repeat before repeat_interval
    h.add({"host": "a", "cpu": 50.0, "t": 61_000})
    assert ch.take() == [("resolved", "host=a", 61_000, False)]
    h.add({"host": "a", "cpu": 40.0, "t": 62_000})
    h.advance_watermark(70_000)
    assert ch.take() == [] and r.alerts() == []
    rows = events.rows
    assert [(e["host"], e["state"], e["at"], e["since"], e["value"]) for e in rows] == [
        ("a", "firing", 31_000, 1_000, 97.0), ("a", "resolved", 61_000, 1_000, 50.0)]
    assert [(x["state"], x["at"]) for x in r.history()] == [
        ("pending", 1_000), ("firing", 31_000), ("resolved", 61_000)]


def test_pending_that_stops_holding_is_cleared_without_notification():
    h = _harness()
    ch = Recorder()
    r = td.alerts.rule("cpu-high", h.stream, pl.col("cpu") > 90, key="host", for_="30s",
                       channels=[ch])
    h.add({"host": "a", "cpu": 95.0, "t": 0})
    h.add({"host": "a", "cpu": 20.0, "t": 10_000})
    h.add({"host": "a", "cpu": 95.0, "t": 20_000})  # a new run starts here
    h.advance_watermark(45_000)
    assert ch.take() == []
    assert r.alerts()[0]["since"] == 20_000
    h.advance_watermark(50_000)
    assert ch.take() == [("firing", "host=a", 50_000, False)]
    assert [x["state"] for x in r.history()] == ["pending", "cleared", "pending", "firing"]


def test_a_run_within_one_batch_starts_after_the_last_row_that_did_not_hold():
    h = _harness()
    ch = Recorder()
    r = td.alerts.rule("cpu-high", h.stream, pl.col("cpu") > 90, key="host", for_="5s",
                       channels=[ch])
    h.add({"host": "a", "cpu": 95.0, "t": 0}, {"host": "a", "cpu": 10.0, "t": 1_000},
          {"host": "a", "cpu": 93.0, "t": 2_000}, {"host": "a", "cpu": 99.0, "t": 3_000})
    assert r.alerts()[0]["since"] == 2_000
    h.add({"host": "a", "cpu": 99.0, "t": 7_000})
    assert ch.take() == [("firing", "host=a", 7_000, False)]


def test_repeat_interval_throttles_reminders():
    h = _harness()
    ch = Recorder()
    td.alerts.rule("cpu-high", h.stream, pl.col("cpu") > 90, key="host", channels=[ch],
                   repeat_interval="1m")
    h.add({"host": "a", "cpu": 95.0, "t": 0})
    assert ch.take() == [("firing", "host=a", 0, False)]  # for_ = 0: fires at once
    for t in range(5_000, 150_000, 5_000):  # the condition keeps holding for 150 s
        h.add({"host": "a", "cpu": 95.0, "t": t})
        h.advance_watermark(t)
    assert ch.take() == [("firing", "host=a", 60_000, True), ("firing", "host=a", 120_000, True)]
    h.add({"host": "a", "cpu": 5.0, "t": 150_000})
    assert ch.take() == [("resolved", "host=a", 150_000, False)]


def test_keys_are_independent_and_global_rules_have_no_key():
    h = _harness()
    ch, ch_all = Recorder(), Recorder()
    td.alerts.rule("cpu-high", h.stream, pl.col("cpu") > 90, key="host", channels=[ch])
    td.alerts.rule("any-high", h.stream, pl.col("cpu").max() > 90, channels=[ch_all])
    h.add({"host": "a", "cpu": 95.0, "t": 0}, {"host": "b", "cpu": 99.0, "t": 0},
          {"host": "c", "cpu": 1.0, "t": 0})
    assert sorted(ch.take()) == [("firing", "host=a", 0, False), ("firing", "host=b", 0, False)]
    assert ch_all.take() == [("firing", "", 0, False)]
    h.add({"host": "a", "cpu": 1.0, "t": 1_000})
    assert ch.take() == [("resolved", "host=a", 1_000, False)]


def test_absence_fires_when_the_watermark_passes_last_seen_plus_after():
    h = Harness(timestamp="t", schema={"device": pl.String, "t": pl.Int64})
    ch = Recorder()
    r = td.alerts.absent(h.stream, key="device", after="60s", channels=[ch])
    events = h.collect(r.events)
    assert r.name == "absent-device" and r.kind == "absence"
    h.add({"device": "d1", "t": 1_000}, {"device": "d2", "t": 5_000})
    h.advance_watermark(60_999)
    assert ch.take() == []
    h.advance_watermark(61_000)  # d1 silent for 60 s
    assert ch.take() == [("firing", "device=d1", 61_000, False)]
    h.add({"device": "d2", "t": 62_000})  # d2 keeps beating
    h.advance_watermark(100_000)
    assert ch.take() == []
    h.add({"device": "d1", "t": 101_000})  # d1 is back
    assert ch.take() == [("resolved", "device=d1", 101_000, False)]
    firing, resolved = events.rows
    assert (firing["value"], resolved["value"]) == (60.0, 100.0)  # seconds of silence
    h.advance_watermark(121_999)
    assert ch.take() == []
    h.advance_watermark(122_000)  # now d2 has been silent since 62 s
    assert ch.take() == [("firing", "device=d2", 122_000, False)]
    h.finish()  # the final +inf watermark is the end of input, not time passing
    assert ch.take() == []


def test_absence_without_key_watches_the_whole_stream():
    h = Harness(timestamp="t", schema={"device": pl.String, "t": pl.Int64})
    ch = Recorder()
    r = td.alerts.absent(h.stream, after="10s", channels=[ch])
    assert r.name == "absent"
    h.add({"device": "d1", "t": 0})
    h.add({"device": "d2", "t": 5_000})
    h.advance_watermark(15_000)
    assert ch.take() == [("firing", "", 15_000, False)]
    h.add({"device": "d1", "t": 16_000})
    assert ch.take() == [("resolved", "", 16_000, False)]


def test_rate_of_change_per_second_and_relative():
    h = Harness(timestamp="t", schema={"sym": pl.String, "price": pl.Float64, "t": pl.Int64})
    per_s, rel = Recorder(), Recorder()
    td.alerts.rule("fast", h.stream, td.alerts.rate_of_change("price", above=5, per="1s"),
                   key="sym", channels=[per_s])
    td.alerts.rule("drop", h.stream, td.alerts.rate_of_change("price", below=-0.2, relative=True),
                   key="sym", channels=[rel])
    h.add({"sym": "X", "price": 100.0, "t": 0}, {"sym": "X", "price": 104.0, "t": 1_000})
    assert per_s.take() == [] and rel.take() == []
    h.add({"sym": "X", "price": 124.0, "t": 2_000})  # +20/s: across the batch boundary
    assert per_s.take() == [("firing", "sym=X", 2_000, False)]
    h.add({"sym": "X", "price": 90.0, "t": 3_000})  # -27 %
    assert rel.take() == [("firing", "sym=X", 3_000, False)]
    assert per_s.take() == [("resolved", "sym=X", 3_000, False)]


@pytest.mark.parametrize("detector", [
    td.alerts.zscore("latency", window=20, threshold=4, min_samples=10),
    td.alerts.ewma("latency", alpha=0.2, threshold=4, min_samples=10),
])
def test_anomaly_detectors_fire_on_a_spike_per_key_across_batches(detector):
    h = Harness(timestamp="t", schema={"svc": pl.String, "latency": pl.Float64, "t": pl.Int64})
    ch = Recorder()
    td.alerts.rule("slow", h.stream, detector, key="svc", channels=[ch])
    normal = [100.0, 102.0, 98.0, 101.0, 99.0, 103.0, 97.0, 100.0]
    t = 0
    for _ in range(4):  # 32 normal rows per service, in 4 batches
        rows = []
        for v in normal:
            t += 100
            rows += [{"svc": "api", "latency": v, "t": t}, {"svc": "db", "latency": v * 10, "t": t}]
        h.add(*rows)
    assert ch.take() == []
    h.add({"svc": "api", "latency": 180.0, "t": t + 100}, {"svc": "db", "latency": 1_010.0, "t": t + 100})
    assert ch.take() == [("firing", "svc=api", t + 100, False)]
    h.add({"svc": "api", "latency": 101.0, "t": t + 200})
    assert ch.take() == [("resolved", "svc=api", t + 200, False)]


def test_streams_without_event_time_use_processing_time():
    h = Harness(timestamp="t", schema={"card": pl.String, "amount": pl.Float64, "t": pl.Int64},
                start_ms=1_000_000)
    ch = Recorder()
    totals = h.stream.key_by("card").agg(spent=td.agg.sum("amount"))  # no event time after this
    td.alerts.rule("big-spender", totals, pl.col("spent") > 100, key="card", for_="10s",
                   channels=[ch])
    h.add({"card": "c1", "amount": 150.0, "t": 0})
    h.advance_processing_time("5s")
    assert ch.take() == []
    h.advance_processing_time("5s")
    assert ch.take() == [("firing", "card=c1", 1_010_000, False)]


def test_state_survives_a_checkpoint_under_the_rules_stable_name():
    def build() -> tuple[Harness, Recorder, td.alerts.Rule]:
        h = _harness()
        ch = Recorder()
        r = td.alerts.rule("cpu-high", h.stream, pl.col("cpu") > 90, key="host", for_="10s",
                           channels=[ch])
        return h, ch, r

    h, ch, r = build()
    assert "alerts.cpu-high" in [n.name for n in h.flow.nodes]
    h.add({"host": "a", "cpu": 95.0, "t": 0}, {"host": "b", "cpu": 95.0, "t": 0})
    h.advance_watermark(10_000)
    assert sorted(ch.take()) == [("firing", "host=a", 10_000, False), ("firing", "host=b", 10_000, False)]
    h.add({"host": "b", "cpu": 99.0, "t": 11_000})
    op = r._op
    assert isinstance(op, AlertOperator)
    saved = pickle.loads(pickle.dumps(op.snapshot()))

    h2, ch2, r2 = build()  # a restarted process
    h2.executor.ops[next(n for n in h2.flow.nodes if n.name == "alerts.cpu-high")].restore(saved)
    assert {a["key"]["host"]: a["state"] for a in r2.alerts()} == {"a": "firing", "b": "firing"}
    h2.add({"host": "a", "cpu": 1.0, "t": 12_000}, {"host": "b", "cpu": 99.0, "t": 12_000})
    assert ch2.take() == [("resolved", "host=a", 12_000, False)]  # not a second firing


def test_summary_fields_and_labels_reach_the_notification():
    h = _harness()
    ch = Recorder()
    td.alerts.rule("cpu-high", h.stream, pl.col("cpu") > 90, key="host", severity="critical",
                   labels={"team": "infra"}, channels=[ch],
                   summary="{host} at {value:.0f}% ({rule}, {unknown})")
    h.add({"host": "a", "cpu": 95.0, "t": 0})
    assert ch.flush(5)
    note = ch.notes[0]
    assert note.summary == "a at 95% (cpu-high, {unknown})"
    assert note.labels == {"team": "infra"} and note.severity == "critical"
    assert note.title() == "[FIRING] cpu-high host=a (critical)"
    assert note.flow == "test"


def test_rule_errors_say_what_to_do():
    h = _harness()
    with pytest.raises(PlanError, match=r"unknown column 'cpuu'; did you mean 'cpu'"):
        td.alerts.rule("x", h.stream, pl.col("cpuu") > 1)
    with pytest.raises(PlanError, match="unknown column 'hots'"):
        td.alerts.rule("x", h.stream, pl.col("cpu") > 1, key="hots")
    with pytest.raises(ConfigError, match="severity must be one of info, warning, critical"):
        td.alerts.rule("x", h.stream, pl.col("cpu") > 1, severity="high")
    with pytest.raises(ConfigError, match="condition must be a Polars expression"):
        td.alerts.rule("x", h.stream, "cpu > 1")
    with pytest.raises(ConfigError, match="bad name"):
        td.alerts.rule("no spaces", h.stream, pl.col("cpu") > 1)
    with pytest.raises(ConfigError, match="channels must be"):
        td.alerts.rule("x", h.stream, pl.col("cpu") > 1, channels=["http://x"])
    with pytest.raises(ConfigError, match="needs above= or below="):
        td.alerts.rate_of_change("cpu")
    td.alerts.rule("dup", h.stream, pl.col("cpu") > 1)
    with pytest.raises(PlanError, match="already has a step named 'alerts.dup'"):
        td.alerts.rule("dup", h.stream, pl.col("cpu") > 2)
    with pytest.raises(PlanError, match="has no event time"):
        td.alerts.absent(h.stream.key_by("host").agg(n=td.agg.count()), key="host", after="1m")


def test_rules_lists_a_flows_rules():
    h = _harness()
    a = td.alerts.rule("a", h.stream, pl.col("cpu") > 1)
    b = td.alerts.absent(h.stream, key="host", after="1m")
    assert td.alerts.rules(h.flow) == [a, b]
