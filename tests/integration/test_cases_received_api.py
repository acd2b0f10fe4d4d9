"""A petition entered late through the gateway, on the real broker: it says when it was
received, GET shows it, its deadlines count from then and the cases service's clock (ticking
every second here) chases and escalates it; a receipt in the future, beyond the policy's
window or not an instant is refused naming `received_at`, and nothing is appended."""

from __future__ import annotations

import datetime as dt

from shared.campaign.workdays import default_calendar
from shared.tools.demo_cases import working_days_before
from tests.integration.test_cases_api import TZ, act, cases_log, wait_for


def petition(received_at: object) -> dict[str, object]:
    return {"origin": "petition", "category": "help", "description": "a letter about the lane",
            "place": {"township": "Xinqiao"}, "received_at": received_at}


def test_a_late_petition_is_chased_from_its_receipt(api) -> None:
    today = dt.datetime.now(TZ).date()
    received = dt.datetime.combine(working_days_before(today, 20, default_calendar()),
                                   dt.time(10), TZ)
    registered = api.post("/cases", "operator", petition(received.isoformat()))
    assert registered.status_code == 201, registered.text
    case_id = registered.json()["id"]
    assert dt.datetime.fromisoformat(api.get(f"/cases/{case_id}", "operator")
                                     .json()["received_at"]) == received
    act(api, case_id, "assign", "supervisor", {"unit_id": "u-a"})
    # help: 1 working day to accept, 3 to resolve, from receipt: both long past today
    chased = wait_for(lambda: (c := api.get(f"/cases/{case_id}", "operator").json())
                      ["escalated"] and c, "the clock to chase the case")
    assert chased["overdue"]
    assert dt.datetime.fromisoformat(chased["resolve_by"]) < dt.datetime.now(TZ)


def test_a_bad_receipt_is_refused_naming_the_field_and_nothing_is_appended(api) -> None:
    now = dt.datetime.now(TZ)
    too_old = working_days_before(now.date(), 31, default_calendar())
    before = len(cases_log(api))
    for bad in ((now + dt.timedelta(hours=1)).isoformat(),
                dt.datetime.combine(too_old, dt.time(10), TZ).isoformat(), "last tuesday"):
        refused = api.post("/cases", "hotline", petition(bad))
        assert refused.status_code == 400, refused.text
        assert list(refused.json()["errors"]) == ["received_at"]
    assert len(cases_log(api)) == before
    spec = api.get("/openapi.json").json()["components"]["schemas"]
    assert "received_at" in spec["RegisterCase"]["properties"]
    assert "received_at" in spec["Case"]["properties"]
