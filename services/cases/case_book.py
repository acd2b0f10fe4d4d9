"""Every case as it stands, one row per case in the cases database: what the clock, the case
list and Open311 read.

It was a fold of the whole log kept in memory (two: the case index and Open311's), which
grew by 3.7 KB a case; the hour-long soak registers about 20,000 cases, a district's year, and
the cases service's memory grew with them. Here it is a projection of the service's own log
(the kernel's `Projector`, its checkpoint in the same transaction): a page of records is
folded by the same pure steps (`open311.RequestIndex`, over `case_state`) into the rows it
touches, and a read first takes up what was appended since, so a command's effect is in the
next list. Personal fields are withheld before the fold (`Record.plain`): the rows hold
nothing a list may not show.

A row keeps the case's state and Open311's instants as JSON (msgspec, typed by `Tracked`),
and beside it the columns a list filters on: unit, state, overdue, and `timed`, whether the
clock has anything to watch (a deadline running, or a parked case's review date).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import msgspec
from sqlalchemy import Boolean, Column, Connection, MetaData, String, Table, Text, func, select
from sqlalchemy.engine import Engine

from services.cases.case_state import CaseState
from services.cases.open311 import RequestIndex, Tracked
from shared.eventlog import EventLog, Record
from shared.kernel.projection import PagedProjection, Projector

NAME = "cases-book"
SOURCE = "cases"
PAGE = 2000
metadata = MetaData()
book = Table(
    "case_book", metadata,
    Column("case_id", String(200), primary_key=True),
    Column("unit_id", String(200), nullable=True, index=True),
    Column("state", String(40), nullable=False, index=True),
    Column("overdue", Boolean, nullable=False),
    Column("timed", Boolean, nullable=False, index=True),
    Column("facts", Text, nullable=False),  # the case's open311.Tracked as JSON
)


_encode = msgspec.json.Encoder().encode
_tracked = msgspec.json.Decoder(Tracked).decode


def _values(case: Tracked) -> dict[str, Any]:
    state = case.state
    return {"case_id": state.case_id, "unit_id": state.unit_id, "state": state.state,
            "overdue": state.overdue, "timed": state.watched, "facts": _encode(case).decode()}


class CaseBookView(PagedProjection):
    """The book as a projection of the cases log."""

    name = NAME
    sources: tuple[str, ...] = (SOURCE,)
    metadata = metadata

    def apply_page(self, conn: Connection, records: Sequence[Record]) -> None:
        """Fold the page into the cases it names, and write those back."""
        plain = [r._replace(data=data) for r in records if (data := r.plain()).get("case_id")]
        ids = sorted({r.data["case_id"] for r in plain})
        if not ids:
            return
        stored = {row.case_id: _tracked(row.facts) for row in conn.execute(
            select(book.c.case_id, book.c.facts).where(book.c.case_id.in_(ids)))}
        index = RequestIndex.holding(stored.values())
        for record in plain:
            index.apply(record)
        changed = [case for case in index if stored.get(case.state.case_id) != case]
        if changed:
            conn.execute(book.delete().where(
                book.c.case_id.in_([case.state.case_id for case in changed])))
            conn.execute(book.insert(), [_values(case) for case in changed])


class CaseBook:
    """The book of one running service, taken up to its log's head before each read."""

    def __init__(self) -> None:
        self.projector: Projector | None = None

    def current(self, log: EventLog) -> Reader:
        if self.projector is None:
            self.projector = Projector(CaseBookView(), log.engine)
        self.projector.catch_up(lambda _source, after, limit, _until: list(log.read(
            after, limit)), page=PAGE)
        return Reader(self.projector.engine)


class Reader:
    """Queries over the book as it stood when taken up."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def page(self, unit_id: str | None, state: str | None, overdue: bool | None,
             offset: int, size: int) -> tuple[list[CaseState], int]:
        """Cases in id order with these (given) properties: one page, and how many in all."""
        given = ((book.c.unit_id, unit_id), (book.c.state, state), (book.c.overdue, overdue))
        where = [column == value for column, value in given if value is not None]
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(book).where(*where)).scalar()
            rows = conn.execute(select(book.c.facts).where(*where).order_by(self._by_id())
                                .offset(offset).limit(size)).scalars().all()
        return [_tracked(facts).state for facts in rows], int(total or 0)

    def _by_id(self) -> Any:
        """Ids in code point order, as Python sorts them (PostgreSQL's default collation
        follows the locale, which orders "k-2" and "k10" otherwise)."""
        return book.c.case_id.collate("C") if self.engine.dialect.name == "postgresql" \
            else book.c.case_id

    def timed(self) -> Iterator[CaseState]:
        """The cases the clock may have something to say about, one at a time."""
        return (case.state for case in self._each(book.c.timed.is_(True)))

    def get(self, case_id: str) -> Tracked | None:
        with self.engine.connect() as conn:
            facts = conn.execute(select(book.c.facts).where(book.c.case_id == case_id)).scalar()
        return _tracked(facts) if facts is not None else None

    def __iter__(self) -> Iterator[Tracked]:
        return self._each(None)

    def _each(self, where: Any) -> Iterator[Tracked]:
        """Rows decoded as they are read (a page at a time), never all held at once."""
        query = select(book.c.facts).order_by(self._by_id())
        if where is not None:
            query = query.where(where)
        with self.engine.connect() as conn:
            for facts in conn.execution_options(yield_per=PAGE).execute(query).scalars():
                yield _tracked(facts)

