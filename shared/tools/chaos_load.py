"""The steady load of `grassroots chaos`: client threads recording realistic visits through
the gateway as a careful client would, and remembering what was acknowledged.

Each request carries its own Idempotency-Key and a marker in its diary (so a write applied
twice shows in the log as two records with one marker). The body has no visit id: the service
derives it from the key, so only the key makes a retry safe. A 503, 504, 409 (still in
progress) or a refused connection is retried with the same key, honouring Retry-After, for at
most RETRY_BUDGET seconds; any other answer is final (a 500 is always a failure).
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

from shared.runtime import catalogue

CADRES = 20
RETRY = {503, 504, 409}
RETRY_BUDGET = 60.0
ATTEMPT_TIMEOUT = 30.0
UNIT = "chaos-unit"


@dataclass
class Outcome:
    """One logical request, after its retries."""

    start: float
    end: float
    status: int | str  # the final answer's status, or "conn" when none came
    latency: float  # of the final attempt
    retried: list[int | str] = field(default_factory=list)
    id: str | None = None
    position: int | None = None
    replay_mismatch: bool = False  # posted twice: the second answer named another visit

    @property
    def acked(self) -> bool:
        return isinstance(self.status, int) and 200 <= self.status < 300


def write_route() -> Any:
    """The catalogue's route for recording a visit (its service is whose log must hold it)."""
    for service in catalogue.SERVICES:
        for route in service.routes():
            if route.method == "POST" and route.path == "/visits":
                return route
    raise RuntimeError("no POST /visits route in the catalogue")


def roster(base: str, token: str) -> None:
    """A unit and its cadres, through the API, before the load starts."""
    headers = {"Authorization": f"Bearer {token}"}
    requests.post(f"{base}/api/v1/units", json={"id": UNIT, "name": "Chaos", "kind": "township"},
                  headers=headers, timeout=30).raise_for_status()
    for i in range(CADRES):
        requests.post(f"{base}/api/v1/cadres", json={
            "id": f"chaos-c{i}", "name": f"Cadre {i}", "unit_id": UNIT, "role": "staff",
            "effective_from": "2020-01-01"}, headers=headers, timeout=30).raise_for_status()


class Load:
    """`clients` threads posting visits until stopped; paused and resumed between faults.
    `rate` (requests a second, all clients together) paces them; None: as fast as answered."""

    def __init__(self, base: str, token: str, clients: int, day: dt.date, run: str,
                 duplicate: threading.Event, rate: float | None = None) -> None:
        self.url = base + write_route().url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.clients, self.day, self.run, self.duplicate = clients, day, run, duplicate
        self.rate = rate
        self.started = time.monotonic()  # where a soak's windows count from
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._go = threading.Event()
        self._stop = threading.Event()
        self._busy = 0
        self._count = 0
        self._slot = 0.0
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True,
                                          name=f"chaos-client-{i}") for i in range(clients)]

    def marker(self, n: int) -> str:
        return f"chaos-{self.run}-{n}"

    def start(self) -> None:
        self._go.set()
        for thread in self._threads:
            thread.start()

    def pause(self, timeout: float = 180) -> None:
        """Let no new request start and wait for those in flight."""
        self._go.clear()
        deadline = time.monotonic() + timeout
        while self._busy and time.monotonic() < deadline:
            time.sleep(0.05)

    def resume(self) -> None:
        self._go.set()

    def stop(self) -> None:
        self._stop.set()
        self._go.set()
        for thread in self._threads:
            thread.join(RETRY_BUDGET + ATTEMPT_TIMEOUT)

    def since(self, start: float, until: float = float("inf")) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if start <= o.end < until]

    def _pace(self) -> None:
        if not self.rate:
            return
        with self._lock:
            self._slot = max(self._slot + 1 / self.rate, time.monotonic())
            wait = self._slot - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def _client(self, i: int) -> None:
        from shared.tools.demo import _visit

        session, rng = requests.Session(), random.Random(i)
        while True:
            self._go.wait()
            if self._stop.is_set():
                return
            self._pace()
            with self._lock:
                if not self._go.is_set():
                    continue
                self._busy += 1
                self._count += 1
                n = self._count
            try:
                cadres = [f"chaos-c{c}" for c in rng.sample(range(CADRES), rng.randint(1, 2))]
                body = _visit(rng, "", cadres, self.day, "Chaos")
                del body["id"]
                body["diary"]["notes"] = self.marker(n)
                outcome = self._request(session, body, str(uuid.uuid4()))
                with self._lock:
                    self.outcomes.append(outcome)
            finally:
                with self._lock:
                    self._busy -= 1

    def _request(self, session: requests.Session, body: dict[str, Any], key: str) -> Outcome:
        twice = self.duplicate.is_set()
        outcome = self._send(session, body, key)
        if twice and outcome.acked:
            again = self._send(session, body, key)
            outcome.retried += again.retried
            outcome.replay_mismatch = again.acked and again.id != outcome.id
        return outcome

    def _send(self, session: requests.Session, body: dict[str, Any], key: str) -> Outcome:
        headers = {**self.headers, "Idempotency-Key": key}
        start = time.monotonic()
        retried: list[int | str] = []
        tries = 0
        while True:
            sent = time.monotonic()
            status: int | str
            try:
                reply = session.post(self.url, json=body, headers=headers,
                                     timeout=ATTEMPT_TIMEOUT)
                status, wait = reply.status_code, _retry_after(reply, tries)
            except requests.RequestException:
                reply, status, wait = None, "conn", min(4.0, 0.25 * 2**tries)
            now = time.monotonic()
            if status not in RETRY and status != "conn" or now + wait - start > RETRY_BUDGET:
                break
            retried.append(status)
            tries += 1
            time.sleep(wait)
        outcome = Outcome(start, now, status, now - sent, retried)
        if outcome.acked and reply is not None:
            answer = reply.json()
            outcome.id, outcome.position = answer["id"], answer["position"]
        return outcome


def _retry_after(reply: requests.Response, tries: int) -> float:
    """Retry-After in seconds (capped at 5), else capped exponential backoff."""
    value = reply.headers.get("Retry-After")
    if value and value.strip().isdigit():
        return min(5.0, float(value))
    return min(4.0, 0.25 * 2**tries)
