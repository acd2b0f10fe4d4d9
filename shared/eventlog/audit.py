"""Auditing a log: the walk behind `EventLog.verify`, in constant memory.

Verify works on raw rows, never on records: each row's text comes from the database as its
UTF-8 bytes (what is hashed) and is checked where it lies, so a record costs about its
SHA-256 and the database's read of it.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from contextlib import closing
from itertools import repeat
from operator import add
from typing import Any, NamedTuple

from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from shared.eventlog import chain
from shared.eventlog.checkpoints import Checkpoint
from shared.eventlog.model import GENESIS_HASH, VerifyReport
from shared.eventlog.storage import make_engine, placeholder

# The top-level key is the last `,"position":` of a record, since every field after it in
# canonical order is a scalar (a string cannot hold an unescaped quote).
_KEY = b',"position":'
_END = 2**62  # beyond any position


def _names(record: bytes, position: int) -> bool:
    """Whether a stored record names `position` as its top-level key."""
    return record.startswith(b"%d," % position, record.rfind(_KEY) + len(_KEY))


def _all_name(records: Sequence[bytes], positions: Sequence[int]) -> bool:
    """`_names` over a page, looped in C."""
    starts = map(add, map(bytes.rfind, records, repeat(_KEY)), repeat(len(_KEY)))
    return all(map(bytes.startswith, records, map(b"%d,".__mod__, positions), starts))


def raw_pages(engine: Engine, size: int, after: int = 0, last: int = _END,
              ) -> Generator[list[tuple[Any, ...]], None, None]:
    """The log (or its positions after `after` up to `last`) as pages of (position, record
    bytes, prev_hash, hash) rows, in order.

    SQLite hands the text over undecoded (`CAST ... AS BLOB`), so it is neither decoded into
    a string nor encoded back for hashing; PostgreSQL's text is encoded here. One connection
    serves the whole walk (a pool checkout per page cost a tenth of it), each page in its own
    read transaction, so a long walk never holds back the log's checkpoints; a page is let go
    before the next is fetched (see `log.PAGE`).
    """
    dialect = engine.dialect.name
    record = "CAST(record AS BLOB)" if dialect == "sqlite" else "record"
    mark = placeholder(dialect)
    sql = (f"SELECT position, {record}, prev_hash, hash FROM event_log WHERE position > "
           f"{mark} AND position <= {mark} ORDER BY position LIMIT {mark}")
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        while True:
            cursor.execute(sql, (after, last, size))
            page = list(cursor.fetchall())
            raw.commit()
            if dialect != "sqlite":
                page = [(p, r.encode(), prev, h) for p, r, prev, h in page]
            count, after = len(page), page[-1][0] if page else after
            yield page
            del page
            if count < size:
                return
    finally:
        raw.close()


class Audit:
    """The state of one verify() walk: what has been checked and the first failure.

    A walk may start further along (`first`, trusting `prev` as the hash before it): a
    part of a parallel walk, whose caller checks that the parts join up.
    """

    def __init__(self, marks: dict[int, Checkpoint], first: int = 1,
                 prev: str = GENESIS_HASH) -> None:
        self.marks = marks
        self.expected, self.prev, self.checked = first, prev, 0
        self.seen_marks = self.last_good_mark = 0
        self.bad: tuple[int, str] | None = None

    def check_page(self, page: Sequence[tuple[Any, ...]]) -> bool:
        """Check a page of (position, record bytes, prev_hash, hash) rows; False at the first
        failure.

        A sound page is checked in bulk (list comparisons and one comprehension of hashes);
        only a page that fails is walked row by row, to name the first bad position and why.
        """
        if not page:
            return True
        first, last = page[0][0], page[-1][0]
        marked = [p for p in self.marks if first <= p <= last]
        if not self._sound(page, marked):
            return all(self.check(row) for row in page)
        if marked:
            self.seen_marks += len(marked)
            self.last_good_mark = max(self.last_good_mark, *marked)
        self.prev, self.expected = page[-1][3], last + 1
        self.checked += len(page)
        return True

    def _sound(self, page: Sequence[tuple[Any, ...]], marked: list[int]) -> bool:
        positions, records, prevs, hashes = zip(*page, strict=True)
        first = self.expected
        if positions != tuple(range(first, first + len(page))):
            return False
        if prevs[0] != self.prev or prevs[1:] != hashes[:-1]:
            return False
        if chain.links(prevs, records) != list(hashes):
            return False
        if not _all_name(records, positions):
            return False
        return all(self.marks[p].hash == hashes[p - first] for p in marked)

    def check(self, row: tuple[Any, ...]) -> bool:
        position, record, prev, hash_ = row
        if position != self.expected:
            return self._fail(self.expected, f"position {self.expected} is missing "
                              f"(found {position})")
        if prev != self.prev:
            return self._fail(position, "prev_hash does not match the previous record's hash")
        if chain.links([prev], [record]) != [hash_]:
            return self._fail(position, "hash does not match the record's contents")
        if not _names(record, position):
            return self._fail(position, "the record names another position")
        mark = self.marks.get(position)
        if mark is not None:
            if mark.hash != hash_:
                return self._fail(position, f"chain differs from the signed checkpoint at "
                                  f"{position}: records {self.last_good_mark + 1}..{position} "
                                  "were rewritten")
            self.seen_marks, self.last_good_mark = self.seen_marks + 1, position
        self.prev, self.expected, self.checked = hash_, self.expected + 1, self.checked + 1
        return True

    def _fail(self, position: int, reason: str) -> bool:
        self.bad = (position, reason)
        return False

    def report(self) -> VerifyReport:
        position, reason = self.bad or (None, None)
        return VerifyReport(self.bad is None, self.checked, self.expected - 1, self.prev,
                            position, reason, self.seen_marks)

    def finish(self) -> VerifyReport:
        """The report of a walk that reached the log's end (or stopped at a failure)."""
        if self.bad is not None:
            return self.report()
        beyond = [p for p in self.marks if p >= self.expected]
        if beyond:
            self._fail(self.expected, f"log ends at {self.expected - 1} but a signed checkpoint "
                       f"names position {max(beyond)}: the tail was truncated")
        return self.report()


def walk(engine: Engine, audit: Audit, page_size: int, last: int = _END) -> Audit:
    """Check the log's pages from `audit`'s next position up to `last`, in constant memory;
    stops at the first failure (`audit.bad`)."""
    with closing(raw_pages(engine, page_size, audit.expected - 1, last)) as pages:
        for page in pages:
            if not audit.check_page(page):
                break
            del page  # before the next fetch (see `log.PAGE`)
    return audit


class Part(NamedTuple):
    """What one part of a parallel walk found: the hash it started from (`prev`), whether
    its rows all checked out, and the hash of its last row (`head`)."""

    prev: str
    ok: bool
    head: str
    checked: int
    marks_seen: int


def walk_part(url: str, marks: dict[int, Checkpoint], first: int, last: int,
              page_size: int) -> Part:
    """One part of a parallel walk, on a connection of its own (run in a worker process):
    positions `first`..`last`, starting from the prev_hash row `first` holds."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        with closing(raw_pages(engine, 1, first - 1, first)) as one:
            row = next(one, [])
        if not row:
            return Part("", False, "", 0, 0)
        prev = row[0][2]
        audit = walk(engine, Audit(marks, first, prev), page_size, last)
    finally:
        engine.dispose()
    ok = audit.bad is None and audit.expected == last + 1
    return Part(prev, ok, audit.prev, audit.checked, audit.seen_marks)
