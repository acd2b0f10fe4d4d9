"""Outages survived: the broker stopped and started, PostgreSQL restarted, under a steady load
of visits posted through the API of a platform started as `grassroots up` starts it (one
process per service), on a broker node and a database server of these tests' own (never the
shared ones: other tests use those).

What must hold: no service process exits; every answer is 2xx, 4xx, 503 or 504 (never 500),
503 and 504 with Retry-After; every acknowledged visit is in the log; the relay publishes
everything afterwards, and the compliance view equals its rebuild.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import eventlet
import pytest
import requests
from amqp.exceptions import RecoverableConnectionError
from kombu.exceptions import OperationalError

from shared.campaign.policy import load_policy
from shared.eventlog import EventLog, NewEvent
from shared.runtime.auth import TokenStore
from shared.runtime.catalogue import names as service_names
from shared.runtime.relay import BACKOFF_CAP, Relay
from shared.runtime.rpc import cluster
from shared.tools.broker import LocalRabbit, free_port
from shared.tools.operations import rebuild
from shared.tools.platform import Platform
from tests.support import platforms as support
from tests.support.platforms import until
from tests.support.postgres import TempPostgres

CLIENTS = 4
CADRES = [f"oc-{i}" for i in range(4)]
OUTAGE_SECONDS = 8.0


class Load:
    """`CLIENTS` threads posting new visits until stopped; every answer is kept."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token
        self.answers: list[tuple[int, str, requests.Response]] = []
        self.day = (load_policy().local_date(datetime.now(UTC)) - timedelta(days=1)).isoformat()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(CLIENTS)]

    def _run(self, client: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token}"
        while not self._stop.is_set():
            visit_id = f"o-{uuid.uuid4().hex[:12]}"
            body = {"id": visit_id, "cadre_ids": [CADRES[client % len(CADRES)]],
                    "date": self.day, "place": {"township": "Qiaotou"},
                    "target": {"kind": "household"}, "delivered": ["policy"]}
            reply = session.post(f"{self.base}/visits", json=body, timeout=30)
            self.answers.append((reply.status_code, visit_id, reply))
            if reply.status_code >= 500:
                time.sleep(0.2)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for status, _id, _reply in self.answers:
            counts[status] = counts.get(status, 0) + 1
        return counts

    def acknowledged(self) -> set[str]:
        return {visit_id for status, visit_id, _reply in self.answers if status == 201}

    def acknowledged_since(self, start: int) -> int:
        return sum(1 for status, _id, _reply in self.answers[start:] if status == 201)


def start_platform(var: Path, rabbit: LocalRabbit, env: dict[str, str]) -> Platform:
    return support.start_platform(var, rabbit.uris, RPC_TIMEOUT="5", CATCH_UP_SECONDS="2",
                                  **env)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRabbit]:
    """A broker node these tests stop and start at will."""
    port = free_port()
    rabbit = LocalRabbit(tmp_path_factory.mktemp("outage-rabbit"), port,
                         f"grassroots-outage-{port}", dist_port=free_port())
    rabbit.start()
    try:
        yield rabbit
    finally:
        rabbit.stop()


def roster(base: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    requests.post(f"{base}/units", json={"id": "ou", "name": "Outage", "kind": "township"},
                  headers=headers, timeout=30).raise_for_status()
    for cadre in CADRES:
        requests.post(f"{base}/cadres", json={
            "id": cadre, "name": cadre, "unit_id": "ou", "role": "staff",
            "effective_from": "2020-01-01"}, headers=headers, timeout=30).raise_for_status()


def check_survived(platform: Platform, load: Load, log_url: str) -> None:
    """No process exited; no 500; 503 and 504 say when to retry; nothing acknowledged lost;
    the relay has published everything and the view equals its rebuild."""
    assert {name: proc.poll() for name, proc in platform.procs.items()} == dict.fromkeys(
        platform.procs), "a service process exited"
    statuses = load.statuses()
    assert set(statuses) <= {201, 503, 504}, statuses
    for status, _id, reply in load.answers:
        if status >= 500:
            assert int(reply.headers["Retry-After"]) >= 1
            assert list(reply.json()["errors"]) == ["_schema"]
    log = EventLog.open(log_url, service="visits")
    try:
        stored = {record.stream.removeprefix("visit-") for record in log.read()
                  if record.type == "visit.recorded"}
        assert load.acknowledged() <= stored
        head = log.last_position()
    finally:
        log.engine.dispose()
    with cluster(platform.amqp_uri, 10) as rpc:
        until(lambda: rpc.visits.status()["relay"]["lag"] == 0, 60)
        until(lambda: rpc.compliance.status()["sources"]["visits"]["checkpoint"] == head, 60)
    token = TokenStore(Path(platform.extra_env["GRASSROOTS_TOKENS"])).create("operator")
    month = load.day[:7]

    def report() -> Any:
        reply = requests.get(f"http://{platform.api}/api/v1/compliance", params={
            "month": month}, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert reply.status_code == 200, reply.text
        return reply.json()

    live = report()
    assert rebuild("compliance", timeout=60, amqp=platform.amqp_uri) == 0
    assert report() == live


def test_a_broker_outage_under_load(node: LocalRabbit, tmp_path: Path) -> None:
    var = tmp_path / "var"
    platform = start_platform(var, node, {})
    try:
        token = TokenStore(var / "tokens.json").create("operator")
        base = f"http://{platform.api}/api/v1"
        roster(base, token)
        with Load(base, token) as load:
            until(lambda: len(load.acknowledged()) >= 20)
            assert node.ctl("stop_app").returncode == 0
            stopped_at = len(load.answers)
            time.sleep(1.0)
            health = requests.get(f"http://{platform.api}/healthz", timeout=10)
            assert health.status_code == 503, health.text
            assert health.json()["broker"] == "down"
            assert health.headers["Retry-After"]
            time.sleep(OUTAGE_SECONDS - 1.0)
            assert node.ctl("start_app").returncode == 0
            until(lambda: load.acknowledged_since(stopped_at) >= 20, 40)
        until(lambda: requests.get(f"http://{platform.api}/healthz", timeout=10).json() == {
            "ok": True, "broker": "ok",
            "services": dict.fromkeys(service_names("write", "view"), "ok")}, 30)
        check_survived(platform, load, f"sqlite:///{var}/visits.db")
    finally:
        platform.stop()


@pytest.fixture
def own_postgres() -> Iterator[TempPostgres]:
    with TempPostgres() as server:
        yield server


def test_a_database_restart_under_load(node: LocalRabbit, own_postgres: TempPostgres,
                                       tmp_path: Path) -> None:
    var = tmp_path / "var"
    log_url = own_postgres.create_database("visits")
    platform = start_platform(var, node, {"VISITS_DATABASE_URL": log_url})
    try:
        token = TokenStore(var / "tokens.json").create("operator")
        base = f"http://{platform.api}/api/v1"
        roster(base, token)
        with Load(base, token) as load:
            until(lambda: len(load.acknowledged()) >= 20)
            own_postgres.stop_server()  # fast: every session is cut
            time.sleep(OUTAGE_SECONDS / 2)
            own_postgres.start_server()
            restarted_at = len(load.answers)
            until(lambda: load.acknowledged_since(restarted_at) >= 20, 40)
        slow = [reply.elapsed.total_seconds() for status, _id, reply in load.answers
                if status == 503]
        assert slow and max(slow) < 3.0, slow
        check_survived(platform, load, log_url)
    finally:
        platform.stop()


FAULTS: list[BaseException] = [
    ConnectionResetError(104, "Connection reset by peer"),  # the socket, mid-publish
    RecoverableConnectionError("connection closed while waiting for a confirm"),  # amqp
    OperationalError("[Errno 111] ECONNREFUSED"),  # kombu, reconnecting
    TimeoutError("timed out"),  # a confirm that never came
    eventlet.Timeout(),  # a deadline around the pass (not an Exception)
    BrokenPipeError(32, "Broken pipe"),
] * 2


class FaultyRelay(Relay):
    """A relay on a real broker whose passes first meet each fault in FAULTS, in turn."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.faults = list(FAULTS)

    def _ensure_producer(self) -> Any:
        producer = super()._ensure_producer()
        if self.faults:
            raise self.faults.pop(0)
        return producer


def test_the_relay_rides_out_every_kind_of_broker_failure(node: LocalRabbit,
                                                          tmp_path: Path) -> None:
    log = EventLog.open(f"sqlite:///{tmp_path / 'log.db'}", service="visits")
    positions = [log.append(f"s-{i}", [NewEvent("thing.happened", {"i": i})])[-1]
                 for i in range(5)]
    relay = FaultyRelay(log, node.uris["visits"], batch=2)
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)

    def stopped() -> bool:
        return relay.checkpoints.position() == positions[-1] or len(waits) > 100

    relay.run(stopped, wait, poll_interval=0.5)
    assert relay.checkpoints.position() == positions[-1]
    assert not relay.faults
    backoff = [0.5 * 2 ** i for i in range(len(FAULTS))]
    assert waits[:len(FAULTS)] == [min(b, BACKOFF_CAP) for b in backoff]
    log.close()
