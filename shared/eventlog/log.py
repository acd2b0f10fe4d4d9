"""EventLog: append, read, verify and forget, over one service's database."""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from typing import Any

import msgspec
from sqlalchemy.engine import Engine

from shared.eventlog import chain
from shared.eventlog.audit import Audit, walk, walk_part
from shared.eventlog.checkpoints import Checkpoint, Signer, by_position
from shared.eventlog.group import GroupCommit, Pending
from shared.eventlog.model import (
    GENESIS_HASH,
    ConcurrencyError,
    Decision,
    ForgottenSubjectError,
    Lazy,
    NewEvent,
    Record,
    VerifyReport,
)
from shared.eventlog.personal import KeyStore, PageKeys, Sealed, encrypt
from shared.eventlog.storage import Statements, create_schema, make_engine, roll_back
from shared.eventlog.upcasting import Upcasters

# Rows fetched per query. Small on purpose: a page is let go before the next is fetched, so
# its rows die young, in the collector's first generation; with 2,000-row pages they lived long
# enough to be promoted, and every full collection then walked them (reads and verify ran at
# half speed in a process with a large heap). See `grassroots bench log`.
PAGE = 500
PARALLEL_PART = 20_000  # the least a part of a parallel verify walks (see `verify`)
FORGOTTEN = "subject.forgotten"
_NUL = "\\u0000"  # how canonical JSON writes U+0000 ...
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # ... unless the backslash is escaped
Listener = Callable[[int], None]


class _Stored(msgspec.Struct, gc=False):
    """A stored record as decoded: msgspec builds it, timestamps included, in one C call."""

    stream: str
    version: int
    type: str
    schema_version: int
    data: msgspec.Raw  # decoded when a reader asks for it (`Packed`, `Sealed`)
    event_id: str
    command_id: str | None
    actor: str | None
    correlation_id: str | None
    causation_id: str | None
    occurred_at: datetime
    recorded_at: datetime
    subject: str | None
    personal: list[str] | None


_decode = msgspec.json.Decoder(_Stored).decode
# what an append can be refused for before anything of it is written (it then fails alone)
_REFUSALS = (ConcurrencyError, ForgottenSubjectError, ValueError)
_decode_data = msgspec.json.Decoder(dict[str, Any]).decode


class Packed(Lazy):
    """A record's data with nothing personal in it, decoded on first use (see `Lazy`)."""

    __slots__ = ("_raw", "_data")

    def __init__(self, raw: msgspec.Raw) -> None:
        self._raw = raw
        self._data: dict[str, Any] | None = None

    def open(self) -> tuple[dict[str, Any], tuple[str, ...]]:
        data = self._data
        if data is None:
            data = self._data = _decode_data(self._raw)
        return data, ()

    def redactions(self) -> tuple[str, ...]:
        return ()

    def withheld(self) -> tuple[dict[str, Any], tuple[str, ...]]:
        return self.open()
_new_record = tuple.__new__  # Record's generated __new__ is a Python frame; every field is given


def _run(conn: Any, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    cur.execute(sql, params)
    rows = list(cur.fetchall())
    conn.commit()  # end the read transaction at once
    return rows


def _recorded_at(text: str) -> str:
    """The top-level `recorded_at` of a stored record, read from its text.

    It is the last `"recorded_at":"` in it: in canonical order the only fields after it are
    scalars, a nested key of that name in `data` comes earlier, and a quote inside a string
    value is escaped, so the pattern cannot occur there.
    """
    start = text.rfind('"recorded_at":"') + 15
    return text[start:text.index('"', start)]


def _uuid4s(count: int) -> list[str]:
    """Random (version 4) UUIDs as text, several at a time: `uuid.uuid4()` is slow in bulk.

    The random bytes are written out in hex at once; in each UUID the version digit is set
    to 4 and the variant digit keeps its two low random bits under the RFC 4122 `10`.
    """
    digits = os.urandom(16 * count).hex()
    variant = _VARIANT
    return [f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant[h[16]]}{h[17:20]}-{h[20:]}"
            for h in (digits[i:i + 32] for i in range(0, 32 * count, 32))]


_VARIANT = {f"{n:x}": f"{0x8 | (n & 0x3):x}" for n in range(16)}


def _ts(moment: datetime) -> str:
    """Fixed-width UTC text, so string order is time order on every backend."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(eq=False, slots=True)
class _Tail:
    """The log's end as one transaction leaves it, so a group of appends asks the database
    once for the last record (the first append's head query) and then only for the version
    of a stream it has not written yet, and sends all its rows in one statement. Rows of
    appends written before in the group are not in the table yet: their streams' versions,
    and their command ids, are answered from here."""

    recorded_at: str  # the transaction's time; every record of the group carries it
    one_by_one: bool = False  # each append's rows and keys written as it is checked
    position: int = -1  # of the last record (-1: not read yet)
    prev: str = GENESIS_HASH
    versions: dict[str, int] = field(default_factory=dict)
    commands: dict[str, list[int]] = field(default_factory=dict)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    keys: dict[str, bytes] = field(default_factory=dict)  # new residents' keys, to store
    keyed: list[Pending] = field(default_factory=list)  # the appends that made them


class EventLog:
    """One service's append-only, hash-chained log of events."""

    def __init__(
        self,
        engine: Engine,
        service: str,
        *,
        keys: KeyStore | None = None,
        signer: Signer | None = None,
        upcasters: Upcasters | None = None,
    ) -> None:
        self.engine = engine
        self.service = service
        self.keys = keys or KeyStore(engine)
        self.signer = signer
        self.upcasters = upcasters or Upcasters()
        self._sql = Statements(engine.dialect.name)
        self._listeners: list[Listener] = []
        self._writer: Any = None  # a pooled connection kept for appends (see `_begin`)
        self._write_lock = threading.Lock()
        self._group = GroupCommit()
        create_schema(engine)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        service: str,
        keys_url: str | None = None,
        signing_key: str | None = None,
        upcasters: Upcasters | None = None,
    ) -> EventLog:
        """Open (creating on first use) the log at `url`; keys may live in another database.

        `signing_key` defaults to the environment variable GRASSROOTS_SIGNING_KEY.
        """
        engine = make_engine(url)
        # the log's own database (also when named twice): one engine, keys in its transactions
        apart = keys_url if keys_url and keys_url != url else None
        keys = KeyStore(make_engine(apart)) if apart else KeyStore(engine)
        spec = signing_key or os.environ.get("GRASSROOTS_SIGNING_KEY")
        return cls(
            engine, service, keys=keys, signer=Signer(spec) if spec else None,
            upcasters=upcasters,
        )

    def close(self) -> None:
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self.engine.dispose()
        if self.keys.engine is not self.engine:
            self.keys.engine.dispose()

    def spare_subject(self, make: Callable[[], str]) -> str | None:
        """An id for a new data subject (made by `make`) whose key is already stored, when
        keys live apart (`KeyStore.spare`); None when they share the log's database, where a
        new key costs nothing extra (it joins the append's own transaction)."""
        return None if self.keys.engine is self.engine else self.keys.spare(make)

    def give_back_subject(self, make: Callable[[], str], subject: str) -> None:
        """Return an id from `spare_subject` that no appended event used."""
        self.keys.give_back(make, subject)

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(last_position)` after each commit made through this object."""
        self._listeners.append(listener)

    # -- writing ---------------------------------------------------------------------------

    def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        *,
        expected_version: int | None = None,
        command_id: str | None = None,
        actor: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> list[int]:
        """Append `events` to `stream` atomically and return their positions.

        `expected_version` (None: don't check; 0: the stream must be new) guards against a
        concurrent writer; a retry carrying a `command_id` the log holds writes nothing and
        returns the original positions. A resident's key is stored with the first event that
        uses it: in the same transaction when keys share the log's database, else committed
        just before the log commits and removed if that fails (a crash in between leaves a key
        with no data, never data without its key).

        Concurrent appends share commits (`shared.eventlog.group`): the call returns once
        the commit holding these events is durable, and fails alone if its own checks fail.
        """
        return self._submit(
            stream, events, expected_version=expected_version, command_id=command_id,
            actor=actor, correlation_id=correlation_id, causation_id=causation_id,
        ).positions

    def _submit(
        self,
        stream: str,
        events: Sequence[NewEvent],
        *,
        expected_version: int | None,
        command_id: str | None,
        actor: str | None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> Pending:
        """Seal the events (unless their keys are found in the commit) and hand them to the
        group commit; the append once committed."""
        if not stream:
            raise ValueError("stream must be a non-empty string")
        if not events:
            raise ValueError("append needs at least one event")
        ids = _uuid4s(len(events))
        subjects = {e.subject for e in events if e.subject and e.personal}
        sealed: list[tuple[dict[str, Any], list[str] | None]] = []
        if subjects and self.keys.engine is self.engine:
            # keys in the log's own transaction: each subject gets a fresh key now, and the
            # commit's one query on its own cursor finds those that exist (or were erased),
            # instead of a pooled query here first; the events are sealed there, once the
            # keys are known (sealing here as well sealed a returning resident's data twice)
            new_keys = {s: os.urandom(32) for s in subjects}  # AES-256-GCM keys
            keys = dict(new_keys)
        else:
            keys, new_keys = self.keys.keys_for_writing(subjects)
            sealed = self._seal(events, ids, keys)
        meta = (command_id, actor, correlation_id or command_id or ids[0], causation_id)
        pending = Pending(stream, events, ids, keys, new_keys, sealed, expected_version, meta)
        self._group.submit(pending, self._commit)
        return pending

    def append_records(
        self,
        stream: str,
        events: Sequence[NewEvent],
        *,
        expected_version: int | None = None,
        command_id: str | None = None,
        actor: str | None = None,
    ) -> list[Record]:
        """`append`, answering with the records as a reader of the log would get them.

        They are made from the very rows the commit wrote, so a command's answer costs no
        read of the log (it was a tenth of a command's time); a retried command id gets
        its original records, read back.
        """
        pending = self._submit(stream, events, expected_version=expected_version,
                               command_id=command_id, actor=actor)
        if pending.fresh:
            return list(self._records(pending.rows))
        return list(self.read(after=pending.positions[0] - 1, limit=len(pending.positions)))

    def _commit(self, batch: list[Pending]) -> None:
        """One durable commit for every append in `batch` (the group commit's leader runs it).

        Each append is checked before anything of it is written, so one the log refuses - a
        version conflict, a refused text, a forgotten subject - fails alone and the others
        commit, with no savepoint to pay for. A database error halfway through an append
        fails that append: the transaction is rolled back and the others are written again
        in a new one. An error of the commit itself fails all of them: none was answered.
        """
        with self._write_lock:
            todo, one_by_one = batch, False
            while todo:
                todo, one_by_one = self._commit_once(todo, one_by_one)
        fresh = [p.positions[-1] for p in batch if p.fresh and p.error is None]
        if fresh:
            for listener in self._listeners:
                listener(fresh[-1])

    def _commit_once(self, batch: list[Pending], one_by_one: bool) -> tuple[list[Pending], bool]:
        """Write and commit `batch`; the appends to write again if one failed half-written,
        and whether to insert each append's rows on its own then (to find which failed).

        The group's rows go in with one statement before the commit, and its new residents'
        keys with one more (kept apart, one commit of the key database for the group, not
        one per append): the leader's time per append is what bounds concurrent appends (see
        `_Tail`)."""
        cur = self._begin()
        keys_cur = cur if self.keys.engine is self.engine else None
        tail = _Tail(_ts(datetime.now(UTC)), one_by_one)
        try:
            for pending in batch:
                pending.written = False
                try:
                    self._write(cur, keys_cur, pending, tail)
                    if one_by_one:
                        self._insert(cur, tail)
                except Exception as exc:  # noqa: BLE001 - it is this append's answer
                    pending.error = exc
                    if pending.written or not isinstance(exc, _REFUSALS):
                        self._undo(batch)
                        return [p for p in batch if p.error is None], one_by_one
            if all(p.error is not None for p in batch):
                self._abandon()  # nothing was written
                return [], one_by_one
            try:
                self._insert(cur, tail)
                if tail.keys:
                    self.keys.store(tail.keys, keys_cur)
                    for pending in tail.keyed:
                        pending.stored_apart = keys_cur is None
            except Exception:  # noqa: BLE001 - whose rows or keys failed? each alone tells
                self._undo(batch)
                return [p for p in batch if p.error is None], True
            self._writer.commit()
        except BaseException:
            self._undo(batch)
            raise
        return [], one_by_one

    def _insert(self, cur: Any, tail: _Tail) -> None:
        rows, tail.rows = tail.rows, []
        if len(rows) == 1:
            cur.execute(self._sql.insert, rows[0])
        elif rows:
            cur.executemany(self._sql.insert, rows)

    def _undo(self, batch: list[Pending]) -> None:
        """Roll back a transaction that will not commit, and the keys stored apart for it."""
        self._abandon()
        for pending in batch:
            if pending.stored_apart:
                self._drop_orphan_keys(pending.new_keys, *pending.first)
                pending.stored_apart = False

    def _write(self, cur: Any, keys_cur: Any, pending: Pending, tail: _Tail) -> None:
        """Inside the commit: one append's key check, checks and rows (queued on `tail`),
        and key storage."""
        keys, new_keys = pending.keys, pending.new_keys
        events, ids = pending.events, pending.ids
        if new_keys and (taken := self._taken(new_keys, keys_cur, tail)):
            # the subject has a key (another writer's, or an append's before in this group):
            # use theirs
            keys.update(taken)
            new_keys = pending.new_keys = {s: k for s, k in new_keys.items() if s not in taken}
            pending.sealed = []
        if not pending.sealed:  # not sealed yet, or with a key that was not theirs
            pending.sealed = self._seal(events, ids, keys)
        positions, rows = self._rows(cur, tail, pending.stream, events, ids, pending.sealed,
                                     pending.expected_version, pending.meta)
        pending.positions, pending.rows, pending.fresh = positions, rows, bool(rows)
        if not rows:
            return
        pending.written = True
        pending.first = (positions[0], ids[0])
        if not new_keys:  # else stored with the first event that uses them
            return
        if tail.one_by_one:
            self.keys.store(new_keys, keys_cur)
            pending.stored_apart = keys_cur is None
        else:
            tail.keys.update(new_keys)
            tail.keyed.append(pending)

    def _taken(self, new_keys: dict[str, bytes], keys_cur: Any, tail: _Tail) -> dict[str, bytes]:
        """Keys made meanwhile for subjects of `new_keys`: by an append before in this group
        (not stored yet), or by another writer."""
        taken = {s: tail.keys[s] for s in new_keys if s in tail.keys}
        rest = {s: k for s, k in new_keys.items() if s not in taken}
        if rest:
            taken.update(self.keys.taken(rest, keys_cur))
        return taken

    def _begin(self) -> Any:
        """A cursor holding the log's write lock, on the connection appends go through.

        Appends are serialised by the database's write lock anyway; keeping one connection
        for them (behind a lock, for the threads or green threads of this process) spares
        each append a pool checkout and return, a tenth of its time besides the fsync. A
        connection found dead here (a database restart) is replaced once: nothing was
        written on it yet.
        """
        retried = False
        while True:
            if self._writer is None:
                self._writer = self.engine.raw_connection()
            cur = self._writer.cursor()
            try:
                self._sql.begin_append(cur)
                return cur
            except Exception:
                self._abandon()
                if retried or self._writer is not None:  # alive: the error is the answer
                    raise
                retried = True

    def _abandon(self) -> None:
        """Roll back a failed append; a connection that cannot even do that is discarded."""
        if not roll_back(self._writer):
            self._writer = None

    def _rows(
        self, cur: Any, tail: _Tail, stream: str, events: Sequence[NewEvent], ids: list[str],
        sealed: list[tuple[dict[str, Any], list[str] | None]], expected_version: int | None,
        meta: tuple[str | None, str | None, str, str | None],
    ) -> tuple[list[int], list[tuple[Any, ...]]]:
        """Inside the writer lock: idempotency, version check, chaining; the append's positions
        and rows, queued on `tail` (no rows for a retried command: its positions)."""
        sql = self._sql
        command_id = meta[0]
        if command_id is not None:
            done = tail.commands.get(command_id)
            if done is None:
                cur.execute(sql.by_command, (command_id,))
                done = [r[0] for r in cur.fetchall()]
            if done:
                return done, []
        actual = tail.versions.get(stream)
        if tail.position < 0:  # the group's first append: one query for the tail and its stream
            cur.execute(sql.head, (stream,))
            head = cur.fetchone()
            actual, tail.position, tail.prev, last = head or (0, 0, GENESIS_HASH, None)
            last_recorded = _recorded_at(last) if last is not None else ""
            if last_recorded > tail.recorded_at:
                tail.recorded_at = last_recorded  # the clock stepped back: keep it monotonic
        elif actual is None:
            cur.execute(sql.version, (stream,))
            actual = cur.fetchone()[0]
        if expected_version is not None and actual != expected_version:
            raise ConcurrencyError(stream, expected_version, actual)
        first, recorded_at = tail.position + 1, tail.recorded_at
        _, actor, correlation_id, causation_id = meta
        chained = chain.chained(tail.prev, [{
            "position": first + i, "stream": stream, "version": actual + 1 + i,
            "type": ev.type, "schema_version": ev.schema_version, "data": data,
            "event_id": ids[i], "command_id": command_id, "actor": actor,
            "correlation_id": correlation_id, "causation_id": causation_id,
            "recorded_at": recorded_at,
            "occurred_at": _ts(ev.occurred_at) if ev.occurred_at else recorded_at,
            "subject": ev.subject, "personal": personal,
        } for i, (ev, (data, personal)) in enumerate(zip(events, sealed, strict=True))])
        positions = list(range(first, first + len(chained)))
        rows = [(position, *link) for position, link in zip(positions, chained, strict=True)]
        for position, record, _, _ in rows:
            if _NUL in record and _ESCAPED_NUL.search(record):
                raise ValueError(f"event {position} of {stream!r}: text may not contain U+0000 "
                                 "(PostgreSQL's JSON cannot hold it)")
        tail.rows += rows  # nothing of the append was queued before it passed every check
        tail.position, tail.prev = positions[-1], rows[-1][3]
        tail.versions[stream] = actual + len(rows)
        if command_id is not None:
            tail.commands[command_id] = positions
        return positions, rows

    def _drop_orphan_keys(self, new_keys: dict[str, bytes], position: int, event_id: str) -> None:
        """After a failed log commit, remove the keys stored for it in the key database, unless
        the log holds the records after all (a commit whose answer was lost) or cannot be
        asked: at worst a key is left with no data, never data without its key."""
        try:
            rows = self._fetch(self._sql.page, (position - 1, 1))
            if not (rows and rows[0][0] == position and event_id in rows[0][1]):
                self.keys.discard(new_keys)
        except Exception:  # noqa: BLE001 - the append's own error is the one to raise
            return

    @staticmethod
    def _seal(events: Sequence[NewEvent], ids: list[str], keys: dict[str, bytes],
              ) -> list[tuple[dict[str, Any], list[str] | None]]:
        """Each event's data as stored (personal paths encrypted under its subject's key)
        and its personal paths."""
        return [(ev.data, None) if not ev.personal else (
            encrypt(ev.data, ev.personal, keys[ev.subject], event_id),  # type: ignore[index]
            list(ev.personal),
        ) for ev, event_id in zip(events, ids, strict=True)]

    def forget(self, subject: str, *, actor: str | None = None) -> bool:
        """Erase a subject's personal data by destroying their key, and record that it was done.

        The log keeps every record and still verifies; reads return the fields as None and
        name them in `Record.redacted`. True if a key was destroyed.
        """
        destroyed = self.keys.erase(subject)
        self.append(
            f"subject-{subject}",
            [NewEvent(FORGOTTEN, {"subject": subject, "key_destroyed": destroyed})],
            actor=actor,
        )
        return destroyed

    # -- reading ---------------------------------------------------------------------------

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Run a read and end its transaction at once.

        On the appends' connection when no append holds it (never waiting for one): a SQLite
        connection's page cache stays valid across its own commits but is dropped whenever
        another connection has written, so a command's read after the last command's commit
        cost 100 us on a pooled connection against 30 us here (PostgreSQL saves a checkout's
        ping). If it fails there, the pool's connection answers (a database restart).
        """
        rows = self._fetch_on_writer(sql, params)
        if rows is not None:
            return rows
        raw = self.engine.raw_connection()
        try:
            return _run(raw, sql, params)
        finally:
            raw.close()

    def _fetch_on_writer(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        """`_fetch` on the appends' connection; None if an append holds it, there is none,
        or the read failed there (the connection is then discarded if it is dead)."""
        if self._writer is None or not self._write_lock.acquire(blocking=False):
            return None
        try:
            return _run(self._writer, sql, params) if self._writer is not None else None
        except Exception:  # noqa: BLE001 - the pool's connection answers instead
            self._abandon()
            return None
        finally:
            self._write_lock.release()

    def find_command(self, command_id: str) -> list[int]:
        """Positions of the events a command id produced (empty if the log has none)."""
        return [row[0] for row in self._fetch(self._sql.by_command, (command_id,))]

    def head(self) -> tuple[int, str]:
        """(position, hash) of the last record; (0, genesis) for an empty log."""
        rows = self._fetch(self._sql.last, ())
        return (rows[0][0], rows[0][1]) if rows else (0, GENESIS_HASH)

    def last_position(self) -> int:
        return self.head()[0]

    def stream_version(self, stream: str) -> int:
        return int(self._fetch(self._sql.version, (stream,))[0][0])

    def read(
        self, after: int = 0, limit: int | None = None, *, types: Iterable[str] | None = None
    ) -> Iterator[Record]:
        """Records after `position`, in order, fetched page by page (constant memory).

        `types` keeps only records of those types, chosen by the database (an index on type
        and position), so a fold that needs a few kinds of event among many reads only them;
        `limit` then counts the records returned.
        """
        wanted = tuple(dict.fromkeys(types)) if types is not None else None
        if wanted == ():
            return
        sql = self._sql.page if wanted is None else self._sql.page_of(len(wanted))
        remaining = limit
        while remaining is None or remaining > 0:
            size = PAGE if remaining is None else min(PAGE, remaining)
            params = (after, size) if wanted is None else (*wanted, after, size)
            page = self._fetch(sql, params)
            count, after = len(page), page[-1][0] if page else after
            yield from self._records(page)
            del page  # before the next fetch (see PAGE)
            if count < size:
                return
            if remaining is not None:
                remaining -= count

    def read_decision(
        self, stream: str, *, command_id: str | None = None, types: Sequence[str] = (),
        after: int = 0,
    ) -> Decision:
        """A command's reads in one query: its stream, what its command id already produced,
        and a page of records of `types` after `after` (what a fold decisions read, e.g. the
        roster, has yet to see). Three queries before, each a round trip and a pool checkout:
        a third of a command's time besides its commit."""
        params: list[Any] = [stream]
        if command_id is not None:
            params.append(command_id)
        if types:
            params += [*types, after, PAGE]
        rows = self._fetch(self._sql.decision(command_id is not None, len(types)), tuple(params))
        parts: tuple[list[Record], ...] = ([], [], [])
        for part in range(3):
            page = [row[1:] for row in rows if row[0] == part]
            parts[part].extend(self._records(page))
        history, done, since = parts
        return Decision(done, history, since, len(since) < PAGE)

    def read_until(
        self, instant: datetime, after: int = 0, *, types: Iterable[str] | None = None
    ) -> Iterator[Record]:
        """Everything recorded up to `instant`: the log as it stood then (for as-of replay).

        Recorded time never goes back along the log, so this is a prefix of `read()` (of
        `read(types=...)` when `types` is given).
        """
        for record in self.read(after=after, types=types):
            if record.recorded_at > instant:
                return
            yield record

    def read_stream(self, stream: str, up_to_version: int | None = None) -> list[Record]:
        """One stream in version order, optionally only up to a version."""
        records = list(self._records(self._fetch(self._sql.stream, (stream,))))
        if up_to_version is not None:
            records = [r for r in records if r.version <= up_to_version]
        return records

    def _records(self, page: Sequence[tuple[Any, ...]]) -> Iterator[Record]:
        """Records from stored rows: each text decoded once, but its data only when a reader
        asks for it (`Packed`), and personal data decrypted only then (`Sealed`: the page's
        keys are fetched together, on the first such read)."""
        service, upcasters = self.service, self.upcasters
        upcasting = bool(upcasters)
        stored = [_decode(row[1]) for row in page]
        subjects = {d.subject for d in stored if d.personal and d.subject is not None}
        keys = PageKeys(self.keys, subjects) if subjects else None
        for (position, _, prev_hash, hash_), d in zip(page, stored, strict=True):
            data: Any
            version = d.schema_version
            personal: tuple[str, ...] = ()
            if d.personal:
                personal = tuple(d.personal)
                data = Sealed(d.data, personal, d.subject, d.event_id, keys)  # type: ignore[arg-type]
            else:
                data = Packed(d.data)
            redacted: tuple[str, ...] = ()
            if upcasting and upcasters.upcasts(d.type, version):  # old data: opened now
                data, redacted = data.open()
                version, data = upcasters.upcast(d.type, version, data)
            yield _new_record(Record, (
                position, d.stream, d.version, d.type, version, data, d.event_id, d.command_id,
                d.actor, d.correlation_id, d.causation_id, d.occurred_at, d.recorded_at,
                prev_hash, hash_, service, d.subject, personal, redacted,
            ))

    # -- auditing --------------------------------------------------------------------------

    def checkpoint(self) -> Checkpoint:
        """A signed (position, hash) of the head, to be exported outside the database."""
        if self.signer is None:
            raise RuntimeError("no signing key configured (set GRASSROOTS_SIGNING_KEY)")
        position, hash_ = self.head()
        return self.signer.sign(self.service, position, hash_)

    def verify(self, checkpoints: Sequence[Checkpoint] | None = None, *,
               jobs: int = 1) -> VerifyReport:
        """Walk the whole chain in constant memory; report OK or the first bad position.

        Signed checkpoints also catch a tail that was rewritten with a recomputed chain, or
        cut off: things a bare chain cannot show.

        `jobs` > 1 walks that many parts of the log at once, each in a process of its own
        but the first (each record's check needs only its own row, and where parts meet,
        one part's last hash must be the next part's first prev_hash). Worker processes are
        forked, so call it from a tool's process (the CLI, the bench), not from a service
        running green threads. A walk that finds anything wrong is walked again in one
        process, so a failure is reported exactly as `jobs=1` reports it.
        """
        marks = by_position(cp for cp in checkpoints or () if cp.service == self.service)
        for cp in marks.values():
            if self.signer is None or not self.signer.valid(cp):
                return VerifyReport(False, 0, 0, GENESIS_HASH, cp.position,
                                    f"checkpoint at {cp.position} has no valid signature")
        head = self.last_position()
        if jobs > 1 and head >= jobs * PARALLEL_PART:
            report = self._verify_parts(marks, head, jobs)
            if report is not None:
                return report
        return walk(self.engine, Audit(marks), PAGE).finish()

    def _verify_parts(self, marks: dict[int, Checkpoint], head: int,
                      jobs: int) -> VerifyReport | None:
        """The walk in `jobs` parts up to `head`, or None if any part or join failed."""
        url = self.engine.url.render_as_string(hide_password=False)
        bounds = [head * n // jobs for n in range(jobs + 1)]
        spans = [(lo + 1, hi) for lo, hi in itertools.pairwise(bounds)]

        def within(lo: int, hi: int) -> dict[int, Checkpoint]:
            return {p: cp for p, cp in marks.items() if lo <= p <= hi}

        with ProcessPoolExecutor(jobs - 1, mp_context=get_context("fork")) as pool:
            rest = [pool.submit(walk_part, url, within(lo, hi), lo, hi, PAGE)
                    for lo, hi in spans[1:]]
            first = walk(self.engine, Audit(within(*spans[0])), PAGE, spans[0][1])
            parts = [future.result() for future in rest]
        if first.bad is not None or first.expected != spans[0][1] + 1:
            return None
        before = first.prev
        for part in parts:
            if not part.ok or part.prev != before:
                return None
            before = part.head
        if any(p > head for p in marks):  # a truncated tail: the one-process walk says so
            return None
        return VerifyReport(True, first.checked + sum(p.checked for p in parts), head, before,
                            None, None, first.seen_marks + sum(p.marks_seen for p in parts))
