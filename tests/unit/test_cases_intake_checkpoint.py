"""The intake's checkpoint (services/cases/intake_view.py) over real logs, the cases log (and
the intake's tables) on SQLite and on PostgreSQL: a restart resumes after what was taken up,
with each visit as it stood; a crash between the commands and the checkpoint repeats nothing;
a resident the visits service forgets is forgotten in the cases log too, once, even when the
cases service was away at the time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from services.cases import domain as cases
from services.cases import intake
from services.cases.service import VisitIntake
from services.visits import domain as visits
from services.visits.events import SCHEMAS as VISIT_SCHEMAS
from shared.eventlog import EventLog, Record
from shared.eventlog.log import FORGOTTEN
from shared.kernel.commands import execute
from shared.kernel.projection import Projector
from shared.runtime.auth import Principal
from shared.runtime.providers import log_fetch
from tests.unit.cases_support import CALENDAR, CASES, POLICY, ROSTER, at

NOW = at(dt.date(2025, 6, 10))
PLACE = {"township": "Qiaotou", "village": "Xiacun"}
OPERATOR = Principal("operator", token_id="op")
HOTLINE = Principal("hotline", token_id="hl")
HEATING, PENSION = "no heating last winter", "the pension has not been paid"
WANG = {"name": "Wang", "phone": "13900000000", "address": "2 Lane"}


@dataclass
class Logs:
    """A visits log, a cases log, and a fetch of the visits log as `read_log` gives it (personal
    fields withheld) that notes each read's starting position and how many records it gave."""

    visits: EventLog
    cases: EventLog
    reads: list[tuple[int, int]] = field(default_factory=list)

    def fetch(self, source: str, after: int, limit: int,
              until: dt.datetime | None) -> Sequence[Record]:
        page = log_fetch({"visits": self.visits})(source, after, limit, until)
        self.reads.append((after, len(page)))
        return [Record.from_cloudevent(r.to_cloudevent(personal=False)) for r in page]

    def follow(self, follower: VisitIntake | None = None) -> list[Record]:
        """What one (by default a freshly started) intake appends, catching up."""
        return (follower or VisitIntake()).follow(self.cases, self.fetch, context)

    def visit(self, command: Any) -> Record:
        """A visits command decided by the visits domain and appended as its service does."""
        [record] = execute(self.visits, visits.stream_for(command),
                           lambda history: visits.decide(command, history, ROSTER, NOW, POLICY,
                                                         principal=OPERATOR),
                           command_id=None, actor=OPERATOR.actor, contract=VISIT_SCHEMAS)
        return record


@pytest.fixture(params=["sqlite", "postgres"])
def logs(tmp_path: Path, request: pytest.FixtureRequest) -> Logs:
    """The cases log (and the intake's tables beside it) on each backend."""
    cases_url = (f"sqlite:///{tmp_path / 'cases.db'}" if request.param == "sqlite"
                 else request.getfixturevalue("pg_url"))
    return Logs(EventLog.open(f"sqlite:///{tmp_path / 'visits.db'}", service="visits"),
                EventLog.open(cases_url, service="cases"))


def context(*_: object) -> cases.Context:
    return cases.Context(NOW, intake.INTAKE, POLICY, CASES, CALENDAR, ROSTER)


def record_visit(visit_id: str, *needs: str, resident: dict[str, str] | None = None
                 ) -> visits.RecordVisit:
    return visits.RecordVisit(
        visit_id, ("c1",), dt.date(2025, 6, 9), dict(PLACE),
        {"kind": "household", "resident_id": None, "resident": resident},
        difficulties=tuple({"category": "help", "description": n} for n in needs))


def test_a_restart_resumes_after_the_checkpoint_and_still_opens_each_case_once(logs) -> None:
    for number in range(3):
        logs.visit(record_visit(f"v{number}", HEATING))
    assert [r.type for r in logs.follow()] == ["case.registered"] * 3
    head = logs.visits.last_position()
    logs.reads.clear()

    assert logs.follow() == []  # a restart: nothing read but the one empty page after the head
    assert logs.reads == [(head, 0)]

    logs.visit(record_visit("v3", PENSION))
    logs.reads.clear()
    [opened] = logs.follow()
    assert (opened.type, opened.data["description"]) == ("case.registered", PENSION)
    assert logs.reads == [(head, 1)]
    assert logs.follow() == []


def test_a_delivery_already_taken_up_is_let_go_without_reading_the_visits_log(logs) -> None:
    """A backlog on the bus that the catch-up overtook costs no read per message (a soak's
    intake fell behind by a read per message and never caught up)."""
    first = logs.visit(record_visit("v1", HEATING))
    logs.visit(record_visit("v2", PENSION))
    follower = VisitIntake()
    assert len(follower.follow(logs.cases, logs.fetch, context)) == 2
    logs.reads.clear()
    head = logs.cases.last_position()
    for _ in range(3):  # redelivered, or delivered late
        assert follower.follow(logs.cases, logs.fetch, context,
                               first.to_cloudevent(personal=False)) == []
    assert logs.reads == [] and logs.cases.last_position() == head
    nxt = logs.visit(record_visit("v3", HEATING))
    [opened] = follower.follow(logs.cases, logs.fetch, context, nxt.to_cloudevent(personal=False))
    assert opened.type == "case.registered" and logs.reads == []  # the next one: taken as sent


def test_a_correction_after_a_restart_notes_the_difficulty_it_removed(logs) -> None:
    logs.visit(record_visit("v1", HEATING, PENSION))
    heating, pension = logs.follow()
    head = logs.visits.last_position()
    logs.visit(visits.CorrectVisit("v1", {"difficulties": (
        {"category": "help", "description": HEATING},)}, "the pension was paid"))
    logs.reads.clear()

    [noted] = logs.follow()  # a new intake: the visit as it stood comes from the database
    assert logs.reads == [(head, 1)]
    assert (noted.type, noted.stream) == ("case.difficulty_removed", pension.stream)
    assert noted.data["reason"].endswith("the pension was paid")
    assert logs.follow() == []
    assert heating.stream != pension.stream


def test_a_crash_before_the_checkpoint_moves_repeats_no_command(logs, monkeypatch) -> None:
    logs.visit(record_visit("v1", HEATING))

    def crash(self: Projector, records: Sequence[Record]) -> tuple[int, bool]:
        raise RuntimeError("the process died after appending, before the checkpoint")

    with monkeypatch.context() as patched:
        patched.setattr(Projector, "apply_batch", crash)
        with pytest.raises(RuntimeError):
            logs.follow()
    [registered] = logs.cases.read()  # the command was appended, the checkpoint not moved
    logs.reads.clear()
    assert logs.follow() == []  # the page is taken up again, and appends nothing
    assert logs.reads == [(0, 1)]
    assert [r.position for r in logs.cases.read()] == [registered.position]
    logs.reads.clear()
    assert logs.follow() == [] and logs.reads == [(1, 0)]


def test_a_resident_forgotten_in_visits_is_forgotten_in_the_cases_log_once(logs) -> None:
    visit = logs.visit(record_visit("v1", resident=WANG))
    resident_id = visit.data["target"]["resident_id"]
    hotline = cases.RegisterCase("k1", "hotline", "help", "the lane floods", {"township": "Q"},
                                 resident={"id": resident_id, **WANG})
    issued = cases.Context(NOW, HOTLINE, POLICY, CASES, CALENDAR, ROSTER,
                           issued=lambda given: given == resident_id)
    execute(logs.cases, "case-k1", lambda history: cases.decide(hotline, history, issued),
            command_id=None, actor=HOTLINE.actor)
    assert logs.follow() == []
    [case] = logs.cases.read_stream("case-k1")
    assert case.data["resident"]["name"] == "Wang"

    logs.visits.forget(resident_id, actor=OPERATOR.actor)  # the cases service is away
    [marker] = logs.follow()  # started again: it finds the marker in the visits log
    assert (marker.type, marker.data["subject"], marker.actor) == (
        FORGOTTEN, resident_id, intake.INTAKE.actor)
    [case] = logs.cases.read_stream("case-k1")
    assert case.data["resident"] is None and case.redacted == ("resident",)
    assert logs.cases.verify().ok

    # the marker delivered again (the bus, a replay from an older checkpoint) changes nothing
    [forgot] = [r for r in logs.visits.read() if r.type == FORGOTTEN]
    again = forgot.to_cloudevent(personal=False)
    follower = VisitIntake()
    assert follower.follow(logs.cases, logs.fetch, context, again) == []
    assert VisitIntake()._forget(logs.cases, resident_id) == []
    assert [r.type for r in logs.cases.read()].count(FORGOTTEN) == 1
