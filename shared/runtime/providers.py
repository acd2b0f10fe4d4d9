"""nameko dependency providers every service uses: its event log (with the relay running
beside it), its projector, the campaign policy, and a log reader over RPC for catching up."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from itertools import islice
from typing import Any

import eventlet
import kombu.pools
from nameko.exceptions import RpcTimeout
from nameko.extensions import DependencyProvider

from shared.campaign.policy import Policy, load_policy
from shared.eventlog import EventLog, Record
from shared.kernel.commands import MemoryFold
from shared.kernel.projection import Fetch, Projection, Projector
from shared.runtime.relay import Relay, published
from shared.runtime.survive import BROKER_ERRORS

RELAY_STOP_SECONDS = 10.0  # how long a clean stop waits for the relay to finish its pass


class EventStore(DependencyProvider):
    """The service's own log (config DATABASE_URL, KEYS_DATABASE_URL), and its relay.

    The relay runs as a managed thread of the service container; an append made through
    this log wakes it at once, so publishing latency is not the poll interval.
    """

    def __init__(self, relay: bool = True) -> None:
        self.with_relay = relay
        self.log: EventLog
        self.relay: Relay | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._thread: Any = None

    def setup(self) -> None:
        config = self.container.config
        self.log = EventLog.open(
            config["DATABASE_URL"],
            service=self.container.service_name,
            keys_url=config.get("KEYS_DATABASE_URL") or None,
        )
        if self.with_relay:
            self.relay = Relay(self.log, config["AMQP_URI"])
            self.log.subscribe(lambda _position: self._wake.set())

    def start(self) -> None:
        if self.relay is not None:
            poll = float(self.container.config.get("RELAY_POLL_SECONDS") or 1.0)
            self._thread = self.container.spawn_managed_thread(
                lambda: self.relay.run(lambda: self._stopping, self._wait, poll),
                identifier="relay",
            )

    def _wait(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def stop(self) -> None:
        """Let the relay finish its pass and release its lease: nameko kills managed threads
        right after stopping dependencies, and a killed relay would keep the lease, so that a
        restarted service could not publish until it expired."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            # the container reports the thread's own errors
            with eventlet.Timeout(RELAY_STOP_SECONDS, False), contextlib.suppress(Exception):
                self._thread.wait()

    def kill(self) -> None:
        self._stopping = True
        self._wake.set()

    def get_dependency(self, worker_ctx: Any) -> EventLog:
        return self.log


class ProjectorProvider(DependencyProvider):
    """A projection's store in the service's own database (config DATABASE_URL)."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.projector: Projector

    def setup(self) -> None:
        self.projector = Projector.open(self.projection, self.container.config["DATABASE_URL"])

    def get_dependency(self, worker_ctx: Any) -> Projector:
        return self.projector


class Fold(DependencyProvider):
    """State folded in memory from the service's own log, shared by its workers."""

    def __init__(self, initial: Callable[[], Any], step: Callable[[Any, Record], Any],
                 types: Iterable[str] | None = None) -> None:
        self.initial, self.step, self.types = initial, step, types

    def setup(self) -> None:
        self.fold = MemoryFold(self.initial(), self.step, self.types)

    def get_dependency(self, worker_ctx: Any) -> MemoryFold[Any]:
        return self.fold


class TrustProvider(DependencyProvider):
    """Checks principals the gateway signed (config PRINCIPAL_KEY, else GRASSROOTS_PRINCIPAL_KEY
    or var/principal.key): the gateway signs with it, write services verify with it."""

    def setup(self) -> None:
        from shared.runtime.trust import Signer, principal_key

        self.signer = Signer(self.container.config.get("PRINCIPAL_KEY") or principal_key())

    def get_dependency(self, worker_ctx: Any) -> Any:
        return self.signer


class PolicyProvider(DependencyProvider):
    """The campaign policy file named by config POLICY (or GRASSROOTS_POLICY)."""

    def setup(self) -> None:
        self.policy = load_policy(self.container.config.get("POLICY") or None)

    def get_dependency(self, worker_ctx: Any) -> Policy:
        return self.policy


def log_fetch(logs: dict[str, EventLog]) -> Fetch:
    """A `Fetch` reading logs directly (in-process tools, tests, the as-of CLI)."""

    def fetch(source: str, after: int, limit: int, until: datetime | None) -> Sequence[Record]:
        log = logs[source]
        if until is None:
            return list(log.read(after=after, limit=limit))
        records: list[Record] = []
        for record in log.read_until(until, after=after):
            records.append(record)
            if len(records) >= limit:
                break
        return records

    return fetch


def read_log(log: EventLog, after: int, limit: int, until: str | None,
             types: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The body of every write service's `read_log` RPC: a page of CloudEvents.

    Personal fields are withheld, as on the bus; `limit` is capped to keep replies small.
    `types` reads only those types, by the log's (type, position) index.
    """
    limit = max(1, min(int(limit), 2000))
    typed = [str(t) for t in types] if types is not None else None
    records = (islice(log.read_until(datetime.fromisoformat(until), int(after), types=typed),
                      limit) if until else log.read(int(after), limit, types=typed))
    return [r.to_cloudevent(personal=False) for r in records]


class RemoteLogs:
    """Reads write services' logs over their `read_log` RPC; a `Fetch`, plus each head.

    Each call is bounded: after broker disruptions a view process was seen to stop answering
    its own `status` for minutes while still folding live events (chaos `broker` then `cut`)
    — a publish stuck waiting for a confirm, or kombu's process-wide pools (10 connections,
    acquired with no timeout) left holding dead ones. A call that overruns or meets a broker
    error therefore drops those pools, so the next call starts on fresh connections. Calls
    share a few started proxies (`rpc.ProxyPool`) rather than open one, and its reply queue,
    each.
    """

    waits = True  # on the log's service: a long catch-up reads ahead (`projection.waits`)

    def __init__(self, amqp_uri: str, timeout: float) -> None:
        from shared.runtime.rpc import ProxyPool

        self.timeout, self.pool = timeout, ProxyPool(amqp_uri, timeout)

    def _call(self, source: str, method: str, **kwargs: Any) -> Any:
        timer = eventlet.Timeout(self.timeout + 5)
        try:
            with self.pool.proxy() as rpc:
                return getattr(getattr(rpc, source), method)(**kwargs)
        except eventlet.Timeout as expired:
            if expired is not timer:
                raise
            self._reset()
            raise RpcTimeout(f"{source}.{method}: no answer in {self.timeout + 5:g}s") from None
        except BROKER_ERRORS:
            self._reset()
            raise
        finally:
            timer.cancel()

    def _reset(self) -> None:
        kombu.pools.reset()
        self.pool.clear()

    def __call__(
        self, source: str, after: int, limit: int, until: datetime | None
    ) -> Sequence[Record]:
        events = self._call(source, "read_log", after=after, limit=limit,
                            until=until.isoformat() if until else None)
        return [Record.from_cloudevent(e) for e in events]

    def head(self, source: str) -> int:
        return int(self._call(source, "status")["last_position"])

    def of_types(self, source: str, after: int, limit: int,
                 types: Sequence[str]) -> Sequence[Record]:
        """A page of only these types' records after `after` (the log's type index)."""
        events = self._call(source, "read_log", after=after, limit=limit, types=list(types))
        return [Record.from_cloudevent(e) for e in events]


class LogReader(DependencyProvider):
    """`RemoteLogs` for a projection service (config AMQP_URI, RPC_TIMEOUT).

    nameko 2.14's RpcProxy waits forever when the target's queue does not exist yet (as when
    every service starts at once), so catching up uses a standalone proxy that gives up.
    """

    def setup(self) -> None:
        config = self.container.config
        self.logs = RemoteLogs(config["AMQP_URI"], float(config.get("RPC_TIMEOUT") or 30))

    def get_dependency(self, worker_ctx: Any) -> RemoteLogs:
        return self.logs


def deliver(projector: Projector, event: dict[str, Any], fetch: Fetch) -> int:
    """Apply one event from the bus; on a gap, catch up from the source log first.

    Redelivered events change nothing (their position is at or below the checkpoint). A
    delivery never waits for a catch-up or a rebuild in progress: that one (or the next
    tick's) folds the event from the log, and a worker waiting for it is a worker the
    service's `status` and other calls cannot have.
    """
    if projector.rebuilding:
        return 0
    applied, gap = projector.apply_batch([Record.from_cloudevent(event)])
    if gap:
        applied += projector.catch_up(fetch, wait=False)
    return applied


def view_status(projector: Projector, fetch_head: Callable[[str], int]) -> dict[str, Any]:
    """Each source's checkpoint and how far the view lags behind that log."""
    checkpoints = projector.checkpoints()
    out: dict[str, Any] = {"projection": projector.projection.name, "sources": {},
                           "rebuilding": projector.rebuilding}
    for source, position in checkpoints.items():
        head = fetch_head(source)
        out["sources"][source] = {"checkpoint": position, "head": head, "lag": head - position}
    return out


def log_status(log: EventLog) -> dict[str, Any]:
    """A write service's status: its log's head and how far its relay lags behind."""
    head = log.last_position()
    done = published(log.engine, f"relay:{log.service}")
    return {"service": log.service, "last_position": head,
            "relay": {"checkpoint": done, "lag": head - done}}
