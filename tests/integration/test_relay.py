"""The relay on a real RabbitMQ: the log is the outbox, published in order with confirms.

Each test publishes under a service name of its own, so its exchange and queues are its own.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import eventlet
import kombu
import msgspec
import pytest
import sqlalchemy as sa
from amqp.exceptions import ChannelError, MessageNacked
from kombu.message import Message
from nameko.containers import ServiceContainer
from nameko.testing.utils import get_extension
from sqlalchemy import func, select

import shared.runtime.relay
from shared.eventlog import EventLog, NewEvent
from shared.eventlog.storage import make_engine
from shared.runtime.providers import EventStore, log_status
from shared.runtime.relay import Checkpoints, Relay, drain, event_exchange, relay_checkpoints
from shared.tools.broker import free_port

RESIDENT = {"name": "Wang Fang", "phone": "13900000001", "address": "12 Lane"}


@pytest.fixture
def service() -> str:
    return f"relaytest{uuid.uuid4().hex[:12]}"


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'log.db'}"


@pytest.fixture
def broker(amqp_uri: str) -> Iterator[kombu.Connection]:
    with kombu.Connection(amqp_uri) as conn:
        yield conn


class Bound:
    """A durable queue bound to a service's topic exchange, read with basic.get."""

    def __init__(self, conn: kombu.Connection, service: str, routing_key: str,
                 **arguments: Any) -> None:
        self.channel = conn.channel()
        exchange = event_exchange(service)
        exchange(self.channel).declare()
        self.queue = kombu.Queue(
            f"{service}.{routing_key}.{uuid.uuid4().hex[:6]}", exchange, routing_key=routing_key,
            durable=True, auto_delete=False, queue_arguments=arguments or None,
        )(self.channel)
        self.queue.declare()

    def take(self, count: int, timeout: float = 5.0) -> list[Message]:
        """Exactly `count` messages (acked), failing if fewer arrive in time."""
        got: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            message = self.queue.get(no_ack=False)
            if message is None:
                assert time.monotonic() < deadline, f"only {len(got)} of {count} arrived"
                time.sleep(0.02)
                continue
            message.ack()
            got.append(message)
        return got

    def rest(self, settle: float = 0.3) -> list[Message]:
        """Whatever else is in the queue after a moment (should be nothing)."""
        time.sleep(settle)
        extra = []
        while (message := self.queue.get(no_ack=False)) is not None:
            message.ack()
            extra.append(message)
        return extra

    def delete(self) -> None:
        self.queue.delete()
        self.channel.close()


@pytest.fixture
def bind(broker: kombu.Connection, service: str) -> Iterator[Any]:
    made: list[Bound] = []

    def _bind(routing_key: str, **arguments: Any) -> Bound:
        made.append(Bound(broker, service, routing_key, **arguments))
        return made[-1]

    yield _bind
    for bound in made:
        bound.delete()
    channel = broker.channel()
    event_exchange(service)(channel).delete()
    channel.close()


def visit(n: int, *, resident: bool = True) -> NewEvent:
    data = {"visit_id": f"v{n}", "date": "2024-05-28",
            "target": {"kind": "household", "resident_id": f"r{n}",
                       "resident": dict(RESIDENT) if resident else None}}
    if resident:
        return NewEvent("visit.recorded", data, subject=f"r{n}", personal=("target.resident",))
    return NewEvent("visit.recorded", data)


def append_mixed(log: EventLog, start: int = 0) -> list[int]:
    """Four events of three types on several streams: positions in log order."""
    positions = []
    positions += log.append(f"unit-u{start}", [NewEvent("unit.registered",
                                                        {"unit_id": f"u{start}"})])
    positions += log.append(f"visit-v{start}", [visit(start)])
    positions += log.append(f"cadre-c{start}", [
        NewEvent("cadre.enrolled", {"cadre_id": f"c{start}"}),
        NewEvent("cadre.leave_granted", {"cadre_id": f"c{start}"}),
    ])
    return positions


def body(message: Message) -> dict[str, Any]:
    return msgspec.json.decode(message.body)


def sequences(messages: list[Message]) -> list[int]:
    return [int(body(m)["sequence"]) for m in messages]


def published_round_trip(db_url: str, amqp_uri: str, service: str, bind: Any) -> None:
    log = EventLog.open(db_url, service=service)
    everything = bind("#")
    visits_only = bind("visit.recorded")
    positions = append_mixed(log)
    relay = Relay(log, amqp_uri)
    try:
        assert relay.checkpoints.position() == 0
        assert relay.lag() == len(positions)
        assert relay.publish_pending() == len(positions)
        assert relay.checkpoints.position() == positions[-1]
        assert relay.lag() == 0
        assert relay.publish_pending() == 0
    finally:
        relay.close()

    records = list(log.read())
    messages = everything.take(len(records))
    assert everything.rest() == []
    assert sequences(messages) == [r.position for r in records]  # log order
    for message, record in zip(messages, records, strict=True):
        event = body(message)
        assert event["specversion"] == "1.0"
        assert event["id"] == record.event_id
        assert event["source"] == service
        assert event["type"] == record.type
        assert event["subject"] == record.stream
        assert event["sequence"] == str(record.position)
        assert event["hash"] == record.hash
        assert event["prevhash"] == record.prev_hash
        assert message.content_type == "application/cloudevents+json"
        assert message.properties["delivery_mode"] == 2
        assert message.delivery_info["routing_key"] == record.type
        assert message.delivery_info["exchange"] == f"{service}.events"
        assert message.decode() == event  # kombu reads it with the registered serializer

    only = visits_only.take(1)
    assert visits_only.rest() == []
    event = body(only[0])
    assert event["type"] == "visit.recorded"
    # Personal data stays in the log, encrypted; the bus carries none of it.
    assert event["data"]["target"]["resident"] is None
    assert event["data"]["target"]["resident_id"] == "r0"
    assert event["personaldata"] == "target.resident"
    assert event["datasubject"] == "r0"
    logged = next(r for r in log.read() if r.type == "visit.recorded")
    assert logged.data["target"]["resident"] == RESIDENT
    log.close()


def test_publishes_cloudevents_in_log_order_on_sqlite(db_url, amqp_uri, service, bind):
    published_round_trip(db_url, amqp_uri, service, bind)


def test_publishes_cloudevents_in_log_order_on_postgres(pg_url, amqp_uri, service, bind):
    published_round_trip(pg_url, amqp_uri, service, bind)


def test_a_new_relay_resumes_from_the_checkpoint(db_url, amqp_uri, service, bind):
    everything = bind("#")
    log = EventLog.open(db_url, service=service)
    first = append_mixed(log, 0)
    relay = Relay(log, amqp_uri)
    assert relay.publish_pending() == len(first)
    relay.close()
    log.close()
    assert sequences(everything.take(len(first))) == first

    # A restart: new objects on the same database; more was appended meanwhile.
    log = EventLog.open(db_url, service=service)
    second = append_mixed(log, 1)
    relay = Relay(log, amqp_uri, batch=3)  # smaller pages: the checkpoint moves per batch
    try:
        assert relay.checkpoints.position() == first[-1]
        drain(relay, timeout=10)
        assert relay.checkpoints.position() == second[-1]
        assert relay.publish_pending() == 0
    finally:
        relay.close()
    assert sequences(everything.take(len(second))) == second  # nothing sent twice
    assert everything.rest() == []
    assert log_status(log) == {"service": service, "last_position": second[-1],
                               "relay": {"checkpoint": second[-1], "lag": 0}}
    log.close()


def test_unreachable_broker_raises_and_keeps_the_checkpoint(db_url, amqp_uri, service, bind):
    everything = bind("#")
    log = EventLog.open(db_url, service=service)
    positions = append_mixed(log)
    dead = Relay(log, f"amqp://guest:guest@127.0.0.1:{free_port()}//")
    with pytest.raises(OSError):
        dead.publish_pending()
    assert dead.checkpoints.position() == 0
    assert dead.lag() == len(positions)
    dead.close()
    assert log_status(log)["relay"] == {"checkpoint": 0, "lag": len(positions)}

    relay = Relay(log, amqp_uri)
    try:
        assert relay.publish_pending() == len(positions)
    finally:
        relay.close()
    assert sequences(everything.take(len(positions))) == positions
    log.close()


def test_checkpoint_waits_for_the_confirm(db_url, amqp_uri, service, bind):
    """A queue that refuses messages makes the broker nack: nothing may count as published."""
    full = bind("#", **{"x-max-length": 2, "x-overflow": "reject-publish"})
    log = EventLog.open(db_url, service=service)
    positions = append_mixed(log)
    relay = Relay(log, amqp_uri)
    try:
        with pytest.raises(MessageNacked):
            relay.publish_pending()
        assert relay.checkpoints.position() == 0  # the batch was not confirmed as a whole
        full.take(2)  # the first two were accepted; make room and try again
        full.queue.purge()
        full.queue.delete()
        everything = bind("#")
        assert relay.publish_pending() == len(positions)  # at least once: a fresh connection
        assert relay.checkpoints.position() == positions[-1]
    finally:
        relay.close()
    assert sequences(everything.take(len(positions))) == positions
    log.close()


def test_one_relay_holds_the_lease(db_url, monkeypatch):
    a = Relay(EventLog.open(db_url, service="leased"), "amqp://unused//")
    b = Relay(EventLog.open(db_url, service="leased"), "amqp://unused//")
    assert a.checkpoints.acquire()
    assert not b.checkpoints.acquire()
    assert a.checkpoints.acquire()  # renewing
    assert not b.checkpoints.acquire()
    a.checkpoints.release()
    assert b.checkpoints.acquire()
    assert not a.checkpoints.acquire()

    monkeypatch.setattr(shared.runtime.relay, "LEASE", timedelta(seconds=1))
    b.checkpoints.release()
    assert b.checkpoints.acquire()  # taken again, now for a short lease
    assert not a.checkpoints.acquire()
    time.sleep(1.2)  # b stopped renewing (crashed): its lease runs out
    assert a.checkpoints.acquire()
    assert not b.checkpoints.acquire()

    # Relays of other logs in the same database have leases of their own.
    other = Checkpoints(a.log.engine, "relay:another")
    assert other.acquire()
    with a.log.engine.connect() as conn:
        owners = dict(conn.execute(relay_checkpoints.select().with_only_columns(
            relay_checkpoints.c.name, relay_checkpoints.c.owner)).all())
    assert owners == {"relay:leased": a.checkpoints.owner, "relay:another": other.owner}


def test_a_lease_is_renewed_in_the_database_once_a_third_of_it_has_passed(db_url, monkeypatch):
    """Not on every pass (a durable commit per event): the holder keeps it without asking
    while two thirds of it are left, and a rival still cannot take it meanwhile."""
    monkeypatch.setattr(shared.runtime.relay, "LEASE", timedelta(seconds=0.9))
    a = Relay(EventLog.open(db_url, service="leased"), "amqp://unused//")
    b = Relay(EventLog.open(db_url, service="leased"), "amqp://unused//")

    def until() -> object:
        with a.log.engine.connect() as conn:
            return conn.execute(relay_checkpoints.select().with_only_columns(
                relay_checkpoints.c.lease_until)).scalar_one()

    assert a.checkpoints.acquire()
    first = until()
    assert a.checkpoints.acquire() and until() == first, "held, not written again"
    assert not b.checkpoints.acquire()
    time.sleep(0.35)  # past a third of the lease
    assert a.checkpoints.acquire() and until() > first, "renewed"
    time.sleep(0.35)
    assert not b.checkpoints.acquire(), "renewed in time: never lapsed"
    a.checkpoints.release()
    assert b.checkpoints.acquire()


def test_the_lease_holder_knows_its_checkpoint_without_asking(db_url, monkeypatch):
    """A pass after every append read the checkpoint each time; the holder of the lease is
    the only one moving it, so it keeps it in memory and reads it again at each renewal."""
    monkeypatch.setattr(shared.runtime.relay, "LEASE", timedelta(seconds=0.6))
    points = Checkpoints(EventLog.open(db_url, service="leased").engine, "relay:leased")
    statements: list[str] = []
    sa.event.listen(points.engine, "before_cursor_execute", lambda *args: args[2].startswith(
        ("BEGIN", "SET", "PRAGMA")) or statements.append(args[2]))
    assert points.position() == 0 and points.position() == 0
    assert len(statements) == 2, "no lease: read each time"
    assert points.acquire()
    points.advance(3)
    assert points.position() == 3  # read once
    points.advance(4)
    statements.clear()
    assert points.position() == 4 and points.position() == 4
    assert points.acquire() and statements == [], "held: from memory"
    time.sleep(0.25)  # past a third of the lease: renewed, and read again once
    assert points.acquire() and points.position() == 4 and points.position() == 4
    assert [s.split()[0] for s in statements] == ["UPDATE", "SELECT"]
    points.release()
    statements.clear()
    assert points.position() == 4 and len(statements) == 1


def test_run_publishes_promptly_when_woken_and_stops(db_url, amqp_uri, service, bind):
    everything = bind("#")
    log = EventLog.open(db_url, service=service)
    stop = threading.Event()
    wakes = [threading.Event(), threading.Event()]
    for wake in wakes:
        log.subscribe(lambda _position, wake=wake: wake.set())

    def waiter(wake: threading.Event) -> Any:
        def wait(seconds: float) -> None:
            wake.wait(seconds)
            wake.clear()

        return wait

    relays = [Relay(log, amqp_uri), Relay(EventLog.open(db_url, service=service), amqp_uri)]
    threads = [
        threading.Thread(target=r.run, args=(stop.is_set, waiter(w)), kwargs={"poll_interval": 60})
        for r, w in zip(relays, wakes, strict=True)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)  # both are idle, one holding the lease
        started = time.monotonic()
        positions = append_mixed(log)
        messages = everything.take(len(positions), timeout=5)
        assert time.monotonic() - started < 3  # woken, not the 60 s poll
        assert sequences(messages) == positions
        more = append_mixed(log, 1)
        assert sequences(everything.take(len(more), timeout=5)) == more
        assert everything.rest() == []  # two relays, one lease: nothing twice
    finally:
        stop.set()
        for wake in wakes:
            wake.set()
        for thread in threads:
            thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads)
    assert relays[0].checkpoints.position() == more[-1]
    with log.engine.connect() as conn:
        row = conn.execute(relay_checkpoints.select()).one()
    assert row.owner is None and row.lease_until is None  # released on stop
    log.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_stopped_service_hands_its_lease_over(backend, request, amqp_uri, service, bind):
    """The relay inside a nameko service (EventStore): publishes on append, and a clean stop
    releases the lease so that a restarted service publishes at once, not after it expires."""
    everything = bind("#")
    db_url = request.getfixturevalue("db_url" if backend == "sqlite" else "pg_url")
    config = {"AMQP_URI": amqp_uri, "DATABASE_URL": db_url, "RELAY_POLL_SECONDS": 60}
    published: list[int] = []
    for generation in range(2):
        container = ServiceContainer(type("Publisher", (), {"name": service,
                                                            "log": EventStore()}), config)
        container.start()
        try:
            store = get_extension(container, EventStore)
            started = time.monotonic()
            positions = append_mixed(store.log, generation)
            assert sequences(everything.take(len(positions), timeout=8)) == positions
            assert time.monotonic() - started < 3
            published += positions
        finally:
            container.stop()
        with store.log.engine.connect() as conn:
            row = conn.execute(relay_checkpoints.select()).one()
        assert (row.position, row.owner) == (published[-1], None)
        store.log.close()
    assert everything.rest() == []


def test_a_failed_set_up_leaves_no_connection_open(db_url, amqp_uri, service, broker):
    """The exchange exists with another type: the relay's declare fails on every pass, and
    each pass must close what it opened (the run loop retries for as long as it lasts)."""
    wrong = kombu.Exchange(f"{service}.events", type="fanout", durable=True)
    channel = broker.channel()
    wrong(channel).declare()
    log = EventLog.open(db_url, service=service)
    positions = append_mixed(log)
    relay = Relay(log, amqp_uri)
    try:
        for _ in range(2):
            with pytest.raises(ChannelError, match="PRECONDITION_FAILED"):
                relay.publish_pending()
            assert relay._connection is None  # closed, not left for the next pass to replace
            assert relay.checkpoints.position() == 0
    finally:
        relay.close()
        wrong(channel).delete()
        channel.close()
    assert log.last_position() == positions[-1]
    log.close()


def test_replicas_opening_a_fresh_database_at_once(pg_url):
    """Scaled-out replicas start together on an empty database: none may fail creating the
    relay's table or its row."""
    engines = [make_engine(pg_url) for _ in range(8)]
    pool = eventlet.GreenPool()
    made = list(pool.imap(lambda engine: Checkpoints(engine, "relay:visits"), engines))
    assert [c.position() for c in made] == [0] * 8
    with engines[0].connect() as conn:
        assert conn.execute(select(func.count()).select_from(relay_checkpoints)).scalar() == 1
    for engine in engines:
        engine.dispose()
