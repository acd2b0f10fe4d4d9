"""A command's reads in one query, its records answered from its own commit, and the fold it
decides with kept up to date incrementally: the same answers as reading the log, whoever
appended (another EventLog on the same database stands for another replica)."""

from __future__ import annotations

from typing import Any

from shared.eventlog import EventLog, NewEvent, Record
from shared.kernel.commands import MemoryFold, execute

ROSTER = ("unit.opened", "unit.closed")


def person(name: str, subject: str = "r-1") -> NewEvent:
    return NewEvent("resident.met", {"name": name, "note": "ok"}, subject=subject,
                    personal=("name",))


def opened(unit: str) -> NewEvent:
    return NewEvent("unit.opened", {"unit": unit})


def units(state: tuple[str, ...], record: Record) -> tuple[str, ...]:
    return (*state, record.data["unit"]) if record.type == "unit.opened" else state


def test_appended_records_are_the_records_a_reader_gets(log: EventLog) -> None:
    log.append("other", [opened("u-0")])
    mine = log.append_records("resident-1", [person("Ann"), opened("u-1")],
                              expected_version=0, command_id="c-1", actor="op")
    assert mine == list(log.read(after=1))
    assert [r.position for r in mine] == [2, 3]
    assert mine[0].data == {"name": "Ann", "note": "ok"}
    assert mine[0].plain() == {"name": None, "note": "ok"}
    again = log.append_records("resident-1", [person("Bea")], command_id="c-1")
    assert again == mine, "a retried command id answers with its original records"


def test_one_query_reads_stream_command_and_new_records_of_types(log: EventLog) -> None:
    log.append("unit-1", [opened("u-1")])
    log.append("visit-1", [NewEvent("visit.made", {"n": 1})], command_id="c-1")
    log.append("unit-2", [opened("u-2"), NewEvent("unit.closed", {"unit": "u-2"})])
    log.append("visit-1", [NewEvent("visit.made", {"n": 2})])
    seen = log.read_decision("visit-1", command_id="c-1", types=ROSTER, after=1)
    assert seen.history == log.read_stream("visit-1")
    assert [r.position for r in seen.done] == [2]
    assert [r.position for r in seen.since] == [3, 4]
    assert seen.complete
    fresh = log.read_decision("visit-9", command_id="c-9", types=ROSTER, after=4)
    assert (fresh.done, fresh.history, fresh.since) == ([], [], [])
    assert log.read_decision("visit-1").since == [], "no types: no records of types"


def test_the_fold_a_command_decides_with_follows_other_writers(
    log: EventLog, log_factory: Any,
) -> None:
    """Another replica registers units between commands: each decision sees them all, the
    same state a full fold of the log gives, and reads the log once to get it."""
    replica = log_factory()
    fold: MemoryFold[tuple[str, ...]] = MemoryFold((), units, types=ROSTER)
    seen: list[tuple[str, ...]] = []
    reads: list[int] = []
    real_read = log.read

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return real_read(*args, **kwargs)

    log.read = counted  # type: ignore[method-assign]

    def decide(history: list[Record]) -> list[NewEvent]:
        seen.append(fold.current(log))
        return [NewEvent("visit.made", {"n": len(history)})]

    for n in range(3):
        replica.append(f"unit-{n}", [opened(f"u-{n}")])
        log.append(f"other-{n}", [NewEvent("visit.made", {"n": n})])
        execute(log, "visit-1", decide, command_id=f"c-{n}", actor=None, fold=fold)
    assert seen == [("u-0",), ("u-0", "u-1"), ("u-0", "u-1", "u-2")]
    assert reads == [], "the fold came up to date in the command's own query"
    full = MemoryFold((), units, types=ROSTER).current(replica)
    assert fold.current(log) == full
    assert reads == [1], "outside a command, the fold asks the log"


def test_a_retried_command_is_not_decided_again(log: EventLog) -> None:
    calls: list[int] = []

    def decide(history: list[Record]) -> list[NewEvent]:
        calls.append(len(history))
        return [NewEvent("visit.made", {"n": len(history)})]

    first = execute(log, "visit-1", decide, command_id="c-1", actor=None)
    again = execute(log, "visit-1", decide, command_id="c-1", actor=None)
    assert again == first and calls == [0]


def test_a_fold_cut_at_a_page_is_finished_by_the_log(log: EventLog, monkeypatch: Any) -> None:
    """More new records than one page: the decision's fold reads the rest itself."""
    monkeypatch.setattr("shared.eventlog.log.PAGE", 2)
    for n in range(5):
        log.append(f"unit-{n}", [opened(f"u-{n}")])
    fold: MemoryFold[tuple[str, ...]] = MemoryFold((), units, types=ROSTER)
    seen: list[tuple[str, ...]] = []
    execute(log, "visit-1", lambda h: seen.append(fold.current(log)) or [], command_id=None,
            actor=None, fold=fold)
    assert seen == [("u-0", "u-1", "u-2", "u-3", "u-4")]
