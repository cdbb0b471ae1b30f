"""Redis sink against a real server (see conftest.py)."""

from __future__ import annotations

import time
from datetime import datetime

import orjson
import pytest
import redis

import tidal as td
from tidal.errors import SinkError

ROWS = [
    {"card": "c1", "total": 10.0, "n": 1, "seen": datetime(2026, 1, 1, 12), "tags": ["a"]},
    {"card": "c2", "total": 5.0, "n": 1, "seen": datetime(2026, 1, 1, 12), "tags": None},
    {"card": "c1", "total": 12.5, "n": 2, "seen": datetime(2026, 1, 1, 13), "tags": ["a", "b"]},
]


def run(sink: td.sinks.Sink, rows: list[dict] = ROWS, batch: int = 2) -> None:
    flow = td.Flow("redis")
    flow.source(td.sources.memory(rows)).sink(sink)
    flow.run(quiet=True, max_batch_rows=batch)


def test_hash_keeps_the_latest_fields_per_key_with_a_ttl(redis_url: str, uid: str) -> None:
    run(td.sinks.redis(redis_url, key=uid + ":card:{card}", mode="hash", ttl="1h"))
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert r.hgetall(f"{uid}:card:c1") == {"card": "c1", "total": "12.5", "n": "2",
                                           "seen": "2026-01-01T13:00:00.000000", "tags": '["a","b"]'}
    assert r.hgetall(f"{uid}:card:c2") == {"card": "c2", "total": "5.0", "n": "1",
                                           "seen": "2026-01-01T12:00:00.000000"}
    assert 3_500_000 < r.pttl(f"{uid}:card:c1") <= 3_600_000
    # a later null removes the stale field: the hash is the latest row
    run(td.sinks.redis(redis_url, key=uid + ":card:{card}"), [{"card": "c1", "total": None, "n": 3}])
    assert r.hgetall(f"{uid}:card:c1") == {"card": "c1", "n": "3", "seen": "2026-01-01T13:00:00.000000",
                                           "tags": '["a","b"]'}


def test_string_holds_the_latest_row_as_json(redis_url: str, uid: str) -> None:
    rows = [{**row, "card": f"{uid}-{row['card']}"} for row in ROWS]
    run(td.sinks.redis(redis_url, key="card", mode="string", ttl=60), rows, batch=1)
    r = redis.Redis.from_url(redis_url)
    assert orjson.loads(r.get(f"{uid}-c1")) == {"card": f"{uid}-c1", "total": 12.5, "n": 2,
                                                "seen": "2026-01-01T13:00:00.000000",
                                                "tags": ["a", "b"]}
    assert 0 < r.pttl(f"{uid}-c2") <= 60


def test_stream_appends_every_row(redis_url: str, uid: str) -> None:
    run(td.sinks.redis(redis_url, key=f"{uid}:events", mode="stream", ttl="10m", maxlen=1000))
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    entries = r.xrange(f"{uid}:events")
    assert [fields for _, fields in entries] == [
        {"card": "c1", "total": "10.0", "n": "1", "seen": "2026-01-01T12:00:00.000000", "tags": '["a"]'},
        {"card": "c2", "total": "5.0", "n": "1", "seen": "2026-01-01T12:00:00.000000"},
        {"card": "c1", "total": "12.5", "n": "2", "seen": "2026-01-01T13:00:00.000000",
         "tags": '["a","b"]'},
    ]
    assert 0 < r.ttl(f"{uid}:events") <= 600


def test_a_wrong_address_fails_fast_naming_it(unused_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(SinkError, match=f"Redis at 127.0.0.1:{unused_port}/0"):
        run(td.sinks.redis(f"redis://127.0.0.1:{unused_port}/0", key="card", connect_timeout=3))
    assert time.monotonic() - started < 5


def test_a_key_naming_no_column_is_a_clear_error(redis_url: str) -> None:
    with pytest.raises(SinkError, match="key 'missing' names a column the rows do not have"):
        run(td.sinks.redis(redis_url, key="missing"))
