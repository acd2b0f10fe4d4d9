"""What the intake keeps of the visits log in the cases database, as a projection (the
kernel's `Projector`, as every view keeps its checkpoint): how far it has taken the log up,
each visit's `VisitFacts`, and the resident ids the visits service issued.

The facts are persisted rather than rebuilt: rebuilding them means reading the whole visits
log again (its `read_log` cannot select a visit's events), which is the very cost the
checkpoint removes. They are one small row per visit, written with the checkpoint in one
transaction, so after a crash the facts always stand at the checkpoint: a visit event taken up
again is compared with the visit as it stood before it, never after.

The rows are a pure fold of the visits log's records (`apply_page`), so a rebuild from scratch
gives the same rows. The intake's commands are not written here: the cases log appends through
its own transaction (the group commit, shared/eventlog). The service appends them first and
moves the checkpoint after (service.VisitIntake), and their derived command ids make a page
taken up twice append nothing, so a crash in between neither skips nor repeats a case.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from sqlalchemy import Column, Connection, MetaData, String, Table, Text, bindparam, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import BindParameter

from services.cases import intake
from shared.eventlog import Record
from shared.kernel.projection import PagedProjection, projection_checkpoints

NAME = "cases-intake"
SOURCE = "visits"
metadata = MetaData()
visit_facts = Table(
    "intake_visit_facts", metadata,
    Column("visit_id", String(200), primary_key=True),
    Column("facts", Text, nullable=False),  # intake.facts_data as JSON
)
issued_residents = Table(
    "intake_issued_residents", metadata,
    Column("resident_id", String(200), primary_key=True),
)

# Built once (an event delivered runs each of them; building them was most of their cost).
_IDS: BindParameter[list[str]] = bindparam("ids", expanding=True)
_FACTS = select(visit_facts.c.visit_id, visit_facts.c.facts).where(
    visit_facts.c.visit_id.in_(_IDS))
_FORGET_FACTS = visit_facts.delete().where(visit_facts.c.visit_id.in_(_IDS))
_ISSUED = select(issued_residents.c.resident_id).where(issued_residents.c.resident_id.in_(_IDS))
_HEAD = select(projection_checkpoints.c.position, projection_checkpoints.c.hash).where(
    projection_checkpoints.c.projection == NAME, projection_checkpoints.c.source == SOURCE)


class IntakeView(PagedProjection):
    """The intake's state as a projection of the visits log."""

    name = NAME
    sources: tuple[str, ...] = (SOURCE,)
    metadata = metadata

    def apply_page(self, conn: Connection, records: Sequence[Record]) -> None:
        """Fold the page's visit events into the facts of their visits, and note the residents
        they name."""
        ids = {r.data["visit_id"] for r in records if r.type in intake.TYPES}
        before = facts(conn, ids)
        after = dict(before)
        residents: set[str] = set()
        for record in records:
            if record.type in intake.TYPES:
                visit_id = record.data["visit_id"]
                folded = intake.fold(after.get(visit_id), record)
                if folded is not None:
                    after[visit_id] = folded
            resident = intake.resident_named(record)
            if resident is not None:
                residents.add(resident)
        changed = [v for v, f in after.items() if before.get(v) != f]
        if changed:
            conn.execute(_FORGET_FACTS, {"ids": changed})
            conn.execute(visit_facts.insert(), [
                {"visit_id": v, "facts": json.dumps(intake.facts_data(after[v]))}
                for v in changed])
        new = residents - _issued(conn, residents)
        if new:
            conn.execute(issued_residents.insert(), [{"resident_id": r} for r in sorted(new)])


def facts(conn: Connection, visit_ids: Iterable[str]) -> dict[str, intake.VisitFacts]:
    """The stored facts of these visits (those the intake has seen)."""
    wanted = sorted(set(visit_ids))
    if not wanted:
        return {}
    rows = conn.execute(_FACTS, {"ids": wanted}).all()
    return {row.visit_id: intake.facts_from(json.loads(row.facts)) for row in rows}


def _issued(conn: Connection, resident_ids: set[str]) -> set[str]:
    if not resident_ids:
        return set()
    return set(conn.execute(_ISSUED, {"ids": sorted(resident_ids)}).scalars())


def issued(engine: Engine, resident_id: str) -> bool:
    """Whether a visits event the intake has taken up named this resident id."""
    with engine.connect() as conn:
        return bool(_issued(conn, {resident_id}))


def head(engine: Engine) -> tuple[int, str | None]:
    """(position, hash) of the last visits record the intake took up ((0, None): none)."""
    with engine.connect() as conn:
        row = conn.execute(_HEAD).first()
    return (row.position, row.hash) if row is not None else (0, None)
