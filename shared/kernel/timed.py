"""Time-driven commands: when time passes, a service decides and appends events itself.

A *rule* looks at what a service knows and at the time (a `Clock`, which tests move) and says
which commands are `Due`: each names the rule, its subject (e.g. a cadre's month) and a level
(e.g. "three days before", "overdue", "escalated"). A due command is decided by the service's
own pure `decide`, like any command a person sends, and appended through the service layer.

At most once per (service, rule, subject, level), across redelivered ticks, restarts and
replicas ticking at once: the command id is a hash of those four, and the log refuses a second
append with a command id it holds (checked under its write lock). Nothing here has to remember
what fired; a rule may skip what its state already shows as done, but only as a saving.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol

from marshmallow import Schema

from shared.eventlog import EventLog, NewEvent, Record
from shared.kernel.commands import execute


class Clock(Protocol):
    """Where a rule learns the time: an aware instant."""

    def now(self) -> datetime: ...


class SystemClock:
    """The machine's clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that stands still until told to move (tests, replays)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a clock's time must be timezone-aware")
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("a clock's time must be timezone-aware")
        with self._lock:
            self._now = moment

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta


@dataclass(frozen=True)
class Due:
    """A command a rule found due now, and the stream it is decided against."""

    rule: str
    subject: str
    level: str
    stream: str
    command: Any


def command_id(service: str, due: Due) -> str:
    """The same for every tick, process and replica that finds this due: the log's key."""
    key = json.dumps([service, due.rule, due.subject, due.level], separators=(",", ":"))
    return "timed:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


Decide = Callable[[Any, list[Record]], list[NewEvent]]


def fire(
    log: EventLog, dues: Iterable[Due], decide: Decide, *,
    contract: Mapping[str, type[Schema]] | None = None,
) -> list[Record]:
    """Decide and append each due command once; return the records of the dues that were
    not yet in the log when this call looked (two replicas racing may both report the same
    records; the log holds them once).
    """
    added: list[Record] = []
    for due in dues:
        cid = command_id(log.service, due)
        if log.find_command(cid):
            continue  # fired before: here, in another replica, or before a restart
        added.extend(execute(log, due.stream, partial(decide, due.command),
                             command_id=cid, actor=f"timer:{due.rule}", contract=contract))
    return added
