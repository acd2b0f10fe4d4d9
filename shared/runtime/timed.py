"""The nameko side of time-driven commands (shared/kernel/timed.py): a tick and a clock.

`every("SETTING", default)` is nameko's timer with its interval read from the service's
config, so operators (and tests) set how often rules are evaluated without code. `ClockProvider`
gives workers the clock; a test swaps in a `ManualClock` with nameko's `replace_dependencies`.
Every replica ticks: the log, not a leader, keeps a due command from being appended twice.

Every timer of the project is a `Tick`: nameko's timer, except that stopping it does not wait
for the tick in flight. nameko's waits, and a container waits for all its entrypoints to stop
before anything else: a tick reading a log that had gone away (a view's catch-up, the cases
intake) held the whole service's stop for its RPC timeout. The tick in flight is then one
more running worker, which the container waits for within its bound (shared/runtime/stopping.py).
"""

from __future__ import annotations

from typing import Any

from nameko.extensions import DependencyProvider
from nameko.timer import Timer

from shared.kernel.timed import Clock, SystemClock


class Tick(Timer):
    """A timer whose stop ends the ticking at once, leaving a tick in flight to the container."""

    def stop(self) -> None:
        self.should_stop.send(True)
        self.gt.kill()  # its loop only waits: on the interval or on the worker's result


tick = Tick.decorator


class Every(Tick):
    """A timer whose interval (seconds) is the config value `setting`, else `default`."""

    def __init__(self, setting: str, default: float, **kwargs: Any) -> None:
        super().__init__(interval=default, **kwargs)
        self.setting = setting

    def setup(self) -> None:
        value = self.container.config.get(self.setting)
        if value not in (None, ""):
            self.interval = float(value)


every = Every.decorator


class ClockProvider(DependencyProvider):
    """The system clock, shared by a service's workers."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()

    def get_dependency(self, worker_ctx: Any) -> Clock:
        return self.clock
