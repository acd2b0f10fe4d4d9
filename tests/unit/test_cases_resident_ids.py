"""A resident id given at registration must be one the platform issued
(services/cases/decisions.py decides with the lookup its Context carries): never a made-up
one, nor a forgotten resident's."""

from __future__ import annotations

import datetime as dt

import pytest

from services.cases import domain as d
from services.cases import intake
from shared.kernel.errors import UnknownReference
from tests.unit.cases_support import CALENDAR, CASES, POLICY, ROSTER, P, Rec, at, check

NOW = at(dt.date(2025, 6, 10))
ISSUED = "res-issued"


def register(origin: str = "hotline", resident_id: str = ISSUED,
             case_id: str = "k1") -> d.RegisterCase:
    return d.RegisterCase(case_id, origin, "help", "the lane floods", {"township": "Qiaotou"},
                          resident={"id": resident_id, "name": "Li", "phone": "13800000000",
                                    "address": "1 Lane"},
                          visit_id="v1" if origin == "visit" else None)


def context(who: str = "hotline", issued: tuple[str, ...] = (ISSUED,)) -> d.Context:
    principal = intake.INTAKE if who == "intake" else P[who]
    return d.Context(NOW, principal, POLICY, CASES, CALENDAR, ROSTER,
                     issued=lambda resident_id: resident_id in issued)


@pytest.mark.parametrize("origin", ["hotline", "petition", "visit"])
def test_an_id_the_platform_never_issued_is_refused_naming_the_field(origin: str) -> None:
    with pytest.raises(UnknownReference) as refused:
        d.decide(register(origin, "13800000000"), [], context("operator"))
    assert refused.value.http_status == 422
    assert refused.value.errors() == {"resident.id": ["unknown resident '13800000000'"]}


def test_an_issued_id_registers_under_that_resident() -> None:
    [event] = d.decide(register(), [], context())
    check(event)
    assert (event.subject, event.data["resident_id"]) == (ISSUED, ISSUED)


def test_a_context_given_no_lookup_knows_no_resident() -> None:
    bare = d.Context(NOW, P["hotline"], POLICY, CASES, CALENDAR, ROSTER)
    with pytest.raises(UnknownReference):
        d.decide(register(), [], bare)


def test_the_intake_is_not_asked_its_ids_come_from_the_visits_log() -> None:
    """A visit taken up after its resident was forgotten still opens its case (by pseudonym,
    with no details): refusing it would stop the intake at that visit."""
    command = d.RegisterCase("k2", "visit", "help", "no heating", {"township": "Qiaotou"},
                             resident={"id": "res-forgotten"}, visit_id="v1")
    [event] = d.decide(command, [], context("intake", issued=()))
    assert event.data["resident_id"] == "res-forgotten" and event.data["resident"] is None


def test_registering_the_same_case_again_is_not_refused_once_its_resident_is_forgotten() -> None:
    """A retry of a registration that was accepted stays the same case, not a refusal."""
    [event] = d.decide(register(), [], context())
    assert d.decide(register(), [Rec(event.type, event.data, 1)], context(issued=())) == []
