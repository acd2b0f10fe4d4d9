"""The cases service's time-driven rules (shared/kernel/timed.py): on each tick, every case the
clock has something to say about gets its command, decided by `domain.decide` like any other.

What is due is `domain.due_now`: `case.deadline_approaching` when the policy's few working days
are left before a resolution deadline; `case.overdue` (催办) the day after a deadline passes,
acceptance or resolution; `case.escalated` (督办) once a case is the policy's further working
days past its resolution deadline; `case.unparked` on a parked case's review date. Each at most
once per case and level (the level names the deadline's kind and the round that set it, so an
extension, a reopening or an unparking starts a new round): the command id is the hash of
(service, rule, case, level), which the log holds once, and the decision itself appends nothing
the case has had.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from services.cases import domain, rights
from services.cases.schemas import EVENT_SCHEMAS
from shared.eventlog import EventLog, Record
from shared.kernel.timed import Due, fire
from shared.runtime.auth import Principal

TIMER = Principal(role=rights.TIMER, token_id="timer")
RULES: dict[type, str] = {
    domain.WarnDeadline: "deadline_approaching", domain.MarkOverdue: "overdue",
    domain.EscalateCase: "escalated", domain.UnparkCase: "unpark",
}


def due(cases: Iterable[domain.CaseState], context: domain.Context) -> list[Due]:
    """What the clock must send now, case by case."""
    return [Due(RULES[type(cmd)], state.case_id, cmd.level, domain.stream_for(cmd), cmd)
            for state in cases for cmd in domain.due_now(state, context)]


def tick(log: EventLog, cases: Callable[[], Iterable[domain.CaseState]],
         context: Callable[[Principal], domain.Context]) -> list[Record]:
    """One tick: append what is due now for `cases()` (those the clock may have something
    to say about, as they stand now); return the records appended."""
    ctx = context(TIMER)
    return fire(log, due(cases(), ctx),
                lambda command, history: domain.decide(command, history, ctx),
                contract=EVENT_SCHEMAS)
