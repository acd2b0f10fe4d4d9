"""The visits service's decisions and wire contract, against an in-memory log."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from marshmallow import ValidationError
from nameko.exceptions import deserialize, serialize

from services.visits import commands
from services.visits import domain as d
from services.visits import schemas as s
from shared.campaign.policy import Policy
from shared.eventlog import NewEvent
from shared.kernel.errors import Conflict, Invalid, NotFound, Rejected, UnknownReference
from shared.runtime.auth import Principal

POLICY = Policy()
OPERATOR = Principal("operator", token_id="op")
NOW = datetime(2024, 3, 29, 2, 0, tzinfo=UTC)  # 10:00 on 29 March in Shanghai


@dataclass(frozen=True)
class Rec:
    type: str
    data: dict[str, Any]
    stream: str
    version: int
    occurred_at: datetime
    recorded_at: datetime


class Log:
    """Decides commands the way the service does and keeps what they decided."""

    def __init__(self) -> None:
        self.records: list[Rec] = []

    def history(self, stream: str) -> list[Rec]:
        return [r for r in self.records if r.stream == stream]

    def roster(self) -> d.Roster:
        return d.fold_roster(self.records)

    def run(
        self, command: d.Command, now: datetime = NOW, policy: Policy = POLICY,
        principal: Principal = OPERATOR,
    ) -> list[NewEvent]:
        stream = d.stream_for(command)
        history = self.history(stream)
        events = d.decide(command, history, self.roster(), now, policy, principal=principal)
        for n, event in enumerate(events, start=len(history) + 1):
            data = json.loads(json.dumps(event.data))  # what the log stores is JSON
            self.records.append(
                Rec(event.type, data, stream, n, event.occurred_at or now, now)
            )
        return events

    def one(self, command: d.Command, now: datetime = NOW) -> NewEvent:
        events = self.run(command, now)
        assert len(events) == 1
        return events[0]


def visit(visit_id: str = "v1", cadre_ids: tuple[str, ...] = ("c1",), **kw: Any) -> d.RecordVisit:
    fields: dict[str, Any] = {
        "date": date(2024, 3, 28),
        "place": {"township": "Qingshan", "village": "Dongcun"},
        "target": {"kind": "household", "resident_id": None, "resident": None},
    }
    fields.update(kw)
    return d.RecordVisit(visit_id=visit_id, cadre_ids=cadre_ids, **fields)


RESIDENT = {"name": "Wang Fang", "phone": "13800000000", "address": "3 East Lane"}


@pytest.fixture
def log() -> Log:
    """Two units, cadres c1 (u1, leader) and c2 (u2) on the roster since 1 January."""
    log = Log()
    log.run(d.RegisterUnit("u1", "Civil Affairs Bureau", "department", 15))
    log.run(d.RegisterUnit("u2", "Qingshan Township", "township"))
    log.run(d.EnrolCadre("c1", "Li Wei", "u1", "leader", ("u2",), date(2024, 1, 1)))
    log.run(d.EnrolCadre("c2", "Zhao Min", "u2", "staff", (), date(2024, 1, 1)))
    return log


def event_data_valid(event: NewEvent) -> dict[str, Any]:
    return s.EVENT_SCHEMAS[event.type]().load(json.loads(json.dumps(event.data)))


# --- roster -------------------------------------------------------------------------------------


def test_registering_a_unit_twice_is_a_conflict_naming_the_id(log):
    with pytest.raises(Conflict) as caught:
        log.run(d.RegisterUnit("u1", "Other", "department"))
    assert caught.value.http_status == 409
    assert caught.value.to_dict() == {"errors": {"id": ["unit 'u1' is already registered"]}}


def test_enrolling_into_an_unknown_unit_names_it(log):
    with pytest.raises(UnknownReference) as caught:
        log.run(d.EnrolCadre("c9", "Sun Li", "nope", "staff"))
    assert (caught.value.kind, caught.value.id, caught.value.http_status) == ("unit", "nope", 422)
    assert caught.value.to_dict() == {"errors": {"unit_id": ["unknown unit 'nope'"]}}
    with pytest.raises(UnknownReference) as caught:
        log.run(d.EnrolCadre("c9", "Sun Li", "u1", "leader", ("u2", "gone")))
    assert caught.value.to_dict() == {"errors": {"liaison_unit_ids": ["unknown unit 'gone'"]}}


def test_only_leading_cadres_have_liaison_units(log):
    with pytest.raises(Rejected) as caught:
        log.run(d.EnrolCadre("c9", "Sun Li", "u1", "staff", ("u2",)))
    assert caught.value.field == "liaison_unit_ids"


def test_enrolment_defaults_to_the_local_date_of_now(log):
    now = datetime(2024, 3, 31, 17, 0, tzinfo=UTC)  # already 1 April in Shanghai
    event = log.one(d.EnrolCadre("c3", "Sun Li", "u1", "staff"), now)
    assert event.type == "cadre.enrolled"
    assert event.data == {
        "cadre_id": "c3", "name": "Sun Li", "unit_id": "u1", "role": "staff",
        "liaison_unit_ids": [], "effective_from": "2024-04-01",
    }
    assert event.occurred_at == POLICY.start_of(date(2024, 4, 1))
    assert log.roster().cadres["c3"].on_roster(date(2024, 3, 31)) is False
    with pytest.raises(Conflict):
        log.run(d.EnrolCadre("c3", "Sun Li", "u1", "staff"), now)


def test_a_transfer_moves_the_cadre_from_its_effective_date(log):
    event = log.one(d.TransferCadre("c2", "u1", date(2024, 3, 15)))
    assert event.data == {
        "cadre_id": "c2", "from_unit_id": "u2", "to_unit_id": "u1", "effective_from": "2024-03-15"
    }
    cadre = log.roster().cadres["c2"]
    assert cadre.unit_on(date(2024, 3, 14)) == "u2"
    assert cadre.unit_on(date(2024, 3, 15)) == "u1"
    assert cadre.unit_id == "u1"


def test_a_transfer_must_go_somewhere_known_new_and_not_back_in_time(log):
    with pytest.raises(UnknownReference) as caught:
        log.run(d.TransferCadre("c2", "u9", date(2024, 3, 15)))
    assert caught.value.field == "to_unit_id"
    with pytest.raises(UnknownReference) as caught:
        log.run(d.TransferCadre("c9", "u1", date(2024, 3, 15)))
    assert caught.value.to_dict() == {"errors": {"cadre_id": ["unknown cadre 'c9'"]}}
    with pytest.raises(Rejected) as caught:
        log.run(d.TransferCadre("c2", "u2", date(2024, 3, 15)))
    assert caught.value.field == "to_unit_id"
    with pytest.raises(Rejected) as caught:
        log.run(d.TransferCadre("c2", "u1", date(2023, 12, 31)))
    assert caught.value.to_dict() == {
        "errors": {"effective_from": ["is before the cadre's enrolment on 2024-01-01"]}
    }


def test_leave_is_granted_with_inclusive_dates(log):
    event = log.one(d.GrantLeave("c1", date(2024, 3, 27), date(2024, 3, 28), "training"))
    assert event.data == {"cadre_id": "c1", "from": "2024-03-27", "to": "2024-03-28",
                          "reason": "training"}
    cadre = log.roster().cadres["c1"]
    assert [cadre.on_leave(date(2024, 3, n)) for n in (26, 27, 28, 29)] == [
        False, True, True, False
    ]
    with pytest.raises(Rejected) as caught:
        log.run(d.GrantLeave("c1", date(2024, 3, 5), date(2024, 3, 4), "x"))
    assert caught.value.to_dict() == {"errors": {"to": ["must not be before from"]}}
    with pytest.raises(Conflict):
        log.run(d.GrantLeave("c1", date(2024, 3, 27), date(2024, 3, 28), "training"))


def test_a_cadre_removed_from_the_roster_can_no_longer_visit_or_move(log):
    event = log.one(d.RemoveCadre("c2", date(2024, 3, 20), "retired"))
    assert (event.type, event.data["effective_from"]) == ("cadre.removed", "2024-03-20")
    cadre = log.roster().cadres["c2"]
    assert cadre.on_roster(date(2024, 3, 19)) and not cadre.on_roster(date(2024, 3, 20))
    assert cadre.memberships[-1].end == date(2024, 3, 19)
    with pytest.raises(Rejected) as caught:
        log.run(visit(cadre_ids=("c1", "c2"), date=date(2024, 3, 20)))
    assert caught.value.to_dict() == {
        "errors": {"cadre_ids": ["cadre 'c2' is not on the roster on 2024-03-20"]}
    }
    log.one(visit(cadre_ids=("c1", "c2"), date=date(2024, 3, 19)))
    with pytest.raises(Conflict):
        log.run(d.TransferCadre("c2", "u1", date(2024, 3, 25)))
    with pytest.raises(Conflict):
        log.run(d.RemoveCadre("c2", date(2024, 3, 21), "again"))


def test_a_removal_logged_under_its_old_type_still_folds(log):
    """Logs written before #8 name the act `cadre.left`: the roster reads it as a removal,
    and the contract still describes it."""
    data = {"cadre_id": "c2", "effective_from": "2024-03-20", "reason": "retired"}

    def removal(type_: str) -> Rec:
        return Rec(type_, data, "cadre-c2", 2, NOW, NOW)

    assert s.EVENT_SCHEMAS[d.CADRE_LEFT]().load(data)["effective_from"] == date(2024, 3, 20)
    assert d.CADRE_LEFT in d.ROSTER_EVENT_TYPES  # typed reads ask the log for it too
    roster = d.fold_roster([*log.records, removal("cadre.left")])
    assert roster.cadres["c2"].left_from == date(2024, 3, 20)
    assert roster == d.fold_roster([*log.records, removal("cadre.removed")])
    with pytest.raises(Conflict):
        d.decide(d.RemoveCadre("c2", date(2024, 3, 21), "again"), [], roster, NOW, POLICY,
                 principal=OPERATOR)


def test_leaving_must_come_after_enrolment(log):
    with pytest.raises(Rejected) as caught:
        log.run(d.RemoveCadre("c2", date(2024, 1, 1), "never started"))
    assert caught.value.field == "effective_from"


def test_a_unit_day_can_be_changed_from_a_date(log):
    event = log.one(d.SetUnitDay("u2", 10, date(2024, 4, 1)))
    assert event.data == {"unit_id": "u2", "unit_day": 10, "effective_from": "2024-04-01"}
    unit = log.roster().units["u2"]
    assert unit.unit_days == (d.UnitDaySetting(None, None), d.UnitDaySetting(date(2024, 4, 1), 10))
    assert log.run(d.SetUnitDay("u2", 10, date(2024, 5, 1))) == []
    with pytest.raises(Rejected):
        log.run(d.SetUnitDay("u2", 12, date(2024, 3, 1)))


# --- recording visits ---------------------------------------------------------------------------


def test_a_visit_records_every_field_with_backfilled_and_its_business_time(log):
    event = log.one(visit(delivered=("policy",), tags=("livelihood",)))
    assert event.type == "visit.recorded"
    assert event.data["visit_id"] == "v1"
    assert event.data["cadre_ids"] == ["c1"]
    assert event.data["date"] == "2024-03-28"
    assert event.data["backfilled"] is False
    assert event.data["delivered"] == ["policy"] and event.data["tags"] == ["livelihood"]
    assert event.data["diary"] == d.empty_diary()
    assert event.occurred_at == datetime(2024, 3, 27, 16, 0, tzinfo=UTC)  # local midnight
    assert (event.subject, event.personal) == (None, ())
    assert event_data_valid(event)["visit_id"] == "v1"


def test_a_residents_details_are_personal_under_their_own_id(log):
    target = {"kind": "hardship", "resident_id": "r-7", "resident": RESIDENT}
    event = log.one(visit(target=target))
    assert event.subject == "r-7"
    assert event.personal == ("target.resident",)
    assert event.data["target"] == {"kind": "hardship", "resident_id": "r-7", "resident": RESIDENT}
    no_id = {"kind": "hardship", "resident_id": None, "resident": RESIDENT}
    second = log.one(visit("v2", target=no_id))
    assert second.subject.startswith("res-") and second.subject != "r-7"
    assert second.data["target"]["resident_id"] == second.subject
    third = log.one(visit("v3", target=no_id))
    assert third.subject != second.subject  # issued afresh, never derived from the request


def test_an_unknown_cadre_is_named(log):
    with pytest.raises(UnknownReference) as caught:
        log.run(visit(cadre_ids=("c1", "ghost")))
    assert caught.value.to_dict() == {"errors": {"cadre_ids": ["unknown cadre 'ghost'"]}}
    assert log.history("visit-v1") == []


def test_a_visit_before_enrolment_or_with_a_repeated_cadre_is_rejected(log):
    with pytest.raises(Rejected, match="not on the roster on 2023-12-31"):
        log.run(visit(date=date(2023, 12, 31)))
    with pytest.raises(Rejected, match="more than once"):
        log.run(visit(cadre_ids=("c1", "c1")))


def test_a_visit_in_the_future_is_rejected_in_the_district_time_zone(log):
    just_before_midnight = datetime(2024, 3, 28, 15, 59, tzinfo=UTC)  # 23:59 on the 28th local
    with pytest.raises(Rejected) as caught:
        log.run(visit(date=date(2024, 3, 29)), just_before_midnight)
    assert caught.value.field == "date"
    assert "today is 2024-03-28 in Asia/Shanghai" in caught.value.reason
    after_midnight = datetime(2024, 3, 28, 16, 0, tzinfo=UTC)
    assert log.one(visit(date=date(2024, 3, 29)), after_midnight).data["date"] == "2024-03-29"


def test_started_at_late_at_night_utc_is_the_next_local_day(log):
    late = datetime(2024, 3, 27, 18, 30, tzinfo=UTC)  # 02:30 on the 28th in Shanghai
    event = log.one(visit(date=None, started_at=late))
    assert event.data["date"] == "2024-03-28"
    assert event.data["started_at"] == "2024-03-27T18:30:00+00:00"
    assert event.occurred_at == late
    with pytest.raises(Rejected) as caught:
        log.run(visit("v2", date=date(2024, 3, 27), started_at=late))
    assert caught.value.to_dict() == {
        "errors": {"started_at": [
            "falls on 2024-03-28 in Asia/Shanghai, not on the visit date 2024-03-27"
        ]}
    }
    with pytest.raises(Rejected) as caught:
        log.run(visit("v3", date=None, started_at=NOW + timedelta(minutes=5)))
    assert caught.value.field == "started_at"


@pytest.mark.parametrize(
    ("recorded_local", "backfilled"),
    [
        (datetime(2024, 3, 4, 23, 59), False),  # exactly backfill_days (3) later
        (datetime(2024, 3, 5, 0, 0), True),  # one day more
        (datetime(2024, 3, 1, 8, 0), False),  # the same day
    ],
)
def test_backfilled_is_more_than_backfill_days_after_the_date(log, recorded_local, backfilled):
    now = recorded_local.replace(tzinfo=POLICY.tz)
    event = log.one(visit(date=date(2024, 3, 1)), now)
    assert event.data["backfilled"] is backfilled


def test_a_retried_visit_is_idempotent_and_a_different_one_conflicts(log):
    command = visit(target={"kind": "household", "resident_id": "r-1", "resident": RESIDENT})
    log.one(command)
    assert log.run(command, NOW + timedelta(days=9)) == []
    with pytest.raises(Conflict) as caught:
        log.run(replace(command, cadre_ids=("c1", "c2")))
    assert caught.value.field == "id"


def test_a_multi_cadre_visit_names_every_cadre(log):
    event = log.one(visit(cadre_ids=("c1", "c2")))
    assert event.data["cadre_ids"] == ["c1", "c2"]


# --- corrections and retractions ----------------------------------------------------------------


def test_a_correction_carries_only_the_changed_fields_and_the_reason(log):
    log.one(visit(helped=("difficulty",)))
    correction = d.CorrectVisit(
        "v1", {"helped": ("difficulty", "safety"), "date": date(2024, 3, 28)}, "forgot one"
    )
    event = log.one(correction)
    assert event.type == "visit.corrected"
    assert event.data == {
        "visit_id": "v1", "helped": ["difficulty", "safety"], "reason": "forgot one",
        "backfilled": False,
    }
    assert event.occurred_at is None
    assert event_data_valid(event)["helped"] == ("difficulty", "safety")
    assert log.run(correction) == []  # already so


def test_moving_the_date_recomputes_backfilled_against_the_first_recording(log):
    recorded = datetime(2024, 3, 10, 2, 0, tzinfo=UTC)
    log.one(visit(date=date(2024, 3, 8)), recorded)
    much_later = datetime(2024, 4, 30, 2, 0, tzinfo=UTC)
    earlier = log.one(d.CorrectVisit("v1", {"date": date(2024, 3, 6)}, "wrong day"), much_later)
    assert earlier.data == {
        "visit_id": "v1", "date": "2024-03-06", "reason": "wrong day", "backfilled": True
    }
    later = log.one(d.CorrectVisit("v1", {"date": date(2024, 3, 7)}, "no, the 7th"), much_later)
    assert later.data["backfilled"] is False  # 10 March - 7 March = 3 days: in time
    assert d.fold_visit(log.history("visit-v1")).backfilled is False


def test_a_corrected_cadre_list_is_checked_against_the_roster(log):
    log.one(visit())
    with pytest.raises(UnknownReference) as caught:
        log.run(d.CorrectVisit("v1", {"cadre_ids": ("c1", "c7")}, "add colleague"))
    assert caught.value.id == "c7"
    event = log.one(d.CorrectVisit("v1", {"cadre_ids": ("c2",)}, "it was Zhao"))
    assert event.data == {
        "visit_id": "v1", "cadre_ids": ["c2"], "reason": "it was Zhao", "backfilled": False,
        "pending_cadre_ids": [],
    }
    with pytest.raises(Rejected) as caught:
        log.run(d.CorrectVisit("v1", {"date": date(2024, 3, 30)}, "typo"))
    assert caught.value.field == "date"


def test_a_corrected_start_time_moves_the_date_with_it(log):
    log.one(visit(date=date(2024, 3, 27)))
    late = datetime(2024, 3, 27, 18, 30, tzinfo=UTC)
    event = log.one(d.CorrectVisit("v1", {"started_at": late}, "add the time"))
    assert event.data["date"] == "2024-03-28"
    assert event.data["started_at"] == "2024-03-27T18:30:00+00:00"


def test_a_corrected_resident_keeps_their_id_and_stays_personal(log):
    target = {"kind": "household", "resident_id": "r-1", "resident": RESIDENT}
    log.one(visit(target=target))
    new_phone = {**RESIDENT, "phone": "13900000000"}
    event = log.one(d.CorrectVisit(
        "v1", {"target": {"kind": "household", "resident_id": None, "resident": new_phone}},
        "phone number",
    ))
    assert event.subject == "r-1" and event.personal == ("target.resident",)
    assert event.data["target"] == {"kind": "household", "resident_id": "r-1",
                                    "resident": new_phone}


def test_correcting_what_cannot_be_corrected_is_rejected(log):
    log.one(visit())
    with pytest.raises(Rejected) as caught:
        log.run(d.CorrectVisit("v1", {"backfilled": False}, "sneaky"))
    assert caught.value.to_dict() == {"errors": {"backfilled": ["cannot be corrected"]}}
    with pytest.raises(NotFound) as caught:
        log.run(d.CorrectVisit("v404", {"date": date(2024, 3, 1)}, "x"))
    assert caught.value.http_status == 404


def test_a_retraction_is_final(log):
    log.one(visit())
    event = log.one(d.RetractVisit("v1", "recorded twice"))
    assert event.data == {"visit_id": "v1", "reason": "recorded twice"}
    with pytest.raises(Conflict, match="retracted"):
        log.run(d.CorrectVisit("v1", {"date": date(2024, 3, 27)}, "too late"))
    with pytest.raises(Conflict, match="retracted"):
        log.run(d.RetractVisit("v1", "again"))
    state = d.fold_visit(log.history("visit-v1"))
    assert (state.retracted, state.retraction_reason, state.version) == (
        True, "recorded twice", 2
    )
    with pytest.raises(NotFound):
        log.run(d.RetractVisit("v2", "never was"))


def test_a_visit_reads_back_in_the_requests_shape(log):
    target = {"kind": "household", "resident_id": "r-1", "resident": RESIDENT}
    log.one(visit(target=target))
    log.one(d.CorrectVisit("v1", {"tags": ("livelihood",)}, "tag"))
    body = s.VisitSchema().dump(d.read_back(d.fold_visit(log.history("visit-v1"))))
    assert body["id"] == "v1"
    assert body["target"] == {"kind": "household", "resident": {"id": "r-1", **RESIDENT}}
    assert body["tags"] == ["livelihood"]
    assert (body["corrections"], body["version"], body["retracted"]) == (1, 2, False)
    assert body["recorded_at"] == "2024-03-29T02:00:00+00:00"
    forgotten = replace(log.history("visit-v1")[0], data={
        **log.history("visit-v1")[0].data,
        "target": {"kind": "household", "resident_id": "r-1", "resident": None},
    })
    read = d.read_back(d.fold_visit([forgotten]))
    assert read["target"]["resident"] == {"id": "r-1", "name": None, "phone": None,
                                          "address": None}


def test_every_event_a_month_of_work_produces_fits_the_event_contract(log):
    events = [
        *log.run(d.SetUnitDay("u2", 10, date(2024, 4, 1))),
        *log.run(d.TransferCadre("c2", "u1", date(2024, 3, 15))),
        *log.run(d.GrantLeave("c1", date(2024, 3, 1), date(2024, 3, 2), "ill")),
        *log.run(visit(target={"kind": "petitioner", "resident_id": "r", "resident": RESIDENT},
                       hazards=({"description": "loose wiring", "status": "referred"},),
                       evidence=({"kind": "photo", "ref": "s3://b/1.jpg"},))),
        *log.run(d.CorrectVisit("v1", {"disputes": ({"description": "fence",
                                                     "status": "resolved"},)}, "add")),
        *log.run(d.RetractVisit("v1", "duplicate")),
        *log.run(d.RemoveCadre("c2", date(2024, 3, 25), "moved away")),
    ]
    assert [e.type for e in events] == [
        "unit.unit_day_set", "cadre.transferred", "cadre.leave_granted", "visit.recorded",
        "visit.corrected", "visit.retracted", "cadre.removed",
    ]
    for event in events:
        event_data_valid(event)
    first = [r for r in log.records if r.type in d.ROSTER_EVENT_TYPES][:4]
    for record in first:
        s.EVENT_SCHEMAS[record.type]().load(record.data)


def test_decisions_need_an_aware_now(log):
    with pytest.raises(ValueError, match="timezone-aware"):
        d.decide(visit(), [], log.roster(), datetime(2024, 3, 29), POLICY, principal=OPERATOR)


def test_streams_are_named_by_kind_and_id():
    assert d.stream_for(d.RegisterUnit("u1", "x", "department")) == "unit-u1"
    assert d.stream_for(d.GrantLeave("c1", date(2024, 1, 1), date(2024, 1, 1), "x")) == "cadre-c1"
    assert d.stream_for(d.RetractVisit("v1", "x")) == "visit-v1"


# --- errors cross RPC intact --------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        Rejected("date", "is in the future"),
        UnknownReference("cadre", "c9", "cadre_ids"),
        Conflict("visit 'v1' was retracted", "id"),
        NotFound("visit", "v9"),
        Invalid({"cadre_ids": {"0": ["not an id"]}}),
    ],
)
def test_errors_come_back_from_rpc_as_the_same_class(error):
    wire = json.loads(json.dumps(serialize(error)))
    back = deserialize(wire)
    assert type(back) is type(error)
    assert back.to_dict() == error.to_dict()
    assert back.http_status == error.http_status


# --- the wire contract --------------------------------------------------------------------------


def messages(schema: type, payload: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        schema().load(payload)
    return caught.value.messages


BODY = {
    "id": "v-1",
    "cadre_ids": ["c1", "c2"],
    "date": "2024-03-28",
    "place": {"township": "Qingshan", "community": "Riverside"},
    "target": {"kind": "empty_nest_elder", "resident": {"name": "Wang Fang"}},
    "diary": {"worries": "winter heating"},
    "delivered": ["relief", "services"],
    "helped": ["difficulty"],
    "hazards": [{"description": "gas cylinder indoors"}],
    "tags": ["empty_nest_elderly"],
}


def test_a_visit_request_loads_into_the_command():
    loaded = s.RecordVisitSchema().load(BODY)
    command = d.RecordVisit(**loaded)
    assert command.visit_id == "v-1"
    assert command.cadre_ids == ("c1", "c2")
    assert command.date == date(2024, 3, 28)
    assert command.target == {
        "kind": "empty_nest_elder", "resident_id": None,  # the service issues one
        "resident": {"name": "Wang Fang", "phone": None, "address": None},
    }
    assert command.diary["worries"] == "winter heating" and command.diary["thinks"] == ""
    assert command.hazards == ({"description": "gas cylinder indoors", "status": "open"},)
    assert command.evidence == ()
    again = s.RecordVisitSchema().load(BODY)
    assert again["target"]["resident_id"] == loaded["target"]["resident_id"]


def test_a_visit_without_an_id_gets_a_fresh_one():
    body = {k: v for k, v in BODY.items() if k != "id"}
    first, second = s.RecordVisitSchema().load(body), s.RecordVisitSchema().load(body)
    assert first["visit_id"] != second["visit_id"]
    assert len(first["visit_id"]) == 36


def test_a_bad_visit_request_names_each_field_and_reason():
    bad = {
        **BODY,
        "id": "no spaces allowed",
        "cadre_ids": [],
        "started_at": "2024-03-28T09:00:00",
        "place": {"township": " "},
        "target": {"kind": "alien", "resident": {"phone": "call me"}},
        "delivered": ["cash"],
        "tags": ["livelihood", "livelihood"],
        "mood": "good",
    }
    errors = messages(s.RecordVisitSchema, bad)
    assert errors["id"][0].startswith("must be 1-100 letters")
    assert errors["cadre_ids"] == ["Shorter than minimum length 1."]
    assert errors["started_at"] == ["Not a valid aware datetime."]
    assert errors["place"] == {"township": ["must not be blank"]}
    assert errors["target"]["kind"][0].startswith("Must be one of: household")
    assert errors["target"]["resident"] == {"name": ["Missing data for required field."],
                                            "phone": ["not a phone number"]}
    assert errors["delivered"] == {0: ["Must be one of: policy, relief, technology, "
                                       "information, legal, services."]}
    assert errors["tags"] == ["must not name an item twice"]
    assert errors["mood"] == ["Unknown field."]
    both = {**BODY, "place": {"township": "Q", "village": "A", "community": "B"}}
    assert messages(s.RecordVisitSchema, both) == {
        "place": {"community": ["give a village or a community, not both"]}
    }


def test_a_visit_needs_a_date_or_a_start_time():
    body = {k: v for k, v in BODY.items() if k != "date"}
    assert messages(s.RecordVisitSchema, body) == {
        "date": ["required when started_at is not given"]
    }
    timed = s.RecordVisitSchema().load({**body, "started_at": "2024-03-27T18:30:00Z"})
    assert timed["date"] is None and timed["started_at"].tzinfo is not None


def test_resident_fields_are_marked_personal():
    for schema in (s.ResidentSchema, s.ResidentData, s.ResidentReadSchema):
        marked = {n for n, f in schema().fields.items() if f.metadata.get("personal")}
        assert marked == {"name", "phone", "address"}
    assert not s.TargetSchema().fields["kind"].metadata.get("personal")


def test_a_correction_loads_only_what_it_changes():
    loaded = s.CorrectVisitSchema().load({"date": "2024-03-27", "reason": "typo"})
    command = d.CorrectVisit("v1", **loaded)
    assert command.changes == {"date": date(2024, 3, 27)}
    assert command.reason == "typo"
    assert "name at least one field" in messages(s.CorrectVisitSchema, {"reason": "x"})[
        "_schema"][0]
    assert messages(s.CorrectVisitSchema, {"date": None, "reason": "x"}) == {
        "date": ["Field may not be null."]
    }
    assert messages(s.CorrectVisitSchema, {"helped": ["safety"]}) == {
        "reason": ["Missing data for required field."]
    }


def test_roster_requests_load_into_commands_and_name_bad_fields():
    unit = d.RegisterUnit(**s.RegisterUnitSchema().load(
        {"id": "u1", "name": "Civil Affairs", "kind": "department", "unit_day": 31}
    ))
    assert unit == d.RegisterUnit("u1", "Civil Affairs", "department", 31)
    assert messages(s.RegisterUnitSchema, {"id": "u1", "name": "x", "kind": "club",
                                           "unit_day": 32}) == {
        "kind": ["Must be one of: department, township, street, community."],
        "unit_day": ["Must be greater than or equal to 1 and less than or equal to 31."],
    }
    cadre = d.EnrolCadre(**s.EnrolCadreSchema().load(
        {"id": "c1", "name": "Li", "unit_id": "u1", "role": "head", "liaison_unit_ids": ["u2"]}
    ))
    assert cadre == d.EnrolCadre("c1", "Li", "u1", "head", ("u2",), None)
    assert messages(s.EnrolCadreSchema, {"id": "c1", "name": "Li", "unit_id": "u1",
                                         "role": "boss"}) == {
        "role": ["Must be one of: staff, leader, head."]
    }
    leave = d.GrantLeave("c1", **s.GrantLeaveSchema().load(
        {"from": "2024-03-01", "to": "2024-03-31", "reason": "study"}
    ))
    assert (leave.start, leave.end) == (date(2024, 3, 1), date(2024, 3, 31))
    assert messages(s.GrantLeaveSchema, {"from": "2024-03-02", "to": "2024-03-01",
                                         "reason": "x"}) == {"to": ["must not be before from"]}
    transfer = d.TransferCadre("c1", **s.TransferCadreSchema().load(
        {"to_unit_id": "u2", "effective_from": "2024-03-15"}
    ))
    assert transfer.effective_from == date(2024, 3, 15)
    assert messages(s.RemoveCadreSchema, {"effective_from": "soon", "reason": ""}) == {
        "effective_from": ["Not a valid date."],
        "reason": ["must not be blank"],
    }
    assert set(s.COMMAND_SCHEMAS) == set(commands.ACTS) - {d.RemindCadre}  # time-driven only


def test_an_event_that_breaks_the_contract_is_caught():
    data = {"visit_id": "v1", "reason": "x"}
    assert s.VisitRetractedData().load(data) == data
    errors = messages(s.VisitRecordedData, {"visit_id": "v1", "backfilled": False})
    assert errors["cadre_ids"] == ["Missing data for required field."]
    assert errors["date"] == ["Missing data for required field."]
    assert errors["diary"] == ["Missing data for required field."]
