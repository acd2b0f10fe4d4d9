"""The cases service's decisions: a case's life as a fold of its events, and pure decisions
from a command, the case's history and a `Context` to new events.

Nothing here does I/O. A case is one stream, `case-{id}`. Which command a state allows is one
table, `ALLOWED`, which the decisions enforce (a command the state does not allow is a
`Conflict` naming the state and the commands allowed now) and GET /cases/{id} shows. Who may
send it is rights.py's. Deadlines are local dates (the campaign policy's time zone): a deadline
is the end of that day; limits count working days (shared/campaign/workdays.py), from the day
the case was received for its first assignment (a petition may be entered late, within the
policy's window), and every deadline is recorded in the event that sets it.

Life: registered -> assigned -> accepted (or returned -> assigned again, by a supervisor, to
another unit or the same) -> [extension_requested -> accepted] -> resolved -> called_back ->
closed, or reopened (back to accepted, a new resolution deadline). An accepted case can be
parked with a review date; the clock unparks it on that date with a new deadline. A second
unsatisfied callback escalates the case to supervision at once; the clock warns, chases
(overdue) and escalates past deadlines (timed.py).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from services.cases import events as e
from services.cases import rights
from services.cases.case_policy import CasePolicy
from shared.campaign.policy import Policy
from shared.campaign.workdays import WorkCalendar
from shared.eventlog import NewEvent
from shared.kernel import history
from shared.kernel.errors import Conflict, NotFound, Rejected, UnknownReference
from shared.runtime.auth import Principal

if TYPE_CHECKING:
    from shared.runtime.declare import Act

RESIDENT_PATH = "resident"  # encrypted with the resident's key; resident_id stays plain
ACCEPTANCE, RESOLUTION = "acceptance", "resolution"


HistoryRecord = history.HistoryRecord  # what the fold reads of a committed event


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


def new_resident_id() -> str:
    return f"res-{uuid.uuid4()}"


# --- commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterCase:
    case_id: str
    origin: str  # visit | petition | hotline
    category: str
    description: str
    place: dict[str, str]
    unit_id: str | None = None  # the unit whose area it is (a hint for the supervisor)
    resident: dict[str, Any] | None = None  # {"id", "name", "phone", "address", "email"}
    visit_id: str | None = None
    cadre_ids: tuple[str, ...] = ()
    fresh_resident_id: str = field(default_factory=new_resident_id)
    # when the letter, call or visit came (the resident's clock starts then); None: now. A
    # visit's date alone (no time) is a local date: its start is the instant.
    received_at: dt.datetime | dt.date | None = None


@dataclass(frozen=True)
class AssignCase:
    case_id: str
    unit_id: str
    note: str = ""


@dataclass(frozen=True)
class AcceptCase:
    case_id: str


@dataclass(frozen=True)
class ReturnCase:
    case_id: str
    reason: str


@dataclass(frozen=True)
class NoteProgress:
    case_id: str
    note: str


@dataclass(frozen=True)
class RequestExtension:
    case_id: str
    working_days: int
    reason: str


@dataclass(frozen=True)
class DecideExtension:
    case_id: str
    decision: str  # approved | denied
    comment: str = ""


@dataclass(frozen=True)
class ResolveCase:
    case_id: str
    outcome: str  # solved | explained | not_our_duty | duplicate
    result: str
    evidence: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class RecordCallback:
    case_id: str
    satisfaction: str  # satisfied | basically_satisfied | unsatisfied
    comment: str


@dataclass(frozen=True)
class ReopenCase:
    case_id: str
    reason: str


@dataclass(frozen=True)
class CloseCase:
    case_id: str
    comment: str = ""


@dataclass(frozen=True)
class ParkCase:
    case_id: str
    reason: str
    review_date: dt.date


@dataclass(frozen=True)
class NoteDifficultyRemoved:
    """Sent by the service when a correction of the source visit drops the difficulty."""

    case_id: str
    visit_id: str
    reason: str


# Time-driven: only the service's clock sends them (timed.py), each at most once per level.
@dataclass(frozen=True)
class WarnDeadline:
    case_id: str
    level: str  # e.g. "resolution-2": the deadline's kind and the round that set it


@dataclass(frozen=True)
class MarkOverdue:
    case_id: str
    level: str


@dataclass(frozen=True)
class EscalateCase:
    case_id: str
    level: str


@dataclass(frozen=True)
class UnparkCase:
    case_id: str
    level: str  # the review date, ISO


TIMED = (WarnDeadline, MarkOverdue, EscalateCase, UnparkCase)
PeopleCommand = (
    RegisterCase | AssignCase | AcceptCase | ReturnCase | NoteProgress | RequestExtension
    | DecideExtension | ResolveCase | RecordCallback | ReopenCase | CloseCase | ParkCase
)
Command = PeopleCommand | NoteDifficultyRemoved | WarnDeadline | MarkOverdue | EscalateCase \
    | UnparkCase

# Which people's commands each state allows: the decisions enforce it, GET shows it.
ALLOWED: dict[str, tuple[type, ...]] = {
    "registered": (AssignCase,),
    "assigned": (AcceptCase, ReturnCase),
    "returned": (AssignCase,),
    "accepted": (NoteProgress, RequestExtension, ResolveCase, ParkCase),
    "extension_requested": (NoteProgress, DecideExtension, ResolveCase),
    "resolved": (RecordCallback,),
    "called_back": (ReopenCase, CloseCase),
    "parked": (),
    "closed": (),
}
OPEN = ("assigned", "accepted", "extension_requested")  # a deadline is running


# --- the case's state ---------------------------------------------------------------------


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


# --- deciding -------------------------------------------------------------------------------


Decision = Callable[..., list[NewEvent]]  # (command, case state, context) -> events


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
        return _act(command).decide(command, state, context)
    if type(command) not in ALLOWED[state.state]:
        raise Conflict(f"case {state.case_id} is {state.state}: {command_name(type(command))} "
                       f"is not allowed now; allowed: {', '.join(allowed(state)) or 'none'}",
                       "state")
    return _act(command).decide(command, state, context)


def allowed(state: CaseState) -> list[str]:
    """The commands people may send in the case's state (the names of the table's rows)."""
    return [command_name(cls) for cls in ALLOWED[state.state]]


def stream_for(command: Command) -> str:
    return _act(command).stream_for(command)


_ACTS: dict[type, Act] = {}
_NAMES: dict[type, str] = {}


def _act(command: Any) -> Act:
    """The command's act as the table (commands.py) declares it, looked up on first use: the
    table imports this module, and the domain alone needs nothing else."""
    if not _ACTS:
        from services.cases.commands import ACTS, NAMES

        _ACTS.update(ACTS)
        _NAMES.update(NAMES)
    return _ACTS[type(command)]


def command_name(cls: type) -> str:
    if not _NAMES:
        _act(AcceptCase("-"))
    return _NAMES[cls]


def _event(type_: str, state: CaseState | None, data: dict[str, Any],
           now: dt.datetime | None = None) -> NewEvent:
    case_id = state.case_id if state else data["case_id"]
    return NewEvent(type_, {"case_id": case_id, **data}, occurred_at=now)


def register_case(cmd: RegisterCase, state: CaseState | None, ctx: Context) -> list[NewEvent]:
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


def _received(cmd: RegisterCase, state: CaseState | None, ctx: Context) -> str | None:
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


def _registered_data(cmd: RegisterCase, state: CaseState | None) -> dict[str, Any]:
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


def assign_case(cmd: AssignCase, state: CaseState, ctx: Context) -> list[NewEvent]:
    rights.require(ctx.principal, rights.SUPERVISORS, "assign a case")
    if cmd.unit_id not in ctx.roster.units:
        raise UnknownReference("unit", cmd.unit_id)
    category = ctx.cases.category(state.category)
    start = _received_day(state, ctx) if state.acceptance is None else ctx.today
    data = {"unit_id": cmd.unit_id, "note": cmd.note,
            "accept_by": ctx.deadline(start, category.accept).isoformat(),
            "resolve_by": ctx.deadline(start, category.resolve).isoformat(),
            "upheld": state.returned_by == cmd.unit_id}
    return [_event(e.CASE_ASSIGNED, state, data)]


def _received_day(state: CaseState, ctx: Context) -> dt.date:
    """The local day the case was received: the first assignment's limits count from it (the
    resident's clock started then); a reassignment after a return counts from its own day.
    A case registered before receipt was recorded counts from the assignment, as it did."""
    received = state.registered.get("received_at")
    return ctx.policy.local_date(dt.datetime.fromisoformat(received)) if received else ctx.today


def _require_unit(state: CaseState, ctx: Context, doing: str) -> None:
    rights.require_unit(ctx.principal, state.unit_id, ctx.roster, ctx.today, doing)


def accept_case(cmd: AcceptCase, state: CaseState, ctx: Context) -> list[NewEvent]:
    _require_unit(state, ctx, "accept this case")
    assert state.acceptance is not None
    on_time = ctx.today <= state.acceptance.due
    return [_event(e.CASE_ACCEPTED, state, {"unit_id": state.unit_id, "on_time": on_time})]


def return_case(cmd: ReturnCase, state: CaseState, ctx: Context) -> list[NewEvent]:
    _require_unit(state, ctx, "return this case")
    return [_event(e.CASE_RETURNED, state, {"unit_id": state.unit_id, "reason": cmd.reason})]


def note_progress(cmd: NoteProgress, state: CaseState, ctx: Context) -> list[NewEvent]:
    _require_unit(state, ctx, "note progress on this case")
    return [_event(e.PROGRESS_NOTED, state, {"note": cmd.note})]


def request_extension(cmd: RequestExtension, state: CaseState, ctx: Context) -> list[NewEvent]:
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
    return [_event(e.EXTENSION_REQUESTED, state, data)]


def decide_extension(cmd: DecideExtension, state: CaseState, ctx: Context) -> list[NewEvent]:
    """An approved extension adds the working days asked for to the deadline it extends."""
    rights.require(ctx.principal, rights.SUPERVISORS, "decide an extension")
    assert state.resolution is not None and state.extension_days is not None
    due = state.resolution.due
    if cmd.decision == "approved":
        due = ctx.deadline(due, state.extension_days)
    data = {"decision": cmd.decision, "comment": cmd.comment, "resolve_by": due.isoformat()}
    return [_event(e.EXTENSION_DECIDED, state, data)]


def resolve_case(cmd: ResolveCase, state: CaseState, ctx: Context) -> list[NewEvent]:
    """A callback is due the working day after resolution."""
    _require_unit(state, ctx, "resolve this case")
    data = {"outcome": cmd.outcome, "result": cmd.result,
            "evidence": [dict(item) for item in cmd.evidence],
            "resolved_by": ctx.principal.actor, "resolver_cadre_id": ctx.principal.cadre_id,
            "callback_due": ctx.deadline(ctx.today, 1).isoformat()}
    return [_event(e.CASE_RESOLVED, state, data)]


def record_callback(cmd: RecordCallback, state: CaseState, ctx: Context) -> list[NewEvent]:
    """A second unsatisfied callback escalates the case to supervision, in the same act."""
    rights.require_caller(ctx.principal, state.resolved_by, state.resolver_cadre_id)
    unsatisfied = state.unsatisfied + (cmd.satisfaction == "unsatisfied")
    data = {"satisfaction": cmd.satisfaction, "comment": cmd.comment,
            "unsatisfied_count": unsatisfied}
    out = [_event(e.CALLBACK_RECORDED, state, data)]
    if unsatisfied == 2 and cmd.satisfaction == "unsatisfied":
        out.append(_event(e.CASE_ESCALATED, state, {"level": "callbacks",
                                                    "reason": "a second unsatisfied callback"}))
    return out


def reopen_case(cmd: ReopenCase, state: CaseState, ctx: Context) -> list[NewEvent]:
    """Rework by the same unit, with the category's resolution limit from today."""
    rights.require(ctx.principal, rights.SUPERVISORS, "reopen a case")
    limit = ctx.cases.category(state.category).resolve
    data = {"reason": cmd.reason, "resolve_by": ctx.deadline(ctx.today, limit).isoformat()}
    return [_event(e.CASE_REOPENED, state, data)]


def close_case(cmd: CloseCase, state: CaseState, ctx: Context) -> list[NewEvent]:
    rights.require(ctx.principal, rights.SUPERVISORS, "close a case")
    return [_event(e.CASE_CLOSED, state, {"comment": cmd.comment})]


def park_case(cmd: ParkCase, state: CaseState, ctx: Context) -> list[NewEvent]:
    rights.require(ctx.principal, rights.SUPERVISORS, "park a case")
    if cmd.review_date <= ctx.today:
        raise Rejected("review_date", f"must be after today ({ctx.today})")
    data = {"reason": cmd.reason, "review_date": cmd.review_date.isoformat()}
    return [_event(e.CASE_PARKED, state, data)]


def note_difficulty_removed(cmd: NoteDifficultyRemoved, state: CaseState,
                            ctx: Context) -> list[NewEvent]:
    """Noted once; the case itself goes on (the difficulty may still be real)."""
    rights.require(ctx.principal, (rights.INTAKE,), "note a visit's correction")
    if state.difficulty_removed:
        return []
    return [_event(e.DIFFICULTY_REMOVED, state, {"visit_id": cmd.visit_id,
                                                  "reason": cmd.reason})]


# --- time-driven decisions ------------------------------------------------------------------


Timed = WarnDeadline | MarkOverdue | EscalateCase | UnparkCase


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
        return [_event(type_, state, {"level": cmd.level, **data(state, cmd.level)}, ctx.now)]
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
    return [_event(e.CASE_UNPARKED, state, data, ctx.now)]


# --- reading back -------------------------------------------------------------------------


def read_back(state: CaseState, policy: Policy, personal: bool) -> dict[str, Any]:
    """The case as GET /cases/{id} shows it (dump with CaseSchema): a deadline is the end of
    its local day, shown as an instant in the district's time zone. `personal` False: the
    resident's details are withheld."""
    def end_of(day: dt.date | None) -> dt.datetime | None:
        return policy.start_of(day + dt.timedelta(days=1)) if day else None

    registered = state.registered
    resident_id, details = registered.get("resident_id"), registered.get("resident")
    # a case opened from a visit carries the resident's pseudonym only: the details stay in
    # the visits log ("on_visit"), which is not the same as details erased
    shown = ("none" if resident_id is None
             else "on_visit" if details is None and registered.get("visit_id")
             else "erased" if details is None else "shown" if personal else "withheld")
    blank: dict[str, Any] = {"name": None, "phone": None, "address": None, "email": None}
    return {
        "id": state.case_id, "state": state.state, "origin": state.origin,
        "category": state.category, "description": registered["description"],
        "place": registered["place"], "unit_id": state.unit_id,
        "visit_id": registered.get("visit_id"),
        "received_at": _shown_at(registered.get("received_at"), policy),
        "resident": None if resident_id is None else
        {"id": resident_id, **(details if personal and details else blank)},
        "personal_data": shown,
        "accept_by": end_of(state.acceptance.due if state.acceptance else None),
        "resolve_by": end_of(state.resolution.due if state.resolution else None),
        "callback_due": end_of(state.callback_due), "review_date": state.review_date,
        "outcome": state.outcome, "overdue": state.overdue, "escalated": state.escalated,
        "difficulty_removed": state.difficulty_removed, "allowed": allowed(state),
        "version": state.version,
    }


def _shown_at(value: str | None, policy: Policy) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value).astimezone(policy.tz) if value else None


class CaseIndex:
    """Every case's state, folded in memory from the whole log (the clock's rules and the
    case list read it). Mutates in place: copying a map per event would make the fold
    quadratic."""

    def __init__(self) -> None:
        self.cases: dict[str, CaseState] = {}

    def apply(self, record: HistoryRecord) -> CaseIndex:
        case_id = record.data.get("case_id")
        if case_id is not None:
            state = _step(self.cases.get(case_id), record)
            if state is not None:
                self.cases[case_id] = state
        return self
