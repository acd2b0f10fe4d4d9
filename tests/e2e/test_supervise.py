"""`grassroots up` as a supervisor: real service processes, a real broker node of each test's
own (never the shared one: these tests kill it), faults made with kill -9."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.runtime.auth import TokenStore
from shared.runtime.catalogue import names as service_names
from shared.runtime.config import ROOT
from shared.tools.broker import LocalRabbit, free_port
from shared.tools.platform import Platform, status
from shared.tools.supervisor import RestartPolicy
from tests.support import platforms as support

QUICK = RestartPolicy(first=0.2, cap=1.0, stable=30.0, deaths=3, window=60.0)
STOP_BOUND = 10.0  # seconds from Ctrl-C until `up` has stopped everything, broker gone


def until(check: Callable[[], Any], timeout: float = 60.0, every: float = 0.2) -> Any:
    return support.until(check, timeout, every)


def make_platform(var: Path, uris: dict[str, str], policy: RestartPolicy = QUICK,
                  **env: str) -> Platform:
    return support.start_platform(var, uris, policy, **env)


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A platform that owns its broker node, as `up` does when it starts one."""
    work = tmp_path_factory.mktemp("supervised")
    port = free_port()
    rabbit = LocalRabbit(work / "rabbit", port, f"grassroots-supervise-{port}",
                         dist_port=free_port())
    rabbit.start()
    try:
        platform = make_platform(work / "var", rabbit.uris)
    except BaseException:
        rabbit.stop()
        raise
    platform.rabbit = rabbit
    try:
        yield platform
    finally:
        platform.stop()


def healthy(platform: Platform) -> bool:
    platform.watch()
    try:
        return requests.get(f"http://{platform.api}/healthz", timeout=3).status_code == 200
    except requests.RequestException:
        return False


def state(platform: Platform) -> dict[str, Any]:
    return json.loads(platform.state_file.read_text())


def add_unit(platform: Platform, unit_id: str) -> int:
    token = TokenStore(platform.var / "tokens.json").create("operator")
    return requests.post(f"http://{platform.api}/api/v1/units", timeout=30,
                         headers={"Authorization": f"Bearer {token}"},
                         json={"id": unit_id, "name": unit_id, "kind": "township"}).status_code


def test_a_killed_service_is_restarted_and_answers_again(supervised: Platform) -> None:
    old = supervised.procs["visits"].pid
    os.kill(old, signal.SIGKILL)
    until(lambda: healthy(supervised)
          and getattr(supervised.procs.get("visits"), "pid", old) != old)
    assert add_unit(supervised, "restarted") == 201  # RPC to the new process

    visits = state(supervised)["services"]["visits"]
    assert visits["pid"] == supervised.procs["visits"].pid and visits["restarts"] == 1
    assert visits["last_exit"]["signal"] == "SIGKILL" and visits["last_exit"]["code"] is None
    out = supervised.out.getvalue()  # type: ignore[attr-defined]
    assert "visits: signal SIGKILL after" in out and "restart 1 in 0.2s" in out
    log = (supervised.var / "log" / "visits.log").read_text()
    assert "grassroots up: visits: restarted (restart 1, pid" in log

    report = io.StringIO()
    assert status(report, var=supervised.var) == 0, report.getvalue()
    line = next(x for x in report.getvalue().splitlines() if x.startswith("visits: up"))
    assert "[restarts 1, last exit signal SIGKILL at " in line


def test_status_says_what_is_down(supervised: Platform) -> None:
    os.kill(supervised.procs["compliance"].pid, signal.SIGKILL)
    supervised.procs["compliance"].wait()
    report = io.StringIO()
    assert status(report, var=supervised.var) == 1
    lines = report.getvalue().splitlines()
    assert any(x.startswith("compliance: DOWN") for x in lines), lines
    assert lines[-1] == "down: compliance"
    until(lambda: healthy(supervised))


def test_a_killed_broker_node_is_restarted(supervised: Platform) -> None:
    rabbit = supervised.rabbit
    assert rabbit is not None
    before = {name: child.restarts for name, child in supervised.children.items()}
    os.kill(rabbit.pid() or 0, signal.SIGKILL)
    until(lambda: (supervised.watch(), supervised.broker_down)[1], timeout=10)
    until(lambda: healthy(supervised) and add_unit(supervised, f"u{time.time_ns()}") == 201,
          timeout=90)
    assert state(supervised)["broker"]["restarts"] == 1
    out = supervised.out.getvalue()  # type: ignore[attr-defined]
    assert "broker: the local RabbitMQ node is gone; restart 1" in out
    assert "broker: the local RabbitMQ node is back (restart 1)" in out
    after = {name: child.restarts for name, child in supervised.children.items()}
    print("services restarted after the broker's restart:",  # for the report: -s shows it
          {name: after[name] - before[name] for name in after})


def test_a_crash_loop_stops_the_platform(broker_uris: dict[str, str], tmp_path: Path) -> None:
    platform = make_platform(tmp_path, broker_uris)
    pids = [proc.pid for proc in platform.procs.values()]
    try:
        # From now on compliance cannot open its database: every restart dies at once.
        platform.extra_env["COMPLIANCE_DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"
        os.kill(platform.procs["compliance"].pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match="crash loop") as failure:
            until(lambda: platform.watch(), timeout=60)
    finally:
        platform.stop()
    assert "service compliance died 3 times within 60s" in str(failure.value)
    assert str(tmp_path / "log" / "compliance.log") in str(failure.value)
    assert not platform.procs and not platform.state_file.exists()
    assert all(not alive(pid) for pid in pids)


def alive(pid: int) -> bool:
    """True when pid runs (a zombie, exited but not reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def processes_of(var: Path) -> list[int]:
    """Every live process started with GRASSROOTS_VAR=var: what one `up` started."""
    mark = f"GRASSROOTS_VAR={var}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if mark in environ and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def run_up(var: Path) -> tuple[subprocess.Popen[str], int]:
    """`grassroots up` on a var/, API port and broker node of its own, once it says it is up;
    and its broker's port."""
    port, api = free_port(), f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k != "AMQP_URI"}
    env.update(GRASSROOTS_VAR=str(var), GATEWAY_ADDRESS=api, GRASSROOTS_AMQP_PORT=str(port))
    up = subprocess.Popen([sys.executable, "-m", "shared.tools.cli", "up"], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)
    assert up.stdout is not None
    lines = [up.stdout.readline()]
    while "Grassroots is up" not in lines[-1] and up.poll() is None:
        lines.append(up.stdout.readline())
    assert up.poll() is None, "".join(lines)
    return up, port


def test_ctrl_c_stops_everything_mid_restart(tmp_path: Path) -> None:
    """The broker node killed and booting again, a service waiting for it: Ctrl-C leaves no
    process behind, the booting node included."""
    up, port = run_up(tmp_path)
    try:
        started = json.loads((tmp_path / "up.json").read_text())
        os.kill(started["broker"]["pid"], signal.SIGKILL)
        os.kill(started["services"]["visits"]["pid"], signal.SIGKILL)
        until(lambda: (s := json.loads((tmp_path / "up.json").read_text()))["broker"]["restarts"]
              and s["services"]["visits"]["waiting"], timeout=30, every=0.05)
    finally:
        up.send_signal(signal.SIGINT)
        rest, _ = up.communicate(timeout=120)
    assert up.returncode == 0, rest
    assert "visits: signal SIGKILL" in rest and "once the broker is back" in rest, rest
    assert "stopped." in rest and "Traceback" not in rest
    assert processes_of(tmp_path) == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert not (tmp_path / "up.json").exists()


def test_ctrl_c_with_the_broker_gone_stops_every_service_promptly(tmp_path: Path) -> None:
    """The broker node killed and every service retrying it: Ctrl-C stops them all by SIGTERM
    (none killed for overrunning), the whole platform within STOP_BOUND seconds, nothing left.
    Before issue #9's fix each service waited for the broker until killed (26 s in all)."""
    up, port = run_up(tmp_path)
    logs = [tmp_path / "log" / f"{name}.log" for name in service_names()]
    try:
        started = json.loads((tmp_path / "up.json").read_text())
        os.kill(started["broker"]["pid"], signal.SIGKILL)
        # Ctrl-C before `up` relaunches the node (a second after it notices): still down.
        until(lambda: all("Error connecting to broker" in log.read_text() for log in logs),
              timeout=5, every=0.05)
    finally:
        began = time.monotonic()
        up.send_signal(signal.SIGINT)
        rest, _ = up.communicate(timeout=120)
        took = time.monotonic() - began
    assert up.returncode == 0, rest
    assert "did not stop in time" not in rest and "stopped." in rest, rest
    assert took < STOP_BOUND, (took, rest)
    assert processes_of(tmp_path) == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
