"""Reading only some event types: chosen by the database, paged like any read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from shared.eventlog import NewEvent
from shared.eventlog import log as log_module
from shared.eventlog.storage import TYPE_INDEX


@pytest.fixture
def mixed(log, monkeypatch):
    """Twelve records of three types, read in pages of two so paging is exercised."""
    monkeypatch.setattr(log_module, "PAGE", 2)
    kinds = ["visit.recorded", "unit.opened", "visit.recorded", "cadre.enrolled"] * 3
    for n, kind in enumerate(kinds, start=1):
        log.append(f"s-{n % 3}", [NewEvent(kind, {"n": n})])
    return log


def test_types_keeps_only_those_types_in_log_order(mixed):
    roster = list(mixed.read(types=("unit.opened", "cadre.enrolled")))
    assert [r.position for r in roster] == [2, 4, 6, 8, 10, 12]
    assert [r.data["n"] for r in roster] == [2, 4, 6, 8, 10, 12]
    everything = {r.position: r for r in mixed.read()}
    assert roster == [everything[r.position] for r in roster], "the same records as read()"


@pytest.mark.parametrize(
    ("after", "limit", "expected"),
    [(0, None, [2, 6, 10]), (2, None, [6, 10]), (0, 2, [2, 6]), (5, 1, [6]), (10, None, []),
     (0, 0, [])],
)
def test_types_pages_with_after_and_limit(mixed, after, limit, expected):
    records = mixed.read(after=after, limit=limit, types=["unit.opened"])
    assert [r.position for r in records] == expected


def test_no_types_reads_nothing_and_unknown_types_read_nothing(mixed):
    assert list(mixed.read(types=())) == []
    assert list(mixed.read(types=("nothing.here",))) == []


def test_read_until_with_types_is_the_typed_prefix(mixed):
    everything = list(mixed.read())
    instant = everything[6].recorded_at  # position 7
    typed = list(mixed.read_until(instant, types=("cadre.enrolled",)))
    assert [r.position for r in typed] == [
        r.position for r in everything if r.type == "cadre.enrolled" and r.recorded_at <= instant
    ]
    assert list(mixed.read_until(datetime(2000, 1, 1, tzinfo=UTC), types=("unit.opened",))) == []


def test_a_log_made_before_the_type_index_gets_it_on_open(log, log_factory, raw):
    raw.run(f"DROP INDEX {TYPE_INDEX}")
    log_factory()
    indexes = {ix["name"] for ix in sa.inspect(raw.engine).get_indexes("event_log")}
    assert TYPE_INDEX in indexes
