"""POST /topics/{name} through a real uvicorn server, read back with tidal.log."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import socket
import time

import httpx
import orjson
import pyarrow as pa
import pytest

from tidal.log import NAME_RULE

from .conftest import raw_http, read_response

NDJSON = {"Content-Type": "application/x-ndjson"}


def rows_of(log, topic: str, partition: int = 0) -> list[dict]:
    table = log.topic(topic).read_arrow(partition, 0, max_rows=1 << 20).table
    return table.drop_columns(["offset", "partition"]).to_pylist()


def end_offsets(log, topic: str) -> list[int]:
    t = log.topic(topic)
    return [t.end_offset(p) for p in range(t.partitions)]


def ndjson(rows: list[dict]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


# -- formats ---------------------------------------------------------------------------------


def test_json_array_round_trip(server, reader):
    server.log.create_topic("orders", fsync="interval")
    rows = [{"user": "ann", "amount": 5}, {"user": "max", "amount": 7}, {"user": "ann", "amount": 9}]
    r = server.client.post("/topics/orders", json=rows)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "topic": "orders", "count": 3, "offsets": {"0": {"first": 0, "last": 2}}, "durable": True,
    }
    assert rows_of(reader, "orders") == rows
    r = server.client.post("/topics/orders", json=[{"user": "bob", "amount": 1}])
    assert r.json()["offsets"] == {"0": {"first": 3, "last": 3}}
    assert rows_of(reader, "orders")[-1] == {"user": "bob", "amount": 1}


def test_ndjson_round_trip_keeps_order_and_skips_blank_lines(server, reader):
    server.log.create_topic("events")
    rows = [{"i": i, "name": f"e{i}", "tags": {"a": i % 3}} for i in range(1000)]
    body = ndjson(rows[:500]) + b"\n  \n" + ndjson(rows[500:]).replace(b"\n", b"\r\n")
    r = server.client.post("/topics/events", content=body, headers=NDJSON)
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 1000
    assert rows_of(reader, "events") == rows


@pytest.mark.parametrize("content_type", [None, "application/json", "text/plain",
                                          "application/x-www-form-urlencoded"])
def test_ndjson_is_detected_without_its_content_type(server, reader, content_type):
    server.log.create_topic("events")
    headers = {"Content-Type": content_type} if content_type else {}
    body = b'{"a": 1}\n{"a": 2, "b": "x"}\n'
    r = server.client.post("/topics/events", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert rows_of(reader, "events") == [{"a": 1, "b": None}, {"a": 2, "b": "x"}]


def test_a_single_json_object_is_one_record(server, reader):
    server.log.create_topic("hooks")
    r = server.client.post("/topics/hooks", json={"event": "push", "n": 1})
    assert r.status_code == 200, r.text
    assert rows_of(reader, "hooks") == [{"event": "push", "n": 1}]


def test_iso_text_stays_text_unless_named_as_timestamp(server, reader):
    server.log.create_topic("events")
    body = b'{"at": "2024-01-01T00:00:00Z", "n": 1}\n'
    assert server.client.post("/topics/events", content=body).status_code == 200
    assert rows_of(reader, "events") == [{"at": "2024-01-01T00:00:00Z", "n": 1}]


def test_csv_round_trip(server, reader):
    server.log.create_topic("prices")
    body = b'symbol,price,note\nACME,12.5,"a, quoted"\nINIT,7.25,\n'
    r = server.client.post("/topics/prices", content=body, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 2
    assert rows_of(reader, "prices") == [
        {"symbol": "ACME", "price": 12.5, "note": "a, quoted"},
        {"symbol": "INIT", "price": 7.25, "note": None},
    ]


def test_empty_body_stores_nothing(server, reader):
    server.log.create_topic("events")
    r = server.client.post("/topics/events", content=b"", headers=NDJSON)
    assert r.status_code == 200, r.text
    assert r.json() == {"topic": "events", "count": 0, "offsets": {}, "durable": True}
    assert end_offsets(reader, "events") == [0]


# -- partitioning, event time, durability ----------------------------------------------------


def test_key_partitioning_matches_partition_for(server, reader):
    server.log.create_topic("orders", partitions=4)
    rows = [{"user": f"user-{i % 17}", "seq": i} for i in range(400)]
    r = server.client.post("/topics/orders?key=user", content=ndjson(rows), headers=NDJSON)
    assert r.status_code == 200, r.text
    topic = reader.topic("orders")
    offsets = r.json()["offsets"]
    seen = 0
    for p in range(4):
        stored = rows_of(reader, "orders", p)
        seen += len(stored)
        assert all(topic.partition_for(row["user"].encode()) == p for row in stored)
        assert [row["seq"] for row in stored] == sorted(row["seq"] for row in stored)
        if stored:
            assert offsets[str(p)] == {"first": 0, "last": len(stored) - 1}
    assert seen == 400 and sum(v["last"] - v["first"] + 1 for v in offsets.values()) == 400


def test_keyless_body_goes_to_one_partition_whole(server, reader):
    server.log.create_topic("clicks", partitions=3)
    r = server.client.post("/topics/clicks", json=[{"n": i} for i in range(10)])
    (p, span), = r.json()["offsets"].items()
    assert span == {"first": 0, "last": 9}
    assert [row["n"] for row in rows_of(reader, "clicks", int(p))] == list(range(10))


def test_timestamp_field_accepts_iso_text_and_epoch_ms(server, reader):
    server.log.create_topic("events")
    body = b'{"t": "2024-01-01T00:00:01.5Z", "n": 1}\n{"t": "2024-01-01 01:00:00+01:00", "n": 2}\n'
    r = server.client.post("/topics/events?timestamp=t", content=body, headers=NDJSON)
    assert r.status_code == 200, r.text
    table = reader.topic("events").read_arrow(0, 0).table
    assert table.column("t").type == pa.timestamp("ms")
    assert table.column("t").to_pylist() == [
        dt.datetime(2024, 1, 1, 0, 0, 1, 500000), dt.datetime(2024, 1, 1, 0, 0, 0)
    ]
    r = server.client.post("/topics/events?timestamp=t", json=[{"t": 1_700_000_000_000}])
    assert r.status_code == 200, r.text


def test_bad_timestamp_text_is_refused(server, reader):
    server.log.create_topic("events")
    r = server.client.post("/topics/events?timestamp=t", json=[{"t": "2024-01-01"}, {"t": "soon"}])
    assert r.status_code == 400
    assert r.json()["detail"] == (
        "timestamp field 't' of record 2 is 'soon', which is not ISO 8601; send ISO 8601 "
        "text or epoch milliseconds"
    )
    assert end_offsets(reader, "events") == [0]


@pytest.mark.parametrize(("query", "message"), [
    ("key=missing", "key field 'missing' is not in the records; their fields are ['a']"),
    ("timestamp=nope", "timestamp field 'nope' is not in the records; their fields are ['a']"),
])
def test_unknown_key_or_timestamp_field_is_refused(server, query, message):
    server.log.create_topic("events")
    r = server.client.post(f"/topics/events?{query}", json=[{"a": 1}])
    assert r.status_code == 400
    assert r.json()["detail"] == message


def test_a_key_field_that_cannot_be_hashed_is_refused(server, reader):
    server.log.create_topic("events", partitions=2)
    r = server.client.post("/topics/events?key=k", json=[{"k": {"nested": 1}}])
    assert r.status_code == 400
    assert r.json()["detail"].startswith("cannot append the records: ")
    assert end_offsets(reader, "events") == [0, 0]


def test_reserved_field_names_are_refused(server, reader):
    server.log.create_topic("events")
    r = server.client.post("/topics/events", json=[{"offset": 1, "a": 2}])
    assert r.status_code == 400
    assert "reserved" in r.json()["detail"]
    assert end_offsets(reader, "events") == [0]


@pytest.mark.parametrize(("fsync", "durable"), [("batch", True), ("interval", True),
                                                ("never", False)])
def test_durable_follows_the_fsync_policy(server, fsync, durable):
    server.log.create_topic("events", fsync=fsync, fsync_interval_ms=60_000)
    for _ in range(2):  # the second append falls inside the interval
        r = server.client.post("/topics/events", json=[{"a": 1}])
        assert r.json()["durable"] is durable
    assert not any(p.dirty for p in server.log.topic("events")._partitions) or fsync == "never"


# -- bad bodies: 400 naming the line, nothing written ----------------------------------------


@pytest.mark.parametrize(("body", "line", "message"), [
    (b'{"a": 1}\n{"a": 2}\n{"a": \n{"a": 4}\n', 3,
     "line 3 is not valid JSON: unexpected end of data at column 7"),
    (b'{"a": 1}\n\n[1, 2]\n', 3, "line 3 holds a JSON array; every line must be an object"),
    (b'{"a": 1}\n7\n', 2, "line 2 holds a JSON number; every line must be an object"),
    (b'{"a": 1}\n{"a": 2} trailing\n', 2,
     "line 2 is not valid JSON: unexpected content after document at column 10"),
    (b'{"a": 1}\n\n{"b": 1}\n{"a": "x"}\n', 4,
     "line 4: field 'a' changed from number to string (a field must keep one JSON type in "
     "all records of a body)"),
    (b'{"a": 1}\n{"a": "\xff"}\n', 2, "line 2 is not valid UTF-8 (byte 16 of the body)"),
])
def test_malformed_ndjson_names_the_line_and_writes_nothing(server, reader, body, line, message):
    server.log.create_topic("events", partitions=2)
    before = end_offsets(reader, "events")
    r = server.client.post("/topics/events", content=body, headers=NDJSON)
    assert r.status_code == 400, r.text
    assert r.json() == {"detail": message, "line": line}
    assert end_offsets(reader, "events") == before


def test_a_bad_last_line_of_a_large_body_writes_nothing(server, reader):
    server.log.create_topic("events")
    body = ndjson([{"i": i} for i in range(50_000)]) + b'{"i": oops}\n'
    r = server.client.post("/topics/events", content=body, headers=NDJSON)
    assert r.status_code == 400
    assert r.json()["line"] == 50_001
    assert end_offsets(reader, "events") == [0]


@pytest.mark.parametrize(("body", "message"), [
    (b'[{"a": 1}, 2]', "element 1 of the array is a JSON number; every element must be an object"),
    (b'[{"a": 1}, null]', "element 1 of the array is a JSON null; every element must be an object"),
    (b'"hello"', None),
    (b'[{"a": 1},\n{"a": ', "the body is not valid JSON: unexpected end of data at line 2, column 7"),
    (b'[{}, {}]', "the records have no fields; send JSON objects with at least one field"),
])
def test_non_object_json_is_refused(server, reader, body, message):
    server.log.create_topic("events")
    r = server.client.post("/topics/events", content=body,
                           headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 415), r.text
    if message is not None:
        assert r.json()["detail"] == message
    assert end_offsets(reader, "events") == [0]


def test_bad_csv_names_the_line(server, reader):
    server.log.create_topic("prices")
    body = b"symbol,price\nACME,1\nINIT,2,extra\n"
    r = server.client.post("/topics/prices", content=body, headers={"Content-Type": "text/csv"})
    assert r.status_code == 400
    assert r.json() == {"detail": "line 3 has 3 fields but the header line has 2", "line": 3}
    assert end_offsets(reader, "prices") == [0]


def test_unsupported_content_type_is_415(server):
    server.log.create_topic("events")
    r = server.client.post("/topics/events", content=b"<a/>",
                           headers={"Content-Type": "application/xml"})
    assert r.status_code == 415
    assert "application/xml" in r.json()["detail"]


# -- names and topics ------------------------------------------------------------------------


def test_unknown_topic_is_404_with_a_hint(server):
    r = server.client.post("/topics/nope", json=[{"a": 1}])
    assert r.status_code == 404
    assert r.json()["detail"] == (
        "topic 'nope' does not exist; create it with `tidal topics create nope`"
    )
    assert server.client.get("/topics/nope").status_code == 404


@pytest.mark.parametrize(("path", "name"), [
    ("/topics/../x", "../x"),
    ("/topics/..%2Fx", "../x"),
    ("/topics/a%2Fb", "a/b"),
    ("/topics/a/b", "a/b"),
    ("/topics/..", ".."),
    ("/topics/.hidden", ".hidden"),
    ("/topics/%2Fetc%2Fpasswd", "/etc/passwd"),
    ("/topics/a%00b", "a\x00b"),
    ("/topics/", ""),
])
def test_bad_names_are_400_and_reach_nothing(server, log_dir, path, name):
    server.log.create_topic("x")
    before = sorted(p for p in log_dir.parent.rglob("*"))
    for method in ("POST", "GET"):
        request = (f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                   f"Content-Length: 9\r\nConnection: close\r\n\r\n" + '{"a": 1}\n').encode()
        status, body = raw_http(server.port, request)
        assert status == 400, (method, path, body)
        assert json.loads(body)["detail"] == f"invalid topic name {name!r}: {NAME_RULE}"
    assert sorted(p for p in log_dir.parent.rglob("*")) == before


def test_list_and_describe_topics(server):
    server.log.create_topic("b-topic", partitions=2)
    server.log.create_topic("a.topic")
    server.client.post("/topics/b-topic?key=k", json=[{"k": "x"}, {"k": "y"}, {"k": "z"}])
    assert server.client.get("/topics").json() == {"topics": ["a.topic", "b-topic"]}
    d = server.client.get("/topics/b-topic").json()
    assert d["name"] == "b-topic"
    assert d["settings"]["partitions"] == 2
    assert sum(p["end_offset"] for p in d["partitions"]) == 3
    assert d["groups"] == []
    assert server.client.get("/healthz").json() == {"status": "ok"}


# -- body size limits ------------------------------------------------------------------------


def test_body_at_the_limit_is_accepted(start_server, reader):
    body = b'{"pad": "' + b"x" * 1000 + b'"}\n'
    srv = start_server(max_body_bytes=len(body))
    srv.log.create_topic("events")
    assert srv.client.post("/topics/events", content=body, headers=NDJSON).status_code == 200
    r = srv.client.post("/topics/events", content=body + b"\n", headers=NDJSON)
    assert r.status_code == 413
    assert r.json()["detail"].startswith(f"request body of {len(body) + 1:,} bytes")


def test_content_length_over_the_limit_is_413_before_the_body_is_sent(start_server, reader):
    srv = start_server(max_body_bytes=1 << 20)
    srv.log.create_topic("events")
    # Announce a terabyte and send none of it: the answer must come from the headers alone.
    request = (b"POST /topics/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-ndjson\r\n"
               b"Content-Length: 1000000000000\r\n\r\n")
    status, body = raw_http(srv.port, request, timeout=5)
    assert status == 413
    assert json.loads(body)["detail"] == (
        "request body of 1,000,000,000,000 bytes (Content-Length) exceeds the limit of "
        "1,048,576 bytes; send smaller bodies (or start the server with a larger max_body_bytes)"
    )
    assert end_offsets(reader, "events") == [0]


def test_chunked_body_over_the_limit_is_413(start_server, reader):
    srv = start_server(max_body_bytes=100_000)
    srv.log.create_topic("events")
    line = b'{"pad": "' + b"x" * 990 + b'"}\n'

    def chunks():
        for _ in range(200):
            yield line * 10

    r = srv.client.post("/topics/events", content=chunks(), headers=NDJSON)
    assert r.status_code == 413
    assert r.json()["detail"].startswith("request body exceeds the limit of 100,000 bytes")
    assert end_offsets(reader, "events") == [0]


def test_chunked_body_is_cut_off_while_it_streams(start_server, reader):
    srv = start_server(max_body_bytes=100_000)
    srv.log.create_topic("events")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"POST /topics/events HTTP/1.1\r\nHost: t\r\n"
                     b"Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b'{"pad": "' + b"x" * 9990 + b'"}\n'
        for _ in range(11):  # 110,000 bytes, then the client stalls without ending the body
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        status, body = read_response(sock)
    assert status == 413
    assert end_offsets(reader, "events") == [0]


# -- idempotency -----------------------------------------------------------------------------


def test_same_idempotency_key_stores_once(server, reader):
    server.log.create_topic("orders", partitions=3)
    headers = {**NDJSON, "Idempotency-Key": "order-batch-1"}
    body = ndjson([{"user": u, "n": i} for i, u in enumerate("abcabc")])
    first = server.client.post("/topics/orders?key=user", content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    ends = end_offsets(reader, "orders")
    again = server.client.post("/topics/orders?key=user", content=body, headers=headers)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert end_offsets(reader, "orders") == ends == [sum(1 for u in "abcabc"
                                                         if reader.topic("orders").partition_for(u.encode()) == p)
                                                     for p in range(3)]


def test_idempotency_key_reused_for_other_data_is_422(server, reader):
    server.log.create_topic("orders")
    headers = {"Idempotency-Key": "k1"}
    assert server.client.post("/topics/orders", json=[{"a": 1}], headers=headers).status_code == 200
    r = server.client.post("/topics/orders", json=[{"a": 2}], headers=headers)
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "Idempotency-Key 'k1' was already used for a different request to topic 'orders'; "
        "use a new key for new data"
    )
    r = server.client.post("/topics/orders?key=a", json=[{"a": 1}], headers=headers)
    assert r.status_code == 422  # same body, different partitioning: a different request
    assert end_offsets(reader, "orders") == [1]


def test_idempotency_keys_are_per_topic(server, reader):
    server.log.create_topic("a")
    server.log.create_topic("b")
    headers = {"Idempotency-Key": "same"}
    for name in ("a", "b"):
        r = server.client.post(f"/topics/{name}", json=[{"x": 1}], headers=headers)
        assert r.status_code == 200 and "idempotent-replayed" not in r.headers
    assert end_offsets(reader, "a") == end_offsets(reader, "b") == [1]


def test_concurrent_retries_with_one_key_store_once(server, reader):
    server.log.create_topic("orders")
    body = ndjson([{"n": i} for i in range(1000)])

    def post(_: int) -> dict:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            r = c.post("/topics/orders", content=body, headers={"Idempotency-Key": "burst"})
            assert r.status_code == 200, r.text
            return r.json()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    assert all(a == answers[0] for a in answers)
    assert end_offsets(reader, "orders") == [1000]


def test_idempotency_survives_a_restart(start_server, reader):
    srv = start_server()
    srv.log.create_topic("orders")
    headers = {"Idempotency-Key": "2024-06-01/batch-7"}
    first = srv.client.post("/topics/orders", json=[{"n": 1}, {"n": 2}], headers=headers).json()
    srv.stop()
    srv = start_server()
    r = srv.client.post("/topics/orders", json=[{"n": 1}, {"n": 2}], headers=headers)
    assert r.json() == first and r.headers["idempotent-replayed"] == "true"
    assert end_offsets(reader, "orders") == [2]


@pytest.mark.parametrize("key", ["", "has space", "é", "x" * 256])
def test_bad_idempotency_keys_are_refused(server, key):
    server.log.create_topic("orders")
    r = server.client.post("/topics/orders", json=[{"n": 1}],
                           headers={"Idempotency-Key": key.encode()})
    assert r.status_code == 400
    assert r.json()["detail"] == "Idempotency-Key must be 1 to 255 visible ASCII characters"


def test_idempotency_store_is_bounded(tmp_path, monkeypatch):
    from tidal.serve import _idempotency

    store = _idempotency.IdempotencyStore(tmp_path / "i.sqlite3", ttl_ms=1000, max_entries=50)
    for i in range(1000):
        store.put("t", f"k{i}", "f", {"i": i})
        assert len(store) <= 50 + _idempotency._PRUNE_EVERY  # pruned now and then
    assert store.get("t", "k999").response == {"i": 999}
    now = time.time_ns() // 1_000_000
    monkeypatch.setattr(_idempotency, "_now_ms", lambda: now + 2000)
    assert store.get("t", "k999") is None  # expired: never answered again
    store.close()


# -- token -----------------------------------------------------------------------------------


def test_token_is_required_except_on_health(start_server, caplog):
    srv = start_server(token="s3cret")
    srv.log.create_topic("orders")
    assert srv.client.get("/healthz").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
        r = srv.client.post("/topics/orders", json=[{"a": 1}], headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"] == "Bearer"
        assert srv.client.get("/topics", headers=headers).status_code == 401
    ok = {"Authorization": "Bearer s3cret"}
    assert srv.client.post("/topics/orders", json=[{"a": 1}], headers=ok).status_code == 200
    assert srv.client.get("/topics", headers=ok).json() == {"topics": ["orders"]}
    assert any("refused POST /topics/orders" in m for m in caplog.messages)
    assert srv.client.get("/openapi.json").status_code == 401
    paths = srv.client.get("/openapi.json", headers=ok).json()["paths"]
    assert {"/healthz", "/topics", "/topics/{name}"} <= set(paths)
