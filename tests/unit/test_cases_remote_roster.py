"""The cases service's roster, folded from the visits log: fed by the intake's pages, it asks
the visits log only for what it has not been fed, and a cold start reads only the roster's
events up to the head."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from services.cases.service import RemoteRoster
from shared.eventlog import EventLog, NewEvent, Record
from shared.runtime.providers import log_fetch


def visits_log(tmp_path: Path) -> EventLog:
    log = EventLog.open(f"sqlite:///{tmp_path / 'visits.db'}", service="visits")
    log.append("unit-u1", [NewEvent("unit.registered", {"unit_id": "u1", "name": "Water Bureau",
                                                        "kind": "bureau"})])
    log.append("visit-v1", [NewEvent("visit.recorded", {"visit_id": "v1"})])
    log.append("unit-u2", [NewEvent("unit.registered", {"unit_id": "u2", "name": "Roads Office",
                                                        "kind": "bureau"})])
    return log


class Reads:
    """The visits service's `read_log` and `status` as RemoteLogs asks them, each call noted:
    (after, how many records) for a page of every type, ("types", after, n), ("head",)."""

    def __init__(self, log: EventLog) -> None:
        self.log, self.fetch, self.calls = log, log_fetch({"visits": log}), list[tuple]()

    def __call__(self, source: str, after: int, limit: int,
                 until: dt.datetime | None) -> Sequence[Record]:
        page = self.fetch(source, after, limit, until)
        self.calls.append((after, len(page)))
        return page

    def head(self, source: str) -> int:
        self.calls.append(("head",))
        return self.log.last_position()

    def of_types(self, source: str, after: int, limit: int,
                 types: Sequence[str]) -> Sequence[Record]:
        page = list(self.log.read(after, limit, types=types))
        self.calls.append(("types", after, len(page)))
        return page


def test_fed_pages_spare_the_read_and_a_gap_is_read(tmp_path) -> None:
    log = visits_log(tmp_path)
    records = list(log.read())
    roster, reads = RemoteRoster(), Reads(log)
    roster.feed(records[:2])
    assert set(roster.current(reads, upto=2).units) == {"u1"} and reads.calls == []
    roster.feed(records[:2])  # fed again (two green threads): nothing applied twice
    assert roster.position == 2
    roster.feed(records[2:])
    assert set(roster.current(reads, upto=3).units) == {"u1", "u2"} and reads.calls == []

    fresh = RemoteRoster()
    fresh.feed(records[2:])  # a gap: nothing folded, the log is read instead
    assert fresh.position == 0
    assert set(fresh.current(reads, upto=3).units) == {"u1", "u2"}
    # a cold start: the head, the roster's two events, then every record after the head
    assert reads.calls == [("head",), ("types", 0, 2), (3, 0)]
    reads.calls.clear()
    assert roster.current(reads) is roster.roster and reads.calls == [(3, 0)]  # head: asked


def test_a_cold_start_reads_no_visit_and_goes_on_from_the_head(tmp_path) -> None:
    log = visits_log(tmp_path)
    for n in range(2, 40):
        log.append(f"visit-v{n}", [NewEvent("visit.recorded", {"visit_id": f"v{n}"})])
    reads, roster = Reads(log), RemoteRoster()
    assert set(roster.current(reads).units) == {"u1", "u2"}
    assert reads.calls == [("head",), ("types", 0, 2), (41, 0)]
    log.append("unit-u3", [NewEvent("unit.registered", {"unit_id": "u3", "name": "Parks",
                                                        "kind": "bureau"})])
    reads.calls.clear()
    assert set(roster.current(reads).units) == {"u1", "u2", "u3"}
    assert reads.calls == [(41, 1)] and roster.position == 42


def test_an_empty_visits_log_is_cold_started_once(tmp_path) -> None:
    log = EventLog.open(f"sqlite:///{tmp_path / 'visits.db'}", service="visits")
    reads, roster = Reads(log), RemoteRoster()
    roster.current(reads)
    roster.current(reads)
    assert reads.calls == [("head",), ("types", 0, 0), (0, 0), (0, 0)]
