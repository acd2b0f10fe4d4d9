"""The time-driven decisions: what a case's deadlines and review date call for now
(`due_now`, which the clock in timed.py asks of every case), and the decisions of the
commands the clock then sends.

Kept apart from people's decisions because only the clock sends these, each at most once per
level, and each is decided again against the case as it stands when it arrives: a case
resolved meanwhile, or a deadline moved, calls for nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.cases import events as e
from services.cases import rights
from services.cases.case_commands import (
    EscalateCase,
    MarkOverdue,
    Timed,
    UnparkCase,
    WarnDeadline,
)
from services.cases.case_state import RESOLUTION, CaseState
from services.cases.decisions import Context, Decision, case_event
from shared.eventlog import NewEvent


def due_now(state: CaseState, ctx: Context) -> list[Timed]:
    """The timed commands the case calls for at `ctx.now` that it has not had yet: a warning
    when few working days are left, overdue the day after a deadline, escalation after the
    policy's further working days, and unparking on the review date."""
    today, found = ctx.today, list[Timed]()
    cal, rules = ctx.calendar, ctx.cases
    if state.state == "parked" and state.review_date and today >= state.review_date:
        found.append(UnparkCase(state.case_id, state.review_date.isoformat()))
    for deadline in state.running():
        level = deadline.level
        left = cal.working_days_between(today, deadline.due)
        if (deadline.kind == RESOLUTION and 0 <= left <= rules.approaching_working_days
                and not state.has_fired(e.DEADLINE_APPROACHING, level)):
            found.append(WarnDeadline(state.case_id, level))
        if today > deadline.due and not state.has_fired(e.CASE_OVERDUE, level):
            found.append(MarkOverdue(state.case_id, level))
        if (deadline.kind == RESOLUTION and -left >= rules.escalate_after_working_days
                and not state.has_fired(e.CASE_ESCALATED, level)):
            found.append(EscalateCase(state.case_id, level))
    return found


def _timed(type_: str, data: Callable[[CaseState, str], dict[str, Any]]) -> Decision:
    """A timed command's decision: its event if the case still calls for it now, else none
    (resolved meanwhile, already fired, the deadline moved)."""
    def decision(cmd: Any, state: CaseState, ctx: Context) -> list[NewEvent]:
        rights.require(ctx.principal, (rights.TIMER,), "send time-driven commands")
        if cmd not in due_now(state, ctx):
            return []
        return [case_event(type_, state, {"level": cmd.level, **data(state, cmd.level)}, ctx.now)]
    return decision


def _deadline_of(state: CaseState, level: str) -> dict[str, Any]:
    running = {d.level: d for d in state.running()}
    return {"deadline": running[level].due.isoformat(), "kind": running[level].kind}


warn_deadline = _timed(e.DEADLINE_APPROACHING, _deadline_of)
mark_overdue = _timed(e.CASE_OVERDUE, _deadline_of)
escalate_case = _timed(e.CASE_ESCALATED,
                       lambda s, level: {**_deadline_of(s, level), "reason": "overdue"})


def unpark_case(cmd: UnparkCase, state: CaseState, ctx: Context) -> list[NewEvent]:
    """Back to the unit on the review date, with the category's resolution limit from it."""
    rights.require(ctx.principal, (rights.TIMER,), "send time-driven commands")
    if cmd not in due_now(state, ctx):
        return []
    limit = ctx.cases.category(state.category).resolve
    data = {"level": cmd.level, "review_date": cmd.level,
            "resolve_by": ctx.deadline(ctx.today, limit).isoformat()}
    return [case_event(e.CASE_UNPARKED, state, data, ctx.now)]
