"""Fixtures for the HTTP server tests: a real uvicorn server on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

import tidal.log
from tidal.serve import create_app

SRC = Path(__file__).resolve().parents[2] / "src"
START_TIMEOUT_S = 30


@dataclass
class RunningServer:
    """A uvicorn server running ``create_app`` in a thread, and the log it writes to."""

    url: str
    port: int
    log: tidal.log.Log
    server: uvicorn.Server
    thread: threading.Thread
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.log.close()


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    with free_socket() as sock:
        return sock.getsockname()[1]


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def start_server(log_dir: Path) -> Iterator[Any]:
    """``start(**create_app_options)`` runs a server over ``log_dir``; all stop at the end."""
    running: list[RunningServer] = []

    def start(**options: Any) -> RunningServer:
        log = tidal.log.open(log_dir)
        app = create_app(log, **options)
        sock = free_socket()
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        srv = RunningServer(f"http://127.0.0.1:{port}", port, log, server, thread)
        running.append(srv)
        return srv

    yield start
    for srv in running:
        if srv.thread.is_alive():
            srv.stop()


@pytest.fixture
def server(start_server: Any) -> RunningServer:
    """A server with default options."""
    return start_server()


@pytest.fixture
def reader(log_dir: Path) -> Iterator[tidal.log.Log]:
    """A second handle on the server's log folder, as another process would read it."""
    log = tidal.log.open(log_dir)
    yield log
    log.close()


@dataclass
class ServeProcess:
    """``tidal.serve.serve`` running in a child process."""

    proc: subprocess.Popen[bytes]
    url: str
    output: Path

    def stop(self, timeout: float = 30) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout)


@pytest.fixture
def serve_process(log_dir: Path, tmp_path: Path) -> Iterator[Any]:
    """``spawn(**serve_options)`` runs ``serve(...)`` in a subprocess and waits for /healthz."""
    procs: list[ServeProcess] = []

    def spawn(**options: Any) -> ServeProcess:
        port = free_port()
        args = {"port": port, "log_dir": str(log_dir), **options}
        code = f"from tidal.serve import serve; serve(**{args!r})"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
        output = tmp_path / f"serve-{len(procs)}.log"
        with output.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-c", code], stdout=out,
                                    stderr=subprocess.STDOUT, env=env)
        sp = ServeProcess(proc, f"http://127.0.0.1:{port}", output)
        procs.append(sp)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve() exited with {proc.returncode}:\n{output.read_text()}")
            try:
                if httpx.get(f"{sp.url}/healthz", timeout=1).status_code == 200:
                    return sp
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve() did not start:\n{output.read_text()}")
            time.sleep(0.05)

    yield spawn
    for sp in procs:
        if sp.proc.poll() is None:
            sp.proc.kill()
            sp.proc.wait()


def raw_http(port: int, request: bytes, *, timeout: float = 10) -> tuple[int, bytes]:
    """Send raw bytes to the server; return the status code and body of the reply.

    For requests no well-behaved client sends: unnormalized paths, a Content-Length whose
    body never comes, a chunked body cut off.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a full response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body
