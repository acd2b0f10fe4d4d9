"""The decisions people's commands call for: each takes the command, the case's state and a
`Context`, and returns the new events or raises (Rejected, Conflict, Denied, UnknownReference).

Nothing here does I/O, and nothing checks whether the state allows the command: `domain.decide`
does that once, from `ALLOWED`, before it calls one of these. Who may send a command is
rights.py's; deadlines count working days (shared/campaign/workdays.py) and are recorded in
the event that sets them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.cases import case_commands as c
from services.cases import events as e
from services.cases import rights
from services.cases.case_policy import CasePolicy
from services.cases.case_state import CaseState
from shared.campaign.policy import Policy
from shared.campaign.workdays import WorkCalendar
from shared.eventlog import NewEvent
from shared.kernel.errors import Conflict, Rejected, UnknownReference
from shared.runtime.auth import Principal

RESIDENT_PATH = "resident"  # encrypted with the resident's key; resident_id stays plain
Decision = Callable[..., list[NewEvent]]  # (command, case state, context) -> events


@dataclass(frozen=True)
class Context:
    """What a decision may read besides the case: the time, who asks, the rules, the
    roster (units, and cadres' units today) and whether a resident id was issued (a lookup;
    a context given none knows no resident, so a given id is refused)."""

    now: dt.datetime
    principal: Principal
    policy: Policy
    cases: CasePolicy
    calendar: WorkCalendar
    roster: rights.RosterView
    issued: Callable[[str], bool] = lambda _resident_id: False

    @property
    def today(self) -> dt.date:
        return self.policy.local_date(self.now)

    def deadline(self, start: dt.date, working_days: int) -> dt.date:
        return self.calendar.add_working_days(start, working_days)


def case_event(type_: str, state: CaseState | None, data: dict[str, Any],
               now: dt.datetime | None = None) -> NewEvent:
    """A new event of the case (the timed decisions stamp it with the clock's `now`)."""
    case_id = state.case_id if state else data["case_id"]
    return NewEvent(type_, {"case_id": case_id, **data}, occurred_at=now)


def register_case(cmd: c.RegisterCase, state: CaseState | None, ctx: Context) -> list[NewEvent]:
    who = ctx.principal
    if cmd.origin == "visit":
        rights.require(who, (*rights.REGISTRARS, rights.INTAKE), "register a case")
        if cmd.visit_id is None:
            raise Rejected("visit_id", "is required when the origin is a visit")
    else:
        rights.require(who, rights.REGISTRARS, "register a case")
    if cmd.category not in ctx.cases.codes:
        raise Rejected("category", f"must be one of: {', '.join(ctx.cases.codes)}")
    if cmd.unit_id is not None and cmd.unit_id not in ctx.roster.units:
        raise UnknownReference("unit", cmd.unit_id)
    data = {**_registered_data(cmd, state), "received_at": _received(cmd, state, ctx)}
    if state is not None:
        if state.registered == data:
            return []  # the same case again (a client-chosen id, a redelivered visit)
        raise Conflict(f"case {cmd.case_id!r} was already registered with other content", "id")
    given = (cmd.resident or {}).get("id")
    if given is not None and who.role != rights.INTAKE and not ctx.issued(given):
        raise UnknownReference("resident", given, "resident.id")  # never issued, or forgotten
    if data["resident"] is None:
        return [NewEvent(e.CASE_REGISTERED, data)]
    return [NewEvent(e.CASE_REGISTERED, data, subject=data["resident_id"],
                     personal=(RESIDENT_PATH,))]


def _received(cmd: c.RegisterCase, state: CaseState | None, ctx: Context) -> str | None:
    """When the case was received, ISO: as sent (checked), else as first registered (a retry
    without it is the same case), else now. Paper petitions are entered late, but within the
    policy's window; a visit's date is the visits service's to judge, so the intake's is not."""
    given = cmd.received_at
    if given is None:
        return state.registered["received_at"] if state else ctx.now.isoformat()
    if not isinstance(given, dt.datetime):
        given = ctx.policy.start_of(given)
    if state is not None:
        return given.isoformat()  # a retry: the same case if it says the same
    if given > ctx.now:
        raise Rejected("received_at", f"{given.isoformat()} is in the future")
    window = ctx.cases.receipt_window_working_days
    late = ctx.calendar.working_days_between(ctx.policy.local_date(given), ctx.today)
    if late > window and ctx.principal.role != rights.INTAKE:
        raise Rejected("received_at", f"is {late} working days ago: a case is entered at most "
                                      f"{window} working days after it was received")
    return given.isoformat()


def _registered_data(cmd: c.RegisterCase, state: CaseState | None) -> dict[str, Any]:
    resident = cmd.resident
    known = state.registered.get("resident_id") if state else None
    person = None  # a resident named by id alone (a visit's, #10): the pseudonym, no details
    if resident is not None and resident.get("name") is not None:
        person = {k: resident.get(k) for k in ("name", "phone", "address", "email")}
    return {
        "case_id": cmd.case_id, "origin": cmd.origin, "category": cmd.category,
        "description": cmd.description, "place": dict(cmd.place), "unit_id": cmd.unit_id,
        "visit_id": cmd.visit_id, "cadre_ids": list(cmd.cadre_ids),
        "resident_id": (resident.get("id") or known or cmd.fresh_resident_id)
        if resident is not None else None,
        "resident": person,
    }


def assign_case(cmd: c.AssignCase, state: CaseState, ctx: Context) -> list[NewEvent]:
    rights.require(ctx.principal, rights.SUPERVISORS, "assign a case")
    if cmd.unit_id not in ctx.roster.units:
        raise UnknownReference("unit", cmd.unit_id)
    category = ctx.cases.category(state.category)
    start = _received_day(state, ctx) if state.acceptance is None else ctx.today
    data = {"unit_id": cmd.unit_id, "note": cmd.note,
            "accept_by": ctx.deadline(start, category.accept).isoformat(),
            "resolve_by": ctx.deadline(start, category.resolve).isoformat(),
            "upheld": state.returned_by == cmd.unit_id}
    return [case_event(e.CASE_ASSIGNED, state, data)]


def _received_day(state: CaseState, ctx: Context) -> dt.date:
    """The local day the case was received: the first assignment's limits count from it (the
    resident's clock started then); a reassignment after a return counts from its own day.
    A case registered before receipt was recorded counts from the assignment, as it did."""
    received = state.registered.get("received_at")
    return ctx.policy.local_date(dt.datetime.fromisoformat(received)) if received else ctx.today


def _require_unit(state: CaseState, ctx: Context, doing: str) -> None:
    rights.require_unit(ctx.principal, state.unit_id, ctx.roster, ctx.today, doing)


def accept_case(cmd: c.AcceptCase, state: CaseState, ctx: Context) -> list[NewEvent]:
    _require_unit(state, ctx, "accept this case")
    assert state.acceptance is not None
    on_time = ctx.today <= state.acceptance.due
    data = {"unit_id": state.unit_id, "on_time": on_time}
    return [case_event(e.CASE_ACCEPTED, state, data)]


def return_case(cmd: c.ReturnCase, state: CaseState, ctx: Context) -> list[NewEvent]:
    _require_unit(state, ctx, "return this case")
    data = {"unit_id": state.unit_id, "reason": cmd.reason}
    return [case_event(e.CASE_RETURNED, state, data)]


def note_progress(cmd: c.NoteProgress, state: CaseState, ctx: Context) -> list[NewEvent]:
    _require_unit(state, ctx, "note progress on this case")
    return [case_event(e.PROGRESS_NOTED, state, {"note": cmd.note})]


def request_extension(cmd: c.RequestExtension, state: CaseState, ctx: Context) -> list[NewEvent]:
    _require_unit(state, ctx, "ask for an extension of this case")
    assert state.resolution is not None
    if ctx.today > state.resolution.due:
        raise Conflict(f"the resolution deadline ({state.resolution.due}) has passed: an "
                       "extension is asked for before the deadline", "working_days")
    most = ctx.cases.max_extension_working_days
    if cmd.working_days > most:
        raise Rejected("working_days", f"must be at most {most}")
    data = {"working_days": cmd.working_days, "reason": cmd.reason,
            "deadline": state.resolution.due.isoformat()}
    return [case_event(e.EXTENSION_REQUESTED, state, data)]


def decide_extension(cmd: c.DecideExtension, state: CaseState, ctx: Context) -> list[NewEvent]:
    """An approved extension adds the working days asked for to the deadline it extends."""
    rights.require(ctx.principal, rights.SUPERVISORS, "decide an extension")
    assert state.resolution is not None and state.extension_days is not None
    due = state.resolution.due
    if cmd.decision == "approved":
        due = ctx.deadline(due, state.extension_days)
    data = {"decision": cmd.decision, "comment": cmd.comment, "resolve_by": due.isoformat()}
    return [case_event(e.EXTENSION_DECIDED, state, data)]


def resolve_case(cmd: c.ResolveCase, state: CaseState, ctx: Context) -> list[NewEvent]:
    """A callback is due the working day after resolution."""
    _require_unit(state, ctx, "resolve this case")
    data = {"outcome": cmd.outcome, "result": cmd.result,
            "evidence": [dict(item) for item in cmd.evidence],
            "resolved_by": ctx.principal.actor, "resolver_cadre_id": ctx.principal.cadre_id,
            "callback_due": ctx.deadline(ctx.today, 1).isoformat()}
    return [case_event(e.CASE_RESOLVED, state, data)]


def record_callback(cmd: c.RecordCallback, state: CaseState, ctx: Context) -> list[NewEvent]:
    """A second unsatisfied callback escalates the case to supervision, in the same act."""
    rights.require_caller(ctx.principal, state.resolved_by, state.resolver_cadre_id)
    unsatisfied = state.unsatisfied + (cmd.satisfaction == "unsatisfied")
    data = {"satisfaction": cmd.satisfaction, "comment": cmd.comment,
            "unsatisfied_count": unsatisfied}
    out = [case_event(e.CALLBACK_RECORDED, state, data)]
    if unsatisfied == 2 and cmd.satisfaction == "unsatisfied":
        escalation = {"level": "callbacks", "reason": "a second unsatisfied callback"}
        out.append(case_event(e.CASE_ESCALATED, state, escalation))
    return out


def reopen_case(cmd: c.ReopenCase, state: CaseState, ctx: Context) -> list[NewEvent]:
    """Rework by the same unit, with the category's resolution limit from today."""
    rights.require(ctx.principal, rights.SUPERVISORS, "reopen a case")
    limit = ctx.cases.category(state.category).resolve
    data = {"reason": cmd.reason, "resolve_by": ctx.deadline(ctx.today, limit).isoformat()}
    return [case_event(e.CASE_REOPENED, state, data)]


def close_case(cmd: c.CloseCase, state: CaseState, ctx: Context) -> list[NewEvent]:
    rights.require(ctx.principal, rights.SUPERVISORS, "close a case")
    return [case_event(e.CASE_CLOSED, state, {"comment": cmd.comment})]


def park_case(cmd: c.ParkCase, state: CaseState, ctx: Context) -> list[NewEvent]:
    rights.require(ctx.principal, rights.SUPERVISORS, "park a case")
    if cmd.review_date <= ctx.today:
        raise Rejected("review_date", f"must be after today ({ctx.today})")
    data = {"reason": cmd.reason, "review_date": cmd.review_date.isoformat()}
    return [case_event(e.CASE_PARKED, state, data)]


def note_difficulty_removed(cmd: c.NoteDifficultyRemoved, state: CaseState,
                            ctx: Context) -> list[NewEvent]:
    """Noted once; the case itself goes on (the difficulty may still be real)."""
    rights.require(ctx.principal, (rights.INTAKE,), "note a visit's correction")
    if state.difficulty_removed:
        return []
    data = {"visit_id": cmd.visit_id, "reason": cmd.reason}
    return [case_event(e.DIFFICULTY_REMOVED, state, data)]
