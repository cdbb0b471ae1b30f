"""MQTT source and sink against a real broker (Mosquitto, or amqtt; see conftest.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import tidal as td
from tidal.errors import SinkError, SourceError

USER = "tidal"  # amqtt keeps sessions only for named users (see conftest.py)


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


@contextmanager
def client(broker: tuple[str, int], subscribe: str | None = None) -> Iterator[tuple[Any, list]]:
    """A plain paho client (publisher, and subscriber of ``subscribe``) and what it received."""
    received: list = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2)
    c.username_pw_set(USER)
    c.on_message = lambda _c, _u, m: received.append((m.topic, m.payload))
    subscribed = threading.Event()
    c.on_subscribe = lambda *_: subscribed.set()
    c.connect(*broker)
    c.loop_start()
    if subscribe:
        c.subscribe(subscribe, qos=1)
        assert subscribed.wait(10)
    try:
        yield c, received
    finally:
        c.disconnect()
        c.loop_stop()


def publish(c: Any, messages: list[tuple[str, bytes]]) -> None:
    infos = [c.publish(t, p, qos=1) for t, p in messages]
    for info in infos:
        info.wait_for_publish(10)


@contextmanager
def running(flow: td.Flow, **options: Any) -> Iterator[None]:
    """Run ``flow`` in a thread; stop it on leaving (re-raising what the run raised)."""
    stop = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            flow.run(quiet=True, stop=stop, **options)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            failure.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        # open() returns once connected and subscribed (it waits for the broker's SUBACK)
        wait_for(lambda: getattr(flow, "last_run", None) is not None and flow.last_run.opened
                 or bool(failure))
        yield
    finally:
        stop.set()
        runner.join(15)
        if failure:
            raise failure[0]


def test_round_trip_with_topic_levels_as_columns(mqtt_broker: tuple[str, int], uid: str) -> None:
    host, port = mqtt_broker
    flow = td.Flow("mqtt-roundtrip")
    readings = flow.source(td.sources.mqtt(f"{uid}/sensors/#", host, port, client_id=uid, username=USER,
                                           topic_columns=uid + "/sensors/{site}/{device}"))
    got = td.sinks.memory()
    readings.sink(got)
    import polars as pl

    hot = readings.filter(pl.col("temp") > 30).select("device", "temp")
    hot.sink(td.sinks.mqtt(uid + "/alerts/{device}", host, port, username=USER))
    with client(mqtt_broker, subscribe=f"{uid}/alerts/#") as (pub, alerts), running(flow):
        publish(pub, [(f"{uid}/sensors/paris/d{i}", orjson.dumps({"temp": 20 + 5 * i}))
                      for i in range(4)])
        wait_for(lambda: len(got.rows) == 4 and len(alerts) == 1)
    assert sorted(got.rows, key=lambda r: r["device"]) == [
        {"site": "paris", "device": f"d{i}", "temp": 20 + 5 * i} for i in range(4)]
    assert alerts == [(f"{uid}/alerts/d3", b'{"device":"d3","temp":35}')]


def test_messages_published_while_down_are_processed_after_restart(
        mqtt_broker: tuple[str, int], uid: str) -> None:
    host, port = mqtt_broker
    got = td.sinks.memory()

    def pipeline() -> td.Flow:
        flow = td.Flow("mqtt-persistent")
        flow.source(td.sources.mqtt(f"{uid}/in", host, port, qos=1, client_id=f"tidal-{uid}",
                                    format="text", username=USER)).sink(got)
        return flow

    with client(mqtt_broker) as (pub, _):
        with running(pipeline()):
            publish(pub, [(f"{uid}/in", b"before")])
            wait_for(lambda: len(got.rows) == 1)
        # the pipeline is down: the broker keeps these for its persistent session
        publish(pub, [(f"{uid}/in", f"while down {i}".encode()) for i in range(5)])
        with running(pipeline()):
            wait_for(lambda: len(got.rows) == 6)
            time.sleep(0.2)
    assert [r["payload"] for r in got.rows] == ["before"] + [f"while down {i}" for i in range(5)]


def test_undecodable_messages_go_to_the_dead_letters(mqtt_broker: tuple[str, int], uid: str) -> None:
    host, port = mqtt_broker
    flow = td.Flow("mqtt-bad")
    got, dead = td.sinks.memory(), td.sinks.memory()
    flow.source(td.sources.mqtt(f"{uid}/#", host, port, client_id=uid, username=USER), name="devices").sink(got)
    flow.dead_letters().sink(dead)
    with client(mqtt_broker) as (pub, _), running(flow, dead_letters_to_log=False):
        publish(pub, [(f"{uid}/a", b'{"v": 1}'), (f"{uid}/b", b"{not json"),
                      (f"{uid}/c", b'{"v": 3}'), (f"{uid}/d", b"[1, 2]")])
        wait_for(lambda: len(got.rows) == 2 and len(dead.rows) == 2)
    assert [r["v"] for r in got.rows] == [1, 3]
    bad = {orjson.loads(r["position"])["topic"]: r for r in dead.rows}
    assert set(bad) == {f"{uid}/b", f"{uid}/d"}
    assert bad[f"{uid}/b"]["record"] == "{not json"
    assert f"MQTT message on topic '{uid}/b': invalid JSON" in bad[f"{uid}/b"]["reason"]
    assert "expected a JSON object, got list" in bad[f"{uid}/d"]["reason"]
    assert {r["source"] for r in dead.rows} == {"devices"}


def test_a_wrong_broker_address_fails_fast_naming_it(unused_port: int) -> None:
    flow = td.Flow("mqtt-wrong")
    flow.source(td.sources.mqtt("x/#", "127.0.0.1", unused_port, connect_timeout=3)).print()
    started = time.monotonic()
    with pytest.raises(SourceError, match=f"MQTT broker at 127.0.0.1:{unused_port}"):
        flow.run(quiet=True)
    flow = td.Flow("mqtt-wrong-sink")
    flow.source(td.sources.memory([{"x": 1}])).sink(
        td.sinks.mqtt("out", "127.0.0.1", unused_port, connect_timeout=3))
    with pytest.raises(SinkError, match=f"MQTT broker at 127.0.0.1:{unused_port}"):
        flow.run(quiet=True)
    assert time.monotonic() - started < 8
