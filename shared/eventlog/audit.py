"""Auditing a log: the walk behind `EventLog.verify`, in constant memory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.eventlog import chain
from shared.eventlog.checkpoints import Checkpoint
from shared.eventlog.model import GENESIS_HASH, VerifyReport


def _names(record: str, position: int) -> bool:
    """Whether a stored record names `position` (the top-level key: the last `,"position":`,
    since every field after it in canonical order is a scalar)."""
    return record.startswith(f"{position},", record.rfind(',"position":') + 12)


class Audit:
    """The state of one verify() walk: what has been checked and the first failure."""

    def __init__(self, marks: dict[int, Checkpoint]) -> None:
        self.marks = marks
        self.expected, self.prev, self.checked = 1, GENESIS_HASH, 0
        self.seen_marks = self.last_good_mark = 0
        self.bad: tuple[int, str] | None = None

    def check_page(self, page: Sequence[tuple[Any, ...]]) -> bool:
        """Check a page of (position, record, prev_hash, hash) rows; False at the first failure.

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
        if not all(_names(r, p) for p, r in zip(positions, records, strict=True)):
            return False
        return all(self.marks[p].hash == hashes[p - first] for p in marked)

    def check(self, row: tuple[Any, ...]) -> bool:
        position, record, prev, hash_ = row
        if position != self.expected:
            return self._fail(self.expected, f"position {self.expected} is missing "
                              f"(found {position})")
        if prev != self.prev:
            return self._fail(position, "prev_hash does not match the previous record's hash")
        if chain.link(prev, record) != hash_:
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
        beyond = [p for p in self.marks if p >= self.expected]
        if beyond:
            self._fail(self.expected, f"log ends at {self.expected - 1} but a signed checkpoint "
                       f"names position {max(beyond)}: the tail was truncated")
        return self.report()
