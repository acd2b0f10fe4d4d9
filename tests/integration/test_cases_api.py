"""Cases through the gateway on the real broker: a difficulty found on a visit becomes a case
(the cases service follows the visits log), which is assigned, accepted, resolved, judged,
reopened and closed over HTTP; the case board folds it; Open311 shows it without personal
data and takes a hotline report."""

from __future__ import annotations

import datetime as dt
import time
import xml.etree.ElementTree as ET
from zoneinfo import ZoneInfo

import requests
from nameko.standalone.events import event_dispatcher

from shared.runtime.rpc import cluster
from tests.integration.test_gateway import visit

TZ = ZoneInfo("Asia/Shanghai")
PHONE = "13800138000"
EMAIL = "mei.wang@example.org"


def wait_for(fetch, what, seconds=15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = fetch()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def cases_of(api, visit_id):
    reply = api.get("/cases", "operator", params={"page_size": 500})
    assert reply.status_code == 200, reply.text
    return [c for c in reply.json()["cases"] if c["visit_id"] == visit_id]


def cases_log(api):
    with cluster(api.amqp_uri, timeout=10) as rpc:
        return rpc.cases.read_log(after=0, limit=2000)


def act(api, case_id, action, who, body=None, status=200):
    reply = api.post(f"/cases/{case_id}/{action}", who, body or {})
    assert reply.status_code == status, (action, reply.text)
    return reply.json()


def open311(api, path, **kwargs):
    return requests.request(kwargs.pop("method", "GET"), f"{api.base}/open311/v2/{path}",
                            timeout=15, **kwargs)


def test_a_difficulty_found_on_a_visit_goes_from_intake_to_a_closed_case(api):
    recorded = api.post("/visits", "cadre_a1", visit(["c-a1"], difficulties=[
        {"category": "help", "description": "the lane floods after rain"}]))
    assert recorded.status_code == 201, recorded.text
    visit_id = recorded.json()["id"]
    (case,) = wait_for(lambda: cases_of(api, visit_id), "the intake to open the case")
    case_id = case["id"]
    assert (case["state"], case["origin"], case["category"]) == ("registered", "visit", "help")
    assert "assign_case" in case["allowed"] and "resolve_case" not in case["allowed"]

    act(api, case_id, "assign", "supervisor", {"unit_id": "u-a"})
    shown = api.get(f"/cases/{case_id}", "head_a").json()
    assert shown["state"] == "assigned" and shown["accept_by"] is not None
    assert dt.datetime.fromisoformat(shown["accept_by"]).utcoffset() == dt.timedelta(hours=8)
    assert "accept_case" in shown["allowed"] and "close_case" not in shown["allowed"]
    act(api, case_id, "accept", "head_a")
    assert api.get(f"/cases/{case_id}", "head_a").json()["resolve_by"] is not None
    act(api, case_id, "resolve", "head_a", {"outcome": "solved", "result": "drain cleared"})

    # The resolver may not judge their own work; a callback role may.
    denied = act(api, case_id, "callback", "head_a",
                 {"satisfaction": "satisfied", "comment": "fine"}, status=403)
    assert denied["errors"]
    act(api, case_id, "callback", "callback",
        {"satisfaction": "unsatisfied", "comment": "it floods again"})
    act(api, case_id, "reopen", "supervisor", {"reason": "the resident is not satisfied"})
    assert api.get(f"/cases/{case_id}", "operator").json()["state"] == "accepted"
    act(api, case_id, "resolve", "head_a", {"outcome": "solved", "result": "pipe replaced"})
    act(api, case_id, "callback", "callback",
        {"satisfaction": "satisfied", "comment": "dry now"})
    act(api, case_id, "close", "supervisor")

    # An illegal command: 409 naming the state and what is allowed, and nothing appended.
    before = len(cases_log(api))
    refused = act(api, case_id, "accept", "head_a", status=409)
    reasons = " ".join(r for rs in refused["errors"].values() for r in rs)
    assert "closed" in reasons
    assert len(cases_log(api)) == before

    closed = api.get(f"/cases/{case_id}", "operator").json()
    assert closed["state"] == "closed" and closed["outcome"] == "solved"
    assert closed["visit_id"] == visit_id
    timeline = api.get(f"/cases/{case_id}/timeline", "auditor").json()["events"]
    assert [e["type"] for e in timeline] == [
        "case.registered", "case.assigned", "case.accepted", "case.resolved",
        "case.callback_recorded", "case.reopened", "case.resolved",
        "case.callback_recorded", "case.closed"]
    assert timeline[2]["actor"].startswith("head:") and timeline[4]["actor"].startswith(
        "callback:")

    # The case board for the month it was registered in.
    month = dt.datetime.now(TZ).strftime("%Y-%m")

    def board_row():
        reply = api.get("/case-board", "supervisor", params={"month": month, "unit_id": "u-a"})
        assert reply.status_code == 200, reply.text
        rows = [u for u in reply.json()["units"] if u["unit_id"] == "u-a" and u["closed"]]
        return rows[0] if rows else None

    row = wait_for(board_row, "the case board to fold the case")
    assert (row["received"], row["resolved"], row["closed"], row["reopened"]) == (1, 1, 1, 1)
    assert row["callbacks"] == {"total": 2, "satisfied": 1, "basically_satisfied": 0,
                                "unsatisfied": 1}
    assert row["origins"]["visit"] == 1 and row["satisfaction_rate"] == 0.5
    other_unit = api.get("/case-board", "head_b", params={"month": month, "unit_id": "u-a"})
    assert other_unit.status_code == 403, other_unit.text

    # The same visit event delivered again opens nothing new.
    with cluster(api.amqp_uri, timeout=10) as rpc:
        event = next(e for e in rpc.visits.read_log(after=0, limit=2000)
                     if e["type"] == "visit.recorded" and e["data"]["visit_id"] == visit_id)
    length = len(cases_log(api))
    event_dispatcher({"AMQP_URI": api.amqp_uri})("visits", "visit.recorded", event)
    time.sleep(2.5)  # the handler and two clock ticks (CASE_TIMER_SECONDS=1) have run
    assert len(cases_of(api, visit_id)) == 1 and len(cases_log(api)) == length


def test_open311_shows_cases_without_personal_data_and_takes_a_hotline_report(api):
    services = open311(api, "services.json")
    assert services.status_code == 200, services.text
    assert services.headers["Content-Type"].startswith("application/json")
    codes = {s["service_code"]: s for s in services.json()}
    assert {"urgent", "help", "complaint"} <= set(codes)
    assert set(codes["help"]) >= {"service_code", "service_name", "description", "group",
                                  "metadata", "type"}

    refused = open311(api, "requests.json", method="POST",
                      data={"service_code": "help", "address_string": "No. 3 bridge"})
    assert refused.status_code == 401 and refused.json()[0]["code"] == 401
    auditor = open311(api, "requests.json", method="POST",
                      data={"service_code": "help", "address_string": "No. 3 bridge",
                            "api_key": api.tokens["auditor"]})
    assert auditor.status_code == 403, auditor.text
    posted = open311(api, "requests.json", method="POST",
                     headers={"Authorization": f"Bearer {api.tokens['hotline']}"},
                     data={"service_code": "help", "address_string": "No. 3 bridge, Dongcun",
                           "description": "street light out", "first_name": "Mei",
                           "last_name": "Wang", "phone": PHONE, "email": EMAIL})
    assert posted.status_code == 201, posted.text
    (answer,) = posted.json()
    case_id = answer["service_request_id"]
    registered = api.get(f"/cases/{case_id}", "operator").json()
    assert (registered["origin"], registered["state"]) == ("hotline", "registered")
    assert (registered["resident"]["email"], registered["personal_data"]) == (EMAIL, "shown")
    withheld = api.get(f"/cases/{case_id}", "auditor").json()
    assert (withheld["resident"]["email"], withheld["personal_data"]) == (None, "withheld")

    listed = open311(api, "requests.json")
    assert listed.status_code == 200, listed.text
    (request,) = [r for r in listed.json() if r["service_request_id"] == case_id]
    assert request["status"] == "open" and request["service_code"] == "help"
    assert request["description"] == "street light out"
    assert request["address"] == "No. 3 bridge, Dongcun, the district"
    assert dt.datetime.fromisoformat(request["requested_datetime"]).utcoffset() == (
        dt.timedelta(hours=8))
    one = open311(api, f"requests/{case_id}.xml")
    assert one.status_code == 200 and one.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(one.content)
    assert root.tag == "service_requests"
    assert root.find("request/service_request_id").text == case_id
    for body in (listed.text, one.text):
        assert PHONE not in body and EMAIL not in body and "Mei" not in body
        assert "Wang" not in body

    missing = open311(api, "requests/nobody.json")
    assert missing.status_code == 404 and missing.json()[0]["code"] == 404
    wrong_format = open311(api, "services.html")
    assert wrong_format.status_code == 404
    bad = open311(api, "requests.xml", params={"status": "maybe"})
    assert bad.status_code == 400 and ET.fromstring(bad.content).tag == "errors"

