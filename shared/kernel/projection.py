"""Views are folds: projection machinery shared by every read model.

A projection turns records into rows (`apply`); the projector applies records idempotently,
storing each source log's checkpoint in the same transaction as the rows it produced. Live
delivery, catching up, rebuilding from scratch and building *as of* an instant all go through
`Projector.apply_batch`: one code path. A projection may fold several services' logs: its
checkpoints are kept per source.

A projection may fold a whole page at once (`apply_page`): it loads what the page touches,
folds in memory and writes the result in a few statements, instead of a round trip per
record. It may keep its facts by log position (made true at one position, ended at another),
so that a view *as of* an instant is a query at `Projector.position_at(instant)` rather than
a refold. A projection declares the `version` of its layout: a database holding another
version is dropped and refolded from the logs when it is opened.
"""

from __future__ import annotations

import gc
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from operator import attrgetter
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from shared.eventlog import Record
from shared.eventlog.storage import exclusive, make_engine, placeholder

log = logging.getLogger(__name__)
checkpoint_metadata = MetaData()
projection_checkpoints = Table(
    "projection_checkpoints",
    checkpoint_metadata,
    Column("projection", String(100), primary_key=True),
    Column("source", String(100), primary_key=True),
    Column("position", BigInteger, nullable=False),
    # The hash of the last record applied: the next one must chain onto it (its prev_hash),
    # so a view never folds events of another log, or of a log that was replaced.
    Column("hash", String(64), nullable=True),
)
# The layout version each projection's tables were made with. A database from before this
# table existed holds version 1 of every projection that has checkpoints.
projection_versions = Table(
    "projection_versions",
    checkpoint_metadata,
    Column("projection", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
)
# Read `limit` records of `source` after a position, optionally only those recorded by `until`.
Fetch = Callable[[str, int, int, datetime | None], Sequence[Record]]
Progress = Callable[[str, int], None]
AS_OF_WINDOW = 500  # positions read at once to end `position_at`'s search (a log's page)
# A catch-up that meets a page this long (or as long as it asked for) is a long one: see
# `_older_objects_set_aside`. Not `page` alone: a log read over RPC answers 2,000 at most.
LONG_PAGE = 1000


def waits(fetch: Fetch) -> bool:
    """Whether `fetch` waits on another process (it says so: `waits = True`, as the views'
    reader of remote logs does), so a long catch-up reads its next page while it folds.

    A read in this process would only share the CPU with the fold: in an OS thread beside it,
    the two handed the GIL to each other at every SQLite step, and an in-process district
    rebuild took 5.2 s of CPU against 3.2 s reading page after page."""
    return bool(getattr(fetch, "waits", False))


class Projection(Protocol):
    name: str
    sources: tuple[str, ...]
    metadata: MetaData

    def apply(self, conn: Connection, record: Record) -> None:
        """Change the view's rows for one record (called once per record, in order)."""


class PageProjection(Projection, Protocol):
    """A projection that folds a page of records in memory and writes the result at once."""

    def apply_page(self, conn: Connection, records: Sequence[Record]) -> None:
        """Change the view's rows for these records (new ones, in log order)."""


class PagedProjection(ABC):
    """The base of a projection that folds a page at a time (`apply_page`): one record is a
    page of one."""

    name: str
    sources: tuple[str, ...]
    metadata: MetaData
    version = 1

    def apply(self, conn: Connection, record: Record) -> None:
        self.apply_page(conn, [record])

    @abstractmethod
    def apply_page(self, conn: Connection, records: Sequence[Record]) -> None:
        """Change the view's rows for these records (new ones, in log order)."""


def version_of(projection: Projection) -> int:
    """The projection's layout version (1 unless it declares `version`)."""
    return int(getattr(projection, "version", 1))


def driver_cursor(conn: Connection) -> tuple[Any, str]:
    """The database driver's own cursor on `conn`, in its transaction, and the driver's
    parameter mark. For what a view runs for every event delivered, or for thousands of rows:
    there SQLAlchemy's statement machinery (building, cache keys, result rows) cost more than
    the statements themselves (by py-spy, a fifth of the cases intake)."""
    return conn.connection.cursor(), placeholder(conn.dialect.name)


class Projector:
    """Applies records to one projection's tables, exactly once per position and source."""

    def __init__(self, projection: Projection, engine: Engine) -> None:
        self.projection = projection
        self.engine = engine
        self._lock = threading.RLock()  # one writer of the view's tables at a time
        self._catching_up = threading.Lock()  # one catch-up at a time
        self.rebuilding = False
        with exclusive(engine, "grassroots.schema") as conn:
            checkpoint_metadata.create_all(conn)
            self._upgrade(conn)
            projection.metadata.create_all(conn)

    @classmethod
    def open(cls, projection: Projection, url: str) -> Projector:
        return cls(projection, make_engine(url))

    @classmethod
    def in_memory(cls, projection: Projection) -> Projector:
        """A throwaway projector, for views built as of an instant."""
        engine = make_engine("sqlite://", poolclass=StaticPool,
                             connect_args={"check_same_thread": False})
        return cls(projection, engine)

    def _upgrade(self, conn: Connection) -> None:
        """A layout of another version is dropped (the next catch-up refolds the logs)."""
        c, v = projection_checkpoints.c, projection_versions.c
        stored = conn.execute(select(v.version).where(v.projection == self.name)).scalar()
        if stored is None and conn.execute(select(c.position).where(
                c.projection == self.name).limit(1)).first() is not None:
            stored = 1
        wanted = version_of(self.projection)
        if stored == wanted:
            return
        if stored is not None:
            log.warning("%s: the view's layout is version %s, this code's is %s: dropping it "
                        "to refold it from the logs", self.name, stored, wanted)
            for name in getattr(self.projection, "retired_tables", ()):
                conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
            self.projection.metadata.drop_all(conn)
            conn.execute(projection_checkpoints.delete().where(c.projection == self.name))
            conn.execute(projection_versions.delete().where(v.projection == self.name))
        conn.execute(projection_versions.insert().values(projection=self.name, version=wanted))

    def checkpoints(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {source: position for source, (position, _) in self._heads(conn).items()}

    def apply_batch(self, records: Iterable[Record]) -> tuple[int, bool]:
        """Apply records in order, in one transaction; returns (applied, stopped_at_gap).

        A record at or below its source's checkpoint is a redelivery and changes nothing; one
        beyond checkpoint + 1, or one that does not chain onto the last applied record, means
        something was missed: stop, so the caller catches up from the log. The transaction is
        exclusive per projection, so replicas never apply the same record twice. Its commit
        does not wait for the disk (`storage.lazy_commit`): a power cut can only take the view
        back to an earlier checkpoint, from which it folds the log again.
        """
        records = records if isinstance(records, Sequence) else list(records)
        with self._lock, exclusive(self.engine, f"grassroots.projection.{self.name}",
                                   durable=False) as conn:
            heads = self._heads(conn)
            new, gap = _continuation(records, heads), False
            if not new:
                new, gap = _accepted(records, heads)
            if new:
                apply_page = getattr(self.projection, "apply_page", None)
                if apply_page is not None:
                    apply_page(conn, new)
                else:
                    for record in new:
                        self.projection.apply(conn, record)
                self._save(conn, heads)
        return len(new), gap

    @property
    def name(self) -> str:
        return self.projection.name

    def _heads(self, conn: Connection) -> dict[str, tuple[int, str | None]]:
        cur, mark = driver_cursor(conn)  # once per page applied
        cur.execute("SELECT source, position, hash FROM projection_checkpoints "
                    f"WHERE projection = {mark}", (self.name,))
        found = {source: (position, hash_) for source, position, hash_ in cur.fetchall()}
        return {source: found.get(source, (0, None)) for source in self.projection.sources}

    def _save(self, conn: Connection, heads: dict[str, tuple[int, str | None]]) -> None:
        cur, mark = driver_cursor(conn)
        for source, (position, hash_) in heads.items():
            cur.execute(f"UPDATE projection_checkpoints SET position = {mark}, hash = {mark} "
                        f"WHERE projection = {mark} AND source = {mark}",
                        (position, hash_, self.name, source))
            if not cur.rowcount:
                conn.execute(projection_checkpoints.insert().values(
                    projection=self.name, source=source, position=position, hash=hash_))

    def catch_up(
        self, fetch: Fetch, *, until: datetime | None = None, page: int = 2000,
        progress: Progress | None = None, wait: bool = True,
    ) -> int:
        """Pull every source's log from the checkpoint on and apply it; returns how many.

        One catch-up runs at a time; with `wait=False` a call made while another runs returns
        0 at once (that one, or the next, folds what this one would have). Pages are fetched
        without holding the view: a fetch is a remote call that may take its whole timeout
        when the broker is in trouble, and meanwhile live deliveries go on applying what
        continues the checkpoint (a page then holds records already applied, which
        `apply_batch` skips). A chaos run showed why: every worker of a view waiting behind one
        slow catch-up, until the view could not even answer `status`.
        """
        if not self._catching_up.acquire(blocking=wait):
            return 0
        try:
            return self._catch_up_all(fetch, until, page, progress)
        finally:
            self._catching_up.release()

    def _catch_up_all(self, fetch: Fetch, until: datetime | None, page: int,
                      progress: Progress | None) -> int:
        total = 0
        with ExitStack() as aside:
            for source in self.projection.sources:
                total += self._catch_up_source(fetch, source, until, page, progress, aside)
        return total

    def _catch_up_source(self, fetch: Fetch, source: str, until: datetime | None, page: int,
                         progress: Progress | None, aside: ExitStack) -> int:
        total, ahead = 0, None
        try:
            while True:
                after = self.checkpoints()[source]
                records = ahead.take(after) if ahead is not None else None
                ahead = None
                if records is None:
                    records = fetch(source, after, page, until)
                if not records:
                    return total
                if len(records) >= min(page, LONG_PAGE):  # a long catch-up
                    if gc.get_freeze_count() == 0:
                        aside.enter_context(_older_objects_set_aside())  # see there
                    if waits(fetch):
                        ahead = _Ahead(fetch, source, records[-1].position, page, until)
                applied, _ = self.apply_batch(records)
                total += applied
                if progress is not None:
                    progress(source, records[-1].position)
                if applied == 0 and self.checkpoints()[source] == after:
                    log.error(
                        "%s: the %s log at position %d does not continue the history this "
                        "view was built from (was the log replaced?); rebuild the view",
                        self.name, source, records[0].position)
                    return total
        finally:
            if ahead is not None:  # stopped by an error: the read in flight ends unused
                ahead.drop()

    def position_at(self, fetch: Fetch, source: str, instant: datetime) -> int:
        """The last position of `source` recorded by `instant` (0: none), with the view caught
        up at least that far, so facts kept by position answer "as of `instant`".

        Recorded time never goes back along a log, so the positions recorded by an instant are
        a prefix: a binary search of one-record reads down to a window of `AS_OF_WINDOW`
        positions, then one read of that window counts the rest (a log reads a page of that
        size for one record anyway): about 10 reads for 170k records, not 18.
        """
        def recorded_by(position: int) -> bool:
            return bool(fetch(source, position - 1, 1, instant))

        high = self.checkpoints()[source]
        if fetch(source, high, 1, instant):  # the view lags behind the instant
            self.catch_up(fetch)
            high = self.checkpoints()[source]
        if high == 0 or recorded_by(high):
            return high
        low = 0  # recorded_by(low) holds (position 0: before the log), recorded_by(high) not
        while high - low > AS_OF_WINDOW:
            middle = (low + high) // 2
            if recorded_by(middle):
                low = middle
            else:
                high = middle
        return low + len(fetch(source, low, high - low, instant))  # `high` is not among them

    def reset(self) -> None:
        """Drop the view and its checkpoints: the next catch-up rebuilds from scratch."""
        with self._lock:
            self.projection.metadata.drop_all(self.engine)
            with self.engine.begin() as conn:
                conn.execute(projection_checkpoints.delete().where(
                    projection_checkpoints.c.projection == self.projection.name))
            self.projection.metadata.create_all(self.engine)

    def rebuild(self, fetch: Fetch, progress: Progress | None = None, page: int = 10000) -> int:
        """Reset and fold every source log again; live deliveries wait meanwhile (or, from
        the bus, leave it to the rebuild and the catch-ups after it: `deliver`).

        Pages are larger than a catch-up's: each costs a transaction, the checkpoints and the
        view's lookups, and nobody waits for a rebuild's first rows (a remote log caps them).
        A catch-up in progress is waited for first, as the tables' lock is taken after it
        everywhere.
        """
        with self._catching_up, self._lock:
            self.rebuilding = True
            try:
                self.reset()
                return self._catch_up_all(fetch, None, page, progress)
            finally:
                self.rebuilding = False


class _Ahead:
    """The next page of a long catch-up from a log read remotely (`waits`), read while the
    page before is folded.

    Over RPC a page is read, encoded and sent by the source's service while this one waits,
    then folded while that one waits: reading the next page meanwhile keeps both at work. A
    thread of its own (a green thread in a service, whose threading eventlet patched). The
    page is used only if the checkpoint is where the read began, else read again; a read
    that failed raises where the page is taken, as a read made then would have.
    """

    def __init__(self, fetch: Fetch, source: str, after: int, page: int,
                 until: datetime | None) -> None:
        self.after = after
        self._records: Sequence[Record] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, daemon=True,
                                        args=(fetch, source, after, page, until))
        self._thread.start()

    def _read(self, fetch: Fetch, source: str, after: int, page: int,
              until: datetime | None) -> None:
        try:
            self._records = fetch(source, after, page, until)
        except BaseException as exc:  # noqa: BLE001 - raised where the page is taken
            self._error = exc

    def take(self, after: int) -> Sequence[Record] | None:
        """The page if it was read from `after` (None: read it again)."""
        self.drop()
        if after != self.after:
            return None
        if self._error is not None:
            raise self._error
        return self._records

    def drop(self) -> None:
        """Wait for the read to end (its page unused unless taken)."""
        self._thread.join()


@contextmanager
def _older_objects_set_aside() -> Iterator[None]:
    """While pages are folded, the collector walks only the objects they make.

    A page's records outlive a few young collections, so they are promoted, and then every
    full collection walked the whole heap as well (the modules, the runtime, the service's
    state): a third of a rebuild's time. `gc.freeze` sets aside what was alive before and
    `gc.unfreeze` gives it back to the oldest generation, so only garbage among those older
    objects waits, until the first full collection after.

    Only a catch-up that meets a long page does this. Every view ticks a catch-up each 5 s,
    and when each tick froze the heap, a full collection never came: the cyclic garbage every
    tick's RPC connection leaves (128 KB of frame buffer each) piled up, and an idle view grew
    by 1.5 MB a minute (the hour-long soak; 130 KB a tick at a 0.2 s interval, flat without)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


_SOURCE, _POSITION = attrgetter("source"), attrgetter("position")
_PREV_HASH, _HASH = attrgetter("prev_hash"), attrgetter("hash")


def _continuation(records: Sequence[Record], heads: dict[str, tuple[int, str | None]]
                  ) -> list[Record]:
    """`records` if all of them simply continue one source's log from its checkpoint (the
    usual page of a catch-up or rebuild), with `heads` moved on; else [] and `heads` as they
    were, for the record-by-record check. Checked in C loops: a rebuild's pages are 10,000
    records, and the check per record cost as much as folding it."""
    if not records or len(set(map(_SOURCE, records))) != 1:
        return []
    first, last = records[0], records[-1]
    if first.source not in heads:
        return []
    position, hash_ = heads[first.source]
    if (list(map(_POSITION, records)) != list(range(position + 1, last.position + 1))
            or (hash_ and first.prev_hash != hash_)
            or list(map(_PREV_HASH, records[1:])) != list(map(_HASH, records[:-1]))):
        return []
    heads[first.source] = (last.position, last.hash)
    return list(records)


def _accepted(records: Iterable[Record], heads: dict[str, tuple[int, str | None]]
              ) -> tuple[list[Record], bool]:
    """The records that continue their sources' logs, one by one (`heads` moved on), and
    whether a gap stopped them; redeliveries and other logs' records are skipped."""
    new: list[Record] = []
    for record in records:
        if record.source not in heads:
            continue  # not a log this projection folds
        last, last_hash = heads[record.source]
        if record.position <= last:
            continue
        if record.position != last + 1 or (last_hash and record.prev_hash != last_hash):
            return new, True
        new.append(record)
        heads[record.source] = (record.position, record.hash)
    return new, False


def build_as_of(projection: Projection, fetch: Fetch, instant: datetime) -> Projector:
    """The view as it stood at `instant`, built with the same code as the live one."""
    projector = Projector.in_memory(projection)
    projector.catch_up(fetch, until=instant)
    return projector
