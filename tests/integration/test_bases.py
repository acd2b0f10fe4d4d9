"""A write service declared by its command table alone, run for real: its RPCs are generated
by shared.runtime.bases.WriteService, served by nameko over RabbitMQ, and append to its own
log; a view's live delivery is generated for each log it reads."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import pytest
from marshmallow import Schema, fields
from nameko.exceptions import IncorrectSignature, RemoteError

from services.compliance.service import ComplianceService
from services.visits.schemas import AcceptedSchema
from shared.eventlog import NewEvent
from shared.kernel.errors import Denied, Invalid
from shared.runtime import bases, declare
from shared.runtime.auth import Principal
from shared.runtime.config import load_config
from shared.runtime.rpc import cluster
from shared.runtime.trust import Signer, generate_key

KEY = generate_key()
OPERATOR = Principal("operator", token_id="op")


@dataclass(frozen=True)
class PinNote:
    note_id: str
    reason: str


class PinNoteSchema(Schema):
    reason = fields.String(required=True)


PIN = declare.command(PinNote, "pin_note", "POST", "/notes/{note_id}/pins", "Pin a note",
                      "operator", "notes", service="notes", roles=("operator",),
                      request=PinNoteSchema, response=AcceptedSchema)


class NotesService(bases.WriteService):
    name = "notes"
    commands = (PIN,)

    def decide(self, command, history, who, now):
        return [NewEvent("note.pinned", {"note_id": command.note_id, "reason": command.reason,
                                         "by": who.role})]

    def stream_for(self, command):
        return f"note-{command.note_id}"


class NotesView(bases.ViewService):
    name = "note_view"
    reads = ("notes",)


def test_the_table_gives_each_command_an_rpc_with_its_exact_signature():
    [entrypoint] = NotesService.pin_note.nameko_entrypoints
    assert type(entrypoint).__name__ == "Rpc"
    assert list(inspect.signature(NotesService.pin_note).parameters) == [
        "self", "principal", "note_id", "payload", "command_id"]
    inspect.getcallargs(NotesService.pin_note, None, "p", "n-1", {})  # what nameko checks
    with pytest.raises(TypeError):
        inspect.getcallargs(NotesService.pin_note, None, "p", {})
    for name in ("read_log", "status"):
        assert getattr(NotesService, name).nameko_entrypoints


def test_a_view_gets_a_live_handler_per_log_it_reads():
    [handler] = NotesView.on_notes_event.nameko_entrypoints
    assert (handler.source_service, handler.event_type) == ("notes", "#")
    [visits] = ComplianceService.on_visits_event.nameko_entrypoints  # from the catalogue
    assert visits.source_service == "visits"
    for name in ("catch_up", "status", "rebuild"):
        assert getattr(NotesView, name).nameko_entrypoints


def test_generated_rpcs_decide_and_append_over_the_broker(container_factory, amqp_uri, tmp_path):
    config = load_config("visits")
    config.update(AMQP_URI=amqp_uri, DATABASE_URL=f"sqlite:///{tmp_path}/notes.db",
                  KEYS_DATABASE_URL="", PRINCIPAL_KEY=KEY, RELAY_POLL_SECONDS=0.2)
    container_factory(NotesService, config).start()
    signer = Signer(KEY)
    body = {"reason": "keep"}
    with cluster(amqp_uri, timeout=10) as rpc:
        signed = signer.sign(OPERATOR, "pin_note", ["n-1", body, "cmd-1"])
        first = rpc.notes.pin_note(signed, "n-1", body, "cmd-1")
        assert first == {"id": "n-1", "position": 1}
        assert rpc.notes.pin_note(signed, "n-1", body, "cmd-1") == first  # a retry: no new event
        unsigned = signer.sign(OPERATOR, "pin_note", ["n-2", body, None])
        with pytest.raises(Denied, match="signed for another call"):
            rpc.notes.pin_note(unsigned, "n-1", body)
        with pytest.raises(Invalid) as invalid:  # the row's schema loads the payload
            rpc.notes.pin_note(signer.sign(OPERATOR, "pin_note", ["n-1", {}, None]), "n-1", {})
        assert list(invalid.value.errors()) == ["reason"]
        with pytest.raises((IncorrectSignature, RemoteError), match="payload"):
            rpc.notes.pin_note(signed, body)
        [event] = rpc.notes.read_log(after=0)
        assert (event["type"], event["data"]) == (
            "note.pinned", {"note_id": "n-1", "reason": "keep", "by": "operator"})
        assert rpc.notes.status()["last_position"] == 1
