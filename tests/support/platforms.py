"""What tests that run whole platforms share: polling for a condition, and starting every
catalogued service on a broker node of the test's own."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.eventlog import Signer
from shared.runtime.catalogue import names as service_names
from shared.tools.broker import free_port
from shared.tools.platform import Platform
from shared.tools.supervisor import RestartPolicy


def until(check: Callable[[], Any], timeout: float = 30.0, every: float = 0.3) -> Any:
    """Poll until `check()` returns something truthy; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met in {timeout}s; last value: {value!r}")


def start_platform(var: Path, uris: dict[str, str], policy: RestartPolicy | None = None,
                   **env: str) -> Platform:
    """Every service, in `var`, each logging in with its own of `uris` (a LocalRabbit's),
    on a free API port; stopped again if they do not all come up."""
    platform = Platform(out=io.StringIO(), var=var, policy=policy, env={
        "GRASSROOTS_TOKENS": str(var / "tokens.json"), "REMINDER_SECONDS": "3600",
        "GRASSROOTS_SIGNING_KEY": Signer.generate(), "RELAY_POLL_SECONDS": "0.2", **env})
    platform.amqp_uri, platform.service_uris = uris["operator"], uris
    platform.api = f"127.0.0.1:{free_port()}"
    for name in service_names():
        platform.start_service(name)
    try:
        platform.wait_ready(90)
    except BaseException:
        platform.stop()
        raise
    return platform
