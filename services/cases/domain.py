"""The cases service's decisions: a case's life as a fold of its events, and pure decisions
from a command, the case's history and a `Context` to new events.

This module is what the rest imports: `decide`, `stream_for`, and (re-exported below) the
commands, the context, the state and what GET shows. Each part lives in its own module:
case_commands.py (the commands, and `ALLOWED`: which a state allows), case_state.py (the
fold), decisions.py (people's commands), deadlines.py (the clock's), case_view.py (GET).

Nothing here does I/O. A case is one stream, `case-{id}`. A command the state does not allow is
a `Conflict` naming the state and the commands allowed now. Who may send it is rights.py's.
Deadlines are local dates (the campaign policy's time zone): a deadline is the end of that
day; limits count working days (shared/campaign/workdays.py), from the day the case was
received for its first assignment (a petition may be entered late, within the policy's
window), and every deadline is recorded in the event that sets it.

Life: registered -> assigned -> accepted (or returned -> assigned again, by a supervisor, to
another unit or the same) -> [extension_requested -> accepted] -> resolved -> called_back ->
closed, or reopened (back to accepted, a new resolution deadline). An accepted case can be
parked with a review date; the clock unparks it on that date with a new deadline. A second
unsatisfied callback escalates the case to supervision at once; the clock warns, chases
(overdue) and escalates past deadlines (timed.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from services.cases.case_commands import (
    ALLOWED,
    TIMED,
    AcceptCase,
    AssignCase,
    CloseCase,
    Command,
    DecideExtension,
    EscalateCase,
    MarkOverdue,
    NoteDifficultyRemoved,
    NoteProgress,
    ParkCase,
    RecordCallback,
    RegisterCase,
    ReopenCase,
    RequestExtension,
    ResolveCase,
    ReturnCase,
    UnparkCase,
    WarnDeadline,
)
from services.cases.case_state import OPEN, CaseIndex, CaseState, HistoryRecord, fold_case
from services.cases.case_view import allowed, read_back
from services.cases.commands import ACTS, NAMES
from services.cases.deadlines import due_now
from services.cases.decisions import Context, register_case
from shared.eventlog import NewEvent
from shared.kernel.errors import Conflict, NotFound

__all__ = [  # what the service, its intake, clock and Open311, and the tests import
    "OPEN", "AcceptCase", "AssignCase", "CaseIndex", "CaseState", "CloseCase", "Command",
    "Context", "DecideExtension", "EscalateCase", "HistoryRecord", "MarkOverdue",
    "NoteDifficultyRemoved", "NoteProgress", "ParkCase", "RecordCallback", "RegisterCase",
    "ReopenCase", "RequestExtension", "ResolveCase", "ReturnCase", "UnparkCase",
    "WarnDeadline", "allowed", "decide", "due_now", "fold_case", "read_back", "stream_for",
]


def decide(command: Command, history: Iterable[HistoryRecord], context: Context) -> list[NewEvent]:
    """The events `command` leads to against the case's history, in `context` (whose `now`
    must be timezone-aware). Refusals raise: Conflict (409) when the case's state does not
    allow the command, Denied (403) when the principal may not send it."""
    if context.now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    state = fold_case(history)
    if isinstance(command, RegisterCase):
        return register_case(command, state, context)
    if state is None:
        raise NotFound("case", command.case_id)
    if isinstance(command, (*TIMED, NoteDifficultyRemoved)):
        return ACTS[type(command)].decide(command, state, context)
    if type(command) not in ALLOWED[state.state]:
        raise Conflict(f"case {state.case_id} is {state.state}: {NAMES[type(command)]} "
                       f"is not allowed now; allowed: {', '.join(allowed(state)) or 'none'}",
                       "state")
    return ACTS[type(command)].decide(command, state, context)


def stream_for(command: Command) -> str:
    """The stream the command's act (commands.py) names: `case-{case_id}`."""
    return ACTS[type(command)].stream_for(command)
