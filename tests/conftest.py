"""Root conftest: eventlet's monkey patch first, then the broker and PostgreSQL fixtures."""

# ruff: noqa: E402
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # eventlet warns on import that it is deprecated
    import eventlet

# nameko 2.14's pytest plugin no longer patches: it must happen before anything imports socket.
eventlet.monkey_patch()

import os
import uuid
from collections.abc import Iterator

import pytest

from shared.broker import LocalRabbit, amqp_answers, free_port
from tests.support.postgres import TempPostgres


@pytest.fixture(scope="session")
def amqp_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """AMQP_URI when it answers, else a RabbitMQ node of the session's own."""
    uri = os.environ.get("AMQP_URI")
    if uri and amqp_answers(uri):
        yield uri
        return
    port = free_port()
    node = LocalRabbit(
        tmp_path_factory.mktemp("rabbit"), port, f"grassroots-test-{port}", dist_port=free_port()
    )
    node.start()
    try:
        yield node.uri
    finally:
        node.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[TempPostgres]:
    with TempPostgres() as server:
        yield server


@pytest.fixture
def pg_url(postgres: TempPostgres) -> str:
    """A fresh, empty database for each test."""
    return postgres.create_database(f"t_{uuid.uuid4().hex[:16]}")
