"""Root conftest: eventlet's monkey patch first, then the broker and PostgreSQL fixtures."""

# ruff: noqa: E402
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # eventlet warns on import that it is deprecated
    import eventlet

# nameko 2.14's pytest plugin no longer patches: it must happen before anything imports socket.
eventlet.monkey_patch()

import uuid
from collections.abc import Iterator

import pytest

from shared.tools.broker import LocalRabbit, free_port
from shared.tools.brokerauth import GRANTS, Grant
from tests.support.postgres import TempPostgres

# The tests' own broker user, with every right: for test harness work only (purging a queue,
# publishing a stray event, relays under made-up service names). Services under test log in as
# themselves, through `broker_uris`.
TEST_ADMIN = "test-admin"


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRabbit]:
    """A RabbitMQ node of the session's own, with the platform's users (and the test admin).

    Always our own node, never an outside AMQP_URI: the tests need the per-service users."""
    port = free_port()
    node = LocalRabbit(
        tmp_path_factory.mktemp("rabbit"), port, f"grassroots-test-{port}", dist_port=free_port(),
        grants={**GRANTS, TEST_ADMIN: Grant(".*", ".*", ".*")}, login=TEST_ADMIN,
    )
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def amqp_uri(rabbit: LocalRabbit) -> str:
    """The test admin's URI (every right): for the harness, not for services under test."""
    return rabbit.uri


@pytest.fixture(scope="session")
def broker_uris(rabbit: LocalRabbit) -> dict[str, str]:
    """user -> URI for each user the platform has (gateway, visits, compliance, operator)."""
    return {user: uri for user, uri in rabbit.uris.items() if user in GRANTS}


@pytest.fixture(scope="session")
def postgres() -> Iterator[TempPostgres]:
    with TempPostgres() as server:
        yield server


@pytest.fixture
def pg_url(postgres: TempPostgres) -> str:
    """A fresh, empty database for each test."""
    return postgres.create_database(f"t_{uuid.uuid4().hex[:16]}")
