"""Working days (工作日) and the deadlines counted in them.

A working day is a Monday to Friday that is not a public holiday, or a weekend day made a
working day (调休). Which days those are the State Council announces each year; operators keep
them in `holidays.yml` beside this module (one entry per year; `python -m
shared.campaign.seed_holidays YEAR` fills a year from the `chinesecalendar` package). Another
file can be named by $GRASSROOTS_HOLIDAYS.

**A year the file does not hold** counts weekends only, and a warning says so once per year:
refusing would stop every case's deadline on 1 January until someone edits a file, while a
deadline a day or two early is noticed and corrected. A deadline is recorded in the event that
sets it, so correcting the file later does not move deadlines already given.

**How a limit of n working days is counted** (12345 practice, after the Civil Code art. 201 and
the rules for petitions): the day a case arrives does not count, whatever the hour, so day 1
is the first working day *after* it; a case that arrives after hours, on a weekend or on a
holiday thus counts from the first working day after that. The deadline is the end (24:00,
local) of day n. A limit of 0 is "the same day": the end of the day it arrived, working day or
not (urgent matters do not wait for the holiday to end).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

ENV_VAR = "GRASSROOTS_HOLIDAYS"
DEFAULT_PATH = Path(__file__).resolve().with_name("holidays.yml")
MAX_DAYS = 3660  # no limit is ten years of working days: a bigger n is a typing mistake


class CalendarError(ValueError):
    """The holidays file is unreadable or malformed (the message names the entry)."""


def _day(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise CalendarError(f"{where}: {value!r} is not a date YYYY-MM-DD") from None


@dataclass(frozen=True)
class WorkCalendar:
    """Public holidays and make-up working days for the years it knows."""

    holidays: Mapping[dt.date, str] = field(default_factory=dict)
    working_weekends: Mapping[dt.date, str] = field(default_factory=dict)
    years: frozenset[int] = frozenset()
    _warned: set[int] = field(default_factory=set, compare=False, repr=False)

    def knows(self, year: int) -> bool:
        return year in self.years

    def is_working_day(self, day: dt.date) -> bool:
        if not self.knows(day.year) and day.year not in self._warned:
            self._warned.add(day.year)
            logger.warning("the holidays file has no entry for %s: counting weekends only "
                           "(add the year: python -m shared.campaign.seed_holidays %s)",
                           day.year, day.year)
        if day in self.working_weekends:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_working_days(self, start: dt.date, n: int) -> dt.date:
        """Day n of a limit counted from `start` (the day of arrival, which never counts):
        the n-th working day after `start`; n = 0 is `start` itself."""
        if not 0 <= n <= MAX_DAYS:
            raise ValueError(f"a limit of {n} working days is out of range 0-{MAX_DAYS}")
        day = start
        while n:
            day += dt.timedelta(days=1)
            n -= self.is_working_day(day)
        return day

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days d with start < d <= end (negative when end is before start), so that
        `working_days_between(s, add_working_days(s, n)) == n`."""
        if end < start:
            return -self.working_days_between(end, start)
        return sum(self.is_working_day(start + dt.timedelta(days=i))
                   for i in range(1, (end - start).days + 1))


def parse_calendar(raw: Any, source: str = "holidays") -> WorkCalendar:
    """A calendar from parsed YAML: `{years: {YEAR: {holidays: {date: name},
    working_days: {date: name}}}}`; every date must lie in its year."""
    years = (raw or {}).get("years") if isinstance(raw, Mapping) else None
    if not isinstance(years, Mapping):
        raise CalendarError(f"{source}: needs a mapping `years: {{YEAR: ...}}`")
    holidays: dict[dt.date, str] = {}
    working: dict[dt.date, str] = {}
    for year, entry in years.items():
        if not isinstance(year, int) or not isinstance(entry, Mapping):
            raise CalendarError(f"{source}: years.{year} must be a year with a mapping")
        for key, into in (("holidays", holidays), ("working_days", working)):
            for value, name in (entry.get(key) or {}).items():
                day = _day(value, f"{source}: years.{year}.{key}")
                if day.year != year:
                    raise CalendarError(f"{source}: years.{year}.{key}: {day} is not in {year}")
                into[day] = str(name)
    both = sorted(set(holidays) & set(working))
    if both:
        raise CalendarError(f"{source}: {both[0]} is both a holiday and a working day")
    return WorkCalendar(holidays, working, frozenset(years))


def calendar_path(path: str | Path | None = None) -> Path:
    """The file to read: the argument, else $GRASSROOTS_HOLIDAYS, else holidays.yml here."""
    return Path(path or os.environ.get(ENV_VAR) or DEFAULT_PATH)


def read_yaml(source: Path, what: str, error: type[ValueError]) -> Any:
    """A configuration file's parsed YAML; `error` names the file and `what` it is when it
    cannot be read or is not YAML (the holidays file here, the cases service's policy too)."""
    try:
        return yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{source}: cannot read {what} ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML ({exc})") from exc


def load_calendar(path: str | Path | None = None) -> WorkCalendar:
    source = calendar_path(path)
    return parse_calendar(read_yaml(source, "the holidays file", CalendarError), str(source))


@cache
def default_calendar() -> WorkCalendar:
    """The calendar of the configured file, read once per process."""
    return load_calendar()


def is_working_day(day: dt.date) -> bool:
    return default_calendar().is_working_day(day)


def add_working_days(start: dt.date, n: int) -> dt.date:
    return default_calendar().add_working_days(start, n)


def working_days_between(start: dt.date, end: dt.date) -> int:
    return default_calendar().working_days_between(start, end)
