"""Residents and cases on the real broker: a hotline case may name only a resident the
platform issued, and forgetting the resident in the visits service erases their details from
the cases log too (the cases service takes up the visits log's `subject.forgotten`)."""

from __future__ import annotations

from shared.eventlog import EventLog
from shared.runtime.auth import Principal
from shared.runtime.rpc import cluster
from shared.runtime.trust import Signer
from tests.integration.test_cases_api import cases_log, wait_for
from tests.integration.test_gateway import PRINCIPAL_KEY, visit

WANG = {"name": "Wang Fang", "phone": "13800000000", "address": "3 East Lane"}


def hotline_case(resident_id: str) -> dict[str, object]:
    return {"origin": "hotline", "category": "help", "description": "the lane floods",
            "place": {"township": "Xinqiao"}, "resident": {"id": resident_id, **WANG}}


def forget(api, resident_id: str) -> dict[str, object]:
    """The visits service's erasure, called as the gateway's operator would be signed."""
    operator = Principal("operator", token_id="dpo")
    signed = Signer(PRINCIPAL_KEY).sign(operator, "forget_resident", [resident_id])
    with cluster(api.amqp_uri, timeout=10) as rpc:
        return rpc.visits.forget_resident(signed, resident_id)


def test_a_made_up_resident_id_is_refused_and_nothing_is_appended(api) -> None:
    before = len(cases_log(api))
    refused = api.post("/cases", "hotline", hotline_case("13800000000"))
    assert refused.status_code == 422, refused.text
    assert list(refused.json()["errors"]) == ["resident.id"]
    assert "13800000000" in refused.json()["errors"]["resident.id"][0]
    assert len(cases_log(api)) == before


def test_forgetting_a_resident_in_visits_erases_them_from_their_cases(api, tmp_path) -> None:
    recorded = api.post("/visits", "cadre_a1", visit(
        ["c-a1"], target={"kind": "household", "resident": WANG}))
    assert recorded.status_code == 201, recorded.text
    resident_id = recorded.json()["resident_id"]
    registered = api.post("/cases", "hotline", hotline_case(resident_id))
    assert registered.status_code == 201, registered.text
    case_id = registered.json()["id"]
    shown = api.get(f"/cases/{case_id}", "hotline").json()
    assert (shown["resident"]["id"], shown["resident"]["phone"]) == (resident_id, WANG["phone"])

    assert forget(api, resident_id)["erased"] is True

    def erased():
        case = api.get(f"/cases/{case_id}", "hotline").json()
        return case if case["personal_data"] == "erased" else None

    case = wait_for(erased, "the cases service to forget the resident")
    assert case["resident"] == {"id": resident_id, "name": None, "phone": None,
                                "address": None, "email": None}
    markers = [e for e in cases_log(api) if e["type"] == "subject.forgotten"]
    assert [m["data"]["subject"] for m in markers] == [resident_id]
    cases = EventLog.open(f"sqlite:///{tmp_path}/cases.db", service="cases")
    try:
        assert cases.verify().ok
    finally:
        cases.close()

    again = api.post("/cases", "hotline", hotline_case(resident_id))
    assert again.status_code == 422, again.text
    assert list(again.json()["errors"]) == ["resident.id"]
