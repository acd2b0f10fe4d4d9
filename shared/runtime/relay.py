"""The relay: the log is the outbox.

It publishes committed events to the service's topic exchange (routing key = event type) as
persistent CloudEvents messages, waits for the broker's publisher confirms of the batch, and
only then advances its checkpoint, in the service's own database. Delivery is therefore at
least once; consumers are idempotent. A lease row makes sure one relay per log publishes at a
time when a service is scaled out.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import eventlet
from amqp.exceptions import MessageNacked
from kombu import Connection, Exchange, Producer
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    select,
    update,
)
from sqlalchemy.engine import Engine

from shared.eventlog import EventLog
from shared.eventlog.storage import exclusive, lazy_commit
from shared.runtime import wire

logger = logging.getLogger(__name__)
metadata = MetaData()
relay_checkpoints = Table(
    "relay_checkpoints",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("owner", String(200), nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
)
LEASE = timedelta(seconds=15)
CONFIRM_SECONDS = 10.0  # a confirm not back by then: the connection is taken as lost
BACKOFF_CAP = 10.0  # seconds: the longest wait between tries while the broker or database is away


def event_exchange(service: str) -> Exchange:
    """Declared exactly as nameko declares it, so dispatchers and handlers agree."""
    return Exchange(wire.exchange_name(service), type="topic", durable=True, delivery_mode=2)


def published(engine: Engine, name: str) -> int:
    """How far the relay `name` has published (read-only: status calls need no lock)."""
    with engine.connect() as conn:
        return conn.execute(select(relay_checkpoints.c.position).where(
            relay_checkpoints.c.name == name)).scalar_one()


class Checkpoints:
    """The relay's position and lease in the service database (mutable, unlike the log)."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine, self.name = engine, name
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self._renewed: float | None = None  # monotonic time of the last renewal that held
        self._at: int | None = None  # the checkpoint, known while the lease is held
        with exclusive(engine, "grassroots.schema") as conn:
            metadata.create_all(conn)
            if conn.execute(select(relay_checkpoints.c.name).where(
                    relay_checkpoints.c.name == name)).first() is None:
                conn.execute(relay_checkpoints.insert().values(name=name, position=0))

    def position(self) -> int:
        """How far this relay has published: from memory while it holds the lease (nobody
        else moves the checkpoint then), read again at each renewal and without one."""
        if self._renewed is not None and self._at is not None:
            return self._at
        at = published(self.engine, self.name)
        if self._renewed is not None:
            self._at = at
        return at

    def advance(self, position: int) -> None:
        """Move the checkpoint on; lazily committed (`storage.lazy_commit`): lost in a power
        cut, it only means the events after the older checkpoint are published again."""
        with lazy_commit(self.engine) as conn:
            conn.execute(update(relay_checkpoints).where(
                relay_checkpoints.c.name == self.name,
                relay_checkpoints.c.position < position,
            ).values(position=position))
        if self._at is not None:
            self._at = max(self._at, position)

    def acquire(self) -> bool:
        """Take or renew the lease; False while another live relay holds it.

        A lease this relay took or renewed less than a third of its length ago is held
        without asking the database: a pass runs after every append, and renewing each time
        cost a durable commit per event. Two thirds of the lease are still left then, and
        the run loop comes back within a second (by the monotonic clock, which a wall clock
        stepped back or forward does not move)."""
        if self._renewed is not None and (time.monotonic() - self._renewed
                                          < LEASE.total_seconds() / 3):
            return True
        now, started = datetime.now(UTC), time.monotonic()
        self._at = None
        c = relay_checkpoints.c
        with self.engine.begin() as conn:
            result = conn.execute(update(relay_checkpoints).where(
                c.name == self.name,
                (c.owner == self.owner) | c.owner.is_(None) | (c.lease_until < now),
            ).values(owner=self.owner, lease_until=now + LEASE))
        held = result.rowcount == 1
        self._renewed = started if held else None
        return held

    def release(self) -> None:
        self._renewed = self._at = None
        with self.engine.begin() as conn:
            conn.execute(update(relay_checkpoints).where(
                relay_checkpoints.c.name == self.name, relay_checkpoints.c.owner == self.owner
            ).values(owner=None, lease_until=None))


class Confirms:
    """The broker's publisher confirms on one channel, awaited for a whole batch at once.

    In confirm mode the broker numbers a channel's messages 1, 2, .. in publish order and
    acks (or nacks) each, or every one up to a number at once (`multiple`). Waiting for
    each message's confirm before the next cost a round trip apiece: a backlog drained at
    under 1,000 events/s. A batch is now published whole and its confirms read after.
    """

    def __init__(self, channel: Any) -> None:
        self.sent = 0
        self.unconfirmed: set[int] = set()
        self.nacked = False
        channel.confirm_select()
        channel.events["basic_ack"].add(self._ack)
        channel.events["basic_nack"].add(self._nack)

    def published(self) -> None:
        self.sent += 1
        self.unconfirmed.add(self.sent)

    def _ack(self, tag: int, multiple: bool) -> None:
        if multiple:
            self.unconfirmed = {t for t in self.unconfirmed if t > tag}
        else:
            self.unconfirmed.discard(tag)

    def _nack(self, tag: int, multiple: bool) -> None:
        self.nacked = True
        self._ack(tag, multiple)

    def wait(self, connection: Connection, timeout: float) -> None:
        """Until every message published so far is confirmed; MessageNacked if the broker
        refused one, TimeoutError if confirms stop coming for `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.unconfirmed and not self.nacked:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(self.unconfirmed)} publisher confirms not back "
                                   f"in {timeout:g}s")
            try:
                connection.drain_events(timeout=left)
            except TimeoutError:  # nothing came in `left`: the deadline above says so
                continue
        if self.nacked:
            raise MessageNacked("the broker refused a message of the batch")


class Relay:
    """Publishes a log's events in order, with confirms, resuming from its checkpoint."""

    def __init__(self, log: EventLog, amqp_uri: str, *, batch: int = 500) -> None:
        self.log = log
        self.amqp_uri = amqp_uri
        self.batch = batch
        self.checkpoints = Checkpoints(log.engine, f"relay:{log.service}")
        self.exchange = event_exchange(log.service)
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._confirms: Confirms | None = None

    def _ensure_producer(self) -> Producer:
        if self._producer is None:
            self._connection = Connection(self.amqp_uri, connect_timeout=CONFIRM_SECONDS)
            channel = self._connection.channel()
            self._confirms = Confirms(channel)
            self.exchange(channel).declare()
            self._producer = Producer(channel, exchange=self.exchange)
        return self._producer

    def close(self) -> None:
        """Drop the connection; one that is already broken may fail to close: no matter."""
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception as exc:  # noqa: BLE001 - the next pass connects afresh
                logger.debug("relay %s: closing a broken connection: %s", self.log.service, exc)
        self._connection = self._producer = self._confirms = None

    def lag(self) -> int:
        return self.log.last_position() - self.checkpoints.position()

    def publish_pending(self) -> int:
        """One pass: publish what the checkpoint has not covered; return how many were sent.

        The batch is published, then its confirms awaited together (`Confirms`); the
        checkpoint moves only once the broker has confirmed every message of it. A crash, a
        nack or a confirm that does not come in time re-sends the whole batch: at least once.
        """
        after = self.checkpoints.position()
        records = list(self.log.read(after=after, limit=self.batch))
        if not records:
            return 0
        try:
            producer = self._ensure_producer()
            assert self._connection is not None and self._confirms is not None
            for record in records:
                event = record.to_cloudevent(personal=False)
                producer.publish(
                    wire.encode(event),
                    routing_key=record.type,
                    content_type=wire.CONTENT_TYPE,
                    content_encoding="utf-8",
                    delivery_mode=2,
                    message_id=record.event_id,
                    headers={"ce-sequence": event["sequence"]},
                    timeout=CONFIRM_SECONDS,
                )
                self._confirms.published()
            self._confirms.wait(self._connection, CONFIRM_SECONDS)
        except BaseException:  # eventlet.Timeout included: a half-done pass is sent again
            self.close()  # a broken connection is rebuilt on the next pass
            raise
        self.checkpoints.advance(records[-1].position)
        return len(records)

    def run(
        self, stopped: Callable[[], bool], wait: Callable[[float], None],
        poll_interval: float = 1.0,
    ) -> None:
        """Publish until `stopped()`; `wait(seconds)` returns early when an append wakes it.

        Nothing ends the loop but `stopped()`: while the broker or the database is away it
        tries again after a wait that doubles up to BACKOFF_CAP, and resumes from its
        checkpoint."""
        backoff = poll_interval
        while not stopped():
            try:
                if not self.checkpoints.acquire():
                    wait(LEASE.total_seconds() / 3)
                    continue
                sent = self.publish_pending()
                backoff = poll_interval
                if sent < self.batch:
                    wait(poll_interval)
            except (Exception, eventlet.Timeout) as exc:  # broker or database away
                logger.warning("relay %s: %s; retrying in %.1fs", self.log.service,
                               exc or type(exc).__name__, backoff)
                wait(backoff)
                backoff = min(backoff * 2, BACKOFF_CAP)
        try:
            self.checkpoints.release()
        except Exception as exc:  # noqa: BLE001 - the lease then lapses by itself
            logger.warning("relay %s: lease not released (%s)", self.log.service, exc)
        self.close()


def drain(relay: Relay, timeout: float = 30.0) -> None:
    """Publish until the relay has caught up with the log (used by tools and tests)."""
    deadline = time.monotonic() + timeout
    while relay.publish_pending() or relay.lag():
        if time.monotonic() > deadline:
            raise TimeoutError(f"relay still {relay.lag()} events behind after {timeout}s")
