"""Who may do what with visits, decided by the visits domain itself (services/visits/rights.py):
credit only with consent, withdrawal only of oneself, a head's rights on the visit's date."""

from __future__ import annotations

from datetime import date

import pytest

from services.compliance import domain as compliance
from services.visits import domain as d
from shared.campaign.policy import Policy
from shared.kernel.errors import Conflict, Denied
from shared.runtime.auth import Principal
from tests.unit.test_visits_domain import OPERATOR, Log, visit

POLICY = Policy()


def cadre(cadre_id: str) -> Principal:
    return Principal("cadre", cadre_id=cadre_id, token_id=f"t-{cadre_id}")


def head(unit_id: str, cadre_id: str = "h") -> Principal:
    return Principal("head", cadre_id=cadre_id, unit_id=unit_id, token_id=f"t-head-{unit_id}")


@pytest.fixture
def log() -> Log:
    """Units u1, u2, u3. a1, a2: staff of u1; b1: staff of u2; l1: leader of u1 with liaison
    unit u3; c3: staff of u3. m1 moved from u1 to u2 on 15 March."""
    log = Log()
    for unit_id in ("u1", "u2", "u3"):
        log.run(d.RegisterUnit(unit_id, f"Unit {unit_id}", "department"))
    for cadre_id, unit_id, role, liaison in (
        ("a1", "u1", "staff", ()), ("a2", "u1", "staff", ()), ("b1", "u2", "staff", ()),
        ("l1", "u1", "leader", ("u3",)), ("c3", "u3", "staff", ()), ("m1", "u1", "staff", ()),
    ):
        log.run(d.EnrolCadre(cadre_id, cadre_id.upper(), unit_id, role, liaison, date(2024, 1, 1)))
    log.run(d.TransferCadre("m1", "u2", date(2024, 3, 15)))
    return log


def record(log: Log, principal: Principal, *cadre_ids: str, visit_id: str = "v1",
           day: date = date(2024, 3, 28)) -> list[str]:
    [event] = log.run(visit(visit_id, cadre_ids, date=day), principal=principal)
    return event.data["pending_cadre_ids"]


def counted(log: Log, cadre_id: str) -> int:
    """Grassroots days the compliance fold credits to the cadre in March 2024."""
    facts = compliance.facts_from_events(log.records)
    report = compliance.assess("2024-03", facts, POLICY)
    return next(r["days"] for r in report["cadres"] if r["cadre_id"] == cadre_id)


def test_the_roster_is_for_operators_only(log):
    for who in (cadre("a1"), head("u1"), Principal("supervisor", token_id="s")):
        with pytest.raises(Denied, match="operator"):
            log.run(d.RegisterUnit("u9", "Unit 9", "department"), principal=who)
    assert [r for r in log.records if r.data.get("unit_id") == "u9"] == []


def test_readers_record_nothing(log):
    for role in ("supervisor", "auditor"):
        with pytest.raises(Denied):
            record(log, Principal(role, token_id="x"), "a1")


def test_a_cadre_records_only_visits_they_took_part_in(log):
    with pytest.raises(Denied, match="took part"):
        record(log, cadre("a1"), "a2")


def test_own_unit_counts_at_once_other_units_wait_for_consent(log):
    assert record(log, cadre("a1"), "a1", "a2", "b1") == ["b1"]
    assert (counted(log, "a2"), counted(log, "b1")) == (1, 0)
    with pytest.raises(Denied, match="only cadre b1 themselves"):
        log.run(d.ConfirmParticipation("v1", "b1"), principal=cadre("a1"))
    [event] = log.run(d.ConfirmParticipation("v1"), principal=cadre("b1"))
    assert event.data == {"visit_id": "v1", "cadre_id": "b1"}
    assert counted(log, "b1") == 1
    assert log.run(d.ConfirmParticipation("v1"), principal=cadre("b1")) == []  # already


def test_a_leader_vouches_for_their_liaison_units(log):
    assert record(log, cadre("l1"), "l1", "c3") == []
    assert record(log, cadre("a1"), "a1", "c3", visit_id="v2") == ["c3"]  # staff do not


def test_a_head_token_vouches_for_its_unit_and_needs_one_of_them(log):
    with pytest.raises(Denied, match="belongs to unit u1"):
        record(log, head("u1"), "b1")
    assert record(log, head("u1"), "a1", "b1") == ["b1"]
    log.run(d.ConfirmParticipation("v1", "b1"), principal=head("u2"))  # b1's own head may
    assert counted(log, "b1") == 1


def test_a_participant_cannot_take_others_off(log):
    record(log, cadre("a1"), "a1", "b1")
    log.run(d.ConfirmParticipation("v1"), principal=cadre("b1"))
    with pytest.raises(Denied, match="only cadre a1 themselves"):
        log.run(d.CorrectVisit("v1", {"cadre_ids": ("b1",)}, "not there"), principal=cadre("b1"))
    with pytest.raises(Denied, match="only cadre a1 themselves"):
        log.run(d.WithdrawParticipation("v1", "no", "a1"), principal=cadre("b1"))
    with pytest.raises(Denied, match="also counts for a1"):
        log.run(d.RetractVisit("v1", "mine"), principal=cadre("b1"))
    [event] = log.run(d.WithdrawParticipation("v1", "left early"), principal=cadre("b1"))
    assert event.data == {"visit_id": "v1", "cadre_id": "b1", "reason": "left early"}
    assert (counted(log, "a1"), counted(log, "b1")) == (1, 0)
    with pytest.raises(Conflict, match="only cadre"):
        log.run(d.WithdrawParticipation("v1", "gone"), principal=cadre("a1"))


def test_the_head_and_operators_may_take_a_cadre_off(log):
    record(log, cadre("a1"), "a1", "a2")
    log.run(d.WithdrawParticipation("v1", "was at a meeting", "a2"), principal=head("u1"))
    assert counted(log, "a2") == 0
    record(log, cadre("a1"), "a1", "a2", visit_id="v2", day=date(2024, 3, 27))
    log.run(d.CorrectVisit("v2", {"cadre_ids": ("a1",)}, "a2 was not there"), principal=OPERATOR)
    assert counted(log, "a2") == 0


def test_cadres_added_by_a_correction_wait_for_consent(log):
    record(log, cadre("a1"), "a1")
    [event] = log.run(d.CorrectVisit("v1", {"cadre_ids": ("a1", "a2", "b1")}, "forgot them"),
                      principal=cadre("a1"))
    assert event.data["pending_cadre_ids"] == ["b1"]
    assert (counted(log, "a2"), counted(log, "b1")) == (1, 0)


def test_a_pending_cadre_has_no_rights_over_the_visit(log):
    record(log, cadre("a1"), "a1", "b1")
    with pytest.raises(Denied, match="no rights over visit v1"):
        log.run(d.CorrectVisit("v1", {"diary": {"notes": "mine now"}}, "x"), principal=cadre("b1"))


def test_a_heads_rights_follow_the_unit_on_the_visits_date(log):
    """m1 was in u1 until 14 March and in u2 from 15 March."""
    record(log, OPERATOR, "m1", visit_id="early", day=date(2024, 3, 10))
    record(log, OPERATOR, "m1", visit_id="late", day=date(2024, 3, 20))
    note = {"diary": {"notes": "checked"}}
    log.run(d.CorrectVisit("early", note, "check"), principal=head("u1"))
    log.run(d.CorrectVisit("late", note, "check"), principal=head("u2"))
    with pytest.raises(Denied):
        log.run(d.CorrectVisit("early", note, "check"), principal=head("u2"))
    with pytest.raises(Denied):
        log.run(d.CorrectVisit("late", note, "check"), principal=head("u1"))
    with pytest.raises(Denied, match="belongs to unit u2"):
        record(log, head("u2"), "m1", visit_id="v3", day=date(2024, 3, 10))


def test_who_sees_residents_details():
    from services.visits import rights

    log_ = Log()
    log_.run(d.RegisterUnit("u1", "U1", "department"))
    log_.run(d.EnrolCadre("a1", "A1", "u1", "staff", (), date(2024, 1, 1)))
    roster, day = log_.roster(), date(2024, 3, 28)
    assert rights.sees_personal_data(cadre("a1"), ["a1"], roster, day, None)
    assert rights.sees_personal_data(head("u1"), ["a1"], roster, day, None)
    assert not rights.sees_personal_data(cadre("a1"), [], roster, day, None)  # pending only
    for role in ("supervisor", "auditor", "operator"):
        reader = Principal(role, token_id="r")
        assert not rights.sees_personal_data(reader, ["a1"], roster, day, None)
        assert rights.sees_personal_data(reader, ["a1"], roster, day, "complaint 42 follow-up")

