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
from typing import Any, NamedTuple

from services.visits.events import (  # the producer's published types
    PARTICIPATION_CONFIRMED,
    PARTICIPATION_WITHDRAWN,
    VISIT_CORRECTED,
    VISIT_RECORDED,
    VISIT_RETRACTED,
)
from shared.campaign.policy import Policy
from shared.campaign.roster import ROSTER_EVENT_TYPES, Cadre, Event, Roster, Unit

MONTH_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class VisitFacts(NamedTuple):
    """A visit as it stands after corrections; retracted visits are not kept.

    A NamedTuple, not a frozen dataclass: a rebuild makes one per visit, 150,000 of them, and
    a frozen dataclass's `__init__` cost more than the rest of the visit's fold."""

    visit_id: str
    date: dt.date
    backfilled: bool
    cadre_ids: tuple[str, ...]
    pending: tuple[str, ...] = ()  # on the visit, not confirmed: it does not count for them

    def participations(self) -> Iterator[Participation]:
        for cadre_id in self.cadre_ids:
            yield Participation(cadre_id, self.visit_id, self.date, self.backfilled,
                                cadre_id not in self.pending)


@dataclass(frozen=True)
class Participation:
    cadre_id: str
    visit_id: str
    date: dt.date
    backfilled: bool
    confirmed: bool = True


@dataclass(frozen=True)
class Facts:
    """What the rules need: the roster's units and cadres (shared.campaign.roster), visits."""

    units: Mapping[str, Unit] = field(default_factory=dict)
    cadres: Mapping[str, Cadre] = field(default_factory=dict)
    visits: Mapping[str, VisitFacts] = field(default_factory=dict)

    def participations(self) -> Iterator[Participation]:
        """One row per cadre per visit: the shape a SQL table of the projection would hold."""
        for visit in self.visits.values():
            yield from visit.participations()


def facts_from_rows(
    units: Mapping[str, Unit],
    cadres: Iterable[Cadre],
    participations: Iterable[Participation],
) -> Facts:
    """Facts from stored rows (e.g. the projection's tables), participations grouped by visit."""
    return Facts(dict(units), {c.cadre_id: c for c in cadres}, visits_from_rows(participations))


def visits_from_rows(participations: Iterable[Participation]) -> dict[str, VisitFacts]:
    grouped: dict[str, tuple[Participation, list[str], list[str]]] = {}
    for p in participations:
        known = grouped.get(p.visit_id)
        if known is None:
            known = grouped[p.visit_id] = (p, [], [])
        known[1].append(p.cadre_id)
        if not p.confirmed:
            known[2].append(p.cadre_id)
    return {visit_id: VisitFacts(visit_id, p.date, p.backfilled, tuple(cadre_ids), tuple(pending))
            for visit_id, (p, cadre_ids, pending) in grouped.items()}


# --- the fold -----------------------------------------------------------------------------------


def evolve(facts: Facts, record: Event) -> Facts:
    """The facts after one more event, in log order; other event types change nothing."""
    if record.type in ROSTER_EVENT_TYPES:  # the one roster fold's steps
        before = Roster(facts.units, facts.cadres)
        after = before.apply(record)
        return facts if after is before else replace(facts, units=after.units,
                                                     cadres=after.cadres)
    if record.type in VISIT_EVENT_TYPES:
        visit_id = record.data["visit_id"]
        visit = evolve_visit(facts.visits.get(visit_id), record)
        visits = {k: v for k, v in facts.visits.items() if k != visit_id}
        if visit is not None:
            visits[visit_id] = visit
        return replace(facts, visits=visits)
    return facts


def facts_from_events(records: Iterable[Event], facts: Facts | None = None) -> Facts:
    current = facts or Facts()
    for record in records:
        current = evolve(current, record)
    return current


def evolve_visit(visit: VisitFacts | None, record: Event) -> VisitFacts | None:
    """One visit after one of its events (None: unknown, or retracted)."""
    return visit_step(visit, record.type, record.data)


def visit_step(visit: VisitFacts | None, type_: str, data: dict[str, Any]
               ) -> VisitFacts | None:
    """`evolve_visit` given the event's type and data (a fold that reads them itself)."""
    step = _VISIT_STEPS.get(type_)
    return step(visit, data) if step else visit


def _visit_recorded(visit: VisitFacts | None, data: dict[str, Any]) -> VisitFacts | None:
    return VisitFacts(
        data["visit_id"], dt.date.fromisoformat(data["date"]), data["backfilled"],
        tuple(data["cadre_ids"]), tuple(data.get("pending_cadre_ids", ())),
    )


def _visit_corrected(visit: VisitFacts | None, data: dict[str, Any]) -> VisitFacts | None:
    if visit is None:  # retracted (or before the window read): nothing to correct
        return None
    cadre_ids = tuple(data["cadre_ids"]) if "cadre_ids" in data else visit.cadre_ids
    pending = data.get("pending_cadre_ids", [c for c in visit.pending if c in cadre_ids])
    return visit._replace(
        date=dt.date.fromisoformat(data["date"]) if "date" in data else visit.date,
        cadre_ids=cadre_ids, pending=tuple(pending),
        backfilled=data.get("backfilled", visit.backfilled),
    )


def _participation_confirmed(visit: VisitFacts | None, data: dict[str, Any]
                             ) -> VisitFacts | None:
    if visit is None:
        return None
    return visit._replace(pending=tuple(c for c in visit.pending if c != data["cadre_id"]))


def _participation_withdrawn(visit: VisitFacts | None, data: dict[str, Any]
                             ) -> VisitFacts | None:
    if visit is None:
        return None
    gone = data["cadre_id"]
    return visit._replace(cadre_ids=tuple(c for c in visit.cadre_ids if c != gone),
                          pending=tuple(c for c in visit.pending if c != gone))


def _visit_retracted(visit: VisitFacts | None, data: dict[str, Any]) -> VisitFacts | None:
    return None


_VISIT_STEPS: dict[str, Callable[[VisitFacts | None, dict[str, Any]], VisitFacts | None]] = {
    VISIT_RECORDED: _visit_recorded,
    VISIT_CORRECTED: _visit_corrected,
    VISIT_RETRACTED: _visit_retracted,
    PARTICIPATION_CONFIRMED: _participation_confirmed,
    PARTICIPATION_WITHDRAWN: _participation_withdrawn,
}
VISIT_EVENT_TYPES = tuple(_VISIT_STEPS)
EVENT_TYPES = (*ROSTER_EVENT_TYPES, *VISIT_EVENT_TYPES)  # what the projection subscribes to


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
    for visit in facts.visits.values():
        day = visit.date
        if not month.first <= day <= month.last:
            continue
        for cadre_id in visit.cadre_ids:
            if cadre_id not in visit.pending:
                dates = days.setdefault(cadre_id, {})
                dates[day] = dates.get(day, True) and visit.backfilled
    return days


def _rule(met: bool, applies: bool) -> bool | None:
    """true if met; false if missed while it applied; null if it did not apply."""
    if met:
        return True
    return False if applies else None


_DAY = dt.timedelta(days=1)


def _available(cadre: Cadre, start: dt.date, end: dt.date, day: dt.date) -> bool:
    """Whether `day` counts as available: within the cadre's days on the roster in the month
    (`start`..`end`) and not on leave."""
    return start <= day <= end and not (cadre.leaves and cadre.on_leave(day))


def _available_days(cadre: Cadre, start: dt.date, end: dt.date) -> int:
    """How many days of `start`..`end` are available: its length less the days on leave
    (leave periods clipped to the span and merged, so overlaps count once)."""
    clipped = sorted((max(v.start, start), min(v.end, end))
                     for v in cadre.leaves if v.start <= end and v.end >= start)
    on_leave, reach = 0, start - _DAY
    for first, last in clipped:
        first = max(first, reach + _DAY)
        if first <= last:
            on_leave += (last - first).days + 1
        reach = max(reach, last)
    return (end - start).days + 1 - on_leave


class _Assessor:
    """The rules of one month, with what is the same for all its cadres worked out once (the
    fixed day, the quota, each unit's day): a report assesses 5,000 cadres."""

    def __init__(self, month: Month, units: Mapping[str, Unit], policy: Policy) -> None:
        self.month, self.units = month, units
        self.fixed_day = month.on(policy.fixed_day)
        self.quota = policy.min_days_for(month.name)
        self._unit_days: dict[tuple[str, dt.date], tuple[dt.date, bool] | None] = {}

    def unit_day(self, unit_id: str, end: dt.date) -> tuple[dt.date, bool] | None:
        """The unit's day in the month per the setting in effect on `end`, and whether that
        setting was in effect by then; None if the unit set none."""
        key = (unit_id, end)
        if key not in self._unit_days:
            unit = self.units.get(unit_id)
            setting = unit.setting_on(end) if unit is not None else None
            found = None
            if setting is not None and setting.unit_day is not None:
                day = self.month.on(setting.unit_day)
                found = (day, setting.effective_from is None or setting.effective_from <= day)
            self._unit_days[key] = found
        return self._unit_days[key]

    def cadre(self, cadre: Cadre, dates: Mapping[dt.date, bool]) -> dict[str, Any] | None:
        """One cadre's row for the month, or None if they were not on the roster in it.

        `dates` maps the cadre's visit dates in the month to "all its visits were backfilled".
        """
        start, end = max(self.month.first, cadre.enrolled_from), self.month.last
        if cadre.left_from is not None:
            end = min(end, cadre.left_from - _DAY)
        if start > end:
            return None
        unit_id = cadre.unit_on(end) or cadre.memberships[-1].unit_id
        available = _available_days(cadre, start, end) if cadre.leaves else (end - start).days + 1
        fixed_day = self.fixed_day
        fixed_day_met = _rule(fixed_day in dates, _available(cadre, start, end, fixed_day))
        unit_day_met = None
        if (held := self.unit_day(unit_id, end)) is not None:
            day, in_effect = held
            unit_day_met = _rule(day in dates, in_effect and cadre.unit_on(day) == unit_id
                                 and _available(cadre, start, end, day))
        exempt = available == 0
        compliant = None if exempt else (
            len(dates) >= min(self.quota, available) and fixed_day_met is not False
            and unit_day_met is not False
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
    return assess_days(period, facts.units, facts.cadres.values(), _visit_days(facts, period),
                       policy, unit_id=unit_id)


def assess_days(
    period: Month, units: Mapping[str, Unit], cadres: Iterable[Cadre],
    visit_days: Mapping[str, Mapping[dt.date, bool]], policy: Policy, *,
    unit_id: str | None = None,
) -> dict[str, Any]:
    """`assess` given each cadre's visit dates in the month (date -> all its visits were
    backfilled) rather than the visits: what a store can hand over without building them."""
    assessor = _Assessor(period, units, policy)
    no_dates: dict[dt.date, bool] = {}
    rows = [row for cadre in cadres
            if (row := assessor.cadre(cadre, visit_days.get(cadre.cadre_id, no_dates)))]
    if unit_id is not None:
        rows = [r for r in rows if r["unit_id"] == unit_id]
    rows.sort(key=lambda r: (r["unit_id"], r["cadre_id"]))
    unit_ids = set(units) | {r["unit_id"] for r in rows}
    if unit_id is not None:
        unit_ids &= {unit_id}
    by_unit: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_unit.setdefault(r["unit_id"], []).append(r)
    unit_rows = [_unit_row(u, by_unit.get(u, [])) for u in sorted(unit_ids)]
    return {"month": period.name, "cadres": rows, "units": unit_rows}
