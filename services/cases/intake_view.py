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
from typing import Any

from sqlalchemy import Column, Connection, MetaData, String, Table, Text
from sqlalchemy.engine import Engine

from services.cases import intake
from shared.eventlog import Record
from shared.kernel.projection import PagedProjection, driver_cursor

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
        cur, mark = driver_cursor(conn)
        if changed:
            cur.execute("DELETE FROM intake_visit_facts "
                        f"WHERE visit_id IN ({_marks(mark, changed)})", changed)
            cur.executemany("INSERT INTO intake_visit_facts (visit_id, facts) "
                            f"VALUES ({mark}, {mark})",
                            [(v, json.dumps(intake.facts_data(after[v]))) for v in changed])
        new = residents - _issued(conn, residents)
        if new:
            cur.executemany(f"INSERT INTO intake_issued_residents (resident_id) VALUES ({mark})",
                            [(r,) for r in sorted(new)])


def _marks(mark: str, values: Sequence[Any]) -> str:
    """The parameter marks of an IN list (the intake's reads and writes run on the driver's
    cursor, `driver_cursor`: they run for every visits event delivered)."""
    return ", ".join([mark] * len(values))


def facts(conn: Connection, visit_ids: Iterable[str]) -> dict[str, intake.VisitFacts]:
    """The stored facts of these visits (those the intake has seen)."""
    wanted = sorted(set(visit_ids))
    if not wanted:
        return {}
    cur, mark = driver_cursor(conn)
    cur.execute("SELECT visit_id, facts FROM intake_visit_facts "
                f"WHERE visit_id IN ({_marks(mark, wanted)})", wanted)
    return {visit_id: intake.facts_from(json.loads(text)) for visit_id, text in cur.fetchall()}


def _issued(conn: Connection, resident_ids: set[str]) -> set[str]:
    if not resident_ids:
        return set()
    wanted = sorted(resident_ids)
    cur, mark = driver_cursor(conn)
    cur.execute("SELECT resident_id FROM intake_issued_residents "
                f"WHERE resident_id IN ({_marks(mark, wanted)})", wanted)
    return {resident_id for (resident_id,) in cur.fetchall()}


def issued(engine: Engine, resident_id: str) -> bool:
    """Whether a visits event the intake has taken up named this resident id."""
    with engine.connect() as conn:
        return bool(_issued(conn, {resident_id}))


def head(engine: Engine) -> tuple[int, str | None]:
    """(position, hash) of the last visits record the intake took up ((0, None): none)."""
    with engine.connect() as conn:
        cur, mark = driver_cursor(conn)
        cur.execute("SELECT position, hash FROM projection_checkpoints "
                    f"WHERE projection = {mark} AND source = {mark}", (NAME, SOURCE))
        row = cur.fetchone()
    return (row[0], row[1]) if row is not None else (0, None)
