"""The calendar the API accepts: dates from MIN_DATE to MAX_DATE, in every schema that loads a
request (dates, instants, months).

Python's dates end at years 1 and 9999, so an instant like 9999-12-31T23:59:59-14:00 overflows
when it is converted to UTC or to the policy's time zone, and a month of year 0 cannot be
represented at all. The campaign began in the 2010s and plans months, not centuries: any date
outside these bounds is a typing mistake, and refusing it (400, naming the field) keeps every
conversion and every month's arithmetic far from the limits.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from marshmallow import ValidationError, fields

MIN_DATE = dt.date(2000, 1, 1)
MAX_DATE = dt.date(2099, 12, 31)
OUT_OF_RANGE = f"must be between {MIN_DATE.isoformat()} and {MAX_DATE.isoformat()}"


def check_date(value: dt.date) -> None:
    """A date (or an instant's date where it was written) within the bounds."""
    day = value.date() if isinstance(value, dt.datetime) else value
    if not MIN_DATE <= day <= MAX_DATE:
        raise ValidationError(OUT_OF_RANGE)


def check_month(value: str) -> None:
    """A `YYYY-MM` month within the bounds; the month's pattern refuses any other shape."""
    year = value[:4]
    if year.isdecimal() and not MIN_DATE.year <= int(year) <= MAX_DATE.year:
        raise ValidationError(f"must be a month from {MIN_DATE:%Y-%m} to {MAX_DATE:%Y-%m}")


def date_field(**kwargs: Any) -> fields.Date:
    """A request's calendar date, within the bounds."""
    return fields.Date(validate=check_date, **kwargs)


def instant_field(**kwargs: Any) -> fields.AwareDateTime:
    """A request's instant with its UTC offset, whose own date is within the bounds (so it
    converts to any zone)."""
    return fields.AwareDateTime(validate=check_date, **kwargs)
