"""The case board: a scripted month of cases, decided by the cases domain and appended to a
real event log (SQLite), folded into the board.

The figures of the script are worked out by hand below it. The projection (on a SQLite file)
must give the same board fed record by record (live), rebuilt from scratch in pages, and as of
any position or instant (equal to a rebuild of the log's prefix); a page applied twice changes
nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from services.caseboard import domain, projection
from services.caseboard.schemas import CaseBoardQuerySchema, CaseBoardSchema
from services.cases import domain as d
from shared.eventlog import EventLog, Record
from shared.kernel.commands import load
from shared.kernel.errors import Invalid
from shared.kernel.projection import Projector, build_as_of
from shared.runtime.providers import log_fetch
from tests.unit.cases_support import POLICY, at, check, context

MONTHS = ("2025-09", "2025-10")
PLACE = {"township": "Qiaotou"}
RESIDENT = {"id": None, "name": "Li", "phone": "13800000000", "address": "1 Lane"}


class Desk:
    """Sends commands as people (or the clock) would, at scripted instants, into a real log.
    An event's `occurred_at` is the instant it was decided at, as if appended then."""

    def __init__(self, log: EventLog) -> None:
        self.log = log

    def send(self, command: Any, who: str, now: dt.datetime) -> None:
        stream = d.stream_for(command)
        history = self.log.read_stream(stream)
        events = d.decide(command, history, context(who, now))
        for event in events:
            check(event)
        self.log.append(stream, [replace(ev, occurred_at=ev.occurred_at or now)
                                 for ev in events],
                        expected_version=history[-1].version if history else 0)

    def tick(self, case_id: str, now: dt.datetime) -> None:
        """The clock's rules for one case at `now`: whatever is due, once."""
        state = d.fold_case(self.log.read_stream(f"case-{case_id}"))
        assert state is not None
        for command in d.due_now(state, context("timer", now)):
            self.send(command, "timer", now)


def day(month_day: int, hour: int = 10, month: int = 9) -> dt.datetime:
    return at(dt.date(2025, month, month_day), hour)


def script(desk: Desk) -> None:
    """Seven cases; u1 and u2 are the units, `head1`/`cadre1` of u1, `head2` of u2."""
    send = desk.send
    # k1 (hotline): accepted at once, solved, the resident satisfied, closed.
    send(d.RegisterCase("k1", "hotline", "complaint", "the lane floods", PLACE,
                        resident=RESIDENT), "hotline", day(22, 9))
    send(d.AssignCase("k1", "u1"), "supervisor", day(22))
    send(d.AcceptCase("k1"), "head1", day(22, 11))
    send(d.ResolveCase("k1", "solved", "drain cleared"), "head1", day(23))
    send(d.RecordCallback("k1", "satisfied", "dry now"), "callback", day(24))
    send(d.CloseCase("k1"), "supervisor", day(24, 11))
    # k2 (a visit's): help, accept by the 23rd; chased on the 24th and accepted late;
    # explained, unsatisfied, reopened, solved, basically satisfied.
    send(d.RegisterCase("k2", "visit", "help", "no heating", PLACE, visit_id="v1",
                        cadre_ids=("c1",)), "operator", day(22, 9))
    send(d.AssignCase("k2", "u1"), "supervisor", day(22))
    desk.tick("k2", day(24, 8))  # acceptance overdue, resolution approaching
    send(d.AcceptCase("k2"), "cadre1", day(24))
    send(d.ResolveCase("k2", "explained", "a subsidy exists"), "head1", day(25))
    send(d.RecordCallback("k2", "unsatisfied", "still cold"), "callback", day(26))
    send(d.ReopenCase("k2", "fit the heater"), "supervisor", day(26, 11))
    send(d.ResolveCase("k2", "solved", "heater fitted"), "cadre1", day(29))
    send(d.RecordCallback("k2", "basically_satisfied", "warm"), "supervisor", day(30))
    # k3 (petition): u2 returns it, u1 takes it on time; parked, back on its review date,
    # parked again.
    send(d.RegisterCase("k3", "petition", "help", "a bridge is unsafe", PLACE),
         "operator", day(23, 9))
    send(d.AssignCase("k3", "u2"), "supervisor", day(23))
    send(d.ReturnCase("k3", "not our area"), "head2", day(23, 11))
    send(d.AssignCase("k3", "u1"), "supervisor", day(24))
    send(d.AcceptCase("k3"), "cadre1", day(24, 11))
    send(d.ParkCase("k3", "waiting for an inspection", dt.date(2025, 9, 29)), "supervisor",
         day(25))
    desk.tick("k3", day(29, 8))
    send(d.ParkCase("k3", "needs next year's budget", dt.date(2025, 11, 3)), "supervisor",
         day(30))
    # k4 (hotline): consultation, due the 29th; overdue on the 30th, still open.
    send(d.RegisterCase("k4", "hotline", "consultation", "which form?", PLACE),
         "hotline", day(25, 9))
    send(d.AssignCase("k4", "u2"), "supervisor", day(25))
    send(d.AcceptCase("k4"), "head2", day(25, 11))
    desk.tick("k4", day(30))
    # k5 (hotline): registered, never assigned.
    send(d.RegisterCase("k5", "hotline", "complaint", "noise at night", PLACE),
         "hotline", day(26))
    # k7 (hotline): an extension approved, then solved in time; no callback yet.
    send(d.RegisterCase("k7", "hotline", "help", "a tree fell", PLACE), "hotline", day(22, 9))
    send(d.AssignCase("k7", "u2"), "supervisor", day(22))
    send(d.AcceptCase("k7"), "head2", day(22, 11))
    send(d.RequestExtension("k7", 2, "a crane is needed"), "head2", day(24))
    send(d.DecideExtension("k7", "approved"), "supervisor", day(24, 11))
    send(d.ResolveCase("k7", "solved", "tree removed"), "head2", day(26))
    # k6 (a visit's): registered at local midnight of 1 October (still 30 September in UTC).
    send(d.RegisterCase("k6", "visit", "help", "a roof leaks", PLACE, visit_id="v2"),
         "operator", day(1, 0, month=10))
    send(d.AssignCase("k6", "u2"), "supervisor", day(9, month=10))
    send(d.AcceptCase("k6"), "head2", day(9, 11, month=10))
    send(d.ResolveCase("k6", "not_our_duty", "the landlord's"), "head2", day(10, month=10))
    send(d.RecordCallback("k6", "satisfied", "understood"), "callback", day(13, month=10))


def row(unit_id: str | None, **figures: Any) -> dict[str, Any]:
    """A board row: zeros and null rates unless given."""
    zero = {k: 0 for k in ("received", "accepted_on_time", "open", "overdue", "resolved",
                           "closed", "parked", "chased", "reopened", "solved")}
    rates = dict.fromkeys(("response_rate", "resolution_rate", "satisfaction_rate",
                           "chase_rate", "rework_rate", "visit_share"))
    callbacks = {"total": 0, "satisfied": 0, "basically_satisfied": 0, "unsatisfied": 0}
    origins = {"visit": 0, "petition": 0, "hotline": 0}
    callbacks.update(figures.pop("callbacks", {}))
    origins.update(figures.pop("origins", {}))
    return {"unit_id": unit_id, **zero, **rates, "callbacks": callbacks, "origins": origins,
            **figures}


# Worked out by hand from the script.
U1_SEPTEMBER = row(  # k1 closed, k2 called back after a reopening, k3 parked
    "u1", received=3, accepted_on_time=2, resolved=2, closed=1, parked=1, chased=1,
    reopened=1, solved=2,
    callbacks={"total": 3, "satisfied": 1, "basically_satisfied": 1, "unsatisfied": 1},
    origins={"visit": 1, "petition": 1, "hotline": 1}, response_rate=0.6667,
    resolution_rate=1.0, satisfaction_rate=0.6667, chase_rate=0.3333, rework_rate=0.5,
    visit_share=0.3333)
U2_SEPTEMBER = row(  # k4 open and overdue, k7 solved; k3 went back and counts for u1
    "u2", received=2, accepted_on_time=2, open=1, overdue=1, resolved=1, chased=1, solved=1,
    origins={"hotline": 2}, response_rate=1.0, resolution_rate=1.0, chase_rate=0.5,
    rework_rate=0.0, visit_share=0.0)
WAITING_SEPTEMBER = row(None, received=1, origins={"hotline": 1}, visit_share=0.0)  # k5
U2_OCTOBER = row(  # k6: not our duty, the resident satisfied all the same
    "u2", received=1, accepted_on_time=1, resolved=1,
    callbacks={"total": 1, "satisfied": 1}, origins={"visit": 1}, response_rate=1.0,
    resolution_rate=0.0, satisfaction_rate=1.0, chase_rate=0.0, rework_rate=0.0,
    visit_share=1.0)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventLog]:
    log = EventLog.open(f"sqlite:///{tmp_path_factory.mktemp('cases') / 'cases.db'}",
                        service="cases")
    script(Desk(log))
    yield log
    log.close()


@pytest.fixture(scope="module")
def history(log: EventLog) -> list[Record]:
    return list(log.read())


def reference(records: list[Record]) -> dict[str, Any]:
    facts = domain.facts_from_events(records).values()
    return {m: domain.board(m, facts, POLICY) for m in MONTHS}


def boards(view: Projector, at: int | None = None) -> dict[str, Any]:
    with view.engine.connect() as conn:
        return {m: projection.report(conn, m, POLICY, None, at) for m in MONTHS}


def sqlite_view(path: Path) -> Projector:
    return Projector.open(projection.CaseBoardProjection(), f"sqlite:///{path}")


def test_the_script_reaches_every_event_the_board_reads(history):
    assert {r.type for r in history} >= domain.EVENT_TYPES


def test_the_fold_gives_the_figures_worked_out_by_hand(history):
    got = reference(history)
    assert got["2025-09"] == {"month": "2025-09",
                              "units": [U1_SEPTEMBER, U2_SEPTEMBER, WAITING_SEPTEMBER]}
    assert got["2025-10"] == {"month": "2025-10", "units": [U2_OCTOBER]}


def test_a_chased_case_is_overdue_until_it_is_resolved(history):
    """Midway: k1 closed, k2 chased and accepted late, then resolved (explained)."""
    resolved = next(n for n, r in enumerate(history)
                    if r.stream == "case-k2" and r.type == "case.resolved")
    before = reference(history[:resolved])["2025-09"]["units"][0]
    assert (before["unit_id"], before["open"], before["overdue"]) == ("u1", 1, 1)
    assert reference(history[:resolved + 1])["2025-09"]["units"][0] == row(
        "u1", received=2, accepted_on_time=1, resolved=2, closed=1, chased=1, solved=1,
        callbacks={"total": 1, "satisfied": 1}, origins={"visit": 1, "hotline": 1},
        response_rate=0.5, resolution_rate=0.5, satisfaction_rate=1.0, chase_rate=0.5,
        rework_rate=0.0, visit_share=0.5)


def test_one_units_board_and_a_unit_without_cases(history):
    facts = domain.facts_from_events(history).values()
    assert domain.board("2025-09", facts, POLICY, unit_id="u2")["units"] == [U2_SEPTEMBER]
    assert domain.board("2025-09", facts, POLICY, unit_id="u9")["units"] == [row("u9")]
    assert domain.board("2025-11", facts, POLICY)["units"] == []


def test_a_case_counts_in_its_local_month(history):
    """k6 was registered at 00:00 on 1 October in Shanghai, 16:00 on 30 September in UTC."""
    k6 = domain.facts_from_events(history)["k6"]
    assert k6.registered_at.astimezone(dt.UTC).date() == dt.date(2025, 9, 30)
    assert domain.month_bounds("2025-10", POLICY)[0] == k6.registered_at


def test_live_equals_rebuild_equals_the_fold(tmp_path, log, history):
    live = sqlite_view(tmp_path / "live.db")
    for record in history:  # as the bus brings them, one at a time
        assert live.apply_batch([record]) == (1, False)
    rebuilt = sqlite_view(tmp_path / "rebuilt.db")
    assert rebuilt.rebuild(log_fetch({"cases": log}), page=4) == len(history)
    assert boards(live) == boards(rebuilt) == reference(history)
    assert boards(live)["2025-09"]["units"] == [U1_SEPTEMBER, U2_SEPTEMBER, WAITING_SEPTEMBER]


@pytest.mark.parametrize("page", [1, 3, 100])
def test_as_of_every_position_equals_the_fold_of_the_prefix(tmp_path, history, page):
    view = sqlite_view(tmp_path / "board.db")
    for start in range(0, len(history), page):
        view.apply_batch(history[start:start + page])
    for position in range(len(history) + 1):
        assert boards(view, position) == reference(history[:position]), position
    assert boards(view, 9)["2025-09"] != boards(view)["2025-09"]  # the history moved it


def test_as_of_an_instant_equals_a_rebuild_of_the_prefix(tmp_path, log, history):
    fetch = log_fetch({"cases": log})
    view = sqlite_view(tmp_path / "board.db")
    for record in [*history[::7], history[-1]]:
        instant = record.recorded_at
        position = view.position_at(fetch, "cases", instant)
        assert position == max(r.position for r in history if r.recorded_at <= instant)
        rebuilt = build_as_of(projection.CaseBoardProjection(), fetch, instant)
        assert boards(view, position) == boards(rebuilt), f"as of {instant}"
    assert view.position_at(fetch, "cases", history[0].recorded_at - dt.timedelta(1)) == 0


def test_a_page_applied_twice_changes_nothing(tmp_path, history):
    view = sqlite_view(tmp_path / "board.db")
    first, second = history[:20], history[10:30]

    def stored() -> list[Any]:
        with view.engine.connect() as conn:
            return list(conn.execute(select(projection.cases).order_by(
                projection.cases.c.case_id, projection.cases.c.made_at)))

    assert view.apply_batch(first) == (20, False)
    before = (stored(), boards(view))
    assert view.apply_batch(first) == (0, False)
    assert (stored(), boards(view)) == before
    assert view.apply_batch(second) == (10, False)  # only the records it had not seen
    assert view.apply_batch(second) == (0, False)
    assert boards(view) == reference(history[:30])
    with view.engine.connect() as conn:
        open_versions = conn.execute(select(func.count()).where(
            projection.cases.c.ended_at == projection.OPEN)).scalar()
    assert open_versions == len({r.data["case_id"] for r in history[:30]})


def test_the_board_opens_no_residents_details(tmp_path, log):
    """Registrations carry sealed personal data; the board folds them without decrypting."""
    records = list(log.read())
    sealed = [r for r in records if r.personal]
    assert sealed and all("opened=False" in repr(tuple.__getitem__(r, 5)) for r in sealed)
    sqlite_view(tmp_path / "board.db").apply_batch(records)
    assert all("opened=False" in repr(tuple.__getitem__(r, 5)) for r in sealed)


def test_the_answer_schema_carries_every_figure(history):
    """What the service returns over RPC is the board as the domain counts it, every field
    declared (marshmallow drops what a schema does not name)."""
    board = {**reference(history)["2025-09"], "as_of": None, "checkpoints": {"cases": 9}}
    assert CaseBoardSchema().dump(board) == board
    assert load(CaseBoardQuerySchema, {"month": "2025-09"}) == {
        "month": "2025-09", "unit_id": None, "as_of": None}
    for bad in ("2025-13", "2025-9", "1999-12"):
        with pytest.raises(Invalid) as refused:
            load(CaseBoardQuerySchema, {"month": bad})
        assert list(refused.value.messages) == ["month"]


def test_a_units_cases_are_open_resolved_or_parked_at_every_position(history):
    for position in range(len(history) + 1):
        for board in reference(history[:position]).values():
            for unit in board["units"]:
                parts = unit["open"] + unit["resolved"] + unit["parked"]
                assert parts == (unit["received"] if unit["unit_id"] else 0), position
                assert sum(unit["origins"].values()) == unit["received"]
