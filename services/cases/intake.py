"""Difficulties found on visits become cases: pure functions from the visits log's events (their
published contract, services/visits/events.py) to the cases service's commands.

What a visit brings: each of its `difficulties`, and each hazard or dispute whose status is
`referred` (handed on to be dealt with: a case). Each is one case, registered with origin
`visit`, the visit's id, place and cadres, and the unit whose area it is (the unit of the
visit's first confirmed cadre on the visit's date), received on the visit's date (its
deadlines count from then). A correction that drops one, or a
retraction, does not delete its case: it appends `case.difficulty_removed` to it, once.

Idempotent by construction. A case's id is derived from the visit's id and the difficulty's
content (kind, category code, description), not from its place in the list, so a correction
that keeps a difficulty keeps its case wherever it moves; one whose wording is corrected is
another difficulty (the old case is noted, a new one opened); a difficulty named twice on one
visit is one case. Each command's id is derived from its case the same way, so a redelivered
or replayed visit event, or a restart that reads the visits log again, appends nothing new:
the log holds a command id once.

A correction carries only the fields it changes, so the intake compares it with the visit as
it stood before (`VisitFacts`, folded from the visits log in order by the service and kept in
its database as `facts_data`, intake_view.py).

Erasure: the visits log's `subject.forgotten` marker names a resident whose key visits
destroyed; the intake forgets the same subject in the cases log (`FORGETS`).

The resident: the bus and `read_log` withhold personal fields, and the case needs no copy of
them. It gets the resident's pseudonym (`resident_id`) only, which links it to the visit; the
details stay with the visits service under the resident's key (GET /visits/{id}).

Categories: a difficulty's category is a code the visits service keeps as given (it cannot
know this service's configured list). A code this service does not know is taken up in
`DEFAULT_CATEGORY` (else the first configured one), the visit's code kept in the description;
a referred hazard is `urgent` and a referred dispute a `complaint`, where configured.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from services.cases import rights
from services.cases.domain import HistoryRecord, NoteDifficultyRemoved, RegisterCase
from services.cases.rights import RosterView
from services.visits.events import VISIT_CORRECTED, VISIT_RECORDED, VISIT_RETRACTED
from shared.eventlog.log import FORGOTTEN
from shared.runtime.auth import Principal

INTAKE = Principal(role=rights.INTAKE, token_id="visits")  # the principal of intake commands
TYPES = (VISIT_RECORDED, VISIT_CORRECTED, VISIT_RETRACTED)  # what the intake reads
FORGETS = FORGOTTEN  # the visits log's marker that a resident's key was destroyed
SOURCES = {"difficulties": "difficulty", "hazards": "hazard", "disputes": "dispute"}
REFERRED = "referred"
KIND_CATEGORY = {"hazard": "urgent", "dispute": "complaint"}
DEFAULT_CATEGORY = "help"
_IDS = uuid.UUID("3c5e9d0a-7f21-4b8e-a6d4-2e91f0b7c845")


@dataclass(frozen=True)
class Difficulty:
    """One thing a visit brings: its kind (difficulty, hazard, dispute), the category code it
    was given (a hazard's or dispute's is its kind) and what it is."""

    kind: str
    code: str
    description: str


@dataclass(frozen=True)
class VisitFacts:
    """What the intake keeps of a visit: what a case opened from it is registered with."""

    visit_id: str
    date: dt.date
    cadre_ids: tuple[str, ...]
    pending: tuple[str, ...]
    place: Mapping[str, str]
    resident_id: str | None
    brings: tuple[Difficulty, ...]


@dataclass(frozen=True)
class Intake:
    """A command the intake sends, with the command id that makes it happen once."""

    command: RegisterCase | NoteDifficultyRemoved
    command_id: str


def case_id(visit_id: str, difficulty: Difficulty) -> str:
    key = "\x1f".join((visit_id, difficulty.kind, difficulty.code, difficulty.description))
    return str(uuid.uuid5(_IDS, key))


def command_id(act: str, case: str) -> str:
    return str(uuid.uuid5(_IDS, f"{act}\x1f{case}"))


def take_up(before: VisitFacts | None, record: HistoryRecord, roster: RosterView,
            codes: Sequence[str]) -> tuple[VisitFacts | None, list[Intake]]:
    """The visit after `record` (one event of the visits log; `before`: the visit as it stood)
    and the commands it calls for: a case for each difficulty it brings now and did not
    before, a note on the case of each one it no longer brings."""
    after = fold(before, record)
    if after is None:
        return None, []
    had = before.brings if before is not None else ()
    opened = [_register(after, d, roster, codes) for d in after.brings if d not in had]
    noted = [_note(after, d, record) for d in had if d not in after.brings]
    return after, [*opened, *noted]


def fold(before: VisitFacts | None, record: HistoryRecord) -> VisitFacts | None:
    """The visit's facts after one record of the visits log; other types change nothing."""
    data = record.data
    if record.type == VISIT_RECORDED:
        return VisitFacts(
            data["visit_id"], dt.date.fromisoformat(data["date"]), tuple(data["cadre_ids"]),
            tuple(data.get("pending_cadre_ids", ())), dict(data["place"]),
            data["target"]["resident_id"], brought(data),
        )
    if before is None:
        return None
    if record.type == VISIT_RETRACTED:
        return replace(before, brings=())
    if record.type != VISIT_CORRECTED:
        return before
    cadres = tuple(data.get("cadre_ids", before.cadre_ids))
    target = data.get("target")
    return replace(
        before, cadre_ids=cadres,
        date=dt.date.fromisoformat(data["date"]) if "date" in data else before.date,
        pending=tuple(data.get("pending_cadre_ids", (c for c in before.pending if c in cadres))),
        place=dict(data.get("place", before.place)),
        resident_id=target["resident_id"] if target else before.resident_id,
        brings=brought(data, before.brings),
    )


def resident_named(record: HistoryRecord) -> str | None:
    """The resident pseudonym a visits record shows the visits service issued, if any: the
    visits service records only ids it issued (it refuses any other, services/visits)."""
    if record.type not in (VISIT_RECORDED, VISIT_CORRECTED):
        return None
    target = record.data.get("target")
    return target.get("resident_id") if target else None


def facts_data(facts: VisitFacts) -> dict[str, Any]:
    """`VisitFacts` as JSON, to keep between restarts."""
    return {"visit_id": facts.visit_id, "date": facts.date.isoformat(),
            "cadre_ids": list(facts.cadre_ids), "pending": list(facts.pending),
            "place": dict(facts.place), "resident_id": facts.resident_id,
            "brings": [[d.kind, d.code, d.description] for d in facts.brings]}


def facts_from(data: Mapping[str, Any]) -> VisitFacts:
    """`VisitFacts` from `facts_data`'s JSON."""
    return VisitFacts(
        data["visit_id"], dt.date.fromisoformat(data["date"]), tuple(data["cadre_ids"]),
        tuple(data["pending"]), dict(data["place"]), data["resident_id"],
        tuple(Difficulty(*d) for d in data["brings"]),
    )


def brought(lists: Mapping[str, Any],
            before: tuple[Difficulty, ...] = ()) -> tuple[Difficulty, ...]:
    """What visit data brings; a list it leaves out (a correction of other fields, a visit
    recorded before difficulties existed) brings what it brought `before`."""
    found: list[Difficulty] = []
    for name, kind in SOURCES.items():
        if name not in lists:
            found += [d for d in before if d.kind == kind]
        elif kind == "difficulty":
            found += [Difficulty(kind, d["category"], d["description"]) for d in lists[name]]
        else:
            found += [Difficulty(kind, kind, f["description"]) for f in lists[name]
                      if f["status"] == REFERRED]
    return tuple(dict.fromkeys(found))  # the same difficulty twice is one


def _register(visit: VisitFacts, difficulty: Difficulty, roster: RosterView,
              codes: Sequence[str]) -> Intake:
    case = case_id(visit.visit_id, difficulty)
    category, description = _category(difficulty, codes)
    confirmed = [c for c in visit.cadre_ids if c not in visit.pending] or visit.cadre_ids
    command = RegisterCase(
        case_id=case, origin="visit", category=category, description=description,
        place=dict(visit.place), unit_id=roster.unit_of(confirmed[0], visit.date),
        resident={"id": visit.resident_id} if visit.resident_id else None,
        visit_id=visit.visit_id, cadre_ids=visit.cadre_ids, received_at=visit.date,
    )
    return Intake(command, command_id("register", case))


def _note(visit: VisitFacts, difficulty: Difficulty, record: HistoryRecord) -> Intake:
    """The note on a difficulty's case that a correction (or the retraction) dropped it."""
    case = case_id(visit.visit_id, difficulty)
    why = ("the visit was retracted: " if record.type == VISIT_RETRACTED
           else "a correction of the visit no longer lists it: ") + record.data["reason"]
    return Intake(NoteDifficultyRemoved(case, visit.visit_id, why), command_id("removed", case))


def _category(difficulty: Difficulty, codes: Sequence[str]) -> tuple[str, str]:
    """The case's category and description: the visit's code where this service knows it."""
    code = KIND_CATEGORY.get(difficulty.kind, difficulty.code)
    if code in codes:
        return code, difficulty.description
    fallback = DEFAULT_CATEGORY if DEFAULT_CATEGORY in codes else codes[0]
    if difficulty.kind != "difficulty":
        return fallback, difficulty.description
    return fallback, f"{difficulty.description} (category on the visit: {code})"
