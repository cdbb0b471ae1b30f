"""Redis, where apps read results from a cache: the latest value per key (a hash, or a JSON
string) with an optional TTL, or entries appended to a stream.

Each batch is sent in one pipeline (one round trip). Keys come from a column
(``key="card"``) or a template over the columns (``key="card:{card}"``), built for the
whole batch at once; for ``mode="stream"`` a key without ``{...}`` is the stream's name
(``key="events"``). Rows of an updating result that delete their key (``__delete``,
:mod:`tidal.operators.changelog`) ``DEL`` it in ``hash`` and ``string`` modes.

Delivery is **at-least-once**: after a crash and recovery the rows since the last
checkpoint are written again. For ``hash`` and ``string`` that is harmless, since writing
a key's latest value twice leaves the same value (idempotent); a ``stream`` receives
those entries twice.
"""

from __future__ import annotations

from typing import Any, Literal

import polars as pl

from tidal.connectors.base import Sink, SinkContext
from tidal.connectors.mqtt import json_payloads, json_text, template_expr
from tidal.errors import ConfigError, SinkError
from tidal.operators.changelog import DELETE

__all__ = ["RedisSink"]

Mode = Literal["hash", "string", "stream"]
_MODES = ("hash", "string", "stream")


def _redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigError("the Redis connector needs redis-py: pip install 'tidal[redis]'") from exc
    return redis


def _address(url: str) -> str:
    """``host:port/db`` of a Redis URL, for messages (never the password)."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    return f"{u.hostname or 'localhost'}:{u.port or 6379}{u.path or ''}"


def _as_text(batch: pl.DataFrame) -> pl.DataFrame:
    """Every column as text (nested values as JSON, datetimes as ISO 8601), column-wise."""
    out = []
    for c, t in batch.schema.items():
        if t.is_nested():
            out.append(json_text(c))
        elif isinstance(t, pl.Datetime) and t.time_zone is None:
            out.append(pl.col(c).dt.to_string("iso:strict"))
        elif t == pl.Binary:
            out.append(pl.col(c))
        else:
            out.append(pl.col(c).cast(pl.String))
    return batch.select(out)


class RedisSink(Sink):
    """Writes rows to Redis; see the module docstring and :func:`tidal.sinks.redis`."""

    name = "redis"

    def __init__(self, url: str, key: str, mode: Mode, ttl: str | int | float | None,
                 maxlen: int | None, connect_timeout: float) -> None:
        if mode not in _MODES:
            raise ConfigError(f"redis sink mode must be one of {', '.join(_MODES)}, not {mode!r}")
        if not key:
            raise ConfigError("redis sink needs key=: a column, or a template like 'card:{card}'")
        self.url, self.key, self.mode = url, key, mode
        self.ttl_ms: int | None = None
        if ttl is not None:
            from tidal._time import duration_ms

            self.ttl_ms = duration_ms(ttl, "ttl")
            if self.ttl_ms <= 0:
                raise ConfigError(f"redis sink ttl must be positive, not {ttl!r}")
        self.maxlen = maxlen
        self.connect_timeout = connect_timeout
        template = template_expr(key)
        self.key_columns: list[str] = []
        if template is not None:
            self.key_expr = template
        elif mode == "stream":  # a stream is usually one fixed name: "events"
            self.key_expr = pl.lit(key, pl.String)
        else:
            self.key_expr = pl.col(key).cast(pl.String)
            self.key_columns = [key]
        self.client: Any = None

    def open(self, ctx: SinkContext) -> None:
        redis = _redis()
        self.client = redis.Redis.from_url(self.url, socket_connect_timeout=self.connect_timeout,
                                           socket_timeout=max(self.connect_timeout, 30))
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise SinkError(f"sink {ctx.sink!r} cannot connect to Redis at {_address(self.url)}: "
                            f"{exc}; check the URL and that the server is running") from exc

    def write(self, batch: pl.DataFrame) -> None:
        if batch.height == 0:
            return
        try:
            keys = batch.with_columns(self.key_expr.alias("__key"))["__key"]
        except pl.exceptions.ColumnNotFoundError as exc:
            raise SinkError(f"redis sink: key {self.key!r} names a column the rows do not have "
                            f"({batch.columns})") from exc
        if keys.null_count():
            raise SinkError(f"redis sink: {keys.null_count()} row(s) have no key ({self.key!r} "
                            "is null)")
        pipe = self.client.pipeline(transaction=False)
        if DELETE in batch.columns and self.mode != "stream":
            # an updating result's deleted keys: DEL them; the other rows are upserts
            framed = batch.with_columns(keys.alias("__key")).unique("__key", keep="last",
                                                                    maintain_order=True)
            gone = framed.get_column(DELETE).fill_null(False)
            for k in framed.filter(gone).get_column("__key").to_list():
                pipe.delete(k)
            framed = framed.filter(~gone)
            batch, keys = framed.drop("__key", DELETE), framed.get_column("__key")
        if self.mode == "string":
            self._strings(pipe, batch, keys)
        elif self.mode == "hash":
            self._hashes(pipe, batch, keys)
        else:
            self._streams(pipe, batch, keys)
        redis = _redis()
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise SinkError(f"redis sink at {_address(self.url)}: {exc}") from exc

    def _latest(self, batch: pl.DataFrame, keys: pl.Series) -> tuple[pl.DataFrame, list[str]]:
        """One row per key, the last one (what the key holds after the batch)."""
        framed = batch.with_columns(keys.alias("__key")).unique("__key", keep="last", maintain_order=True)
        return framed.drop("__key"), framed["__key"].to_list()

    def _strings(self, pipe: Any, batch: pl.DataFrame, keys: pl.Series) -> None:
        batch, names = self._latest(batch, keys)
        for k, v in zip(names, json_payloads(batch), strict=True):
            pipe.set(k, v, px=self.ttl_ms)

    def _hashes(self, pipe: Any, batch: pl.DataFrame, keys: pl.Series) -> None:
        batch, names = self._latest(batch, keys)
        fields = [c for c in batch.columns if c not in self.key_columns] or batch.columns
        text = _as_text(batch.select(fields))
        for k, row in zip(names, text.iter_rows(), strict=True):
            mapping = {f: v for f, v in zip(fields, row, strict=True) if v is not None}
            gone = [f for f, v in zip(fields, row, strict=True) if v is None]
            if mapping:
                pipe.hset(k, mapping=mapping)
            if gone:
                pipe.hdel(k, *gone)  # a null is the latest value: drop the stale field
            if self.ttl_ms is not None:
                pipe.pexpire(k, self.ttl_ms)

    def _streams(self, pipe: Any, batch: pl.DataFrame, keys: pl.Series) -> None:
        fields = batch.columns
        text = _as_text(batch)
        names = keys.to_list()
        for k, row in zip(names, text.iter_rows(), strict=True):
            entry = {f: v for f, v in zip(fields, row, strict=True) if v is not None}
            pipe.xadd(k, entry or {"": ""}, maxlen=self.maxlen, approximate=self.maxlen is not None)
        if self.ttl_ms is not None:
            for k in set(names):
                pipe.pexpire(k, self.ttl_ms)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
