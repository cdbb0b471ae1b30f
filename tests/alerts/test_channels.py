"""Alert channels against real receivers: an HTTP server, an SMTP server, the log."""

from __future__ import annotations

import logging
import threading
import time

import polars as pl
import pytest

import tidal as td
import tidal.log
from tidal.testing import Harness


def _cpu_flow(channels: list[td.alerts.Channel], **rule_options) -> tuple[td.Flow, td.alerts.Rule]:
    """A bounded flow whose rule fires at 10 s and resolves at 20 s, for host 'web-1'."""
    flow = td.Flow("hosts")
    rows = [{"host": "web-1", "cpu": 95.0, "t": 0}, {"host": "web-1", "cpu": 97.0, "t": 10_000},
            {"host": "web-1", "cpu": 99.0, "t": 15_000}, {"host": "web-1", "cpu": 12.0, "t": 20_000},
            {"host": "web-2", "cpu": 10.0, "t": 20_000}]
    stream = flow.source(td.sources.memory(rows), timestamp="t")
    r = td.alerts.rule("cpu-high", stream, pl.col("cpu") > 90, key="host", for_="10s",
                       severity="critical", labels={"team": "infra"}, channels=channels,
                       summary="CPU of {host} at {value:.0f}%", **rule_options)
    r.events.sink(td.sinks.memory())
    return flow, r


def test_webhook_receives_exactly_one_firing_and_one_resolved(http_receiver):
    hook = td.alerts.webhook(http_receiver.url + "/hooks/alerts", headers={"X-Token": "t0k"})
    flow, _ = _cpu_flow([hook])
    flow.run(quiet=True, max_batch_rows=1)
    got = http_receiver.wait_for(2)
    time.sleep(0.3)  # nothing else arrives
    assert len(http_receiver.requests) == 2
    firing, resolved = (r.body for r in got)
    assert [r.path for r in got] == ["/hooks/alerts"] * 2
    assert got[0].headers["Content-Type"] == "application/json"
    assert got[0].headers["X-Token"] == "t0k"
    assert firing["state"] == "firing" and resolved["state"] == "resolved"
    assert firing["rule"] == "cpu-high" and firing["key"] == {"host": "web-1"}
    assert (firing["at"], firing["since"], firing["value"]) == (10_000, 0, 97.0)
    assert (resolved["at"], resolved["value"]) == (20_000, 12.0)
    assert firing["severity"] == "critical" and firing["labels"] == {"team": "infra"}
    assert firing["summary"] == "CPU of web-1 at 97%" and firing["flow"] == "hosts"
    assert firing["at_iso"] == "1970-01-01T00:00:10.000Z" and firing["repeat"] is False
    assert hook.stats()["sent"] == 2 and hook.stats()["failed"] == 0


def test_slack_webhook_gets_text_with_user_values_escaped(http_receiver):
    h = Harness(timestamp="t", schema={"host": pl.String, "cpu": pl.Float64, "t": pl.Int64})
    hook = td.alerts.slack(http_receiver.url)
    td.alerts.rule("cpu-high", h.stream, pl.col("cpu") > 90, key="host", channels=[hook],
                   summary="host {host} is hot")
    h.add({"host": "<!channel> & co", "cpu": 95.0, "t": 0})
    (req,) = http_receiver.wait_for(1)
    assert list(req.body) == ["text"]
    text = req.body["text"]
    assert text.startswith(":rotating_light: *[FIRING] cpu-high host=&lt;!channel&gt; &amp; co (warning)*")
    assert "host &lt;!channel&gt; &amp; co is hot" in text and "value: 95" in text
    assert "<!channel>" not in text


def test_email_received_by_a_real_smtp_server(smtp_server):
    mail = td.alerts.email(smtp_server.host, smtp_server.port, sender="tidal@example.org",
                           to=["ops@example.org", "oncall@example.org"])
    flow, _ = _cpu_flow([mail])
    flow.run(quiet=True, max_batch_rows=1)
    got = smtp_server.wait_for(2)
    time.sleep(0.3)
    assert len(smtp_server.messages) == 2
    (sender, rcpts, firing), (_, _, resolved) = got
    assert sender == "tidal@example.org"
    assert rcpts == ["ops@example.org", "oncall@example.org"]
    assert firing["Subject"] == "[FIRING] cpu-high host=web-1 (critical)"
    assert resolved["Subject"] == "[RESOLVED] cpu-high host=web-1 (critical)"
    assert firing["To"] == "ops@example.org, oncall@example.org"
    body = firing.get_payload(decode=True).decode()
    assert "CPU of web-1 at 97%" in body and "value:    97" in body
    assert "at:       1970-01-01T00:00:10.000Z" in body and "label:    team=infra" in body


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_logs_in_when_the_server_requires_it(smtp_server_with_login):
    box = smtp_server_with_login
    mail = td.alerts.email(box.host, box.port, sender="a@x.org", to="b@x.org",
                           username="alerts", password="s3cret")
    mail.submit(td.alerts.Notification(rule="r", state="firing", key={"k": 1}))
    assert mail.flush(10)
    ((sender, rcpts, msg),) = box.wait_for(1)
    assert (sender, rcpts, msg["Subject"]) == ("a@x.org", ["b@x.org"], "[FIRING] r k=1 (warning)")
    assert mail.stats()["sent"] == 1


def test_topic_channel_appends_notifications_to_the_log(tmp_path):
    log_dir = tmp_path / "log"
    ch = td.alerts.topic("alerts", log_dir=str(log_dir))
    flow, _ = _cpu_flow([ch])
    flow.run(quiet=True, max_batch_rows=1, log_dir=log_dir)
    with tidal.log.open(log_dir) as log:
        table = log.topic("alerts").read_arrow(0, 0).table
    rows = table.select(["rule", "state", "key", "at", "value", "labels"]).to_pylist()
    assert rows == [
        {"rule": "cpu-high", "state": "firing", "key": '{"host": "web-1"}', "at": 10_000,
         "value": 97.0, "labels": '{"team": "infra"}'},
        {"rule": "cpu-high", "state": "resolved", "key": '{"host": "web-1"}', "at": 20_000,
         "value": 12.0, "labels": '{"team": "infra"}'},
    ]


def test_log_channel_writes_to_python_logging(caplog):
    flow, _ = _cpu_flow([td.alerts.log()])
    with caplog.at_level(logging.INFO, logger="tidal.alerts"):
        flow.run(quiet=True, max_batch_rows=1)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "tidal.alerts"]
    assert lines == [
        ("ERROR", "[FIRING] cpu-high host=web-1 (critical) value=97 at 1970-01-01T00:00:10.000Z"),
        ("INFO", "[RESOLVED] cpu-high host=web-1 (critical) value=12 at 1970-01-01T00:00:20.000Z"),
    ]


def test_failing_webhook_is_retried_with_backoff_and_never_blocks_the_flow(http_receiver):
    http_receiver.statuses = [503, 503, 503]
    http_receiver.delay_s = 0.2  # and a slow receiver
    hook = td.alerts.webhook(http_receiver.url, retries=5, backoff="200ms")
    h = Harness(timestamp="t", schema={"host": pl.String, "cpu": pl.Float64, "t": pl.Int64})
    td.alerts.rule("cpu-high", h.stream, pl.col("cpu") > 90, key="host", channels=[hook])
    started = time.monotonic()
    h.add({"host": "a", "cpu": 95.0, "t": 0})  # fires: the notification is only queued
    first = time.monotonic() - started
    for t in range(1, 50):
        h.add({"host": "a", "cpu": 95.0, "t": t * 10})
    # the pipeline went on while the receiver was still failing (delivery takes ~2 s)
    assert hook.stats()["sent"] == 0 and first < 0.2, first
    got = http_receiver.wait_for(4)
    assert len(got) == 4
    gaps = [b.at - a.at for a, b in zip(got, got[1:], strict=False)]
    # each attempt takes 0.2 s at the receiver, then waits 0.2, 0.4, 0.8 s before the next
    assert 0.35 < gaps[0] < 1.2 and 0.55 < gaps[1] < 1.6 and 0.95 < gaps[2] < 2.4, gaps
    assert gaps[0] < gaps[1] < gaps[2], gaps
    assert hook.flush(5)
    stats = hook.stats()
    assert (stats["sent"], stats["retried"], stats["failed"], stats["queued"]) == (1, 3, 0, 0)
    assert "503" in stats["last_error"]
    assert [r.body["state"] for r in got] == ["firing"] * 4  # the same notification


def test_a_channel_gives_up_after_its_retries_and_goes_on_with_the_next(http_receiver):
    http_receiver.statuses = [500, 500]
    hook = td.alerts.webhook(http_receiver.url, retries=1, backoff="10ms")
    hook.submit(td.alerts.Notification(rule="a", state="firing"))
    hook.submit(td.alerts.Notification(rule="b", state="firing"))
    assert hook.flush(5)
    got = http_receiver.wait_for(3)
    assert [r.body["rule"] for r in got] == ["a", "a", "b"]
    assert (hook.stats()["failed"], hook.stats()["sent"]) == (1, 1)


def test_a_full_queue_drops_the_oldest_notification():
    release = threading.Event()
    started = threading.Event()
    seen: list[str] = []

    class Stuck(td.alerts.Channel):
        def send(self, note):
            started.set()
            release.wait(10)
            seen.append(note.rule)

    ch = Stuck("stuck", max_queue=2)
    ch.submit(td.alerts.Notification(rule="n0", state="firing"))
    assert started.wait(5)  # the worker holds n0
    for i in range(1, 5):
        ch.submit(td.alerts.Notification(rule=f"n{i}", state="firing"))
    assert ch.stats()["dropped"] == 2 and ch.stats()["queued"] == 3
    release.set()
    assert ch.flush(5)
    assert seen == ["n0", "n3", "n4"]
    ch.close()
