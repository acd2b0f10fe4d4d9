"""`grassroots bench api`: `POST /api/v1/visits` through a running platform, next to the
framework's own floor, printed as one JSON object.

The platform is started as `grassroots up` starts it (one `nameko run` process per service,
SQLite under a temporary var/, a RabbitMQ node of its own with the per-service users). The
floor is a bare nameko pair on the same broker, also one process each: an `@http` entrypoint
forwarding the body over RPC to a service that answers at once. Both are driven by the same
clients (1, then 8 threads), interleaved, with the same realistic visits (the demo's: diary,
resident with name and phone). Under the 8-client load the compliance view's lag is measured:
for each answered visit, the time until the compliance service's checkpoint on the visits
log reaches the visit's position (polled every `LAG_POLL` seconds, which bounds the error).
Each run also reports the CPU time each process spent per request (user + system, from
/proc; clock-tick resolution, 10 ms in all, so a few hundred requests make it exact enough):
where a request's cost lies, which the machine's other load does not change the way it
changes a rate. Progress goes to stderr, the JSON to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nameko.rpc import RpcProxy, rpc
from nameko.web.handlers import http

from shared.runtime import catalogue
from shared.runtime.config import ROOT
from shared.tools.broker import LocalRabbit, free_port
from shared.tools.brokerauth import GRANTS, Grant

CADRES = 20
LAG_POLL = 0.02
WARM_UP = 20  # requests each side first: connections, compiled loaders, the roster fold
TARGETS = {"ratio_to_floor": 0.8, "p99_ms": 100.0, "view_lag_p99_ms": 1000.0}
BENCH_USER = "bench"  # the floor pair's broker user, on the bench's own node only


class FloorEcho:
    """Answers at once: the far end of the floor."""

    name = "bench_echo"

    @rpc
    def record_visit(self, payload: Any) -> dict[str, Any]:
        return {"id": payload.get("id"), "position": 0}


class FloorHttp:
    """HTTP in, one RPC, JSON out: what the gateway does, with nothing of its own."""

    name = "bench_http"
    echo = RpcProxy("bench_echo")

    @http("POST", "/api/v1/visits")
    def post(self, request: Any) -> tuple[int, dict[str, str], str]:
        reply = self.echo.record_visit(json.loads(request.get_data(as_text=True)))
        return 201, {"Content-Type": "application/json"}, json.dumps(reply)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        # the fields after the command name (which may hold spaces): utime, stime are 11, 12
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _cpu_per_request(pids: dict[str, int], count: int, out: dict[str, float]) -> Iterator[None]:
    """Fill `out` with each process's CPU milliseconds per request over the block."""
    before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    yield
    for name, pid in pids.items():
        out[name] = round(1000 * (_cpu_seconds(pid) - before[name]) / count, 2)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _load(post: Callable[[Any, int], tuple[float, Any]], clients: int,
          count: int) -> tuple[dict[str, float], list[Any]]:
    """`count` requests from `clients` threads (each its own session); rate and latencies."""
    import requests

    local = threading.local()

    def one(i: int) -> tuple[float, Any]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return post(local.session, i)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(count)))
    took = time.perf_counter() - start
    latencies = [r[0] for r in results]
    return ({"req_s": round(count / took, 1), "p50_ms": _ms(latencies, 0.5),
             "p99_ms": _ms(latencies, 0.99)}, [r[1] for r in results])


def _poster(base: str, token: str | None, day: dt.date,
            series: str) -> Callable[[Any, int], tuple[float, Any]]:
    """Posts the i-th visit of `series`: each series has ids of its own, as a visit recorded
    again with the same id and content is a no-op the service answers without writing."""
    from shared.tools.demo import _visit

    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def post(session: Any, i: int) -> tuple[float, Any]:
        body = _visit(random.Random(i), f"b-{series}-{i}", [f"bc-{i % CADRES}"], day, "Qiaotou")
        start = time.perf_counter()
        reply = session.post(f"{base}/api/v1/visits", json=body, headers=headers, timeout=30)
        answered = time.perf_counter()
        if reply.status_code != 201:
            raise RuntimeError(f"POST /visits answered {reply.status_code}: {reply.text[:300]}")
        return answered - start, (reply.json()["position"], answered)

    return post


class _LagWatch:
    """Polls the compliance view's checkpoint on the visits log in a thread of its own.

    It reads the view's database (read-only) rather than asking the service's `status`: that
    RPC asks the visits service for its head over a fresh connection each time, 50 times a
    second, which would load the very processes being measured. The checkpoint is committed
    with the rows it covers, so what it says is what a report would show."""

    def __init__(self, database: Path) -> None:
        self.database, self.seen, self._stop = database, [(0.0, 0)], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with contextlib.closing(sqlite3.connect(f"{self.database.as_uri()}?mode=ro",
                                                uri=True)) as db:
            while not self._stop.is_set():
                row = db.execute("SELECT max(position) FROM projection_checkpoints "
                                 "WHERE source = 'visits'").fetchone()
                self.seen.append((time.perf_counter(), row[0] or 0))
                time.sleep(LAG_POLL)

    def __enter__(self) -> _LagWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    def lags(self, answered: list[tuple[int, float]], until: float) -> list[float]:
        """Per visit: seconds from its answer to the first poll that saw it in the view."""
        out = []
        for position, at in answered:
            seen = next((t for t, checkpoint in self.seen if t >= at and checkpoint >= position),
                        until)
            out.append(seen - at)
        return out


@contextmanager
def started(work: Path, services: Sequence[str],
            grants: dict[str, Grant] | None = None) -> Iterator[Any]:
    """A RabbitMQ node of its own (with each service's user, and `grants`) and the platform's
    `services` started on it as `grassroots up` starts them, SQLite under work/var; yields the
    `Platform` (its `amqp_uri` the operator's)."""
    from shared.eventlog import Signer
    from shared.tools.platform import Platform

    port = free_port()
    rabbit = LocalRabbit(work / "rabbit", port, f"grassroots-bench-{port}", dist_port=free_port(),
                         grants={**GRANTS, **(grants or {})}, login="operator")
    _say(f"bench: starting a RabbitMQ node on 127.0.0.1:{port} ...")
    rabbit.start()
    platform = Platform(out=io.StringIO(), var=work / "var", env={
        "GRASSROOTS_TOKENS": str(work / "var" / "tokens.json"), "REMINDER_SECONDS": "3600",
        "GRASSROOTS_SIGNING_KEY": Signer.generate()})
    platform.amqp_uri, platform.service_uris = rabbit.uris["operator"], rabbit.uris
    platform.api = f"127.0.0.1:{free_port()}"
    try:
        for name in services:
            platform.start_service(name)
        yield platform
    finally:
        platform.stop()
        rabbit.stop()


@contextmanager
def _platform(work: Path) -> Iterator[tuple[Any, str, str, str, dict[str, int]]]:
    """Broker, platform and floor pair; yields (platform, its API, the floor's API, an
    operator token, the floor's process ids by name)."""
    from shared.runtime.auth import TokenStore

    floor_api = f"127.0.0.1:{free_port()}"
    floor: dict[str, subprocess.Popen[bytes]] = {}
    with started(work, catalogue.names(), {BENCH_USER: Grant(".*", ".*", ".*")}) as platform:
        config = work / "floor.yml"
        config.write_text(json.dumps({"AMQP_URI": platform.service_uris[BENCH_USER],
                                      "WEB_SERVER_ADDRESS": floor_api, "max_workers": 10}))
        try:
            for cls in (FloorEcho, FloorHttp):
                floor[cls.name] = subprocess.Popen(
                    [sys.executable, "-m", "shared.runtime.serve", "run", "--config",
                     str(config), f"shared.tools.bench_api:{cls.__name__}"], cwd=ROOT,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=platform.env())
            platform.wait_ready(120)
            token = TokenStore(work / "var" / "tokens.json").create("operator")
            yield (platform, f"http://{platform.api}", f"http://{floor_api}", token,
                   {name: proc.pid for name, proc in floor.items()})
        finally:
            for proc in floor.values():
                proc.terminate()
                proc.wait(20)


def _roster(base: str, token: str) -> None:
    import requests

    headers = {"Authorization": f"Bearer {token}"}
    requests.post(f"{base}/api/v1/units", json={"id": "bu", "name": "Bench", "kind": "township"},
                  headers=headers, timeout=30).raise_for_status()
    for i in range(CADRES):
        requests.post(f"{base}/api/v1/cadres", json={
            "id": f"bc-{i}", "name": f"Cadre {i}", "unit_id": "bu", "role": "staff",
            "effective_from": "2020-01-01"}, headers=headers, timeout=30).raise_for_status()


def _wait_floor(base: str, timeout: float = 60) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.post(f"{base}/api/v1/visits", json={}, timeout=5).status_code == 201:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError("the floor pair did not answer")


def bench_api(requests_per_run: int = 400, clients: tuple[int, ...] = (1, 8)) -> dict[str, Any]:
    from shared.campaign.policy import load_policy

    day = load_policy().local_date(dt.datetime.now(dt.UTC)) - dt.timedelta(days=1)
    out: dict[str, Any] = {"requests": requests_per_run, "clients": list(clients)}
    with tempfile.TemporaryDirectory(prefix="grassroots-bench-api-") as tmp, \
            _platform(Path(tmp)) as (platform, ours, floor, token, floor_pids):
        _wait_floor(floor)
        _roster(ours, token)
        platform_pids = {name: proc.pid for name, proc in platform.procs.items()}
        for base, key in ((floor, None), (ours, token)):  # one-off costs are not the figures
            _load(_poster(base, key, day, "warm-up"), 1, WARM_UP)
        for n in clients:
            _say(f"bench api: {n} client(s), {requests_per_run} requests each side ...")
            cpu: dict[str, dict[str, float]] = {"platform": {}, "floor": {}}
            with _cpu_per_request(floor_pids, requests_per_run, cpu["floor"]):
                floor_run, _ = _load(_poster(floor, None, day, f"{n}c"), n, requests_per_run)
            if n == max(clients):
                with _LagWatch(platform.var / "compliance.db") as watch:
                    with _cpu_per_request(platform_pids, requests_per_run, cpu["platform"]):
                        ours_run, answered = _load(_poster(ours, token, day, f"{n}c"), n,
                                                   requests_per_run)
                    time.sleep(1.0)  # let the view catch up the last ones
                lags = watch.lags(answered, time.perf_counter())
                out["view_lag_ms"] = {"p50": _ms(lags, 0.5), "p99": _ms(lags, 0.99),
                                      "poll_ms": LAG_POLL * 1000}
            else:
                with _cpu_per_request(platform_pids, requests_per_run, cpu["platform"]):
                    ours_run, _ = _load(_poster(ours, token, day, f"{n}c"), n, requests_per_run)
            out[f"clients_{n}"] = {
                "platform": ours_run, "floor": floor_run,
                "ratio": round(ours_run["req_s"] / floor_run["req_s"], 3),
                "cpu_ms_per_request": cpu}
    top = out[f"clients_{max(clients)}"]
    out["targets"] = TARGETS
    out["meets"] = {
        "ratio_to_floor": top["ratio"] >= TARGETS["ratio_to_floor"],
        "p99_ms": top["platform"]["p99_ms"] <= TARGETS["p99_ms"],
        "view_lag_p99_ms": out["view_lag_ms"]["p99"] <= TARGETS["view_lag_p99_ms"],
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grassroots bench api", description=__doc__)
    parser.add_argument("--requests", type=int, default=400, help="requests per client count")
    args = parser.parse_args(argv)
    print(json.dumps(bench_api(args.requests), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
