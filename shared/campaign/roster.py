"""The one roster fold: units and cadres over time, as the roster events leave them.

Pure and typed. The visits service decides commands and rights from it; the compliance view
folds the same steps into the facts it stores; cases and supervision will read it too. Each
step is also offered per entity (`evolve_unit`, `evolve_cadre`), so a projection can fold a
page of records into only the units and cadres that page touches.

The steps are lenient: an event about a unit or cadre the roster does not know (which the
visits service never appends) changes nothing rather than failing a reader; registering a
known unit again keeps the first registration (the visits service refuses the second anyway).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from shared.campaign.periods import Membership, covers, cut
from shared.kernel.errors import UnknownReference

UNIT_REGISTERED = "unit.registered"
UNIT_DAY_SET = "unit.unit_day_set"
CADRE_ENROLLED = "cadre.enrolled"
CADRE_TRANSFERRED = "cadre.transferred"
CADRE_LEAVE_GRANTED = "cadre.leave_granted"
CADRE_REMOVED = "cadre.removed"
CADRE_LEFT = "cadre.left"  # CADRE_REMOVED's name until #8: never appended now, still folded
UNIT_EVENT_TYPES = (UNIT_REGISTERED, UNIT_DAY_SET)
CADRE_EVENT_TYPES = (CADRE_ENROLLED, CADRE_TRANSFERRED, CADRE_LEAVE_GRANTED, CADRE_REMOVED,
                     CADRE_LEFT)
ROSTER_EVENT_TYPES = (*UNIT_EVENT_TYPES, *CADRE_EVENT_TYPES)  # ask the log for these only


class Event(Protocol):
    """What the fold reads of a committed event (shared.eventlog.Record satisfies it)."""

    @property
    def type(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class UnitDaySetting:
    effective_from: dt.date | None  # None: since the unit was registered (units pre-exist us)
    unit_day: int | None


@dataclass(frozen=True)
class Unit:
    unit_id: str
    name: str
    kind: str
    unit_days: tuple[UnitDaySetting, ...]

    @property
    def unit_day(self) -> int | None:
        return self.unit_days[-1].unit_day

    def setting_on(self, day: dt.date) -> UnitDaySetting | None:
        """The unit-day setting in effect on `day` (None: none yet)."""
        in_effect = [s for s in self.unit_days if s.effective_from is None
                     or s.effective_from <= day]
        return in_effect[-1] if in_effect else None


@dataclass(frozen=True)
class Leave:
    start: dt.date
    end: dt.date  # inclusive
    reason: str = ""


@dataclass(frozen=True)
class Cadre:
    cadre_id: str
    name: str
    role: str
    liaison_unit_ids: tuple[str, ...]
    enrolled_from: dt.date
    memberships: tuple[Membership, ...]
    leaves: tuple[Leave, ...] = ()
    left_from: dt.date | None = None  # the first day off the roster

    @property
    def unit_id(self) -> str:
        return self.memberships[-1].unit_id

    def on_roster(self, day: dt.date) -> bool:
        return self.enrolled_from <= day and (self.left_from is None or day < self.left_from)

    def unit_on(self, day: dt.date) -> str | None:
        return next((m.unit_id for m in self.memberships if covers(m.start, m.end, day)), None)

    def on_leave(self, day: dt.date) -> bool:
        return any(covers(leave.start, leave.end, day) for leave in self.leaves)


@dataclass(frozen=True)
class Roster:
    """Units and cadres as the roster events left them."""

    units: Mapping[str, Unit] = field(default_factory=dict)
    cadres: Mapping[str, Cadre] = field(default_factory=dict)

    def apply(self, record: Event) -> Roster:
        """The roster after one more event; events of other types leave it as it is."""
        if record.type in UNIT_EVENT_TYPES:
            unit_id = record.data["unit_id"]
            unit = evolve_unit(self.units.get(unit_id), record)
            return self if unit is None else replace(self, units={**self.units, unit_id: unit})
        if record.type in CADRE_EVENT_TYPES:
            cadre_id = record.data["cadre_id"]
            cadre = evolve_cadre(self.cadres.get(cadre_id), record)
            return self if cadre is None else replace(
                self, cadres={**self.cadres, cadre_id: cadre})
        return self

    def unit_of(self, cadre_id: str, day: dt.date) -> str | None:
        """The cadre's unit on `day` (None: unknown, or not on the roster then)."""
        cadre = self.cadres.get(cadre_id)
        return cadre.unit_on(day) if cadre is not None and cadre.on_roster(day) else None

    def liaison_of(self, cadre_id: str) -> tuple[str, ...]:
        cadre = self.cadres.get(cadre_id)
        return cadre.liaison_unit_ids if cadre is not None else ()

    def role_of(self, cadre_id: str) -> str | None:
        cadre = self.cadres.get(cadre_id)
        return cadre.role if cadre is not None else None

    def unit(self, unit_id: str, field_name: str = "unit_id") -> Unit:
        try:
            return self.units[unit_id]
        except KeyError:
            raise UnknownReference("unit", unit_id, field_name) from None

    def cadre(self, cadre_id: str, field_name: str = "cadre_id") -> Cadre:
        try:
            return self.cadres[cadre_id]
        except KeyError:
            raise UnknownReference("cadre", cadre_id, field_name) from None


def fold_roster(records: Iterable[Event], roster: Roster | None = None) -> Roster:
    """The roster from a log (or any records; non-roster events are skipped)."""
    current = roster or Roster()
    for record in records:
        current = current.apply(record)
    return current


def evolve_unit(unit: Unit | None, record: Event) -> Unit | None:
    """One unit after one of its events (None: still unknown)."""
    step = _UNIT_STEPS.get(record.type)
    return step(unit, record.data) if step else unit


def evolve_cadre(cadre: Cadre | None, record: Event) -> Cadre | None:
    """One cadre after one of their events (None: still unknown)."""
    step = _CADRE_STEPS.get(record.type)
    return step(cadre, record.data) if step else cadre


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def _registered(unit: Unit | None, data: dict[str, Any]) -> Unit | None:
    if unit is not None:
        return unit
    setting = UnitDaySetting(None, data.get("unit_day"))
    return Unit(data["unit_id"], data["name"], data["kind"], (setting,))


def _unit_day_set(unit: Unit | None, data: dict[str, Any]) -> Unit | None:
    if unit is None:
        return None
    start = _date(data["effective_from"])
    kept = tuple(s for s in unit.unit_days if s.effective_from is None or s.effective_from < start)
    return replace(unit, unit_days=(*kept, UnitDaySetting(start, data.get("unit_day"))))


def _enrolled(cadre: Cadre | None, data: dict[str, Any]) -> Cadre | None:
    start = _date(data["effective_from"])
    return Cadre(
        cadre_id=data["cadre_id"],
        name=data["name"],
        role=data["role"],
        liaison_unit_ids=tuple(data.get("liaison_unit_ids", ())),
        enrolled_from=start,
        memberships=(Membership(data["unit_id"], start),),
    )


def _transferred(cadre: Cadre | None, data: dict[str, Any]) -> Cadre | None:
    if cadre is None:
        return None
    start = _date(data["effective_from"])
    memberships = (*cut(cadre.memberships, start), Membership(data["to_unit_id"], start))
    return replace(cadre, memberships=memberships)


def _leave_granted(cadre: Cadre | None, data: dict[str, Any]) -> Cadre | None:
    if cadre is None:
        return None
    leave = Leave(_date(data["from"]), _date(data["to"]), data.get("reason", ""))
    return replace(cadre, leaves=(*cadre.leaves, leave))


def _removed(cadre: Cadre | None, data: dict[str, Any]) -> Cadre | None:
    if cadre is None:
        return None
    out = _date(data["effective_from"])
    return replace(cadre, left_from=out, memberships=cut(cadre.memberships, out))


_UNIT_STEPS: dict[str, Callable[[Unit | None, dict[str, Any]], Unit | None]] = {
    UNIT_REGISTERED: _registered,
    UNIT_DAY_SET: _unit_day_set,
}
_CADRE_STEPS: dict[str, Callable[[Cadre | None, dict[str, Any]], Cadre | None]] = {
    CADRE_ENROLLED: _enrolled,
    CADRE_TRANSFERRED: _transferred,
    CADRE_LEAVE_GRANTED: _leave_granted,
    CADRE_REMOVED: _removed,
    CADRE_LEFT: _removed,  # the same act in logs written before #8
}
