"""`grassroots chaos` in a bounded form: every fault for a few seconds under 2 clients, on a
platform of its own (own broker node, proxy, temp var/; own PostgreSQL for the postgres
fault); the must-holds are read from the JSON it prints.

It runs as an operator runs it, as its own process: the suite's threads (clients, proxy,
supervisor) are OS threads there, not this process's eventlet green threads. The checks
are shown to fail on a lost or doubled write, so a green run means the logs and views were
looked at, not that nothing was checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from shared.runtime import catalogue
from shared.runtime.config import ROOT
from shared.tools.chaos_checks import Logs
from shared.tools.chaos_faults import FAULTS
from shared.tools.chaos_load import Outcome

# libfaketime (the clock fault) is preloaded into the services of a run that steps the
# clock, so that fault runs apart from the broker faults, on PostgreSQL, with `duplicate`.
SQLITE = ["kill", "broker", "cut", "disk"]
POSTGRES = ["duplicate", "postgres", "clock"]


def test_the_two_runs_cover_every_fault() -> None:
    assert sorted(SQLITE + POSTGRES) == sorted(FAULTS)


@pytest.mark.parametrize("database, faults", [("sqlite", SQLITE), ("postgres", POSTGRES)])
def test_every_fault_loses_and_doubles_nothing_and_views_equal_a_rebuild(
        database: str, faults: list[str]) -> None:
    argv = ["--seconds", "2", "--clients", "2", "--database", database, "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "shared.tools.cli", "chaos", *argv,
         *(a for f in faults for a in ("--fault", f))],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    result = json.loads(done.stdout)
    assert [f["fault"] for f in result["faults"]] == faults
    said = "\n".join(line for line in done.stderr.splitlines()
                     if line.startswith(("chaos:", "  ")))  # the suite's own lines
    for fault in result["faults"]:
        assert fault["skipped"] is None, fault  # root, tmpfs and libfaketime are set up here
        assert fault["acked"] > 0, fault
        assert fault["lost"] == 0, fault
        assert fault["duplicates"] == 0, fault
        assert fault["views_equal"], fault
        assert fault["recover_s"] is not None, (fault, said)
        assert "500" not in fault["failed"], fault
    assert result["ok"] and done.returncode == 0, done.stderr[-2000:]


def test_a_short_soak_samples_every_service_and_loses_nothing() -> None:
    """The soak's CI form: 45 s at half the measured capacity, one fault (the first the
    seeded draw gives) in its third window. Too short to judge a trend, so flatness is the
    long run's to show (README); here every window must be sampled, for every service, and
    nothing lost, doubled or left unequal in the views."""
    done = subprocess.run(
        [sys.executable, "-m", "shared.tools.cli", "chaos", "--soak", "45", "--clients", "2",
         "--json"], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    result = json.loads(done.stdout)
    windows = result["windows"]
    assert len(windows) >= 4, windows
    assert [w["fault"] is not None for w in windows].count(True) == 1, windows
    assert result["capacity_s"] > 0 and result["acked"] > 0
    for window in windows:
        assert window["acked"] > 0 and window["p50_ms"] > 0, window
        assert set(window["rss_mb"]) == set(catalogue.names()), window
        assert all(mb > 0 for mb in window["rss_mb"].values()), window
    assert result["lost"] == 0 and result["duplicates"] == 0, result
    assert result["died"] == {}, result["died"]  # the fault (cut) killed nobody
    assert result["views_equal"], result["view_differences"]
    assert set(result["flat"]) >= {"p50_ms", "p99_ms", "view_lag"}


def _acked(position: int, visit_id: str) -> Outcome:
    return Outcome(0.0, 1.0, 201, 0.01, id=visit_id, position=position)


def test_the_checks_count_a_lost_and_a_doubled_write() -> None:
    logs = Logs("amqp://unused", r"chaos-x-\d+")
    logs.subjects["visits"] = {1: "visit-a", 2: "visit-b"}
    assert logs.lost("visits", [_acked(1, "a"), _acked(2, "b")]) == 0
    assert logs.lost("visits", [_acked(3, "c")]) == 1  # never appended
    assert logs.lost("visits", [_acked(2, "a")]) == 1  # the position holds another visit
    logs.marks = Counter({("visits", "visit.recorded", "chaos-x-1"): 1})
    assert logs.duplicates() == 0
    logs.marks[("visits", "visit.recorded", "chaos-x-2")] = 2
    assert logs.duplicates() == 1
