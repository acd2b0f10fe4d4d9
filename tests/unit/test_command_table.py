"""The command table is the one place that names each command's decision and stream: the
domain's `decide` and `stream_for` and the write service's default stream all read it."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from datetime import date

import pytest
from marshmallow import Schema

from services.visits import commands
from services.visits import domain as d
from services.visits.schemas import AcceptedSchema
from services.visits.service import VisitsService
from shared.eventlog import NewEvent
from shared.runtime import bases, declare


def test_every_command_of_the_domain_has_one_row_with_its_decision_and_stream():
    assert set(commands.ACTS) == set(typing.get_args(d.Command))
    for row in commands.COMMANDS:
        assert row.act is not None and commands.ACTS[row.command] is row.act
        assert row.act.decide.__module__ == d.__name__
    assert VisitsService.acts == {row.command: row.act for row in commands.COMMANDS}


def test_a_time_driven_command_has_a_decision_and_a_stream_but_no_route_or_rpc():
    [timed] = commands.TIMED
    assert timed.command is d.RemindCadre and timed.decide is d.remind_cadre
    assert d.RemindCadre not in {row.command for row in commands.COMMANDS}
    assert not hasattr(VisitsService, "remind_cadre")
    reminder = d.RemindCadre("c1", "2024-03", "quota", "before_fixed_day", 1, False)
    assert d.stream_for(reminder) == "reminder-c1-2024-03"


def test_streams_come_from_the_rows_templates():
    removal = d.RemoveCadre("c7", date(2024, 3, 1), "retired")
    assert d.stream_for(removal) == "cadre-c7" == VisitsService().stream_for(removal)
    assert d.stream_for(d.SetUnitDay("u1", 5, date(2024, 3, 1))) == "unit-u1"
    assert d.stream_for(d.ConfirmParticipation("v9")) == "visit-v9"


def test_a_command_declared_twice_is_refused():
    row = commands.REMOVE_CADRE
    with pytest.raises(ValueError, match="RemoveCadre is declared twice"):
        declare.acts((row, declare.Act(d.RemoveCadre, d.remove_cadre, "x-{cadre_id}")))


@dataclass(frozen=True)
class Ping:
    ping_id: str


def ping(command: Ping, *_: object) -> list[NewEvent]:
    return [NewEvent("ping.sent", {"ping_id": command.ping_id})]


def test_a_new_service_names_its_streams_in_its_table_only():
    row = declare.command(Ping, "ping", "POST", "/pings/{ping_id}", "Ping", "operator", "pings",
                          service="pings", roles=("operator",), request=Schema.from_dict({}),
                          response=AcceptedSchema, decide=ping, stream="ping-{ping_id}")

    class PingService(bases.WriteService):
        name = "pings"
        commands = (row,)

    assert PingService().stream_for(Ping("p-1")) == "ping-p-1"
    assert PingService.acts[Ping].decide is ping
    with pytest.raises(NotImplementedError, match="RemindCadre"):  # not a command of this table
        PingService().stream_for(d.RemindCadre("c1", "2024-03", "r", "l", 0, False))
