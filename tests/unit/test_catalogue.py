"""The catalogue is the one list of services: the CLI, `up`/`status`, the gateway and the broker
users go by it, so a service added there is picked up everywhere."""

from __future__ import annotations

import io
import re

import pytest

from services.gateway.service import GatewayService
from shared.runtime import catalogue
from shared.tools import brokerauth, cli
from shared.tools.platform import Platform

NOTES = catalogue.Service("notes", "write", "services.notes.service:NotesService")
NOTE_VIEW = catalogue.Service("note_view", "view", "services.note_view.service:NoteView",
                              reads=("notes",))


def test_kinds_and_lookups():
    assert catalogue.names() == ("visits", "cases", "compliance", "caseboard", "gateway")
    assert catalogue.names("write") == ("visits", "cases")
    assert catalogue.names("write", "view") == ("visits", "cases", "compliance", "caseboard")
    assert catalogue.get("compliance").reads == ("visits",)
    assert catalogue.get("caseboard").reads == ("cases",)
    assert catalogue.get("cases").reads == ("visits",)  # a write service following a log
    assert catalogue.class_path("services.visits.service") == (
        "services.visits.service:VisitsService")
    assert catalogue.class_path("services.other:Thing") == "services.other:Thing"
    with pytest.raises(KeyError):
        catalogue.get("nobody")


def test_the_gateway_calls_and_probes_every_write_and_view_service():
    assert GatewayService.targets == catalogue.names("write", "view")
    for name in GatewayService.targets:
        assert getattr(GatewayService, f"rpc_{name}").target_service == name


def test_cli_rebuild_choices_are_the_catalogued_views(monkeypatch, capsys):
    assert cli.parser().parse_args(["projections", "rebuild", "compliance"]).projection == (
        "compliance")
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["projections", "rebuild", "visits"])  # a log, not a view
    monkeypatch.setattr(catalogue, "SERVICES", (*catalogue.SERVICES, NOTES, NOTE_VIEW))
    assert cli.parser().parse_args(["projections", "rebuild", "note_view"]).projection == (
        "note_view")


def test_up_gives_each_catalogued_service_its_database_and_each_write_service_its_keys(
        monkeypatch, tmp_path):
    monkeypatch.setattr(catalogue, "SERVICES", (*catalogue.SERVICES, NOTES, NOTE_VIEW))
    for name in ("VISITS", "CASES", "COMPLIANCE", "CASEBOARD", "GATEWAY", "NOTES", "NOTE_VIEW"):
        monkeypatch.delenv(f"{name}_DATABASE_URL", raising=False)
        monkeypatch.delenv(f"{name}_KEYS_DATABASE_URL", raising=False)
    monkeypatch.setenv("GRASSROOTS_SIGNING_KEY", "hmac:c2VjcmV0")
    monkeypatch.setenv("GRASSROOTS_PRINCIPAL_KEY", "c2VjcmV0")
    env = Platform(out=io.StringIO(), var=tmp_path).env("notes")
    for name in ("visits", "compliance", "gateway", "notes", "note_view"):
        assert env[f"{name.upper()}_DATABASE_URL"] == f"sqlite:///{tmp_path / name}.db"
    assert {k for k in env if k.endswith("_KEYS_DATABASE_URL")} == {
        "VISITS_KEYS_DATABASE_URL", "CASES_KEYS_DATABASE_URL", "NOTES_KEYS_DATABASE_URL"}


def test_broker_users_follow_the_catalogue(monkeypatch):
    assert tuple(brokerauth.GRANTS) == (*catalogue.names(), "operator")
    monkeypatch.setattr(catalogue, "SERVICES", (*catalogue.SERVICES, NOTES, NOTE_VIEW))
    grants = brokerauth._grants()
    assert set(grants) == {"visits", "cases", "compliance", "caseboard", "gateway", "notes",
                           "note_view", "operator"}
    assert set(grants["visits"].topics) == {"nameko-rpc", "visits.events", "cases.events",
                                            "notes.events"}
    assert grants["note_view"].topics["notes.events"] == ("^$", "^(#)$")
    assert grants["note_view"].topics["visits.events"] == ("^$", "^$")
    assert r"notes\.(?!read_log$|forget_resident$)" in grants["gateway"].topics["nameko-rpc"][0]
    assert r"note_view\.(status|rebuild)" in grants["operator"].topics["nameko-rpc"][0]


def test_a_write_service_that_follows_a_log_binds_only_the_event_types_it_handles():
    """cases: its own write grant, plus the visits events its handlers take (never `#`: the
    visit events, and the marker of a forgotten resident) and the visits log's read_log/status
    for catching up; it publishes only its own events."""
    grant = brokerauth.GRANTS["cases"]
    assert grant.topics["visits.events"] == (
        "^$", r"^(subject\.forgotten|visit\.corrected|visit\.recorded|visit\.retracted)$")
    assert grant.topics["cases.events"] == (".*", "^$")
    calls = re.compile(grant.topics["nameko-rpc"][0])
    assert calls.match("visits.read_log") and calls.match("visits.status")
    assert not calls.match("visits.record_visit") and not calls.match("cases.register_case")
    assert re.match(grant.configure, "evt-visits-visit.recorded--cases.on_visit_recorded")
    assert not re.match(grant.write, "visits.events")
    assert brokerauth.GRANTS["caseboard"].topics["cases.events"] == ("^$", "^(#)$")
