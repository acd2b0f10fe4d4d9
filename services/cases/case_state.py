"""A case's state as a fold of its events: one case (`fold_case`, what a decision reads) or
every case at once (`CaseIndex`: the pure fold that the case book, case_book.py, keeps in the
database for the clock, the case list and Open311).

Kept apart from the decisions because both folds share one step, `_step`, and nothing here
decides: it only reads what the events recorded (every deadline is in the event that set it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from services.cases import events as e
from shared.kernel import history

HistoryRecord = history.HistoryRecord  # what the fold reads of a committed event
ACCEPTANCE, RESOLUTION = "acceptance", "resolution"
OPEN = ("assigned", "accepted", "extension_requested")  # a deadline is running


@dataclass(frozen=True)
class Deadline:
    kind: str  # acceptance | resolution
    due: dt.date  # the deadline is the end of this local day
    round: int  # how many deadlines of this kind the case has had

    @property
    def level(self) -> str:
        return f"{self.kind}-{self.round}"


@dataclass(frozen=True)
class CaseState:
    case_id: str
    state: str
    category: str
    origin: str
    registered: dict[str, Any]  # the case.registered data
    version: int
    unit_id: str | None = None
    returned_by: str | None = None  # the unit that sent it back, while returned
    acceptance: Deadline | None = None
    resolution: Deadline | None = None
    extension_days: int | None = None  # asked for, while a request waits
    resolved_by: str | None = None
    resolver_cadre_id: str | None = None
    outcome: str | None = None
    callback_due: dt.date | None = None
    unsatisfied: int = 0
    review_date: dt.date | None = None
    overdue: bool = False
    escalated: bool = False
    difficulty_removed: bool = False
    fired: frozenset[str] = frozenset()  # "<event type>@<level>" of the timed events

    def has_fired(self, type_: str, level: str) -> bool:
        return f"{type_}@{level}" in self.fired

    @property
    def watched(self) -> bool:
        """Whether the clock may have something to say about it (deadlines.due_now): a
        deadline running, or a parked case's review date."""
        return self.state in OPEN or self.state == "parked"

    def running(self) -> tuple[Deadline, ...]:
        """The deadlines that run now: acceptance until accepted, resolution until resolved."""
        if self.state not in OPEN:
            return ()
        pending_accept = self.state == "assigned" and self.acceptance is not None
        return tuple(d for d in (self.acceptance if pending_accept else None, self.resolution)
                     if d is not None)


def fold_case(history: Iterable[HistoryRecord]) -> CaseState | None:
    state: CaseState | None = None
    for record in history:
        state = _step(state, record)
    return state


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _next_round(old: Deadline | None, kind: str, due: str) -> Deadline:
    return Deadline(kind, dt.date.fromisoformat(due), (old.round if old else 0) + 1)


def _step(state: CaseState | None, record: HistoryRecord) -> CaseState | None:
    data, kind = record.data, record.type
    if kind == e.CASE_REGISTERED:
        data = {"received_at": None, **data}  # none recorded before receipt was (#10)
        return CaseState(data["case_id"], "registered", data["category"], data["origin"],
                         data, record.version, unit_id=data.get("unit_id"))
    if state is None:
        return None
    state = replace(state, version=record.version)
    step = _STEPS.get(kind)
    return step(state, data) if step else state


def _assigned(s: CaseState, d: dict[str, Any]) -> CaseState:
    return replace(s, state="assigned", unit_id=d["unit_id"], returned_by=None, overdue=False,
                   acceptance=_next_round(s.acceptance, ACCEPTANCE, d["accept_by"]),
                   resolution=_next_round(s.resolution, RESOLUTION, d["resolve_by"]))


def _new_resolution(state: str) -> Callable[[CaseState, dict[str, Any]], CaseState]:
    def step(s: CaseState, d: dict[str, Any]) -> CaseState:
        return replace(s, state=state, overdue=False, review_date=None, extension_days=None,
                       resolution=_next_round(s.resolution, RESOLUTION, d["resolve_by"]))
    return step


def _extension_decided(s: CaseState, d: dict[str, Any]) -> CaseState:
    s = replace(s, state="accepted", extension_days=None)
    return _new_resolution("accepted")(s, d) if d["decision"] == "approved" else s


def _resolved(s: CaseState, d: dict[str, Any]) -> CaseState:
    return replace(s, state="resolved", outcome=d["outcome"], resolved_by=d["resolved_by"],
                   resolver_cadre_id=d.get("resolver_cadre_id"), extension_days=None,
                   callback_due=_date(d["callback_due"]), overdue=False)


def _called_back(s: CaseState, d: dict[str, Any]) -> CaseState:
    return replace(s, state="called_back", unsatisfied=d["unsatisfied_count"])


def _fired(s: CaseState, d: dict[str, Any], type_: str) -> CaseState:
    return replace(s, fired=s.fired | {f"{type_}@{d['level']}"})


_STEPS: dict[str, Callable[[CaseState, dict[str, Any]], CaseState]] = {
    e.CASE_ASSIGNED: _assigned,
    e.CASE_ACCEPTED: lambda s, d: replace(s, state="accepted"),
    e.CASE_RETURNED: lambda s, d: replace(s, state="returned", returned_by=s.unit_id,
                                          unit_id=None, overdue=False),
    e.EXTENSION_REQUESTED: lambda s, d: replace(s, state="extension_requested",
                                                extension_days=d["working_days"]),
    e.EXTENSION_DECIDED: _extension_decided,
    e.CASE_RESOLVED: _resolved,
    e.CALLBACK_RECORDED: _called_back,
    e.CASE_CLOSED: lambda s, d: replace(s, state="closed"),
    e.CASE_REOPENED: _new_resolution("accepted"),
    e.CASE_PARKED: lambda s, d: replace(s, state="parked", overdue=False,
                                        review_date=_date(d["review_date"])),
    e.CASE_UNPARKED: _new_resolution("accepted"),
    e.DEADLINE_APPROACHING: lambda s, d: _fired(s, d, e.DEADLINE_APPROACHING),
    e.CASE_OVERDUE: lambda s, d: replace(_fired(s, d, e.CASE_OVERDUE), overdue=True),
    e.CASE_ESCALATED: lambda s, d: replace(_fired(s, d, e.CASE_ESCALATED), escalated=True),
    e.DIFFICULTY_REMOVED: lambda s, d: replace(s, difficulty_removed=True),
}


class CaseIndex:
    """Every case's state, folded in memory (the case book folds each page of the log with it
    into the rows the page touches). Mutates in place: copying a map per event would make the
    fold quadratic."""

    def __init__(self) -> None:
        self.cases: dict[str, CaseState] = {}

    def apply(self, record: HistoryRecord) -> CaseIndex:
        case_id = record.data.get("case_id")
        if case_id is not None:
            state = _step(self.cases.get(case_id), record)
            if state is not None:
                self.cases[case_id] = state
        return self
