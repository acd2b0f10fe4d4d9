"""Residents' keys are created with the first event that uses them (issue 7, section 3).

Each test runs on SQLite and PostgreSQL, with the keys in the log's own database ("shared") and
in a database of their own ("apart"): a failed append must leave no key behind in either.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from shared.eventlog import ConcurrencyError, EventLog, ForgottenSubjectError, NewEvent
from shared.eventlog.personal import SPARES


def resident(subject: str, name: str = "Ann Smith", **data: Any) -> NewEvent:
    return NewEvent("resident.registered", {"name": name, **data}, subject=subject,
                    personal=("name",))


@pytest.fixture(params=["shared", "apart"])
def keys_url(request: pytest.FixtureRequest, db_url: str) -> str:
    """Where the keys live: the log's database, or another one."""
    return db_url if request.param == "shared" else request.getfixturevalue("apart_url")


@pytest.fixture
def apart_url(request: pytest.FixtureRequest, backend: str, tmp_path) -> str:
    """A key database of its own (in a folder SQLite must make)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'keys' / 'visits.db'}"
    return request.getfixturevalue("postgres").create_database(f"k_{uuid.uuid4().hex[:16]}")


@pytest.fixture
def keyed(log_factory: Callable[..., EventLog], keys_url: str) -> EventLog:
    return log_factory(keys_url=keys_url)


@pytest.fixture
def key_rows(keys_url: str, keyed: EventLog) -> Iterator[Callable[[], list[str]]]:
    """The subjects that have a row in the key database, read over a connection of its own."""
    engine = sa.create_engine(keys_url, poolclass=NullPool)

    def rows() -> list[str]:
        with engine.connect() as conn:
            return sorted(conn.execute(sa.text("SELECT subject FROM subject_keys")).scalars())

    yield rows
    engine.dispose()


def test_a_failed_append_leaves_no_key(keyed, key_rows):
    keyed.append("resident-1", [NewEvent("resident.noted", {"n": 1})], command_id="cmd-1")
    with pytest.raises(ConcurrencyError):
        keyed.append("resident-1", [resident("r-late")], expected_version=0)
    with pytest.raises(ValueError, match="U\\+0000"):  # refused by the log's own contract
        keyed.append("resident-2", [resident("r-nul", note="a\x00b")])
    retried = keyed.append("resident-3", [resident("r-retry")], command_id="cmd-1")
    assert retried == [1], "a retried command writes nothing, its key neither"
    assert key_rows() == []

    keyed.append("resident-1", [resident("r-late")], expected_version=1)
    assert key_rows() == ["r-late"]
    assert keyed.read_stream("resident-1")[1].data == {"name": "Ann Smith"}
    assert keyed.verify().ok


def test_a_sqlite_key_database_gets_a_private_folder(tmp_path):
    folder = tmp_path / "var" / "keys"
    log = EventLog.open(f"sqlite:///{tmp_path / 'log.db'}", service="visits",
                        keys_url=f"sqlite:///{folder / 'visits.db'}")
    try:
        log.append("resident-1", [resident("r-1")])
    finally:
        log.close()
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert (folder / "visits.db").exists()


class _CommitFails:
    """The writer connection, except that its commit raises (after committing, if `lost`)."""

    def __init__(self, conn: Any, lost: bool) -> None:
        self._conn, self._lost = conn, lost

    def commit(self) -> None:
        if self._lost:
            self._conn.commit()  # the commit happens; its answer never arrives
        raise OSError("connection lost during commit")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_a_failed_log_commit_takes_its_new_key_back_unless_the_log_has_the_data(
    keyed, key_rows, monkeypatch
):
    """A fault injected at the log's commit (the database itself is real): a key stored apart
    is removed again when the log does not hold the records, and kept when it does."""
    keyed.append("resident-0", [resident("r-0")])
    begin = keyed._begin

    def failing_commit(lost: bool) -> None:
        def begin_then_fail() -> Any:
            cur = begin()
            keyed._writer = _CommitFails(keyed._writer, lost)
            return cur

        monkeypatch.setattr(keyed, "_begin", begin_then_fail)
        with pytest.raises(OSError, match="connection lost"):
            keyed.append("resident-1", [resident("r-1")])
        keyed._writer = keyed._writer._conn
        monkeypatch.undo()

    failing_commit(lost=False)
    assert key_rows() == ["r-0"]
    assert keyed.read_stream("resident-1") == []

    failing_commit(lost=True)
    assert key_rows() == ["r-0", "r-1"], "data in the log keeps its key"
    assert keyed.read_stream("resident-1")[0].data == {"name": "Ann Smith"}
    assert keyed.verify().ok


def test_two_writers_making_a_first_key_at_once_share_one(
    log_factory, keys_url, keyed, key_rows, monkeypatch
):
    """The other writer stores a key for the subject after our append sealed its data with a
    key of its own and before it commits: ours is dropped, theirs is used, and both records
    read back."""
    other = log_factory(keys_url=keys_url)
    submit = keyed._group.submit

    def racing(pending: Any, commit: Any) -> Any:
        other.append("resident-b", [resident("r-1", "Bea Jones")])
        return submit(pending, commit)

    monkeypatch.setattr(keyed._group, "submit", racing)
    keyed.append("resident-a", [resident("r-1")])
    assert key_rows() == ["r-1"]
    for log in (keyed, other):
        assert log.read_stream("resident-a")[0].data == {"name": "Ann Smith"}
        assert log.read_stream("resident-b")[0].data == {"name": "Bea Jones"}
    assert keyed.verify().ok


def test_holds_tells_held_erased_and_unknown_without_making_a_key(keyed, key_rows):
    assert keyed.keys.holds("r-never") is None
    assert key_rows() == [], "asking made no key"
    keyed.append("resident-1", [resident("r-held")])
    assert keyed.keys.holds("r-held") is True
    keyed.forget("r-held", actor="dpo")
    assert keyed.keys.holds("r-held") is False
    assert key_rows() == ["r-held"]


def _resident_id() -> str:
    return f"res-{uuid.uuid4()}"


def test_a_spare_subject_has_its_key_stored_before_any_event_uses_it(keyed, key_rows,
                                                                      keys_url, db_url):
    spare = keyed.spare_subject(_resident_id)
    if keys_url == db_url:  # a new key joins the append's own transaction: nothing to spare
        assert spare is None
        return
    assert spare is not None
    stored = key_rows()
    assert spare in stored and len(stored) == SPARES, "stored a batch at once, before use"
    keyed.append("resident-1", [resident(spare)])
    assert key_rows() == stored, "the append that used it stored no key of its own"
    assert keyed.read_stream("resident-1")[0].data == {"name": "Ann Smith"}
    assert keyed.keys.erase(spare)
    assert keyed.read_stream("resident-1")[0].redacted == ("name",)
    assert keyed.verify().ok


def test_spares_are_handed_out_once_unless_given_back(log_factory, apart_url):
    keyed = log_factory(keys_url=apart_url)
    handed = [keyed.spare_subject(_resident_id) for _ in range(SPARES + 3)]
    assert len(set(handed)) == len(handed), "never the same id twice"
    assert set(handed) <= set(keyed.keys.keys(handed)), "a second batch stored when needed"
    assert all(keyed.keys.keys(handed).values())
    keyed.give_back_subject(_resident_id, handed[0])
    assert keyed.spare_subject(_resident_id) == handed[0]
    assert keyed.spare_subject(_resident_id) not in handed


def test_a_spares_key_is_asked_for_only_after_its_first_use(log_factory, apart_url,
                                                            monkeypatch):
    """The append that uses a spare has its key at hand (no query of the key database);
    after that the key database is asked, as for any subject, so an erasure is seen."""
    keyed = log_factory(keys_url=apart_url)
    spare, other = keyed.spare_subject(_resident_id), keyed.spare_subject(_resident_id)
    keyed.append("resident-0", [resident("r-known")])
    asked: list[set[str]] = []
    select = keyed.keys._select

    def counted(subjects: set[str]) -> list[Any]:
        asked.append(set(subjects))
        return select(subjects)

    monkeypatch.setattr(keyed.keys, "_select", counted)
    keyed.append("resident-1", [resident(spare)])
    assert asked == []
    assert keyed.keys.erase(spare)
    with pytest.raises(ForgottenSubjectError):
        keyed.append("resident-1", [resident(spare, name="Bo Li")], expected_version=1)
    assert asked == [{spare}]
    keyed.append("resident-2", [resident(other), resident("r-known")])
    assert asked == [{spare}, {"r-known"}], "only the subject that is not an unused spare"
    assert [r.data for r in keyed.read_stream("resident-2")] == [{"name": "Ann Smith"}] * 2


def test_keys_of_spares_handed_out_and_never_used_are_not_kept_past_a_refill(
        log_factory, apart_url):
    """A spare lost by its command (its outcome unknown) leaves its key in the key database
    only: the keys kept at hand are those of the spares still in the pool, and the new batch."""
    keyed = log_factory(keys_url=apart_url)
    handed = [keyed.spare_subject(_resident_id) for _ in range(SPARES + 1)]
    at_hand = set(keyed.keys._spare_keys)
    assert handed[-1] in at_hand and not at_hand & set(handed[:-1])
    assert len(at_hand) == SPARES
    keys, fresh = keyed.keys.keys_for_writing([handed[0]])
    assert fresh == {} and keys == keyed.keys.keys([handed[0]]), "looked up, not made"
