"""The shared service layer: idempotent retries, conflicts reported, the event contract kept."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from marshmallow import Schema, fields

from shared.eventlog import EventLog, NewEvent, Record
from shared.kernel.commands import ContractBroken, Spares, execute, load
from shared.kernel.contracts import personal_paths, subject_path
from shared.kernel.errors import Conflict, Invalid, Rejected
from shared.kernel.fields import fresh_subject


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


# --- spare subject ids: a new resident's key stored before the command -------------------------


def _new_person_id() -> str:
    return f"p-{uuid.uuid4()}"


@dataclass(frozen=True)
class Register:
    name: str
    known_id: str | None = None  # a returning person's id
    fresh_id: str = fresh_subject(_new_person_id)


def _register(command: Register) -> Callable[[list[Record]], list[NewEvent]]:
    """Refuses an empty name, registers a nameless "visitor" without a person, else the
    person (known or fresh) with their name as personal data."""
    def decide(history: list[Record]) -> list[NewEvent]:
        if not command.name:
            raise Rejected("name", "must not be empty")
        if command.name == "visitor":
            return [NewEvent("thing.noted", {"who": "a visitor"})]
        person = command.known_id or command.fresh_id
        return [NewEvent("person.registered", {"person_id": person, "name": command.name},
                         subject=person, personal=("name",))]
    return decide


@pytest.fixture
def apart(tmp_path) -> Iterator[EventLog]:
    log = EventLog.open(f"sqlite:///{tmp_path / 'log.db'}", service="things",
                        keys_url=f"sqlite:///{tmp_path / 'keys.db'}")
    yield log
    log.close()


def _run(log: EventLog, name: str, known_id: str | None = None,
         decide: Callable[[Register], Callable[[list[Record]], list[NewEvent]]] = _register,
         ) -> tuple[str, list[Record]]:
    """One command as a service runs it: its spares taken, built, executed, settled."""
    with Spares(log, Register) as spares:
        command = Register(name, known_id, **spares.values)
        records = execute(log, f"thing-{uuid.uuid4()}", decide(command), command_id=None,
                          actor="a", spares=spares)
    return command.fresh_id, records


def test_a_new_person_gets_a_spare_whose_key_was_stored_before(apart) -> None:
    with Spares(apart, Register) as spares:
        spare = spares.values["fresh_id"]
        assert apart.keys.holds(spare) is True, "stored before the command is decided"
        records = execute(apart, "thing-a", _register(Register("Ann", **spares.values)),
                          command_id=None, actor="a", spares=spares)
    assert records[0].subject == spare
    assert apart.read_stream("thing-a")[0].data["name"] == "Ann"
    assert _run(apart, "Bob")[0] != spare


def test_a_spare_no_event_used_is_handed_out_again(apart) -> None:
    refused = Spares(apart, Register)
    with pytest.raises(Rejected), refused:
        execute(apart, "thing-x", _register(Register("", **refused.values)),
                command_id=None, actor="a", spares=refused)
    unused, records = _run(apart, "visitor")
    assert unused == refused.values["fresh_id"], "the refused command's spare came back"
    assert records[0].subject is None
    returning, _ = _run(apart, "Bob", known_id="p-known")
    assert returning == unused, "a returning person's command did not use it either"
    used, _ = _run(apart, "Cy")
    assert used == unused, "the next new person gets it"
    assert _run(apart, "Di")[0] != used, "once used, never handed out again"


def test_a_spare_mentioned_anywhere_in_an_events_data_is_used(apart) -> None:
    """Not only as an event's subject: an id inside its data (a list in an object) is used
    too, and never handed out again; one merely looking alike leaves the spare unused."""
    def noting(where: Callable[[str], dict[str, Any]]
               ) -> Callable[[Register], Callable[[list[Record]], list[NewEvent]]]:
        def decide(command: Register) -> Callable[[list[Record]], list[NewEvent]]:
            return lambda history: [NewEvent("thing.noted", where(command.fresh_id))]
        return decide

    unused, _ = _run(apart, "Ann", decide=noting(lambda spare: {"who": spare[:-1]}))
    used, _ = _run(apart, "Bob", decide=noting(lambda spare: {"with": {"ids": ["x", spare]}}))
    assert used == unused, "an id it only looks like did not use the spare"
    assert _run(apart, "Cy")[0] != used, "one inside the data did"


def test_a_command_that_failed_otherwise_never_hands_its_spare_out_again(apart) -> None:
    def broken(command: Register) -> Callable[[list[Record]], list[NewEvent]]:
        def decide(history: list[Record]) -> list[NewEvent]:
            raise OSError("the disk went away")  # did its append commit? unknown
        return decide

    with pytest.raises(OSError), Spares(apart, Register) as spares:
        execute(apart, "thing-y", broken(Register("Ann", **spares.values)), command_id=None,
                actor="a", spares=spares)
    lost = spares.values["fresh_id"]
    assert _run(apart, "Bob")[0] != lost


def test_keys_in_the_logs_database_need_no_spares(log) -> None:
    assert Spares(log, Register).values == {}
    fresh, records = _run(log, "Ann")
    assert records[0].subject == fresh and fresh.startswith("p-")
