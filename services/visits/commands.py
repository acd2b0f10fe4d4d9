"""The visits service declared once: each command with its schema, its dataclass, its decision
and stream (which `domain.decide` and `domain.stream_for` look up here), the gateway's role
filter and its HTTP route; the time-driven acts (no route: only the service's clock sends
them); then the queries it answers.

The service's RPC entrypoints (shared/runtime/bases.py), the gateway's routes and dispatch
and the OpenAPI document are generated from these rows. The fine rules (whose visit, which
unit on which day) are the domain's, decided with the signed principal (rights.py); `roles` is
only the edge's first filter.
"""

from __future__ import annotations

import uuid
from typing import Any

from services.visits import domain, rights
from services.visits import schemas as s
from shared.runtime.declare import (
    EVERYONE,
    Act,
    Command,
    Route,
    acts,
    command,
    deprecated_alias,
)

SERVICE = "visits"
ROSTER_WRITERS = ("operator",)
VISIT_WRITERS = rights.WRITERS  # the edge filters as the decisions do

OPERATOR = "operator"
VISIT_WRITER_RULE = (
    "operator any; cadre: visits they take part in; head: visits with a cadre of their unit "
    "on the visit's date. Cadres the caller cannot vouch for (other units) are pending until "
    "they confirm"
)
VISIT_CHANGER_RULE = (
    "operator; the visit's confirmed cadres; the head of a confirmed cadre's unit on the "
    "visit's date. Taking a cadre off: only that cadre, their head or an operator"
)
PARTICIPANT_RULE = (
    "the cadre themselves, the head of their unit on the visit's date, or an operator"
)

# Visit ids made from a keyed request's command id, so its retries get the same id back.
_IDS = uuid.UUID("0f9c6a52-3d4b-4c59-9a4e-5b7f2e8d1c33")


def with_visit_id(payload: Any, command_id: str | None) -> Any:
    """A visit sent without `id` gets one: from the command id when the request carried an
    Idempotency-Key (its retries share the command id, so they land on the same visit),
    else a fresh one, so two unkeyed requests with the same content are two visits."""
    if isinstance(payload, dict) and not payload.get("id"):
        new_id = uuid.uuid5(_IDS, command_id) if command_id else uuid.uuid4()
        payload = {**payload, "id": str(new_id)}
    return payload


UNIT = "unit-{unit_id}"
CADRE = "cadre-{cadre_id}"
VISIT = "visit-{visit_id}"


def _roster(cls: type, decide: domain.Decision, stream: str, name: str, path: str,
            summary: str, request: type, status: int = 200) -> Command:
    return command(cls, name, "POST", path, summary, OPERATOR, "roster", service=SERVICE,
                   roles=ROSTER_WRITERS, request=request, response=s.AcceptedSchema,
                   status=status, decide=decide, stream=stream)


def _visit(cls: type, decide: domain.Decision, name: str, path: str, summary: str,
           allowed: str, request: type, response: type = s.AcceptedSchema, status: int = 200,
           **extra: Any) -> Command:
    return command(cls, name, "POST", path, summary, allowed, "visits", service=SERVICE,
                   roles=VISIT_WRITERS, request=request, response=response, status=status,
                   decide=decide, stream=VISIT, **extra)


REMOVE_CADRE = _roster(domain.RemoveCadre, domain.remove_cadre, CADRE, "remove_cadre",
                       "/cadres/{cadre_id}/removal", "Remove a cadre from the roster",
                       s.RemoveCadreSchema)
COMMANDS: tuple[Command, ...] = (
    _roster(domain.RegisterUnit, domain.register_unit, UNIT, "register_unit", "/units",
            "Register a unit", s.RegisterUnitSchema, 201),
    _roster(domain.SetUnitDay, domain.set_unit_day, UNIT, "set_unit_day",
            "/units/{unit_id}/unit-day", "Set or clear a unit's own day", s.SetUnitDaySchema),
    _roster(domain.EnrolCadre, domain.enrol_cadre, CADRE, "enrol_cadre", "/cadres",
            "Enrol a cadre on the roster", s.EnrolCadreSchema, 201),
    _roster(domain.TransferCadre, domain.transfer_cadre, CADRE, "transfer_cadre",
            "/cadres/{cadre_id}/transfer", "Transfer a cadre to a unit", s.TransferCadreSchema),
    _roster(domain.GrantLeave, domain.grant_leave, CADRE, "grant_leave",
            "/cadres/{cadre_id}/leave", "Grant a cadre leave", s.GrantLeaveSchema),
    REMOVE_CADRE,
    _visit(domain.RecordVisit, domain.record_visit, "record_visit", "/visits", "Record a visit",
           VISIT_WRITER_RULE, s.RecordVisitSchema, s.VisitRecordedSchema, 201,
           prepare=with_visit_id),
    _visit(domain.CorrectVisit, domain.correct_visit, "correct_visit",
           "/visits/{visit_id}/corrections", "Correct a visit", VISIT_CHANGER_RULE,
           s.CorrectVisitSchema, s.VisitRecordedSchema),
    _visit(domain.RetractVisit, domain.retract_visit, "retract_visit",
           "/visits/{visit_id}/retraction", "Retract a visit", VISIT_CHANGER_RULE + "; a visit "
           "that also counts for cadres the caller may not act for cannot be retracted by them",
           s.RetractVisitSchema),
    _visit(domain.ConfirmParticipation, domain.confirm_participation, "confirm_participation",
           "/visits/{visit_id}/confirmation",
           "Confirm a cadre's participation, so that the visit counts for them",
           PARTICIPANT_RULE, s.ConfirmParticipationSchema),
    _visit(domain.WithdrawParticipation, domain.withdraw_participation,
           "withdraw_participation", "/visits/{visit_id}/withdrawal", "Take a cadre off a visit",
           PARTICIPANT_RULE, s.WithdrawParticipationSchema),
)

# Time-driven: decided like any command, sent only by the service's clock (reminders.py).
TIMED: tuple[Act, ...] = (
    Act(domain.RemindCadre, domain.remind_cadre, "reminder-{cadre_id}-{month}"),
)
ACTS: dict[type, Act] = acts((*COMMANDS, *TIMED))

# Old paths kept for existing clients (OpenAPI marks them deprecated).
ALIASES: tuple[Route, ...] = (
    deprecated_alias(REMOVE_CADRE, "remove_cadre_leaving", "/cadres/{cadre_id}/leaving"),
)

QUERIES: tuple[Route, ...] = (
    Route("get_cadre", "GET", "/cadres/{cadre_id}", "A cadre as the roster knows them now",
          "operator, supervisor, auditor any; head: their unit's; cadre: themselves", "roster",
          service=SERVICE, response=s.CadreSchema),
    Route("get_visit", "GET", "/visits/{visit_id}", "A visit as it stands after corrections",
          "operator, supervisor, auditor any; cadre: theirs; head: with a cadre of their unit on "
          "its date. Residents' details: the visit's confirmed cadres and their head; others "
          "only with a `purpose`, which is recorded", "visits", service=SERVICE,
          response=s.VisitSchema, query=s.VisitQuerySchema, roles=EVERYONE, signed=True),
)

ROUTES: tuple[Route, ...] = (*(row.route for row in COMMANDS), *ALIASES, *QUERIES)
COMMAND_SCHEMAS: dict[type, type] = {row.command: row.schema for row in COMMANDS}
