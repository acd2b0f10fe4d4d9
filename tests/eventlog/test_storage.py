"""How the log uses its database: the preallocated SQLite WAL, the kept writer connection,
recorded time that never goes back, and reads that let go of each page."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import shared.eventlog.log as log_module
from shared.eventlog import EventLog, NewEvent, storage
from shared.eventlog.storage import WAL_FRAME_HEADER, WAL_HEADER, WAL_SPARE_FRAMES
from shared.runtime.config import ROOT


def _wal_target(db: Path) -> int:
    with sa.create_engine(f"sqlite:///{db}", poolclass=NullPool).connect() as conn:
        page = conn.exec_driver_sql("PRAGMA page_size").scalar()
        frames = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    return WAL_HEADER + (frames + WAL_SPARE_FRAMES) * (page + WAL_FRAME_HEADER)


def test_opening_a_sqlite_log_grows_its_wal_to_working_size_once(tmp_path):
    db = tmp_path / "log.db"
    log = EventLog.open(f"sqlite:///{db}", service="visits")
    wal = Path(f"{db}-wal")
    size = wal.stat().st_size
    assert size >= _wal_target(db)
    log.append("a", [NewEvent("visit.recorded", {"n": 1})])
    again = EventLog.open(f"sqlite:///{db}", service="visits")
    assert wal.stat().st_size == size, "a second open leaves a full-size WAL alone"
    assert [r.data for r in again.read()] == [{"n": 1}] and again.verify().ok
    again.close()
    log.close()


def test_an_in_memory_log_has_no_wal_to_grow():
    log = EventLog.open("sqlite://", service="visits")
    log.append("a", [NewEvent("visit.recorded", {"n": 1})])
    assert [r.data for r in log.read()] == [{"n": 1}]


CRASH = textwrap.dedent("""
    import os, sys
    from shared.eventlog import EventLog, NewEvent
    log = EventLog.open(sys.argv[1], service="visits")
    for n in range(int(sys.argv[2])):
        log.append(f"s-{n % 3}", [NewEvent("visit.recorded", {"n": n})])
    os._exit(0)  # no close, no checkpoint: the WAL keeps its frames, then the zeros
""")


def test_a_crash_leaves_the_committed_frames_before_the_zeros_and_they_all_come_back(tmp_path):
    db = tmp_path / "log.db"
    url = f"sqlite:///{db}"
    subprocess.run([sys.executable, "-c", CRASH, url, "120"], check=True, cwd=ROOT, timeout=120)
    wal = Path(f"{db}-wal")
    assert wal.stat().st_size >= _wal_target(db)
    with wal.open("rb") as fh:  # the WAL still holds frames (it was never checkpointed away)
        assert fh.read(4) in (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")
    log = EventLog.open(url, service="visits")
    assert [r.data["n"] for r in log.read()] == list(range(120))
    assert log.verify().ok
    log.append("s-0", [NewEvent("visit.recorded", {"n": 120})], expected_version=40)
    assert log.last_position() == 121
    log.close()


def test_recorded_time_never_goes_back_even_when_the_clock_does(log, monkeypatch):
    log.append("a", [NewEvent("visit.recorded", {"recorded_at": "9999-12-31T00:00:00+00:00"})])
    [first] = log.read()
    assert first.recorded_at < datetime(9999, 1, 1, tzinfo=UTC), "data's key is not the record's"

    class Behind(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return datetime.now(tz) - timedelta(hours=1)

    monkeypatch.setattr(log_module, "datetime", Behind)
    log.append("a", [NewEvent("visit.recorded", {"n": 2})])
    _, second = log.read()
    assert second.recorded_at == first.recorded_at


def test_a_failed_append_leaves_the_writer_usable(log):
    log.append("a", [NewEvent("visit.recorded", {"n": 1})])
    with pytest.raises(log_module.ConcurrencyError):
        log.append("a", [NewEvent("visit.recorded", {"n": 2})], expected_version=0)
    assert log.append("a", [NewEvent("visit.recorded", {"n": 2})], expected_version=1) == [2]


def test_appends_and_reads_survive_the_database_dropping_every_connection(pg_url):
    log = EventLog.open(pg_url, service="visits")
    log.append("a", [NewEvent("visit.recorded", {"n": 1})])
    assert len(list(log.read())) == 1  # read on the appends' connection
    with log.engine.connect() as conn:  # what reads use while an append holds that one
        conn.exec_driver_sql("SELECT 1")
    killer = sa.create_engine(pg_url, poolclass=NullPool)
    with killer.begin() as conn:
        killed = conn.exec_driver_sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).scalar()
    killer.dispose()
    assert killed >= 2
    assert [r.data["n"] for r in log.read()] == [1]  # the appends' connection is dead
    assert log.append("a", [NewEvent("visit.recorded", {"n": 2})], expected_version=1) == [2]
    assert [r.data["n"] for r in log.read()] == [1, 2]
    assert log.verify().ok
    log.close()


def test_a_failure_in_the_middle_of_an_append_is_not_retried(pg_url, monkeypatch):
    """Only a dead connection found before anything was written is replaced silently."""
    log = EventLog.open(pg_url, service="visits")
    log.append("a", [NewEvent("visit.recorded", {"n": 1})])
    real = log._sql.insert
    monkeypatch.setattr(log._sql, "insert", "INSERT INTO no_such_table VALUES (%s, %s, %s, %s)")
    with pytest.raises(psycopg2.Error):
        log.append("a", [NewEvent("visit.recorded", {"n": 2})])
    monkeypatch.setattr(log._sql, "insert", real)
    assert log.append("a", [NewEvent("visit.recorded", {"n": 2})], expected_version=1) == [2]
    log.close()


def test_reading_and_verifying_a_long_log_keep_the_collector_idle(tmp_path):
    """Pages are small and let go before the next is fetched, so their rows die young: with
    2,000-row pages this read ran 11 young and 1 older collection, each older one walking
    every row still held (in a service's large heap, half of a read's time)."""
    log = EventLog.open(f"sqlite:///{tmp_path / 'log.db'}", service="visits")
    for b in range(20):
        log.append(f"s-{b}", [NewEvent("visit.recorded", {"n": n}) for n in range(500)])
    for walk in (lambda: sum(1 for _ in log.read()), lambda: log.verify().checked):
        gc.collect()
        before = [g["collections"] for g in gc.get_stats()]
        assert walk() == 10_000
        after = [g["collections"] for g in gc.get_stats()]
        young, older, oldest = (a - b for a, b in zip(after, before, strict=True))
        assert (older, oldest) == (0, 0) and young <= 2, (young, older, oldest)
    log.close()


def _durability(conn: sa.Connection) -> str:
    """How this connection's commits reach the disk: SQLite's `synchronous` (2 FULL,
    1 NORMAL), PostgreSQL's `synchronous_commit`."""
    if conn.dialect.name == "sqlite":
        return str(conn.connection.dbapi_connection.execute("PRAGMA synchronous").fetchone()[0])
    return str(conn.exec_driver_sql("SHOW synchronous_commit").scalar())


DURABLE = {"sqlite": "2", "postgresql": "on"}
LAZY = {"sqlite": "1", "postgresql": "off"}


@pytest.mark.parametrize("lazy", ["lazy_commit", "exclusive"])
def test_a_lazy_commit_is_lazy_for_its_transaction_only(db_url, lazy):
    """A view's or relay's checkpoint commits without waiting for the disk; the pooled
    connection it ran on is durable again after, so no append ever commits lazily."""
    if db_url.startswith("postgresql"):  # the tests' server runs with it off: on, as deployed
        with sa.create_engine(db_url, poolclass=NullPool).connect() as conn:
            name = conn.exec_driver_sql("SELECT current_database()").scalar()
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit TO on')
            conn.commit()
    log = EventLog.open(db_url, service="visits")
    engine = log.engine
    dialect = engine.dialect.name
    opened = (storage.lazy_commit(engine) if lazy == "lazy_commit"
              else storage.exclusive(engine, "test", durable=False))
    with opened as conn:
        assert _durability(conn) == LAZY[dialect]
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS lazy_probe (n INTEGER)")
        conn.exec_driver_sql("INSERT INTO lazy_probe VALUES (1)")
        used = conn.connection.dbapi_connection
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection is used, "the pool handed the same one back"
        assert _durability(conn) == DURABLE[dialect]
        assert conn.exec_driver_sql("SELECT count(*) FROM lazy_probe").scalar() == 1
    with storage.exclusive(engine, "test") as conn:
        assert _durability(conn) == DURABLE[dialect]
    log.append("a", [NewEvent("visit.recorded", {"n": 1})])
    assert _durability_of_writer(log) == DURABLE[dialect]
    log.close()


def _durability_of_writer(log: EventLog) -> str:
    cur = log._writer.cursor()
    if log.engine.dialect.name == "sqlite":
        cur.execute("PRAGMA synchronous")
    else:
        cur.execute("SHOW synchronous_commit")
    value = str(cur.fetchone()[0])
    log._writer.commit()
    return value


def test_a_lazy_connection_that_cannot_be_made_durable_again_is_discarded(tmp_path):
    engine = storage.make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    import sqlite3

    def no_full(action: int, name: str | None, value: str | None, *_: object) -> int:
        refused = action == sqlite3.SQLITE_PRAGMA and name == "synchronous" and value == "FULL"
        return sqlite3.SQLITE_DENY if refused else sqlite3.SQLITE_OK

    with pytest.raises(sqlite3.DatabaseError), storage.lazy_commit(engine) as conn:
        used = conn.connection.dbapi_connection
        used.set_authorizer(no_full)  # the reset after the block will be refused
    assert engine.pool.checkedout() == 0
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection is not used
        assert _durability(conn) == "2"
    engine.dispose()
