"""The cases service declared once: each command with its dataclass, decision, stream, the
gateway's role filter and its route; the acts only the service itself sends (its clock, and
the intake that follows visits); then the queries.

One name per act: `assign_case`, POST /cases/{case_id}/assign, `case.assigned`. The fine rules
(which unit, not the resolver) are decided in the domain with the signed principal
(rights.py); `roles` is only the edge's first filter.
"""

from __future__ import annotations

import uuid
from typing import Any

from services.cases import case_commands as c
from services.cases import deadlines as t
from services.cases import decisions as d
from services.cases import rights
from services.cases import schemas as s
from shared.runtime.declare import EVERYONE, Act, Command, Route, acts, command

SERVICE = "cases"
CASE = "case-{case_id}"
UNIT = rights.UNIT_ROLES
SUPERVISOR = rights.SUPERVISORS
UNIT_RULE = "the head or a cadre of the unit the case is assigned to"
SUPERVISOR_RULE = "supervisor"

# Case ids made from a keyed request's command id, so its retries land on the same case.
_IDS = uuid.UUID("6d1f0c1e-2b7a-4f4e-9a55-0c3b8e5f7a21")


def with_case_id(payload: Any, command_id: str | None) -> Any:
    """A case sent without `id` gets one: from the Idempotency-Key's command id when there is
    one (its retries share it), else a fresh one."""
    if isinstance(payload, dict) and not payload.get("id"):
        new_id = uuid.uuid5(_IDS, command_id) if command_id else uuid.uuid4()
        payload = {**payload, "id": str(new_id)}
    return payload


def _case(cls: type, decide: d.Decision, name: str, action: str, summary: str, allowed: str,
          roles: tuple[str, ...], request: type) -> Command:
    return command(cls, name, "POST", f"/cases/{{case_id}}/{action}", summary, allowed, "cases",
                   service=SERVICE, roles=roles, request=request, response=s.AcceptedSchema,
                   decide=decide, stream=CASE)


COMMANDS: tuple[Command, ...] = (
    command(c.RegisterCase, "register_case", "POST", "/cases", "Register a case (立案)",
            "operator, hotline", "cases", service=SERVICE, roles=rights.REGISTRARS,
            request=s.RegisterCaseSchema, response=s.AcceptedSchema, status=201,
            prepare=with_case_id, decide=d.register_case, stream=CASE),
    _case(c.AssignCase, d.assign_case, "assign_case", "assign",
          "Assign a case to a unit (交办), or arbitrate a return: another unit, or the same "
          "one to uphold", SUPERVISOR_RULE, SUPERVISOR, s.AssignCaseSchema),
    _case(c.AcceptCase, d.accept_case, "accept_case", "accept", "Accept a case (签收)",
          UNIT_RULE, UNIT, s.AcceptCaseSchema),
    _case(c.ReturnCase, d.return_case, "return_case", "return",
          "Send a case back with a reason (退回)", UNIT_RULE, UNIT, s.ReturnCaseSchema),
    _case(c.NoteProgress, d.note_progress, "note_progress", "progress", "Note progress",
          UNIT_RULE, UNIT, s.NoteProgressSchema),
    _case(c.RequestExtension, d.request_extension, "request_extension", "extension-requests",
          "Ask for an extension (延期), before the deadline", UNIT_RULE, UNIT,
          s.RequestExtensionSchema),
    _case(c.DecideExtension, d.decide_extension, "decide_extension", "extension-decisions",
          "Approve or deny an extension", SUPERVISOR_RULE, SUPERVISOR, s.DecideExtensionSchema),
    _case(c.ResolveCase, d.resolve_case, "resolve_case", "resolve", "Resolve a case (办结)",
          UNIT_RULE, UNIT, s.ResolveCaseSchema),
    _case(c.RecordCallback, d.record_callback, "record_callback", "callback",
          "Record the resident's verdict (回访); a second unsatisfied one escalates",
          "supervisor, callback; never who resolved it", rights.CALLERS,
          s.RecordCallbackSchema),
    _case(c.ReopenCase, d.reopen_case, "reopen_case", "reopen", "Send a case back for rework "
          "(重办)", SUPERVISOR_RULE, SUPERVISOR, s.ReopenCaseSchema),
    _case(c.CloseCase, d.close_case, "close_case", "close", "Close a case for good (销号)",
          SUPERVISOR_RULE, SUPERVISOR, s.CloseCaseSchema),
    _case(c.ParkCase, d.park_case, "park_case", "park",
          "Park a case until a review date (挂账)", SUPERVISOR_RULE, SUPERVISOR,
          s.ParkCaseSchema),
)

# Sent by the service itself: its clock (timed.py) and its intake of visits.
TIMED: tuple[Act, ...] = (
    Act(c.WarnDeadline, t.warn_deadline, CASE),
    Act(c.MarkOverdue, t.mark_overdue, CASE),
    Act(c.EscalateCase, t.escalate_case, CASE),
    Act(c.UnparkCase, t.unpark_case, CASE),
    Act(c.NoteDifficultyRemoved, d.note_difficulty_removed, CASE),
)
ACTS: dict[type, Act] = acts((*COMMANDS, *TIMED))
NAMES: dict[type, str] = {row.command: row.name for row in COMMANDS}

READ_RULE = ("everyone reads cases; the resident's details only to operators, hotline, "
             "supervisors, callback staff and the unit the case is assigned to")
QUERIES: tuple[Route, ...] = (
    Route("get_case", "GET", "/cases/{case_id}",
          "A case: its state, deadlines and the commands allowed now", READ_RULE, "cases",
          service=SERVICE, response=s.CaseSchema, roles=(*EVERYONE, "hotline", "callback"),
          signed=True),
    Route("get_case_timeline", "GET", "/cases/{case_id}/timeline",
          "Every event of a case: what, who and when (personal fields withheld)",
          "everyone", "cases", service=SERVICE, response=s.TimelineSchema,
          roles=(*EVERYONE, "hotline", "callback"), signed=True),
    Route("list_cases", "GET", "/cases", "Cases by unit, state and overdue, a page at a time",
          READ_RULE, "cases", service=SERVICE, response=s.CaseListSchema,
          query=s.CaseQuerySchema, roles=(*EVERYONE, "hotline", "callback"), signed=True),
)

ROUTES: tuple[Route, ...] = (*(row.route for row in COMMANDS), *QUERIES)
COMMAND_SCHEMAS: dict[type, type] = {row.command: row.schema for row in COMMANDS}
