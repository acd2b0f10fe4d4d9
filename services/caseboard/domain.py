"""The case board's rules: per unit and month, how the cases handed to units are faring.

Two pure halves, as in the compliance view. `evolve` folds one cases-log event into a case's
`CaseFacts` (what the figures need, nothing more); the projection stores the same facts by log
position, and `facts_from_events` is the reference it is tested against. `board` counts one
month's cases into rows, one per unit.

Which month and which unit a case counts in (choices; the issue is silent):
- Every figure of a case counts in one month, the month it was registered (立案: the local
  date, in the policy's time zone, of its `case.registered`). A month is a cohort: its rates
  compare the same cases above and below the line, and its row settles as its cases finish.
  The assignment's month would split a case registered on the 31st and assigned on the 1st
  across two months for no gain.
- A case counts for the unit it is assigned to now. Its figures are those of that assignment:
  a return and a new assignment (to another unit, or the same one upholding it) start them
  afresh, so a unit is never charged with another's lateness. A case waiting for a unit (not
  yet assigned, or returned and not assigned again) counts in the row whose `unit_id` is null.

The figures of a row (its cases: registered in the month, of that unit):
- received: its cases. open: a deadline runs (assigned, accepted, an extension asked for).
  resolved: resolved (办结) and not reopened since, closed ones included. closed: closed
  (销号). parked: parked (挂账) now. For a unit, received = open + resolved + parked.
- accepted_on_time: accepted (签收) within the acceptance limit (the decision says so in
  `case.accepted`). overdue: overdue now (as GET /cases/{id} shows it: chased, and not since
  resolved, parked, returned or given a new deadline). chased: got `case.overdue` (催办) at
  least once. reopened: reopened (重办) at least once. solved: resolved with outcome `solved`.
- callbacks: every callback (回访) counts, by verdict; a case called back twice counts twice.
- response rate: accepted_on_time / received (every case of a unit's row was assigned to it;
  one not accepted yet counts against it until it is). resolution rate: solved / resolved.
  satisfaction rate: (satisfied + basically_satisfied) / callbacks. chase rate: chased /
  received. rework rate: reopened / cases resolved at least once. In the waiting row, whose
  cases no unit holds, the unit's rates (response, chase) are null. A rate whose denominator
  is zero is null, not 0; rates are rounded to 4 places.
- origins: the row's cases by origin (visit, petition, hotline); visit_share: found on visits
  among received ("turn petitions-up into visits-down").
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from services.cases import events as e  # the producer's published contract
from shared.campaign.policy import Policy

WAITING, OPEN, RESOLVED, CLOSED, PARKED = "waiting", "open", "resolved", "closed", "parked"
ORIGINS = ("visit", "petition", "hotline")
VERDICTS = ("satisfied", "basically_satisfied", "unsatisfied")


class Event(Protocol):
    """What the fold reads of a cases-log record (shared.eventlog.Record satisfies it)."""

    @property
    def type(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def occurred_at(self) -> dt.datetime: ...


@dataclass(frozen=True)
class CaseFacts:
    """One case as the board counts it (the fields after `unit_id` are its assignment's)."""

    case_id: str
    origin: str
    registered_at: dt.datetime  # aware
    unit_id: str | None = None  # assigned to now; None while waiting for a unit
    stage: str = WAITING  # waiting | open | resolved | closed | parked
    accepted_on_time: bool = False
    overdue: bool = False
    chased: bool = False
    resolved_once: bool = False
    reopened: bool = False
    outcome: str | None = None
    satisfied: int = 0
    basically_satisfied: int = 0
    unsatisfied: int = 0


# --- the fold -----------------------------------------------------------------------------------


def evolve(case: CaseFacts | None, event: Event) -> CaseFacts | None:
    """The case after one more of its events, in log order; None until it is registered."""
    if event.type == e.CASE_REGISTERED:
        data = event.data
        return case or CaseFacts(data["case_id"], data["origin"], event.occurred_at)
    step = _STEPS.get(event.type)
    return step(case, event.data) if case is not None and step is not None else case


def _assigned(c: CaseFacts, d: dict[str, Any]) -> CaseFacts:
    """A new assignment: the unit's record of the case starts afresh."""
    return CaseFacts(c.case_id, c.origin, c.registered_at, unit_id=d["unit_id"], stage=OPEN)


def _extension_decided(c: CaseFacts, d: dict[str, Any]) -> CaseFacts:
    return replace(c, overdue=False) if d["decision"] == "approved" else c


def _resolved(c: CaseFacts, d: dict[str, Any]) -> CaseFacts:
    return replace(c, stage=RESOLVED, outcome=d["outcome"], resolved_once=True, overdue=False)


def _called_back(c: CaseFacts, d: dict[str, Any]) -> CaseFacts:
    verdict = d["satisfaction"]
    return replace(c, **{verdict: getattr(c, verdict) + 1})


_STEPS: dict[str, Callable[[CaseFacts, dict[str, Any]], CaseFacts]] = {
    e.CASE_ASSIGNED: _assigned,
    e.CASE_ACCEPTED: lambda c, d: replace(c, accepted_on_time=d["on_time"]),
    e.CASE_RETURNED: lambda c, d: replace(c, unit_id=None, stage=WAITING, overdue=False),
    e.EXTENSION_DECIDED: _extension_decided,
    e.CASE_RESOLVED: _resolved,
    e.CALLBACK_RECORDED: _called_back,
    e.CASE_CLOSED: lambda c, d: replace(c, stage=CLOSED),
    e.CASE_REOPENED: lambda c, d: replace(c, stage=OPEN, reopened=True, overdue=False),
    e.CASE_PARKED: lambda c, d: replace(c, stage=PARKED, overdue=False),
    e.CASE_UNPARKED: lambda c, d: replace(c, stage=OPEN, overdue=False),
    e.CASE_OVERDUE: lambda c, d: replace(c, overdue=True, chased=True),
}
EVENT_TYPES = frozenset((e.CASE_REGISTERED, *_STEPS))  # what changes the board


def facts_from_events(records: Iterable[Event]) -> dict[str, CaseFacts]:
    """Every case's facts after `records` (the reference fold)."""
    cases: dict[str, CaseFacts] = {}
    for record in records:
        if record.type in EVENT_TYPES:
            case_id = record.data["case_id"]
            after = evolve(cases.get(case_id), record)
            if after is not None:
                cases[case_id] = after
    return cases


# --- the figures --------------------------------------------------------------------------------


def month_bounds(month: str, policy: Policy) -> tuple[dt.datetime, dt.datetime]:
    """The instants a month ("YYYY-MM") starts and ends at (exclusive) in the policy's zone."""
    first = dt.date(int(month[:4]), int(month[5:7]), 1)
    following = (first + dt.timedelta(days=31)).replace(day=1)
    return policy.start_of(first), policy.start_of(following)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _row(unit_id: str | None, cases: list[CaseFacts]) -> dict[str, Any]:
    def count(test: Callable[[CaseFacts], bool]) -> int:
        return sum(1 for c in cases if test(c))

    received = len(cases)
    resolved = count(lambda c: c.stage in (RESOLVED, CLOSED))
    accepted_on_time = count(lambda c: c.accepted_on_time)
    chased = count(lambda c: c.chased)
    reopened = count(lambda c: c.reopened)
    solved = count(lambda c: c.stage in (RESOLVED, CLOSED) and c.outcome == "solved")
    verdicts = {v: sum(getattr(c, v) for c in cases) for v in VERDICTS}
    callbacks = sum(verdicts.values())
    tally = Counter(c.origin for c in cases)
    origins = {o: tally[o] for o in ORIGINS}
    held = received if unit_id is not None else 0  # the cases a unit was handed
    return {
        "unit_id": unit_id, "received": received, "accepted_on_time": accepted_on_time,
        "open": count(lambda c: c.stage == OPEN), "overdue": count(lambda c: c.overdue),
        "resolved": resolved, "closed": count(lambda c: c.stage == CLOSED),
        "parked": count(lambda c: c.stage == PARKED), "chased": chased, "reopened": reopened,
        "solved": solved, "callbacks": {"total": callbacks, **verdicts}, "origins": origins,
        "response_rate": _rate(accepted_on_time, held),
        "resolution_rate": _rate(solved, resolved),
        "satisfaction_rate": _rate(verdicts["satisfied"] + verdicts["basically_satisfied"],
                                   callbacks),
        "chase_rate": _rate(chased, held),
        "rework_rate": _rate(reopened, count(lambda c: c.resolved_once)),
        "visit_share": _rate(origins["visit"], received),
    }


def board(month: str, cases: Iterable[CaseFacts], policy: Policy, *,
          unit_id: str | None = None) -> dict[str, Any]:
    """The case board of `month`: a row per unit with cases registered in the month (units in
    order, the waiting row last); of one unit only when `unit_id` is given (a row of zeros if
    it has none)."""
    start, end = month_bounds(month, policy)
    by_unit: dict[str | None, list[CaseFacts]] = {}
    for case in cases:
        if start <= case.registered_at < end and unit_id in (None, case.unit_id):
            by_unit.setdefault(case.unit_id, []).append(case)
    if unit_id is not None:
        by_unit.setdefault(unit_id, [])
    order = sorted(by_unit, key=lambda u: (u is None, u or ""))
    return {"month": month, "units": [_row(u, by_unit[u]) for u in order]}
