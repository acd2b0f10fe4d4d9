"""`grassroots bench district`: the data set is a realistic district, built once through the
service layer and reused; the bench prints its figures as JSON (figures are not asserted)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections import Counter

import pytest

from shared.campaign.roster import ROSTER_EVENT_TYPES, Roster
from shared.eventlog import EventLog
from shared.kernel.commands import MemoryFold
from shared.tools import district

START = dt.date(2025, 1, 1)
FIGURES = {"service_commands_s", "append_concurrent_ev_s", "append_single_ev_s",
           "sqlite_floor_append_single_ev_s", "append_concurrent_vs_sqlite_floor", "read_ev_s",
           "verify_ev_s", "roster_ready_s", "roster_ready_all_types_s", "rebuild_ev_s",
           "report_ms", "as_of_report_ms", "append_concurrent_os_threads_ev_s",
           "append_single_os_threads_ev_s", "append_concurrent_os_threads_vs_sqlite_floor",
           "verify_one_process_ev_s", "verify_floor_ev_s"}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """120 cadres, two months."""
    path = district.cached_path(tmp_path_factory.mktemp("bench"), 120, 2, 3)
    built = district.build(path, 120, 2, 3, START)
    log = EventLog.open(f"sqlite:///{path}", service="visits")
    yield path, built, log
    log.close()


def test_the_district_is_built_through_the_service_layer_without_a_refusal(small):
    path, built, log = small
    assert built["refused"] == 0 and built["commands"] > 600
    types = Counter(r.type for r in log.read())
    assert types["unit.registered"] == len(district.units(120)) == 12
    assert types["cadre.enrolled"] == 120
    assert types["visit.recorded"] > 2 * 120 * 2 * 0.9, "two to three visits a cadre a month"
    for kind in ("cadre.leave_granted", "cadre.transferred", "visit.corrected",
                 "visit.retracted"):
        assert types[kind], kind
    assert sum(types.values()) == log.last_position()
    assert log.verify().ok
    visits = [r for r in log.read(types=("visit.recorded",)) if r.personal]
    assert len(visits) > types["visit.recorded"] / 2, "most visits name a resident"
    residents = Counter(r.subject for r in visits)
    assert max(residents.values()) > 1, "some residents are visited again"
    name = visits[0].data["target"]["resident"]["name"]
    text = " ".join(row[0] for row in sqlite3.connect(path).execute(
        "SELECT record FROM event_log WHERE position <= ?", (visits[0].position,)))
    assert name and name not in text, "names are encrypted at rest"


def test_with_keys_apart_new_residents_get_spares_and_returning_ones_keep_them(tmp_path):
    """As the visits service runs (keys in a database of their own): the plan's new
    residents are given spare ids, its returning residents are renamed to match."""
    log = EventLog.open(f"sqlite:///{tmp_path / 'log.db'}", service="visits",
                        keys_url=f"sqlite:///{tmp_path / 'keys.db'}")
    try:
        run = district.decider(log, MemoryFold(Roster(), Roster.apply, types=ROSTER_EVENT_TYPES))
        plan = list(district.requests(60, 1, 5, START))
        assert sum(run(request, None) for request in plan) == 0
        planned = {r.ids["fresh_resident_id"] for r in plan if "fresh_resident_id" in r.ids}
        visits = [r for r in log.read(types=("visit.recorded",)) if r.personal]
        residents = Counter(r.subject for r in visits)
        assert len(residents) == len(planned) and not planned & residents.keys()
        assert max(residents.values()) > 1, "returning residents kept their (spare) ids"
        assert all(log.keys.keys(residents).values())
    finally:
        log.close()


def test_a_larger_district_has_more_units_and_the_plan_is_reproducible():
    assert len(district.units(5000)) == 100
    first = list(district.requests(60, 1, 5, START))
    assert first == list(district.requests(60, 1, 5, START))
    assert first != list(district.requests(60, 1, 6, START))


def test_bench_district_prints_json_and_reuses_the_built_log(tmp_path, capsys):
    from shared.tools.cli import main

    argv = ["bench", "district", "--quick", "--cache", str(tmp_path)]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    first = json.loads(out)
    assert first.keys() >= FIGURES | {"targets_met", "records"}
    assert (first["cadres"], first["months"]) == (200, 2)
    assert first["built"]["refused"] == 0 and first["service_commands_refused"] == 0
    assert all(first[k] > 0 for k in FIGURES)
    assert "service_commands_s" in err
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["built"] == {"reused": 1} and again["records"] == first["records"]
    assert [p.name for p in tmp_path.iterdir()] == [district.cached_path(
        tmp_path, 200, 2, 7).name], "one file, nothing partial left"
