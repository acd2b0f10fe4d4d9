"""Periods of calendar dates, as the roster keeps them: pure values both the visits domain
and the compliance rules use (a cadre's memberships of units over time)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Membership:
    unit_id: str
    start: dt.date
    end: dt.date | None = None  # inclusive; None while still a member


def covers(start: dt.date, end: dt.date | None, day: dt.date) -> bool:
    """`day` lies in [start, end] (an open end runs on for ever)."""
    return start <= day and (end is None or day <= end)


def cut(memberships: tuple[Membership, ...], first_day_out: dt.date) -> tuple[Membership, ...]:
    """Memberships ended the day before `first_day_out` (those starting later dropped)."""
    last_in = first_day_out - dt.timedelta(days=1)
    return tuple(
        replace(m, end=last_in if m.end is None or m.end > last_in else m.end)
        for m in memberships
        if m.start < first_day_out
    )
