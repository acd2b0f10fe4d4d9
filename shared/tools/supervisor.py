"""How `grassroots up` restarts what dies, as Compose's `restart: unless-stopped` does, plus
the crash-loop stop Compose lacks: bookkeeping only (no processes), so that `Platform.watch`
stays a short loop and these rules can be read and tested on their own.

A process that dies is started again after a delay that doubles from `BACKOFF_FIRST` up to
`BACKOFF_CAP`, and starts afresh once the process has stayed up `STABLE_SECONDS`.
`CRASH_LOOP_DEATHS` deaths within `CRASH_LOOP_SECONDS` are a crash loop: restarting again
would only hide a fault an operator must see, so `up` stops instead.
"""

from __future__ import annotations

import signal
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

BACKOFF_FIRST = 1.0  # seconds before the first restart
BACKOFF_CAP = 30.0  # the longest wait between restarts
STABLE_SECONDS = 60.0  # up this long, the next death waits BACKOFF_FIRST again
CRASH_LOOP_DEATHS = 5
CRASH_LOOP_SECONDS = 60.0


@dataclass(frozen=True)
class RestartPolicy:
    """The numbers above, as parameters (tests use small ones)."""

    first: float = BACKOFF_FIRST
    cap: float = BACKOFF_CAP
    stable: float = STABLE_SECONDS
    deaths: int = CRASH_LOOP_DEATHS
    window: float = CRASH_LOOP_SECONDS


def exit_text(returncode: int | None) -> str:
    """'exit code 1', 'signal SIGKILL', or 'exit' when the code is not ours to know (a
    broker node is not our child)."""
    if returncode is None:
        return "exit"
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def now_text() -> str:
    """Now, in UTC, to the second: how var/up.json and the supervision lines say when."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Child:
    """One supervised process: what var/up.json shows of it, and what its backoff needs.

    `up_since` and the deaths are monotonic seconds; `started` and the last exit's `at` are
    wall-clock UTC, for people."""

    pid: int | None = None
    restarts: int = 0
    started: str | None = None
    last_exit: dict[str, Any] | None = None
    up_since: float = 0.0
    delay: float = 0.0  # the last backoff used; 0 before any death
    restart_at: float | None = None  # when a dead process is due to start again
    deaths: deque[float] = field(default_factory=deque)
    exits: int = 0  # every death since it was first started (chaos tells expected ones apart)

    def started_now(self, pid: int | None, now: float) -> None:
        self.pid, self.started, self.up_since, self.restart_at = pid, now_text(), now, None

    def stopped(self) -> None:
        """Stopped on purpose: no death, nothing to restart."""
        self.pid, self.restart_at = None, None

    def died(self, returncode: int | None, now: float, policy: RestartPolicy,
             counts: bool = True) -> float:
        """Record a death and schedule the restart; the delay chosen. A death that does not
        count (the broker was down: not this process's fault) is no step to a crash loop."""
        code = signal_name = None
        if returncode is not None and returncode < 0:
            signal_name = exit_text(returncode).removeprefix("signal ")
        else:
            code = returncode
        self.exits += 1
        self.last_exit = {"code": code, "signal": signal_name, "at": now_text(),
                          "uptime_s": round(now - self.up_since, 1)}
        if counts:
            self.deaths.append(now)
        while self.deaths and self.deaths[0] < now - policy.window:
            self.deaths.popleft()
        stayed_up = now - self.up_since >= policy.stable
        self.delay = policy.first if stayed_up or not self.delay else min(
            policy.cap, self.delay * 2)
        self.pid, self.restart_at = None, now + self.delay
        return self.delay

    def crash_looping(self, policy: RestartPolicy) -> bool:
        return len(self.deaths) >= policy.deaths

    def state(self) -> dict[str, Any]:
        """This child as var/up.json keeps it."""
        return {"pid": self.pid, "restarts": self.restarts, "started": self.started,
                "last_exit": self.last_exit, "waiting": self.restart_at is not None}


def summary(child: dict[str, Any]) -> str:
    """A child of var/up.json in a few words, for `grassroots status`."""
    text = f"restarts {child.get('restarts', 0)}"
    last = child.get("last_exit")
    if last:
        how = f"signal {last['signal']}" if last.get("signal") else exit_text(last.get("code"))
        text += f", last exit {how} at {last['at']}"
    if child.get("waiting"):
        text += ", waiting to restart"
    return text
