"""The one registry of connectors SQL can name: ``WITH ('connector' = '<name>', ...)``.

Each entry turns a table's options (Flink's names where Flink has the connector) and its
declared columns into a tidal source and/or sink. Adding a connector touches only this
module: call :func:`register`.

>>> sorted(REGISTRY)
['blackhole', 'datagen', 'delta', 'filesystem', 'jdbc', 'kafka', 'log', 'mqtt', 'nexmark', 'print', 'redis', 'socket', 'sqlite', 'upsert-kafka']
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from tidal.connectors.base import Sink, Source
from tidal.errors import ConfigError

__all__ = ["REGISTRY", "Connector", "TableOptions", "register"]


@dataclass
class TableOptions:
    """What a connector factory gets: the table's name, ``WITH`` options, physical columns
    (name → Polars type), primary key and ``PARTITIONED BY`` columns."""

    table: str
    options: dict[str, str]
    columns: dict[str, pl.DataType]
    primary_key: list[str]
    used: set[str]
    partition_keys: list[str] = field(default_factory=list)

    def get(self, key: str, default: str | None = None) -> str | None:
        self.used.add(key)
        return self.options.get(key, default)

    def need(self, key: str, example: str) -> str:
        value = self.get(key)
        if value is None:
            raise ConfigError(f"table {self.table!r}: connector {self.options['connector']!r} "
                              f"needs the option '{key}' (e.g. '{key}' = '{example}')")
        return value

    def integer(self, key: str, default: int) -> int:
        value = self.get(key)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"table {self.table!r}: option '{key}' must be an integer, "
                              f"not {value!r}") from None

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if value.lower() not in ("true", "false"):
            raise ConfigError(f"table {self.table!r}: option '{key}' must be 'true' or 'false'")
        return value.lower() == "true"


@dataclass
class Connector:
    """How to read (``source``) and/or write (``sink``) a table of this connector."""

    name: str
    source: Callable[[TableOptions], Source] | None = None
    sink: Callable[[TableOptions], Sink] | None = None
    upsert: bool = False
    """Whether the sink applies an updating result (upserts by the primary key)."""


REGISTRY: dict[str, Connector] = {}


def register(connector: Connector) -> None:
    """Make ``connector`` available to ``CREATE TABLE ... WITH ('connector' = name)``."""
    REGISTRY[connector.name] = connector


# -- nexmark ---------------------------------------------------------------------------------
# Flink's nexmark connector options (NexmarkSourceOptions) → NexmarkConfig fields
_FLINK_NEXMARK_INTS = {"person.proportion": "person_proportion",
                       "auction.proportion": "auction_proportion",
                       "bid.proportion": "bid_proportion",
                       "bid.hot-ratio.auctions": "hot_auction_ratio",
                       "bid.hot-ratio.bidders": "hot_bidders_ratio",
                       "auction.hot-ratio.sellers": "hot_sellers_ratio"}
_FLINK_NEXMARK_SIZES = {"person.avg-size": "avg_person_bytes",
                        "auction.avg-size": "avg_auction_bytes", "bid.avg-size": "avg_bid_bytes"}


def _nexmark_config(t: TableOptions) -> dict[str, Any]:
    """The generator's settings from tidal's option names or Flink's."""
    events = t.get("events") or t.get("events.num") or "0"
    rate = t.get("rate")
    first, nxt = t.get("first-event.rate"), t.get("next-event.rate")
    if first is not None and nxt is not None and float(first) != float(nxt):
        raise ConfigError(f"table {t.table!r}: 'first-event.rate' = {first!r} and "
                          f"'next-event.rate' = {nxt!r} differ; tidal's Nexmark rate is constant "
                          "(set one 'rate')")
    if (t.get("rate.limited") or "false").lower() != "false":
        raise ConfigError(f"table {t.table!r}: 'rate.limited' = 'true' (pacing to the wall "
                          "clock) is not supported; the generator runs at full speed as in all "
                          "published Nexmark runs")
    t.get("rate.shape")  # Flink's generator ignores it too: the rate is constant
    try:
        out: dict[str, Any] = {
            "events": int(events), "rate": float(rate or first or nxt or 10_000),
            "generators": t.integer("generators", 1),
            "out_of_order_group": t.integer("out-of-order-group", 1), "seed": t.integer("seed", 0)}
    except ValueError:
        raise ConfigError(f"table {t.table!r}: 'events' must be an integer and 'rate' a number, "
                          f"not {events!r} / {rate or first!r}") from None
    for key, name in _FLINK_NEXMARK_INTS.items():
        if key in t.options:
            out[name] = t.integer(key, 0)
    for key, name in _FLINK_NEXMARK_SIZES.items():
        value = t.get(key)
        if value is not None:
            m = re.fullmatch(r"\s*(\d+)\s*(b|bytes|kb|k)?\s*", value.lower())
            if m is None:
                raise ConfigError(f"table {t.table!r}: {key!r} = {value!r} is not a size such "
                                  "as '200b' or '1kb'")
            out[name] = int(m[1]) * (1024 if m[2] in ("kb", "k") else 1)
    if t.integer("base-time", 0):  # 0 is Flink's "wall clock"; tidal keeps its fixed base
        out["base_time"] = t.integer("base-time", 0)
    return out


def _nexmark(t: TableOptions) -> Source:
    from tidal.connectors.nexmark import KINDS, nexmark

    if "event_type" in t.columns or any(isinstance(d, pl.Struct) for d in t.columns.values()):
        return _nexmark_union(t)
    kind = t.get("kind") or (t.table if t.table in KINDS else None)
    if kind is None:
        raise ConfigError(f"table {t.table!r}: say which Nexmark view it is with 'kind' = "
                          "'bid' | 'auction' | 'person', or declare Flink's one table (event_type "
                          "INT, person ROW<...>, auction ROW<...>, bid ROW<...>)")
    cols = [c for c in t.columns if c in KINDS.get(kind, ())]
    extra = [c for c in t.columns if c not in KINDS.get(kind, ()) and c != "event_id"]
    if extra:
        raise ConfigError(f"table {t.table!r}: the Nexmark {kind} view has no column(s) "
                          f"{extra}; its columns are {list(KINDS.get(kind, ()))}")
    return nexmark(kind, columns=cols, event_id="event_id" in t.columns, **_nexmark_config(t))


def _nexmark_union(t: TableOptions) -> Source:
    """Flink's ``datagen`` table: ``event_type`` and the ``person``, ``auction``, ``bid`` ROWs."""
    from tidal.connectors.nexmark import KINDS, UNION_COLUMNS, NexmarkUnion
    from tidal.nexmark import NexmarkConfig

    if t.get("kind") is not None:
        raise ConfigError(f"table {t.table!r}: 'kind' picks one view, but the table declares "
                          "the interleaved columns (event_type, person, auction, bid); drop "
                          "'kind', or declare the view's columns")
    extra = [c for c in t.columns if c not in UNION_COLUMNS]
    if extra:
        raise ConfigError(f"table {t.table!r}: the Nexmark table has no column(s) {extra}; its "
                          f"columns are {list(UNION_COLUMNS)}")
    fields: dict[str, list[str]] = {}
    for kind in KINDS:
        dtype = t.columns.get(kind)
        if dtype is None:
            continue
        if not isinstance(dtype, pl.Struct):
            raise ConfigError(f"table {t.table!r}: column {kind!r} must be a ROW of the "
                              f"{kind}'s fields ({', '.join(KINDS[kind])}), not {dtype}")
        fields[kind] = [f.name for f in dtype.fields]
        missing = [f for f in fields[kind] if f not in KINDS[kind]]
        if missing:
            raise ConfigError(f"table {t.table!r}: the {kind} ROW has no field(s) {missing}; "
                              f"its fields are {', '.join(KINDS[kind])}")
    return NexmarkUnion(NexmarkConfig(**_nexmark_config(t)), list(t.columns), fields,
                        dict(t.columns))


# -- files -----------------------------------------------------------------------------------
_FILE_FORMATS = {"json": "jsonl", "csv": "csv", "parquet": "parquet"}
"""Flink's ``'format'`` → the name of tidal's file source and sink."""


def _file_format(t: TableOptions) -> str:
    fmt = t.need("format", "json")
    if fmt not in _FILE_FORMATS:
        raise ConfigError(f"table {t.table!r}: 'format' = {fmt!r} is not one of "
                          f"{', '.join(_FILE_FORMATS)}")
    return _FILE_FORMATS[fmt]


def _fs_source(t: TableOptions) -> Source:
    from tidal.connectors import files

    path = t.need("path", "data/*.jsonl")
    return getattr(files, _file_format(t))(path)  # type: ignore[no-any-return]


def _fs_sink(t: TableOptions) -> Sink:
    from tidal import sinks
    from tidal.sql.filesystem import filesystem_sink, is_directory_sink

    if is_directory_sink(t):  # Flink's layout: part files, partitions, rolling, commit
        return filesystem_sink(t)
    path = t.need("path", "out.jsonl")
    return getattr(sinks, _file_format(t))(path)  # type: ignore[no-any-return]


# -- embedded log ----------------------------------------------------------------------------
def _log_source(t: TableOptions) -> Source:
    from tidal import sources

    start = t.get("scan.startup.mode", "earliest-offset") or "earliest-offset"
    return sources.log(t.need("topic", "events"), group=t.get("properties.group.id"),
                       log_dir=t.get("log-dir"), start="latest" if "latest" in start else "earliest",
                       bounded=t.flag("scan.bounded", False))


def _log_sink(t: TableOptions) -> Sink:
    from tidal import sinks

    key = t.get("key") or (t.primary_key[0] if len(t.primary_key) == 1 else None)
    return sinks.log(t.need("topic", "results"), key=key, log_dir=t.get("log-dir"))


# -- socket ----------------------------------------------------------------------------------
def _socket_source(t: TableOptions) -> Source:
    from tidal.connectors.socket import socket_text

    fmt = t.get("format", "json") or "json"
    if fmt not in ("json", "csv", "raw"):
        raise ConfigError(f"table {t.table!r}: 'format' = {fmt!r} is not one of json, csv, raw")
    if fmt == "raw" and len(t.columns) != 1:
        raise ConfigError(f"table {t.table!r}: 'format' = 'raw' gives one text column per line; "
                          f"declare exactly one column, not {len(t.columns)}")
    host = t.get("hostname") or t.get("host") or "localhost"
    source = socket_text(host, t.integer("port", 9999), listen=t.flag("listen", False),
                         format="text" if fmt == "raw" else fmt,  # type: ignore[arg-type]
                         columns=list(t.columns))
    return source


# -- simple sinks ----------------------------------------------------------------------------
def _print(t: TableOptions) -> Sink:
    from tidal.connectors.console import Console

    return Console(t.get("print-identifier", "") or "")


def _blackhole(t: TableOptions) -> Sink:
    from tidal import sinks

    return sinks.blackhole()


def _sqlite(t: TableOptions) -> Sink:
    from tidal import sinks

    return sinks.sqlite(t.need("path", "results.db"), t.get("table-name") or t.table,
                        key=t.primary_key or None)


# -- datagen ---------------------------------------------------------------------------------
class _Datagen(Source):
    """Flink's ``datagen``: ``number-of-rows`` rows; per field ``fields.<f>.kind`` =
    ``sequence`` (``start``/``end``) or ``random`` (``min``/``max``/``length``), seeded."""

    name = "datagen"

    def __init__(self, t: TableOptions) -> None:
        self.columns = t.columns
        self.rows = t.integer("number-of-rows", 0)
        self.seed = t.integer("seed", 0)
        self.fields: dict[str, dict[str, str]] = {}
        for c in t.columns:
            spec = {k.split(".", 2)[2]: t.get(k) or "" for k in t.options
                    if k.startswith(f"fields.{c}.")}
            self.fields[c] = spec
            if spec.get("kind") == "sequence" and not self.rows:
                self.rows = int(spec.get("end", "0")) - int(spec.get("start", "0")) + 1
        if not self.rows:
            raise ConfigError(f"table {t.table!r}: datagen needs 'number-of-rows' (tidal's datagen "
                              "is bounded)")

    def make(self, start: int, n: int) -> pl.DataFrame:
        idx = np.arange(start, start + n, dtype=np.int64)
        cols = {}
        for c, dtype in self.columns.items():
            spec = self.fields[c]
            # crc32, not hash(): str hashes change from one process to the next
            rng = np.random.default_rng([self.seed, zlib.crc32(c.encode()) & 0xFFFF, start])
            if spec.get("kind") == "sequence":
                values: Any = idx + int(spec.get("start", "0"))
            elif dtype == pl.String:
                length = int(spec.get("length", "10"))
                letters = rng.integers(97, 123, size=(n, length), dtype=np.uint8)
                values = [bytes(r).decode() for r in letters]
            elif isinstance(dtype, pl.Datetime):
                values = pl.Series(idx).cast(pl.Datetime("ms"))
            elif dtype.is_float():
                values = rng.uniform(float(spec.get("min", 0)), float(spec.get("max", 1)), n)
            elif dtype == pl.Boolean:
                values = rng.integers(0, 2, n).astype(bool)
            else:
                values = rng.integers(int(spec.get("min", 0)), int(spec.get("max", 1000)) + 1, n)
            cols[c] = pl.Series(c, values).cast(dtype)
        return pl.DataFrame(cols)

    def partitions(self) -> list[str]:
        return ["0"]

    def open(self, partition: str, position: Any, ctx: Any) -> Any:
        from tidal.connectors.base import SourcePartition

        src, first = self, int(position or 0)

        class Part(SourcePartition):
            k = first  # (a class body cannot see `position`: the method below shadows it)

            def poll(self, max_rows: int) -> pl.DataFrame | None:
                n = min(max_rows, src.rows - self.k)
                if n <= 0:
                    return None
                out = src.make(self.k, n)
                self.k += n
                return out

            @property
            def done(self) -> bool:
                return self.k >= src.rows

            def position(self) -> int:
                return self.k

        return Part()

    def schema(self) -> pl.Schema:
        return pl.Schema(self.columns)

    @property
    def bounded(self) -> bool:
        return True


# -- external systems (Flink's option names where Flink has the connector) ------------------
def _properties(t: TableOptions) -> dict[str, str]:
    """``'properties.*'`` options, passed through to the client (SASL, TLS, ...)."""
    out = {}
    for k, v in t.options.items():
        if k.startswith("properties.") and k not in ("properties.bootstrap.servers",
                                                      "properties.group.id"):
            t.used.add(k)
            out[k.removeprefix("properties.")] = v
    return out


_KAFKA_FORMATS = {"json": "json", "csv": "csv", "raw": "text", "avro": "avro"}


def _kafka_format(t: TableOptions) -> str:
    fmt = t.get("format") or t.get("value.format") or "json"
    if fmt not in _KAFKA_FORMATS:
        raise ConfigError(f"table {t.table!r}: 'format' = {fmt!r} is not one of "
                          f"{', '.join(_KAFKA_FORMATS)}")
    return _KAFKA_FORMATS[fmt]


def _kafka_source(t: TableOptions) -> Source:
    from tidal import sources

    mode = t.get("scan.startup.mode", "group-offsets") or "group-offsets"
    start: Any = {"earliest-offset": "earliest", "latest-offset": "latest",
                  "group-offsets": "committed"}.get(mode)
    if mode == "timestamp":
        start = t.integer("scan.startup.timestamp-millis", 0)
    elif start is None:
        raise ConfigError(f"table {t.table!r}: 'scan.startup.mode' = {mode!r} is not one of "
                          "earliest-offset, latest-offset, group-offsets, timestamp")
    group = t.get("properties.group.id")
    if start == "committed" and group is None:
        start = "earliest"
    bounded = (t.get("scan.bounded.mode", "unbounded") or "unbounded") == "latest-offset"
    return sources.kafka(t.need("topic", "events").split(";"),
                         bootstrap_servers=t.need("properties.bootstrap.servers", "localhost:9092"),
                         group=group, start=start, format=_kafka_format(t),  # type: ignore[arg-type]
                         schema=dict(t.columns) if _kafka_format(t) == "csv" else None,
                         bounded=bounded, properties=_properties(t))


def _kafka_sink(t: TableOptions) -> Sink:
    from tidal import sinks

    guarantee = t.get("sink.delivery-guarantee", "exactly-once") or "exactly-once"
    if guarantee not in ("exactly-once", "at-least-once"):
        raise ConfigError(f"table {t.table!r}: 'sink.delivery-guarantee' must be "
                          "'exactly-once' or 'at-least-once'")
    key = t.get("key.fields") or (t.primary_key[0] if len(t.primary_key) == 1 else None)
    return sinks.kafka(t.need("topic", "results"),
                       bootstrap_servers=t.need("properties.bootstrap.servers", "localhost:9092"),
                       key=key, format=_kafka_format(t),  # type: ignore[arg-type]
                       properties=_properties(t), delivery=guarantee)  # type: ignore[arg-type]


def _mqtt_source(t: TableOptions) -> Source:
    from tidal import sources

    return sources.mqtt(t.need("topic", "sensors/#").split(";"), host=t.get("host", "localhost") or "localhost",
                        port=t.integer("port", 1883), qos=t.integer("qos", 1),
                        client_id=t.get("client-id"), topic_columns=t.get("topic-columns"),
                        format=t.get("format", "json") or "json",  # type: ignore[arg-type]
                        username=t.get("username"), password=t.get("password"))


def _mqtt_sink(t: TableOptions) -> Sink:
    from tidal import sinks

    return sinks.mqtt(t.need("topic", "alerts/{device}"), host=t.get("host", "localhost") or "localhost",
                      port=t.integer("port", 1883), qos=t.integer("qos", 1),
                      format=t.get("format", "json") or "json",  # type: ignore[arg-type]
                      username=t.get("username"), password=t.get("password"))


def _dsn(t: TableOptions) -> str:
    url = t.need("url", "jdbc:postgresql://localhost:5432/db")
    dsn = url.removeprefix("jdbc:")
    if not dsn.startswith("postgresql://"):
        raise ConfigError(f"table {t.table!r}: only PostgreSQL URLs are supported by 'jdbc' "
                          f"('jdbc:postgresql://host:port/db'), not {url!r}")
    user, password = t.get("username"), t.get("password")
    if user:
        auth = user + (f":{password}" if password else "")
        dsn = dsn.replace("postgresql://", f"postgresql://{auth}@", 1)
    return dsn


def _jdbc_source(t: TableOptions) -> Source:
    from tidal import sources

    return sources.postgres(_dsn(t), t.get("table-name") or t.table,
                            incrementing_column=t.get("scan.incrementing-column", "id") or "id",
                            bounded=t.flag("scan.bounded", False))


def _jdbc_sink(t: TableOptions) -> Sink:
    from tidal import sinks

    return sinks.postgres(_dsn(t), t.get("table-name") or t.table, key=t.primary_key or None)


def _redis_sink(t: TableOptions) -> Sink:
    from tidal import sinks

    key = t.get("key") or (t.primary_key[0] if len(t.primary_key) == 1 else None)
    if key is None:
        raise ConfigError(f"table {t.table!r}: the redis connector needs 'key' (a column or a "
                          "template like 'card:{card}') or a one-column PRIMARY KEY")
    ttl = t.get("ttl")
    return sinks.redis(t.get("url", "redis://localhost:6379/0") or "redis://localhost:6379/0",
                       key, mode=t.get("mode", "hash") or "hash",  # type: ignore[arg-type]
                       ttl=ttl)


def _delta_sink(t: TableOptions) -> Sink:
    from tidal import sinks

    parts = t.get("partition-by")
    return sinks.delta(t.need("path", "lake/events"), partition_by=parts.split(",") if parts else None)


register(Connector("kafka", source=_kafka_source, sink=_kafka_sink))
register(Connector("upsert-kafka", source=_kafka_source, sink=_kafka_sink, upsert=True))
register(Connector("mqtt", source=_mqtt_source, sink=_mqtt_sink))
register(Connector("jdbc", source=_jdbc_source, sink=_jdbc_sink, upsert=True))
register(Connector("redis", sink=_redis_sink, upsert=True))
register(Connector("delta", sink=_delta_sink))
register(Connector("nexmark", source=_nexmark))
register(Connector("filesystem", source=_fs_source, sink=_fs_sink))
register(Connector("log", source=_log_source, sink=_log_sink))
register(Connector("print", sink=_print, upsert=True))
register(Connector("blackhole", sink=_blackhole, upsert=True))
register(Connector("sqlite", sink=_sqlite, upsert=True))
register(Connector("datagen", source=_Datagen))
register(Connector("socket", source=_socket_source))
