"""Benchmarks, printed as one JSON object: `grassroots bench log` and `grassroots bench
district` (or `python -m shared.tools.bench log|district`; the district bench is in
`bench_district`).

`bench_log` measures the event log on SQLite files (WAL, synchronous=FULL) and does the same
work with the `eventsourcing` library's SQLite application recorder, the peer it is compared
with (optional: `pip install grassroots[bench]`). Single appends are also done with bare
`sqlite3` (`sqlite_floor_...`): one fsync per commit bounds every SQLite event store, and the
ratios to that floor show how much of a commit is the library's own work. fsync time on
shared machines drifts, so the contenders are interleaved over several rounds, the order
reversed every other round, and medians reported.
Progress goes to stderr, the JSON to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.eventlog import EventLog, NewEvent
from shared.eventlog import log as log_module

BATCH = 100
STREAMS = 100
TARGETS = {  # issue 2, for a 2-core machine
    "append_batch_ev_s": 50_000,
    "read_ev_s": 400_000,
    "verify_ev_s": 300_000,
}
SINGLE_VS_PEER = 1.5
BATCH_VS_PEER = 1.0  # issue 8


def _payload(i: int) -> dict[str, Any]:
    """A visit as the visits service records it (about 150 bytes of JSON)."""
    return {
        "visit_id": f"v-{i}", "helper_id": f"h-{i % 37}", "resident_id": f"r-{i % 211}",
        "kind": "visit", "minutes": 30 + i % 45, "outcome": "completed",
        "note": "tea, shopping list, next visit agreed",
    }  # fmt: skip


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _rate(count: int, work: Callable[[], object]) -> tuple[float, float]:
    """Events a second by the wall clock, and by this process's CPU time (which other load
    on the machine disturbs far less)."""
    start, cpu = time.perf_counter(), time.process_time()
    work()
    return count / (time.perf_counter() - start), count / (time.process_time() - cpu)


class _Ours:
    name = "ours"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def open(self, name: str) -> EventLog:
        return EventLog.open(f"sqlite:///{self.folder / name}", service="bench")

    def append_single(self, count: int) -> tuple[float, float]:
        log = self.open("single.db")
        versions = [0] * STREAMS

        def work() -> None:
            for i in range(count):
                s = i % STREAMS
                log.append(f"visit-{s}", [NewEvent("visit.recorded", _payload(i))],
                           expected_version=versions[s])
                versions[s] += 1

        try:
            return _rate(count, work)
        finally:
            log.close()

    def append_batch(self, count: int) -> tuple[float, float]:
        log = self.open("batch.db")

        def work() -> None:
            for b in range(count // BATCH):
                log.append(f"visit-{b % STREAMS}", [
                    NewEvent("visit.recorded", _payload(b * BATCH + j)) for j in range(BATCH)
                ])  # fmt: skip

        try:
            return _rate(count // BATCH * BATCH, work)
        finally:
            log.close()

    def read(self, count: int) -> tuple[float, float]:
        log = self.open("batch.db")
        seen = 0

        def work() -> None:
            nonlocal seen
            for record in log.read():
                seen += record.data is not None

        try:
            return _rate(count // BATCH * BATCH, work)
        finally:
            log.close()
            assert seen == count // BATCH * BATCH, seen

    def verify(self, count: int) -> tuple[float, float]:
        log = self.open("batch.db")
        report = None

        def work() -> None:
            nonlocal report
            report = log.verify()

        try:
            return _rate(count // BATCH * BATCH, work)
        finally:
            log.close()
            assert report is not None and report.ok, report


class _Peer:
    """The same work through eventsourcing 9.x's SQLiteApplicationRecorder."""

    name = "peer"

    def __init__(self, folder: Path) -> None:
        from eventsourcing.persistence import StoredEvent
        from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

        self.folder = folder
        self.StoredEvent = StoredEvent
        self._datastore, self._recorder = SQLiteDatastore, SQLiteApplicationRecorder
        self.streams = [uuid.uuid4() for _ in range(STREAMS)]
        self.synchronous: int | None = None

    def open(self, name: str) -> tuple[Any, Any]:
        store = self._datastore(str(self.folder / name))
        pool = store.pool
        make = pool._create_connection

        def full_sync() -> Any:  # the same durability as ours: fsync on every commit
            conn = make()
            conn._sqlite_conn.execute("PRAGMA synchronous=FULL")
            return conn

        pool._create_connection = full_sync  # type: ignore[method-assign]
        recorder = self._recorder(store)
        recorder.create_table()
        with store.transaction(commit=False) as cur:
            cur.execute("PRAGMA synchronous")
            self.synchronous = cur.fetchone()[0]
        return store, recorder

    def _event(self, i: int, stream: int, version: int) -> Any:
        return self.StoredEvent(
            originator_id=self.streams[stream], originator_version=version,
            topic="visits.domain:Visit.Recorded", state=json.dumps(_payload(i)).encode(),
        )  # fmt: skip

    def append_single(self, count: int) -> tuple[float, float]:
        store, recorder = self.open("single.db")
        versions = [0] * STREAMS

        def work() -> None:
            for i in range(count):
                s = i % STREAMS
                versions[s] += 1
                recorder.insert_events([self._event(i, s, versions[s])])

        try:
            return _rate(count, work)
        finally:
            store.close()

    def append_batch(self, count: int) -> tuple[float, float]:
        store, recorder = self.open("batch.db")
        versions = [0] * STREAMS

        def work() -> None:
            for b in range(count // BATCH):
                s = b % STREAMS
                events = [self._event(b * BATCH + j, s, versions[s] + 1 + j) for j in range(BATCH)]
                versions[s] += BATCH
                recorder.insert_events(events)

        try:
            return _rate(count // BATCH * BATCH, work)
        finally:
            store.close()

    def read(self, count: int) -> tuple[float, float]:
        store, recorder = self.open("batch.db")
        seen = 0

        def work() -> None:
            nonlocal seen
            start, page = 1, log_module.PAGE
            while True:
                notifications = recorder.select_notifications(start, page)
                for n in notifications:
                    seen += n.state is not None
                if len(notifications) < page:
                    return
                start = notifications[-1].id + 1

        try:
            return _rate(count // BATCH * BATCH, work)
        finally:
            store.close()
            assert seen == count // BATCH * BATCH, seen


class _Floor:
    """Bare `sqlite3` doing the least a durable single-event append can: BEGIN IMMEDIATE, one
    INSERT into a table with a (stream, version) key, COMMIT; WAL, synchronous=FULL, a fresh
    file. What any SQLite event store pays per transaction, whatever its own code costs."""

    name = "sqlite_floor"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def append_single(self, count: int) -> tuple[float, float]:
        conn = sqlite3.connect(self.folder / "floor.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE events (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, "
                     "version INTEGER NOT NULL, data TEXT NOT NULL, UNIQUE (stream, version))")
        cur, versions = conn.cursor(), [0] * STREAMS

        def work() -> None:
            for i in range(count):
                s = i % STREAMS
                versions[s] += 1
                cur.execute("BEGIN IMMEDIATE")
                cur.execute("INSERT INTO events (stream, version, data) VALUES (?, ?, ?)",
                            (f"visit-{s}", versions[s], json.dumps(_payload(i))))
                cur.execute("COMMIT")

        try:
            return _rate(count, work)
        finally:
            conn.close()


def _fsync_ms(folder: Path, times: int = 50) -> float:
    """Median time to append 4 KiB to a file and fsync it: the floor under a durable commit."""
    spent = []
    with open(folder / "fsync.probe", "wb") as fh:
        for _ in range(times):
            start = time.perf_counter()
            fh.write(b"x" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
            spent.append(time.perf_counter() - start)
    return statistics.median(spent) * 1000


def bench_log(events: int = 20000, rounds: int = 5, single: int | None = None) -> dict:
    """Measure the log (and the peer, if installed); the medians over `rounds` as a dict.

    `single` events are appended one per transaction (default events // 10: each one waits for
    an fsync), `events` in batches of 100, then read back and verified.
    """
    single = single or max(100, events // 10)
    samples: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    try:
        import eventsourcing  # noqa: F401
    except ImportError:
        peer_missing = True
        _say("eventsourcing is not installed (pip install 'grassroots[bench]'): "
             "peer figures are left out")
    else:
        peer_missing = False
    synchronous = None
    for round_ in range(1, rounds + 1):
        with tempfile.TemporaryDirectory(prefix="grassroots-bench-") as tmp:
            ours_dir, peer_dir = Path(tmp, "ours"), Path(tmp, "peer")
            ours_dir.mkdir()
            peer_dir.mkdir()
            contenders: list[Any] = [_Ours(ours_dir), _Floor(Path(tmp))]
            if not peer_missing:
                contenders.append(_Peer(peer_dir))
            if round_ % 2 == 0:
                contenders.reverse()
            samples.setdefault("fsync_ms", []).append(_fsync_ms(Path(tmp)))
            for step, count in (("append_single", single), ("append_batch", events),
                                ("read", events), ("verify", events)):
                for who in contenders:
                    if not hasattr(who, step):
                        continue
                    rate, cpu_rate = getattr(who, step)(count)
                    key = f"{step}_ev_s" if who.name == "ours" else f"{who.name}_{step}_ev_s"
                    samples.setdefault(key, []).append(rate)
                    cpu.setdefault(key, []).append(cpu_rate)
                    _say(f"round {round_}/{rounds}: {key:<24} {rate:>10,.0f}/s  "
                         f"(by CPU time {cpu_rate:>9,.0f}/s)")
                    synchronous = getattr(who, "synchronous", synchronous)
    result: dict[str, Any] = {
        "events": events, "single_events": single, "batch_size": BATCH, "rounds": rounds,
        "sqlite_version": sqlite3.sqlite_version, "python": platform.python_version(),
    }  # fmt: skip
    result.update({k: round(statistics.median(v)) for k, v in samples.items()})
    result["fsync_ms"] = round(statistics.median(samples["fsync_ms"]), 3)
    if peer_missing:
        result["peer"] = "eventsourcing not installed"
    else:
        from importlib.metadata import version

        result["peer"] = f"eventsourcing {version('eventsourcing')} SQLiteApplicationRecorder"
        result["peer_synchronous"] = synchronous
        result["append_single_vs_peer"] = round(
            result["append_single_ev_s"] / result["peer_append_single_ev_s"], 2
        )
        result["peer_single_vs_sqlite_floor"] = round(
            result["peer_append_single_ev_s"] / result["sqlite_floor_append_single_ev_s"], 2
        )
        # batches wait for an fsync too, whose time drifts on shared machines: the ratio by
        # CPU time says what each library's own work costs
        result["append_batch_vs_peer"] = round(
            result["append_batch_ev_s"] / result["peer_append_batch_ev_s"], 2
        )
        result["append_batch_cpu_vs_peer"] = round(
            statistics.median(cpu["append_batch_ev_s"])
            / statistics.median(cpu["peer_append_batch_ev_s"]), 2
        )
    result["append_single_vs_sqlite_floor"] = round(
        result["append_single_ev_s"] / result["sqlite_floor_append_single_ev_s"], 2
    )
    met = {k: result[k] >= v for k, v in TARGETS.items()}
    if not peer_missing:
        met["append_single_ev_s"] = result["append_single_vs_peer"] >= SINGLE_VS_PEER
        met["append_batch_vs_peer"] = result["append_batch_vs_peer"] >= BATCH_VS_PEER
    result["targets_met"] = met
    result["cpu_ev_s"] = {k: round(statistics.median(v)) for k, v in cpu.items()}
    result["samples"] = {k: [round(x, 3 if k == "fsync_ms" else None) for x in v]
                         for k, v in samples.items()}
    return result


def district_options(parser: argparse.ArgumentParser) -> None:
    """The options of `bench district` (here, so the CLI can offer them without importing
    the services the district bench needs)."""
    group = parser.add_argument_group("district")
    group.add_argument("--cadres", type=int, default=5000, help="district: cadres")
    group.add_argument("--months", type=int, default=12, help="district: months of visits")
    group.add_argument("--seed", type=int, default=7, help="district: random seed")
    group.add_argument("--commands", type=int, default=2000,
                       help="district: visits decided for service_commands_s")
    group.add_argument("--appends", type=int, default=4000,
                       help="district: single-event appends for the concurrent figures")
    group.add_argument("--cache", type=Path, default=Path("var/bench"),
                       help="district: where built logs are kept and reused")
    group.add_argument("--quick", action="store_true",
                       help="district: a small district and short runs (tests, smoke)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grassroots bench", description=__doc__)
    parser.add_argument("what", choices=["log", "district", "rebuild"], help="what to measure")
    parser.add_argument("--events", type=int, default=20000, help="events to append in batches")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--single", type=int, default=None,
                        help="events appended one per transaction (default: events / 10)")
    district_options(parser)
    args = parser.parse_args(argv)
    if args.what == "district":
        from shared.tools.bench_district import bench_district

        print(json.dumps(bench_district(args), indent=2))
        return 0
    if args.what == "rebuild":
        from shared.tools.bench_rebuild import bench_rebuild

        print(json.dumps(bench_rebuild(args), indent=2))
        return 0
    if args.events < BATCH:
        parser.error(f"--events must be at least {BATCH}")
    result = bench_log(args.events, rounds=args.rounds, single=args.single)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
