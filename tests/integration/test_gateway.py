"""The gateway for real: HTTP through nameko @http to the real visits and compliance services
over the real broker, each with its own SQLite database."""

import contextlib
import datetime as dt
import time
import uuid
from zoneinfo import ZoneInfo

import amqp.exceptions
import kombu
import pytest
import requests

from services.caseboard.service import CaseBoardService
from services.cases.service import CasesService
from services.compliance.service import ComplianceService
from services.gateway.service import GatewayService
from services.visits.service import VisitsService
from shared.runtime.auth import TokenStore
from shared.runtime.config import load_config
from shared.runtime.rpc import cluster
from shared.runtime.trust import generate_key
from shared.tools.broker import free_port

# Durable event-handler queue left by earlier tests: events of their logs must not leak in.
COMPLIANCE_QUEUE = "evt-visits-#--compliance.on_visits_event"
EVENT_QUEUES = (COMPLIANCE_QUEUE, "evt-cases-#--caseboard.on_cases_event",
                *(f"evt-visits-visit.{kind}--cases.on_visit_{kind}"
                  for kind in ("recorded", "corrected", "retracted")),
                "evt-visits-subject.forgotten--cases.on_subject_forgotten")
PRINCIPAL_KEY = generate_key()  # the gateway signs principals with it, visits checks them
YESTERDAY = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date() - dt.timedelta(days=1)
MONTH = YESTERDAY.strftime("%Y-%m")


def _purge(amqp_uri, queue):
    with kombu.Connection(amqp_uri) as conn, contextlib.suppress(amqp.exceptions.NotFound):
        conn.channel().queue_purge(queue)  # NotFound: not declared yet, nothing to purge


class Api:
    """requests against the gateway, with one token per role."""

    def __init__(self, base, tokens, amqp_uri, containers):
        self.base, self.tokens, self.amqp_uri = base, tokens, amqp_uri
        self.containers = containers

    def call(self, method, path, who=None, json=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        url = self.base + path if path.startswith("/healthz") else f"{self.base}/api/v1{path}"
        reply = requests.request(method, url, json=json, headers=headers, timeout=15, **kwargs)
        assert reply.headers["Content-Type"] == "application/json", reply.text
        return reply

    def get(self, path, who=None, **kwargs):
        return self.call("GET", path, who, **kwargs)

    def post(self, path, who=None, json=None, **kwargs):
        return self.call("POST", path, who, json, **kwargs)

    def log_length(self):
        with cluster(self.amqp_uri, timeout=10) as rpc:
            return len(rpc.visits.read_log(after=0, limit=2000))


def visit(cadre_ids, day=YESTERDAY, **extra):
    return {"cadre_ids": cadre_ids, "date": day.isoformat(), "place": {"township": "Xinqiao"},
            "target": {"kind": "household"}, **extra}


@pytest.fixture
def api(container_factory, amqp_uri, broker_uris, tmp_path):
    for queue in EVENT_QUEUES:
        _purge(amqp_uri, queue)

    def config(service, **overrides):
        cfg = load_config(service)
        cfg.update(AMQP_URI=broker_uris[service], PRINCIPAL_KEY=PRINCIPAL_KEY,  # as itself
                   **overrides)
        return cfg

    port = free_port()
    tokens_file = tmp_path / "tokens.json"
    containers = {
        "visits": container_factory(VisitsService, config(
            "visits", DATABASE_URL=f"sqlite:///{tmp_path}/visits.db", KEYS_DATABASE_URL="",
            RELAY_POLL_SECONDS=0.2)),
        "cases": container_factory(CasesService, config(
            "cases", DATABASE_URL=f"sqlite:///{tmp_path}/cases.db", KEYS_DATABASE_URL="",
            RELAY_POLL_SECONDS=0.2, CASE_TIMER_SECONDS=1)),
        "compliance": container_factory(ComplianceService, config(
            "compliance", DATABASE_URL=f"sqlite:///{tmp_path}/compliance.db")),
        "caseboard": container_factory(CaseBoardService, config(
            "caseboard", DATABASE_URL=f"sqlite:///{tmp_path}/caseboard.db")),
        "gateway": container_factory(GatewayService, config(
            "gateway", WEB_SERVER_ADDRESS=f"127.0.0.1:{port}", TOKENS_FILE=str(tokens_file),
            RPC_TIMEOUT=3, HEALTH_TIMEOUT=1,
            IDEMPOTENCY_DATABASE_URL=f"sqlite:///{tmp_path}/gateway.db")),
    }
    for container in containers.values():
        container.start()
    store = TokenStore(tokens_file)
    tokens = {
        "operator": store.create("operator"),
        "supervisor": store.create("supervisor"),
        "auditor": store.create("auditor"),
        "cadre_a1": store.create("cadre", cadre_id="c-a1"),
        "cadre_b1": store.create("cadre", cadre_id="c-b1"),
        "head_a": store.create("head", cadre_id="h-a", unit_id="u-a"),
        "head_b": store.create("head", cadre_id="h-b", unit_id="u-b"),
        "hotline": store.create("hotline"),
        "callback": store.create("callback"),
    }
    client = Api(f"http://127.0.0.1:{port}", tokens, amqp_uri, containers)
    for unit_id in ("u-a", "u-b"):
        reply = client.post("/units", "operator",
                            {"id": unit_id, "name": f"Unit {unit_id}", "kind": "township"})
        assert reply.status_code == 201, reply.text
    for cadre_id, unit_id, role in (("c-a1", "u-a", "staff"), ("c-a2", "u-a", "staff"),
                                    ("c-b1", "u-b", "staff"), ("h-a", "u-a", "head"),
                                    ("h-b", "u-b", "head")):
        reply = client.post("/cadres", "operator", {
            "id": cadre_id, "name": f"Cadre {cadre_id}", "unit_id": unit_id, "role": role,
            "effective_from": "2020-01-01"})
        assert reply.status_code == 201, reply.text
    return client


def test_401_and_403_have_json_bodies(api):
    for headers in ({}, {"Authorization": "Bearer gr_unknown"}, {"Authorization": "Basic x"}):
        reply = api.post("/visits", json=visit(["c-a1"]), headers=headers)
        assert reply.status_code == 401
        assert list(reply.json()["errors"]) == ["authorization"]
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    reply = api.post("/units", "cadre_a1", {"id": "u-c", "name": "C", "kind": "township"})
    assert reply.status_code == 403
    assert "operator" in reply.json()["errors"]["authorization"][0]
    for who in ("supervisor", "auditor"):
        assert api.post("/visits", who, visit(["c-a1"])).status_code == 403
    assert api.post("/visits", "cadre_a1", visit(["c-a2"])).status_code == 403  # not theirs
    assert api.post("/visits", "head_b", visit(["c-a1"])).status_code == 403  # not their unit
    assert api.post("/cadres/c-a1/leave", "head_a", {}).status_code == 403  # role before body


def test_400_names_the_field_and_appends_nothing(api):
    before = api.log_length()
    bad = visit(["c-a1"], id="v-bad", date="yesterday", target={"kind": "alien"})
    del bad["place"]
    reply = api.post("/visits", "operator", bad)
    assert reply.status_code == 400
    errors = reply.json()["errors"]
    assert set(errors) == {"date", "place", "target.kind"}
    assert errors["place"] == ["Missing data for required field."]
    reply = api.post("/visits", "operator", visit(["c-a1"], hazards=[{"status": "gone"}]))
    assert set(reply.json()["errors"]) == {"hazards.0.description", "hazards.0.status"}
    for raw in ("not json", "[1, 2]", ""):
        reply = api.post("/visits", "operator", data=raw,
                         headers={"Content-Type": "application/json"})
        assert reply.status_code == 400 and list(reply.json()["errors"]) == ["body"]
    assert api.get("/visits/v-bad", "operator").status_code == 404
    assert api.log_length() == before


def test_422_names_the_unknown_cadre(api):
    before = api.log_length()
    for who in ("operator", "head_a"):
        reply = api.post("/visits", who, visit(["c-a1", "c-nobody"]))
        assert reply.status_code == 422, reply.text
        assert "c-nobody" in str(reply.json()["errors"]["cadre_ids"])
    reply = api.post("/cadres", "operator",
                     {"id": "c-x", "name": "X", "unit_id": "u-nowhere", "role": "staff"})
    assert reply.status_code == 422 and "u-nowhere" in str(reply.json()["errors"])
    assert api.log_length() == before


def test_record_visit_201_and_a_keyed_retry_is_idempotent(api):
    body = visit(["c-a1", "c-b1"])
    first = api.post("/visits", "cadre_a1", body)
    assert first.status_code == 201, first.text
    reply = first.json()
    assert set(reply) == {"id", "position", "backfilled", "resident_id", "pending_cadre_ids"}
    assert reply["backfilled"] is False and reply["pending_cadre_ids"] == ["c-b1"]
    again = api.post("/visits", "cadre_a1", body)  # no key: a second visit (test_idempotency)
    assert again.status_code == 201 and again.json()["id"] != reply["id"]
    assert api.get(f"/visits/{reply['id']}", "operator").json()["cadre_ids"] == ["c-a1", "c-b1"]
    keyed = {"Idempotency-Key": str(uuid.uuid4())}
    late = api.post("/visits", "head_a", visit(["c-a2"], YESTERDAY - dt.timedelta(days=10)),
                    headers=keyed)
    assert late.status_code == 201 and late.json()["backfilled"] is True
    retry = api.post("/visits", "head_a", visit(["c-a2"], YESTERDAY - dt.timedelta(days=10)),
                     headers=keyed)
    assert retry.json() == late.json()
    assert late.json()["position"] > reply["position"]


def test_corrections_retraction_and_409(api):
    created = api.post("/visits", "operator", visit(["c-a1"], id="v-1")).json()
    assert created["id"] == "v-1"
    reason = {"reason": "wrong township"}
    denied = api.post("/visits/v-1/corrections", "cadre_b1",
                      {"place": {"township": "Dongcheng"}, **reason})
    assert denied.status_code == 403
    corrected = api.post("/visits/v-1/corrections", "cadre_a1",
                         {"place": {"township": "Dongcheng"}, **reason})
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["position"] > created["position"]
    assert api.get("/visits/v-1", "cadre_a1").json()["place"] == {"township": "Dongcheng"}
    assert api.post("/visits/v-1/corrections", "cadre_a1", {}).status_code == 400
    retracted = api.post("/visits/v-1/retraction", "head_a", {"reason": "duplicate"})
    assert retracted.status_code == 200, retracted.text
    conflict = api.post("/visits/v-1/corrections", "operator",
                        {"place": {"township": "Beicheng"}, **reason})
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["errors"]
    assert api.get("/visits/v-1", "auditor").json()["retracted"] is True
    missing = api.post("/visits/v-none/retraction", "operator", {"reason": "x"})
    assert missing.status_code == 404 and missing.json()["errors"]


def test_get_visit_per_role(api):
    visit_id = api.post("/visits", "operator", visit(["c-a1"], id="v-read")).json()["id"]
    expected = {"operator": 200, "supervisor": 200, "auditor": 200, "cadre_a1": 200,
                "cadre_b1": 403, "head_a": 200, "head_b": 403}
    for who, status in expected.items():
        reply = api.get(f"/visits/{visit_id}", who)
        assert reply.status_code == status, who
    assert api.get(f"/visits/{visit_id}", "head_b").json()["errors"]["authorization"]
    assert api.get(f"/visits/{visit_id}").status_code == 401
    assert api.get("/visits/v-none", "operator").status_code == 404
    assert api.get("/cadres/c-a2", "head_a").json()["unit_id"] == "u-a"
    assert api.get("/cadres/c-a2", "head_b").status_code == 403
    assert api.get("/cadres/c-a2", "cadre_a1").status_code == 403
    assert api.get("/cadres/c-zz", "operator").status_code == 404


def test_roster_writes(api):
    reply = api.post("/cadres/c-a2/transfer", "operator",
                     {"to_unit_id": "u-b", "effective_from": YESTERDAY.isoformat()})
    assert reply.status_code == 200, reply.text
    assert set(reply.json()) == {"id", "position"} and reply.json()["id"] == "c-a2"
    assert api.get("/cadres/c-a2", "operator").json()["unit_id"] == "u-b"
    leave = {"from": "2021-01-01", "to": "2021-01-31", "reason": "study"}
    assert api.post("/cadres/c-a1/leave", "operator", leave).status_code == 200
    backwards = api.post("/cadres/c-a1/leave", "operator", {**leave, "to": "2020-12-01"})
    assert backwards.status_code == 400 and "to" in backwards.json()["errors"]
    day = api.post("/units/u-a/unit-day", "operator",
                   {"unit_day": 15, "effective_from": "2021-01-01"})
    assert day.status_code == 200, day.text
    gone = api.post("/cadres/c-b1/leaving", "operator",  # the deprecated path still works
                    {"effective_from": YESTERDAY.isoformat(), "reason": "retired"})
    assert gone.status_code == 200 and api.get("/cadres/c-b1", "operator").json()["left"]
    again = api.post("/cadres/c-b1/removal", "operator",  # the same command: removed already
                     {"effective_from": YESTERDAY.isoformat(), "reason": "retired"})
    assert again.status_code == 409, again.text


def _report(api, who, **params):
    return api.get("/compliance", who, params={"month": MONTH, **params})


def test_compliance_scoped_to_the_head_and_cadre_unit(api):
    assert api.post("/visits", "cadre_a1", visit(["c-a1"])).status_code == 201
    assert api.post("/visits", "cadre_b1", visit(["c-b1"])).status_code == 201
    deadline = time.monotonic() + 20
    while True:  # the view is fed from the bus: wait until both visits are folded
        report = _report(api, "supervisor").json()
        days = {row["cadre_id"]: row["days"] for row in report["cadres"]}
        if days.get("c-a1") == 1 and days.get("c-b1") == 1:
            break
        assert time.monotonic() < deadline, report
        time.sleep(0.2)
    assert {u["unit_id"] for u in report["units"]} == {"u-a", "u-b"}
    for who, params in (("head_a", {}), ("head_a", {"unit_id": "u-a"}), ("cadre_a1", {})):
        mine = _report(api, who, **params)
        assert mine.status_code == 200, mine.text
        assert {u["unit_id"] for u in mine.json()["units"]} == {"u-a"}
        assert {c["unit_id"] for c in mine.json()["cadres"]} == {"u-a"}
    for who in ("head_a", "cadre_a1"):
        other = _report(api, who, unit_id="u-b")
        assert other.status_code == 403 and other.json()["errors"]["authorization"]
    assert {u["unit_id"] for u in _report(api, "auditor", unit_id="u-b").json()["units"]} \
        == {"u-b"}
    bad = api.get("/compliance", "operator", params={"month": "2025-13", "color": "red"})
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"month", "color"}


def test_healthz_openapi_and_unknown_paths(api):
    health = api.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"ok": True, "broker": "ok",
                             "services": {"visits": "ok", "cases": "ok", "compliance": "ok",
                                          "caseboard": "ok"}}
    spec = api.get("/openapi.json")
    assert spec.status_code == 200 and spec.json()["openapi"] == "3.1.0"
    assert "/api/v1/visits" in spec.json()["paths"]
    missing = api.get("/nowhere", "operator")
    assert missing.status_code == 404 and missing.json()["errors"]["path"]
    wrong = api.call("DELETE", "/visits/v-1", "operator")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET, HEAD"
    wrong = api.get("/visits", "operator")
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"]


def test_healthz_503_and_504_when_a_service_is_down(api):
    api.containers["compliance"].stop()
    health = api.get("/healthz")
    assert health.status_code == 503
    assert health.json() == {"ok": False, "broker": "ok",
                             "services": {"visits": "ok", "cases": "ok",
                                          "compliance": "down", "caseboard": "ok"}}
    assert health.headers["Retry-After"] == "5"
    started = time.monotonic()
    reply = _report(api, "operator")
    assert reply.status_code in (503, 504), reply.text
    assert reply.headers["Retry-After"] == "5"
    assert list(reply.json()["errors"]) == ["_schema"]
    assert time.monotonic() - started < 10
