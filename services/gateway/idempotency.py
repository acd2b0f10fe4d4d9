"""Idempotency keys at the edge, after the IETF draft "The Idempotency-Key HTTP Header Field"
(draft-ietf-httpapi-idempotency-key-header).

A write carrying `Idempotency-Key` claims the key, scoped to (actor, method, path, key), in
the gateway's own table; the row holds the request's fingerprint (method, path, canonical JSON
body), the command id the write is sent with, its state and, once it succeeded, the answer:

- same key, same request, answer stored: that answer again, and nothing is written;
- same key, another request: 422; same key while the first is still running: 409;
- the first ended in 5xx/504 (it may or may not have been written): a retry sends the *same*
  command id, so the service's log returns the first outcome instead of writing twice;
- the first ended in a definite 4xx: the key is released (only successes are kept, as Stripe
  does), so the corrected request may use it;
- a key expires `window` seconds after its first use; it then starts afresh with a new command
  id (each epoch has its own), so the log cannot mistake the new request for the old one.

Without the header nothing is stored and the write is sent without a command id: a request is
never taken for an earlier one because its body looks the same.

This table is operational state, not the event log: rows are updated and deleted.

What must reach the disk: a claim's commit is durable (the database's own setting, fsync'd)
before the write is sent, so no crash can give a key a second command id while its first
write may be in the log. Settling a claim (its answer kept, or the outcome left uncertain)
commits without waiting for the disk (SQLite synchronous=NORMAL, PostgreSQL
synchronous_commit=off; both keep the database intact and in order). A power cut may lose a
settle, never the write, which is in the service's log: the row is then back to the claim
in flight, a retry gets 409 until the lease runs out and then takes the claim over with the
same command id, so the log answers the first outcome instead of writing twice. Releasing a
key after a refusal stays durable: lost, it would refuse the corrected request (422).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    select,
)
from sqlalchemy.engine import Engine
from werkzeug.wrappers import Request, Response

from shared.eventlog.storage import exclusive, lazy_commit, make_engine
from shared.kernel.errors import DomainError

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
MAX_KEY = 255  # characters; a UUID is 36
CLAIM_ENV = "grassroots.idempotency_claim"  # where the request's claim waits to be settled
IN_FLIGHT, UNCERTAIN, DONE = "in_flight", "uncertain", "done"
PURGE_EVERY = 60.0  # seconds between sweeps of expired keys

metadata = MetaData()
keys = Table(
    "idempotency_keys", metadata,
    Column("scope", String(64), primary_key=True),  # sha256 of actor, method, path, key
    Column("fingerprint", String(64), nullable=False),  # sha256 of method, path, body
    Column("command_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("holder", String(32)),  # the claim in flight, None when none is
    Column("locked_until", Float),  # Unix seconds; an older in-flight claim is presumed dead
    Column("status", Integer),
    Column("body", Text),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)
# The statements, built once: building them per request cost more than running them.
_SCOPE, _HOLDER = keys.c.scope == bindparam("b_scope"), keys.c.holder == bindparam("b_holder")
_FIND = select(keys).where(_SCOPE)
_DROP = delete(keys).where(_SCOPE)
_INSERT = keys.insert()
_RETAKE = keys.update().where(_SCOPE)
_OWNED = keys.update().where(_SCOPE, _HOLDER)
_RELEASE = delete(keys).where(_SCOPE, _HOLDER)
_EXPIRED = delete(keys).where(keys.c.expires_at <= bindparam("b_now"))


class BadKey(DomainError):
    """The header is not a usable key (400)."""

    http_status = 400

    def errors(self) -> dict[str, Any]:
        return {HEADER: [str(self)]}


class KeyReused(BadKey):
    """The key was first used with another request (422, as the draft says)."""

    http_status = 422


class KeyInFlight(BadKey):
    """The first request with this key has not finished yet (409, as the draft says)."""

    http_status = 409


class Replay(Exception):  # noqa: N818 - an outcome, not an error
    """The stored answer of the request this one repeats."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(status)
        self.status, self.body = status, body

    def response(self) -> Response:
        return Response(self.body, status=self.status, mimetype="application/json")


@dataclass(frozen=True)
class Claim:
    scope: str
    command_id: str
    holder: str


def _digest(value: Any) -> str:
    # ASCII escapes: a lone surrogate in a body must not make hashing fail
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def scope_of(actor: str, method: str, path: str, key: str) -> str:
    """Two callers, or two endpoints, never share a key."""
    return _digest([actor, method, path, key])


def fingerprint(method: str, path: str, body: Any) -> str:
    """What makes two requests the same: method, path and the JSON body (key order aside)."""
    return _digest([method, path, body])


def parse_key(values: list[str]) -> str | None:
    """The key from the header's values: a Structured Field string (`"..."`, as the draft
    defines it) or, leniently, a bare token of visible ASCII; None when absent."""
    if not values:
        return None
    if len(values) > 1:
        raise BadKey("send one Idempotency-Key")
    raw = values[0].strip()
    if raw.startswith('"'):
        key = _sf_string(raw)
    elif all("!" <= ch <= "~" for ch in raw):
        key = raw
    else:
        raise BadKey("must be a string of visible ASCII characters")
    if not 1 <= len(key) <= MAX_KEY:
        raise BadKey(f"must be 1 to {MAX_KEY} characters")
    return key


def _sf_string(raw: str) -> str:
    out, i = [], 1
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw) and raw[i + 1] in '"\\':
            out.append(raw[i + 1])
            i += 2
        elif ch == '"':
            if i != len(raw) - 1:
                break
            return "".join(out)
        elif " " <= ch <= "~" and ch != "\\":
            out.append(ch)
            i += 1
        else:
            break
    raise BadKey('not a valid string: use "..." with printable ASCII')


class IdempotencyStore:
    """The keys, in a database of the gateway's own (SQLite or PostgreSQL).

    `lease` bounds how long a claim may stay in flight: a gateway that died mid-request
    leaves its row locked only that long, after which a retry takes it over (same command id).
    """

    def __init__(self, engine: Engine, *, window: float, lease: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine, self.window, self.lease, self.clock = engine, window, lease, clock
        self._last_purge = 0.0
        with exclusive(engine, "idempotency.schema") as conn:  # replicas may start together
            metadata.create_all(conn)

    @classmethod
    def open(cls, url: str, *, window: float = 86400.0, lease: float = 30.0,
             clock: Callable[[], float] = time.time) -> IdempotencyStore:
        # make_engine makes a SQLite database's folder (0700) when missing
        return cls(make_engine(url), window=window, lease=lease, clock=clock)

    def claim(self, scope: str, fingerprint: str) -> Claim:
        """Take the key for this request, or raise Replay, KeyReused or KeyInFlight."""
        now = self.clock()
        if now - self._last_purge >= PURGE_EVERY:
            self.purge()
        holder = uuid.uuid4().hex
        with exclusive(self.engine, f"idempotency:{scope}") as conn:
            row = conn.execute(_FIND, {"b_scope": scope}).first()
            if row is not None and row.expires_at <= now:
                conn.execute(_DROP, {"b_scope": scope})
                row = None
            if row is None:
                claim = Claim(scope, uuid.uuid4().hex, holder)
                conn.execute(_INSERT, {
                    "scope": scope, "fingerprint": fingerprint, "command_id": claim.command_id,
                    "state": IN_FLIGHT, "holder": holder, "locked_until": now + self.lease,
                    "created_at": now, "expires_at": now + self.window})
                return claim
            if row.fingerprint != fingerprint:
                raise KeyReused("this key was already used with a different request; "
                                "use a new key for a new request")
            if row.state == DONE:
                raise Replay(row.status, row.body)
            if row.state == IN_FLIGHT and row.locked_until > now:
                raise KeyInFlight("a request with this key is still in progress; "
                                  "retry it when that one has answered")
            conn.execute(_RETAKE, {"b_scope": scope, "state": IN_FLIGHT, "holder": holder,
                                   "locked_until": now + self.lease})
            return Claim(scope, row.command_id, holder)

    def complete(self, claim: Claim, status: int, body: str) -> None:
        """Keep the answer: retries get it back until the key expires."""
        self._settle(claim, state=DONE, status=status, body=body)

    def uncertain(self, claim: Claim) -> None:
        """The outcome is unknown (timeout, 5xx): keep the command id for the retry."""
        self._settle(claim, state=UNCERTAIN)

    def release(self, claim: Claim) -> None:
        """A definite refusal: nothing was written, the key is free again."""
        with self.engine.begin() as conn:
            conn.execute(_RELEASE, {"b_scope": claim.scope, "b_holder": claim.holder})

    def _settle(self, claim: Claim, **values: Any) -> None:
        # Only the current holder settles: a claim taken over after its lease ran out
        # belongs to the retry now (both sent the same command id).
        with lazy_commit(self.engine) as conn:
            conn.execute(_OWNED, {"b_scope": claim.scope, "b_holder": claim.holder,
                                  "holder": None, "locked_until": None, **values})

    def purge(self) -> int:
        """Delete expired keys; the number deleted."""
        now = self.clock()
        self._last_purge = now
        with self.engine.begin() as conn:
            return conn.execute(_EXPIRED, {"b_now": now}).rowcount

    def close(self) -> None:
        self.engine.dispose()


def claim_for(store: IdempotencyStore | None, request: Request, actor: str,
              body: Any) -> str | None:
    """The command id to send a write with: None without a key, else the key's (the claim
    waits in the request's environ for `settle`)."""
    key = parse_key(request.headers.getlist(HEADER))
    if key is None:
        return None
    if store is None:
        raise RuntimeError("an Idempotency-Key was sent but no key store is configured")
    if CLAIM_ENV in request.environ:
        return str(request.environ[CLAIM_ENV].command_id)
    claim = store.claim(scope_of(actor, request.method, request.path, key),
                        fingerprint(request.method, request.path, body))
    request.environ[CLAIM_ENV] = claim
    return claim.command_id


def settle(store: IdempotencyStore | None, request: Request, response: Response) -> None:
    """Record how the request's claim (if any) ended: 2xx kept, 4xx released, else uncertain.
    A failure here is logged, not answered: the claim then lapses after its lease, and the
    retry that takes it over sends the same command id, so the log still dedupes."""
    claim = request.environ.pop(CLAIM_ENV, None)
    if claim is None or store is None:
        return
    status = response.status_code
    try:
        if 200 <= status < 300:
            store.complete(claim, status, response.get_data(as_text=True))
        elif 400 <= status < 500:
            store.release(claim)
        else:
            store.uncertain(claim)
    except Exception:
        logger.exception("could not record the outcome of idempotency key %s", claim.scope)
