"""The compliance view's storage: the facts of `domain.py`, one row per unit, cadre and visit.

`apply` loads the one entity an event is about, folds the event into it with the same pure
`domain.evolve` the unit tests check, and writes it back; so the SQL view and the reference
fold cannot drift apart. Reports read the month's facts back and run `domain.assess`.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Date,
    Index,
    MetaData,
    String,
    Table,
    Text,
    delete,
    select,
)

from services.compliance import domain
from shared.campaign.policy import Policy
from shared.eventlog import Record

metadata = MetaData()
units = Table(
    "compliance_units", metadata,
    Column("unit_id", String(100), primary_key=True),
    Column("settings", Text, nullable=False),  # JSON [[effective_from|null, unit_day|null]]
)
cadres = Table(
    "compliance_cadres", metadata,
    Column("cadre_id", String(100), primary_key=True),
    Column("facts", Text, nullable=False),  # JSON of domain.CadreFacts
)
participations = Table(
    "compliance_participations", metadata,
    Column("visit_id", String(100), primary_key=True),
    Column("cadre_id", String(100), primary_key=True),
    Column("date", Date, nullable=False),
    Column("backfilled", Boolean, nullable=False),
    Index("ix_compliance_participations_date", "date"),
)
# Participations still waiting for the cadre's confirmation (a table of its own, so that views
# built before consent existed need no migration: none of their visits had any).
pending = Table(
    "compliance_pending", metadata,
    Column("visit_id", String(100), primary_key=True),
    Column("cadre_id", String(100), primary_key=True),
)


def _d(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def _day(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def cadre_to_json(c: domain.CadreFacts) -> str:
    return json.dumps({
        "enrolled_from": _d(c.enrolled_from), "left_from": _d(c.left_from),
        "memberships": [[m.unit_id, _d(m.start), _d(m.end)] for m in c.memberships],
        "leaves": [[_d(v.start), _d(v.end)] for v in c.leaves],
    })


def cadre_from_json(cadre_id: str, text: str) -> domain.CadreFacts:
    d = json.loads(text)
    return domain.CadreFacts(
        cadre_id, _day(d["enrolled_from"]), _day(d["left_from"]),  # type: ignore[arg-type]
        tuple(domain.Membership(u, _day(s), _day(e)) for u, s, e in d["memberships"]),  # type: ignore[arg-type]
        tuple(domain.LeavePeriod(_day(s), _day(e)) for s, e in d["leaves"]),  # type: ignore[arg-type]
    )


def _settings_from_json(text: str) -> tuple[domain.UnitDaySetting, ...]:
    return tuple(domain.UnitDaySetting(_day(s), day) for s, day in json.loads(text))


def _load(conn: Connection, record: Record) -> domain.Facts:
    """The stored facts the record is about (only that unit, cadre or visit)."""
    data = record.data
    kind = record.type.split(".", 1)[0]
    if kind == "unit":
        query = select(units.c.settings).where(units.c.unit_id == data["unit_id"])
        row = conn.execute(query).first()
        return domain.Facts(units={data["unit_id"]: _settings_from_json(row[0])} if row else {})
    if kind == "cadre":
        query = select(cadres.c.facts).where(cadres.c.cadre_id == data["cadre_id"])
        row = conn.execute(query).first()
        found = {data["cadre_id"]: cadre_from_json(data["cadre_id"], row[0])} if row else {}
        return domain.Facts(cadres=found)
    rows = conn.execute(select(participations).where(
        participations.c.visit_id == data["visit_id"])).all()
    waiting = _pending_of(conn, [data["visit_id"]])
    return domain.facts_from_rows({}, (), [
        domain.Participation(r.cadre_id, r.visit_id, r.date, r.backfilled,
                             (r.visit_id, r.cadre_id) not in waiting) for r in rows])


def _pending_of(conn: Connection, visit_ids: list[str]) -> set[tuple[str, str]]:
    if not visit_ids:
        return set()
    rows = conn.execute(select(pending).where(pending.c.visit_id.in_(visit_ids))).all()
    return {(r.visit_id, r.cadre_id) for r in rows}


def _store(conn: Connection, record: Record, facts: domain.Facts) -> None:
    data = record.data
    kind = record.type.split(".", 1)[0]
    if kind == "unit":
        settings = facts.units[data["unit_id"]]
        conn.execute(delete(units).where(units.c.unit_id == data["unit_id"]))
        conn.execute(units.insert().values(unit_id=data["unit_id"], settings=json.dumps(
            [[_d(s.effective_from), s.unit_day] for s in settings])))
    elif kind == "cadre":
        cadre = facts.cadres.get(data["cadre_id"])
        if cadre is not None:
            conn.execute(delete(cadres).where(cadres.c.cadre_id == cadre.cadre_id))
            conn.execute(cadres.insert().values(cadre_id=cadre.cadre_id,
                                                facts=cadre_to_json(cadre)))
    else:
        conn.execute(delete(participations).where(
            participations.c.visit_id == data["visit_id"]))
        conn.execute(delete(pending).where(pending.c.visit_id == data["visit_id"]))
        found = list(facts.participations())
        rows = [{k: v for k, v in p.__dict__.items() if k != "confirmed"} for p in found]
        if rows:
            conn.execute(participations.insert(), rows)
        waiting = [{"visit_id": p.visit_id, "cadre_id": p.cadre_id}
                   for p in found if not p.confirmed]
        if waiting:
            conn.execute(pending.insert(), waiting)


class ComplianceProjection:
    """Folds the visits log into the facts the compliance rules need."""

    name = "compliance"
    sources: tuple[str, ...] = ("visits",)
    metadata = metadata

    def apply(self, conn: Connection, record: Record) -> None:
        if record.type not in domain.EVENT_TYPES:
            return
        before = _load(conn, record)
        after = domain.evolve(before, record)
        if after != before:
            _store(conn, record, after)


def month_facts(conn: Connection, month: str) -> domain.Facts:
    """Every unit and cadre, and the participations dated in `month`."""
    period = domain.parse_month(month)
    first, last = period.first, period.last
    unit_rows = conn.execute(select(units)).all()
    cadre_rows = conn.execute(select(cadres)).all()
    part_rows = conn.execute(select(participations).where(
        participations.c.date >= first, participations.c.date <= last)).all()
    waiting = {(r.visit_id, r.cadre_id) for r in conn.execute(
        select(pending.c.visit_id, pending.c.cadre_id).join(
            participations, (participations.c.visit_id == pending.c.visit_id)
            & (participations.c.cadre_id == pending.c.cadre_id))
        .where(participations.c.date >= first, participations.c.date <= last)).all()}
    return domain.facts_from_rows(
        {r.unit_id: _settings_from_json(r.settings) for r in unit_rows},
        [cadre_from_json(r.cadre_id, r.facts) for r in cadre_rows],
        [domain.Participation(r.cadre_id, r.visit_id, r.date, r.backfilled,
                              (r.visit_id, r.cadre_id) not in waiting) for r in part_rows],
    )


def report(
    conn: Connection, month: str, policy: Policy, unit_id: str | None
) -> dict[str, Any]:
    return domain.assess(month, month_facts(conn, month), policy, unit_id=unit_id)
