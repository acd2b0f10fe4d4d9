"""`grassroots up`, `status` and a second `up`, run as an operator runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shared.broker import free_port
from shared.config import ROOT


def _grassroots(*args: str, env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "shared.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)  # type: ignore[call-overload]


def test_up_status_second_up_and_ctrl_c(amqp_uri: str, tmp_path: Path) -> None:
    env = dict(os.environ, AMQP_URI=amqp_uri, GRASSROOTS_VAR=str(tmp_path),
               GATEWAY_ADDRESS=f"127.0.0.1:{free_port()}")
    up = _grassroots("up", env=env, start_new_session=True)
    lines: list[str] = []
    deadline = time.monotonic() + 90
    assert up.stdout is not None
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        lines.append(line)
        if "Grassroots is up" in line or up.poll() is not None:
            break
    assert any("Grassroots is up" in line for line in lines), "".join(lines)
    try:
        second = _grassroots("up", env=env)
        out, _ = second.communicate(timeout=30)
        assert second.returncode != 0 and "already running" in out

        status = _grassroots("status", env=env)
        out, _ = status.communicate(timeout=60)
        assert status.returncode == 0, out
        assert "broker: ok" in out and "visits: up" in out and "compliance: up" in out
        for name in ("visits", "compliance", "gateway"):
            assert (tmp_path / "log" / f"{name}.log").exists()
        assert (tmp_path / "visits.db").exists() and (tmp_path / "compliance.db").exists()
    finally:
        up.send_signal(signal.SIGINT)
        rest, _ = up.communicate(timeout=60)
    assert up.returncode == 0, rest
    assert "stopped." in rest and "Traceback" not in "".join(lines) + rest
    assert not (tmp_path / "up.json").exists()
