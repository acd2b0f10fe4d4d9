"""The case board's storage: each case's `domain.CaseFacts`, kept by log position.

A row is one version of a case's facts: true from the position of the event that made it
(`made_at`) until the position of the event that changed it (`ended_at`, `OPEN` while it
still holds). Only `ended_at` is ever updated, so the board *as of* a log position P is the
rows with made_at <= P < ended_at, and the live board is the same query at the head: as-of
is a query, not a refold (as in the compliance view).

`apply_page` loads the current version of every case a page touches in one query, folds the
page in memory with `domain.evolve` (the step the unit tests check), and writes every version
the page made (those made and ended within it too, so every position can be asked about) in
two statements. The projector commits them with its checkpoint. Registration instants are
stored in UTC: the month a case counts in is the policy's business, at query time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    select,
)

from services.caseboard import domain
from shared.campaign.policy import Policy
from shared.eventlog import Record
from shared.kernel.projection import PagedProjection

OPEN = 2**62  # ended_at of a version that still holds (later than any log position)
VERSION = 1
LOAD_CHUNK = 500  # ids per IN (...) when loading a page's cases

metadata = MetaData()
cases = Table(
    "caseboard_cases", metadata,
    Column("case_id", String(100), primary_key=True),
    Column("made_at", BigInteger, primary_key=True),
    Column("ended_at", BigInteger, nullable=False),
    Column("origin", String(20), nullable=False),
    Column("registered_at", String(26), nullable=False),  # UTC, "YYYY-MM-DD HH:MM:SS.ffffff"
    Column("unit_id", String(100), nullable=True),
    Column("stage", String(20), nullable=False),
    Column("accepted_on_time", Boolean, nullable=False),
    Column("overdue", Boolean, nullable=False),
    Column("chased", Boolean, nullable=False),
    Column("resolved_once", Boolean, nullable=False),
    Column("reopened", Boolean, nullable=False),
    Column("outcome", String(20), nullable=True),
    Column("satisfied", Integer, nullable=False),
    Column("basically_satisfied", Integer, nullable=False),
    Column("unsatisfied", Integer, nullable=False),
)
Index("ix_caseboard_cases_month", cases.c.registered_at, cases.c.ended_at)
FACTS = tuple(f.name for f in dataclasses.fields(domain.CaseFacts))


def _stamp(moment: dt.datetime) -> str:
    """A fixed-width UTC text that sorts as the instants do, on every database."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _to_row(facts: domain.CaseFacts, made: int, ended: int) -> dict[str, Any]:
    row = {name: getattr(facts, name) for name in FACTS}
    return {**row, "registered_at": _stamp(facts.registered_at), "made_at": made,
            "ended_at": ended}


def _from_row(row: Any) -> domain.CaseFacts:
    values = {name: row[name] for name in FACTS}
    values["registered_at"] = dt.datetime.fromisoformat(row["registered_at"]).replace(
        tzinfo=dt.UTC)
    return domain.CaseFacts(**values)


class _Event(NamedTuple):
    """What the fold reads of a record: its data with personal fields withheld, never
    decrypted (the board reads none of them)."""

    type: str
    data: dict[str, Any]
    occurred_at: dt.datetime
    position: int


def _current(conn: Connection, case_ids: list[str]) -> dict[str, tuple[int, domain.CaseFacts]]:
    """The version holding now of each case named: case id -> (made_at, facts)."""
    found: dict[str, tuple[int, domain.CaseFacts]] = {}
    for start in range(0, len(case_ids), LOAD_CHUNK):
        chunk = case_ids[start:start + LOAD_CHUNK]
        query = select(cases).where(cases.c.case_id.in_(chunk), cases.c.ended_at == OPEN)
        for row in conn.execute(query).mappings():
            found[row["case_id"]] = (row["made_at"], _from_row(row))
    return found


class CaseBoardProjection(PagedProjection):
    """Folds the cases log into each case's facts, kept by position."""

    name = "caseboard"
    sources: tuple[str, ...] = ("cases",)
    metadata = metadata
    version = VERSION

    def apply_page(self, conn: Connection, records: Sequence[Record]) -> None:
        page = [_Event(r.type, r.plain(), r.occurred_at, r.position)
                for r in records if r.type in domain.EVENT_TYPES]
        if not page:
            return
        stored = _current(conn, sorted({event.data["case_id"] for event in page}))
        current = dict(stored)  # case id -> (made_at, facts) of its latest version
        ended: list[dict[str, Any]] = []  # stored versions the page ended
        versions: list[dict[str, Any]] = []  # versions made and ended within the page
        for event in page:
            case_id = event.data["case_id"]
            made, before = current.get(case_id, (0, None))
            after = domain.evolve(before, event)
            if after is None or after == before:
                continue
            if before is not None:
                if stored.get(case_id, (None,))[0] == made:
                    ended.append({"k_case": case_id, "k_made": made, "k_ended": event.position})
                else:
                    versions.append(_to_row(before, made, event.position))
            current[case_id] = (event.position, after)
        versions += [_to_row(facts, made, OPEN) for case_id, (made, facts) in current.items()
                     if stored.get(case_id, (None,))[0] != made]
        if ended:
            c = cases.c
            where = and_(c.case_id == bindparam("k_case"), c.made_at == bindparam("k_made"))
            conn.execute(cases.update().where(where).values(ended_at=bindparam("k_ended")),
                         ended)
        if versions:
            conn.execute(cases.insert(), versions)


def _month_cases(conn: Connection, month: str, policy: Policy, unit_id: str | None,
                 at: int) -> Iterator[domain.CaseFacts]:
    start, end = domain.month_bounds(month, policy)
    c = cases.c
    query = select(cases).where(c.registered_at >= _stamp(start), c.registered_at < _stamp(end),
                                c.made_at <= at, c.ended_at > at)
    if unit_id is not None:
        query = query.where(c.unit_id == unit_id)
    for row in conn.execute(query).mappings():
        yield _from_row(row)


def report(conn: Connection, month: str, policy: Policy, unit_id: str | None,
           at: int | None = None) -> dict[str, Any]:
    """The month's case board, as the view stands (or at log position `at`)."""
    at = OPEN - 1 if at is None else at
    return domain.board(month, _month_cases(conn, month, policy, unit_id, at), policy,
                        unit_id=unit_id)
