"""End to end: the platform started the way `make up` starts it (one `nameko run` process per
service, a real broker), driven through the HTTP API only."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from kombu import Connection, Producer

from shared.campaign.policy import load_policy
from shared.runtime import wire
from shared.runtime.auth import TokenStore
from shared.runtime.catalogue import names as service_names
from shared.runtime.relay import event_exchange
from shared.runtime.rpc import cluster
from shared.tools.broker import free_port
from shared.tools.demo import run_demo
from shared.tools.operations import rebuild
from shared.tools.platform import Platform
from tests.support.platforms import until

MONTH = "2026-10"
POLICY = load_policy()


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base, self.session = base, requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return self.session.post(self.base + path, json=body, timeout=30)

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(self.base + path, params=params, timeout=30)

    def compliance(self) -> dict[str, Any]:
        reply = self.get("/compliance", month=MONTH)
        assert reply.status_code == 200, reply.text
        return reply.json()


@pytest.fixture(scope="module")
def platform(broker_uris: dict[str, str],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    var: Path = tmp_path_factory.mktemp("var")
    address = f"127.0.0.1:{free_port()}"
    env = {
        "VISITS_DATABASE_URL": f"sqlite:///{var}/visits.db",
        "COMPLIANCE_DATABASE_URL": f"sqlite:///{var}/compliance.db",
        "GRASSROOTS_TOKENS": str(var / "tokens.json"),
        "GRASSROOTS_SIGNING_KEY": "hmac:c2VjcmV0LWZvci10aGUtZTJlLXRlc3Qtb25seQ==",
        "RELAY_POLL_SECONDS": "0.2",
        "CASE_TIMER_SECONDS": "1",  # the cases clock chases the demo's late petitions soon
    }
    p = Platform(out=io.StringIO(), var=var, env=env)
    # Each service logs in as its own broker user, the operator's tools as the operator.
    p.amqp_uri, p.service_uris, p.api = broker_uris["operator"], broker_uris, address
    for name in service_names():
        p.start_service(name)
    try:
        p.wait_ready(90)
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def api(platform: Platform) -> Api:
    token = TokenStore(Path(platform.extra_env["GRASSROOTS_TOKENS"])).create("operator")
    return Api(f"http://{platform.api}/api/v1", token)


def visit(visit_id: str, cadre: str, day: str) -> dict[str, Any]:
    return {"id": visit_id, "cadre_ids": [cadre], "date": day,
            "place": {"township": "Qiaotou", "village": "Dongshan"},
            "target": {"kind": "household",
                       "resident": {"name": "Wang Fang", "phone": "13900000000"}},
            "diary": {"thinks": "the bridge needs repair"}, "delivered": ["policy"]}


def cadre_row(report: dict[str, Any], cadre_id: str) -> dict[str, Any]:
    return next(c for c in report["cadres"] if c["cadre_id"] == cadre_id)


def test_visit_flows_from_api_to_compliance_view(api: Api) -> None:
    assert api.post("/units", {"id": "qiaotou", "name": "Qiaotou Township",
                               "kind": "township", "unit_day": 15}).status_code == 201
    for cadre in ("c-1", "c-2"):
        reply = api.post("/cadres", {"id": cadre, "name": "Li Wei", "unit_id": "qiaotou",
                                     "role": "staff", "effective_from": "2026-09-01"})
        assert reply.status_code == 201, reply.text
    recorded = api.post("/visits", visit("v-1", "c-1", "2026-10-15"))
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["backfilled"] is True  # October, recorded later than policy allows
    assert api.post("/visits", visit("v-2", "c-1", "2026-10-28")).status_code == 201

    row = until(lambda: (r := cadre_row(api.compliance(), "c-1"))["days"] == 2 and r)
    assert row == {"cadre_id": "c-1", "unit_id": "qiaotou", "days": 2,
                   "dates": ["2026-10-15", "2026-10-28"], "fixed_day_met": True,
                   "unit_day_met": True, "exempt": False, "compliant": True,
                   "backfilled_days": 2}

    bad = api.post("/visits", visit("v-bad", "nobody", "2026-10-03"))
    assert bad.status_code == 422 and "cadre_ids" in bad.json()["errors"]
    assert api.get("/visits/v-bad").status_code == 404


def test_compliance_catches_up_after_a_restart(platform: Platform, api: Api,
                                               amqp_uri: str) -> None:
    admin = amqp_uri  # the test harness's login: the operator may not purge a service's queue
    before = until(lambda: (r := api.compliance())["checkpoints"]["visits"] >= 5 and r)
    platform.stop_service("compliance")
    assert api.post("/visits", visit("v-3", "c-2", "2026-10-28")).status_code == 201
    assert api.post("/visits", visit("v-4", "c-2", "2026-10-09")).status_code == 201
    retraction = api.post("/visits/v-4/retraction", {"reason": "recorded twice"})
    assert retraction.status_code in (200, 201), retraction.text
    # Lose what the bus held for the stopped view: only its catch-up from the log can help.
    with Connection(admin) as conn:
        until(lambda: _queue_depth(conn) >= 3)
        conn.SimpleQueue(QUEUE).queue.purge()

    platform.start_service("compliance")
    after = until(lambda: (r := api.compliance())["checkpoints"]["visits"]
                  > before["checkpoints"]["visits"] + 2 and r, timeout=60)
    row = cadre_row(after, "c-2")
    assert row["dates"] == ["2026-10-28"] and row["days"] == 1 and row["compliant"] is False


QUEUE = "evt-visits-#--compliance.on_visits_event"


def _queue_depth(conn: Connection) -> int:
    _name, depth, _consumers = conn.default_channel.queue_declare(QUEUE, passive=True)
    return depth


def test_a_redelivered_event_changes_nothing(platform: Platform, api: Api, amqp_uri: str) -> None:
    admin = amqp_uri  # only visits may publish its events: the harness stands in for it
    before = until(lambda: (r := api.compliance())["checkpoints"]["visits"] >= 8 and r)
    with cluster(admin) as rpc:
        events = rpc.visits.read_log(after=0, limit=100)
    recorded = next(e for e in events if e["type"] == "visit.recorded")
    with Connection(admin) as conn:
        producer = Producer(conn.default_channel, exchange=event_exchange("visits"))
        producer.publish(wire.encode(recorded), routing_key=recorded["type"],
                         content_type=wire.CONTENT_TYPE, content_encoding="utf-8",
                         delivery_mode=2)
        until(lambda: _queue_depth(conn) == 0)
    time.sleep(0.5)
    assert api.compliance() == before


def test_rebuild_gives_the_same_view(platform: Platform, api: Api) -> None:
    before = until(lambda: (r := api.compliance())["checkpoints"]["visits"] >= 8 and r)
    assert rebuild("compliance", amqp=platform.amqp_uri) == 0
    assert api.compliance() == before


def test_demo_loads_a_district_month(platform: Platform, api: Api,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    token = TokenStore(Path(platform.extra_env["GRASSROOTS_TOKENS"])).create("operator")
    assert run_demo(api=platform.api, month="2026-09", token=token,
                    tokens_file=platform.extra_env["GRASSROOTS_TOKENS"]) == 0
    out = capsys.readouterr().out
    assert "Compliance, 2026-09" in out and "petitions" in out
    assert "Case board, " in out
    api = Api(f"http://{platform.api}/api/v1", token)
    board = api.get("/case-board", month=f"{datetime.now(POLICY.tz):%Y-%m}").json()
    assert sum(u["overdue"] for u in board["units"]) > 0  # late petitions, chased by the clock
    cases = api.get("/cases", page_size=500).json()["cases"]
    assert any(c["escalated"] for c in cases)
    # a petition received weeks ago and assigned today was due to be accepted before today
    assigned = [c for c in cases if c["origin"] == "petition" and c["accept_by"]]
    assert assigned and all(datetime.fromisoformat(c["accept_by"]) < datetime.now(POLICY.tz)
                            for c in assigned)
    # cases the demo's visits brought are received on the visit's date, in September
    assert {c["received_at"][:7] for c in cases if c["origin"] == "visit"} == {"2026-09"}
    report = api.get("/compliance", month="2026-09")
    units = {u["unit_id"]: u for u in report.json()["units"]}
    assert len(units) == 12 and sum(u["cadres"] for u in units.values()) >= 140
    assert sum(u["exempt"] for u in units.values()) > 0
    assert 0 < sum(u["compliant"] for u in units.values()) < sum(
        u["cadres"] - u["exempt"] for u in units.values())


def test_compliance_as_of_an_instant(api: Api, platform: Platform) -> None:
    """The view as it stood just before, and at, the moment the second visit was recorded
    (asked by an auditor: as-of reports are for supervisors and auditors)."""
    recorded = datetime.fromisoformat(api.get("/visits/v-2").json()["recorded_at"])
    assert api.get("/compliance", month=MONTH, as_of=recorded.isoformat()).status_code == 403
    auditor = TokenStore(Path(platform.extra_env["GRASSROOTS_TOKENS"])).create("auditor")
    api = Api(api.base, auditor)
    before = api.get("/compliance", month=MONTH,
                     as_of=(recorded - timedelta(microseconds=1)).isoformat())
    at = api.get("/compliance", month=MONTH, as_of=recorded.isoformat())
    assert before.status_code == at.status_code == 200, before.text
    assert cadre_row(before.json(), "c-1")["dates"] == ["2026-10-15"]
    assert cadre_row(at.json(), "c-1")["dates"] == ["2026-10-15", "2026-10-28"]
    assert at.json()["as_of"] is not None
    bad = api.get("/compliance", month=MONTH, as_of="yesterday")
    assert bad.status_code == 400 and "as_of" in bad.json()["errors"]
