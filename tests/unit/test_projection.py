"""The projection machinery: idempotent, gap-aware, transactional, rebuildable, as-of.

A tiny projection counts events per stream; the records come from real EventLogs on SQLite.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import eventlet
import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, select, update
from sqlalchemy.engine import Engine

import shared.kernel.projection as projection_module
from shared.eventlog import EventLog, NewEvent, Record
from shared.kernel.projection import Projector, build_as_of
from shared.runtime.providers import deliver, log_fetch, read_log, view_status

counts_metadata = MetaData()
counts = Table(
    "stream_counts", counts_metadata,
    Column("source", String(100), primary_key=True),
    Column("stream", String(200), primary_key=True),
    Column("events", Integer, nullable=False),
    Column("last_type", String(200), nullable=False),
)


class Counts:
    """Events per stream of each source; `fail_at` makes apply raise on that position."""

    name = "counts"
    metadata = counts_metadata

    def __init__(self, sources: tuple[str, ...] = ("alpha",), fail_at: int | None = None) -> None:
        self.sources = sources
        self.fail_at = fail_at
        self.seen: list[tuple[str, int]] = []

    def apply(self, conn: Connection, record: Record) -> None:
        if record.position == self.fail_at:
            raise RuntimeError(f"cannot apply {record.position}")
        self.seen.append((record.source, record.position))
        key = (counts.c.source == record.source) & (counts.c.stream == record.stream)
        done = conn.execute(update(counts).where(key).values(
            events=counts.c.events + 1, last_type=record.type)).rowcount
        if not done:
            conn.execute(counts.insert().values(source=record.source, stream=record.stream,
                                                events=1, last_type=record.type))


def rows(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(counts).order_by(
            counts.c.source, counts.c.stream)).all()]


def reference(records: Sequence[Record]) -> list[tuple]:
    """What the table must hold after folding `records` exactly once each."""
    found: dict[tuple[str, str], list] = {}
    for r in records:
        entry = found.setdefault((r.source, r.stream), [0, ""])
        entry[0] += 1
        entry[1] = r.type
    return sorted((s, stream, n, t) for (s, stream), (n, t) in found.items())


def open_log(tmp_path, service: str) -> EventLog:
    return EventLog.open(f"sqlite:///{tmp_path / service}.db", service=service)


def fill(log: EventLog, n: int, offset: int = 0) -> list[Record]:
    """n events over three streams, with a few types; returns what the log holds."""
    for i in range(offset, offset + n):
        log.append(f"s-{i % 3}", [NewEvent(f"thing.{'ab'[i % 2]}", {"i": i})])
    return list(log.read())


@pytest.fixture
def log(tmp_path) -> Iterator[EventLog]:
    log = open_log(tmp_path, "alpha")
    yield log
    log.close()


@pytest.fixture
def projector(tmp_path) -> Projector:
    return Projector.open(Counts(), f"sqlite:///{tmp_path / 'view.db'}")


def test_redelivery_at_or_below_the_checkpoint_changes_nothing(log, projector):
    records = fill(log, 7)
    assert projector.checkpoints() == {"alpha": 0}
    assert projector.apply_batch(records[:5]) == (5, False)
    after_five = rows(projector.engine)
    assert after_five == reference(records[:5])
    assert projector.checkpoints() == {"alpha": 5}

    assert projector.apply_batch(records[2:5]) == (0, False)  # all seen before
    assert projector.apply_batch([records[0], records[0]]) == (0, False)
    assert rows(projector.engine) == after_five
    assert projector.checkpoints() == {"alpha": 5}

    assert projector.apply_batch(records[3:]) == (2, False)  # overlapping: only the new ones
    assert projector.apply_batch([records[6], records[6]]) == (0, False)
    assert rows(projector.engine) == reference(records)
    assert projector.checkpoints() == {"alpha": 7}
    assert [p for _, p in projector.projection.seen] == list(range(1, 8))  # each exactly once


def test_a_gap_stops_the_batch_and_catch_up_fills_it(log, projector):
    records = fill(log, 9)
    assert projector.apply_batch(records[:2]) == (2, False)
    assert projector.apply_batch(records[3:6]) == (0, True)  # 3 is missing
    assert projector.checkpoints() == {"alpha": 2}
    assert rows(projector.engine) == reference(records[:2])

    # What came before the gap in a batch is kept; what follows it is not.
    assert projector.apply_batch([records[2], records[4], records[5]]) == (1, True)
    assert projector.checkpoints() == {"alpha": 3}
    assert rows(projector.engine) == reference(records[:3])

    fetch = log_fetch({"alpha": log})
    assert projector.catch_up(fetch, page=2) == 6  # several pages
    assert projector.checkpoints() == {"alpha": 9}
    assert rows(projector.engine) == reference(records)
    assert projector.catch_up(fetch) == 0


def test_deliver_from_the_bus_catches_up_on_a_gap(log, projector):
    records = fill(log, 6)
    fetch = log_fetch({"alpha": log})
    events = [r.to_cloudevent(personal=False) for r in records]
    assert deliver(projector, events[0], fetch) == 1
    assert deliver(projector, events[0], fetch) == 0  # redelivered
    assert deliver(projector, events[3], fetch) == 5  # 2 and 3 were lost: caught up to the head
    assert projector.checkpoints() == {"alpha": 6}
    for event in events:
        assert deliver(projector, event, fetch) == 0
    assert rows(projector.engine) == reference(records)
    status = view_status(projector, lambda source: log.last_position() + 2)
    assert status == {"projection": "counts", "rebuilding": False,
                      "sources": {"alpha": {"checkpoint": 6, "head": 8, "lag": 2}}}


def test_only_a_catch_up_that_meets_a_full_page_sets_the_heap_aside(log, projector):
    """An idle tick's catch-up (a short or empty page) never freezes the collector: when
    every 5-s tick froze it, no full collection came and a view grew 1.5 MB a minute on the
    garbage of its RPC connections. A long catch-up still sets the old objects aside from
    its first full page until it ends."""
    fill(log, 5)
    inner = log_fetch({"alpha": log})
    frozen_at_fetch: list[int] = []

    def fetch(source: str, after: int, limit: int, until: Any) -> Sequence[Record]:
        frozen_at_fetch.append(gc.get_freeze_count())
        return inner(source, after, limit, until)

    assert projector.catch_up(fetch, page=10) == 5  # a short page, then nothing
    assert frozen_at_fetch == [0, 0] and gc.get_freeze_count() == 0
    frozen_at_fetch.clear()
    fill(log, 5, offset=5)
    assert projector.catch_up(fetch) == 5  # the default page (2,000): short again
    assert frozen_at_fetch == [0, 0]
    frozen_at_fetch.clear()
    fill(log, 6, offset=10)
    assert projector.catch_up(fetch, page=2) == 6  # full pages: frozen from the first one on
    assert frozen_at_fetch[0] == 0 and all(n > 0 for n in frozen_at_fetch[1:])
    assert gc.get_freeze_count() == 0  # and given back at the end


def test_a_long_page_from_a_log_that_answers_less_than_asked_sets_the_heap_aside(
        log, projector, monkeypatch):
    """A log read over RPC answers 2,000 records at most, whatever a rebuild asks for: a page
    that long is a long catch-up too (LONG_PAGE, here 3 with pages of at most 4)."""
    monkeypatch.setattr(projection_module, "LONG_PAGE", 3)
    fill(log, 9)
    inner = log_fetch({"alpha": log})
    frozen_at_fetch: list[int] = []

    def capped(source: str, after: int, limit: int, until: Any) -> Sequence[Record]:
        frozen_at_fetch.append(gc.get_freeze_count())
        return inner(source, after, min(limit, 4), until)

    assert projector.catch_up(capped, page=10) == 9
    assert frozen_at_fetch[0] == 0 and all(n > 0 for n in frozen_at_fetch[1:])
    assert gc.get_freeze_count() == 0


def test_a_catch_up_waiting_on_its_fetch_holds_no_delivery_back(log, projector):
    """A catch-up whose fetch is slow (a remote log call while the broker is in trouble) does
    not hold the view: deliveries that continue the checkpoint are applied meanwhile, one
    after a gap leaves it to the running catch-up, a second catch-up returns at once, and in
    the end every record is folded exactly once (a chaos run had every worker of a view wait
    behind one such catch-up, until the view did not answer `status`)."""
    records = fill(log, 6)
    events = [r.to_cloudevent(personal=False) for r in records]
    fetch = log_fetch({"alpha": log})
    release = eventlet.Event()

    def slow(source: str, after: int, limit: int, until: datetime | None) -> list[Record]:
        page = list(fetch(source, after, limit, until))  # read now, handed over later
        release.wait()
        return page

    catching = eventlet.spawn(projector.catch_up, slow)
    eventlet.sleep(0)  # it waits in its first fetch, holding records 1-6
    with eventlet.Timeout(5):
        assert deliver(projector, events[0], fetch) == 1
        assert deliver(projector, events[1], fetch) == 1
        assert deliver(projector, events[4], fetch) == 0  # a gap: the catch-up's to fill
        assert projector.catch_up(fetch, wait=False) == 0  # one is running
    release.send()
    assert catching.wait() == 4  # 3-6: 1 and 2 were applied live, and are skipped
    assert projector.checkpoints() == {"alpha": 6}
    assert rows(projector.engine) == reference(records)
    assert [p for _, p in projector.projection.seen] == list(range(1, 7))


def test_rows_and_checkpoint_commit_together(log, tmp_path):
    records = fill(log, 5)
    failing = Counts(fail_at=3)
    projector = Projector.open(failing, f"sqlite:///{tmp_path / 'view.db'}")
    with pytest.raises(RuntimeError, match="cannot apply 3"):
        projector.apply_batch(records)
    assert failing.seen == [("alpha", 1), ("alpha", 2)]  # applied, then rolled back
    assert rows(projector.engine) == []
    assert projector.checkpoints() == {"alpha": 0}

    assert projector.apply_batch(records[:2]) == (2, False)
    with pytest.raises(RuntimeError):
        projector.catch_up(log_fetch({"alpha": log}))
    assert rows(projector.engine) == reference(records[:2])
    assert projector.checkpoints() == {"alpha": 2}

    failing.fail_at = None  # fixed: the same records apply as if nothing had happened
    assert projector.catch_up(log_fetch({"alpha": log})) == 3
    assert rows(projector.engine) == reference(records)
    assert projector.checkpoints() == {"alpha": 5}


def test_rebuild_from_scratch_equals_live_application(log, projector):
    records = fill(log, 40)
    # Live: out of order, duplicated, with gaps the bus might produce, caught up when seen.
    fetch = log_fetch({"alpha": log})
    deliveries = [1, 2, 2, 5, 3, 4, 5, 6, 6, 1, 9, 10, 12, 11, 30, 40, 39, 40]
    for position in deliveries:
        deliver(projector, records[position - 1].to_cloudevent(personal=False), fetch)
    live = rows(projector.engine)
    assert live == reference(records)

    # The view drifts (someone edits it by hand): a rebuild starts over from the logs.
    with projector.engine.begin() as conn:
        conn.execute(counts.delete().where(counts.c.stream == "s-0"))
        conn.execute(update(counts).values(events=counts.c.events + 100))
    progress: list[tuple[str, int]] = []
    assert projector.rebuild(fetch, progress=lambda s, p: progress.append((s, p))) == 40
    assert rows(projector.engine) == live
    assert projector.checkpoints() == {"alpha": 40}
    assert progress[-1] == ("alpha", 40)
    assert not projector.rebuilding

    projector.reset()
    assert rows(projector.engine) == []
    assert projector.checkpoints() == {"alpha": 0}


def test_build_as_of_equals_the_records_recorded_by_then(log, projector):
    early = fill(log, 6)
    time.sleep(0.01)
    instant: datetime = early[-1].recorded_at
    records = fill(log, 5, offset=6)
    assert records[6].recorded_at > instant
    fetch = log_fetch({"alpha": log})

    then = build_as_of(Counts(), fetch, instant)
    expected = [r for r in records if r.recorded_at <= instant]
    assert len(expected) == 6
    assert rows(then.engine) == reference(expected)
    assert then.checkpoints() == {"alpha": 6}
    assert rows(then.engine) != reference(records)

    # Later instants see later records; the live view is not touched.
    for record in records[6:]:
        view = build_as_of(Counts(), fetch, record.recorded_at)
        assert rows(view.engine) == reference(
            [r for r in records if r.recorded_at <= record.recorded_at])
    assert rows(projector.engine) == []

    first = build_as_of(Counts(), fetch, records[0].recorded_at.replace(year=2000))
    assert rows(first.engine) == [] and first.checkpoints() == {"alpha": 0}


def test_two_sources_keep_their_own_checkpoints(tmp_path):
    alpha, beta = open_log(tmp_path, "alpha"), open_log(tmp_path, "beta")
    gamma = open_log(tmp_path, "gamma")  # a log the projection does not fold
    a = fill(alpha, 4)
    b = fill(beta, 6)
    g = fill(gamma, 3)
    projector = Projector.open(Counts(("alpha", "beta")), f"sqlite:///{tmp_path / 'view.db'}")
    assert projector.checkpoints() == {"alpha": 0, "beta": 0}

    # Interleaved; the same position in the other log is not a duplicate.
    assert projector.apply_batch([a[0], b[0], b[1], g[0], a[1], b[2]]) == (5, False)
    assert projector.checkpoints() == {"alpha": 2, "beta": 3}
    assert projector.apply_batch([b[2], a[1], b[3]]) == (1, False)
    assert projector.checkpoints() == {"alpha": 2, "beta": 4}

    # A gap in one log stops the batch; the other's checkpoint is unaffected.
    assert projector.apply_batch([a[2], b[5], a[3]]) == (1, True)
    assert projector.checkpoints() == {"alpha": 3, "beta": 4}

    fetch = log_fetch({"alpha": alpha, "beta": beta, "gamma": gamma})
    assert projector.catch_up(fetch) == 3
    assert projector.checkpoints() == {"alpha": 4, "beta": 6}
    assert rows(projector.engine) == reference(a + b)
    assert not any(source == "gamma" for source, *_ in rows(projector.engine))
    assert g  # gamma's records were offered and ignored

    rebuilt = Projector.open(Counts(("alpha", "beta")), f"sqlite:///{tmp_path / 'again.db'}")
    assert rebuilt.rebuild(fetch) == 10
    assert rows(rebuilt.engine) == rows(projector.engine)

    # Two projections in one database keep their checkpoints apart too.
    other = Counts(("beta",))
    other.name = "beta-only"
    same_db = Projector(other, projector.engine)
    assert same_db.checkpoints() == {"beta": 0}
    for log in (alpha, beta, gamma):
        log.close()


def test_read_log_pages_and_withholds_personal_data(log):
    log.append("visit-1", [NewEvent("visit.recorded", {"who": {"name": "Li Wei"}, "n": 1},
                                    subject="r1", personal=("who.name",))])
    fill(log, 4)
    page = read_log(log, 0, 2, None)
    assert [e["sequence"] for e in page] == ["1", "2"]
    assert page[0]["data"] == {"who": {"name": None}, "n": 1}
    assert next(log.read()).data["who"]["name"] == "Li Wei"
    assert [e["sequence"] for e in read_log(log, 2, 10_000, None)] == ["3", "4", "5"]
    until = list(log.read())[2].recorded_at.isoformat()
    assert [e["sequence"] for e in read_log(log, 0, 10, until)] == ["1", "2", "3"]
    assert Record.from_cloudevent(page[1]) == list(log.read())[1]


def test_read_log_of_some_types_reads_only_them_with_or_without_until(log):
    records = fill(log, 6)  # thing.a at 1, 3, 5; thing.b at 2, 4, 6
    assert [e["sequence"] for e in read_log(log, 0, 10, None, ["thing.b"])] == ["2", "4", "6"]
    assert [e["sequence"] for e in read_log(log, 2, 1, None, ["thing.b"])] == ["4"]
    until = records[3].recorded_at.isoformat()
    assert [e["sequence"] for e in read_log(log, 0, 10, until, ["thing.a"])] == ["1", "3"]
    assert read_log(log, 0, 10, None, []) == []


def test_a_record_that_does_not_chain_onto_the_view_is_not_applied(tmp_path) -> None:
    """Same source name, next position, but another log: the hash chain tells them apart."""
    real = open_log(tmp_path, "alpha")
    records = fill(real, 4)
    impostor_dir = tmp_path / "other"
    impostor_dir.mkdir()
    impostor = fill(open_log(impostor_dir, "alpha"), 4)
    projector = Projector.in_memory(Counts())
    assert projector.apply_batch(records[:2]) == (2, False)

    assert projector.apply_batch(impostor[2:]) == (0, True)
    assert projector.checkpoints() == {"alpha": 2}
    assert projector.catch_up(log_fetch({"alpha": real})) == 2
    assert rows(projector.engine) == reference(records)


def test_a_page_whose_chain_breaks_midway_is_applied_up_to_the_break(tmp_path) -> None:
    """A page that continues the checkpoint but not its own chain: consecutive positions,
    the fourth record from another log. What precedes it is applied; it and the rest are not."""
    records = fill(open_log(tmp_path, "alpha"), 6)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    impostor = fill(open_log(other_dir, "alpha"), 6, offset=100)
    projector = Projector.in_memory(Counts())

    assert projector.apply_batch([*records[:3], *impostor[3:]]) == (3, True)
    assert projector.checkpoints() == {"alpha": 3}
    assert rows(projector.engine) == reference(records[:3])


@pytest.mark.parametrize("window", [1, 2, 5, 100])
def test_position_at_names_the_last_record_recorded_by_each_instant(
    log, projector, monkeypatch, window
) -> None:
    """A binary search down to a window, then one read of the window: the same answer as
    walking the log, for every record's instant and for instants before and after them all."""
    monkeypatch.setattr(projection_module, "AS_OF_WINDOW", window)
    records = fill(log, 23)
    fetch = log_fetch({"alpha": log})
    for record in records:
        expected = max(r.position for r in records if r.recorded_at <= record.recorded_at)
        assert projector.position_at(fetch, "alpha", record.recorded_at) == expected
    assert projector.position_at(fetch, "alpha", records[0].recorded_at.replace(year=2000)) == 0
    assert projector.position_at(fetch, "alpha", records[-1].recorded_at.replace(year=2099)) == 23


def test_catch_up_leaves_the_collector_as_it_found_it(log, tmp_path) -> None:
    """A catch-up of full pages sets older objects aside from the collector while it folds
    (gc.freeze), and gives them back afterwards, also when a record fails to apply."""
    class Watching(Counts):
        frozen: list[int] = []

        def apply(self, conn: Connection, record: Record) -> None:
            self.frozen.append(gc.get_freeze_count())
            super().apply(conn, record)

    fill(log, 4)
    fetch = log_fetch({"alpha": log})
    failing = Projector.open(Watching(fail_at=3), f"sqlite:///{tmp_path / 'failing.db'}")
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError, match="cannot apply 3"):
        failing.catch_up(fetch, page=2)
    assert gc.get_freeze_count() == 0
    assert failing.checkpoints() == {"alpha": 2}
    assert Projector.in_memory(Watching()).catch_up(fetch, page=2) == 4
    assert gc.get_freeze_count() == 0
    assert len(Watching.frozen) == 7 and all(Watching.frozen), "set aside while folding"


def test_a_view_built_from_a_replaced_log_stops_and_says_so(tmp_path, caplog) -> None:
    first = open_log(tmp_path, "alpha")
    projector = Projector.in_memory(Counts())
    projector.catch_up(log_fetch({"alpha": first}))
    fill(first, 3)
    assert projector.catch_up(log_fetch({"alpha": first})) == 3
    replaced_dir = tmp_path / "replaced"
    replaced_dir.mkdir()
    replaced = open_log(replaced_dir, "alpha")
    fill(replaced, 5)

    assert projector.catch_up(log_fetch({"alpha": replaced})) == 0
    assert projector.checkpoints() == {"alpha": 3}
    assert "does not continue the history" in caplog.text


def test_projector_replicas_on_one_database_apply_each_record_once(tmp_path, pg_url) -> None:
    """Two projectors (as two replicas would) on one PostgreSQL database, fed the same
    records at once (green threads: psycopg2 yields on every round trip)."""
    import threading

    records = fill(open_log(tmp_path, "alpha"), 60)
    replicas = [Projector.open(Counts(), pg_url), Projector.open(Counts(), pg_url)]
    errors: list[Exception] = []

    def feed(projector: Projector) -> None:
        try:
            for record in records:
                projector.apply_batch([record])
        except Exception as exc:  # a replica that crashes on a conflict is a failure too
            errors.append(exc)

    threads = [threading.Thread(target=feed, args=(p,)) for p in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert rows(replicas[0].engine) == reference(records)
    assert replicas[0].checkpoints() == {"alpha": 60}


def _rows(projector: Projector) -> list[Any]:
    with projector.engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(counts)))


class Remote:
    """A fetch that says it waits on another process, as the views' `RemoteLogs` does."""

    waits = True

    def __init__(self, read: Callable[[str, int, int, Any], Sequence[Record]]) -> None:
        self.read = read

    def __call__(self, source: str, after: int, limit: int, until: Any) -> Sequence[Record]:
        return self.read(source, after, limit, until)


def test_a_long_catch_up_reads_each_next_page_once_while_folding_the_one_before(
        tmp_path, log, projector, monkeypatch):
    """Pages of 4 (LONG_PAGE 3) from a remote log: each page is asked for once, from where
    the one before ended, the next ones by another thread, and the view ends as one read
    page by page without reading ahead ends."""
    monkeypatch.setattr(projection_module, "LONG_PAGE", 3)
    fill(log, 10)
    inner = log_fetch({"alpha": log})
    asked: list[tuple[int, bool]] = []
    here = threading.current_thread()

    def fetch(source: str, after: int, limit: int, until: Any) -> Sequence[Record]:
        asked.append((after, threading.current_thread() is here))
        return inner(source, after, 4, until)

    assert projector.catch_up(Remote(fetch), page=10) == 10
    # 4 and 8 read ahead; after the short third, the end
    assert asked == [(0, True), (4, False), (8, False), (10, True)]
    plain = Projector.open(Counts(), f"sqlite:///{tmp_path / 'plain.db'}")
    assert plain.catch_up(log_fetch({"alpha": log}), page=4) == 10  # pages of 4, none long
    assert _rows(plain) == _rows(projector) and plain.checkpoints() == projector.checkpoints()


def test_a_log_read_in_this_process_is_not_read_ahead(log, projector, monkeypatch):
    """Reading ahead in a thread of this process only shares the CPU with the fold (and
    hands the GIL back and forth at every SQLite step): a long catch-up from a local log
    reads each page where it folds it."""
    monkeypatch.setattr(projection_module, "LONG_PAGE", 3)
    fill(log, 10)
    inner = log_fetch({"alpha": log})
    readers: list[threading.Thread] = []

    def fetch(source: str, after: int, limit: int, until: Any) -> Sequence[Record]:
        readers.append(threading.current_thread())
        return inner(source, after, 4, until)

    assert projector.catch_up(fetch, page=10) == 10
    assert readers == [threading.current_thread()] * 4


def test_a_read_ahead_that_failed_raises_where_its_page_is_taken(log, projector, monkeypatch):
    monkeypatch.setattr(projection_module, "LONG_PAGE", 3)
    fill(log, 10)
    inner = log_fetch({"alpha": log})
    threads = threading.active_count()

    def fetch(source: str, after: int, limit: int, until: Any) -> Sequence[Record]:
        if after == 4:
            raise ConnectionError("the visits service went away")
        return inner(source, after, 4, until)

    with pytest.raises(ConnectionError, match="went away"):
        projector.catch_up(Remote(fetch), page=10)
    assert projector.checkpoints() == {"alpha": 4}, "the page before it was folded"
    assert threading.active_count() == threads and gc.get_freeze_count() == 0


def test_a_fold_that_fails_lets_the_read_ahead_end_unused(log, projector, monkeypatch):
    monkeypatch.setattr(projection_module, "LONG_PAGE", 3)
    fill(log, 10)
    inner = log_fetch({"alpha": log})
    threads, read = threading.active_count(), threading.Event()

    def fetch(source: str, after: int, limit: int, until: Any) -> Sequence[Record]:
        if after == 4:
            time.sleep(0.2)  # still reading when the fold fails
            read.set()
        return inner(source, after, 4, until)

    def apply_batch(records: Sequence[Record]) -> tuple[int, bool]:
        raise RuntimeError("the view's disk is full")

    monkeypatch.setattr(projector, "apply_batch", apply_batch)
    with pytest.raises(RuntimeError, match="disk is full"):
        projector.catch_up(Remote(fetch), page=10)
    assert read.is_set(), "the catch-up waited for the read in flight"
    assert threading.active_count() == threads and gc.get_freeze_count() == 0
