"""The compliance rules: per cadre and month, did they spend enough days at the grassroots?

Two pure halves. `evolve` folds one visits-log event into `Facts` (what the rules need to
know, nothing more); the projection stores the same facts in SQL, and `facts_from_events` is
the reference it is tested against. `assess` applies the rules to the facts for one month.

Rules (issue 3; dates are local dates in the policy's time zone):
- days: distinct dates in the month with at least one of the cadre's visits not retracted,
  after corrections; `dates` lists them; `backfilled_days` counts those whose visits were all
  backfilled (they still count).
- fixed_day_met: a visit on the fixed day (the month's last day if the month is shorter).
- unit_day_met: a visit on the unit day of the cadre's unit (clamped the same way); null when
  the unit set none.
- compliant: days >= the month's min_days, fixed_day_met and unit_day_met not false.
- A cadre is assessed in the unit they belonged to on the month's last day, or on their last
  day on the roster if they left during the month.

Choices where the issue is silent:
- A day the cadre is on leave, or not on the roster (enrolled later, left earlier), is not an
  "available" day. A rule whose day is not available is exempted: its `*_met` is null unless
  the cadre visited that day anyway (then true). The unit-day rule is also exempted when the
  cadre joined that unit after its unit day, or the unit's setting took effect after it.
- The quota is capped by the available days: min(min_days, available days), so a cadre who
  joins on the 31st owes one day, not two. Partial leave counts the same way.
- No available day in the month (leave covers every day the cadre was on the roster) makes the
  cadre `exempt`: listed, `compliant` null, left out of the unit's rate.
- Cadres not on the roster on any day of the month are not listed.
- The unit's day is the setting in effect on the cadre's assessment day (month end or last
  roster day).
- Units: every registered unit is listed (also with no cadres). `rate` is compliant cadres over
  listed cadres that are not exempt, rounded to 4 places; null when there are none.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import reduce
from typing import Any, Protocol

from shared.campaign.periods import Membership, covers, cut
from shared.campaign.policy import Policy

MONTH_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class EventRecord(Protocol):
    """What the fold reads from a committed event (shared.eventlog.Record satisfies it)."""

    @property
    def type(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class UnitDaySetting:
    effective_from: dt.date | None  # None: since the unit was registered
    unit_day: int | None


@dataclass(frozen=True)
class LeavePeriod:
    start: dt.date
    end: dt.date  # inclusive


@dataclass(frozen=True)
class CadreFacts:
    cadre_id: str
    enrolled_from: dt.date
    left_from: dt.date | None = None  # the first day off the roster
    memberships: tuple[Membership, ...] = ()
    leaves: tuple[LeavePeriod, ...] = ()

    def unit_on(self, day: dt.date) -> str | None:
        return next((m.unit_id for m in self.memberships if covers(m.start, m.end, day)), None)

    def on_leave(self, day: dt.date) -> bool:
        return any(covers(leave.start, leave.end, day) for leave in self.leaves)


@dataclass(frozen=True)
class VisitFacts:
    """A visit as it stands after corrections; retracted visits are not kept."""

    visit_id: str
    date: dt.date
    backfilled: bool
    cadre_ids: tuple[str, ...]
    pending: tuple[str, ...] = ()  # on the visit, not confirmed: it does not count for them


@dataclass(frozen=True)
class Participation:
    cadre_id: str
    visit_id: str
    date: dt.date
    backfilled: bool
    confirmed: bool = True


@dataclass(frozen=True)
class Facts:
    units: Mapping[str, tuple[UnitDaySetting, ...]] = field(default_factory=dict)
    cadres: Mapping[str, CadreFacts] = field(default_factory=dict)
    visits: Mapping[str, VisitFacts] = field(default_factory=dict)

    def participations(self) -> Iterator[Participation]:
        """One row per cadre per visit: the shape a SQL table of the projection would hold."""
        for visit in self.visits.values():
            for cadre_id in visit.cadre_ids:
                yield Participation(cadre_id, visit.visit_id, visit.date, visit.backfilled,
                                    cadre_id not in visit.pending)


def facts_from_rows(
    units: Mapping[str, tuple[UnitDaySetting, ...]],
    cadres: Iterable[CadreFacts],
    participations: Iterable[Participation],
) -> Facts:
    """Facts from stored rows (e.g. the projection's tables), participations grouped by visit."""
    visits: dict[str, VisitFacts] = {}
    for p in participations:
        known = visits.get(p.visit_id)
        cadre_ids = (*known.cadre_ids, p.cadre_id) if known else (p.cadre_id,)
        pending = known.pending if known else ()
        pending = pending if p.confirmed else (*pending, p.cadre_id)
        visits[p.visit_id] = VisitFacts(p.visit_id, p.date, p.backfilled, cadre_ids, pending)
    return Facts(dict(units), {c.cadre_id: c for c in cadres}, visits)


# --- the fold -----------------------------------------------------------------------------------


def evolve(facts: Facts, record: EventRecord) -> Facts:
    """The facts after one more event, in log order; other event types change nothing."""
    step = _STEPS.get(record.type)
    return step(facts, record.data) if step else facts


def facts_from_events(records: Iterable[EventRecord], facts: Facts | None = None) -> Facts:
    return reduce(evolve, records, facts or Facts())


def _day(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def _with_cadre(facts: Facts, cadre: CadreFacts) -> Facts:
    return replace(facts, cadres={**facts.cadres, cadre.cadre_id: cadre})


def _with_visit(facts: Facts, visit: VisitFacts) -> Facts:
    return replace(facts, visits={**facts.visits, visit.visit_id: visit})


def _unit_registered(facts: Facts, data: dict[str, Any]) -> Facts:
    if data["unit_id"] in facts.units:
        return facts
    settings = (UnitDaySetting(None, data.get("unit_day")),)
    return replace(facts, units={**facts.units, data["unit_id"]: settings})


def _unit_day_set(facts: Facts, data: dict[str, Any]) -> Facts:
    start = _day(data["effective_from"])
    kept = tuple(
        s for s in facts.units.get(data["unit_id"], ())
        if s.effective_from is None or s.effective_from < start
    )
    settings = (*kept, UnitDaySetting(start, data.get("unit_day")))
    return replace(facts, units={**facts.units, data["unit_id"]: settings})


def _cadre_enrolled(facts: Facts, data: dict[str, Any]) -> Facts:
    start = _day(data["effective_from"])
    membership = Membership(data["unit_id"], start)
    return _with_cadre(facts, CadreFacts(data["cadre_id"], start, memberships=(membership,)))


def _cadre_transferred(facts: Facts, data: dict[str, Any]) -> Facts:
    cadre = facts.cadres.get(data["cadre_id"])
    if cadre is None:
        return facts
    start = _day(data["effective_from"])
    memberships = (*cut(cadre.memberships, start), Membership(data["to_unit_id"], start))
    return _with_cadre(facts, replace(cadre, memberships=memberships))


def _cadre_leave_granted(facts: Facts, data: dict[str, Any]) -> Facts:
    cadre = facts.cadres.get(data["cadre_id"])
    if cadre is None:
        return facts
    leave = LeavePeriod(_day(data["from"]), _day(data["to"]))
    return _with_cadre(facts, replace(cadre, leaves=(*cadre.leaves, leave)))


def _cadre_left(facts: Facts, data: dict[str, Any]) -> Facts:
    cadre = facts.cadres.get(data["cadre_id"])
    if cadre is None:
        return facts
    out = _day(data["effective_from"])
    return _with_cadre(
        facts, replace(cadre, left_from=out, memberships=cut(cadre.memberships, out))
    )


def _visit_recorded(facts: Facts, data: dict[str, Any]) -> Facts:
    visit = VisitFacts(
        data["visit_id"], _day(data["date"]), data["backfilled"], tuple(data["cadre_ids"]),
        tuple(data.get("pending_cadre_ids", ())),
    )
    return _with_visit(facts, visit)


def _visit_corrected(facts: Facts, data: dict[str, Any]) -> Facts:
    visit = facts.visits.get(data["visit_id"])
    if visit is None:  # retracted (or before the window read): nothing to correct
        return facts
    cadre_ids = tuple(data["cadre_ids"]) if "cadre_ids" in data else visit.cadre_ids
    pending = data.get("pending_cadre_ids", [c for c in visit.pending if c in cadre_ids])
    corrected = replace(
        visit,
        date=_day(data["date"]) if "date" in data else visit.date,
        cadre_ids=cadre_ids, pending=tuple(pending),
        backfilled=data.get("backfilled", visit.backfilled),
    )
    return _with_visit(facts, corrected)


def _participation_confirmed(facts: Facts, data: dict[str, Any]) -> Facts:
    visit = facts.visits.get(data["visit_id"])
    if visit is None:
        return facts
    pending = tuple(c for c in visit.pending if c != data["cadre_id"])
    return _with_visit(facts, replace(visit, pending=pending))


def _participation_withdrawn(facts: Facts, data: dict[str, Any]) -> Facts:
    visit = facts.visits.get(data["visit_id"])
    if visit is None:
        return facts
    gone = data["cadre_id"]
    return _with_visit(facts, replace(
        visit, cadre_ids=tuple(c for c in visit.cadre_ids if c != gone),
        pending=tuple(c for c in visit.pending if c != gone)))


def _visit_retracted(facts: Facts, data: dict[str, Any]) -> Facts:
    visits = {k: v for k, v in facts.visits.items() if k != data["visit_id"]}
    return replace(facts, visits=visits)


_STEPS: dict[str, Callable[[Facts, dict[str, Any]], Facts]] = {
    "unit.registered": _unit_registered,
    "unit.unit_day_set": _unit_day_set,
    "cadre.enrolled": _cadre_enrolled,
    "cadre.transferred": _cadre_transferred,
    "cadre.leave_granted": _cadre_leave_granted,
    "cadre.left": _cadre_left,
    "visit.recorded": _visit_recorded,
    "visit.corrected": _visit_corrected,
    "visit.retracted": _visit_retracted,
    "visit.participation_confirmed": _participation_confirmed,
    "visit.participation_withdrawn": _participation_withdrawn,
}
EVENT_TYPES = tuple(_STEPS)  # what the projection subscribes to


# --- the rules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Month:
    name: str  # "YYYY-MM"
    first: dt.date
    last: dt.date

    def on(self, day_of_month: int) -> dt.date:
        """The month's `day_of_month`, or its last day if the month is shorter."""
        return self.first.replace(day=min(day_of_month, self.last.day))

    def days(self) -> Iterator[dt.date]:
        for n in range(self.last.day):
            yield self.first + dt.timedelta(days=n)


def parse_month(month: str) -> Month:
    match = MONTH_PATTERN.match(month)
    if not match:
        raise ValueError(f"month {month!r} is not YYYY-MM")
    year, number = int(match[1]), int(match[2])
    length = calendar.monthrange(year, number)[1]
    return Month(month, dt.date(year, number, 1), dt.date(year, number, length))


def _visit_days(facts: Facts, month: Month) -> dict[str, dict[dt.date, bool]]:
    """Per cadre, the month's visit dates, each with whether all its visits were backfilled."""
    days: dict[str, dict[dt.date, bool]] = {}
    for p in facts.participations():
        if p.confirmed and month.first <= p.date <= month.last:
            dates = days.setdefault(p.cadre_id, {})
            dates[p.date] = dates.get(p.date, True) and p.backfilled
    return days


def _roster_span(cadre: CadreFacts, month: Month) -> tuple[dt.date, dt.date] | None:
    """The first and last days of the month the cadre was on the roster, if any."""
    start = max(month.first, cadre.enrolled_from)
    end = month.last
    if cadre.left_from is not None:
        end = min(end, cadre.left_from - dt.timedelta(days=1))
    return (start, end) if start <= end else None


def _unit_day_setting(
    settings: tuple[UnitDaySetting, ...], day: dt.date
) -> UnitDaySetting | None:
    in_effect = [s for s in settings if s.effective_from is None or s.effective_from <= day]
    return in_effect[-1] if in_effect else None


def _rule(met: bool, applies: bool) -> bool | None:
    """true if met; false if missed while it applied; null if it did not apply."""
    if met:
        return True
    return False if applies else None


@dataclass(frozen=True)
class _Span:
    """One cadre's month: which days count as available for the rules."""

    cadre: CadreFacts
    start: dt.date
    end: dt.date

    def available(self, day: dt.date) -> bool:
        return self.start <= day <= self.end and not self.cadre.on_leave(day)


def _unit_day_met(
    span: _Span, unit_id: str, facts: Facts, month: Month, dates: Mapping[dt.date, bool]
) -> bool | None:
    setting = _unit_day_setting(facts.units.get(unit_id, ()), span.end)
    if setting is None or setting.unit_day is None:
        return None
    day = month.on(setting.unit_day)
    applies = (
        (setting.effective_from is None or setting.effective_from <= day)
        and span.cadre.unit_on(day) == unit_id
        and span.available(day)
    )
    return _rule(day in dates, applies)


def assess_cadre(
    cadre: CadreFacts,
    month: Month,
    dates: Mapping[dt.date, bool],
    facts: Facts,
    policy: Policy,
) -> dict[str, Any] | None:
    """One cadre's row for the month, or None if they were not on the roster in it.

    `dates` maps the cadre's visit dates in the month to "all its visits were backfilled".
    """
    bounds = _roster_span(cadre, month)
    if bounds is None:
        return None
    span = _Span(cadre, *bounds)
    unit_id = cadre.unit_on(span.end) or cadre.memberships[-1].unit_id
    available = sum(1 for day in month.days() if span.available(day))
    fixed_day = month.on(policy.fixed_day)
    fixed_day_met = _rule(fixed_day in dates, span.available(fixed_day))
    unit_day_met = _unit_day_met(span, unit_id, facts, month, dates)
    required = min(policy.min_days_for(month.name), available)
    exempt = available == 0
    compliant = None if exempt else (
        len(dates) >= required and fixed_day_met is not False and unit_day_met is not False
    )
    return {
        "cadre_id": cadre.cadre_id,
        "unit_id": unit_id,
        "days": len(dates),
        "dates": sorted(dates),
        "fixed_day_met": fixed_day_met,
        "unit_day_met": unit_day_met,
        "exempt": exempt,
        "compliant": compliant,
        "backfilled_days": sum(1 for all_backfilled in dates.values() if all_backfilled),
    }


def _unit_row(unit_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    exempt = sum(1 for r in rows if r["exempt"])
    compliant = sum(1 for r in rows if r["compliant"] is True)
    assessable = len(rows) - exempt
    return {
        "unit_id": unit_id,
        "cadres": len(rows),
        "compliant": compliant,
        "exempt": exempt,
        "rate": round(compliant / assessable, 4) if assessable else None,
    }


def assess(
    month: str, facts: Facts, policy: Policy, *, unit_id: str | None = None
) -> dict[str, Any]:
    """The compliance report of `month` ("YYYY-MM"), optionally of one unit only.

    Dates in the result are `datetime.date`; ComplianceReportSchema dumps it to JSON.
    """
    period = parse_month(month)
    visit_days = _visit_days(facts, period)
    rows = [
        row
        for cadre in facts.cadres.values()
        if (row := assess_cadre(cadre, period, visit_days.get(cadre.cadre_id, {}), facts, policy))
    ]
    if unit_id is not None:
        rows = [r for r in rows if r["unit_id"] == unit_id]
    rows.sort(key=lambda r: (r["unit_id"], r["cadre_id"]))
    unit_ids = set(facts.units) | {r["unit_id"] for r in rows}
    if unit_id is not None:
        unit_ids &= {unit_id}
    units = [_unit_row(u, [r for r in rows if r["unit_id"] == u]) for u in sorted(unit_ids)]
    return {"month": month, "cadres": rows, "units": units}
