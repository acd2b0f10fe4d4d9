"""The case book (services/cases/case_book.py) on a real log, SQLite and PostgreSQL: taken up
a record at a time or a page at a time, it holds what the pure fold (`open311.RequestIndex`)
holds, its list pages are the pure list's, and residents' personal fields never reach it."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Iterator

import pytest

from services.cases import domain as d
from services.cases import events as e
from services.cases import open311 as o
from services.cases.case_book import CaseBook
from shared.eventlog import EventLog
from shared.kernel.commands import execute
from tests.unit.cases_support import at, context

START = dt.date(2025, 9, 22)
RESIDENT = {"id": None, "name": "Li Hua", "phone": "13800000000", "address": "1 Lane"}


def send(log: EventLog, command: object, who: str, now: dt.datetime) -> None:
    execute(log, d.stream_for(command), lambda history: d.decide(command, history,
                                                                 context(who, now)),
            command_id=None, actor=who, contract=e.SCHEMAS)


def history(log: EventLog, cases: int, seed: int, first: int = 0) -> None:
    """Cases registered, assigned to either unit, some accepted, some sent back, with a
    resident's details on every third, over a fortnight."""
    rng = random.Random(seed)
    for n in range(first, first + cases):
        case_id, day = f"k{n:03d}", START + dt.timedelta(days=n % 14)
        send(log, d.RegisterCase(case_id, "hotline", rng.choice(["help", "complaint"]),
                                 f"difficulty {n}", {"township": "Qiaotou"},
                                 resident=dict(RESIDENT) if n % 3 == 0 else None),
             "hotline", at(day, 9))
        if rng.random() < 0.7:
            unit = rng.choice(["u1", "u2"])
            send(log, d.AssignCase(case_id, unit), "supervisor", at(day, 10))
            roll = rng.random()
            if roll < 0.5:
                send(log, d.AcceptCase(case_id), "head1" if unit == "u1" else "head2",
                     at(day, 11))
            elif roll < 0.7:
                send(log, d.ReturnCase(case_id, "not in our area"),
                     "head1" if unit == "u1" else "head2", at(day, 11))


@pytest.fixture(params=["sqlite", "postgresql"])
def logs(request: pytest.FixtureRequest, tmp_path) -> Iterator[Callable[[], EventLog]]:
    """Opens a new, empty cases log on the backend each call."""
    opened: list[EventLog] = []

    def new() -> EventLog:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / f'cases{len(opened)}.db'}"
        else:
            postgres = request.getfixturevalue("postgres")
            url = postgres.create_database(f"t_{uuid.uuid4().hex[:16]}")
        opened.append(EventLog.open(url, service="cases"))
        return opened[-1]

    yield new
    for log in opened:
        log.engine.dispose()


def pure(log: EventLog) -> dict[str, o.Tracked]:
    index = o.RequestIndex()
    for record in log.read():
        index.apply(record._replace(data=record.plain()))
    return {case.state.case_id: case for case in index}


def test_the_book_holds_what_the_pure_fold_holds_however_it_is_taken_up(logs):
    log = logs()
    book = CaseBook()
    history(log, 12, seed=1)
    book.current(log)
    for seed in range(3):  # taken up as the log grows, the last part a record at a time
        history(log, 4, seed=10 + seed, first=12 + 4 * seed)
        if seed == 2:
            assert book.projector is not None
            book.projector.catch_up(lambda _s, after, limit, _u: list(log.read(after, limit)),
                                    page=1)
        held = {case.state.case_id: case for case in book.current(log)}
        assert held == pure(log)
    assert len(held) == 24
    # the same history in another database, taken up by a new book in one catch-up
    other = logs()
    history(other, 12, seed=1)
    for seed in range(3):
        history(other, 4, seed=10 + seed, first=12 + 4 * seed)
    once = {case.state.case_id: case for case in CaseBook().current(other)}
    assert once == pure(other)
    assert {k: (c.state.state, c.state.unit_id) for k, c in once.items()} == {
        k: (c.state.state, c.state.unit_id) for k, c in held.items()}  # resident ids differ


def test_list_pages_are_the_pure_lists_pages(logs):
    log = logs()
    history(log, 40, seed=2)
    reader, every = CaseBook().current(log), pure(log)
    for unit in (None, "u1", "u2"):
        for state in (None, "registered", "assigned", "accepted", "returned"):
            for overdue in (None, False, True):
                wanted = [c.state for _, c in sorted(every.items())
                          if (unit is None or c.state.unit_id == unit)
                          and (state is None or c.state.state == state)
                          and (overdue is None or c.state.overdue == overdue)]
                for offset, size in ((0, 5), (5, 5), (0, 100)):
                    assert reader.page(unit, state, overdue, offset, size) == (
                        wanted[offset:offset + size], len(wanted))
    assert {c.case_id for c in reader.timed()} == {
        k for k, c in every.items() if c.state.state in d.OPEN}
    assert reader.get("k000") == every["k000"] and reader.get("nope") is None


def test_no_residents_details_reach_the_book(logs):
    log = logs()
    history(log, 6, seed=3)
    reader = CaseBook().current(log)
    with_resident = reader.get("k000")
    assert with_resident is not None and with_resident.state.registered["resident_id"]
    with reader.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT facts FROM case_book").scalars().all()  # noqa: S608
    assert len(rows) == 6
    for value in ("Li Hua", "13800000000", "1 Lane"):
        assert not any(value in row for row in rows)
