"""Apache Kafka as a source and a sink (confluent-kafka; ``pip install 'tidal[kafka]'``).

Source: one stream partition per Kafka partition, assigned explicitly (no group
rebalancing). A partition's position is its next offset and lives in tidal's checkpoints,
so recovery seeks exactly; offsets are also committed back to ``group`` for monitoring.
Polling never blocks: one consumer per source prefetches in librdkafka's threads and
``consume(timeout=0)`` hands out what has arrived, demultiplexed into per-partition
buffers (a partition whose buffer is full is paused). When the broker goes away the
consumer keeps its position and resumes when it returns.

Sink: an idempotent producer. When the flow checkpoints, each checkpoint's rows are
written in one Kafka transaction that also commits the checkpoint id as the offset of a
per-sink consumer group (``tidal-sink.<flow>.<sink>`` on ``commit_topic``): the rows and
the id become visible together or not at all, and a repeated ``apply`` is a no-op. At
open the sink checks that the broker really aborts transactions; where it does not
(tansu 0.6), it says so on stderr and falls back to at-least-once. Rows of an updating
result that delete their key (``__delete``, :mod:`tidal.operators.changelog`) are sent as
tombstones (the key with a null value), as Flink's upsert-kafka does.
"""

from __future__ import annotations

import io
import struct
import sys
import time
import urllib.request
import uuid
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import orjson
import polars as pl

from tidal.connectors.base import (
    SinkContext,
    Source,
    SourceContext,
    SourcePartition,
    TransactionalSink,
)
from tidal.errors import ConfigError, SinkError, SourceError
from tidal.operators.changelog import DELETE

if TYPE_CHECKING:
    import confluent_kafka as ck

__all__ = ["KafkaSink", "KafkaSource"]

Format = Literal["json", "csv", "text", "bytes", "avro"]
FORMATS = ("json", "csv", "text", "bytes", "avro")
TIMEOUT_S = 10.0
"""How long connecting to the broker may take before a clear error."""
BUFFER_LIMIT = 200_000
"""Messages buffered per partition before it is paused."""


def _transient() -> tuple[int, ...]:
    ck = _ck()
    return (ck.KafkaError._TRANSPORT, ck.KafkaError._TIMED_OUT, ck.KafkaError._ALL_BROKERS_DOWN,
            ck.KafkaError.REQUEST_TIMED_OUT, ck.KafkaError.COORDINATOR_NOT_AVAILABLE,
            ck.KafkaError.NOT_COORDINATOR, ck.KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
            ck.KafkaError.NETWORK_EXCEPTION)


def _ck() -> Any:
    try:
        import confluent_kafka
        import confluent_kafka.admin  # noqa: F401 - loads the submodule
    except ImportError:
        raise ConfigError(
            "the Kafka connector needs confluent-kafka: pip install 'tidal[kafka]'") from None
    return confluent_kafka


def _say(message: str) -> None:
    print(f"tidal kafka: {message}", file=sys.stderr, flush=True)


def _config(bootstrap_servers: str, properties: dict[str, Any] | None) -> dict[str, Any]:
    """librdkafka settings; ``properties.sasl.mechanism`` and ``sasl.mechanism`` both work."""
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap_servers, "log_level": 2}
    for k, v in (properties or {}).items():
        conf[k.removeprefix("properties.")] = v
    return conf


def _metadata(client: Any, bootstrap: str, what: str, error: type[Exception]) -> Any:
    """Cluster metadata within ``TIMEOUT_S``, or ``error`` naming the address."""
    try:
        return client.list_topics(timeout=TIMEOUT_S)
    except _ck().KafkaException as exc:
        raise error(
            f"{what}: cannot reach Kafka at {bootstrap!r} within {TIMEOUT_S:.0f} s "
            f"({exc.args[0].str() if exc.args else exc}); check bootstrap_servers and that "
            "the broker is running") from None


def _avro_schema(schema: Any) -> Any:
    import fastavro
    return fastavro.parse_schema(orjson.loads(schema) if isinstance(schema, (str, bytes)) else schema)


# -- decoding ------------------------------------------------------------------------------

class _Decoder:
    """Turns a list of messages into one frame; undecodable ones come back with the reason."""

    def __init__(self, format: Format, schema: Any, schema_registry: str | None,
                 metadata: bool, multi_topic: bool) -> None:
        if format not in FORMATS:
            raise ConfigError(f"kafka format must be one of {', '.join(FORMATS)}, not {format!r}")
        self.format, self.metadata, self.multi_topic = format, metadata, multi_topic
        self.registry = schema_registry.rstrip("/") if schema_registry else None
        self.registry_schemas: dict[int, Any] = {}
        self.avro = None
        self.csv_schema: pl.Schema | None = None
        if format == "avro":
            if schema is None and self.registry is None:
                raise ConfigError("kafka format='avro' needs schema= (an Avro schema) or schema_registry=")
            self.avro = _avro_schema(schema) if schema is not None else None
        elif format == "csv":
            if schema is None:
                raise ConfigError("kafka format='csv' needs schema=: the column names (a list) "
                                  "or names and types (a dict or pl.Schema)")
            self.csv_schema = (pl.Schema({c: pl.String for c in schema})
                               if isinstance(schema, (list, tuple)) else pl.Schema(schema))

    def decode(self, msgs: list[Any]) -> tuple[pl.DataFrame | None, list[tuple[Any, str]]]:
        values = [m.value() or b"" for m in msgs]
        bad: list[tuple[Any, str]] = []
        frame: pl.DataFrame | None
        try:
            frame = self._decode(values)
        except Exception:
            frame, keep = self._one_by_one(msgs, values, bad)
            msgs = keep
        if frame is None or not msgs:
            return None, bad
        if self.metadata:
            frame = frame.with_columns(**self._meta(msgs))
        return frame, bad

    def _decode(self, values: list[bytes]) -> pl.DataFrame:
        if self.format == "json":
            frame = pl.read_ndjson(b"\n".join(values) + b"\n", infer_schema_length=None)
            if frame.height != len(values):
                raise ValueError("not one JSON object per message")
            return frame
        if self.format == "csv":
            assert self.csv_schema is not None
            frame = pl.read_csv(b"\n".join(values) + b"\n", has_header=False,
                                schema=self.csv_schema, truncate_ragged_lines=False)
            if frame.height != len(values):
                raise ValueError("not one CSV line per message")
            return frame
        if self.format == "text":
            return pl.DataFrame({"value": [v.decode("utf-8") for v in values]})
        if self.format == "bytes":
            return pl.DataFrame({"value": values}, schema={"value": pl.Binary})
        return pl.from_dicts([self._avro(v) for v in values], infer_schema_length=None)

    def _avro(self, value: bytes) -> dict[str, Any]:
        import fastavro
        schema = self.avro
        if self.registry is not None:
            if len(value) < 5 or value[0] != 0:
                raise ValueError("not in the schema registry's wire format (magic byte 0 + schema id)")
            schema = self._registry_schema(struct.unpack(">I", value[1:5])[0])
            value = value[5:]
        record = fastavro.schemaless_reader(io.BytesIO(value), schema, None)
        if not isinstance(record, dict):
            raise ValueError(f"expected an Avro record, got {type(record).__name__}")
        return record

    def _registry_schema(self, schema_id: int) -> Any:
        if schema_id not in self.registry_schemas:
            url = f"{self.registry}/schemas/ids/{schema_id}"
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:  # noqa: S310 - user's URL
                self.registry_schemas[schema_id] = _avro_schema(orjson.loads(resp.read())["schema"])
        return self.registry_schemas[schema_id]

    def _one_by_one(self, msgs: list[Any], values: list[bytes], bad: list[tuple[Any, str]],
                    ) -> tuple[pl.DataFrame | None, list[Any]]:
        """The slow path, taken only for a batch holding a bad message: find which."""
        frames, keep = [], []
        for m, v in zip(msgs, values, strict=True):
            try:
                if self.format == "json":
                    obj = orjson.loads(v)
                    if not isinstance(obj, dict):
                        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
                frames.append(self._decode([v]))
                keep.append(m)
            except Exception as exc:  # noqa: BLE001 - every decode failure is a dead letter
                bad.append((m, f"cannot decode {self.format} message: {exc}"))
        if not frames:
            return None, keep
        return pl.concat(frames, how="diagonal_relaxed"), keep

    def _meta(self, msgs: list[Any]) -> dict[str, pl.Series]:
        keys = [None if (k := m.key()) is None else k.decode("utf-8", "replace") for m in msgs]
        cols = {
            "_key": pl.Series(keys, dtype=pl.String),
            "_timestamp": pl.Series([m.timestamp()[1] for m in msgs], dtype=pl.Int64).cast(pl.Datetime("ms")),
            "_partition": pl.Series([m.partition() for m in msgs], dtype=pl.Int32),
            "_offset": pl.Series([m.offset() for m in msgs], dtype=pl.Int64),
        }
        if self.multi_topic:
            cols["_topic"] = pl.Series([m.topic() for m in msgs], dtype=pl.String)
        return cols


def _dead_record(m: Any) -> dict[str, Any]:
    value = m.value() or b""
    key = m.key()
    return {
        "topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
        "key": None if key is None else key.decode("utf-8", "replace"),
        "value": value.decode("utf-8", "replace"),
    }


# -- source --------------------------------------------------------------------------------

class _Consumer:
    """The one consumer of a source: assigns partitions and fills per-partition buffers."""

    def __init__(self, src: KafkaSource) -> None:
        ck = _ck()
        self.src = src
        conf = dict(src.conf)
        conf.setdefault("group.id", src.group or f"tidal-{uuid.uuid4().hex[:12]}")
        conf.setdefault("enable.auto.commit", False)
        conf.setdefault("enable.auto.offset.store", False)
        conf.setdefault("auto.offset.reset", "earliest")
        conf.setdefault("isolation.level", "read_committed")
        conf.setdefault("enable.partition.eof", True)
        conf["error_cb"] = self._on_error
        self.consumer: ck.Consumer = ck.Consumer(conf)
        self.buffers: dict[tuple[str, int], deque[Any]] = {}
        self.eof: dict[tuple[str, int], int] = {}
        self.paused: set[tuple[str, int]] = set()
        self.wakes: list[SourceContext] = []
        self.outage: str | None = None

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            self.outage = f"fatal: {err.str()}"
        elif self.outage is None:
            self.outage = err.str()
            _say(f"source {self.src.name!r}: {err.str()}; waiting for the broker at "
                 f"{self.src.bootstrap_servers!r} (no data is lost, reading resumes from the "
                 "same offsets)")

    def assign(self, topic: str, p: int, offset: int) -> None:
        tp = (topic, p)
        self.buffers[tp] = deque()
        self.consumer.incremental_assign([_ck().TopicPartition(topic, p, offset)])

    def fill(self) -> None:
        ck = _ck()
        msgs = self.consumer.consume(10_000, timeout=0)
        for m in msgs:
            err = m.error()
            if err is None:
                self.buffers[(m.topic(), m.partition())].append(m)
                if self.outage is not None and not self.outage.startswith("fatal"):
                    _say(f"source {self.src.name!r}: broker back, reading again")
                    self.outage = None
                continue
            if err.code() == ck.KafkaError._PARTITION_EOF:
                self.eof[(m.topic(), m.partition())] = m.offset()
            elif err.fatal() or err.code() in (ck.KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                               ck.KafkaError.GROUP_AUTHORIZATION_FAILED):
                raise SourceError(f"source {self.src.name!r}: Kafka error on {m.topic()}"
                                  f"[{m.partition()}]: {err.str()}")
            else:
                self._on_error(err)
        if self.outage and self.outage.startswith("fatal"):
            raise SourceError(f"source {self.src.name!r}: Kafka {self.outage}")
        full = [tp for tp, b in self.buffers.items() if len(b) >= BUFFER_LIMIT and tp not in self.paused]
        if full:
            self.consumer.pause([ck.TopicPartition(t, p) for t, p in full])
            self.paused.update(full)

    def take(self, tp: tuple[str, int], n: int) -> list[Any]:
        buf = self.buffers[tp]
        out = [buf.popleft() for _ in range(min(n, len(buf)))]
        if tp in self.paused and len(buf) < BUFFER_LIMIT // 2:
            self.consumer.resume([_ck().TopicPartition(*tp)])
            self.paused.discard(tp)
        return out

    def close(self) -> None:
        self.consumer.close()


class _KafkaPartition(SourcePartition):
    def __init__(self, src: KafkaSource, topic: str, p: int, offset: int, end: int | None,
                 ctx: SourceContext) -> None:
        self.src, self.topic, self.p, self.offset, self.end, self.ctx = src, topic, p, offset, end, ctx
        self.tp = (topic, p)
        self.closed = False

    def poll(self, max_rows: int) -> pl.DataFrame | None:
        reader = self.src.reader
        assert reader is not None
        reader.fill()
        if self.end is not None:
            max_rows = min(max_rows, len(reader.buffers[self.tp]))
        msgs = reader.take(self.tp, max_rows)
        if self.end is not None:
            msgs = [m for m in msgs if m.offset() < self.end]
        if not msgs:
            return None
        self.offset = msgs[-1].offset() + 1
        frame, bad = self.src.decoder.decode(msgs)
        for m, reason in bad:
            self.ctx.dead_letter(_dead_record(m), f"{reason} (topic {m.topic()!r}, partition "
                                 f"{m.partition()}, offset {m.offset()})", m.offset() + 1)
        return frame

    @property
    def done(self) -> bool:
        if self.end is None:
            return False
        reader = self.src.reader
        if self.closed or reader is None:
            return True
        if reader.buffers[self.tp]:
            return self.offset >= self.end
        return self.offset >= self.end or reader.eof.get(self.tp, -1) >= self.end

    def position(self) -> int:
        return self.offset

    def commit(self, position: Any, asynchronous: bool = True) -> None:
        reader = self.src.reader
        if self.src.group is not None and reader is not None and not self.closed:
            tp = _ck().TopicPartition(self.topic, self.p, int(position))
            try:
                reader.consumer.commit(offsets=[tp], asynchronous=asynchronous)
            except _ck().KafkaException:
                pass  # monitoring only: the checkpoint holds the real position

    def close(self) -> None:
        if not self.closed:
            # a finished partition is closed before the runtime commits its last batch
            self.commit(self.offset, asynchronous=False)
            self.closed = True
            self.src._closed_partition()


class KafkaSource(Source):
    """Reads Kafka topics; one stream partition per Kafka partition. See
    :func:`tidal.sources.kafka` for the options."""

    def __init__(self, topics: str | Iterable[str], bootstrap_servers: str,
                 group: str | None = None, partitions: Iterable[int] | None = None,
                 start: str | int | None = None, format: Format = "json", schema: Any = None,
                 schema_registry: str | None = None, bounded: bool = False,
                 metadata: bool = False, properties: dict[str, Any] | None = None) -> None:
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        if not self.topics:
            raise ConfigError("kafka source needs at least one topic")
        if start is None:
            start = "committed" if group else "earliest"
        if not isinstance(start, int) and start not in ("earliest", "latest", "committed"):
            raise ConfigError("kafka source start must be 'earliest', 'latest', 'committed' or "
                              f"a timestamp in epoch milliseconds, not {start!r}")
        if start == "committed" and group is None:
            raise ConfigError("kafka source start='committed' needs group=")
        self.bootstrap_servers, self.group, self.start = bootstrap_servers, group, start
        self.explicit = None if partitions is None else [int(p) for p in partitions]
        self.bounded_read, self.properties = bounded, properties or {}
        self.conf = _config(bootstrap_servers, self.properties)
        self.decoder = _Decoder(format, schema, schema_registry, metadata, len(self.topics) > 1)
        self.name = "kafka:" + ",".join(self.topics)
        self.reader: _Consumer | None = None
        self._parts: dict[str, tuple[str, int]] | None = None
        self._open_count = 0
        self._ends: dict[tuple[str, int], int] = {}

    def partitions(self) -> list[str]:
        if self._parts is None:
            ck = _ck()
            admin = ck.admin.AdminClient(self.conf)
            meta = _metadata(admin, self.bootstrap_servers, f"source {self.name!r}", SourceError)
            parts: dict[str, tuple[str, int]] = {}
            for topic in self.topics:
                info = meta.topics.get(topic)
                if info is None or info.error is not None:
                    raise SourceError(f"source {self.name!r}: no topic {topic!r} at "
                                      f"{self.bootstrap_servers!r}; create it first")
                available = sorted(info.partitions)
                chosen = available if self.explicit is None else self.explicit
                for p in chosen:
                    if p not in available:
                        raise SourceError(f"source {self.name!r}: topic {topic!r} has no partition "
                                          f"{p} (it has {available})")
                    name = str(p) if len(self.topics) == 1 else f"{topic}:{p}"
                    parts[name] = (topic, p)
            self._parts = parts
        return list(self._parts)

    def open(self, partition: str, position: Any, ctx: SourceContext) -> SourcePartition:
        self.partitions()
        assert self._parts is not None
        if self.reader is None:
            self.reader = _Consumer(self)
            if self.bounded_read:
                self._ends = _end_offsets(self.conf, list(self._parts.values()))
        topic, p = self._parts[partition]
        offset = int(position) if position is not None else self._start_offset(topic, p)
        self.reader.assign(topic, p, offset)
        self._open_count += 1
        return _KafkaPartition(self, topic, p, offset, self._ends.get((topic, p)), ctx)

    def _start_offset(self, topic: str, p: int) -> int:
        ck = _ck()
        assert self.reader is not None
        consumer = self.reader.consumer
        tp = ck.TopicPartition(topic, p)
        try:
            low, _ = consumer.get_watermark_offsets(tp, timeout=TIMEOUT_S)
            if self.start == "committed":
                got = consumer.committed([tp], timeout=TIMEOUT_S)[0].offset
                return got if got >= 0 else low
            if self.start == "earliest":
                return low
            if self.start == "latest":
                return _end_offsets(self.conf, [(topic, p)])[(topic, p)]
            got = consumer.offsets_for_times([ck.TopicPartition(topic, p, int(self.start))],
                                             timeout=TIMEOUT_S)[0].offset
            return got if got >= 0 else _end_offsets(consumer, [(topic, p)])[(topic, p)]
        except ck.KafkaException as exc:
            raise SourceError(f"source {self.name!r}: cannot find the start offset of "
                              f"{topic}[{p}] at {self.bootstrap_servers!r}: {exc}") from None

    def _closed_partition(self) -> None:
        self._open_count -= 1
        if self._open_count == 0 and self.reader is not None:
            self.reader.close()
            self.reader = None

    @property
    def bounded(self) -> bool:
        return self.bounded_read


def _end_offsets(conf: dict[str, Any], tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """End offsets (one past the last message) of ``tps`` now.

    The broker's high watermark is the answer, except that some brokers (tansu 0.6) report
    one past the *first* message of the last batch; so the last batch is read to its end
    too. On Kafka that reads the one message before the high watermark."""
    ck = _ck()
    probe = ck.Consumer({**conf, "group.id": f"tidal-probe-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        ends: dict[tuple[str, int], int] = {}
        probe_at = []
        for topic, p in tps:
            low, high = probe.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=TIMEOUT_S)
            ends[(topic, p)] = high
            if high > low:
                probe_at.append(ck.TopicPartition(topic, p, high - 1))
        if probe_at:
            probe.assign(probe_at)
            waiting = {(tp.topic, tp.partition) for tp in probe_at}
            deadline = time.monotonic() + 3.0
            while waiting and time.monotonic() < deadline:
                for m in probe.consume(10_000, timeout=0.1):
                    tp = (m.topic(), m.partition())
                    if m.error() is None:
                        ends[tp] = max(ends[tp], m.offset() + 1)
                    elif m.error().code() == ck.KafkaError._PARTITION_EOF:
                        waiting.discard(tp)
        return ends
    finally:
        probe.close()


# -- sink ----------------------------------------------------------------------------------

class _Encoder:
    """Turns a frame into message values and keys, vectorized where the format allows."""

    def __init__(self, format: Format, key: str | None, schema: Any) -> None:
        if format not in FORMATS:
            raise ConfigError(f"kafka format must be one of {', '.join(FORMATS)}, not {format!r}")
        if format == "avro" and schema is None:
            raise ConfigError("kafka sink format='avro' needs schema= (an Avro record schema)")
        self.format, self.key = format, key
        self.avro = _avro_schema(schema) if format == "avro" else None

    def keys(self, batch: pl.DataFrame) -> list[bytes | None]:
        if self.key is None:
            return [None] * batch.height
        if self.key not in batch.columns:
            raise SinkError(f"kafka sink key column {self.key!r} is not among the columns "
                            f"{batch.columns}")
        col = batch[self.key]
        if col.dtype == pl.Binary:
            return col.to_list()
        return [None if k is None else k.encode() for k in col.cast(pl.String).to_list()]

    def values(self, batch: pl.DataFrame) -> list[bytes]:
        if self.format == "json":
            naive = [c for c, t in batch.schema.items()
                     if isinstance(t, pl.Datetime) and t.time_zone is None]
            if naive:  # ISO 8601 with a "T", as the JSON lines sink writes
                batch = batch.with_columns(pl.col(c).dt.to_string("%Y-%m-%dT%H:%M:%S%.3f") for c in naive)
            out = io.BytesIO()
            batch.write_ndjson(out)
            return out.getvalue().rstrip(b"\n").split(b"\n") if batch.height else []
        if self.format == "csv":
            text = batch.write_csv(include_header=False)
            lines = text.rstrip("\n").split("\n") if batch.height else []
            if len(lines) != batch.height:  # a quoted value holds a newline
                lines = [batch.slice(i, 1).write_csv(include_header=False).rstrip("\n")
                         for i in range(batch.height)]
            return [line.encode() for line in lines]
        if self.format in ("text", "bytes"):
            col = batch["value"] if "value" in batch.columns else batch.to_series(0)
            if col.dtype == pl.Binary:
                return col.to_list()
            return [b"" if v is None else v.encode() for v in col.cast(pl.String).to_list()]
        import fastavro
        out_values = []
        for row in batch.iter_rows(named=True):
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, self.avro, row)
            out_values.append(buf.getvalue())
        return out_values


class KafkaSink(TransactionalSink):
    """Writes rows to a Kafka topic; see :func:`tidal.sinks.kafka` for the options."""

    def __init__(self, topic: str, bootstrap_servers: str, key: str | None = None,
                 format: Format = "json", schema: Any = None,
                 properties: dict[str, Any] | None = None,
                 delivery: Literal["exactly-once", "at-least-once"] = "exactly-once",
                 partitions: int = 1, commit_topic: str = "tidal-sink-commits",
                 transactional_id: str | None = None) -> None:
        if delivery not in ("exactly-once", "at-least-once"):
            raise ConfigError("kafka sink delivery must be 'exactly-once' or 'at-least-once', "
                              f"not {delivery!r}")
        self.topic, self.bootstrap_servers, self.delivery = topic, bootstrap_servers, delivery
        self.encoder = _Encoder(format, key, schema)
        self.conf = _config(bootstrap_servers, properties)
        self.partitions, self.commit_topic = partitions, commit_topic
        self.transactional_id = transactional_id
        self.name = f"kafka:{topic}"
        self.producer: Any = None
        self.transactional = False
        self.group_consumer: Any = None
        self.failures: list[str] = []
        self.committed: int | None = None
        self.outage = False

    # 1. open: reach the broker, make the topics, choose the guarantee
    def open(self, ctx: SinkContext) -> None:
        ck = _ck()
        where = f"sink {ctx.sink!r}"
        admin = ck.admin.AdminClient(self.conf)
        meta = _metadata(admin, self.bootstrap_servers, where, SinkError)
        wanted = [self.topic] + ([self.commit_topic] if ctx.exactly_once else [])
        self._create_topics(admin, meta, wanted, where)
        conf = {**self.conf, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                "message.timeout.ms": 0, "partitioner": "murmur2_random"}
        conf.update({k: v for k, v in self.conf.items() if k in ("linger.ms", "partitioner")})
        conf["error_cb"] = lambda err: self._on_error(where, err)
        self.producer = ck.Producer(conf)
        if not ctx.exactly_once:
            if self.delivery == "exactly-once":
                _say(f"{where} -> {self.topic!r}: AT-LEAST-ONCE: exactly-once needs checkpoints "
                     "(run the flow with checkpoint_dir=)")
            return
        group = f"tidal-sink.{ctx.flow}.{ctx.sink}"
        self.group_consumer = ck.Consumer({**self.conf, "group.id": group,
                                           "enable.auto.commit": False})
        if self.delivery == "exactly-once":
            txn_id = self.transactional_id or group
            problem = self._try_transactions(ck, conf, txn_id)
            if problem is None:
                self.transactional = True
                _say(f"{where} -> {self.topic!r}: EXACTLY-ONCE through Kafka transactions "
                     f"(transactional.id {txn_id!r})")
            else:
                _say(f"{where} -> {self.topic!r}: AT-LEAST-ONCE: {problem}; after a crash the "
                     "rows of the checkpoint being written may appear twice")
        else:
            _say(f"{where} -> {self.topic!r}: AT-LEAST-ONCE (delivery='at-least-once')")

    def _create_topics(self, admin: Any, meta: Any, names: list[str], where: str) -> None:
        ck = _ck()
        missing = [n for n in names if n not in meta.topics]
        if not missing:
            return
        futures = admin.create_topics([
            ck.admin.NewTopic(n, self.partitions if n == self.topic else 1, 1) for n in missing])
        for name, fut in futures.items():
            try:
                fut.result(TIMEOUT_S)
            except ck.KafkaException as exc:
                if exc.args[0].code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise SinkError(f"{where}: cannot create topic {name!r} at "
                                    f"{self.bootstrap_servers!r}: {exc}") from None

    def _try_transactions(self, ck: Any, conf: dict[str, Any], txn_id: str) -> str | None:
        """None when the broker honours transactions, else why not. Beyond
        ``init_transactions``, an aborted probe record must stay invisible to a
        read_committed consumer: brokers that accept the calls but do not filter aborted
        records (tansu 0.6) would turn every retry into a duplicate."""
        producer = ck.Producer({**conf, "transactional.id": txn_id, "message.timeout.ms": 60_000})
        try:
            producer.init_transactions(TIMEOUT_S)
            producer.begin_transaction()
            got: list[Any] = []
            producer.produce(self.commit_topic, value=b"tidal transaction probe (aborted)",
                             on_delivery=lambda err, m: got.append(m))
            producer.flush(TIMEOUT_S)
            producer.abort_transaction(TIMEOUT_S)
        except ck.KafkaException as exc:
            return f"the broker does not support transactions ({exc.args[0].str()})"
        if not got or got[0].error() is not None:
            return "the broker did not take a transactional probe record"
        probe_offset = got[0].offset()
        reader = ck.Consumer({**self.conf, "group.id": f"tidal-probe-{uuid.uuid4().hex[:8]}",
                              "isolation.level": "read_committed", "enable.partition.eof": True,
                              "enable.auto.commit": False})
        try:
            reader.assign([ck.TopicPartition(self.commit_topic, got[0].partition(), probe_offset)])
            deadline = time.monotonic() + TIMEOUT_S / 2
            while time.monotonic() < deadline:
                m = reader.poll(0.2)
                if m is None:
                    continue
                if m.error() is not None:
                    if m.error().code() == ck.KafkaError._PARTITION_EOF:
                        break
                    continue
                if m.offset() == probe_offset:
                    return ("the broker accepts transactions but shows aborted records to "
                            "read_committed consumers")
                break
        finally:
            reader.close()
        self.producer.flush(TIMEOUT_S)
        self.producer = producer
        return None

    def _on_error(self, where: str, err: Any) -> None:
        if err.fatal():
            self.failures.append(err.str())
        elif not self.outage:
            self.outage = True
            _say(f"{where}: {err.str()}; waiting for the broker at {self.bootstrap_servers!r} "
                 "(rows are kept and sent when it is back)")

    def _produce(self, batch: pl.DataFrame) -> None:
        ck = _ck()
        deleted = None
        if DELETE in batch.columns:  # an updating result's deleted keys: tombstones
            deleted = batch.get_column(DELETE).fill_null(False).to_list()
            batch = batch.drop(DELETE)
        values: list[bytes | None]
        values, keys = list(self.encoder.values(batch)), self.encoder.keys(batch)
        if deleted is not None:
            values = [None if gone else v for v, gone in zip(values, deleted, strict=True)]
        produce, topic = self.producer.produce, self.topic
        for value, key in zip(values, keys, strict=True):
            while True:
                try:
                    produce(topic, value, key, on_delivery=self._delivered)
                    break
                except BufferError:  # the local queue is full: let it drain
                    self.producer.poll(0.05)
                except ck.KafkaException as exc:
                    raise SinkError(f"sink {self.name!r}: cannot write to {topic!r}: {exc}") from None

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failures.append(err.str())
        elif self.outage:
            self.outage = False
            _say(f"sink {self.name!r}: broker back, writing again")

    def _check(self) -> None:
        if self.failures:
            raise SinkError(f"sink {self.name!r}: Kafka did not take rows for {self.topic!r}: "
                            f"{self.failures[0]}")

    def write(self, batch: pl.DataFrame) -> None:
        self._produce(batch)
        self.producer.poll(0)
        self._check()

    def flush(self) -> None:
        """Wait until every row written is acknowledged (at-least-once without checkpoints)."""
        if self.producer is not None and not self.transactional:
            while self.producer.flush(1.0):
                self._check()  # the broker is away: keep waiting, rows are kept in order
            self._check()

    def committed_checkpoint(self) -> int | None:
        if self.committed is None and self.group_consumer is not None:
            ck = _ck()
            tp = ck.TopicPartition(self.commit_topic, 0)
            try:
                got = self.group_consumer.committed([tp], timeout=TIMEOUT_S)[0].offset
            except ck.KafkaException as exc:
                raise SinkError(f"sink {self.name!r}: cannot read its last committed checkpoint "
                                f"from {self.bootstrap_servers!r}: {exc}") from None
            self.committed = got if got >= 0 else 0
        return self.committed

    def apply(self, rows: pl.DataFrame, checkpoint_id: int) -> None:
        """Write one checkpoint's rows once (numbered steps as in the code):

        1. skip rows of a checkpoint the topic already holds;
        2. begin a transaction (exactly-once) and produce the rows;
        3. commit ``checkpoint_id`` as the offset of the sink's group on ``commit_topic`` -
           inside the transaction, so the rows and the id become visible together; without
           transactions, after every row is acknowledged (a crash before this step repeats
           the checkpoint's rows: at-least-once);
        4. commit the transaction.
        """
        ck = _ck()
        # 1.
        if (self.committed_checkpoint() or 0) >= checkpoint_id:
            return
        marker = [ck.TopicPartition(self.commit_topic, 0, checkpoint_id)]
        waited = 0.0
        while True:
            try:
                if self.transactional:
                    # 2.
                    self.producer.begin_transaction()
                    self._produce(rows)
                    # 3.
                    self.producer.send_offsets_to_transaction(
                        marker, self.group_consumer.consumer_group_metadata(), TIMEOUT_S)
                    # 4.
                    self.producer.commit_transaction()
                else:
                    # 2.
                    self._produce(rows)
                    while self.producer.flush(1.0):
                        self._check()
                    self._check()
                    # 3.
                    self.group_consumer.commit(offsets=marker, asynchronous=False)
                break
            except ck.KafkaException as exc:
                err = exc.args[0]
                if self.transactional and err.txn_requires_abort():
                    self.producer.abort_transaction()
                elif not (err.retriable() or err.code() in _transient()):
                    raise SinkError(f"sink {self.name!r}: checkpoint {checkpoint_id} could not be "
                                    f"committed to {self.topic!r}: {err.str()}; the next run "
                                    "retries it") from None
                if waited == 0.0 or int(waited) % 10 == 0:
                    _say(f"sink {self.name!r}: {err.str()}; retrying checkpoint {checkpoint_id} "
                         f"until the broker at {self.bootstrap_servers!r} answers")
                time.sleep(0.5)
                waited += 0.5
        self._check()
        self.committed = checkpoint_id

    def close(self) -> None:
        if self.producer is not None:
            if not self.transactional:
                self.producer.flush(TIMEOUT_S)
            self.producer = None
        if self.group_consumer is not None:
            self.group_consumer.close()
            self.group_consumer = None
