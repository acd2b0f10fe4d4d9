"""The chaos `clock` fault's environment keeps a service's hub able to sleep.

Debian's libfaketime 0.9.10 made every `time.sleep` fail with EINVAL under the fault's settings
(wolfcw/libfaketime#426); eventlet's hub sleeps so when no socket is open, so every service
died at every broker fault of a soak. The fault now adds `faketime_fix` to the services'
PYTHONPATH; this runs a green sleep with no socket open in exactly the environment `prepare`
gives the services.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from shared.tools.chaos_faults import Clock

PROGRAM = """
import eventlet
eventlet.monkey_patch()
import time
start = time.monotonic()
eventlet.sleep(0.2)  # no socket open: the hub itself sleeps
print(round(time.monotonic() - start, 1))
"""


@pytest.fixture
def clock_env(tmp_path):
    if not glob.glob("/usr/lib/*/faketime/libfaketime.so.1"):
        pytest.fail("libfaketime is missing: make test installs it (scripts/ensure-faketime.sh)")
    extra: dict[str, str] = {}
    Clock().prepare(tmp_path, extra, "sqlite")
    (tmp_path / "faketime").write_text("-3600\n")  # stepped back, as during the fault
    return {**os.environ, **extra}


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-W", "ignore", "-c", PROGRAM], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_green_sleep_with_no_socket_open_survives_the_clock_fault(clock_env):
    done = _run(clock_env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "0.2"


def test_the_wall_clock_is_still_stepped_back(clock_env):
    done = subprocess.run([sys.executable, "-c", "import time; print(int(time.time()))"],
                          env=clock_env, capture_output=True, text=True, timeout=60,
                          check=True)
    import time

    assert 3590 <= time.time() - int(done.stdout) <= 3610
