"""As of any instant, the compliance view kept by position answers what refolding gave.

A scripted history (transfers, leave, a unit-day change, cadres removed, corrections,
retractions, pending participations confirmed and withdrawn) is decided by the visits domain
and appended to a real event log (SQLite). The view, folded page by page, is then asked about
every position and every record's instant; each answer must equal the reference fold of the
log's prefix, and `build_as_of` (the view rebuilt from the prefix) must agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from services.compliance import projection
from services.compliance.domain import assess, facts_from_events
from services.visits import domain as d
from shared.campaign.policy import Policy
from shared.eventlog import EventLog, NewEvent, Record
from shared.kernel.commands import MemoryFold, execute
from shared.kernel.projection import Projector, build_as_of
from shared.runtime.auth import Principal
from shared.runtime.providers import log_fetch

POLICY = Policy()
OPERATOR = Principal("operator", token_id="op")
NOW = dt.datetime(2024, 4, 2, 2, 0, tzinfo=dt.UTC)
MONTHS = ("2024-02", "2024-03")


def cadre(cadre_id: str) -> Principal:
    return Principal("cadre", cadre_id=cadre_id, token_id=f"t-{cadre_id}")


def visit(visit_id: str, day: int, *cadre_ids: str) -> d.RecordVisit:
    return d.RecordVisit(
        visit_id=visit_id, cadre_ids=cadre_ids, date=dt.date(2024, 3, day),
        place={"township": "Qingshan"},
        target={"kind": "household", "resident_id": None, "resident": None})


def script() -> list[tuple[Any, Principal]]:
    """Every kind of event the view folds, some more than once."""
    day = dt.date
    steps: list[tuple[Any, Principal]] = [
        (d.RegisterUnit("u1", "Civil Affairs", "department", 10), OPERATOR),
        (d.RegisterUnit("u2", "Qingshan Township", "township"), OPERATOR),
        *[(d.EnrolCadre(c, c.upper(), u, "staff", (), day(2024, 1, 1)), OPERATOR)
          for c, u in (("a", "u1"), ("b", "u1"), ("c", "u2"), ("e", "u2"))],
        (visit("v1", 10, "a", "b"), OPERATOR),
        (visit("v2", 28, "a", "c"), cadre("a")),  # c is of another unit: pending
        (visit("v3", 28, "b", "e"), cadre("b")),  # e pending, then withdraws
        (d.ConfirmParticipation("v2"), cadre("c")),
        (d.WithdrawParticipation("v3", "was not there"), cadre("e")),
        (d.CorrectVisit("v1", {"date": dt.date(2024, 3, 11)}, "wrong day"), OPERATOR),
        (visit("v4", 5, "a"), OPERATOR),
        (d.RetractVisit("v4", "never happened"), OPERATOR),
        (d.TransferCadre("b", "u2", day(2024, 3, 15)), OPERATOR),
        (d.GrantLeave("c", day(2024, 3, 1), day(2024, 3, 20), "sick"), OPERATOR),
        (d.SetUnitDay("u1", 12, day(2024, 3, 1)), OPERATOR),
        (visit("v5", 12, "a", "b"), OPERATOR),
        (d.CorrectVisit("v5", {"cadre_ids": ("a", "e")}, "b moved"), OPERATOR),
        (d.RemoveCadre("e", day(2024, 3, 30), "retired"), OPERATOR),
        (visit("v6", 2, "c", "a"), cadre("c")),  # a pending, confirms after a correction
        (d.CorrectVisit("v6", {"date": dt.date(2024, 3, 3)}, "wrong day"), cadre("c")),
        (d.ConfirmParticipation("v6"), cadre("a")),
        (d.RetractVisit("v2", "duplicate"), OPERATOR),
    ]
    return steps


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventLog]:
    log = EventLog.open(f"sqlite:///{tmp_path_factory.mktemp('asof') / 'visits.db'}",
                        service="visits")
    roster = MemoryFold(d.Roster(), d.Roster.apply)
    for n, (command, who) in enumerate(script()):
        execute(log, d.stream_for(command),
                lambda history, command=command, who=who: d.decide(
                    command, history, roster.current(log), NOW, POLICY, principal=who),
                command_id=f"step-{n}", actor=who.actor)
    # Logs written before #8 name a removal `cadre.left`: the view folds it all the same.
    log.append("cadre-c", [NewEvent(d.CADRE_LEFT, {
        "cadre_id": "c", "effective_from": "2024-03-25", "reason": "moved away"})])
    yield log
    log.close()


@pytest.fixture(scope="module")
def history(log: EventLog) -> list[Record]:
    return list(log.read())


def reference(records: list[Record]) -> dict[str, Any]:
    facts = facts_from_events(records)
    return {m: assess(m, facts, POLICY) for m in MONTHS}


def test_the_script_covers_every_kind_of_change(history):
    types = {r.type for r in history}
    assert types >= {*d.ROSTER_EVENT_TYPES, "visit.recorded", "visit.corrected",
                     "visit.retracted", "visit.participation_confirmed",
                     "visit.participation_withdrawn"}
    assert any(r.data.get("pending_cadre_ids") for r in history)


@pytest.mark.parametrize("page", [1, 3, 100])
def test_every_position_as_of_equals_the_fold_of_the_prefix(history, page):
    view = Projector.in_memory(projection.ComplianceProjection())
    for start in range(0, len(history), page):
        view.apply_batch(history[start:start + page])
    with view.engine.connect() as conn:
        for at in range(len(history) + 1):
            got = {m: projection.report(conn, m, POLICY, None, at) for m in MONTHS}
            assert got == reference(history[:at]), f"as of position {at}"
        live = {m: projection.report(conn, m, POLICY, None) for m in MONTHS}
    assert live == reference(history)
    assert live["2024-03"] != reference(history[:-3])["2024-03"]  # the tail changed things


def test_every_instant_maps_to_the_last_position_recorded_by_it(log, history):
    fetch = log_fetch({"visits": log})
    view = Projector.in_memory(projection.ComplianceProjection())
    assert view.position_at(fetch, "visits", history[0].recorded_at) >= 1  # caught up first
    assert view.checkpoints() == {"visits": len(history)}
    for record in [*history[::5], history[-1]]:
        instant = record.recorded_at
        at = view.position_at(fetch, "visits", instant)
        assert at == max(r.position for r in history if r.recorded_at <= instant)
        with view.engine.connect() as conn:
            got = {m: projection.report(conn, m, POLICY, None, at) for m in MONTHS}
        rebuilt = build_as_of(projection.ComplianceProjection(), fetch, instant)
        with rebuilt.engine.connect() as conn:
            assert got == {m: projection.report(conn, m, POLICY, None) for m in MONTHS}
    before = history[0].recorded_at - dt.timedelta(days=1)
    assert view.position_at(fetch, "visits", before) == 0



def test_a_visit_with_personal_data_folds_without_decrypting_it(tmp_path):
    """The view decodes only the fields the rules read: a resident's sealed details are
    never opened, and the report is the reference fold's (which opens everything)."""
    log = EventLog.open(f"sqlite:///{tmp_path / 'visits.db'}", service="visits")
    roster = MemoryFold(d.Roster(), d.Roster.apply)
    steps = [*script()[:6], (d.RecordVisit(
        visit_id="vp", cadre_ids=("a", "c"), date=dt.date(2024, 3, 31),
        place={"township": "Qingshan"},
        target={"kind": "household", "resident_id": None,
                "resident": {"name": "Wang Fang", "phone": "13800000000"}}), OPERATOR)]
    for n, (command, who) in enumerate(steps):
        execute(log, d.stream_for(command),
                lambda history, command=command, who=who: d.decide(
                    command, history, roster.current(log), NOW, POLICY, principal=who),
                command_id=f"p-{n}", actor=who.actor)
    records = list(log.read())
    sealed = [r for r in records if r.personal]
    assert sealed and all("opened=False" in repr(tuple.__getitem__(r, 5)) for r in sealed)
    view = Projector.in_memory(projection.ComplianceProjection())
    view.apply_batch(records)
    assert all("opened=False" in repr(tuple.__getitem__(r, 5)) for r in sealed)
    with view.engine.connect() as conn:
        got = projection.report(conn, "2024-03", POLICY, None)
    assert got == reference(list(log.read()))["2024-03"]
    assert {r["cadre_id"]: r["dates"][-1] for r in got["cadres"] if r["dates"]}["a"] == \
        dt.date(2024, 3, 31)
    log.close()
