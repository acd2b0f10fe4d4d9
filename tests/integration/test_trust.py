"""Trust at the write, for real: the visits service decides what a principal may do (and
refuses callers the gateway did not sign for), consent before credit, a head's rights on the
visit's date, residents' data only to those who need it, and tokens that end with the roster."""

import datetime as dt
import time

import pytest

from shared.kernel.errors import Denied, Unavailable
from shared.runtime.auth import Principal
from shared.runtime.rpc import cluster
from shared.runtime.trust import Signer, generate_key
from tests.integration.test_gateway import MONTH, PRINCIPAL_KEY, YESTERDAY, _report, visit

RESIDENT = {"name": "Wang Fang", "phone": "13800000000", "address": "3 East Lane"}


def days_of(api, cadre_id, expected, who="supervisor"):
    """The cadre's grassroots days once the view shows `expected` (it is fed from the bus)."""
    deadline = time.monotonic() + 20
    while True:
        rows = _report(api, who).json()["cadres"]
        days = next((r["days"] for r in rows if r["cadre_id"] == cadre_id), None)
        if days == expected or time.monotonic() > deadline:
            return days
        time.sleep(0.2)


def test_the_service_refuses_calls_the_gateway_did_not_sign(api, amqp_uri):
    """Even a caller the broker lets publish `visits.record_visit` (here the tests' admin
    account) needs a principal the gateway signed for exactly that call."""
    before = api.log_length()
    body = visit(["c-a1"], id="v-forged")
    operator = Principal("operator", token_id="forged")
    attempts = {
        "no principal": "operator:forged",
        "another key": Signer(generate_key()).sign(operator, "record_visit", [body, None]),
        "another call": Signer(PRINCIPAL_KEY).sign(
            operator, "record_visit", [visit(["c-a2"], id="v-forged"), None]),
    }
    expired = Signer(PRINCIPAL_KEY).sign(operator, "record_visit", [body, None],
                                         now=time.time() - 3600)
    with cluster(amqp_uri, timeout=10) as rpc:
        for why, principal in attempts.items():
            with pytest.raises(Denied):
                rpc.visits.record_visit(principal, body, None)
                pytest.fail(f"accepted a call with {why}")
        with pytest.raises(Unavailable, match="expired"):  # refused as well, as a 503
            rpc.visits.record_visit(expired, body, None)
        signed = Signer(PRINCIPAL_KEY).sign(operator, "record_visit", [body, None])
        assert rpc.visits.record_visit(signed, body, None)["id"] == "v-forged"
    assert api.log_length() == before + 1


def test_credit_only_with_consent(api):
    recorded = api.post("/visits", "cadre_a1", visit(["c-a1", "c-b1"], id="v-con"))
    assert recorded.status_code == 201 and recorded.json()["pending_cadre_ids"] == ["c-b1"]
    assert days_of(api, "c-a1", 1) == 1
    assert days_of(api, "c-b1", 0) == 0
    assert api.get("/visits/v-con", "cadre_b1").json()["pending_cadre_ids"] == ["c-b1"]
    denied = api.post("/visits/v-con/confirmation", "cadre_a1", {"cadre_id": "c-b1"})
    assert denied.status_code == 403
    assert api.post("/visits/v-con/confirmation", "cadre_b1", {}).status_code == 200
    assert days_of(api, "c-b1", 1) == 1
    # a participant may take only themselves off; the recorder keeps their access
    grab = api.post("/visits/v-con/corrections", "cadre_b1",
                    {"cadre_ids": ["c-b1"], "reason": "mine"})
    assert grab.status_code == 403, grab.text
    assert api.post("/visits/v-con/retraction", "cadre_b1", {"reason": "x"}).status_code == 403
    left = api.post("/visits/v-con/withdrawal", "cadre_b1", {"reason": "left early"})
    assert left.status_code == 200, left.text
    assert days_of(api, "c-b1", 0) == 0
    assert api.get("/visits/v-con", "cadre_a1").json()["cadre_ids"] == ["c-a1"]


def test_a_heads_rights_follow_the_unit_on_the_visits_date(api):
    early = YESTERDAY - dt.timedelta(days=3)
    assert api.post("/visits", "operator", visit(["c-a2"], day=early, id="v-old")).status_code \
        == 201
    moved = api.post("/cadres/c-a2/transfer", "operator",
                     {"to_unit_id": "u-b", "effective_from": YESTERDAY.isoformat()})
    assert moved.status_code == 200, moved.text
    note = {"diary": {"notes": "checked by the head"}, "reason": "review"}
    assert api.post("/visits/v-old/corrections", "head_b", note).status_code == 403
    assert api.get("/visits/v-old", "head_b").status_code == 403
    assert api.post("/visits/v-old/corrections", "head_a", note).status_code == 200


def test_residents_data_only_to_those_who_need_it(api):
    body = visit(["c-a1"], id="v-res", target={"kind": "household", "resident": RESIDENT})
    created = api.post("/visits", "cadre_a1", body).json()
    resident_id = created["resident_id"]
    assert resident_id.startswith("res-")
    for who in ("cadre_a1", "head_a"):
        shown = api.get("/visits/v-res", who).json()
        assert shown["target"]["resident"]["phone"] == RESIDENT["phone"], who
        assert shown["personal_data"] == "shown"
    for who in ("supervisor", "auditor", "operator"):
        withheld = api.get("/visits/v-res", who).json()
        assert withheld["personal_data"] == "withheld", who
        assert withheld["target"]["resident"] == {
            "id": resident_id, "name": None, "phone": None, "address": None}
    purpose = "follow-up of complaint 2024-118"
    stated = api.get("/visits/v-res", "supervisor", params={"purpose": purpose}).json()
    assert stated["target"]["resident"]["name"] == RESIDENT["name"]
    with cluster(api.amqp_uri, timeout=10) as rpc:
        disclosed = [e for e in rpc.visits.read_log(after=0, limit=2000)
                     if e["type"] == "visit.personal_data_disclosed"]
    assert [e["data"] for e in disclosed] == [
        {"visit_id": "v-res", "resident_id": resident_id, "purpose": purpose}]
    assert disclosed[0]["actor"].startswith("supervisor:")


def test_a_resident_id_is_issued_never_invented(api):
    first = api.post("/visits", "cadre_a1", visit(
        ["c-a1"], target={"kind": "household", "resident": RESIDENT})).json()
    again = dict(RESIDENT, id=first["resident_id"])
    later = api.post("/visits", "cadre_a1", visit(
        ["c-a1"], target={"kind": "household", "resident": again}))
    assert later.status_code == 201 and later.json()["resident_id"] == first["resident_id"]
    before = api.log_length()
    invented = api.post("/visits", "cadre_a1", visit(
        ["c-a1"], target={"kind": "household", "resident": dict(RESIDENT, id="13800000000")}))
    assert invented.status_code == 422, invented.text
    assert list(invented.json()["errors"]) == ["target.resident.id"]
    assert api.log_length() == before


def test_compliance_as_of_is_for_supervisors_and_auditors(api):
    instant = dt.datetime.now(dt.UTC).isoformat()
    for who, status in (("operator", 403), ("head_a", 403), ("cadre_a1", 403),
                        ("supervisor", 200), ("auditor", 200)):
        reply = _report(api, who, as_of=instant)
        assert reply.status_code == status, (who, reply.text)
    assert MONTH in _report(api, "auditor", as_of=instant).json()["month"]


def test_tokens_end_with_the_roster(api):
    assert api.get("/compliance", "cadre_b1", params={"month": MONTH}).status_code == 200
    gone = api.post("/cadres/c-b1/removal", "operator",
                    {"effective_from": YESTERDAY.isoformat(), "reason": "retired"})
    assert gone.status_code == 200, gone.text
    refused = api.get("/compliance", "cadre_b1", params={"month": MONTH})
    assert refused.status_code == 401 and "left the roster" in str(refused.json())
    assert api.get("/compliance", "head_a", params={"month": MONTH}).status_code == 200
    moved = api.post("/cadres/h-a/transfer", "operator",
                     {"to_unit_id": "u-b", "effective_from": YESTERDAY.isoformat()})
    assert moved.status_code == 200, moved.text
    assert api.get("/compliance", "head_a", params={"month": MONTH}).status_code == 401
