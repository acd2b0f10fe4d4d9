# ruff: noqa: F811
"""An acknowledged write is never dropped (issue #7, section 1), through the real gateway, broker
and services: a request without Idempotency-Key is always new; a key replays the first success,
refuses another request (422) and expires."""

from __future__ import annotations

import uuid

import eventlet
import sqlalchemy as sa

# The gateway and services of test_gateway.py (fixture `api`), shared, not redefined:
from tests.integration.test_gateway import visit

NOTES = "/visits/v-notes/corrections"


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def _notes(api, text, **kwargs):
    return api.post(NOTES, "cadre_a1", {"diary": {"notes": text}, "reason": "typo"}, **kwargs)


def test_correcting_b_then_a_then_b_writes_three_events(api):
    assert api.post("/visits", "operator", visit(["c-a1"], id="v-notes")).status_code == 201
    before = api.log_length()
    positions = []
    for text in ("B", "A", "B"):
        reply = _notes(api, text)
        assert reply.status_code == 200, reply.text
        positions.append(reply.json()["position"])
    assert positions == sorted(set(positions)), positions  # three new positions
    assert api.log_length() == before + 3
    assert api.get("/visits/v-notes", "operator").json()["diary"]["notes"] == "B"
    for text in ("A", "B"):  # with a fresh key each, the same
        assert _notes(api, text, headers=_key()).status_code == 200
    assert api.log_length() == before + 5


def test_a_visit_without_id_or_key_is_new_each_time_and_an_own_id_is_harmless(api):
    before = api.log_length()
    first = api.post("/visits", "cadre_a1", visit(["c-a1"]))
    second = api.post("/visits", "cadre_a1", visit(["c-a1"]))
    assert first.status_code == second.status_code == 201, second.text
    assert first.json()["id"] != second.json()["id"]
    assert api.log_length() == before + 2
    own = api.post("/visits", "cadre_a1", visit(["c-a1"], id="v-own"))
    again = api.post("/visits", "cadre_a1", visit(["c-a1"], id="v-own"))
    assert own.status_code == again.status_code == 201 and again.json() == own.json()
    assert api.log_length() == before + 3  # an identical re-record of one visit is a no-op


def test_one_key_replays_its_request_and_refuses_any_other_with_422(api):
    before = api.log_length()
    key = _key()
    first = api.post("/visits", "cadre_a1", visit(["c-a1"]), headers=key)
    assert first.status_code == 201, first.text
    for day in range(2, 21):
        body = visit(["c-a1"], diary={"notes": f"body {day}"})
        reply = api.post("/visits", "cadre_a1", body, headers=key)
        assert reply.status_code == 422, reply.text
        assert "different request" in reply.json()["errors"]["Idempotency-Key"][0]
    retry = api.post("/visits", "cadre_a1", visit(["c-a1"]), headers=key)
    assert (retry.status_code, retry.json()) == (201, first.json())
    assert api.log_length() == before + 1
    other_caller = api.post("/visits", "operator", visit(["c-a1"]), headers=key)
    assert other_caller.status_code == 201 and other_caller.json()["id"] != first.json()["id"]
    other_path = api.post("/visits/" + first.json()["id"] + "/retraction", "cadre_a1",
                          {"reason": "duplicate"}, headers=key)
    assert other_path.status_code == 200, other_path.text  # keys are scoped to the path
    assert api.log_length() == before + 3


def test_a_refused_request_releases_its_key(api):
    key = _key()
    refused = api.post("/visits", "operator", visit(["c-nobody"]), headers=key)
    assert refused.status_code == 422 and "cadre_ids" in refused.json()["errors"]
    fixed = api.post("/visits", "operator", visit(["c-a1"]), headers=key)
    assert fixed.status_code == 201, fixed.text
    bad = api.post("/visits", "operator", visit(["c-a1"]), headers={"Idempotency-Key": '"x'})
    assert bad.status_code == 400 and list(bad.json()["errors"]) == ["Idempotency-Key"]


def test_concurrent_requests_with_one_key_write_once(api):
    before = api.log_length()
    key = _key()
    body = visit(["c-a1"])
    threads = [eventlet.spawn(api.post, "/visits", "cadre_a1", body, headers=key)
               for _ in range(8)]
    replies = [t.wait() for t in threads]
    assert {r.status_code for r in replies} <= {201, 409}, [r.text for r in replies]
    answers = [r.json() for r in replies if r.status_code == 201]
    assert answers and all(a == answers[0] for a in answers)
    for busy in (r for r in replies if r.status_code == 409):
        assert "in progress" in busy.json()["errors"]["Idempotency-Key"][0]
    assert api.log_length() == before + 1
    reused = api.post("/visits", "cadre_a1", visit(["c-a1"], diary={"notes": "x"}), headers=key)
    assert reused.status_code == 422


def test_after_the_window_a_key_is_new_again(api, tmp_path):
    key = _key()
    first = api.post("/visits", "cadre_a1", visit(["c-a1"]), headers=key)
    assert first.status_code == 201, first.text
    engine = sa.create_engine(f"sqlite:///{tmp_path}/gateway.db")
    with engine.begin() as conn:
        (window,) = conn.execute(sa.text(
            "SELECT expires_at - created_at FROM idempotency_keys")).one()
        assert window == 86400  # the documented default
        conn.execute(sa.text("UPDATE idempotency_keys SET expires_at = created_at - 1"))
    engine.dispose()
    before = api.log_length()
    again = api.post("/visits", "cadre_a1", visit(["c-a1"]), headers=key)
    assert again.status_code == 201 and again.json()["id"] != first.json()["id"]
    assert api.log_length() == before + 1
