"""The compliance rules and the fold from visits-log events to the facts they need."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from services.compliance import domain as c
from services.compliance.schemas import ComplianceQuerySchema, ComplianceReportSchema
from shared.campaign.policy import Policy, ThemeMonth
from shared.runtime.auth import Principal

POLICY = Policy()


@dataclass(frozen=True)
class Rec:
    type: str
    data: dict[str, Any]


def unit(unit_id: str, unit_day: int | None = None) -> Rec:
    return Rec("unit.registered", {"unit_id": unit_id, "name": unit_id, "kind": "department",
                                   "unit_day": unit_day})


def unit_day(unit_id: str, day: int | None, effective_from: str) -> Rec:
    return Rec("unit.unit_day_set", {"unit_id": unit_id, "unit_day": day,
                                     "effective_from": effective_from})


def enrol(cadre_id: str, unit_id: str, effective_from: str = "2023-01-01") -> Rec:
    return Rec("cadre.enrolled", {"cadre_id": cadre_id, "name": cadre_id, "unit_id": unit_id,
                                  "role": "staff", "liaison_unit_ids": [],
                                  "effective_from": effective_from})


def transfer(cadre_id: str, from_unit: str, to_unit: str, effective_from: str) -> Rec:
    return Rec("cadre.transferred", {"cadre_id": cadre_id, "from_unit_id": from_unit,
                                     "to_unit_id": to_unit, "effective_from": effective_from})


def leave(cadre_id: str, start: str, end: str) -> Rec:
    return Rec("cadre.leave_granted", {"cadre_id": cadre_id, "from": start, "to": end,
                                       "reason": "leave"})


def left(cadre_id: str, effective_from: str) -> Rec:
    return Rec("cadre.left", {"cadre_id": cadre_id, "effective_from": effective_from,
                              "reason": "retired"})


def visit(visit_id: str, day: str, *cadre_ids: str, backfilled: bool = False) -> Rec:
    return Rec("visit.recorded", {"visit_id": visit_id, "cadre_ids": list(cadre_ids or ["a"]),
                                  "date": day, "backfilled": backfilled})


def corrected(visit_id: str, **changes: Any) -> Rec:
    return Rec("visit.corrected", {"visit_id": visit_id, "reason": "fix", "backfilled": False,
                                   **changes})


def retracted(visit_id: str) -> Rec:
    return Rec("visit.retracted", {"visit_id": visit_id, "reason": "duplicate"})


def report(month: str, *records: Rec, policy: Policy = POLICY, **kw: Any) -> dict[str, Any]:
    return c.assess(month, c.facts_from_events(records), policy, **kw)


def row(month: str, *records: Rec, cadre_id: str = "a", policy: Policy = POLICY) -> dict:
    rows = [r for r in report(month, *records, policy=policy)["cadres"]
            if r["cadre_id"] == cadre_id]
    assert len(rows) == 1
    return rows[0]


def visits_on(month: str, *days: int, cadre_id: str = "a") -> list[Rec]:
    return [visit(f"{cadre_id}-{month}-{n:02d}", f"{month}-{n:02d}", cadre_id) for n in days]


BASE = (unit("u1"), enrol("a", "u1"))


# --- days and the fixed day ---------------------------------------------------------------------


def test_two_days_one_of_them_the_28th_is_compliant():
    result = row("2024-03", *BASE, *visits_on("2024-03", 5, 28))
    assert result == {
        "cadre_id": "a", "unit_id": "u1", "days": 2,
        "dates": [date(2024, 3, 5), date(2024, 3, 28)],
        "fixed_day_met": True, "unit_day_met": None, "exempt": False, "compliant": True,
        "backfilled_days": 0,
    }


def test_one_day_or_missing_the_28th_is_not_compliant():
    only_28th = row("2024-03", *BASE, *visits_on("2024-03", 28))
    assert (only_28th["days"], only_28th["compliant"]) == (1, False)
    no_28th = row("2024-03", *BASE, *visits_on("2024-03", 5, 27))
    assert (no_28th["days"], no_28th["fixed_day_met"], no_28th["compliant"]) == (2, False, False)


def test_several_visits_on_one_day_count_once_and_other_months_not_at_all():
    records = [*BASE, *visits_on("2024-03", 28), visit("x", "2024-03-28", "a"),
               visit("y", "2024-02-10", "a"), visit("z", "2024-04-01", "a")]
    result = row("2024-03", *records)
    assert (result["days"], result["dates"]) == (1, [date(2024, 3, 28)])


def test_a_multi_cadre_visit_counts_for_every_cadre_in_it():
    records = [*BASE, enrol("b", "u1"), visit("v1", "2024-03-28", "a", "b"),
               visit("v2", "2024-03-03", "b")]
    result = report("2024-03", *records)
    assert [(r["cadre_id"], r["days"], r["compliant"]) for r in result["cadres"]] == [
        ("a", 1, False), ("b", 2, True)
    ]


def test_the_fixed_day_moves_to_the_last_day_in_a_short_month():
    policy = Policy(fixed_day=31)
    april = row("2024-04", *BASE, *visits_on("2024-04", 2, 30), policy=policy)
    assert (april["fixed_day_met"], april["compliant"]) == (True, True)
    february = row("2023-02", *BASE, *visits_on("2023-02", 1, 28), policy=policy)
    assert february["fixed_day_met"] is True
    assert row("2024-02", *BASE, *visits_on("2024-02", 1, 28), policy=policy)[
        "fixed_day_met"] is False  # 2024 is a leap year: the 29th


# --- the unit day -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("month", "visited", "met"),
    [
        ("2024-04", 30, True),  # 30 days: the unit's 31st is the 30th
        ("2024-02", 29, True),  # leap February
        ("2023-02", 28, True),
        ("2024-02", 28, False),
        ("2024-03", 31, True),
        ("2024-03", 30, False),
    ],
)
def test_a_unit_day_31_is_the_last_day_of_shorter_months(month, visited, met):
    records = [unit("u1", 31), enrol("a", "u1"), *visits_on(month, visited)]
    assert row(month, *records)["unit_day_met"] is met


def test_the_unit_day_is_required_when_the_unit_set_one():
    records = [unit("u1", 10), enrol("a", "u1")]
    met = row("2024-03", *records, *visits_on("2024-03", 10, 28))
    assert (met["unit_day_met"], met["compliant"]) == (True, True)
    missed = row("2024-03", *records, *visits_on("2024-03", 11, 28))
    assert (missed["unit_day_met"], missed["compliant"]) == (False, False)


def test_a_unit_day_set_after_its_day_applies_from_the_next_month():
    records = [*BASE, unit_day("u1", 10, "2024-03-15"), *visits_on("2024-03", 5, 28),
               *visits_on("2024-04", 5, 28)]
    assert row("2024-03", *records)["unit_day_met"] is None
    assert row("2024-04", *records)["unit_day_met"] is False
    cleared = [*records, unit_day("u1", None, "2024-04-01")]
    assert row("2024-04", *cleared)["unit_day_met"] is None


# --- leave --------------------------------------------------------------------------------------


def test_leave_covering_the_fixed_day_exempts_that_rule():
    records = [*BASE, leave("a", "2024-03-27", "2024-03-29"), *visits_on("2024-03", 3, 9)]
    result = row("2024-03", *records)
    assert (result["fixed_day_met"], result["compliant"], result["exempt"]) == (None, True, False)
    still_two = row("2024-03", *BASE, leave("a", "2024-03-28", "2024-03-28"),
                    *visits_on("2024-03", 3))
    assert still_two["compliant"] is False  # the quota still applies


def test_a_visit_made_on_leave_still_meets_the_rule():
    records = [*BASE, leave("a", "2024-03-28", "2024-03-28"), *visits_on("2024-03", 3, 28)]
    assert row("2024-03", *records)["fixed_day_met"] is True


def test_leave_covering_the_unit_day_exempts_that_rule():
    records = [unit("u1", 10), enrol("a", "u1"), leave("a", "2024-03-10", "2024-03-10"),
               *visits_on("2024-03", 3, 28)]
    result = row("2024-03", *records)
    assert (result["unit_day_met"], result["compliant"]) == (None, True)


def test_leave_covering_the_whole_month_exempts_the_cadre_and_leaves_them_out_of_the_rate():
    records = [*BASE, enrol("b", "u1"), leave("a", "2024-02-20", "2024-04-02"),
               *visits_on("2024-03", 5, 28, cadre_id="b")]
    result = report("2024-03", *records)
    exempt = result["cadres"][0]
    assert (exempt["cadre_id"], exempt["exempt"], exempt["compliant"]) == ("a", True, None)
    assert (exempt["fixed_day_met"], exempt["unit_day_met"]) == (None, None)
    assert result["units"] == [
        {"unit_id": "u1", "cadres": 2, "compliant": 1, "exempt": 1, "rate": 1.0}
    ]


def test_leave_that_covers_neither_rule_day_changes_nothing():
    records = [unit("u1", 10), enrol("a", "u1"), leave("a", "2024-03-01", "2024-03-09"),
               *visits_on("2024-03", 28)]
    result = row("2024-03", *records)
    assert (result["unit_day_met"], result["compliant"]) == (False, False)


def test_the_quota_is_capped_by_the_days_not_on_leave():
    records = [*BASE, leave("a", "2024-03-01", "2024-03-30"), *visits_on("2024-03", 31)]
    result = row("2024-03", *records)
    assert (result["days"], result["fixed_day_met"], result["compliant"]) == (1, None, True)


# --- transfers, joining and leaving the roster --------------------------------------------------


def test_a_cadre_transferred_mid_month_is_assessed_in_the_new_unit():
    records = [unit("u1", 5), unit("u2", 20), enrol("a", "u1"),
               transfer("a", "u1", "u2", "2024-03-15"), *visits_on("2024-03", 5, 20, 28)]
    result = report("2024-03", *records)
    assert [(r["cadre_id"], r["unit_id"], r["days"]) for r in result["cadres"]] == [("a", "u2", 3)]
    assert result["cadres"][0]["unit_day_met"] is True  # the new unit's day
    assert [(u["unit_id"], u["cadres"], u["rate"]) for u in result["units"]] == [
        ("u1", 0, None), ("u2", 1, 1.0)
    ]
    february = report("2024-02", *records, *visits_on("2024-02", 5, 28))
    assert february["cadres"][0]["unit_id"] == "u1"


def test_joining_a_unit_after_its_unit_day_exempts_that_rule_for_the_month():
    records = [unit("u1"), unit("u2", 10), enrol("a", "u1"),
               transfer("a", "u1", "u2", "2024-03-15"), *visits_on("2024-03", 3, 28)]
    result = row("2024-03", *records)
    assert (result["unit_id"], result["unit_day_met"], result["compliant"]) == ("u2", None, True)
    assert row("2024-04", *records, *visits_on("2024-04", 3, 28))["unit_day_met"] is False


def test_a_cadre_who_left_is_assessed_in_their_last_unit_up_to_their_last_day():
    records = [unit("u1"), unit("u2"), enrol("a", "u1"), transfer("a", "u1", "u2", "2024-03-05"),
               left("a", "2024-03-20"), *visits_on("2024-03", 2, 12)]
    result = row("2024-03", *records)
    assert (result["unit_id"], result["fixed_day_met"], result["compliant"]) == ("u2", None, True)
    assert report("2024-04", *records)["cadres"] == []


def test_a_cadre_enrolled_on_the_last_day_owes_one_day_and_later_ones_are_not_listed():
    records = [*BASE, enrol("b", "u1", "2024-03-31"), enrol("z", "u1", "2024-04-01"),
               visit("v", "2024-03-31", "b")]
    result = report("2024-03", *records)
    assert [r["cadre_id"] for r in result["cadres"]] == ["a", "b"]
    late = result["cadres"][1]
    assert (late["days"], late["fixed_day_met"], late["compliant"]) == (1, None, True)
    joined_after_28th = row("2024-03", *records, enrol("c", "u1", "2024-03-29"),
                            visit("w", "2024-03-30", "c"), cadre_id="c")
    assert joined_after_28th["compliant"] is False  # two available days: both owed


# --- corrections, retractions, backfill ---------------------------------------------------------


def test_a_retracted_visit_does_not_count():
    records = [*BASE, *visits_on("2024-03", 5, 28), retracted("a-2024-03-28")]
    result = row("2024-03", *records)
    assert (result["days"], result["fixed_day_met"], result["compliant"]) == (1, False, False)


def test_a_correction_that_moves_the_date_moves_the_day():
    records = [*BASE, *visits_on("2024-03", 5, 27), corrected("a-2024-03-27", date="2024-03-28")]
    result = row("2024-03", *records)
    assert (result["dates"], result["compliant"]) == ([date(2024, 3, 5), date(2024, 3, 28)], True)
    out_of_month = [*records, corrected("a-2024-03-05", date="2024-04-05")]
    assert row("2024-03", *out_of_month)["days"] == 1
    assert row("2024-04", *out_of_month)["dates"] == [date(2024, 4, 5)]


def test_a_correction_of_the_cadre_list_moves_the_day_between_cadres():
    records = [*BASE, enrol("b", "u1"), visit("v1", "2024-03-28", "a"),
               corrected("v1", cadre_ids=["b"])]
    result = report("2024-03", *records)
    assert [(r["cadre_id"], r["days"]) for r in result["cadres"]] == [("a", 0), ("b", 1)]


def test_a_correction_after_a_retraction_changes_nothing():
    records = [*BASE, visit("v1", "2024-03-28", "a"), retracted("v1"),
               corrected("v1", date="2024-03-27")]
    assert c.facts_from_events(records).visits == {}


def test_backfilled_days_are_days_resting_only_on_backfilled_visits():
    records = [*BASE,
               visit("v1", "2024-03-05", "a", backfilled=True),
               visit("v2", "2024-03-28", "a", backfilled=True),
               visit("v3", "2024-03-28", "a", backfilled=False)]
    result = row("2024-03", *records)
    assert (result["days"], result["backfilled_days"], result["compliant"]) == (2, 1, True)
    reordered = [*records[:3], records[4], records[3]]
    assert row("2024-03", *reordered)["backfilled_days"] == 1
    flag_cleared = row("2024-03", *records, corrected("v1", date="2024-03-06"))
    assert flag_cleared["backfilled_days"] == 0  # the correction carries the flag


# --- policy, units and the output ----------------------------------------------------------------


def test_a_theme_month_has_its_own_quota():
    policy = Policy(theme_months=(ThemeMonth("2024-03", 3),))
    records = [*BASE, *visits_on("2024-03", 5, 28), *visits_on("2024-04", 5, 28)]
    assert row("2024-03", *records, policy=policy)["compliant"] is False
    assert row("2024-04", *records, policy=policy)["compliant"] is True


def test_units_are_rated_over_assessable_cadres_and_everything_is_sorted():
    records = [unit("u2"), unit("u1"), unit("u3"), enrol("b", "u2"), enrol("a", "u2"),
               enrol("c", "u1"), enrol("d", "u2"), leave("d", "2024-03-01", "2024-03-31"),
               *visits_on("2024-03", 1, 28, cadre_id="a"), *visits_on("2024-03", 28, cadre_id="b")]
    result = report("2024-03", *records)
    assert list(result) == ["month", "cadres", "units"]
    assert result["month"] == "2024-03"
    assert [(r["unit_id"], r["cadre_id"]) for r in result["cadres"]] == [
        ("u1", "c"), ("u2", "a"), ("u2", "b"), ("u2", "d")
    ]
    assert result["units"] == [
        {"unit_id": "u1", "cadres": 1, "compliant": 0, "exempt": 0, "rate": 0.0},
        {"unit_id": "u2", "cadres": 3, "compliant": 1, "exempt": 1, "rate": 0.5},
        {"unit_id": "u3", "cadres": 0, "compliant": 0, "exempt": 0, "rate": None},
    ]
    only_u2 = report("2024-03", *records, unit_id="u2")
    assert {r["unit_id"] for r in only_u2["cadres"]} == {"u2"}
    assert [u["unit_id"] for u in only_u2["units"]] == ["u2"]


def test_rates_are_rounded_and_null_when_all_are_exempt():
    records = [unit("u1"), *(enrol(x, "u1") for x in "abc"),
               *visits_on("2024-03", 1, 28, cadre_id="a")]
    assert report("2024-03", *records)["units"][0]["rate"] == 0.3333
    all_exempt = [unit("u1"), enrol("a", "u1"), leave("a", "2024-01-01", "2024-12-31")]
    assert report("2024-03", *all_exempt)["units"][0]["rate"] is None


def test_a_bad_month_is_refused():
    with pytest.raises(ValueError, match="not YYYY-MM"):
        report("2024-13", *BASE)


def test_the_report_dumps_to_json_and_the_query_names_bad_fields():
    result = report("2024-03", *BASE, *visits_on("2024-03", 5, 28))
    body = json.loads(json.dumps(ComplianceReportSchema().dump(result)))
    assert body["cadres"][0]["dates"] == ["2024-03-05", "2024-03-28"]
    assert body["cadres"][0]["unit_day_met"] is None
    assert body["units"][0]["rate"] == 1.0
    assert ComplianceQuerySchema().load({"month": "2024-03"}) == {
        "month": "2024-03", "unit_id": None, "as_of": None
    }
    as_of = ComplianceQuerySchema().load({"month": "2024-03", "as_of": "2024-04-01T00:00:00Z"})
    assert as_of["as_of"] == datetime(2024, 4, 1, tzinfo=UTC)
    with pytest.raises(ValidationError) as caught:
        ComplianceQuerySchema().load({"month": "2024-3", "as_of": "2024-04-01T00:00:00"})
    assert caught.value.messages == {
        "month": ["not a month YYYY-MM"], "as_of": ["Not a valid aware datetime."]
    }


def test_facts_from_stored_rows_assess_like_facts_from_events():
    records = [unit("u1", 10), enrol("a", "u1"), enrol("b", "u1"),
               visit("v1", "2024-03-10", "a", "b"), visit("v2", "2024-03-28", "a"),
               visit("v3", "2024-03-12", "b"), retracted("v3")]
    facts = c.facts_from_events(records)
    rows = c.facts_from_rows(facts.units, facts.cadres.values(), facts.participations())
    assert rows == facts
    assert c.assess("2024-03", rows, POLICY) == c.assess("2024-03", facts, POLICY)


def test_events_the_visits_service_decides_fold_into_the_right_local_day():
    from services.visits import domain as v

    roster_now = datetime(2024, 1, 1, 2, 0, tzinfo=UTC)
    roster = v.Roster()
    records: list[Rec] = []

    def run(command: Any, now: datetime) -> None:
        nonlocal roster
        for event in v.decide(command, [], roster, now, POLICY,
                              principal=Principal("operator", token_id="t")):
            rec = Rec(event.type, json.loads(json.dumps(event.data)))
            records.append(rec)
            roster = roster.apply(rec)

    run(v.RegisterUnit("u1", "Unit", "department", 31), roster_now)
    run(v.EnrolCadre("a", "Li", "u1", "staff"), roster_now)
    late_utc = datetime(2024, 3, 27, 18, 30, tzinfo=UTC)  # 02:30 on the 28th in Shanghai
    target = {"kind": "household", "resident_id": None, "resident": None}
    place = {"township": "T"}
    run(v.RecordVisit("v1", ("a",), None, place, target, started_at=late_utc), late_utc)
    run(v.RecordVisit("v2", ("a",), date(2024, 3, 31), place, target),
        datetime(2024, 4, 10, tzinfo=UTC))
    result = row("2024-03", *records)
    assert result["dates"] == [date(2024, 3, 28), date(2024, 3, 31)]
    assert (result["fixed_day_met"], result["unit_day_met"], result["compliant"]) == (
        True, True, True
    )
    assert result["backfilled_days"] == 1


# --- a property ---------------------------------------------------------------------------------


@st.composite
def months_of_work(draw: st.DrawFn) -> tuple[str, list[Rec], Policy]:
    year = draw(st.integers(2023, 2025))
    number = draw(st.integers(1, 12))
    month = f"{year}-{number:02d}"
    first = date(year, number, 1)
    enrolled = first + timedelta(draw(st.integers(-5, 20)))
    records: list[Rec] = [unit("u1", draw(st.none() | st.integers(1, 31))),
                          enrol("a", "u1", enrolled.isoformat())]
    for _ in range(draw(st.integers(0, 3))):  # leave periods, which may overlap
        start = first + timedelta(draw(st.integers(-3, 30)))
        records.append(leave("a", start.isoformat(),
                             (start + timedelta(draw(st.integers(0, 40)))).isoformat()))
    offsets = draw(st.lists(st.integers(-3, 33), max_size=12))
    for n, offset in enumerate(offsets):
        records.append(visit(f"v{n}", (first + timedelta(offset)).isoformat(), "a",
                             backfilled=draw(st.booleans())))
    policy = Policy(min_days=draw(st.integers(0, 4)), fixed_day=draw(st.integers(1, 31)))
    return month, records, policy


def available_days(records: list[Rec], month: str) -> int:
    """Days of the month the cadre was on the roster and not on leave, counted naively."""
    cadre = c.facts_from_events(records).cadres["a"]
    period = c.parse_month(month)
    return sum(
        1 for day in period.days() if day >= cadre.enrolled_from and not cadre.on_leave(day)
    )


@settings(max_examples=300, deadline=None)
@given(months_of_work())
def test_days_are_the_listed_dates_and_compliance_is_exactly_the_rules(case):
    month, records, policy = case
    period = c.parse_month(month)
    rows = report(month, *records, policy=policy)["cadres"]
    enrolled = c.facts_from_events(records).cadres["a"].enrolled_from
    assert len(rows) == (1 if enrolled <= period.last else 0)
    for result in rows:
        available = available_days(records, month)
        owed = min(policy.min_days, available)
        assert result["days"] == len(result["dates"]) == len(set(result["dates"]))
        assert result["dates"] == sorted(result["dates"])
        assert all(period.first <= d <= period.last for d in result["dates"])
        assert 0 <= result["backfilled_days"] <= result["days"]
        assert result["exempt"] == (available == 0)
        assert (result["compliant"] is None) == result["exempt"]
        if period.on(policy.fixed_day) in result["dates"]:
            assert result["fixed_day_met"] is True
        rules_met = result["fixed_day_met"] is not False and result["unit_day_met"] is not False
        if not result["exempt"]:
            assert result["compliant"] == (result["days"] >= owed and rules_met)
        if result["compliant"]:
            assert result["days"] >= owed
