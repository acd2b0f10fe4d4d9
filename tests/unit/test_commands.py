"""The shared service layer: idempotent retries, conflicts reported, the event contract kept."""

from __future__ import annotations

import pytest
from marshmallow import Schema, fields

from shared.commands import ContractBroken, execute, load
from shared.errors import Conflict, Invalid
from shared.eventlog import EventLog, NewEvent


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
