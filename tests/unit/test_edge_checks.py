"""The edge's checks on what a request holds (services/gateway/inputs.py) and the calendar's
bounds (shared/kernel/dates.py), as pure functions."""

import datetime as dt

import pytest
from marshmallow import ValidationError

from services.gateway.inputs import MAX_DEPTH, check_plain
from shared.kernel.dates import MAX_DATE, MIN_DATE, check_date, check_month
from shared.kernel.errors import Invalid


def _errors(value):
    with pytest.raises(Invalid) as caught:
        check_plain(value, "body")
    return caught.value.errors()


def test_bad_strings_are_named_by_their_dotted_path_and_never_echoed():
    errors = _errors({"a": [{"b": "x\ud800"}], "c": "\x00", "ok": "中文 😀", "n": 1})
    assert set(errors) == {"a.0.b", "c"}
    assert "surrogate" in errors["a.0.b"][0] and "NUL" in errors["c"][0]
    assert "\ud800" not in str(errors)
    assert _errors({"k\x00": 1}) == {"body": ["a key must not contain NUL (U+0000)"]}
    check_plain({"fine": ["text", None, True, 2.5, {"deeper": "é"}]}, "body")


def test_nesting_is_bounded():
    nested: object = "leaf"
    for _ in range(MAX_DEPTH):
        nested = [nested]
    check_plain(nested, "body")
    assert list(_errors([nested])) == ["body"]


LAST_INSTANT = dt.datetime(2099, 12, 31, 23, 59, tzinfo=dt.timezone(-dt.timedelta(hours=14)))


@pytest.mark.parametrize("day", [MIN_DATE, MAX_DATE, LAST_INSTANT])
def test_dates_within_bounds_pass(day):
    check_date(day)


@pytest.mark.parametrize("day", [dt.date(1, 1, 1), MIN_DATE - dt.timedelta(days=1),
                                 MAX_DATE + dt.timedelta(days=1), dt.date(9999, 12, 31)])
def test_dates_outside_bounds_fail(day):
    with pytest.raises(ValidationError):
        check_date(day)


def test_months():
    check_month("2000-01")
    check_month("2099-12")
    check_month("abcd-01")  # the pattern's to refuse
    for month in ("0000-01", "1999-12", "2100-01", "9999-12"):
        with pytest.raises(ValidationError):
            check_month(month)
