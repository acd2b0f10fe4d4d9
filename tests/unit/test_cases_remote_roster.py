"""The cases service's roster, folded from the visits log: fed by the intake's pages, it asks
the visits log only for what it has not been fed."""

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
    def __init__(self, log: EventLog) -> None:
        self.fetch, self.calls = log_fetch({"visits": log}), list[int]()

    def __call__(self, source: str, after: int, limit: int,
                 until: dt.datetime | None) -> Sequence[Record]:
        self.calls.append(after)
        return self.fetch(source, after, limit, until)


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
    assert reads.calls == [0]  # one short page: the head
    assert roster.current(reads) is roster.roster and reads.calls == [0, 3]  # head: asked
