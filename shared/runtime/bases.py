"""Base classes of services: what every write service and every view does, written once.

nameko collects a service's entrypoints and dependencies from its class attributes, inherited
ones included, so these bases carry them: a `WriteService` gets its log, policy and principal
check, `read_log` and `status`, and one `@rpc` per row of its command table (built here, in
`__init_subclass__`); a `ViewService` gets live delivery from the bus for each log the
catalogue says it reads, catch-up, `status` and `rebuild`. A subclass writes only what is its
own: how its domain decides, and its queries.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

import eventlet
from amqp.exceptions import AMQPError
from kombu.exceptions import KombuError
from marshmallow import Schema
from nameko.events import event_handler
from nameko.exceptions import RpcTimeout, UnknownService
from nameko.rpc import rpc

from shared.campaign.policy import Policy
from shared.eventlog import EventLog, NewEvent, Record
from shared.eventlog.storage import outage
from shared.kernel.commands import Spares, execute, load
from shared.kernel.errors import Unavailable
from shared.kernel.projection import Projector
from shared.runtime import catalogue
from shared.runtime.auth import Principal
from shared.runtime.declare import Act, Command, acts
from shared.runtime.providers import (
    EventStore,
    LogReader,
    PolicyProvider,
    RemoteLogs,
    TrustProvider,
    deliver,
    log_status,
    read_log,
    view_status,
)
from shared.runtime.survive import BROKER_ERRORS
from shared.runtime.timed import tick
from shared.runtime.trust import Signer

CATCH_UP_SECONDS = float(os.environ.get("CATCH_UP_SECONDS", "5"))
RETRY_AFTER = 2  # seconds a client is told to wait when the database is away
logger = logging.getLogger(__name__)


# What a call to another service's log raises when that service or the broker is away (not
# any OSError: a file this service cannot write is a fault to see, not a 503).
REMOTE_AWAY: tuple[type[BaseException], ...] = (
    RpcTimeout, UnknownService, ConnectionError, TimeoutError, AMQPError, KombuError)
CATCH_UP_POSTPONED: tuple[type[BaseException], ...] = (*BROKER_ERRORS, *REMOTE_AWAY, Unavailable)


@contextmanager
def database(log: EventLog) -> Iterator[None]:
    """Turn the log's database being away, or another service's log this decision reads (the
    roster of visits, say), into Unavailable (503 at the gateway, retry after RETRY_AFTER
    seconds) instead of an error its callers cannot tell from a bug."""
    try:
        yield
    except REMOTE_AWAY as exc:
        logger.warning("a log %s reads is unreachable: %r", log.service, exc)
        raise Unavailable("a service this one reads", RETRY_AFTER) from None
    except Exception as exc:
        if not outage(log.engine, exc):
            raise
        logger.warning("the %s database is unavailable: %s", log.service, exc)
        raise Unavailable(f"the {log.service} database", RETRY_AFTER) from None


def _command_entrypoint(row: Command) -> Any:
    """`row.name(principal, *ids, payload, command_id=None)` as an @rpc method, with that exact
    signature (nameko checks calls against it before running them)."""
    P = inspect.Parameter
    signature = inspect.Signature([
        P("self", P.POSITIONAL_OR_KEYWORD), P("principal", P.POSITIONAL_OR_KEYWORD),
        *(P(name, P.POSITIONAL_OR_KEYWORD) for name in row.ids),
        P("payload", P.POSITIONAL_OR_KEYWORD),
        P("command_id", P.POSITIONAL_OR_KEYWORD, default=None),
    ])

    def entrypoint(*args: Any, **kwargs: Any) -> dict[str, Any]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        given = bound.arguments
        return given["self"].handle(row, given["principal"], [given[i] for i in row.ids],
                                    given["payload"], given["command_id"])

    entrypoint.__name__ = entrypoint.__qualname__ = row.name
    entrypoint.__doc__ = f"{row.route.summary} (generated from the command table)."
    entrypoint.__signature__ = signature  # type: ignore[attr-defined]
    return rpc(entrypoint)


class WriteService:
    """A service that keeps an event log and decides commands into it.

    Subclasses set `name`, `commands` (their table) and `contract` (event type -> schema, from
    their events.py), and implement `decide` (and `stream_for`, unless the table's rows name
    their streams); `check` and `reply` may add to the defaults. A method the subclass
    defines itself is never replaced by a generated one.
    """

    commands: ClassVar[Sequence[Command]] = ()
    contract: ClassVar[Mapping[str, type[Schema]]] = {}
    acts: ClassVar[Mapping[type, Act]] = {}  # from `commands`
    # the MemoryFold attribute `decide` reads (e.g. the roster), if any: each command brings
    # it up to date in the query that reads its stream (`execute`'s `fold`)
    decides_with: ClassVar[str | None] = None

    log: EventLog = EventStore()
    policy: Policy = PolicyProvider()
    trust: Signer = TrustProvider()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.acts = acts(cls.commands)
        for row in cls.commands:
            if row.name not in vars(cls):
                setattr(cls, row.name, _command_entrypoint(row))

    # -- what a subclass says --------------------------------------------------------------

    def decide(self, command: Any, history: list[Record], who: Principal,
               now: datetime) -> list[NewEvent]:
        raise NotImplementedError

    def stream_for(self, command: Any) -> str:
        """The stream the command's row names (its act); a table without acts says it here."""
        act = self.acts.get(type(command))
        if act is None:
            raise NotImplementedError(f"{type(command).__name__}: no stream in the table")
        return act.stream_for(command)

    def check(self, command: Any) -> None:
        """Checks against the service's own state before deciding (none by default)."""

    def reply(self, stream: str, last: Record) -> dict[str, Any]:
        """The answer to a command: what it was about (the stream's id) and where it stands."""
        return {"id": stream.split("-", 1)[1], "position": last.position}

    # -- command handling ------------------------------------------------------------------

    def handle(self, row: Command, principal: Any, ids: list[str], payload: Any,
               command_id: str | None) -> dict[str, Any]:
        """One command: the principal must be signed for exactly this call; then the payload
        is completed (row.prepare), loaded, checked, decided and appended."""
        who = self.trust.verify(principal, row.name, [*ids, payload, command_id])
        if row.prepare is not None:
            payload = row.prepare(payload, command_id)
        loaded = {**dict(zip(row.ids, ids, strict=True)), **load(row.schema, payload)}
        with database(self.log), Spares(self.log, row.command) as spares:
            command = row.command(**loaded, **spares.values)
            self.check(command)
            stream = self.stream_for(command)
            records = execute(
                self.log, stream,
                lambda history: self.decide(command, history, who, datetime.now(UTC)),
                command_id=command_id, actor=who.actor, contract=self.contract,
                fold=getattr(self, self.decides_with) if self.decides_with else None,
                spares=spares,
            )
            return self.reply(stream,
                              records[-1] if records else self.log.read_stream(stream)[-1])

    @rpc
    def read_log(self, after: int = 0, limit: int = 500, until: str | None = None,
                 types: list[str] | None = None) -> list[dict[str, Any]]:
        """A page of the log as CloudEvents, personal fields withheld (views catch up by it);
        `types`: only records of those types (a fold that needs a few kinds of event)."""
        with database(self.log):
            return read_log(self.log, after, limit, until, types)

    @rpc
    def status(self) -> dict[str, Any]:
        with database(self.log):
            return log_status(self.log)


def _delivery(source: str) -> Any:
    def on_event(self: ViewService, event: dict[str, Any]) -> None:
        deliver(self.view, event, self.logs)

    on_event.__name__ = on_event.__qualname__ = f"on_{source}_event"
    on_event.__doc__ = f"Live delivery of the {source} log's events (a gap: catch up first)."
    return event_handler(source, "#")(on_event)


class ViewService:
    """A projection of write services' logs, fed live from the bus and caught up over RPC.

    Subclasses set `name` and `view` (a ProjectorProvider); the logs it reads are the
    catalogue's (or a `reads` class attribute), one event handler each, named
    `on_<log>_event` (so its durable queue keeps its name).
    """

    reads: ClassVar[tuple[str, ...]] = ()
    view: Projector
    policy: Policy = PolicyProvider()
    logs: RemoteLogs = LogReader()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        sources = cls.reads or catalogue.get(cls.name).reads  # type: ignore[attr-defined]
        for source in sources:
            name = f"on_{source}_event"
            if name not in vars(cls):
                setattr(cls, name, _delivery(source))

    @tick(interval=CATCH_UP_SECONDS, eager=True)
    def catch_up(self) -> None:
        """On start and now and then: fold whatever the bus did not bring (also what was
        published while this view's consumer was away). A source that cannot be reached is
        tried again on the next tick."""
        try:
            self.view.catch_up(self.logs, wait=False)  # one may be running already
        except CATCH_UP_POSTPONED as exc:
            logger.warning("catch-up postponed, a log is unreachable: %r", exc)

    @rpc
    def status(self) -> dict[str, Any]:
        return view_status(self.view, self.logs.head)

    @rpc
    def rebuild(self) -> dict[str, Any]:
        """Drop the view and fold the logs again from the start (in the background)."""
        self.view.rebuilding = True  # seen by the next status() call, before the work starts
        eventlet.spawn_n(self.view.rebuild, self.logs)
        return {"rebuilding": True}
