"""The gateway's Idempotency-Key store (services/gateway/idempotency.py) on a real SQLite file
and a real PostgreSQL, with a clock the tests move: claims, replays, refusals, leases, expiry."""

from __future__ import annotations

import eventlet
import pytest
import sqlalchemy as sa
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from services.gateway.idempotency import (
    BadKey,
    IdempotencyStore,
    KeyInFlight,
    KeyReused,
    Replay,
    claim_for,
    fingerprint,
    parse_key,
    scope_of,
    settle,
)

WINDOW, LEASE = 100.0, 10.0
SCOPE = scope_of("cadre:c-1", "POST", "/api/v1/visits", "k-1")
FP = fingerprint("POST", "/api/v1/visits", {"a": 1, "b": [1, 2]})


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = (f"sqlite:///{tmp_path}/sub/gateway.db" if request.param == "sqlite"
           else request.getfixturevalue("pg_url"))
    clock = Clock()
    keys = IdempotencyStore.open(url, window=WINDOW, lease=LEASE, clock=clock)
    keys.clock_ref = clock  # type: ignore[attr-defined]
    yield keys
    keys.close()


def test_fingerprint_and_scope_ignore_key_order_and_separate_callers():
    assert fingerprint("POST", "/api/v1/visits", {"b": [1, 2], "a": 1}) == FP
    assert fingerprint("POST", "/api/v1/visits", {"a": 1, "b": [2, 1]}) != FP
    assert fingerprint("POST", "/api/v1/units", {"a": 1, "b": [1, 2]}) != FP
    assert scope_of("cadre:c-2", "POST", "/api/v1/visits", "k-1") != SCOPE
    assert scope_of("cadre:c-1", "POST", "/api/v1/units", "k-1") != SCOPE
    fingerprint("POST", "/p", {"notes": "\ud800"})  # a lone surrogate does not break hashing


def test_parse_key_follows_the_structured_field_string():
    assert parse_key([]) is None
    assert parse_key(['"abc-1"']) == "abc-1"
    assert parse_key(['"say \\"hi\\" \\\\ ok"']) == 'say "hi" \\ ok'
    assert parse_key(["8e03978e-40d5-43e8-bc93-6894a57f9324"]) == (
        "8e03978e-40d5-43e8-bc93-6894a57f9324")  # a bare token is accepted too
    for bad in (['""'], ['"open'], ['"a"b"'], ['"\\x"'], ["two words"], ["ключ"],
                ["k" * 256], ["a", "b"]):
        with pytest.raises(BadKey) as caught:
            parse_key(bad)
        assert caught.value.http_status == 400
        assert list(caught.value.errors()) == ["Idempotency-Key"]


def test_first_claim_then_in_flight_then_reused(store):
    claim = store.claim(SCOPE, FP)
    with pytest.raises(KeyInFlight) as busy:
        store.claim(SCOPE, FP)
    assert busy.value.http_status == 409
    with pytest.raises(KeyReused) as reused:
        store.claim(SCOPE, fingerprint("POST", "/api/v1/visits", {"a": 2}))
    assert reused.value.http_status == 422
    other = store.claim(scope_of("cadre:c-2", "POST", "/api/v1/visits", "k-1"), FP)
    assert other.command_id != claim.command_id


def test_a_success_is_replayed_and_a_refusal_releases_the_key(store):
    claim = store.claim(SCOPE, FP)
    store.complete(claim, 201, '{"id":"v-1","position":7}')
    with pytest.raises(Replay) as replay:
        store.claim(SCOPE, FP)
    assert (replay.value.status, replay.value.body) == (201, '{"id":"v-1","position":7}')
    with pytest.raises(KeyReused):
        store.claim(SCOPE, fingerprint("POST", "/api/v1/visits", {}))

    scope = scope_of("cadre:c-1", "POST", "/api/v1/visits", "k-2")
    refused = store.claim(scope, FP)
    store.release(refused)
    again = store.claim(scope, fingerprint("POST", "/api/v1/visits", {"fixed": True}))
    assert again.command_id != refused.command_id


def test_an_uncertain_outcome_keeps_the_command_id_for_the_retry(store):
    claim = store.claim(SCOPE, FP)
    store.uncertain(claim)
    retry = store.claim(SCOPE, FP)
    assert retry.command_id == claim.command_id and retry.holder != claim.holder


def test_a_claim_is_committed_durably_and_a_settle_without_waiting_for_the_disk(store):
    """The module's durability rule, as each commit runs: a claim must be on disk before its
    write is sent, a settle may be lost (and the connection is left durable again after it)."""
    query = ("PRAGMA synchronous" if store.engine.dialect.name == "sqlite"
             else "SHOW synchronous_commit")
    seen: list[str] = []

    def on_commit(conn) -> None:
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.execute(query)
        seen.append(str(cursor.fetchone()[0]))
        cursor.close()

    store.purge()  # now, not within the claims below
    sa.event.listen(store.engine, "commit", on_commit)
    claim = store.claim(SCOPE, FP)
    store.complete(claim, 201, "{}")
    refused = store.claim(scope_of("cadre:c-1", "POST", "/api/v1/visits", "k-2"), FP)
    store.uncertain(refused)
    store.claim(scope_of("cadre:c-1", "POST", "/api/v1/visits", "k-2"), FP)
    if store.engine.dialect.name == "sqlite":
        durable, relaxed = "2", "1"  # FULL, as make_engine sets it; NORMAL
    else:  # the server's own setting (the tests' server may run without it); off
        with store.engine.connect() as conn:
            durable, relaxed = conn.exec_driver_sql(query).scalar(), "off"
    assert seen == [durable, relaxed, durable, relaxed, durable]


def test_a_dead_claim_is_taken_over_after_its_lease(store):
    claim = store.claim(SCOPE, FP)
    store.clock_ref.now += LEASE + 1
    retry = store.claim(SCOPE, FP)
    assert retry.command_id == claim.command_id
    store.complete(claim, 201, '"late"')  # the old holder no longer settles the key
    with pytest.raises(KeyInFlight):
        store.claim(SCOPE, FP)
    store.complete(retry, 201, '"retry"')
    with pytest.raises(Replay) as replay:
        store.claim(SCOPE, FP)
    assert replay.value.body == '"retry"'


def test_after_the_window_a_key_starts_afresh_and_expired_keys_are_purged(store):
    claim = store.claim(SCOPE, FP)
    store.complete(claim, 201, "{}")
    store.claim(scope_of("a", "POST", "/p", "other"), FP)
    store.clock_ref.now += WINDOW - 1
    with pytest.raises(Replay):
        store.claim(SCOPE, FP)
    store.clock_ref.now += 2
    fresh = store.claim(SCOPE, fingerprint("POST", "/api/v1/visits", {"new": 1}))
    assert fresh.command_id != claim.command_id  # a new epoch: the log will not dedupe it
    assert store.purge() == 1  # the other key; the fresh one is not expired
    store.clock_ref.now += WINDOW
    assert store.purge() == 1


def test_concurrent_claims_of_one_key_give_one_claim(store):
    def attempt() -> str:
        try:
            store.claim(SCOPE, FP)
        except KeyInFlight:
            return "busy"
        return "claimed"

    outcomes = [t.wait() for t in [eventlet.spawn(attempt) for _ in range(12)]]
    assert sorted(outcomes) == ["busy"] * 11 + ["claimed"]


def _request(headers: dict[str, str]) -> Request:
    return Request(EnvironBuilder(method="POST", path="/api/v1/visits",
                                  headers=headers).get_environ())


def test_claim_for_and_settle_map_each_outcome(store):
    assert claim_for(store, _request({}), "cadre:c-1", {"a": 1}) is None  # no key: always new
    outcomes = {201: Replay, 404: None, 504: "same", 500: "same"}
    for status, expected in outcomes.items():
        request = _request({"Idempotency-Key": f"k-{status}"})
        first = claim_for(store, request, "cadre:c-1", {"a": 1})
        assert first is not None
        assert claim_for(store, request, "cadre:c-1", {"a": 1}) == first  # one claim a request
        settle(store, request, Response('{"ok":true}', status=status))
        retry = _request({"Idempotency-Key": f"k-{status}"})
        if expected is Replay:
            with pytest.raises(Replay) as replay:
                claim_for(store, retry, "cadre:c-1", {"a": 1})
            assert replay.value.response().get_data(as_text=True) == '{"ok":true}'
        elif expected == "same":
            assert claim_for(store, retry, "cadre:c-1", {"a": 1}) == first
        else:
            assert claim_for(store, retry, "cadre:c-1", {"a": 2}) not in (None, first)
