"""Working days and deadlines across holidays and make-up working days (调休).

2025's National Day and Mid-autumn: 1-8 October off; Sunday 28 September and Saturday
11 October are working days.
"""

from __future__ import annotations

import datetime as dt
import logging

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from shared.campaign import seed_holidays
from shared.campaign.workdays import (
    DEFAULT_PATH,
    CalendarError,
    WorkCalendar,
    add_working_days,
    is_working_day,
    load_calendar,
    parse_calendar,
    working_days_between,
)

D = dt.date


def test_the_make_up_saturday_and_sunday_work_and_the_holiday_week_does_not():
    assert is_working_day(D(2025, 9, 28))  # Sunday, made a working day
    assert is_working_day(D(2025, 10, 11))  # Saturday, made a working day
    assert not any(is_working_day(D(2025, 10, day)) for day in range(1, 9))
    assert not is_working_day(D(2025, 10, 12))  # an ordinary Sunday
    assert is_working_day(D(2025, 10, 9))


def test_day_one_is_the_first_working_day_after_arrival():
    # Friday 26 September: Saturday off, Sunday 28 is worked, so it is day 1.
    assert add_working_days(D(2025, 9, 26), 1) == D(2025, 9, 28)
    assert add_working_days(D(2025, 9, 26), 3) == D(2025, 9, 30)
    # Arriving on the eve of the holiday: the week off does not count, Saturday 11 does.
    assert add_working_days(D(2025, 9, 30), 1) == D(2025, 10, 9)
    assert add_working_days(D(2025, 9, 30), 3) == D(2025, 10, 11)


def test_a_case_arriving_on_a_holiday_counts_from_the_first_working_day_after_it():
    assert add_working_days(D(2025, 10, 3), 1) == D(2025, 10, 9)
    assert add_working_days(D(2025, 10, 3), 3) == D(2025, 10, 11)


def test_a_complaints_thirteen_days_span_the_holiday():
    # 28, 29, 30 Sep; 9, 10, 11 Oct; 13-17 Oct; 20, 21 Oct.
    assert add_working_days(D(2025, 9, 26), 13) == D(2025, 10, 21)
    assert working_days_between(D(2025, 9, 26), D(2025, 10, 21)) == 13


def test_the_same_day_limit_is_the_day_of_arrival_even_on_a_holiday():
    assert add_working_days(D(2025, 10, 3), 0) == D(2025, 10, 3)


def test_working_days_between_is_signed_and_excludes_the_start():
    assert working_days_between(D(2025, 10, 1), D(2025, 10, 8)) == 0
    assert working_days_between(D(2025, 10, 9), D(2025, 9, 30)) == -1


@given(st.dates(D(2024, 1, 1), D(2026, 12, 31)), st.integers(0, 60))
def test_counting_back_gives_the_limit(start, n):
    end = add_working_days(start, n)
    assert working_days_between(start, end) == n
    assert n == 0 or is_working_day(end)


def test_a_year_the_file_does_not_know_counts_weekends_only_and_warns_once(caplog):
    calendar = WorkCalendar(years=frozenset({2025}))
    with caplog.at_level(logging.WARNING, "shared.campaign.workdays"):
        assert calendar.add_working_days(D(2099, 1, 2), 1) == D(2099, 1, 5)  # Fri -> Mon
        assert calendar.is_working_day(D(2099, 1, 1))  # New Year, unknown: a Thursday
    warnings = [r for r in caplog.records if "2099" in r.getMessage()]
    assert len(warnings) == 1
    assert "seed_holidays 2099" in warnings[0].getMessage()


def test_a_bad_file_is_refused_naming_the_entry():
    with pytest.raises(CalendarError, match=r"years.2025.holidays: 2024-10-01 is not in 2025"):
        parse_calendar({"years": {2025: {"holidays": {"2024-10-01": "x"}}}})
    with pytest.raises(CalendarError, match="both a holiday and a working day"):
        parse_calendar({"years": {2025: {"holidays": {"2025-10-11": "x"},
                                         "working_days": {"2025-10-11": "y"}}}})
    with pytest.raises(CalendarError, match="not a date"):
        parse_calendar({"years": {2025: {"working_days": {"someday": "x"}}}})
    with pytest.raises(CalendarError, match="years"):
        parse_calendar({"holidays": []})


def test_the_file_says_what_chinesecalendar_says_for_the_years_it_holds():
    calendar = load_calendar(DEFAULT_PATH)
    assert {2024, 2025, 2026} <= calendar.years
    for year in (2024, 2025, 2026):
        expected = seed_holidays.year_from_package(year)
        assert {d: n for d, n in calendar.holidays.items() if d.year == year} == \
            expected["holidays"]
        assert {d: n for d, n in calendar.working_weekends.items() if d.year == year} == \
            expected["working_days"]


def test_seeding_a_year_keeps_the_others_and_writes_a_file_that_loads(tmp_path):
    path = tmp_path / "holidays.yml"
    path.write_text("years:\n  2030:\n    holidays: {2030-05-01: Labour Day}\n",
                    encoding="utf-8")
    assert seed_holidays.main(["2025", "--file", str(path)]) == 0
    calendar = load_calendar(path)
    assert calendar.years == {2025, 2030}
    assert calendar.holidays[D(2030, 5, 1)] == "Labour Day"
    assert calendar.working_weekends[D(2025, 9, 28)] == "National Day"
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["years"][2025]["holidays"]
