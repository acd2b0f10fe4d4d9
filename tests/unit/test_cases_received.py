"""When a case was received (#10): a petition entered late says so, its first deadlines count
from that day, the clock chases it on its next tick, and a receipt in the future or older than
the policy's window is refused naming the field, with nothing appended."""

from __future__ import annotations

import datetime as dt

import pytest

from services.cases import domain as d
from services.cases import events as e
from services.cases.case_policy import load_case_policy, parse_case_policy
from shared.campaign.policy import PolicyError
from shared.kernel.errors import Conflict, Rejected
from shared.runtime.auth import Principal
from tests.unit.cases_support import CALENDAR, POLICY, Case, at, context

BEFORE_HOLIDAY = dt.date(2025, 9, 30)  # a Tuesday; National Day runs 1-8 October 2025
AFTER_HOLIDAY = dt.date(2025, 10, 10)  # the Friday the letter is entered and assigned


def petition(received: dt.datetime | dt.date | None = None, case_id: str = "k1",
             category: str = "complaint", origin: str = "petition") -> d.RegisterCase:
    return d.RegisterCase(case_id, origin, category, "the lane floods", {"township": "Qiaotou"},
                          visit_id="v1" if origin == "visit" else None, received_at=received)


def test_a_late_entered_letter_counts_its_deadlines_from_receipt_across_the_holiday():
    case = Case()
    case.send(petition(at(BEFORE_HOLIDAY, 16)), "operator", at(AFTER_HOLIDAY))
    case.send(d.AssignCase("k1", "u1"), "supervisor", at(AFTER_HOLIDAY))
    # Day 1 is the first working day after receipt: Thursday 9 October, after the holiday.
    assert case.state.acceptance.due == dt.date(2025, 10, 9)
    # 13 working days: 9, 10, the make-up Saturday 11, 13-17, 20-24 October.
    assert case.state.resolution.due == dt.date(2025, 10, 24)
    shown = d.read_back(case.state, POLICY, personal=False)
    assert shown["received_at"] == at(BEFORE_HOLIDAY, 16)
    # Registered the same day without a receipt, the clock starts on the day of entry.
    fresh = Case("k2")
    fresh.send(petition(case_id="k2"), "operator", at(AFTER_HOLIDAY))
    fresh.send(d.AssignCase("k2", "u1"), "supervisor", at(AFTER_HOLIDAY))
    assert fresh.state.acceptance.due == dt.date(2025, 10, 11)
    assert d.read_back(fresh.state, POLICY, personal=False)["received_at"] == at(AFTER_HOLIDAY)


def test_the_next_tick_chases_and_escalates_a_case_received_long_ago():
    today = dt.date(2025, 11, 20)
    received = dt.date(2025, 10, 23)  # 20 working days before: 7 past a complaint's 13
    assert CALENDAR.working_days_between(received, today) == 20
    case = Case()
    case.send(petition(at(received)), "operator", at(today))
    case.send(d.AssignCase("k1", "u1"), "supervisor", at(today))
    assert case.send(d.AcceptCase("k1"), "head1", at(today))[0].data["on_time"] is False
    due = d.due_now(case.state, context("timer", at(today, 11)))
    assert due == [d.MarkOverdue("k1", "resolution-1"), d.EscalateCase("k1", "resolution-1")]
    for command in due:
        case.send(command, "timer", at(today, 11))
    assert case.types()[-2:] == [e.CASE_OVERDUE, e.CASE_ESCALATED]
    assert case.state.overdue and case.state.escalated


def test_a_reassignment_after_a_return_counts_from_its_own_day():
    case = Case()
    case.send(petition(at(BEFORE_HOLIDAY)), "operator", at(AFTER_HOLIDAY))
    case.send(d.AssignCase("k1", "u1"), "supervisor", at(AFTER_HOLIDAY))
    case.send(d.ReturnCase("k1", "not our area"), "head1", at(AFTER_HOLIDAY))
    case.send(d.AssignCase("k1", "u2"), "supervisor", at(AFTER_HOLIDAY))
    assert case.state.acceptance.due == dt.date(2025, 10, 11)  # the make-up Saturday


@pytest.mark.parametrize("received, reason", [
    (at(AFTER_HOLIDAY, 11), "in the future"),
    (at(dt.date(2025, 8, 21)), "is 31 working days ago: a case is entered at most 30"),
])
def test_a_receipt_in_the_future_or_beyond_the_window_is_refused(received, reason):
    case = Case()
    with pytest.raises(Rejected) as refused:
        case.send(petition(received), "hotline", at(AFTER_HOLIDAY, 10))
    assert refused.value.field == "received_at" and reason in refused.value.reason
    assert case.records == []  # nothing appended


def test_the_window_is_the_policys_and_its_last_day_is_accepted():
    oldest = dt.date(2025, 8, 22)
    assert CALENDAR.working_days_between(oldest, AFTER_HOLIDAY) == 30
    assert load_case_policy().receipt_window_working_days == 30
    case = Case()
    case.send(petition(at(oldest, 9)), "operator", at(AFTER_HOLIDAY))
    assert case.state.registered["received_at"] == at(oldest, 9).isoformat()
    with pytest.raises(PolicyError, match="receipt_window_working_days"):
        parse_case_policy({"categories": {"help": {"name": "Help", "group": "general",
                                                   "description": "help", "accept": 1,
                                                   "resolve": 3}},
                           "receipt_window_working_days": -1})


def test_a_retry_is_the_same_case_and_another_receipt_is_a_conflict():
    case = Case()
    case.send(petition(at(BEFORE_HOLIDAY)), "operator", at(AFTER_HOLIDAY))
    # Days later (the receipt now older than the window would allow), the same request again.
    later = at(dt.date(2025, 12, 1))
    assert case.send(petition(at(BEFORE_HOLIDAY)), "operator", later) == []
    assert case.send(petition(), "operator", later) == []  # not saying is not another receipt
    with pytest.raises(Conflict):
        case.send(petition(at(BEFORE_HOLIDAY, 12)), "operator", later)
    assert case.types() == [e.CASE_REGISTERED]


def test_a_visits_case_is_received_on_the_visits_date_however_long_ago():
    """The intake passes the visit's date; how late a visit may be recorded is the visits
    service's rule, not this window's."""
    visit_day = dt.date(2025, 6, 9)
    case = Case()
    case.send(petition(visit_day, origin="visit"), Principal("intake", token_id="visits"),
              at(AFTER_HOLIDAY))
    assert case.state.registered["received_at"] == POLICY.start_of(visit_day).isoformat()
    with pytest.raises(Rejected, match="working days ago"):
        Case("k2").send(petition(visit_day, case_id="k2", origin="visit"), "operator",
                        at(AFTER_HOLIDAY))
