"""Loaded as `sitecustomize` only into the services `grassroots chaos` starts under libfaketime
(its `clock` fault puts this folder on their PYTHONPATH).

Debian's libfaketime 0.9.10 breaks `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ...)` when
the monotonic clock is left alone (FAKETIME_DONT_FAKE_MONOTONIC=1; wolfcw/libfaketime#426):
it hands the kernel a negative time, and every `time.sleep` of Python 3.11 fails with EINVAL.
Eventlet's hub sleeps so when it has no socket to wait on, which is when every broker
connection is down, so each service died at each broker fault: a fault of the test tool, not
of the service. `poll`, `select` and lock timeouts are unaffected, so the hub's sleep is made a
`select` with no sockets, the same wait without the broken call.
"""

from __future__ import annotations

import os
import time as _time
from select import select as _select  # the real one: eventlet patches the module's later
from typing import Any


class _Time:
    """The `time` module, with `sleep` waiting in `select`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        deadline = _time.monotonic() + seconds
        while (left := deadline - _time.monotonic()) > 0:
            _select([], [], [], left)


if "libfaketime" in os.environ.get("LD_PRELOAD", ""):
    from eventlet.hubs import poll

    poll.time = _Time()
