"""`grassroots up`, `status` and a second `up`, run as an operator runs them."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import requests

from shared.runtime import catalogue
from shared.runtime.config import ROOT
from shared.tools.broker import LocalRabbit, free_port


def _grassroots(*args: str, env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "shared.tools.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)  # type: ignore[call-overload]


def test_up_status_second_up_and_ctrl_c(broker_uris: dict[str, str], rabbit: LocalRabbit,
                                        tmp_path: Path) -> None:
    # An outside broker: `up` and `status` log in as the operator, each service as itself.
    env = dict(os.environ, AMQP_URI=broker_uris["operator"], GRASSROOTS_VAR=str(tmp_path),
               GATEWAY_ADDRESS=f"127.0.0.1:{free_port()}",
               **{f"{name.upper()}_AMQP_URI": broker_uris[name]
                  for name in catalogue.names()})
    up, lines = _up_until_ready(env)
    try:
        second = _grassroots("up", env=env)
        out, _ = second.communicate(timeout=30)
        assert second.returncode != 0 and "already running" in out

        status = _grassroots("status", env=env)
        out, _ = status.communicate(timeout=60)
        assert status.returncode == 0, out
        assert "broker: ok" in out and "visits: up" in out and "compliance: up" in out
        logins = set(rabbit.ctl("list_connections", "user", "--quiet").stdout.split())
        assert set(catalogue.names()) <= logins, logins
        for name in catalogue.names():
            assert (tmp_path / "log" / f"{name}.log").exists()
        assert (tmp_path / "visits.db").exists() and (tmp_path / "compliance.db").exists()
    finally:
        rest = _stop(up)
    assert "stopped." in rest and "Traceback" not in "".join(lines) + rest
    assert not (tmp_path / "up.json").exists()


def _up_until_ready(env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    up = _grassroots("up", env=env, start_new_session=True)
    lines: list[str] = []
    deadline = time.monotonic() + 120
    assert up.stdout is not None
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        lines.append(line)
        if "Grassroots is up" in line or up.poll() is not None:
            break
    assert any("Grassroots is up" in line for line in lines), "".join(lines)
    return up, lines


def _stop(up: subprocess.Popen[str]) -> str:
    up.send_signal(signal.SIGINT)
    rest, _ = up.communicate(timeout=90)
    assert up.returncode == 0, rest
    return rest


def test_up_starts_and_stops_its_own_broker_and_a_second_run_keeps_the_data(
    tmp_path: Path,
) -> None:
    """The default `make up`: no AMQP_URI, so a local RabbitMQ node under var/; twice."""
    from shared.runtime.auth import TokenStore
    from shared.tools.broker import amqp_answers

    port = free_port()
    api = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k != "AMQP_URI"}
    env.update(GRASSROOTS_VAR=str(tmp_path), GATEWAY_ADDRESS=api,
               GRASSROOTS_AMQP_PORT=str(port))
    up, lines = _up_until_ready(env)
    users = json.loads((tmp_path / "broker" / "users.json").read_text())
    broker = f"amqp://operator:{users['operator']}@127.0.0.1:{port}//"
    try:
        assert any("starting a local RabbitMQ node" in line for line in lines)
        # No guest account; each service's own login, kept for this user only.
        assert not amqp_answers(f"amqp://guest:guest@127.0.0.1:{port}//", timeout=5)
        assert amqp_answers(broker, timeout=5)
        assert stat.S_IMODE((tmp_path / "broker" / "users.json").stat().st_mode) == 0o600
        assert sorted(users) == sorted([*catalogue.names(), "operator"])
        token = TokenStore(tmp_path / "tokens.json").create("operator")
        reply = requests.post(f"http://{api}/api/v1/units", timeout=30,
                              headers={"Authorization": f"Bearer {token}"},
                              json={"id": "baishi", "name": "Baishi Township",
                                    "kind": "township"})
        assert reply.status_code == 201, reply.text
    finally:
        rest = _stop(up)
    assert "stopping the local RabbitMQ node" in rest
    assert not amqp_answers(broker, timeout=1)

    up, _ = _up_until_ready(env)
    try:
        reply = requests.get(f"http://{api}/api/v1/compliance", params={"month": "2026-10"},
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert reply.status_code == 200, reply.text
        assert [u["unit_id"] for u in reply.json()["units"]] == ["baishi"]
        status = _grassroots("status", env=env)
        out, _ = status.communicate(timeout=60)
        assert status.returncode == 0 and '"last_position": 1' in out, out
    finally:
        _stop(up)
    assert not amqp_answers(broker, timeout=1)
