"""Group commit (issue #8, item 8): concurrent appends share a durable commit, each is answered
only after it, and one that fails does so alone. Threads here are eventlet's green threads
(the root conftest monkey-patches), as in the services."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.eventlog import ConcurrencyError, EventLog, NewEvent

REPO = Path(__file__).resolve().parents[2]


def ev(writer: int, seq: int, text: str = "ok") -> NewEvent:
    return NewEvent("tick.made", {"writer": writer, "seq": seq, "text": text})


def hold_first_commit(log: EventLog, queued: int) -> list[int]:
    """Make the first commit wait until `queued` more appends are queued behind it, so they
    share the next commit for certain; returns the sizes of the commits made."""
    sizes: list[int] = []
    commit = log._commit

    def held(batch: list[Any]) -> None:
        sizes.append(len(batch))
        deadline = time.monotonic() + 30
        while len(sizes) == 1 and len(log._group._queue) < queued:
            assert time.monotonic() < deadline, "the appends never queued"
            time.sleep(0.001)
        commit(batch)

    log._commit = held  # type: ignore[method-assign]
    return sizes


def run_all(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run each call in a thread of its own, the first one first; their results or errors."""
    out: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            out[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    threads[0].start()
    time.sleep(0.01)  # the first leads the first commit
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_appends_that_wait_share_one_commit_on_one_stream(log):
    sizes = hold_first_commit(log, 7)
    heard: list[int] = []
    log.subscribe(heard.append)
    answers = run_all([lambda i=i: log.append("one", [ev(i, 0), ev(i, 1)]) for i in range(8)])
    assert sizes == [1, 7], "the seven that came during the first commit shared the second"
    assert sorted(p for a in answers for p in a) == list(range(1, 17))
    assert all(a[1] == a[0] + 1 for a in answers), "each append's events stay together"
    assert heard == [2, 16], "listeners hear each commit"
    records = list(log.read())
    assert [r.version for r in records] == list(range(1, 17))
    for i, positions in enumerate(answers):
        assert [records[p - 1].data["writer"] for p in positions] == [i, i]
    assert log.verify().ok


def test_concurrent_appenders_on_many_streams_keep_their_versions(log):
    writers, each = 8, 6

    def writer(w: int) -> list[int]:
        return [p for n in range(each)
                for p in log.append(f"w-{w}", [ev(w, n)], expected_version=n)]

    answers = run_all([lambda w=w: writer(w) for w in range(writers)])
    assert sorted(p for a in answers for p in a) == list(range(1, writers * each + 1))
    for w in range(writers):
        stream = log.read_stream(f"w-{w}")
        assert [(r.version, r.data["seq"], r.position) for r in stream] == [
            (n + 1, n, answers[w][n]) for n in range(each)]
    assert log.verify().ok


def test_a_failing_append_fails_alone_in_its_group(log):
    log.append("taken", [ev(0, 0)])
    sizes = hold_first_commit(log, 5)
    answers = run_all([
        lambda: log.append("first", [ev(0, 1)]),
        lambda: log.append("s", [ev(1, 0)], expected_version=0),
        lambda: log.append("taken", [ev(2, 0)], expected_version=0),  # conflict
        lambda: log.append("s", [ev(3, 0), ev(3, 1, "nul \x00")]),  # refused text
        lambda: log.append("s", [ev(4, 0)], expected_version=0),  # loses to writer 1 ...
        lambda: log.append("t", [ev(5, 0)], command_id="c-5"),
    ])
    assert sizes == [1, 5]
    assert answers[0] == [2]
    assert isinstance(answers[2], ConcurrencyError) and answers[2].actual == 1
    assert isinstance(answers[3], ValueError) and "U+0000" in str(answers[3])
    assert isinstance(answers[4], ConcurrencyError), "writer 1's event is in the same commit"
    assert answers[1] == [3] and answers[5] == [4], "the others committed, positions dense"
    assert [(r.stream, r.data["writer"]) for r in log.read()] == [
        ("taken", 0), ("first", 0), ("s", 1), ("t", 5)]
    assert log.find_command("c-5") == [4]
    assert log.append("s", [ev(6, 0)], expected_version=1) == [5]
    assert log.verify().ok


def test_new_residents_keys_shared_by_a_group_are_stored_once(log):
    sizes = hold_first_commit(log, 3)
    person = {"writer": 0, "seq": 0, "text": "x", "name": "Ann"}
    answers = run_all([
        lambda: log.append("a", [NewEvent("tick.made", person, subject="r-1",
                                          personal=("name",))]),
    ] + [
        lambda i=i: log.append(f"b{i}", [NewEvent("tick.made", {**person, "seq": i},
                                                  subject="r-2", personal=("name",))])
        for i in range(3)
    ])
    assert sizes == [1, 3] and all(isinstance(a, list) for a in answers), answers
    assert [r.data["name"] for r in log.read()] == ["Ann"] * 4
    assert log.verify().ok


CRASHER = """
import json, os, sys, threading, time
sys.path.insert(0, {repo!r})
from shared.eventlog import EventLog, NewEvent
log = EventLog.open(sys.argv[1], service="visits")
commit, commits = log._commit, []

def crashing(batch):
    commits.append(len(batch))
    if len(commits) > 12 and len(batch) > 1:  # a group written, not yet committed: crash
        log._writer.commit = lambda: os._exit(3)
    commit(batch)

log._commit = crashing
lock = threading.Lock()

def writer(w):
    for n in range(1000):
        positions = log.append(f"w-{{w}}", [NewEvent("tick.made", {{"writer": w, "seq": n}})])
        with lock:
            print(json.dumps([w, n, positions]), flush=True)

threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
for t in threads: t.start()
for t in threads: t.join()
"""


def test_a_crash_during_a_group_commit_loses_only_unanswered_appends(db_url, log_factory):
    log_factory()  # the schema, before the crasher starts
    script = textwrap.dedent(CRASHER.format(repo=str(REPO)))
    proc = subprocess.run([sys.executable, "-c", script, db_url], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 3, "a commit of several appends was cut: " + proc.stderr
    answered = [json.loads(line) for line in proc.stdout.splitlines()]
    assert answered, "some appends were answered before the crash"
    log = log_factory()
    assert log.verify().ok
    records = {r.position: r for r in log.read()}
    for w, n, positions in answered:
        [position] = positions
        assert (records[position].data["writer"], records[position].data["seq"]) == (w, n)
    assert len(records) >= len(answered)
    assert len(records) < 6 * 1000, "the crash did cut the writers short"
    assert log.append("after", [ev(9, 9)]) == [len(records) + 1], "the log goes on"


def test_an_append_failing_half_written_is_rolled_back_and_the_others_written_again(
        log, monkeypatch):
    store = type(log.keys).store

    def failing_store(self, fresh, cur):
        store(self, fresh, cur)
        if "r-bad" in fresh:
            raise RuntimeError("the key table is full")  # after this append's rows went in

    monkeypatch.setattr(type(log.keys), "store", failing_store)
    sizes = hold_first_commit(log, 3)
    person = {"writer": 1, "seq": 0, "text": "x", "name": "Bo"}
    answers = run_all([
        lambda: log.append("first", [ev(0, 0)]),
        lambda: log.append("a", [ev(1, 0)], expected_version=0),
        lambda: log.append("bad", [ev(2, 0), NewEvent("tick.made", person, subject="r-bad",
                                                      personal=("name",))]),
        lambda: log.append("c", [ev(3, 0)], command_id="c-3"),
    ])
    assert sizes == [1, 3]
    assert isinstance(answers[2], RuntimeError)
    assert answers[0] == [1] and sorted([*answers[1], *answers[3]]) == [2, 3]
    assert [r.stream for r in log.read()] == ["first", "a", "c"], "written again, in order"
    assert log.find_command("c-3") == answers[3]
    assert log.keys.keys(["r-bad"]) == {"r-bad": None}, "its key went with it"
    assert log.verify().ok
