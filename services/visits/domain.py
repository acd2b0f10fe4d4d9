"""The visits service's decisions: pure functions from a command and what is known to events.

Nothing here does I/O. The service reads the command's stream (`history`) and the roster, calls
`decide`, and appends what it returns to `stream_for(command)`; an empty list means the command
was a retry of something already recorded. Rules that fail raise the errors in shared.kernel.errors.
Which decision answers which command, and its stream, is said once, in the command table
(commands.py): a new command is its dataclass and decision here and its row there.

Streams: `unit-{id}`, `cadre-{id}`, `visit-{id}`. Event data is JSON (dates as ISO strings) so
that what `decide` returns is exactly what readers fold back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from services.visits import rights
from services.visits.events import (  # the published types (re-exported)
    CADRE_REMINDED,
    PARTICIPATION_CONFIRMED,
    PARTICIPATION_WITHDRAWN,
    PERSONAL_DATA_DISCLOSED,  # noqa: F401 (re-exported)
    VISIT_CORRECTED,
    VISIT_RECORDED,
    VISIT_RETRACTED,
)
from shared.campaign.policy import Policy
from shared.campaign.roster import (  # the one roster fold, shared with every reader
    CADRE_ENROLLED,
    CADRE_LEAVE_GRANTED,
    CADRE_LEFT,  # noqa: F401 (re-exported: CADRE_REMOVED's type in older logs)
    CADRE_REMOVED,
    CADRE_TRANSFERRED,
    ROSTER_EVENT_TYPES,  # noqa: F401 (re-exported)
    UNIT_DAY_SET,
    UNIT_REGISTERED,
    Cadre,
    Leave,  # noqa: F401 (re-exported)
    Roster,
    Unit,  # noqa: F401 (re-exported)
    UnitDaySetting,  # noqa: F401 (re-exported)
    fold_roster,  # noqa: F401 (re-exported)
)
from shared.eventlog import NewEvent
from shared.kernel import history
from shared.kernel.errors import (
    SCHEMA_FIELD,
    Conflict,
    Denied,
    NotFound,
    Rejected,
)
from shared.kernel.fields import fresh_subject
from shared.runtime.auth import Principal

if TYPE_CHECKING:
    from shared.runtime.declare import Act

TIMER_ROLE = "timer"  # the principal of time-driven commands (never a token's role)

RESIDENT_PATH = "target.resident"  # encrypted with the resident's key; resident_id stays plain
CORRECTABLE = (
    "cadre_ids", "date", "started_at", "place", "target", "diary", "delivered", "helped",
    "hazards", "disputes", "difficulties", "tags", "evidence",
)


class HistoryRecord(history.HistoryRecord, Protocol):
    """What the decisions read from a committed event (shared.eventlog.Record satisfies it)."""

    @property
    def stream(self) -> str: ...
    @property
    def occurred_at(self) -> dt.datetime: ...
    @property
    def recorded_at(self) -> dt.datetime: ...


# --- visit payload shapes (plain dicts, as the schemas load them and events carry them) -------


class Place(TypedDict, total=False):
    township: str
    village: str
    community: str


class Resident(TypedDict):
    name: str
    phone: str | None
    address: str | None


class Target(TypedDict):
    kind: str
    resident_id: str | None
    resident: Resident | None


class Diary(TypedDict):
    thinks: str
    hopes: str
    glad: str
    worries: str
    notes: str


class Finding(TypedDict):
    """A hazard found or a dispute taken up: what it is and how far it got on the visit."""

    description: str
    status: str


class Difficulty(TypedDict):
    """A resident's difficulty for the cases service: a case category code and what it is."""

    category: str
    description: str


class Evidence(TypedDict):
    kind: str
    ref: str


def empty_diary() -> Diary:
    return Diary(thinks="", hopes="", glad="", worries="", notes="")


def new_resident_id() -> str:
    """A pseudonym for a resident the service has not seen: random, so that it says nothing
    about the person (a client may pass back an id it was given, never invent one)."""
    return f"res-{uuid.uuid4()}"


# --- commands -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterUnit:
    unit_id: str
    name: str
    kind: str
    unit_day: int | None = None


@dataclass(frozen=True)
class SetUnitDay:
    unit_id: str
    unit_day: int | None
    effective_from: dt.date


@dataclass(frozen=True)
class EnrolCadre:
    cadre_id: str
    name: str
    unit_id: str
    role: str
    liaison_unit_ids: tuple[str, ...] = ()
    effective_from: dt.date | None = None  # None: the local date the command is decided on


@dataclass(frozen=True)
class TransferCadre:
    cadre_id: str
    to_unit_id: str
    effective_from: dt.date


@dataclass(frozen=True)
class GrantLeave:
    cadre_id: str
    start: dt.date  # wire and event name: "from"
    end: dt.date  # wire and event name: "to" (inclusive)
    reason: str


@dataclass(frozen=True)
class RemoveCadre:
    cadre_id: str
    effective_from: dt.date  # the first day the cadre is no longer on the roster
    reason: str


@dataclass(frozen=True)
class RecordVisit:
    visit_id: str
    cadre_ids: tuple[str, ...]
    date: dt.date | None  # None: the local date of started_at
    place: Place
    target: Target
    started_at: dt.datetime | None = None
    diary: Diary = field(default_factory=empty_diary)
    delivered: tuple[str, ...] = ()
    helped: tuple[str, ...] = ()
    hazards: tuple[Finding, ...] = ()
    disputes: tuple[Finding, ...] = ()
    difficulties: tuple[Difficulty, ...] = ()
    tags: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    fresh_resident_id: str = fresh_subject(new_resident_id)  # if the resident is new


@dataclass(frozen=True)
class CorrectVisit:
    """New values of the fields being corrected (keys from CORRECTABLE) and why."""

    visit_id: str
    changes: Mapping[str, Any]
    reason: str
    fresh_resident_id: str = fresh_subject(new_resident_id)


@dataclass(frozen=True)
class RetractVisit:
    visit_id: str
    reason: str


@dataclass(frozen=True)
class ConfirmParticipation:
    """A cadre put on a visit by someone who could not vouch for them confirms they were
    there, so that the visit counts for them. `cadre_id` None: the principal's own."""

    visit_id: str
    cadre_id: str | None = None


@dataclass(frozen=True)
class WithdrawParticipation:
    """A cadre is taken off a visit (themselves, or by their head or an operator)."""

    visit_id: str
    reason: str
    cadre_id: str | None = None


@dataclass(frozen=True)
class RemindCadre:
    """Time-driven, never sent by a person: a cadre still short of the month's quota is
    reminded before the fixed day (the rule is in services/visits/reminders.py)."""

    cadre_id: str
    month: str  # YYYY-MM
    rule: str
    level: str
    days_so_far: int
    fixed_day_met: bool


VisitCommand = (
    RecordVisit | CorrectVisit | RetractVisit | ConfirmParticipation | WithdrawParticipation
)
Command = (
    RegisterUnit | SetUnitDay | EnrolCadre | TransferCadre | GrantLeave | RemoveCadre
    | VisitCommand | RemindCadre
)


def stream_for(command: Command) -> str:
    """The stream a command's events are appended to (and its history read from): its row's
    `stream` in the command table (commands.py)."""
    return _act(command).stream_for(command)


_ACTS: dict[type, Act] = {}  # the table's, copied on first use


def _act(command: Command) -> Act:
    """The command's act as the table declares it. The table imports this module (for the
    dataclasses and decisions), so it is looked up on first use: importing the domain alone
    still needs nothing but the domain."""
    act = _ACTS.get(type(command))
    if act is None:
        from services.visits.commands import ACTS

        _ACTS.update(ACTS)
        act = _ACTS[type(command)]
    return act


# --- a visit's own state ------------------------------------------------------------------------


@dataclass(frozen=True)
class VisitState:
    """A visit as its stream left it; `values` are the current fields in event-data form."""

    visit_id: str
    values: dict[str, Any]
    recorded: dict[str, Any]  # the visit.recorded data as first recorded, without `backfilled`
    recorded_at: dt.datetime
    backfilled: bool
    version: int
    corrections: int = 0
    retracted: bool = False
    retraction_reason: str | None = None
    pending: tuple[str, ...] = ()  # cadres on the visit who have not confirmed yet

    @property
    def day(self) -> dt.date:
        return dt.date.fromisoformat(self.values["date"])

    @property
    def confirmed(self) -> tuple[str, ...]:
        return tuple(c for c in self.values["cadre_ids"] if c not in self.pending)


def fold_visit(history: Iterable[HistoryRecord]) -> VisitState | None:
    """The visit from its stream's records, or None if it was never recorded."""
    state: VisitState | None = None
    for record in history:
        state = _visit_step(state, record)
    return state


def _visit_step(state: VisitState | None, record: HistoryRecord) -> VisitState | None:
    data = record.data
    if record.type == VISIT_RECORDED:
        values = {k: v for k, v in data.items()
                  if k not in ("visit_id", "backfilled", "pending_cadre_ids")}
        values.setdefault("difficulties", [])  # absent from visits recorded before #10: none
        return VisitState(
            visit_id=data["visit_id"], values=values, recorded=values,
            recorded_at=record.recorded_at, backfilled=data["backfilled"], version=record.version,
            pending=tuple(data.get("pending_cadre_ids", ())),
        )
    if state is None:
        return None
    if record.type == VISIT_CORRECTED:
        changed = {k: v for k, v in data.items() if k in CORRECTABLE}
        cadres = changed.get("cadre_ids", state.values["cadre_ids"])
        pending = data.get("pending_cadre_ids", [c for c in state.pending if c in cadres])
        return replace(
            state, values={**state.values, **changed}, backfilled=data["backfilled"],
            corrections=state.corrections + 1, version=record.version, pending=tuple(pending),
        )
    if record.type == PARTICIPATION_CONFIRMED:
        pending = tuple(c for c in state.pending if c != data["cadre_id"])
        return replace(state, pending=pending, version=record.version)
    if record.type == PARTICIPATION_WITHDRAWN:
        gone = data["cadre_id"]
        cadres = [c for c in state.values["cadre_ids"] if c != gone]
        return replace(
            state, values={**state.values, "cadre_ids": cadres}, version=record.version,
            pending=tuple(c for c in state.pending if c != gone),
        )
    if record.type == VISIT_RETRACTED:
        return replace(
            state, retracted=True, retraction_reason=data["reason"], version=record.version
        )
    return state


def read_back(state: VisitState, personal: bool = True) -> dict[str, Any]:
    """The visit as GET returns it (dump with VisitSchema): the request's shape, typed values,
    plus what the platform added. `personal` False: the resident's details are withheld."""
    values = state.values
    started_at = values.get("started_at")
    return {
        "id": state.visit_id,
        **{k: values.get(k) for k in CORRECTABLE if k not in ("date", "started_at", "target")},
        "date": dt.date.fromisoformat(values["date"]),
        "started_at": dt.datetime.fromisoformat(started_at) if started_at else None,
        "target": _target_read_back(values["target"], personal),
        "pending_cadre_ids": list(state.pending),
        "personal_data": _disclosure(values["target"], personal),
        "backfilled": state.backfilled,
        "recorded_at": state.recorded_at,
        "corrections": state.corrections,
        "retracted": state.retracted,
        "retraction_reason": state.retraction_reason,
        "version": state.version,
    }


def _disclosure(target: dict[str, Any], personal: bool) -> str:
    if target.get("resident_id") is None:
        return "none"
    if target.get("resident") is None:
        return "erased"
    return "shown" if personal else "withheld"


def _target_read_back(target: dict[str, Any], personal: bool = True) -> dict[str, Any]:
    resident_id = target.get("resident_id")
    if resident_id is None:
        return {"kind": target["kind"], "resident": None}
    blank = {"name": None, "phone": None, "address": None}  # erased, or not for this reader
    details = target["resident"] if personal else None
    resident = {"id": resident_id, **(details or blank)}
    return {"kind": target["kind"], "resident": resident}


# --- decisions ----------------------------------------------------------------------------------


Decision = Callable[
    [Any, list[HistoryRecord], Roster, dt.datetime, Policy, Principal], list[NewEvent]
]


def decide(
    command: Command,
    history: Iterable[HistoryRecord],
    roster: Roster,
    now: dt.datetime,
    policy: Policy,
    *,
    principal: Principal,
) -> list[NewEvent]:
    """The events `command` leads to, given its stream's history and the roster, at `now`,
    when `principal` asks for it (rights.py: refused with Denied in the same decision).

    Roster commands decide from `roster` (which the service folds from every roster event);
    visit commands from `history`, the visit's own stream. `now` must be timezone-aware.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return _act(command).decide(command, list(history), roster, now, policy, principal)


def register_unit(
    cmd: RegisterUnit, history: list[HistoryRecord], roster: Roster, now: dt.datetime,
    policy: Policy, principal: Principal,
) -> list[NewEvent]:
    rights.require_operator(principal)
    if cmd.unit_id in roster.units:
        raise Conflict(f"unit {cmd.unit_id!r} is already registered", "id")
    data = {"unit_id": cmd.unit_id, "name": cmd.name, "kind": cmd.kind, "unit_day": cmd.unit_day}
    return [NewEvent(UNIT_REGISTERED, data)]


def set_unit_day(
    cmd: SetUnitDay, history: list[HistoryRecord], roster: Roster, now: dt.datetime,
    policy: Policy, principal: Principal,
) -> list[NewEvent]:
    rights.require_operator(principal)
    unit = roster.unit(cmd.unit_id)
    last = unit.unit_days[-1]
    if last.effective_from and cmd.effective_from < last.effective_from:
        raise Rejected(
            "effective_from", f"is before the unit day set from {last.effective_from.isoformat()}"
        )
    if last.unit_day == cmd.unit_day:
        return []  # nothing changes: not an event
    data = {
        "unit_id": cmd.unit_id, "unit_day": cmd.unit_day,
        "effective_from": cmd.effective_from.isoformat(),
    }
    return [NewEvent(UNIT_DAY_SET, data, occurred_at=policy.start_of(cmd.effective_from))]


def enrol_cadre(
    cmd: EnrolCadre, history: list[HistoryRecord], roster: Roster, now: dt.datetime,
    policy: Policy, principal: Principal,
) -> list[NewEvent]:
    rights.require_operator(principal)
    if cmd.cadre_id in roster.cadres:
        raise Conflict(f"cadre {cmd.cadre_id!r} is already enrolled", "id")
    roster.unit(cmd.unit_id)
    for unit_id in cmd.liaison_unit_ids:
        roster.unit(unit_id, "liaison_unit_ids")
    if cmd.liaison_unit_ids and cmd.role == "staff":
        raise Rejected("liaison_unit_ids", "only leaders and heads have liaison units")
    if cmd.unit_id in cmd.liaison_unit_ids:
        raise Rejected("liaison_unit_ids", "a liaison unit is another unit than the cadre's own")
    start = cmd.effective_from or policy.local_date(now)
    data = {
        "cadre_id": cmd.cadre_id, "name": cmd.name, "unit_id": cmd.unit_id, "role": cmd.role,
        "liaison_unit_ids": list(cmd.liaison_unit_ids), "effective_from": start.isoformat(),
    }
    return [NewEvent(CADRE_ENROLLED, data, occurred_at=policy.start_of(start))]


def _still_on_roster(cadre: Cadre, day: dt.date) -> None:
    if cadre.left_from is not None and day >= cadre.left_from:
        raise Conflict(
            f"cadre {cadre.cadre_id!r} left the roster on {cadre.left_from.isoformat()}"
        )


def transfer_cadre(
    cmd: TransferCadre, history: list[HistoryRecord], roster: Roster, now: dt.datetime,
    policy: Policy, principal: Principal,
) -> list[NewEvent]:
    rights.require_operator(principal)
    cadre = roster.cadre(cmd.cadre_id)
    roster.unit(cmd.to_unit_id, "to_unit_id")
    day = cmd.effective_from
    _still_on_roster(cadre, day)
    last = cadre.memberships[-1]
    if day < last.start:
        what = "enrolment" if len(cadre.memberships) == 1 else "last transfer"
        raise Rejected("effective_from", f"is before the cadre's {what} on {last.start}")
    from_unit = cadre.unit_on(day)
    if from_unit == cmd.to_unit_id:
        raise Rejected("to_unit_id", f"cadre {cmd.cadre_id!r} is in unit {from_unit!r} already")
    data = {
        "cadre_id": cmd.cadre_id, "from_unit_id": from_unit, "to_unit_id": cmd.to_unit_id,
        "effective_from": day.isoformat(),
    }
    return [NewEvent(CADRE_TRANSFERRED, data, occurred_at=policy.start_of(day))]


def grant_leave(
    cmd: GrantLeave, history: list[HistoryRecord], roster: Roster, now: dt.datetime,
    policy: Policy, principal: Principal,
) -> list[NewEvent]:
    rights.require_operator(principal)
    cadre = roster.cadre(cmd.cadre_id)
    if cmd.end < cmd.start:
        raise Rejected("to", "must not be before from")
    if cmd.end < cadre.enrolled_from:
        raise Rejected("to", f"is before the cadre's enrolment on {cadre.enrolled_from}")
    _still_on_roster(cadre, cmd.start)
    if any((leave.start, leave.end) == (cmd.start, cmd.end) for leave in cadre.leaves):
        raise Conflict(f"this leave of cadre {cmd.cadre_id!r} was already granted")
    data = {
        "cadre_id": cmd.cadre_id, "from": cmd.start.isoformat(), "to": cmd.end.isoformat(),
        "reason": cmd.reason,
    }
    return [NewEvent(CADRE_LEAVE_GRANTED, data)]


def remove_cadre(
    cmd: RemoveCadre, history: list[HistoryRecord], roster: Roster, now: dt.datetime,
    policy: Policy, principal: Principal,
) -> list[NewEvent]:
    rights.require_operator(principal)
    cadre = roster.cadre(cmd.cadre_id)
    if cadre.left_from is not None:
        raise Conflict(f"cadre {cmd.cadre_id!r} left the roster on {cadre.left_from}")
    last = cadre.memberships[-1]
    if cmd.effective_from <= last.start:
        what = "enrolment" if len(cadre.memberships) == 1 else "last transfer"
        raise Rejected("effective_from", f"must be after the cadre's {what} on {last.start}")
    day = cmd.effective_from
    data = {"cadre_id": cmd.cadre_id, "effective_from": day.isoformat(), "reason": cmd.reason}
    return [NewEvent(CADRE_REMOVED, data, occurred_at=policy.start_of(day))]


# --- visit decisions ----------------------------------------------------------------------------


def _iso(moment: dt.datetime | None) -> str | None:
    """Instants are stored in UTC so that equal instants compare equal as data."""
    return moment.astimezone(dt.UTC).isoformat() if moment else None


def _target_data(target: Mapping[str, Any], resident_id: str | None) -> dict[str, Any]:
    resident = target.get("resident")
    if resident is None:
        return {"kind": target["kind"], "resident_id": None, "resident": None}
    person = {k: resident.get(k) for k in ("name", "phone", "address")}
    return {"kind": target["kind"], "resident_id": resident_id, "resident": person}


def _field_data(name: str, value: Any) -> Any:
    """One visit field in event-data (JSON) form."""
    if name == "date":
        return value.isoformat()
    if name == "started_at":
        return _iso(value)
    if name in ("cadre_ids", "delivered", "helped", "tags"):
        return list(value)
    if name in ("hazards", "disputes", "difficulties", "evidence"):
        return [dict(item) for item in value]
    return dict(value)  # place, diary (target is handled by _target_data)


def _record_values(cmd: RecordVisit, day: dt.date, state: VisitState | None) -> dict[str, Any]:
    values = {name: _field_data(name, getattr(cmd, name)) for name in CORRECTABLE
              if name not in ("date", "target")}
    known = state.recorded["target"].get("resident_id") if state is not None else None
    resident_id = cmd.target.get("resident_id") or known or cmd.fresh_resident_id
    values["date"] = day.isoformat()
    values["target"] = _target_data(cmd.target, resident_id)
    return {name: values[name] for name in CORRECTABLE}


def _resolve_date(day: dt.date | None, started_at: dt.datetime | None, policy: Policy) -> dt.date:
    if day is not None:
        return day
    if started_at is None:
        raise Rejected("date", "is required when started_at is not given")
    return policy.local_date(started_at)


def _check_when(day: dt.date, started_at: dt.datetime | None, now: dt.datetime,
                policy: Policy) -> None:
    """A visit happened on a local date that is not in the future, at a time on that date."""
    today = policy.local_date(now)
    if day > today:
        raise Rejected("date", f"{day} is in the future (today is {today} in {policy.timezone})")
    if started_at is None:
        return
    if started_at > now:
        raise Rejected("started_at", f"{started_at.isoformat()} is in the future")
    local = policy.local_date(started_at)
    if local != day:
        raise Rejected(
            "started_at", f"falls on {local} in {policy.timezone}, not on the visit date {day}"
        )


def _check_cadres(cadre_ids: list[str], day: dt.date, roster: Roster) -> None:
    """One or more distinct cadres, all on the roster on the visit's date."""
    if not cadre_ids:
        raise Rejected("cadre_ids", "at least one cadre took part in a visit")
    if len(set(cadre_ids)) != len(cadre_ids):
        raise Rejected("cadre_ids", "names a cadre more than once")
    cadres = [roster.cadre(cadre_id, "cadre_ids") for cadre_id in cadre_ids]
    for cadre in cadres:
        if not cadre.on_roster(day):
            raise Rejected("cadre_ids", f"cadre {cadre.cadre_id!r} is not on the roster on {day}")


def _resident_event(
    type_: str, data: dict[str, Any], occurred_at: dt.datetime | None = None
) -> NewEvent:
    """An event whose target resident (if any) is its data subject, their details encrypted."""
    target = data.get("target")
    if target and target.get("resident") is not None:
        return NewEvent(type_, data, occurred_at=occurred_at, subject=target["resident_id"],
                        personal=(RESIDENT_PATH,))
    return NewEvent(type_, data, occurred_at=occurred_at)


def record_visit(
    cmd: RecordVisit, history: list[HistoryRecord], roster: Roster, now: dt.datetime,
    policy: Policy, principal: Principal,
) -> list[NewEvent]:
    rights.require_writer(principal)
    day = _resolve_date(cmd.date, cmd.started_at, policy)
    state = fold_visit(history)
    values = _record_values(cmd, day, state)
    if state is not None:
        if state.recorded == values:
            return []  # the same visit again (its client-chosen id): nothing new
        raise Conflict(f"visit {cmd.visit_id!r} was already recorded with other content", "id")
    _check_cadres(values["cadre_ids"], day, roster)
    _check_when(day, cmd.started_at, now, policy)
    pending = _pending_on_record(principal, values["cadre_ids"], roster, day)
    data = {"visit_id": cmd.visit_id, **values, "pending_cadre_ids": pending,
            "backfilled": policy.is_backfilled(day, now)}
    return [_resident_event(VISIT_RECORDED, data, cmd.started_at or policy.start_of(day))]


def _pending_on_record(
    principal: Principal, cadre_ids: list[str], roster: Roster, day: dt.date
) -> list[str]:
    """The cadres whose participation waits for their confirmation; Denied when the
    principal may not record this visit at all (a cadre not on it, a head with none of
    their unit's cadres on it)."""
    if principal.role == "cadre" and principal.cadre_id not in cadre_ids:
        raise Denied(f"cadre {principal.cadre_id} may only record visits they took part in")
    pending = [c for c in cadre_ids if not rights.vouches(principal, c, roster, day)]
    if len(pending) == len(cadre_ids):
        raise Denied(f"none of cadre_ids belongs to unit {principal.unit_id} on {day}")
    return pending


def _open_visit(visit_id: str, history: list[HistoryRecord], doing: str) -> VisitState:
    state = fold_visit(history)
    if state is None:
        raise NotFound("visit", visit_id)
    if state.retracted:
        raise Conflict(f"visit {visit_id!r} was retracted; it cannot be {doing}")
    return state


def _corrected_values(cmd: CorrectVisit, state: VisitState, policy: Policy) -> dict[str, Any]:
    """The visit's fields after the correction, in event-data form."""
    unknown = sorted(set(cmd.changes) - set(CORRECTABLE))
    if unknown:
        raise Rejected(unknown[0], "cannot be corrected")
    if not cmd.changes:
        raise Rejected(SCHEMA_FIELD, "name at least one field to correct")
    changes = dict(cmd.changes)
    if "date" not in changes and changes.get("started_at") is not None:
        changes["date"] = policy.local_date(changes["started_at"])  # moving the time moves the day
    if changes.get("date", True) is None:
        raise Rejected("date", "cannot be removed")
    new = {k: _field_data(k, v) for k, v in changes.items() if k != "target"}
    if "target" in changes:
        current = state.values["target"].get("resident_id")
        given = changes["target"].get("resident_id")
        resident_id = given or current or cmd.fresh_resident_id
        new["target"] = _target_data(changes["target"], resident_id)
    return {**state.values, **new}


def correct_visit(
    cmd: CorrectVisit, history: list[HistoryRecord], roster: Roster, now: dt.datetime,
    policy: Policy, principal: Principal,
) -> list[NewEvent]:
    state = _open_visit(cmd.visit_id, history, "corrected")
    rights.require_rights(principal, cmd.visit_id, state.confirmed, roster, state.day)
    values = _corrected_values(cmd, state, policy)
    diff = {k: values[k] for k in CORRECTABLE if values[k] != state.values.get(k)}
    if not diff:
        return []  # already so
    day = dt.date.fromisoformat(values["date"])
    if {"cadre_ids", "date"} & diff.keys():
        _check_cadres(values["cadre_ids"], day, roster)
    if {"date", "started_at"} & diff.keys():
        started = values["started_at"]
        _check_when(day, dt.datetime.fromisoformat(started) if started else None, now, policy)
    data = {
        "visit_id": cmd.visit_id, **diff, "reason": cmd.reason,
        "backfilled": policy.is_backfilled(day, state.recorded_at),  # against the first record
    }
    if "cadre_ids" in diff:
        data["pending_cadre_ids"] = _pending_on_change(principal, state, diff["cadre_ids"],
                                                       roster, day)
    return [_resident_event(VISIT_CORRECTED, data)]


def _pending_on_change(
    principal: Principal, state: VisitState, cadre_ids: list[str], roster: Roster, day: dt.date
) -> list[str]:
    """A new list of cadres: each one taken off must be one the principal may act for; each
    one added waits for their confirmation unless the principal vouches for them."""
    before = state.values["cadre_ids"]
    for gone in (c for c in before if c not in cadre_ids):
        rights.require_act_for(principal, gone, roster, state.day)
    return [c for c in cadre_ids if c in state.pending or (
        c not in before and not rights.vouches(principal, c, roster, day))]


def retract_visit(
    cmd: RetractVisit, history: list[HistoryRecord], roster: Roster, now: dt.datetime,
    policy: Policy, principal: Principal,
) -> list[NewEvent]:
    state = _open_visit(cmd.visit_id, history, "retracted again")
    rights.require_rights(principal, cmd.visit_id, state.confirmed, roster, state.day)
    others = [c for c in state.confirmed
              if not rights.may_act_for(principal, c, roster, state.day)]
    if others:
        raise Denied(f"visit {cmd.visit_id} also counts for {', '.join(others)}: withdraw "
                     "from it instead, or ask their head or an operator to retract it")
    return [NewEvent(VISIT_RETRACTED, {"visit_id": cmd.visit_id, "reason": cmd.reason})]


def _participant(cmd: ConfirmParticipation | WithdrawParticipation, state: VisitState,
                 principal: Principal) -> str:
    cadre_id = cmd.cadre_id or principal.cadre_id
    if cadre_id is None:
        raise Rejected("cadre_id", "name the cadre (only a cadre's own token may leave it out)")
    if cadre_id not in state.values["cadre_ids"]:
        raise Conflict(f"cadre {cadre_id!r} is not on visit {cmd.visit_id!r}", "cadre_id")
    return cadre_id


def confirm_participation(
    cmd: ConfirmParticipation, history: list[HistoryRecord], roster: Roster, now: dt.datetime,
    policy: Policy, principal: Principal,
) -> list[NewEvent]:
    state = _open_visit(cmd.visit_id, history, "confirmed")
    cadre_id = _participant(cmd, state, principal)
    rights.require_act_for(principal, cadre_id, roster, state.day)
    if cadre_id not in state.pending:
        return []  # confirmed already: nothing new
    data = {"visit_id": cmd.visit_id, "cadre_id": cadre_id}
    return [NewEvent(PARTICIPATION_CONFIRMED, data)]


def withdraw_participation(
    cmd: WithdrawParticipation, history: list[HistoryRecord], roster: Roster,
    now: dt.datetime, policy: Policy, principal: Principal,
) -> list[NewEvent]:
    state = _open_visit(cmd.visit_id, history, "changed")
    cadre_id = _participant(cmd, state, principal)
    rights.require_act_for(principal, cadre_id, roster, state.day)
    if state.values["cadre_ids"] == [cadre_id]:
        raise Conflict(f"cadre {cadre_id!r} is the only cadre on visit {cmd.visit_id!r}: "
                       "retract the visit instead", "cadre_id")
    data = {"visit_id": cmd.visit_id, "cadre_id": cadre_id, "reason": cmd.reason}
    return [NewEvent(PARTICIPATION_WITHDRAWN, data)]


def remind_cadre(
    cmd: RemindCadre, history: list[HistoryRecord], roster: Roster,
    now: dt.datetime, policy: Policy, principal: Principal,
) -> list[NewEvent]:
    """Once per rule and level in the cadre's month stream (the timer's command id makes it
    once across replicas too); only the timer reminds."""
    if principal.role != TIMER_ROLE:
        raise Denied(f"role {principal.role} may not send reminders; they are time-driven")
    roster.cadre(cmd.cadre_id)
    if any(r.type == CADRE_REMINDED and r.data["rule"] == cmd.rule
           and r.data["level"] == cmd.level for r in history):
        return []
    data = {"cadre_id": cmd.cadre_id, "month": cmd.month, "rule": cmd.rule, "level": cmd.level,
            "days_so_far": cmd.days_so_far, "fixed_day_met": cmd.fixed_day_met}
    return [NewEvent(CADRE_REMINDED, data, occurred_at=now)]
