"""Per-subject encryption of personal data (crypto-shredding).

Each data subject (a resident) has its own AES-256-GCM key in a key store kept apart from the log.
Personal fields are encrypted before the record is hashed; destroying the key makes them
unreadable for good while every hash in the chain still verifies.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    String,
    Table,
    select,
    update,
)
from sqlalchemy.engine import Engine

from shared.eventlog.chain import dumps, encode
from shared.eventlog.model import ForgottenSubjectError, Lazy
from shared.eventlog.storage import exclusive, placeholder, roll_back

ENCRYPTED = "$enc"
key_metadata = MetaData()
subject_keys = Table(
    "subject_keys",
    key_metadata,
    Column("subject", String(200), primary_key=True),
    Column("key", LargeBinary, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("erased_at", DateTime(timezone=True), nullable=True),
)


Fresh = dict[str, bytes]  # keys made for an append, not yet stored
# New subjects' keys a key store kept apart stores at once (see `KeyStore.spare`): 32 a
# commit still cost a new resident's visit about 18 us of the refill's fsync; at most this
# many keys with no data are left by a crash.
SPARES = 128


def _same(value: Any) -> Any:
    return value


def _usable(rows: Iterable[Any]) -> dict[str, bytes]:
    """subject -> key from (subject, key, erased_at) rows; ForgottenSubjectError if erased."""
    keys = {}
    for subject, key, erased_at in rows:
        if erased_at is not None or key is None:
            raise ForgottenSubjectError(f"subject {subject!r} was forgotten; use a new id")
        keys[subject] = bytes(key)
    return keys


class KeyStore:
    """Subject keys in their own table (and, if configured, their own database)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._mark = placeholder(engine.dialect.name)
        # what SQLAlchemy would do to these values, for `store`'s bare cursor
        self._as_key = subject_keys.c.key.type.bind_processor(engine.dialect) or _same
        self._as_time = subject_keys.c.created_at.type.bind_processor(engine.dialect) or _same
        with exclusive(engine, "grassroots.schema") as conn:
            key_metadata.create_all(conn)
        self._spares: dict[Callable[[], str], list[str]] = {}
        self._spares_lock = threading.Lock()
        self._spare_keys: dict[str, bytes] = {}  # spares' keys until first asked for

    def spare(self, make: Callable[[], str]) -> str:
        """The id of a subject nobody has used yet (made by `make`) whose key is already
        stored, durably.

        A key kept apart must be durable before the first event sealed with it is, so an
        append that makes one pays a commit of the key database before its own: two fsyncs
        for a new resident's visit. Spares are stored `SPARES` at a time in one commit and
        handed out one by one, so the append that uses one finds its key and commits once.
        A spare never used (a crash, a lost one) is a key with no data: nothing to read.

        The keys are also kept here until `keys_for_writing` first asks for one, which then
        needs no query (one fewer round trip for a new resident's visit). A spare's key is
        asked for only by the append that uses it, before anyone else can know its id, so
        it cannot have been erased meanwhile; one handed out and lost is forgotten at the
        next refill, and a spare asked for after that is looked up like any other subject.
        """
        with self._spares_lock:
            pool = self._spares.setdefault(make, [])
            if not pool:
                fresh = {make(): AESGCM.generate_key(bit_length=256) for _ in range(SPARES)}
                self.store(fresh, None)
                pool.extend(fresh)
                pooled = {s for spares in self._spares.values() for s in spares}
                self._spare_keys = {s: k for s, k in self._spare_keys.items() if s in pooled}
                self._spare_keys.update(fresh)
            return pool.pop()

    def give_back(self, make: Callable[[], str], subject: str) -> None:
        """Return a spare no event has used, to be handed out again."""
        with self._spares_lock:
            self._spares.setdefault(make, []).append(subject)

    def keys_for_writing(self, subjects: Iterable[str]) -> tuple[dict[str, bytes], Fresh]:
        """The subjects' keys, and fresh ones (made here, stored by nobody yet) for those who
        have none; ForgottenSubjectError for a subject who was forgotten.

        A fresh key is stored by `store`, with the append that first uses it, never before:
        a request that then fails leaves no key behind.
        """
        wanted = set(subjects)
        if not wanted:
            return {}, {}
        spares, known = self._spare_keys, {}
        for subject in wanted & spares.keys():
            if (key := spares.pop(subject, None)) is not None:
                known[subject] = key
        if rest := wanted - known.keys():
            known.update(_usable(self._select(rest)))
        fresh = {s: AESGCM.generate_key(bit_length=256) for s in wanted - known.keys()}
        return {**known, **fresh}, fresh

    def holds(self, subject: str) -> bool | None:
        """Whether this store holds the subject's key: True; False once it was erased; None
        when it never had one. (Asked without making a key, unlike `keys_for_writing`.)"""
        rows = self._select({subject})
        if not rows:
            return None
        _, key, erased_at = rows[0]
        return key is not None and erased_at is None

    def _select(self, subjects: set[str]) -> list[Any]:
        """(subject, key, erased_at) rows of these subjects, on a bare pooled connection:
        SQLAlchemy's statement machinery cost more than the query on every append."""
        raw = self.engine.raw_connection()
        try:
            rows = self._query(raw.cursor(), subjects)
            raw.commit()
            return rows
        finally:
            raw.close()

    def _query(self, cur: Any, subjects: Iterable[str]) -> list[Any]:
        wanted = tuple(subjects)
        cur.execute("SELECT subject, key, erased_at FROM subject_keys WHERE subject IN "
                    f"({', '.join([self._mark] * len(wanted))})", wanted)
        return list(cur.fetchall())

    def taken(self, fresh: Fresh, cur: Any | None) -> dict[str, bytes]:
        """Inside the append's critical section: keys another writer made meanwhile for subjects
        of `fresh` (the append must use those instead). `cur` is the append's own cursor when
        the keys share the log's database, else None (the key database is asked)."""
        rows = self._select(set(fresh)) if cur is None else self._query(cur, fresh)
        return _usable(rows)

    def store(self, fresh: Fresh, cur: Any | None) -> None:
        """Store fresh keys: on `cur`, in the append's own transaction (keys in the log's
        database), or else committed in the key database now, just before the log commits."""
        if cur is not None:
            self._insert(cur, fresh)
            return
        raw = self.engine.raw_connection()  # a bare connection: see `_select`
        try:
            self._begin(raw)
            self._insert(raw.cursor(), fresh)
            raw.commit()
        except BaseException:
            roll_back(raw)
            raise
        finally:
            raw.close()

    def _begin(self, raw: Any) -> None:
        """Open the transaction: psycopg2 opens one by itself; the log's SQLite connections
        are in autocommit mode (storage._tune_sqlite), so BEGIN is asked for."""
        if self.engine.dialect.name == "sqlite":
            raw.cursor().execute("BEGIN IMMEDIATE")

    def _insert(self, cur: Any, fresh: Fresh) -> None:
        now = datetime.now(UTC)
        mark, as_key, as_time = self._mark, self._as_key, self._as_time
        cur.executemany(
            f"INSERT INTO subject_keys (subject, key, created_at) VALUES ({mark}, {mark}, {mark})",
            [(s, as_key(k), as_time(now)) for s, k in fresh.items()],
        )

    def discard(self, fresh: Fresh) -> None:
        """Remove keys `store` committed for an append whose log commit then failed."""
        with self.engine.begin() as conn:
            for subject, key in fresh.items():
                conn.execute(subject_keys.delete().where(
                    subject_keys.c.subject == subject, subject_keys.c.key == key
                ))

    def keys(self, subjects: Iterable[str]) -> dict[str, bytes | None]:
        """Keys of several subjects at once (None where erased or never made)."""
        wanted = set(subjects)
        if not wanted:
            return {}
        found = {subject: (bytes(key) if key is not None else None)
                 for subject, key, _ in self._select(wanted)}
        return {s: found.get(s) for s in wanted}

    def erase(self, subject: str) -> bool:
        """Destroy the subject's key; True if there was one to destroy."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(subject_keys)
                .where(subject_keys.c.subject == subject, subject_keys.c.key.is_not(None))
                .values(key=None, erased_at=datetime.now(UTC))
            )
            if result.rowcount == 0:
                exists = conn.execute(
                    select(subject_keys.c.subject).where(subject_keys.c.subject == subject)
                ).first()
                if exists is None:  # remember the erasure so the id can't be reused
                    conn.execute(
                        subject_keys.insert().values(
                            subject=subject, key=None, created_at=datetime.now(UTC),
                            erased_at=datetime.now(UTC),
                        )
                    )
            return result.rowcount > 0


def _split(path: str) -> tuple[list[str], str]:
    parts = path.split(".")
    return parts[:-1], parts[-1]


def _parent(data: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    head, leaf = _split(path)
    node: Any = data
    for part in head:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None, leaf
    return (node if isinstance(node, dict) else None), leaf


def encrypt(data: dict[str, Any], paths: tuple[str, ...], key: bytes, aad: str) -> dict[str, Any]:
    """`data` with each present path's value replaced by its ciphertext, `data` untouched.

    Only the objects on a sealed path are copied (what is stored is only ever serialised, so
    the rest may be shared): a deep copy through JSON was a third of the sealing's time.
    """
    out = dict(data)
    cipher = AESGCM(key)
    for path in paths:
        parent, leaf = _copied_parent(out, path)
        if parent is None or leaf not in parent:
            continue
        nonce = os.urandom(12)
        sealed = cipher.encrypt(nonce, encode(parent[leaf]), f"{aad}|{path}".encode())
        parent[leaf] = {ENCRYPTED: base64.b64encode(nonce + sealed).decode()}
    return out


def _copied_parent(data: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    """As `_parent`, copying each object on the way (in `data`) so that changing the parent
    found changes nothing the caller shares."""
    head, leaf = _split(path)
    node = data
    for part in head:
        inner = node.get(part)
        if not isinstance(inner, dict):
            return None, leaf
        node[part] = node = dict(inner)
    return node, leaf


def decrypt(
    data: dict[str, Any], paths: tuple[str, ...], key: bytes | None, aad: str
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Plain data and the paths that had to be redacted (key erased) as None."""
    redacted: list[str] = []
    for path in paths:
        parent, leaf = _parent(data, path)
        sealed = parent.get(leaf) if parent is not None else None
        if parent is None or not isinstance(sealed, dict) or ENCRYPTED not in sealed:
            continue
        if key is None:
            parent[leaf] = None
            redacted.append(path)
            continue
        blob = base64.b64decode(parent[leaf][ENCRYPTED])
        try:
            plain = AESGCM(key).decrypt(blob[:12], blob[12:], f"{aad}|{path}".encode())
        except InvalidTag:  # moved or altered ciphertext: never hand out a wrong value
            parent[leaf] = None
            redacted.append(path)
            continue
        parent[leaf] = json.loads(plain)
    return data, tuple(redacted)


class PageKeys:
    """The keys of the subjects of one page of records, fetched together on first need: a
    page whose personal fields nobody opens costs no key lookup at all."""

    __slots__ = ("_store", "_subjects", "_keys")

    def __init__(self, store: KeyStore, subjects: set[str]) -> None:
        self._store, self._subjects = store, subjects
        self._keys: dict[str, bytes | None] | None = None

    def get(self, subject: str | None) -> bytes | None:
        if self._keys is None:
            self._keys = self._store.keys(self._subjects)
        return self._keys.get(subject or "")


class Sealed(Lazy):
    """A record's data as stored, undecoded, personal paths still encrypted (see `Lazy`)."""

    __slots__ = ("_raw", "_paths", "_subject", "_aad", "_keys", "_opened")

    def __init__(self, raw: bytes | msgspec.Raw, paths: tuple[str, ...], subject: str | None,
                 aad: str, keys: PageKeys) -> None:
        self._raw, self._paths, self._subject, self._aad = raw, paths, subject, aad
        self._keys = keys
        self._opened: tuple[dict[str, Any], tuple[str, ...]] | None = None

    def open(self) -> tuple[dict[str, Any], tuple[str, ...]]:
        opened = self._opened
        if opened is None:
            key = self._keys.get(self._subject)
            opened = decrypt(msgspec.json.decode(self._raw), self._paths, key, self._aad)
            self._opened = opened
        return opened

    def withheld(self) -> tuple[dict[str, Any], tuple[str, ...]]:
        if self._opened is not None:
            out, redacted = json.loads(dumps(self._opened[0])), self._opened[1]
        else:
            out = msgspec.json.decode(self._raw)
            erased = self._keys.get(self._subject) is None
            redacted = tuple(p for p in self._paths if erased and _sealed_at(out, p))
        for path in self._paths:
            parent, leaf = _parent(out, path)
            if parent is not None and leaf in parent:
                parent[leaf] = None
        return out, redacted

    def __repr__(self) -> str:
        return f"Sealed(personal={self._paths!r}, opened={self._opened is not None})"


def _sealed_at(data: dict[str, Any], path: str) -> bool:
    parent, leaf = _parent(data, path)
    value = parent.get(leaf) if parent is not None else None
    return isinstance(value, dict) and ENCRYPTED in value
