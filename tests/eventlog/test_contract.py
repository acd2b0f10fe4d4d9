"""The event log's contract (issue 2, "What it must do"), run against SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import psycopg2
import pytest
import sqlalchemy as sa

import shared.eventlog.log as log_module
from shared.eventlog import (
    ConcurrencyError,
    EventLog,
    ForgottenSubjectError,
    NewEvent,
    Record,
    Upcasters,
    chain,
)
from shared.eventlog.model import GENESIS_HASH

# append runs on the raw DBAPI connection, so a failing statement raises the driver's error
DB_ERRORS = (sa.exc.DBAPIError, sqlite3.Error, psycopg2.Error)


def ev(n: int = 0, type_: str = "visit.recorded", **kw) -> NewEvent:
    return NewEvent(type_, {"n": n}, **kw)


def positions(records) -> list[int]:
    return [r.position for r in records]


# -- schema and records -----------------------------------------------------------------------


def test_schema_is_created_on_first_open_and_reopening_keeps_the_log(log, log_factory):
    assert list(log.read()) == []
    assert log.head() == (0, GENESIS_HASH)
    log.append("a", [ev(1)])
    again = log_factory()
    assert [r.data for r in again.read()] == [{"n": 1}]
    assert again.verify().ok


def test_a_record_carries_every_field(log, raw):
    occurred = datetime(2024, 5, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    before = datetime.now(UTC)
    got = log.append(
        "visit-1",
        [NewEvent("visit.recorded", {"helper": "h1", "n": [1, 2]}, schema_version=2,
                  occurred_at=occurred)],
        expected_version=0, command_id="cmd-1", actor="user-7", correlation_id="corr-1",
        causation_id="cause-1",
    )  # fmt: skip
    after = datetime.now(UTC)
    assert got == [1]
    [r] = log.read()
    assert isinstance(r, Record)
    assert (r.position, r.stream, r.version, r.type, r.schema_version) == (
        1, "visit-1", 1, "visit.recorded", 2
    )  # fmt: skip
    assert r.data == {"helper": "h1", "n": [1, 2]}
    assert uuid.UUID(r.event_id).version == 4
    assert (r.command_id, r.actor, r.correlation_id, r.causation_id) == (
        "cmd-1", "user-7", "corr-1", "cause-1"
    )  # fmt: skip
    assert r.occurred_at == occurred and r.occurred_at.tzinfo is not None
    assert r.recorded_at.tzinfo is not None and before <= r.recorded_at <= after
    assert r.source == "visits"
    assert r.prev_hash == GENESIS_HASH
    [(_, stored, prev, hash_)] = raw.rows()
    assert (prev, hash_) == (r.prev_hash, r.hash)
    assert r.hash == chain.link(GENESIS_HASH, stored)
    assert stored == chain.dumps(json.loads(stored)), "the stored record is canonical JSON"

    log.append("visit-2", [ev()])
    [r2] = log.read(after=1)
    assert r2.prev_hash == r.hash and r2.position == 2 and r2.version == 1
    assert r2.occurred_at == r2.recorded_at, "business time defaults to the recording time"
    assert r2.command_id is None and r2.actor is None and r2.causation_id is None
    assert r2.correlation_id == r2.event_id, "a fresh causal chain is correlated by itself"


def test_correlation_defaults_to_the_command_id(log):
    log.append("s", [ev(), ev()], command_id="cmd-9")
    assert {r.correlation_id for r in log.read()} == {"cmd-9"}


@pytest.mark.parametrize(
    "text",
    ["plain", "ünïcødé ✓ 日本語 🎉", 'quote " and \\ backslash', "\\u0000 as text", "\n\t\r\b\f",
     "\x01\x1f\x7f", "\u2028\u2029", "</script>", ""],
)
def test_tricky_strings_round_trip_and_verify(log, text):
    log.append(text or "s", [NewEvent("note.added", {"text": text, text: [text]})],
               actor=text or None, causation_id=text)
    [r] = log.read()
    assert r.data == {"text": text, text: [text]}
    assert r.stream == (text or "s") and r.causation_id == text
    assert log.verify().ok


def test_nul_characters_are_refused_the_same_on_every_backend(log):
    # PostgreSQL's JSON functions cannot hold U+0000, so neither backend accepts it.
    with pytest.raises(ValueError, match="U\\+0000"):
        log.append("s", [NewEvent("note.added", {"text": "a\x00b"})])
    with pytest.raises(ValueError, match="U\\+0000"):
        log.append("s", [ev()], actor="a\x00b")
    assert log.head()[0] == 0
    log.append("s", [NewEvent("note.added", {"text": "a\x00b"}, subject="r-1",
                              personal=("text",))])  # encrypted: only ciphertext is stored
    assert [r.data for r in log.read()] == [{"text": "a\x00b"}]


# -- appending --------------------------------------------------------------------------------


def test_append_returns_dense_positions_and_versions(log):
    assert log.append("a", [ev(1), ev(2), ev(3)]) == [1, 2, 3]
    assert log.append("b", [ev(4)]) == [4]
    assert log.append("a", [ev(5), ev(6)]) == [5, 6]
    assert [(r.stream, r.version) for r in log.read()] == [
        ("a", 1), ("a", 2), ("a", 3), ("b", 1), ("a", 4), ("a", 5)
    ]  # fmt: skip
    assert log.stream_version("a") == 5 and log.stream_version("nope") == 0
    assert log.last_position() == 6


def test_a_batch_is_atomic(log, raw):
    """The third insert of a batch fails in the database: the first two must not remain."""
    if raw.dialect == "sqlite":
        raw.run("CREATE TRIGGER fail_third BEFORE INSERT ON event_log WHEN NEW.position = 3 "
                "BEGIN SELECT RAISE(ABORT, 'boom'); END")
        undo = "DROP TRIGGER fail_third"
    else:
        raw.run("CREATE FUNCTION fail_third() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.position = 3 THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$")
        raw.run("CREATE TRIGGER fail_third BEFORE INSERT ON event_log "
                "FOR EACH ROW EXECUTE FUNCTION fail_third()")
        undo = "DROP TRIGGER fail_third ON event_log"
    with pytest.raises(DB_ERRORS, match="boom"):
        log.append("a", [ev(1), ev(2), ev(3)], command_id="c")
    assert raw.rows() == []
    assert log.stream_version("a") == 0
    raw.run(undo)
    assert log.append("a", [ev(1), ev(2), ev(3)], command_id="c") == [1, 2, 3]
    assert log.verify().ok


def test_invalid_appends_are_refused(log):
    with pytest.raises(ValueError):
        log.append("", [ev()])
    with pytest.raises(ValueError):
        log.append("s", [])
    with pytest.raises(ValueError):
        NewEvent("undotted", {})
    with pytest.raises(ValueError):
        NewEvent("a.b", {}, occurred_at=datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        NewEvent("a.b", {"name": "x"}, personal=("name",))
    assert log.head()[0] == 0


def test_expected_version_mismatch_raises_and_writes_nothing(log):
    log.append("s", [ev()], expected_version=0)
    log.append("s", [ev(), ev()], expected_version=1)
    with pytest.raises(ConcurrencyError) as err:
        log.append("s", [ev()], expected_version=1)
    assert (err.value.stream, err.value.expected, err.value.actual) == ("s", 1, 3)
    assert "expected version 1" in str(err.value) and "actual 3" in str(err.value)
    with pytest.raises(ConcurrencyError, match="expected version 0, actual 3"):
        log.append("s", [ev()], expected_version=0)
    with pytest.raises(ConcurrencyError, match="expected version 2, actual 0"):
        log.append("new", [ev()], expected_version=2)
    assert log.last_position() == 3 and log.stream_version("s") == 3
    assert log.append("s", [ev()], expected_version=3) == [4]
    assert log.append("s", [ev()]) == [5], "None means: don't check"


def test_a_stale_writer_in_another_process_loses(log, log_factory):
    other = log_factory()
    log.append("s", [ev()])
    seen_by_both = other.stream_version("s")
    assert log.append("s", [ev()], expected_version=seen_by_both) == [2]
    with pytest.raises(ConcurrencyError, match="expected version 1, actual 2"):
        other.append("s", [ev()], expected_version=seen_by_both)
    assert positions(other.read()) == [1, 2]


def test_a_retried_command_returns_its_original_positions_and_writes_nothing(log, log_factory):
    commits: list[int] = []
    log.subscribe(commits.append)
    first = log.append("s", [ev(1), ev(2)], command_id="cmd-1", expected_version=0)
    log.append("t", [ev(3)], command_id="cmd-2")
    before = list(log.read())
    # the same command again: even with a now-stale expected version, other events or stream
    assert log.append("s", [ev(1), ev(2)], command_id="cmd-1", expected_version=0) == first
    assert log.append("x", [ev(9)], command_id="cmd-1") == first
    assert log_factory().append("s", [ev(1)], command_id="cmd-1") == first
    assert list(log.read()) == before
    assert commits == [2, 3], "retries commit nothing, so listeners hear nothing"
    assert log.append("s", [ev(4)], command_id="cmd-3") == [4]


# -- reading ----------------------------------------------------------------------------------


@pytest.fixture
def ten(log, monkeypatch) -> EventLog:
    """Ten events over three streams, read in pages of three."""
    monkeypatch.setattr(log_module, "PAGE", 3)
    log.append("a", [ev(1), ev(2)])
    log.append("b", [ev(3)])
    log.append("a", [ev(4), ev(5), ev(6), ev(7)])
    log.append("c", [ev(8)])
    log.append("b", [ev(9), ev(10)])
    return log


@pytest.mark.parametrize(
    ("after", "limit", "expected"),
    [
        (0, None, list(range(1, 11))),
        (4, None, list(range(5, 11))),
        (2, 5, [3, 4, 5, 6, 7]),
        (0, 3, [1, 2, 3]),
        (0, 6, [1, 2, 3, 4, 5, 6]),
        (1, 7, [2, 3, 4, 5, 6, 7, 8]),
        (9, 5, [10]),
        (10, None, []),
        (0, 0, []),
        (3, 100, list(range(4, 11))),
    ],
)
def test_read_pages_across_the_page_boundary(ten, after, limit, expected):
    records = list(ten.read(after=after, limit=limit))
    assert positions(records) == expected
    assert [r.data["n"] for r in records] == expected


def test_read_streams_lazily_and_follows_a_growing_log(ten):
    it = ten.read(after=5)
    assert next(it).position == 6
    ten.append("d", [ev(11)])
    assert positions(it) == [7, 8, 9, 10, 11], "later pages see what was appended meanwhile"


def test_read_stream_in_version_order_optionally_up_to_a_version(ten):
    a = ten.read_stream("a")
    assert [(r.version, r.data["n"]) for r in a] == [(1, 1), (2, 2), (3, 4), (4, 5), (5, 6),
                                                      (6, 7)]
    assert {r.stream for r in a} == {"a"}
    assert [r.version for r in ten.read_stream("a", up_to_version=3)] == [1, 2, 3]
    assert ten.read_stream("a", up_to_version=0) == []
    assert [r.position for r in ten.read_stream("b", up_to_version=99)] == [3, 9, 10]
    assert ten.read_stream("nope") == []


def test_read_until_returns_exactly_the_prefix_recorded_by_then(log, monkeypatch):
    monkeypatch.setattr(log_module, "PAGE", 2)
    start = datetime.now(UTC)
    time.sleep(0.002)
    log.append("a", [ev(1), ev(2), ev(3)])
    first = list(log.read())
    time.sleep(0.002)
    between = datetime.now(UTC)
    time.sleep(0.002)
    log.append("b", [ev(4)])
    log.append("a", [ev(5)])
    everything = list(log.read())
    assert list(log.read_until(start)) == []
    assert list(log.read_until(between)) == first
    assert list(log.read_until(first[-1].recorded_at)) == first, "the instant itself counts"
    assert list(log.read_until(between.astimezone(timezone(timedelta(hours=-5))))) == first
    assert list(log.read_until(everything[3].recorded_at)) == everything[:4]
    assert list(log.read_until(datetime.now(UTC))) == everything
    recorded = [r.recorded_at for r in everything]
    assert recorded == sorted(recorded)


# -- append-only in the database --------------------------------------------------------------


def test_the_database_refuses_update_delete_and_truncate(log, raw):
    log.append("s", [ev(1), ev(2)])
    before = raw.rows()
    attacks = [
        "UPDATE event_log SET record = replace(record, :old, :new) WHERE position = 1",
        "UPDATE event_log SET hash = prev_hash",
        "DELETE FROM event_log WHERE position = 2",
        "DELETE FROM event_log",
    ]
    if raw.dialect == "postgresql":
        attacks.append("TRUNCATE event_log")
    for sql in attacks:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            raw.run(sql, old='"n":1', new='"n":7')
    assert raw.rows() == before
    assert log.verify().ok
    assert log.append("s", [ev(3)]) == [3], "inserting still works"


# -- envelope ---------------------------------------------------------------------------------


REQUIRED = {"id", "source", "type", "subject", "time", "specversion", "datacontenttype", "data"}
EXTENSIONS = {"sequence", "recordedtime", "correlationid", "causationid", "hash"}


def test_every_record_maps_to_a_cloudevent_and_back(log):
    log.append("visit-1", [ev(1)], command_id="c1", actor="u1", causation_id="cause")
    log.append("resident-1", [NewEvent("resident.registered", {"name": "Ann", "age": 80},
                                       subject="r-1", personal=("name",))])
    log.forget("r-1")
    records = list(log.read())
    assert len(records) == 3
    for r in records:
        ce = r.to_cloudevent()
        assert ce.keys() >= REQUIRED
        assert ce.keys() >= EXTENSIONS - {"causationid"}, "causationid: only when there is one"
        assert ce["specversion"] == "1.0" and ce["datacontenttype"] == "application/json"
        assert (ce["id"], ce["source"], ce["type"], ce["subject"]) == (
            r.event_id, "visits", r.type, r.stream
        )  # fmt: skip
        assert ce["data"] == r.data
        assert datetime.fromisoformat(ce["time"]) == r.occurred_at
        assert datetime.fromisoformat(ce["recordedtime"]) == r.recorded_at
        assert int(ce["sequence"]) == r.position
        assert ce["hash"] == r.hash and ce["correlationid"] == r.correlation_id
        assert all(k.isalnum() and k.islower() for k in ce), "CloudEvents attribute names"
        assert Record.from_cloudevent(json.loads(json.dumps(ce))) == r
    first = records[0].to_cloudevent()
    assert first.keys() >= REQUIRED | EXTENSIONS, "all of them when every value is present"
    assert first["causationid"] == "cause" and first["correlationid"] == "c1"
    assert records[1].to_cloudevent()["data"] == {"name": None, "age": 80}


# -- schema evolution -------------------------------------------------------------------------


def test_an_upcast_chain_v1_v2_v3_is_applied_on_read(log, log_factory, raw):
    log.append("h", [NewEvent("helper.joined", {"name": "Bo Li"}, schema_version=1)])
    log.append("h", [NewEvent("helper.joined", {"full_name": "Cy Do"}, schema_version=2)])
    log.append("h", [NewEvent("helper.joined", {"given": "Di", "family": "Ek", "phone": None},
                              schema_version=3)])
    log.append("o", [NewEvent("other.thing", {"name": "kept"}, schema_version=1)])
    stored = raw.rows()

    upcasters = Upcasters()

    @upcasters.register("helper.joined", 1)
    def rename(data):
        return {"full_name": data["name"]}

    @upcasters.register("helper.joined", 2)
    def split(data):
        given, _, family = data["full_name"].partition(" ")
        return {"given": given, "family": family, "phone": None}

    with pytest.raises(ValueError):
        upcasters.register("helper.joined", 1)(rename)
    reader = log_factory(upcasters=upcasters)
    records = reader.read_stream("h")
    assert [(r.schema_version, r.data) for r in records] == [
        (3, {"given": "Bo", "family": "Li", "phone": None}),
        (3, {"given": "Cy", "family": "Do", "phone": None}),
        (3, {"given": "Di", "family": "Ek", "phone": None}),
    ]
    assert [(r.schema_version, r.data) for r in reader.read()][:3] == [
        (r.schema_version, r.data) for r in records
    ]
    other = list(reader.read(after=3))
    assert [(r.schema_version, r.data) for r in other] == [(1, {"name": "kept"})]
    plain = log.read_stream("h")[0]
    assert (plain.schema_version, plain.data) == (1, {"name": "Bo Li"}), "no upcasters: as stored"
    assert raw.rows() == stored, "upcasting never writes"
    assert reader.verify().ok


# -- residents' personal data -----------------------------------------------------------------


def resident(name: str = "Ann Smith", subject: str = "r-1") -> NewEvent:
    return NewEvent(
        "resident.registered",
        {"name": name, "address": {"street": "12 Elm Road", "city": "Leeds"}, "visits": 3},
        subject=subject, personal=("name", "address.street", "absent.path"),
    )  # fmt: skip


def test_personal_data_is_encrypted_at_rest_and_forget_redacts_it(log, raw):
    log.append("resident-1", [resident()])
    log.append("resident-2", [resident("Bea Jones", "r-2")])
    log.append("visit-1", [ev(1)])
    stored = raw.rows()
    text = " ".join(r[1] for r in stored)
    for secret in ("Ann Smith", "Bea Jones", "Elm Road"):
        assert secret not in text
    assert "Leeds" in text

    [r1] = log.read_stream("resident-1")
    assert r1.data == {"name": "Ann Smith", "address": {"street": "12 Elm Road", "city": "Leeds"},
                       "visits": 3}
    assert r1.subject == "r-1" and r1.redacted == ()
    assert r1.personal == ("name", "address.street", "absent.path")

    assert log.forget("r-1", actor="dpo") is True
    [gone] = log.read_stream("resident-1")
    assert gone.data == {"name": None, "address": {"street": None, "city": "Leeds"}, "visits": 3}
    assert gone.redacted == ("name", "address.street")
    assert gone._replace(data=r1.data, redacted=()) == r1, "every other field is intact"
    assert log.read_stream("resident-2")[0].data["name"] == "Bea Jones"
    assert [r.data for r in log.read_stream("visit-1")] == [{"n": 1}]

    [forgotten] = log.read_stream("subject-r-1")
    assert forgotten.type == "subject.forgotten" and forgotten.actor == "dpo"
    assert forgotten.data == {"subject": "r-1", "key_destroyed": True}
    assert raw.rows()[:3] == stored, "forgetting rewrites nothing in the log"
    assert log.verify().ok

    with pytest.raises(ForgottenSubjectError):
        log.append("resident-1", [resident()])
    log.append("resident-1", [NewEvent("resident.moved", {"city": "York"}, subject="r-1")])
    assert log.forget("r-1") is False, "no key left to destroy"
    assert log.forget("never-seen") is False
    with pytest.raises(ForgottenSubjectError):
        log.append("resident-9", [resident(subject="never-seen")])
    assert log.verify().ok


def test_a_personal_record_whose_data_mentions_personal_null_still_decrypts(log):
    """Regression: reads looked for the text '"personal":null' anywhere in the record."""
    log.append("r", [NewEvent("resident.noted", {"personal": None, "name": "Ann"},
                              subject="r-1", personal=("name",))])
    [r] = log.read()
    assert r.data == {"personal": None, "name": "Ann"} and r.redacted == ()


def test_keys_may_live_in_a_database_of_their_own(backend, db_url, log_factory, tmp_path,
                                                  request):
    if backend == "sqlite":
        keys_url = f"sqlite:///{tmp_path / 'keys.db'}"
    else:
        keys_url = request.getfixturevalue("postgres").create_database(
            f"k_{uuid.uuid4().hex[:16]}"
        )
    log = log_factory(keys_url=keys_url)
    log.append("resident-1", [resident()])
    assert log.read_stream("resident-1")[0].data["name"] == "Ann Smith"

    for url, has_keys in ((keys_url, True), (db_url, False)):
        engine = sa.create_engine(url)
        try:
            tables = sa.inspect(engine).get_table_names()
            assert ("subject_keys" in tables) is has_keys
            if has_keys:
                with engine.connect() as conn:
                    assert conn.execute(sa.text("SELECT subject FROM subject_keys")).all() == [
                        ("r-1",)
                    ]
        finally:
            engine.dispose()

    # the same log opened without the key database cannot read the personal fields
    assert log_factory().read_stream("resident-1")[0].redacted == ("name", "address.street")
    log.forget("r-1")
    assert log.read_stream("resident-1")[0].data["name"] is None
    assert log.verify().ok


# -- auditing ---------------------------------------------------------------------------------


def test_verify_reports_ok_on_an_intact_log(log, monkeypatch):
    report = log.verify()
    assert report.ok and report.checked == 0 and report.first_bad_position is None
    monkeypatch.setattr(log_module, "PAGE", 4)
    for i in range(5):
        log.append(f"s{i % 2}", [ev(i)] * (i + 1))
    report = log.verify()
    assert report.ok and report.checked == 15 and report.last_position == 15
    assert report.last_hash == log.head()[1] and report.reason is None
    assert report.to_dict()["ok"] is True


def test_a_listener_hears_each_commit(log):
    heard: list[int] = []
    log.subscribe(heard.append)
    log.append("s", [ev(), ev()])
    log.append("s", [ev()])
    assert heard == [2, 3]
