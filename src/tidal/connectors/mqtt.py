"""MQTT, how devices publish: a source subscribing to topic filters, and a sink publishing.

Source: a paho-mqtt network loop runs in its own thread and queues every message it
receives, waking the runtime; ``poll`` drains the queue and decodes the payloads of the
whole batch at once (JSON objects through ``polars.read_ndjson``). Levels of the topic
become columns with ``topic_columns="sensors/{site}/{device}"``, because that is how IoT
data is addressed. A payload that cannot be decoded goes to the dead letters with its
topic and the error.

Delivery: messages are acknowledged to the broker only once the runtime says they are
processed (``commit``: after the step's sinks flushed, or with checkpoints after the
checkpoint is committed). With ``qos >= 1`` and a persistent session (``clean_session=False``
and a stable ``client_id``), messages received but not yet acknowledged when the pipeline
stops, and messages published while it is down, are delivered when it comes back:
**at-least-once** (a message may be delivered twice after a crash or a reconnection).

MQTT 5 is spoken when the broker does (with a receive window of 65,535 unacknowledged
messages and a session kept for 7 days); otherwise MQTT 3.1.1, whose brokers limit
the unacknowledged messages in flight (Mosquitto: ``max_inflight_messages``, 20).
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from typing import Any, Literal

import orjson
import polars as pl

from tidal.connectors.base import Sink, SinkContext, Source, SourceContext, SourcePartition
from tidal.errors import ConfigError, SinkError, SourceError

__all__ = ["MqttSink", "MqttSource", "json_payloads", "json_text", "template_expr"]

Format = Literal["json", "text", "bytes"]
_FORMATS = ("json", "text", "bytes")
_SESSION_EXPIRY_S = 7 * 24 * 3600
_RECEIVE_MAXIMUM = 65_535
_V311_ONLY: set[tuple[str, int]] = set()  # brokers found to speak only MQTT 3.1.1
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigError("the MQTT connector needs paho-mqtt: pip install 'tidal[mqtt]'") from exc
    return mqtt


def _check_format(format: str) -> None:
    if format not in _FORMATS:
        raise ConfigError(f"MQTT format must be one of {', '.join(_FORMATS)}, not {format!r}")


def _connect(host: str, port: int, client_id: str, clean_session: bool, timeout: float,
             what: str, on_message: Any = None, username: str | None = None,
             password: str | None = None) -> Any:
    """A connected paho client (CONNACK received), MQTT 5 when the broker speaks it, else
    3.1.1; raises ``SourceError``/``SinkError`` naming the address within ``timeout`` s."""
    mqtt = _paho()
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    error = SourceError if what.startswith("source") else SinkError
    where = f"MQTT broker at {host}:{port}"
    deadline = time.monotonic() + timeout
    protocols = [mqtt.MQTTv311] if (host, port) in _V311_ONLY else [mqtt.MQTTv5, mqtt.MQTTv311]
    for protocol in protocols:
        kwargs: dict[str, Any] = {} if protocol == mqtt.MQTTv5 else {"clean_session": clean_session}
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                             manual_ack=on_message is not None, **kwargs)
        client.on_message = on_message  # set before connecting: a kept session delivers at once
        client.connect_timeout = timeout
        client.max_inflight_messages_set(1000)  # outgoing QoS>0 messages awaiting their ack
        client.reconnect_delay_set(0.2, 5)
        if username is not None:
            client.username_pw_set(username, password)
        answered = threading.Event()
        outcome: dict[str, Any] = {}

        def on_connect(_c: Any, _u: Any, flags: Any, rc: Any, _p: Any,
                       outcome: dict[str, Any] = outcome, answered: threading.Event = answered) -> None:
            outcome["rc"] = rc
            answered.set()

        def on_disconnect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any,
                          outcome: dict[str, Any] = outcome, answered: threading.Event = answered) -> None:
            outcome.setdefault("closed", rc)  # closed before any CONNACK (some 3.1.1 brokers
            answered.set()                    # drop an MQTT 5 CONNECT they cannot parse)

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        props = None
        if protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0 if clean_session else _SESSION_EXPIRY_S
            props.ReceiveMaximum = _RECEIVE_MAXIMUM
        try:
            if protocol == mqtt.MQTTv5:
                client.connect(host, port, keepalive=30, clean_start=clean_session, properties=props)
            else:
                client.connect(host, port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise error(f"{what} cannot connect to the {where}: {exc}; check host and port "
                        "and that the broker is running") from exc
        client.loop_start()
        # a 3.1.1 broker may ignore an MQTT 5 CONNECT it cannot parse: half the time for 5
        wait = deadline - time.monotonic()
        if not answered.wait(wait / 2 if protocol == mqtt.MQTTv5 else wait):
            client.disconnect()
            client.loop_stop()
            if protocol == mqtt.MQTTv5:
                _V311_ONLY.add((host, port))
                continue
            raise error(f"{what}: the {where} accepted the connection but did not answer "
                        f"the MQTT handshake within {timeout:g} s")
        rc = outcome.get("rc")
        if rc is not None and not rc.is_failure:
            client.on_disconnect = None
            return client
        client.disconnect()
        client.loop_stop()
        if protocol == mqtt.MQTTv5 and (rc is None or rc.value in (1, 132)):
            _V311_ONLY.add((host, port))
            continue  # unsupported protocol version: speak 3.1.1
        if rc is None:
            raise error(f"{what}: the {where} closed the connection during the MQTT handshake "
                        f"({outcome['closed']})")
        raise error(f"{what}: the {where} refused the connection: {rc}")
    raise error(f"{what}: the {where} speaks neither MQTT 5 nor 3.1.1")  # pragma: no cover


# -- source --------------------------------------------------------------------------------------
class MqttSource(Source):
    """Subscribes to MQTT topic filters; see the module docstring for delivery."""

    name = "mqtt"

    def __init__(self, topics: str | list[str], host: str, port: int, qos: int,
                 client_id: str | None, clean_session: bool, topic_columns: str | None,
                 format: Format, metadata: bool, connect_timeout: float,
                 username: str | None = None, password: str | None = None) -> None:
        _check_format(format)
        if qos not in (0, 1, 2):
            raise ConfigError(f"MQTT qos must be 0, 1 or 2, not {qos!r}")
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        if not self.topics:
            raise ConfigError("mqtt source needs at least one topic filter, e.g. 'sensors/#'")
        self.host, self.port, self.qos = host, port, qos
        self.client_id = client_id
        self.clean_session = clean_session
        self.format = format
        self.metadata = metadata
        self.connect_timeout = connect_timeout
        self.username, self.password = username, password
        self.levels: list[tuple[int, str]] = []
        if topic_columns is not None:
            for i, level in enumerate(topic_columns.split("/")):
                m = _FIELD.fullmatch(level)
                if m:
                    self.levels.append((i, m.group(1)))
                elif "{" in level:
                    raise ConfigError(f"topic_columns {topic_columns!r}: level {level!r} must be "
                                      "a whole level like '{device}'")
            if not self.levels:
                raise ConfigError(f"topic_columns {topic_columns!r} names no level; write it "
                                  "like 'sensors/{site}/{device}'")

    def partitions(self) -> list[str]:
        return [f"{self.host}:{self.port}"]

    def open(self, partition: str, position: Any, ctx: SourceContext) -> SourcePartition:
        client_id = self.client_id or f"tidal-{ctx.flow}-{ctx.source}"
        return _MqttPartition(self, client_id, int(position or 0), ctx)

    def schema(self) -> pl.Schema | None:
        if self.format == "json":
            return None
        cols: dict[str, Any] = {}
        if self.metadata:
            cols["topic"] = pl.String
        cols.update({name: pl.String for _, name in self.levels})
        cols["payload"] = pl.String if self.format == "text" else pl.Binary
        return pl.Schema(cols)


class _MqttPartition(SourcePartition):
    def __init__(self, src: MqttSource, client_id: str, position: int, ctx: SourceContext) -> None:
        self.src, self.ctx = src, ctx
        self.returned = position  # messages handed to the runtime: the (informational) position
        self.lock = threading.Lock()
        self.queue: deque[tuple[str, bytes, int, int, int]] = deque()  # topic, payload, mid, qos, gen
        self.unacked: deque[tuple[int, int, int, int]] = deque()  # seq, mid, qos, gen
        self.generation = 0
        self.matches = _paho().topic_matches_sub
        self.client = _connect(src.host, src.port, client_id, src.clean_session,
                               src.connect_timeout, f"source {ctx.source!r}", on_message=self._on_message,
                               username=src.username, password=src.password)
        self.client.on_connect = self._on_connect
        self.suback = threading.Event()
        self.granted: list[Any] = []
        self.client.on_subscribe = self._on_subscribe
        self._subscribe()
        # wait for the SUBACK: messages published from now on reach this pipeline
        where = f"the MQTT broker at {src.host}:{src.port}"
        if not self.suback.wait(src.connect_timeout):
            self.close()
            raise SourceError(f"mqtt source: {where} did not confirm the subscription to "
                              f"{self.src.topics} within {src.connect_timeout:g} s")
        refused = [t for t, rc in zip(self.src.topics, self.granted, strict=False) if rc.is_failure]
        if refused:
            self.close()
            raise SourceError(f"mqtt source: {where} refused the subscription to {refused}")

    def _subscribe(self) -> None:
        result, _ = self.client.subscribe([(t, self.src.qos) for t in self.src.topics])
        if result != 0:
            raise SourceError(f"mqtt source: cannot subscribe to {self.src.topics} at "
                              f"{self.src.host}:{self.src.port} (error {result})")

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, granted: list[Any], _p: Any) -> None:
        self.granted = list(granted)
        self.suback.set()

    def _on_connect(self, _c: Any, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            return
        with self.lock:
            # a reconnection: unacknowledged messages are redelivered by the broker, and the
            # message ids of the old connection mean nothing on the new one
            self.unacked.clear()
            self.queue = deque(m for m in self.queue if m[3] == 0)
            self.generation += 1
        if not flags.session_present:
            self._subscribe()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        if not any(self.matches(f, msg.topic) for f in self.src.topics):
            # a subscription the kept session still holds from an earlier run with other topics
            if msg.qos:
                self.client.ack(msg.mid, msg.qos)
            return
        with self.lock:
            self.queue.append((msg.topic, msg.payload, msg.mid, msg.qos, self.generation))
        self.ctx.wake()

    def poll(self, max_rows: int) -> pl.DataFrame | None:
        with self.lock:
            n = min(max_rows, len(self.queue))
            if n == 0:
                return None
            taken = [self.queue.popleft() for _ in range(n)]
            first = self.returned
            self.returned += n
            self.unacked.extend((first + i + 1, m[2], m[3], m[4]) for i, m in enumerate(taken) if m[3])
        topics = [m[0] for m in taken]
        payloads = [m[1] for m in taken]
        frame, keep = self._decode(topics, payloads, first)
        if frame is None:
            return None
        if self.src.levels or self.src.metadata:
            kept = pl.Series("topic", topics if keep is None else [topics[i] for i in keep],
                             dtype=pl.String)
            levels = kept.str.split("/")
            extra = [levels.list.get(i, null_on_oob=True).alias(name) for i, name in self.src.levels]
            if self.src.metadata:
                extra.insert(0, kept)
            frame = frame.with_columns(extra).select([s.name for s in extra] + [
                c for c in frame.columns if c not in {s.name for s in extra}])
        return frame

    def _decode(self, topics: list[str], payloads: list[bytes],
                first: int) -> tuple[pl.DataFrame | None, list[int] | None]:
        """The decoded rows, and which messages they came from (None: all of them)."""
        fmt = self.src.format
        if fmt == "bytes":
            return pl.DataFrame({"payload": pl.Series(payloads, dtype=pl.Binary)}), None
        if fmt == "text":
            try:
                return pl.DataFrame({"payload": [p.decode() for p in payloads]}), None
            except UnicodeDecodeError:
                pass
            good, texts = [], []
            for i, p in enumerate(payloads):
                try:
                    texts.append(p.decode())
                    good.append(i)
                except UnicodeDecodeError as exc:
                    self._reject(topics[i], p, f"payload is not UTF-8 text: {exc}", first + i + 1)
            return (pl.DataFrame({"payload": texts}, schema={"payload": pl.String}) if good else None), good
        if not any(b"\n" in p or not p.strip() for p in payloads):
            try:
                frame = pl.read_ndjson(b"\n".join(payloads), infer_schema_length=None)
                if frame.height == len(payloads):
                    return frame, None
            except (pl.exceptions.PolarsError, ValueError, OSError):
                pass
        good, lines = [], []
        for i, p in enumerate(payloads):  # the slow path: find the messages that do not decode
            try:
                value = orjson.loads(p)
                if not isinstance(value, dict):
                    raise ValueError(f"expected a JSON object, got {type(value).__name__}")
            except (orjson.JSONDecodeError, ValueError) as exc:
                self._reject(topics[i], p, f"invalid JSON: {exc}", first + i + 1)
                continue
            good.append(i)
            lines.append(orjson.dumps(value))
        if not good:
            return None, good
        try:
            return pl.read_ndjson(b"\n".join(lines), infer_schema_length=None), good
        except (pl.exceptions.PolarsError, ValueError, OSError):
            rows = [orjson.loads(x) for x in lines]
            return pl.from_dicts([{k: None if v is None else str(v) for k, v in r.items()}
                                  for r in rows]), good

    def _reject(self, topic: str, payload: bytes, error: str, seq: int) -> None:
        self.ctx.dead_letter(payload.decode(errors="replace"),
                             f"MQTT message on topic {topic!r}: {error}",
                             {"topic": topic, "message": seq})

    def position(self) -> int:
        return self.returned

    def commit(self, position: Any) -> None:
        """Acknowledge (PUBACK/PUBREC) every message up to ``position`` to the broker."""
        upto = int(position)
        with self.lock:
            while self.unacked and self.unacked[0][0] <= upto:
                _, mid, qos, gen = self.unacked.popleft()
                if gen == self.generation:
                    self.client.ack(mid, qos)

    def close(self) -> None:
        self.client.disconnect()  # queued after pending acks; the loop sends both, then ends
        self.client.loop_stop()


# -- sink ----------------------------------------------------------------------------------------
def json_payloads(batch: pl.DataFrame) -> list[bytes]:
    """One compact JSON object per row (datetimes as ISO 8601), encoded column-wise."""
    naive = [c for c, t in batch.schema.items() if isinstance(t, pl.Datetime) and t.time_zone is None]
    if naive:
        batch = batch.with_columns(pl.col(c).dt.to_string("iso:strict") for c in naive)
    return batch.write_ndjson().encode().splitlines()


def json_text(column: str) -> pl.Expr:
    """A nested (list/struct) column as JSON text per row, null stays null; vectorized."""
    skip = len(orjson.dumps(column)) + 2  # the '{"column":' that wraps each value
    encoded = pl.struct(pl.col(column)).struct.json_encode().str.slice(skip).str.head(-1)
    return pl.when(pl.col(column).is_null()).then(None).otherwise(encoded).alias(column)


def template_expr(template: str) -> pl.Expr | None:
    """A template such as ``"alerts/{device}"`` as a text expression over the rows (None: the
    template names no column). MQTT topics and Redis keys are written this way."""
    parts = _FIELD.split(template)
    if len(parts) == 1:
        return None
    exprs = [pl.lit(p) if i % 2 == 0 else pl.col(p).cast(pl.String) for i, p in enumerate(parts) if p]
    return pl.concat_str(exprs)


class MqttSink(Sink):
    """Publishes each row as one MQTT message; at-least-once (see :func:`tidal.sinks.mqtt`)."""

    name = "mqtt"

    def __init__(self, topic: str, host: str, port: int, qos: int, format: Format,
                 client_id: str | None, retain: bool, connect_timeout: float,
                 publish_timeout: float, username: str | None = None,
                 password: str | None = None) -> None:
        _check_format(format)
        if qos not in (0, 1, 2):
            raise ConfigError(f"MQTT qos must be 0, 1 or 2, not {qos!r}")
        self.topic, self.host, self.port, self.qos = topic, host, port, qos
        self.format, self.client_id, self.retain = format, client_id, retain
        self.connect_timeout, self.publish_timeout = connect_timeout, publish_timeout
        self.username, self.password = username, password
        self.topic_of = template_expr(topic)
        self.client: Any = None
        self.inflight: list[Any] = []

    def open(self, ctx: SinkContext) -> None:
        self.client = _connect(self.host, self.port, self.client_id or "", True,
                               self.connect_timeout, f"sink {ctx.sink!r}", username=self.username,
                               password=self.password)

    def _payloads(self, batch: pl.DataFrame) -> list[bytes]:
        if self.format == "json":
            return json_payloads(batch)
        col = "payload" if "payload" in batch.columns else batch.columns[0]
        if self.format == "text":
            return [s.encode() for s in batch[col].cast(pl.String).fill_null("").to_list()]
        return [b or b"" for b in batch[col].cast(pl.Binary).to_list()]

    def write(self, batch: pl.DataFrame) -> None:
        if batch.height == 0:
            return
        payloads = self._payloads(batch)
        if self.topic_of is None:
            topics = [self.topic] * batch.height
        else:
            try:
                topics = batch.select(self.topic_of.alias("t"))["t"].to_list()
            except pl.exceptions.ColumnNotFoundError as exc:
                raise SinkError(f"mqtt sink: topic template {self.topic!r} names a column the "
                                f"rows do not have ({batch.columns}): {exc}") from exc
        for t, p in zip(topics, payloads, strict=True):
            info = self.client.publish(t or "", p, qos=self.qos, retain=self.retain)
            if self.qos:
                self.inflight.append(info)

    def flush(self) -> None:
        """Wait until the broker acknowledged every message published so far."""
        deadline = time.monotonic() + self.publish_timeout
        while self.inflight:
            info = self.inflight[-1]
            if all(i.is_published() for i in self.inflight):
                break
            if time.monotonic() > deadline:
                raise SinkError(f"mqtt sink: the MQTT broker at {self.host}:{self.port} did not "
                                f"acknowledge {sum(not i.is_published() for i in self.inflight)} "
                                f"message(s) within {self.publish_timeout:g} s")
            info.wait_for_publish(0.05)
        self.inflight.clear()

    def close(self) -> None:
        if self.client is not None:
            try:
                self.flush()
            finally:
                self.client.disconnect()
                self.client.loop_stop()
                self.client = None
