"""A service container whose graceful stop is bounded, so that SIGTERM ends a service in
seconds whatever its workers are waiting for (`shared.runtime.serve` runs every service in it).

nameko's container stops its entrypoints, then waits without limit for the workers still
running: a view's catch-up waiting on a log whose service had already stopped, or on a broker
that was gone, held the stop for its RPC timeout (30 s), longer than `grassroots up` waits.
Here a worker still running WORKER_GRACE seconds after the stop began is killed, and the stop
goes on as nameko's does: dependencies stopped (the relay releases its lease), then the rest.

Killing such a worker loses nothing anyone was told had happened. nameko acknowledges a message
(and sends an RPC reply) only after the method has returned, so the killed worker's message is
still unacknowledged and the broker delivers it again; its uncommitted transaction rolls back;
what it committed stays in the log, and doing it again changes nothing (a command carries its
command id, a view applies a position once).
"""

from __future__ import annotations

import logging

import eventlet
from nameko.containers import ServiceContainer

logger = logging.getLogger(__name__)
WORKER_GRACE = 3.0  # seconds a stopping service waits for its running workers
CLASS_PATH = f"{__name__}.PromptContainer"  # nameko's SERVICE_CONTAINER_CLS setting


class PromptContainer(ServiceContainer):
    """nameko's ServiceContainer, with running workers killed WORKER_GRACE s into a stop."""

    grace = WORKER_GRACE

    def stop(self) -> None:
        overrun = eventlet.spawn_after(self.grace, self._end_workers)
        try:
            super().stop()
        finally:
            overrun.cancel()

    def _end_workers(self) -> None:
        if self._worker_threads:
            logger.warning("%d worker(s) still running %gs into the stop: ended (what they "
                           "were handling is delivered again)", len(self._worker_threads),
                           self.grace)
            self._kill_worker_threads()
