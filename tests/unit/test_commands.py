"""The shared service layer: idempotent retries, conflicts reported, the event contract kept."""

from __future__ import annotations

import pytest
from marshmallow import Schema, fields

from shared.eventlog import EventLog, NewEvent
from shared.kernel.commands import ContractBroken, execute, load
from shared.kernel.contracts import personal_paths, subject_path
from shared.kernel.errors import Conflict, Invalid


class ThingDone(Schema):
    thing_id = fields.String(required=True)
    size = fields.Integer(required=True)


CONTRACT = {"thing.done": ThingDone}


@pytest.fixture
def log(tmp_path) -> EventLog:
    return EventLog.open(f"sqlite:///{tmp_path / 'log.db'}", service="things")


def test_an_event_its_schema_refuses_is_never_appended(log) -> None:
    def decide(history):
        return [NewEvent("thing.done", {"thing_id": "t1", "size": "large"})]

    with pytest.raises(ContractBroken, match="size"):
        execute(log, "thing-t1", decide, command_id="c1", actor="a", contract=CONTRACT)
    assert log.last_position() == 0


def test_a_retry_returns_the_first_records_without_deciding_again(log) -> None:
    calls = []

    def decide(history):
        calls.append(len(history))
        if history:
            raise Conflict("already done")
        return [NewEvent("thing.done", {"thing_id": "t1", "size": 3})]

    first = execute(log, "thing-t1", decide, command_id="c1", actor="a", contract=CONTRACT)
    again = execute(log, "thing-t1", decide, command_id="c1", actor="a", contract=CONTRACT)
    assert [r.position for r in again] == [r.position for r in first] == [1]
    assert calls == [0]
    with pytest.raises(Conflict):
        execute(log, "thing-t1", decide, command_id="c2", actor="a", contract=CONTRACT)


def test_load_names_each_bad_field_and_refuses_a_non_object() -> None:
    with pytest.raises(Invalid) as bad:
        load(ThingDone, {"size": "x"})
    assert bad.value.to_dict() == {"errors": {
        "size": ["Not a valid integer."], "thing_id": ["Missing data for required field."]}}
    with pytest.raises(Invalid) as not_object:
        load(ThingDone, ["size"])
    assert not_object.value.to_dict() == {"errors": {"body": ["must be a JSON object"]}}


class Person(Schema):
    name = fields.String(required=True, metadata={"personal": True})
    phone = fields.String(allow_none=True, metadata={"personal": True})


class Met(Schema):
    thing_id = fields.String(required=True)
    person_id = fields.String(allow_none=True, metadata={"subject": True})
    person = fields.Nested(Person, allow_none=True)
    note = fields.String(metadata={"personal": True})


def test_the_schema_decides_what_is_personal() -> None:
    assert personal_paths(Met) == ("person", "note")  # a wholly personal object is one value
    assert subject_path(Met) == "person_id"
    from services.visits import schemas

    assert personal_paths(schemas.VisitRecordedData) == ("target.resident",)
    assert subject_path(schemas.VisitRecordedData) == "target.resident_id"


@pytest.mark.parametrize(("personal", "subject", "ok"), [
    (("person",), "p1", True),           # exactly what the schema marks, its subject
    ((), None, False),                   # personal data left in clear
    (("person",), "someone-else", False),  # encrypted under another subject's key
    (("person", "thing_id"), "p1", False),  # marks a field the schema does not
])
def test_events_must_mark_what_their_schema_marks(log, personal, subject, ok) -> None:
    data = {"thing_id": "t1", "person_id": "p1", "person": {"name": "Wang", "phone": None}}

    def decide(history):
        return [NewEvent("thing.met", data, subject=subject, personal=personal)]

    contract = {"thing.met": Met}
    if ok:
        execute(log, "thing-t1", decide, command_id=None, actor="a", contract=contract)
        assert log.last_position() == 1
    else:
        with pytest.raises(ContractBroken):
            execute(log, "thing-t1", decide, command_id=None, actor="a", contract=contract)
        assert log.last_position() == 0


def test_absent_personal_data_needs_no_mark(log) -> None:
    def decide(history):
        return [NewEvent("thing.met", {"thing_id": "t1", "person_id": None, "person": None})]

    execute(log, "thing-t1", decide, command_id=None, actor="a", contract={"thing.met": Met})
    assert log.last_position() == 1
