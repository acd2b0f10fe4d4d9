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


def test_green_threads_appending_at_once_share_commits(log):
    """Under eventlet (the services' threads) a SQLite commit holds the hub: unless the
    leader lets the green threads ready to append run first, none can queue behind it and
    each waits for a commit of its own."""
    green_appenders_share_commits(log, lambda w, n: ev(w, n))


def test_green_threads_storing_new_residents_keys_apart_share_commits(log_factory, tmp_path):
    """As the visits service runs: keys in a database of their own, a new resident's key
    stored (and committed there) with each visit."""
    log = log_factory(keys_url=f"sqlite:///{tmp_path / 'keys' / 'visits.db'}")

    def visit(w: int, n: int) -> NewEvent:
        return NewEvent("tick.made", {"writer": w, "seq": n, "name": f"R {w}-{n}"},
                        subject=f"r-{w}-{n}", personal=("name",))

    green_appenders_share_commits(log, visit)
    assert [r.data["name"] for r in log.read_stream("w-3")] == [f"R 3-{n}" for n in range(6)]
    assert None not in log.keys.keys([f"r-{w}-{n}" for w in range(8) for n in range(6)]).values()


def green_appenders_share_commits(log: EventLog, event: Callable[[int, int], NewEvent]) -> None:
    """8 green threads append 6 events each, one at a time, at once: fewer commits than
    half the appends, every event in its stream's order, the chain intact."""
    import eventlet

    sizes: list[int] = []
    commit = log._commit

    def counted(batch: list[Any]) -> None:
        sizes.append(len(batch))
        commit(batch)

    log._commit = counted  # type: ignore[method-assign]
    writers, each = 8, 6
    greens = [eventlet.spawn(lambda w=w: [log.append(f"w-{w}", [event(w, n)],
                                                     expected_version=n)
                                          for n in range(each)]) for w in range(writers)]
    answers = [g.wait() for g in greens]
    assert sum(sizes) == writers * each
    assert len(sizes) <= writers * each // 2, f"appends did not share commits: {sizes}"
    assert sorted(p for a in answers for [p] in a) == list(range(1, writers * each + 1))
    for w in range(writers):
        assert [r.data["seq"] for r in log.read_stream(f"w-{w}")] == list(range(each))
    assert log.verify().ok


POISON = {
    "sqlite": ["CREATE TRIGGER poison BEFORE INSERT ON event_log WHEN NEW.record LIKE "
               "'%poison%' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"],
    "postgresql": [
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.record "
        "LIKE '%poison%' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER poison BEFORE INSERT ON event_log FOR EACH ROW EXECUTE FUNCTION poison()",
    ],
}


def test_rows_the_database_refuses_in_a_group_insert_fail_their_append_alone(log, raw):
    """A group's rows go in with one statement: when the database refuses it, each append is
    written again on its own, so only the one whose row was refused fails."""
    for ddl in POISON[raw.dialect]:
        raw.run(ddl)
    sizes = hold_first_commit(log, 3)
    answers = run_all([
        lambda: log.append("first", [ev(0, 0)]),
        lambda: log.append("a", [ev(1, 0)], expected_version=0),
        lambda: log.append("bad", [ev(2, 0), ev(2, 1, "poison")]),
        lambda: log.append("c", [ev(3, 0)], command_id="c-3"),
    ])
    assert sizes == [1, 3]
    assert "poisoned" in str(answers[2])
    assert answers[0] == [1] and sorted([*answers[1], *answers[3]]) == [2, 3]
    assert [r.stream for r in log.read()] == ["first", "a", "c"]
    assert log.verify().ok


def test_a_command_retried_within_one_group_is_written_once(log):
    sizes = hold_first_commit(log, 3)
    answers = run_all([
        lambda: log.append("first", [ev(0, 0)]),
        lambda: log.append("s", [ev(1, 0)], command_id="c-1"),
        lambda: log.append("s", [ev(1, 0)], command_id="c-1"),
        lambda: log.append("s", [ev(2, 0)], expected_version=1),
    ])
    assert sizes == [1, 3]
    assert answers[1] == answers[2] == [2] and answers[3] == [3]
    assert [(r.stream, r.version) for r in log.read()] == [("first", 1), ("s", 1), ("s", 2)]


def test_a_groups_new_keys_kept_apart_are_stored_in_one_commit(log_factory, tmp_path,
                                                               monkeypatch):
    """Each new resident's key stored on its own cost the key database a commit (an fsync)
    per append; a group stores all of its keys in one."""
    log = log_factory(keys_url=f"sqlite:///{tmp_path / 'keys' / 'visits.db'}")
    stored: list[list[str]] = []
    store = type(log.keys).store

    def counted(self: Any, fresh: dict[str, bytes], cur: Any) -> None:
        stored.append(sorted(fresh))
        store(self, fresh, cur)

    monkeypatch.setattr(type(log.keys), "store", counted)
    sizes = hold_first_commit(log, 3)
    answers = run_all([
        lambda i=i: log.append(f"r{i}", [NewEvent("tick.made", {"name": f"N{i}"},
                                                  subject=f"r-{i}", personal=("name",))])
        for i in range(4)
    ])
    assert sizes == [1, 3] and all(isinstance(a, list) for a in answers), answers
    assert stored == [["r-0"], ["r-1", "r-2", "r-3"]]
    assert [r.data["name"] for r in log.read()] == ["N0", "N1", "N2", "N3"]


def test_a_green_leader_killed_while_it_lets_others_run_hands_on_the_lead(log):
    """The leader's yield is where a green thread can be killed (a worker stopped): its
    append is not written, and the next append still gets a commit."""
    import eventlet

    killed = eventlet.spawn(log.append, "gone", [ev(0, 0)])
    queued = eventlet.spawn(log.append, "queued", [ev(1, 0)])
    eventlet.sleep(0)  # the first runs up to its yield as leader, the second queues
    assert len(log._group._queue) == 2
    killed.kill()
    with eventlet.Timeout(30):
        assert queued.wait() == [1]
        assert log.append("after", [ev(2, 0)]) == [2]
    assert [r.stream for r in log.read()] == ["queued", "after"]
