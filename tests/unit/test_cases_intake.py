"""Difficulties found on visits become cases (services/cases/intake.py): the pure intake over
visit events in the visits contract's shape, then the service layer over real SQLite logs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from services.cases import domain as cases
from services.cases import intake
from services.cases.service import VisitIntake
from services.visits import domain as visits
from services.visits.events import SCHEMAS as VISIT_SCHEMAS
from services.visits.events import VISIT_CORRECTED, VISIT_RECORDED, VISIT_RETRACTED
from shared.eventlog import EventLog, Record
from shared.kernel.commands import execute
from shared.kernel.contracts import instance
from shared.runtime.auth import Principal
from shared.runtime.providers import log_fetch
from tests.unit.cases_support import CALENDAR, CASES, POLICY, ROSTER, Case, at

NOW = at(dt.date(2025, 6, 10))
PLACE = {"township": "Qiaotou", "village": "Xiacun"}
WIRING, EXIT, WALL = "loose wiring in the shed", "a blocked fire exit", "a boundary wall"
HEATING, PENSION = "no heating last winter", "the pension has not been paid"


@dataclass(frozen=True)
class Rec:
    type: str
    data: dict[str, Any]
    version: int = 1


def event(type_: str, data: dict[str, Any]) -> Rec:
    """A visits event as the bus carries it (personal fields withheld), kept to the contract."""
    assert instance(VISIT_SCHEMAS[type_]).validate(data) == {}, data
    return Rec(type_, data)


def need(description: str, category: str = "help") -> dict[str, str]:
    return {"category": category, "description": description}


def finding(description: str, status: str = "referred") -> dict[str, str]:
    return {"description": description, "status": status}


def recorded(visit_id: str = "v1", **lists: list[dict[str, str]]) -> Rec:
    empty = dict.fromkeys(("thinks", "hopes", "glad", "worries", "notes"), "")
    data = {"visit_id": visit_id, "cadre_ids": ["c2", "c1"], "pending_cadre_ids": ["c2"],
            "date": "2025-06-09", "started_at": None, "place": PLACE,
            "target": {"kind": "household", "resident_id": "res-1", "resident": None},
            "diary": empty, "delivered": [], "helped": [], "hazards": [], "disputes": [],
            "difficulties": [], "tags": [], "evidence": [], "backfilled": False, **lists}
    return event(VISIT_RECORDED, data)


def corrected(visit_id: str = "v1", **changes: Any) -> Rec:
    return event(VISIT_CORRECTED, {"visit_id": visit_id, **changes, "reason": "a slip",
                                   "backfilled": False})


def take_up(before: intake.VisitFacts | None,
            record: Rec) -> tuple[intake.VisitFacts | None, list[intake.Intake]]:
    return intake.take_up(before, record, ROSTER, CASES.codes)


def ids(sent: list[intake.Intake]) -> list[tuple[str, str]]:
    return [(item.command.case_id, item.command_id) for item in sent]


def test_each_difficulty_and_each_referred_hazard_or_dispute_is_a_case() -> None:
    visit = recorded(difficulties=[need(HEATING), need(PENSION, "consultation")],
                     hazards=[finding(WIRING), finding(EXIT, "open")],
                     disputes=[finding(WALL)])
    _, sent = take_up(None, visit)
    commands = [item.command for item in sent]
    assert all(isinstance(c, cases.RegisterCase) for c in commands)
    assert [(c.category, c.description) for c in commands] == [
        ("help", HEATING), ("consultation", PENSION), ("urgent", WIRING), ("complaint", WALL)]
    first = commands[0]
    assert isinstance(first, cases.RegisterCase)
    assert (first.origin, first.visit_id, first.cadre_ids, first.place) == (
        "visit", "v1", ("c2", "c1"), PLACE)
    assert first.unit_id == "u1"  # the first confirmed cadre's unit (c2 is pending)
    assert first.resident == {"id": "res-1"}

    case = Case(first.case_id)  # decided by the cases domain as the intake's principal
    [registered] = case.send(first, intake.INTAKE, NOW)
    assert registered.data["resident_id"] == "res-1"
    assert registered.data["resident"] is None and registered.personal == ()
    shown = cases.read_back(case.state, POLICY, personal=True)
    assert (shown["resident"]["id"], shown["personal_data"]) == ("res-1", "on_visit")


def test_the_same_visit_twice_gives_the_same_cases_and_command_ids() -> None:
    visit = recorded(difficulties=[need(HEATING), need(PENSION)], hazards=[finding(WIRING)])
    once, again = ids(take_up(None, visit)[1]), ids(take_up(None, visit)[1])
    assert once == again
    assert len({i for pair in once for i in pair}) == 6  # all distinct
    other = ids(take_up(None, recorded("v2", difficulties=[need(HEATING)]))[1])
    assert not {case for case, _ in other} & {case for case, _ in once}


def test_a_correction_that_drops_one_notes_its_case_once_and_keeps_the_others() -> None:
    facts, opened = take_up(None, recorded(difficulties=[need(HEATING), need(PENSION)]))
    pension_case = opened[1].command.case_id
    after, sent = take_up(facts, corrected(difficulties=[need(HEATING)]))
    [note] = sent
    assert note.command == cases.NoteDifficultyRemoved(
        pension_case, "v1", "a correction of the visit no longer lists it: a slip")
    assert take_up(after, corrected(difficulties=[need(HEATING)]))[1] == []
    assert take_up(after, corrected(diary={"thinks": "", "hopes": "a road", "glad": "",
                                           "worries": "", "notes": ""}))[1] == []


def test_a_correction_that_adds_one_opens_one_case() -> None:
    facts, opened = take_up(None, recorded(difficulties=[need(HEATING)]))
    _, sent = take_up(facts, corrected(difficulties=[need(PENSION), need(HEATING)]))
    [new] = sent
    assert isinstance(new.command, cases.RegisterCase)
    assert new.command.description == PENSION
    assert new.command.case_id != opened[0].command.case_id


def test_a_hazard_settled_by_a_correction_and_a_retraction_are_noted() -> None:
    facts, opened = take_up(None, recorded(difficulties=[need(HEATING)],
                                           hazards=[finding(WIRING)]))
    heating, wiring = (item.command.case_id for item in opened)
    facts, sent = take_up(facts, corrected(hazards=[finding(WIRING, "resolved")]))
    assert [item.command.case_id for item in sent] == [wiring]
    _, sent = take_up(facts, event(VISIT_RETRACTED, {"visit_id": "v1", "reason": "a duplicate"}))
    assert [(i.command.case_id, i.command.reason) for i in sent] == [
        (heating, "the visit was retracted: a duplicate")]


def test_an_unknown_category_is_taken_up_in_the_default_one_its_code_kept() -> None:
    _, [sent] = take_up(None, recorded(difficulties=[need(HEATING, "housing")]))
    assert isinstance(sent.command, cases.RegisterCase)
    assert (sent.command.category, sent.command.description) == (
        intake.DEFAULT_CATEGORY, f"{HEATING} (category on the visit: housing)")


def test_a_visit_recorded_before_difficulties_existed_brings_its_referred_findings() -> None:
    old = recorded(hazards=[finding(WIRING)])
    del old.data["difficulties"]
    facts, sent = take_up(None, event(VISIT_RECORDED, old.data))
    assert [item.command.description for item in sent] == [WIRING]
    assert take_up(None, corrected())[1] == []  # a visit never seen opens nothing


# --- the service layer over real logs ---------------------------------------------------------

OPERATOR = Principal("operator", token_id="op")


def send_visit(log: EventLog, command: Any) -> list[Record]:
    """A visits command decided by the visits domain and appended as its service does."""
    return execute(log, visits.stream_for(command),
                   lambda history: visits.decide(command, history, ROSTER, NOW, POLICY,
                                                 principal=OPERATOR),
                   command_id=None, actor=OPERATOR.actor, contract=VISIT_SCHEMAS)


def context(*_: object) -> cases.Context:
    return cases.Context(NOW, intake.INTAKE, POLICY, CASES, CALENDAR, ROSTER)


def test_through_the_service_layer_a_replay_or_a_redelivery_appends_nothing(tmp_path) -> None:
    visits_log = EventLog.open(f"sqlite:///{tmp_path / 'visits.db'}", service="visits")
    cases_log = EventLog.open(f"sqlite:///{tmp_path / 'cases.db'}", service="cases")
    fetch = log_fetch({"visits": visits_log})
    [visit] = send_visit(visits_log, visits.RecordVisit(
        "v1", ("c1",), dt.date(2025, 6, 9), dict(PLACE),
        {"kind": "household", "resident_id": None,
         "resident": {"name": "Wang", "phone": "13900000000", "address": "2 Lane"}},
        difficulties=({"category": "help", "description": HEATING},),
        hazards=({"description": WIRING, "status": "referred"},)))
    follower = VisitIntake()
    opened = follower.follow(cases_log, fetch, context, visit.to_cloudevent(personal=False))
    assert [r.type for r in opened] == ["case.registered"] * 2
    resident_id = visit.data["target"]["resident_id"]
    assert [r.data["resident_id"] for r in opened] == [resident_id] * 2
    assert all(r.data["resident"] is None and r.actor == "intake:visits" for r in opened)

    head = cases_log.last_position()
    assert VisitIntake().follow(cases_log, fetch, context) == []  # a restart reads it all again
    assert follower.follow(cases_log, fetch, context, visit.to_cloudevent(personal=False)) == []
    assert cases_log.last_position() == head

    [correction] = send_visit(visits_log, visits.CorrectVisit("v1", {"difficulties": ()},
                                                              "not a difficulty after all"))
    [noted] = follower.follow(cases_log, fetch, context, correction.to_cloudevent(personal=False))
    assert (noted.type, noted.stream) == ("case.difficulty_removed", opened[0].stream)
    assert VisitIntake().follow(cases_log, fetch, context) == []
    assert cases_log.last_position() == head + 1
