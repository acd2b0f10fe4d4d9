"""The commands a case takes, as plain dataclasses, and which of them each state allows.

Kept apart from the decisions so that the schemas, the table (commands.py), the intake and the
clock can name a command without reading how it is decided. `ALLOWED` is the one table of what
a state allows: the decisions enforce it and GET /cases/{id} shows it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from shared.kernel.fields import fresh_subject


def new_resident_id() -> str:
    return f"res-{uuid.uuid4()}"


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
    fresh_resident_id: str = fresh_subject(new_resident_id)
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
Timed = WarnDeadline | MarkOverdue | EscalateCase | UnparkCase
PeopleCommand = (
    RegisterCase | AssignCase | AcceptCase | ReturnCase | NoteProgress | RequestExtension
    | DecideExtension | ResolveCase | RecordCallback | ReopenCase | CloseCase | ParkCase
)
Command = PeopleCommand | NoteDifficultyRemoved | Timed

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
