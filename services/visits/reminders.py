"""The reminder before the fixed day: the first time-driven rule (shared/kernel/timed.py).

From `reminder_lead_days` local days before the month's fixed day until the end of that day, a
cadre still short of the quota (fewer than the month's `min_days` grassroots days so far, or
not yet down on the fixed day) is reminded once: a `cadre.reminded` event in the visits log
(stream `reminder-<cadre>-<month>`), decided by `domain.decide` like any command. Days count
as in the compliance view: distinct local dates of visits not retracted, after corrections,
where the cadre's participation is confirmed (not pending). Cadres off the roster, or on
leave today or on the fixed day, are exempt: a later tick in the window reminds a cadre whose
leave has ended.

`MonthDays` is the per-cadre days of each month, folded in memory from the visit events;
it mutates in place (a visits log holds hundreds of thousands of visits, and copying a map
per event would make the fold quadratic).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from services.visits import domain, events, schemas
from shared.campaign.policy import Policy
from shared.campaign.roster import Event
from shared.eventlog import EventLog, Record
from shared.kernel.commands import MemoryFold
from shared.kernel.timed import Due, fire
from shared.runtime.auth import Principal

RULE = "quota_reminder"
LEVEL = "before_fixed_day"
TIMER = Principal(role=domain.TIMER_ROLE, token_id="timer")
EVENT_TYPES = (*events.VISIT_EVENT_TYPES, events.CADRE_REMINDED)


@dataclass
class _Visit:
    day: dt.date
    cadre_ids: tuple[str, ...]
    pending: tuple[str, ...]

    @property
    def month(self) -> str:
        return f"{self.day:%Y-%m}"


class MonthDays:
    """Visits by month with the cadres they count for, and the reminders already given."""

    def __init__(self) -> None:
        self.visits: dict[str, _Visit] = {}
        self.by_month: dict[str, set[str]] = {}
        self.reminded: set[tuple[str, str, str, str]] = set()  # cadre, month, rule, level

    def apply(self, record: Event) -> MonthDays:
        data = record.data
        if record.type == domain.CADRE_REMINDED:
            self.reminded.add((data["cadre_id"], data["month"], data["rule"], data["level"]))
        elif record.type == domain.VISIT_RECORDED:
            self._put(data["visit_id"], _Visit(dt.date.fromisoformat(data["date"]),
                                               tuple(data["cadre_ids"]),
                                               tuple(data.get("pending_cadre_ids", ()))))
        elif (visit := self.visits.get(data.get("visit_id", ""))) is not None:
            self._change(visit, record.type, data)
        return self

    def _change(self, visit: _Visit, kind: str, data: dict[str, Any]) -> None:
        if kind == domain.VISIT_RETRACTED:
            self._drop(data["visit_id"])
        elif kind == domain.VISIT_CORRECTED:
            cadre_ids = tuple(data.get("cadre_ids", visit.cadre_ids))
            pending = data.get("pending_cadre_ids", [c for c in visit.pending if c in cadre_ids])
            day = dt.date.fromisoformat(data["date"]) if "date" in data else visit.day
            self._put(data["visit_id"], _Visit(day, cadre_ids, tuple(pending)))
        elif kind == domain.PARTICIPATION_CONFIRMED:
            visit.pending = tuple(c for c in visit.pending if c != data["cadre_id"])
        elif kind == domain.PARTICIPATION_WITHDRAWN:
            visit.cadre_ids = tuple(c for c in visit.cadre_ids if c != data["cadre_id"])
            visit.pending = tuple(c for c in visit.pending if c != data["cadre_id"])

    def _put(self, visit_id: str, visit: _Visit) -> None:
        self._drop(visit_id)
        self.visits[visit_id] = visit
        self.by_month.setdefault(visit.month, set()).add(visit_id)

    def _drop(self, visit_id: str) -> None:
        old = self.visits.pop(visit_id, None)
        if old is not None:
            self.by_month[old.month].discard(visit_id)

    def days(self, month: str) -> dict[str, set[dt.date]]:
        """Per cadre, the month's dates with a visit that counts for them (confirmed)."""
        out: dict[str, set[dt.date]] = {}
        for visit_id in self.by_month.get(month, ()):
            visit = self.visits[visit_id]
            for cadre_id in visit.cadre_ids:
                if cadre_id not in visit.pending:
                    out.setdefault(cadre_id, set()).add(visit.day)
        return out


class RosterView(Protocol):
    """What the rule reads of the roster (domain.Roster satisfies it)."""

    @property
    def cadres(self) -> Mapping[str, Any]: ...


def due(state: MonthDays, roster: RosterView, now: dt.datetime, policy: Policy) -> list[Due]:
    """The reminders due at `now` that `state` does not show as given."""
    today = policy.local_date(now)
    month = f"{today:%Y-%m}"
    fixed = today.replace(day=min(policy.fixed_day, calendar.monthrange(today.year,
                                                                       today.month)[1]))
    if not fixed - dt.timedelta(days=policy.reminder_lead_days) <= today <= fixed:
        return []
    required = policy.min_days_for(month)
    days = state.days(month)
    found = []
    for cadre in roster.cadres.values():
        if (not (cadre.on_roster(today) and cadre.on_roster(fixed))
                or cadre.on_leave(today) or cadre.on_leave(fixed)
                or (cadre.cadre_id, month, RULE, LEVEL) in state.reminded):
            continue
        dates = days.get(cadre.cadre_id, set())
        if len(dates) >= required and fixed in dates:
            continue
        command = domain.RemindCadre(cadre.cadre_id, month, RULE, LEVEL, len(dates),
                                     fixed in dates)
        found.append(Due(RULE, f"{cadre.cadre_id}@{month}", LEVEL,
                         domain.stream_for(command), command))
    return found


def remind(log: EventLog, days: MemoryFold[MonthDays], roster: domain.Roster,
           now: dt.datetime, policy: Policy) -> list[Record]:
    """One tick: append the reminders due now; return the records appended."""
    return fire(
        log, due(days.current(log), roster, now, policy),
        lambda command, history: domain.decide(command, history, roster, now, policy,
                                               principal=TIMER),
        contract=schemas.EVENT_SCHEMAS,
    )
