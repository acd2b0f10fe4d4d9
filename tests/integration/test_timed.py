"""Time-driven commands for real: the reminder before the fixed day appended to a real visits
log (SQLite and PostgreSQL) at most once, whatever ticks: a moved clock, a redelivered tick,
a restarted service, two replicas at once; and the visits service's own timer entrypoint."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import eventlet
import pytest
from nameko.testing.services import entrypoint_hook, replace_dependencies

from services.visits import domain as d
from services.visits import reminders, schemas
from services.visits.service import VisitsService
from shared.campaign.policy import Policy
from shared.eventlog import EventLog, Record
from shared.kernel.commands import MemoryFold, execute, load
from shared.kernel.timed import ManualClock, fire
from shared.runtime.auth import Principal
from shared.runtime.config import load_config
from shared.runtime.trust import generate_key

POLICY = Policy()  # Shanghai, the 28th, two days, reminded three days before
OPERATOR = Principal("operator", token_id="op")


def local(day: int, hour: int = 0) -> datetime:
    """`hour`:00 local time on `day` March 2026 in Shanghai (UTC+8)."""
    return datetime(2026, 3, day, hour, tzinfo=UTC) - timedelta(hours=8)


def run(log: EventLog, command_type: type, payload: dict[str, Any], **ids: str) -> None:
    command = command_type(**ids, **load(schemas.COMMAND_SCHEMAS[command_type], payload))
    roster = d.fold_roster(log.read())
    execute(log, d.stream_for(command),
            lambda history: d.decide(command, history, roster, local(20), POLICY,
                                     principal=OPERATOR),
            command_id=None, actor=OPERATOR.actor, contract=schemas.EVENT_SCHEMAS)


def seed(log: EventLog) -> None:
    """Three cadres: c-1 with one day so far, c-2 with none, c-3 on leave on the 28th."""
    run(log, d.RegisterUnit, {"id": "u", "name": "Qiaotou", "kind": "township"})
    for cadre in ("c-1", "c-2", "c-3"):
        run(log, d.EnrolCadre, {"id": cadre, "name": cadre, "unit_id": "u", "role": "staff",
                                "effective_from": "2026-01-01"})
    run(log, d.GrantLeave, {"from": "2026-03-27", "to": "2026-03-29", "reason": "ill"},
        cadre_id="c-3")
    run(log, d.RecordVisit, {"id": "v-1", "cadre_ids": ["c-1"], "date": "2026-03-10",
                             "place": {"township": "Qiaotou"}, "target": {"kind": "household"}})


def reminded(log: EventLog) -> list[Record]:
    return [r for r in log.read() if r.type == d.CADRE_REMINDED]


def tick(log: EventLog, fold: MemoryFold[reminders.MonthDays], now: datetime) -> list[Record]:
    return reminders.remind(log, fold, d.fold_roster(log.read()), now, POLICY)


def new_fold() -> MemoryFold[reminders.MonthDays]:
    return MemoryFold(reminders.MonthDays(), reminders.MonthDays.apply, reminders.EVENT_TYPES)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/visits.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def log(url: str) -> Iterator[EventLog]:
    opened = EventLog.open(url, service="visits")
    seed(opened)
    yield opened
    opened.engine.dispose()


def test_moved_clock_nothing_before_the_lead_time_once_at_it_never_again(
        log: EventLog, url: str) -> None:
    fold, clock = new_fold(), ManualClock(local(24, 23))
    assert tick(log, fold, clock.now()) == []
    clock.set(local(25, 0))
    added = tick(log, fold, clock.now())
    assert sorted((r.data["cadre_id"], r.data["days_so_far"], r.data["fixed_day_met"])
                  for r in added) == [("c-1", 1, False), ("c-2", 0, False)]
    assert {r.stream for r in added} == {"reminder-c-1-2026-03", "reminder-c-2-2026-03"}
    assert all(r.actor == f"timer:{reminders.RULE}" and r.occurred_at == local(25)
               for r in added)
    for _ in range(4):  # later ticks, up to the fixed day and past it
        clock.advance(timedelta(days=1))
        assert tick(log, fold, clock.now()) == []
    assert len(reminded(log)) == 2
    # a restart: a new service instance over the same database gives no second reminder
    again = EventLog.open(url, service="visits")
    assert tick(again, new_fold(), local(26)) == []
    assert len(reminded(again)) == 2
    again.engine.dispose()


def test_a_redelivered_tick_appends_nothing_twice(log: EventLog) -> None:
    """The same dues fired again (a tick retried, a fold that has not seen its own reminders
    yet) find their command ids in the log: one event each."""
    stale = reminders.MonthDays()
    for record in log.read():
        stale.apply(record)
    dues = reminders.due(stale, d.fold_roster(log.read()), local(26), POLICY)

    def decide(command: Any, history: list[Record]) -> Any:
        return d.decide(command, history, d.fold_roster(log.read()), local(26), POLICY,
                        principal=reminders.TIMER)

    first = fire(log, dues, decide, contract=schemas.EVENT_SCHEMAS)
    assert len(first) == 2
    assert fire(log, dues, decide, contract=schemas.EVENT_SCHEMAS) == []
    assert len(reminded(log)) == 2


def test_two_replicas_ticking_at_once_append_one_reminder(log: EventLog, url: str) -> None:
    """Both replicas look, find nothing, decide, and only then append (a barrier holds each
    in its decision until the other has decided too): the log keeps one of each."""
    replicas = [log, EventLog.open(url, service="visits")]
    barrier = threading.Barrier(2, timeout=20)
    roster = d.fold_roster(log.read())
    dues = reminders.due(reminders.MonthDays(), roster, local(27), POLICY)[:1]
    results: list[list[Record]] = []

    def decide(command: Any, history: list[Record]) -> Any:
        events = d.decide(command, history, roster, local(27), POLICY,
                          principal=reminders.TIMER)
        barrier.wait()
        return events

    def replica(replica_log: EventLog) -> None:
        results.append(fire(replica_log, dues, decide, contract=schemas.EVENT_SCHEMAS))

    threads = [threading.Thread(target=replica, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 2
    assert [r.data["cadre_id"] for r in reminded(log)] == [dues[0].command.cadre_id]
    assert {tuple(r.position for r in result) for result in results} == {
        (reminded(log)[0].position,)}
    replicas[1].engine.dispose()


@pytest.fixture
def visits_config(broker_uris: dict[str, str], tmp_path: Any) -> dict[str, Any]:
    config = load_config("visits")
    config.update(AMQP_URI=broker_uris["visits"], DATABASE_URL=f"sqlite:///{tmp_path}/v.db",
                  KEYS_DATABASE_URL="", PRINCIPAL_KEY=generate_key(),
                  REMINDER_SECONDS=3600)  # only the test ticks
    seed(EventLog.open(config["DATABASE_URL"], service="visits"))
    return config


def test_the_visits_service_ticks_once_across_restarts_and_replicas(
        container_factory: Any, visits_config: dict[str, Any]) -> None:
    clock = ManualClock(local(24, 12))

    def service() -> Any:
        container = container_factory(VisitsService, visits_config)
        replace_dependencies(container, clock=clock)
        container.start()
        return container

    first = service()
    with entrypoint_hook(first, "remind") as remind:
        assert remind() == 0  # before the lead time
    first.stop()
    clock.set(local(25, 9))
    replicas = [service(), service()]  # restarted, twice over, ticking at once

    def tick(container: Any) -> int:
        with entrypoint_hook(container, "remind") as remind:
            return int(remind())

    ticks = [eventlet.spawn(tick, c) for c in replicas]
    assert sum(t.wait() for t in ticks) >= 2  # each replica reports what it found due
    assert [tick(c) for c in replicas] == [0, 0]
    for container in replicas:
        container.stop()
    clock.advance(timedelta(days=1))
    assert tick(service()) == 0  # and after another restart
    log = EventLog.open(visits_config["DATABASE_URL"], service="visits")
    assert sorted(r.data["cadre_id"] for r in reminded(log)) == ["c-1", "c-2"]
