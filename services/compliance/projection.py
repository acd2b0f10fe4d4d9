"""The compliance view's storage: the facts of `domain.py`, kept by log position.

Each stored fact (a unit, a cadre, a cadre's participation in a visit) is a row that holds
from the position of the event that made it true (`made_at`) until the position of the event
that ended it (`ended_at`, `OPEN` while it still holds). Nothing is ever overwritten but
`ended_at`, so the view *as of* a log position P is the rows with made_at <= P < ended_at,
and the live view is the same query at the head: as-of needs no refold.

`apply_page` loads only what a page of records touches, folds the page in memory with the
same pure steps the unit tests check (`shared.campaign.roster`, `domain.visit_step`), and
writes every version in a few statements. Reports read a month's facts back at a position and
run `domain.assess`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, TypedDict

import msgspec
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    Index,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    select,
)

from services.compliance import domain
from shared.campaign.periods import Membership
from shared.campaign.policy import Policy
from shared.campaign.roster import (
    CADRE_EVENT_TYPES,
    UNIT_EVENT_TYPES,
    Cadre,
    Leave,
    Unit,
    UnitDaySetting,
    evolve_cadre,
    evolve_unit,
)
from shared.eventlog import Record
from shared.eventlog.model import Lazy
from shared.eventlog.storage import placeholder
from shared.kernel.projection import PagedProjection, driver_cursor

OPEN = 2**62  # ended_at of a fact that still holds (later than any log position)
VERSION = 2  # 1: one mutable row per unit, cadre and participation, pending kept apart

metadata = MetaData()


def _versioned(name: str, *columns: Any) -> Table:
    return Table(
        name, metadata, *columns,
        Column("made_at", BigInteger, primary_key=True),
        Column("ended_at", BigInteger, nullable=False),
    )


units = _versioned(
    "compliance_units",
    Column("unit_id", String(100), primary_key=True),
    Column("facts", Text, nullable=False),  # JSON of roster.Unit
)
cadres = _versioned(
    "compliance_cadres",
    Column("cadre_id", String(100), primary_key=True),
    Column("facts", Text, nullable=False),  # JSON of roster.Cadre
)
participations = _versioned(
    "compliance_participations",
    Column("visit_id", String(100), primary_key=True),
    Column("cadre_id", String(100), primary_key=True),
    Column("date", Date, nullable=False),
    Column("backfilled", Boolean, nullable=False),
    Column("confirmed", Boolean, nullable=False),  # false: pending the cadre's confirmation
)
Index("ix_compliance_participations_date", participations.c.date, participations.c.ended_at)
Index("ix_compliance_units_ended", units.c.ended_at)
Index("ix_compliance_cadres_ended", cadres.c.ended_at)
RETIRED_TABLES = ("compliance_pending",)  # version 1's; dropped with it


# --- facts as JSON ------------------------------------------------------------------------------


def _d(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def _day(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def unit_to_json(u: Unit) -> str:
    return json.dumps([u.name, u.kind, [[_d(s.effective_from), s.unit_day] for s in u.unit_days]])


def unit_from_json(unit_id: str, text: str) -> Unit:
    name, kind, settings = json.loads(text)
    return Unit(unit_id, name, kind, tuple(UnitDaySetting(_day(s), d) for s, d in settings))


def cadre_to_json(c: Cadre) -> str:
    return json.dumps([
        c.name, c.role, list(c.liaison_unit_ids), _d(c.enrolled_from), _d(c.left_from),
        [[m.unit_id, _d(m.start), _d(m.end)] for m in c.memberships],
        [[_d(v.start), _d(v.end), v.reason] for v in c.leaves],
    ])


def cadre_from_json(cadre_id: str, text: str) -> Cadre:
    name, role, liaison, enrolled, left, memberships, leaves = json.loads(text)
    return Cadre(
        cadre_id, name, role, tuple(liaison), dt.date.fromisoformat(enrolled),
        tuple(Membership(u, dt.date.fromisoformat(s), _day(e)) for u, s, e in memberships),
        tuple(Leave(dt.date.fromisoformat(s), dt.date.fromisoformat(e), r)
              for s, e, r in leaves),
        _day(left),
    )


# --- versions of facts --------------------------------------------------------------------------


class Versions:
    """One table's facts while a page is folded: each key's value and since when it holds.

    `set` records a change at a position; `write` then ends the stored rows that changed and
    inserts every version the page made (those made and ended within the page included, so
    that every position in between can still be asked about).
    """

    def __init__(self, stored: dict[Any, tuple[int, Any]]) -> None:
        self.stored = stored  # key -> (made_at, value) of rows already in the table
        self.opened: dict[Any, tuple[int, Any]] = {}
        self.closed: list[tuple[Any, int, int, Any]] = []  # made and ended in this page
        self.ended: list[tuple[Any, int, int]] = []  # stored rows to end

    def get(self, key: Any) -> Any:
        held = self.opened.get(key) or self.stored.get(key)
        return held[1] if held else None

    def set(self, key: Any, value: Any, position: int) -> None:
        if value == self.get(key):
            return
        if key in self.opened:
            made, old = self.opened.pop(key)
            if made != position:
                self.closed.append((key, made, position, old))
        elif key in self.stored:
            made, _ = self.stored.pop(key)
            self.ended.append((key, made, position))
        if value is not None:
            self.opened[key] = (position, value)

    def add(self, items: Iterable[tuple[Any, Any]], position: int) -> None:
        """`set` of keys that usually hold no value yet (a fast path for those)."""
        opened, stored = self.opened, self.stored
        for key, value in items:
            if key in opened or key in stored:
                self.set(key, value, position)
            else:
                opened[key] = (position, value)

    def rows(self, to_row: Callable[[Any, Any], tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
        """Every version made in the page: the table's own columns, then made_at, ended_at."""
        for key, made, ended, value in self.closed:
            yield (*to_row(key, value), made, ended)
        for key, (made, value) in self.opened.items():
            yield (*to_row(key, value), made, OPEN)


def _chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _write(conn: Connection, table: Table, keys: tuple[str, ...], versions: Versions,
           to_row: Callable[[Any, Any], tuple[Any, ...]]) -> None:
    if versions.ended:
        key_of = (lambda k: (k,)) if len(keys) == 1 else (lambda k: k)
        where = and_(*(table.c[k] == bindparam(f"k_{k}") for k in keys),
                     table.c.made_at == bindparam("k_made"))
        conn.execute(table.update().where(where).values(ended_at=bindparam("k_ended")), [
            {**{f"k_{k}": v for k, v in zip(keys, key_of(key), strict=True)},
             "k_made": made, "k_ended": ended} for key, made, ended in versions.ended])
    rows = list(versions.rows(to_row))
    if rows:  # the DB-API's executemany: SQLAlchemy's per-row parameter handling costs more
        mark = placeholder(conn.dialect.name)
        names = [c.name for c in table.columns if c.name not in ("made_at", "ended_at")]
        columns = ", ".join(f'"{n}"' for n in (*names, "made_at", "ended_at"))
        conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({columns}) VALUES '
                             f'({", ".join([mark] * (len(names) + 2))})', rows)


def _load_one(conn: Connection, table: Table, key: str, ids: list[str],
              decode: Callable[[str, str], Any]) -> dict[Any, tuple[int, Any]]:
    found: dict[Any, tuple[int, Any]] = {}
    for chunk in _chunks(ids):
        for row in conn.execute(select(table.c[key], table.c.made_at, table.c.facts).where(
                table.c[key].in_(chunk), table.c.ended_at == OPEN)):
            found[row[0]] = (row[1], decode(row[0], row[2]))
    return found


def _load_participations(conn: Connection, visit_ids: list[str]
                         ) -> dict[Any, tuple[int, Any]]:
    p = participations.c
    found: dict[Any, tuple[int, Any]] = {}
    for chunk in _chunks(visit_ids):
        for row in conn.execute(select(p.visit_id, p.cadre_id, p.made_at, p.date, p.backfilled,
                                       p.confirmed).where(p.visit_id.in_(chunk),
                                                          p.ended_at == OPEN)):
            found[(row.visit_id, row.cadre_id)] = (
                row.made_at, (row.date.isoformat(), row.backfilled, row.confirmed))
    return found


class _Event(NamedTuple):
    """What the fold reads of a record (a `roster.Event`), its data decoded once."""

    type: str
    data: dict[str, Any]
    position: int


class _VisitData(TypedDict, total=False):
    """The fields of a visit event the rules read: the decoder makes a dict of these alone,
    skipping the diary, the resident and the rest; a field the event does not carry is
    absent."""

    visit_id: str
    date: str
    backfilled: bool
    cadre_ids: tuple[str, ...]
    pending_cadre_ids: tuple[str, ...]
    cadre_id: str


_DATA = Record._fields.index("data")
_decode_visit = msgspec.json.Decoder(_VisitData).decode
_UNIT_TYPES = frozenset(UNIT_EVENT_TYPES)
_CADRE_TYPES = frozenset(CADRE_EVENT_TYPES)
_VISIT_TYPES = frozenset(domain.VISIT_EVENT_TYPES)
_TYPES = _UNIT_TYPES | _CADRE_TYPES | _VISIT_TYPES


def _public(record: Record) -> dict[str, Any]:
    """What the fold reads of a record's data. A visit read from the log is decoded only for
    the fields the rules need, nothing personal decrypted (those fields are not among them):
    decoding and decrypting the rest was half a rebuild. Anything else is its `data`."""
    held = tuple.__getitem__(record, _DATA)
    if isinstance(held, Lazy) and record.type in _VISIT_TYPES:
        return _decode_visit(held.raw())
    return record.data


def _visits_of(stored: dict[Any, tuple[int, Any]]) -> dict[str, domain.VisitFacts]:
    rows = []
    for (visit_id, cadre_id), (_, (date, backfilled, confirmed)) in sorted(stored.items()):
        rows.append(domain.Participation(cadre_id, visit_id, dt.date.fromisoformat(date),
                                         backfilled, confirmed))
    return domain.visits_from_rows(rows)


def _shares(visit: domain.VisitFacts | None) -> dict[tuple[str, str], tuple[str, bool, bool]]:
    """A visit's participations as the table holds them: (visit, cadre) -> (ISO date,
    backfilled, confirmed)."""
    if visit is None:
        return {}
    date, backfilled, pending = visit.date.isoformat(), visit.backfilled, visit.pending
    return {(visit.visit_id, c): (date, backfilled, c not in pending) for c in visit.cadre_ids}


class ComplianceProjection(PagedProjection):
    """Folds the visits log into the facts the compliance rules need, kept by position."""

    name = "compliance"
    sources: tuple[str, ...] = ("visits",)
    metadata = metadata
    version = VERSION
    retired_tables = RETIRED_TABLES

    def apply_page(self, conn: Connection, records: Sequence[Record]) -> None:
        page = [(r.type, _public(r), r.position) for r in records if r.type in _TYPES]
        if not page:
            return
        unit_ids, cadre_ids, visit_ids, recorded = set(), set(), set(), set()
        for type_, data, _ in page:  # what the page touches, to load in one query per table
            if type_ in _VISIT_TYPES:
                visit_ids.add(data["visit_id"])
                if type_ == domain.VISIT_RECORDED:
                    recorded.add(data["visit_id"])
            elif type_ in _UNIT_TYPES:
                unit_ids.add(data["unit_id"])
            else:
                cadre_ids.add(data["cadre_id"])
        unit_v = Versions(_load_one(conn, units, "unit_id", sorted(unit_ids), unit_from_json))
        cadre_v = Versions(_load_one(conn, cadres, "cadre_id", sorted(cadre_ids),
                                     cadre_from_json))
        # A visit first recorded in this page has no stored rows: no need to look.
        share_v = Versions(_load_participations(conn, sorted(visit_ids - recorded)))
        visits: dict[str, domain.VisitFacts | None] = dict(_visits_of(share_v.stored))
        for type_, data, position in page:
            if type_ in _VISIT_TYPES:
                self._fold_visit(type_, data, position, share_v, visits)
            elif type_ in _UNIT_TYPES:
                key = data["unit_id"]
                event = _Event(type_, data, position)
                unit_v.set(key, evolve_unit(unit_v.get(key), event), position)
            else:
                key = data["cadre_id"]
                event = _Event(type_, data, position)
                cadre_v.set(key, evolve_cadre(cadre_v.get(key), event), position)
        _write(conn, units, ("unit_id",), unit_v, lambda k, u: (k, unit_to_json(u)))
        _write(conn, cadres, ("cadre_id",), cadre_v, lambda k, c: (k, cadre_to_json(c)))
        _write(conn, participations, ("visit_id", "cadre_id"), share_v, operator.add)

    @staticmethod
    def _fold_visit(type_: str, data: dict[str, Any], position: int, share_v: Versions,
                    visits: dict[str, domain.VisitFacts | None]) -> None:
        visit_id = data["visit_id"]
        before = visits.get(visit_id)
        after = visits[visit_id] = domain.visit_step(before, type_, data)
        old, new = _shares(before), _shares(after)
        if not old:  # the common case, a newly recorded visit
            share_v.add(new.items(), position)
            return
        for key in (*old, *(k for k in new if k not in old)):
            share_v.set(key, new.get(key), position)


def _units_at(conn: Connection, at: int) -> dict[str, Unit]:
    sql = 'SELECT unit_id, facts FROM compliance_units WHERE made_at <= {0} AND ended_at > {0}'
    return {r[0]: _unit(r[0], r[1]) for r in _driver_rows(conn, sql, at)}


def _cadres_at(conn: Connection, at: int) -> list[Cadre]:
    sql = 'SELECT cadre_id, facts FROM compliance_cadres WHERE made_at <= {0} AND ended_at > {0}'
    return [_cadre(r[0], r[1]) for r in _driver_rows(conn, sql, at)]


def _driver_rows(conn: Connection, sql: str, *values: Any) -> list[Any]:
    """Rows straight from the DB driver's cursor (`{0}`, `{1}`.. are its parameters), in the
    connection's transaction: thousands of rows through SQLAlchemy's result rows cost more
    than the query."""
    cursor, mark = driver_cursor(conn)
    order = [int(n) for n in _PARAMETER.findall(sql)]
    try:
        cursor.execute(_PARAMETER.sub(mark, sql), tuple(values[n] for n in order))
        return list(cursor.fetchall())
    finally:
        cursor.close()


_PARAMETER = re.compile(r"\{(\d+)\}")


# A stored version never changes, so its text decodes to the same facts every time: reports
# decode each version once. The text is the key (not the row's key and made_at), so databases
# holding the same positions (tests, as-of copies) never share an entry they should not.
_unit = functools.lru_cache(maxsize=4096)(unit_from_json)
_cadre = functools.lru_cache(maxsize=65536)(cadre_from_json)


def visit_days(conn: Connection, period: domain.Month, at: int
               ) -> dict[str, dict[dt.date, bool]]:
    """Per cadre, the dates of `period` with a confirmed participation holding at `at`, each
    with whether all of that day's visits were backfilled (what `domain.assess_days` takes).

    Grouped here rather than by SQL's GROUP BY, whose sort cost twice the query's read.
    """
    sql = ('SELECT cadre_id, CAST(date AS VARCHAR), backfilled FROM compliance_participations '
           'WHERE date >= {0} AND date <= {1} AND made_at <= {2} AND ended_at > {2} '
           'AND confirmed')
    days: dict[str, dict[dt.date, bool]] = {}
    dates = {str(d): d for d in period.days()}
    for cadre_id, text, backfilled in _driver_rows(conn, sql, period.first, period.last, at):
        held = days.get(cadre_id)
        if held is None:
            held = days[cadre_id] = {}
        day = dates[text[:10]]
        held[day] = held.get(day, True) and bool(backfilled)
    return days


def report(
    conn: Connection, month: str, policy: Policy, unit_id: str | None, at: int | None = None,
) -> dict[str, Any]:
    """The month's compliance report, as the view stands (or at log position `at`).

    Its three reads share one transaction, so a page folded meanwhile is seen by all of them
    or by none (the driver's cursor does not begin one by itself)."""
    at = OPEN - 1 if at is None else at
    period = domain.parse_month(month)
    with conn.begin() if not conn.in_transaction() else contextlib.nullcontext():
        units_, cadres_ = _units_at(conn, at), _cadres_at(conn, at)
        days = visit_days(conn, period, at)
    return domain.assess_days(period, units_, cadres_, days, policy, unit_id=unit_id)
