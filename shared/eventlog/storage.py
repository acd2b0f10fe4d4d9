"""Tables, triggers and engine set-up for SQLite and PostgreSQL.

SQLite runs in WAL mode with synchronous=FULL so an acknowledged append survives a power cut;
appends take `BEGIN IMMEDIATE`, which serialises writers. PostgreSQL takes an EXCLUSIVE table
lock for the append transaction (readers are not blocked), so positions commit in order and a
reader tailing by position never skips one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

# PostgreSQL: a server that is away is reported within this many seconds, not after the
# operating system's TCP timeout, so a write fails fast (503) instead of holding its caller.
CONNECT_SECONDS = 2

# The log stores each record as the exact canonical JSON that was hashed (`record`); the
# columns that queries need are generated from it by the database, so they can never disagree
# with what the chain vouches for.
GENERATED = {
    "sqlite": {
        "stream": "json_extract(record, '$.stream')",
        "version": "json_extract(record, '$.version')",
        "type": "json_extract(record, '$.type')",
        "command_id": "json_extract(record, '$.command_id')",
    },
    "postgresql": {
        "stream": "(record::jsonb ->> 'stream')",
        "version": "((record::jsonb ->> 'version')::integer)",
        "type": "(record::jsonb ->> 'type')",
        "command_id": "(record::jsonb ->> 'command_id')",
    },
}


def log_table(dialect: str) -> Table:
    """The log table for a dialect (the generated-column expressions differ)."""
    expr = GENERATED["postgresql" if dialect == "postgresql" else "sqlite"]
    table = Table(
        "event_log",
        MetaData(),
        Column("position", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
               autoincrement=False),
        Column("record", Text, nullable=False),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
        Column("stream", String(200), Computed(expr["stream"], persisted=True)),
        Column("version", Integer, Computed(expr["version"], persisted=True)),
        Column("type", String(200), Computed(expr["type"], persisted=True)),
        Column("command_id", String(200), Computed(expr["command_id"], persisted=True)),
        UniqueConstraint("stream", "version", name="uq_event_log_stream_version"),
    )
    # Only commands are looked up, never the events without one: a partial index spares
    # those appends an index page in every commit.
    with_command = table.c.command_id.is_not(None)
    Index("ix_event_log_command_id", table.c.command_id,
          sqlite_where=with_command, postgresql_where=with_command)
    Index(TYPE_INDEX, table.c.type, table.c.position)
    return table


TYPE_INDEX = "ix_event_log_type_position"


SQLITE_TRIGGERS = [
    "CREATE TRIGGER IF NOT EXISTS event_log_no_update BEFORE UPDATE ON event_log "
    "BEGIN SELECT RAISE(ABORT, 'event_log is append-only: UPDATE refused'); END",
    "CREATE TRIGGER IF NOT EXISTS event_log_no_delete BEFORE DELETE ON event_log "
    "BEGIN SELECT RAISE(ABORT, 'event_log is append-only: DELETE refused'); END",
]
POSTGRES_TRIGGERS = [
    "CREATE OR REPLACE FUNCTION event_log_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'event_log is append-only: % refused', TG_OP; END $$",
    "CREATE OR REPLACE TRIGGER event_log_no_update BEFORE UPDATE OR DELETE ON event_log "
    "FOR EACH ROW EXECUTE FUNCTION event_log_refuse()",
    "CREATE OR REPLACE TRIGGER event_log_no_truncate BEFORE TRUNCATE ON event_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION event_log_refuse()",
]


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the durability and locking settings the log relies on; a SQLite
    database's folder is made (mode 0700) if missing.

    PostgreSQL connections are tested on checkout, so a pool outliving a server restart hands
    out live ones (the cost is one round trip per page of a read), and a connection attempt
    gives up after CONNECT_SECONDS.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("connect_args", {"connect_timeout": CONNECT_SECONDS})
    elif parsed.database and parsed.database != ":memory:" and not parsed.database.startswith(
        "file:"
    ):  # SQLite makes the file, not its folder (var/keys/ for keys kept apart): a private one
        Path(parsed.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    return engine


def outage(engine: Engine, exc: BaseException) -> bool:
    """True when `exc` says the database is away (down, restarting, unreachable, locked or
    out of space), not that the statement was wrong: the same request may succeed later.

    Appends run on the driver's own cursor, so its errors come unwrapped as well as wrapped
    in SQLAlchemy's."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    dbapi = engine.dialect.dbapi
    return dbapi is not None and isinstance(exc, dbapi.OperationalError | dbapi.InterfaceError)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN itself
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('sqlite_begin', '')}")


@contextmanager
def exclusive(engine: Engine, name: str, *, durable: bool = True) -> Iterator[Connection]:
    """A write transaction that one process at a time holds for `name`.

    PostgreSQL: a transaction-scoped advisory lock (replicas opening a fresh database race to
    create its tables; projection replicas race to apply the same record). SQLite: BEGIN
    IMMEDIATE, which takes the database's single write lock up front. `durable=False`: see
    `lazy_commit`.
    """
    with _transaction(engine, durable, sqlite_begin="IMMEDIATE") as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
        yield conn


@contextmanager
def lazy_commit(engine: Engine) -> Iterator[Connection]:
    """A write transaction whose commit returns without waiting for the disk.

    For what is only ever behind the log and is made good from it: a view's rows with their
    checkpoint, a relay's checkpoint. A power cut may undo the last few such commits, never
    part of one; the work after the checkpoint is then done again, which their readers take
    (a view applies a record once, consumers take a message twice). It spares each of them a
    durable commit, which blocks a service's hub for its whole fsync. PostgreSQL:
    `synchronous_commit` off for the transaction; SQLite (WAL): the connection's
    `synchronous` NORMAL for it, FULL again after (the log's own commits stay FULL, and
    each of them makes what came before it durable too).
    """
    with _transaction(engine, False) as conn:
        yield conn


@contextmanager
def _transaction(engine: Engine, durable: bool, sqlite_begin: str = "") -> Iterator[Connection]:
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            if not durable:
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            yield conn
        return
    with engine.connect() as conn, _sqlite_synchronous(conn, durable):
        conn.execution_options(sqlite_begin=sqlite_begin)
        with conn.begin():
            yield conn


def roll_back(raw: Any) -> bool:
    """Roll back a driver-level connection's transaction; one that cannot even do that (it
    died) is invalidated, so its pool never hands it out again: False then."""
    try:
        raw.rollback()
        return True
    except Exception:  # noqa: BLE001 - the caller's own error is the one to raise
        raw.invalidate()
        return False


@contextmanager
def _sqlite_synchronous(conn: Connection, durable: bool) -> Iterator[None]:
    """SQLite's `synchronous` NORMAL on this connection for the block unless `durable`; set
    on the driver's connection, outside any transaction. Put back to FULL after, or the
    connection is discarded: a pooled connection must never hand the log a lazy commit."""
    if durable:
        yield
        return
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA synchronous=NORMAL")
    try:
        yield
    finally:
        try:
            raw.execute("PRAGMA synchronous=FULL")
        except Exception:
            conn.invalidate()
            raise


def create_schema(engine: Engine) -> None:
    """Create the log table and its append-only triggers (idempotent, safe across processes)."""
    with exclusive(engine, "grassroots.schema") as conn:
        table = log_table(engine.dialect.name)
        table.metadata.create_all(conn)
        for index in table.indexes:  # a log made before an index was added gets it now
            index.create(conn, checkfirst=True)
        triggers = POSTGRES_TRIGGERS if engine.dialect.name == "postgresql" else SQLITE_TRIGGERS
        for ddl in triggers:
            conn.execute(text(ddl))  # text() escapes the '%' psycopg2 would read as a param
        preallocate_wal(conn)


WAL_HEADER, WAL_FRAME_HEADER = 32, 24
WAL_SPARE_FRAMES = 64  # room for the transaction that crosses the auto-checkpoint mark


def preallocate_wal(conn: Connection) -> None:
    """Grow a SQLite database's write-ahead log to its working size, once, filled with zeros.

    A commit that appends to the WAL file changes its size, so its fdatasync must also write
    file-system metadata: measured here, 250-300 us against 100 us for a commit that overwrites
    blocks the file already has. SQLite reuses the WAL from the start after each checkpoint, so
    only the first ~1000 pages after the file is created (on every first open) pay that; this
    pays it once, up front, as PostgreSQL does by preallocating its WAL segments.

    Safe because it runs under the write lock (no other writer can be adding frames) and only
    extends the file: SQLite reads frames up to the end the WAL index records, and recovery
    stops at the first frame whose salt and checksum fail, which zeros always do.
    """
    if conn.dialect.name != "sqlite":
        return
    pragma = conn.exec_driver_sql
    if str(pragma("PRAGMA journal_mode").scalar()).lower() != "wal":
        return
    path = next((row[2] for row in pragma("PRAGMA database_list") if row[1] == "main"), "")
    if not path:  # an in-memory or temporary database
        return
    frames = int(pragma("PRAGMA wal_autocheckpoint").scalar() or 0) + WAL_SPARE_FRAMES
    page = int(pragma("PRAGMA page_size").scalar() or 4096)
    size = WAL_HEADER + frames * (page + WAL_FRAME_HEADER)
    try:
        with open(f"{path}-wal", "r+b") as fh:
            have = fh.seek(0, os.SEEK_END)
            if have >= size:
                return
            zeros = bytes(1 << 20)
            while have < size:
                have += fh.write(zeros[: size - have])
            fh.flush()
            os.fsync(fh.fileno())
    except FileNotFoundError:  # SQLite has not opened its WAL yet: it will grow as usual
        return


READ = "position, record, prev_hash, hash"


def placeholder(dialect: str) -> str:
    """The DBAPI parameter mark of the dialect's driver (sqlite3: `?`, psycopg2: `%s`)."""
    return "?" if dialect == "sqlite" else "%s"


class Statements:
    """The log's hot-path SQL, rendered once per dialect and run on the pooled DBAPI cursor.

    Append and page reads bypass SQLAlchemy's result machinery: it costs more than the
    statement itself at the rates the log is asked to sustain (see `grassroots bench log`).
    """

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        mark = placeholder(dialect)
        self.by_command = (
            f"SELECT position FROM event_log WHERE command_id = {mark} ORDER BY position"
        )
        self.version = f"SELECT COALESCE(MAX(version), 0) FROM event_log WHERE stream = {mark}"
        self.last = "SELECT position, hash FROM event_log ORDER BY position DESC LIMIT 1"
        # One row (none for an empty log): the stream's version and the last record, whose
        # recorded time the caller reads from the text (cheaper than the database's JSON).
        self.head = (
            f"SELECT ({self.version}), position, hash, record FROM event_log "
            "ORDER BY position DESC LIMIT 1"
        )
        self.insert = f"INSERT INTO event_log ({READ}) VALUES ({mark}, {mark}, {mark}, {mark})"
        self.page = (
            f"SELECT {READ} FROM event_log WHERE position > {mark} ORDER BY position LIMIT {mark}"
        )
        self.stream = f"SELECT {READ} FROM event_log WHERE stream = {mark} ORDER BY version"
        self._mark = mark

    def page_of(self, types: int) -> str:
        """A page of records of `types` given types (their names are the first parameters).

        Served by the (type, position) index: a fold that wants the few roster events among
        170,000 visits reads those, not the visits."""
        marks = ", ".join([self._mark] * types)
        return (
            f"SELECT {READ} FROM event_log WHERE type IN ({marks}) AND position > {self._mark} "
            f"ORDER BY position LIMIT {self._mark}"
        )

    def decision(self, command: bool, types: int) -> str:
        """What a command is decided on, in one round trip, each row tagged with its part:
        0 the stream (in version order), 1 the command id's records (`command` given), 2 a
        page of records of `types` types after a position (parameters in that order)."""
        mark = self._mark
        parts = [f"SELECT 0, {READ} FROM event_log WHERE stream = {mark}"]
        if command:
            parts.append(f"SELECT 1, {READ} FROM event_log WHERE command_id = {mark}")
        if types:
            parts.append(f"SELECT * FROM (SELECT 2, {READ} FROM event_log WHERE type IN "
                         f"({', '.join([mark] * types)}) AND position > {mark} "
                         f"ORDER BY position LIMIT {mark}) AS since")
        return " UNION ALL ".join(parts) + " ORDER BY 1, 2"

    def begin_append(self, cur: Any) -> None:
        """Take the single-writer lock that keeps positions in commit order."""
        if self.dialect == "sqlite":
            cur.execute("BEGIN IMMEDIATE")
        else:
            cur.execute("LOCK TABLE event_log IN EXCLUSIVE MODE")
