"""Concurrent writer processes against PostgreSQL: readers see no gap, streams no lost update.

Each writer is its own OS process (its own connections), started together through a go-file so
that they really overlap; the reader tails the log by position in this process meanwhile.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

import shared.eventlog.log as log_module
from shared.eventlog import EventLog

REPO = Path(__file__).resolve().parents[2]

PRELUDE = """
import json, os, random, sys, time
sys.path.insert(0, {repo!r})
from shared.eventlog import ConcurrencyError, EventLog, NewEvent
url, me, go, open_first = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[5] == "1"
log = EventLog.open(url, service="visits") if open_first else None
open(go + ".ready-" + str(me), "w").close()
while not os.path.exists(go):
    time.sleep(0.002)
log = log or EventLog.open(url, service="visits")
"""

WRITER = """
n, sizes, written, i = int(sys.argv[4]), [1, 1, 4, 1, 7, 2], 0, 0
while written < n:
    size = min(sizes[i % len(sizes)], n - written)
    stream = f"writer-{me}-{i % 3}"
    log.append(stream, [NewEvent("tick.made", {"writer": me, "seq": written + j})
                        for j in range(size)])
    written, i = written + size, i + 1
print(json.dumps({"written": written}))
"""

RACER = """
wins, losses, rng = [], [], random.Random(me)
want = int(sys.argv[4])
while len(wins) < want:
    seen = log.stream_version("shared")
    time.sleep(rng.random() * 0.002)  # widen the window between reading and writing
    try:
        log.append("shared", [NewEvent("tick.made", {"writer": me})], expected_version=seen)
    except ConcurrencyError as err:
        losses.append([err.expected, err.actual, str(err)])
    else:
        wins.append(seen + 1)
print(json.dumps({"wins": wins, "losses": losses}))
"""


def spawn(
    body: str,
    url: str,
    count: int,
    n: int,
    go: Path,
    *,
    open_first: bool = True,
) -> list[subprocess.Popen]:
    """`count` processes running `body`; they start together once `go` exists, having opened
    the log before (the default) or opening it then."""
    script = textwrap.dedent(PRELUDE.format(repo=str(REPO))) + textwrap.dedent(body)
    return [
        subprocess.Popen(
            [sys.executable, "-c", script, url, str(me), str(go), str(n), str(int(open_first))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for me in range(count)
    ]


def start(procs: list[subprocess.Popen], go: Path) -> None:
    """Once every process is ready, let them all go at the same moment."""
    deadline = time.monotonic() + 60
    while len(list(go.parent.glob(f"{go.name}.ready-*"))) < len(procs):
        assert all(p.poll() is None for p in procs), results(procs)
        assert time.monotonic() < deadline, "writers did not get ready"
        time.sleep(0.01)
    go.touch()


def results(procs: list[subprocess.Popen]) -> list[dict]:
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        out.append(json.loads(stdout))
    return out


@pytest.fixture
def pg_log(pg_url):
    log = EventLog.open(pg_url, service="visits")  # creates the schema before the writers start
    yield log
    log.close()


def test_a_tailing_reader_sees_every_position_once_in_order(pg_url, pg_log, tmp_path, monkeypatch):
    monkeypatch.setattr(log_module, "PAGE", 16)  # pages end mid-batch, and often
    writers, per_writer = 4, 150
    go = tmp_path / "go"
    procs = spawn(WRITER, pg_url, writers, per_writer, go)
    start(procs, go)
    seen: list[int] = []
    polls_with_news = 0
    deadline = time.monotonic() + 120
    while True:
        running = any(p.poll() is None for p in procs)  # before reading: no race at the end
        before = len(seen)
        for record in pg_log.read(after=seen[-1] if seen else 0):
            assert record.position == (seen[-1] if seen else 0) + 1, "gap or reorder"
            seen.append(record.position)
        polls_with_news += len(seen) > before
        if not running:
            break
        assert time.monotonic() < deadline, "writers did not finish"
    written = sum(r["written"] for r in results(procs))
    assert written == writers * per_writer
    assert seen == list(range(1, written + 1))
    assert polls_with_news > 3, "the reader should have tailed while the writers wrote"
    by_writer = Counter(r.data["writer"] for r in pg_log.read())
    assert by_writer == {w: per_writer for w in range(writers)}
    for w in range(writers):
        for s in range(3):
            versions = [r.version for r in pg_log.read_stream(f"writer-{w}-{s}")]
            assert versions == list(range(1, len(versions) + 1))
    assert pg_log.verify().ok


def test_racing_writers_on_one_stream_one_wins_each_version(pg_url, pg_log, tmp_path):
    racers, wins_each = 4, 15
    go = tmp_path / "go"
    procs = spawn(RACER, pg_url, racers, wins_each, go)
    start(procs, go)
    outcomes = results(procs)
    wins = [v for o in outcomes for v in o["wins"]]
    losses = [loss for o in outcomes for loss in o["losses"]]
    total = racers * wins_each
    assert sorted(wins) == list(range(1, total + 1)), "exactly one winner per version"
    assert losses, f"racing writers should have collided: {outcomes}"
    for expected, actual, message in losses:
        assert actual > expected
        assert f"expected version {expected}, actual {actual}" in message
    records = pg_log.read_stream("shared")
    assert [r.version for r in records] == list(range(1, total + 1))
    assert [r.position for r in records] == list(range(1, total + 1))
    assert pg_log.verify().ok


def test_writers_opening_a_fresh_database_together_all_succeed(pg_url, tmp_path):
    """The first open creates the schema; several processes may do it at once."""
    go = tmp_path / "go"
    procs = spawn(WRITER, pg_url, 6, 5, go, open_first=False)  # all open() at once
    start(procs, go)
    assert [r["written"] for r in results(procs)] == [5] * 6
    log = EventLog.open(pg_url, service="visits")
    try:
        assert log.last_position() == 30 and log.verify().ok
    finally:
        log.close()
