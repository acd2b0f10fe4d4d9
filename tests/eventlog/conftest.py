"""Fixtures of the event-log suite: one contract, run against SQLite and PostgreSQL.

`log` is a fresh EventLog on each backend; `log_factory` opens further EventLog objects on the
same database (another process would); `raw` is a separate plain connection for playing the
attacker with SQL the log never issues.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from shared.eventlog import EventLog, Signer, chain
from shared.eventlog.model import GENESIS_HASH

SERVICE = "visits"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh, empty database of the backend under test."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(autouse=True)
def _no_ambient_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRASSROOTS_SIGNING_KEY", raising=False)


@pytest.fixture
def log_factory(db_url: str) -> Iterator[Callable[..., EventLog]]:
    """Open another EventLog on the database under test (closed at teardown)."""
    opened: list[EventLog] = []

    def open_log(**kwargs: Any) -> EventLog:
        kwargs.setdefault("service", SERVICE)
        log = EventLog.open(db_url, **kwargs)
        opened.append(log)
        return log

    yield open_log
    for log in opened:
        log.close()


@pytest.fixture
def log(log_factory: Callable[..., EventLog]) -> EventLog:
    return log_factory()


@pytest.fixture(params=["ed25519", "hmac"])
def signing_key(request: pytest.FixtureRequest) -> str:
    return Signer.generate(request.param)


@pytest.fixture
def signed_log(log_factory: Callable[..., EventLog], signing_key: str) -> EventLog:
    return log_factory(signing_key=signing_key)


class Raw:
    """A connection of its own, outside EventLog: what an attacker with database access has."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, poolclass=NullPool)
        self.dialect = self.engine.dialect.name

    def run(self, sql: str, **params: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(sql), params)

    def rows(self) -> list[tuple[int, str, str, str]]:
        """Every stored row as (position, record, prev_hash, hash), in position order."""
        with self.engine.connect() as conn:
            result = conn.execute(
                sa.text("SELECT position, record, prev_hash, hash FROM event_log ORDER BY position")
            )
            return [tuple(r) for r in result]

    def drop_triggers(self) -> None:
        """Step one of any attack: remove the append-only guards."""
        if self.dialect == "sqlite":
            names = ["event_log_no_update", "event_log_no_delete"]
            drops = [f"DROP TRIGGER {name}" for name in names]
        else:
            names = ["event_log_no_update", "event_log_no_truncate"]
            drops = [f"DROP TRIGGER {name} ON event_log" for name in names]
        for ddl in drops:
            self.run(ddl)

    def edit(self, position: int, change: Callable[[dict[str, Any]], None]) -> str:
        """Change the stored record at `position` (still valid canonical JSON); the new text."""
        doc = json.loads(self._record(position))
        change(doc)
        text = chain.dumps(doc)
        self.run("UPDATE event_log SET record = :r WHERE position = :p", r=text, p=position)
        return text

    def _record(self, position: int) -> str:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT record FROM event_log WHERE position = :p"), {"p": position}
            ).scalar_one()

    def rechain(self, start: int, prev: str | None = None) -> None:
        """Recompute prev_hash and hash of every record from `start` on, as a careful attacker
        would after editing one: the bare chain then links up again (from `prev`, if given,
        instead of the hash of the record before)."""
        rows = self.rows()
        if prev is None:
            prev = next((h for p, _, _, h in rows if p == start - 1), GENESIS_HASH)
        for position, record, _, _ in rows:
            if position < start:
                continue
            hash_ = chain.link(prev, record)
            self.run(
                "UPDATE event_log SET prev_hash = :prev, hash = :h WHERE position = :p",
                prev=prev, h=hash_, p=position,
            )  # fmt: skip
            prev = hash_

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def raw(db_url: str, log: EventLog) -> Iterator[Raw]:
    """Raw SQL on the database under test; depends on `log` so the schema exists."""
    conn = Raw(db_url)
    yield conn
    conn.close()
