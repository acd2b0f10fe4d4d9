"""RPC from outside a service's own entrypoints (CLI, demo, tests, and a service reading
another's log): a nameko cluster proxy with a timeout, a pool of them kept between calls, and
whether the broker answers at all."""

from __future__ import annotations

import contextlib
import logging
import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from amqp.abstract_channel import IGNORED_METHOD_DURING_CHANNEL_CLOSE
from amqp.spec import Basic
from kombu import Connection
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from shared.kernel.errors import DomainError
from shared.runtime import wire
from shared.runtime.survive import BROKER_ERRORS


class _LateConfirm(logging.Filter):
    """Drops py-amqp's warning that a publisher confirm (Basic.Ack, 60/80) reached a channel
    it was closing, which py-amqp then ignores, as it says. A call to a service that is not
    up (`grassroots status` while one starts or is down) gets its message back unroutable:
    the proxy raises UnknownService and closes the channel, and the broker's confirm of that
    message arrives after. The caller's own error says what happened; the warning only
    alarmed whoever read it (once per call to a missing service)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == IGNORED_METHOD_DURING_CHANNEL_CLOSE
                    and isinstance(record.args, tuple) and record.args[:1] == (Basic.Ack,))


logging.getLogger("amqp").addFilter(_LateConfirm())


def _config(amqp_uri: str) -> dict[str, Any]:
    wire.register()
    return {"AMQP_URI": amqp_uri, "serializer": "json", "ACCEPT": ["json", wire.SERIALIZER]}


@contextmanager
def cluster(amqp_uri: str, timeout: float = 10.0) -> Iterator[Any]:
    """A proxy for a few calls, closed after them (its reply queue expires 5 minutes later)."""
    with ClusterRpcProxy(_config(amqp_uri), timeout=timeout) as proxy:
        yield proxy


ANSWERED = (RemoteError, DomainError)  # errors a reply carried: the proxy is sound


class ProxyPool:
    """Started cluster proxies kept between calls, one per caller at a time.

    A standalone proxy declares, binds and consumes its own reply queue when it starts, and
    the queue outlives it by RabbitMQ's 5-minute expiry. A service that opened one per call
    (a view's catch-up, the cases intake reading visits) made the broker create a queue
    and a binding for each: about nine a second under a 39-visits/s load, 2,700 idle queues
    alive at once, and the broker's CPU with them. A pooled proxy keeps its queue.

    A proxy goes back to the pool only after a call that ended normally or with the remote
    service's own error (`ANSWERED`); after anything else (a broker error, a timeout, whose
    late reply would otherwise sit in its queue) it is closed. One taken from the pool whose
    socket has anything to read is closed too: an idle proxy (no heartbeats) has nothing to
    read unless the broker closed its connection (restarted, or the connection was cut), and
    a reply sent to a queue the broker has since forgotten would never come.
    """

    def __init__(self, amqp_uri: str, timeout: float, size: int = 4) -> None:
        self.amqp_uri, self.timeout, self.size = amqp_uri, timeout, size
        self._idle: list[ClusterRpcProxy] = []
        self._lock = threading.Lock()

    @contextmanager
    def proxy(self) -> Iterator[Any]:
        """A started cluster proxy for the caller's calls, returned to the pool after them."""
        held = self._take()
        try:
            yield held._proxy
        except ANSWERED:
            self._give_back(held)
            raise
        except BaseException:
            _close(held)
            raise
        self._give_back(held)

    def clear(self) -> None:
        """Close every idle proxy (after the broker went away: theirs went with it)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for held in idle:
            _close(held)

    def _take(self) -> ClusterRpcProxy:
        while True:
            with self._lock:
                held = self._idle.pop() if self._idle else None
            if held is None:
                started = ClusterRpcProxy(_config(self.amqp_uri), timeout=self.timeout)
                started.start()
                return started
            if _quiet(held):
                return held
            _close(held)

    def _give_back(self, held: ClusterRpcProxy) -> None:
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(held)
                return
        _close(held)


def _quiet(held: ClusterRpcProxy) -> bool:
    """Whether an idle proxy's connection has nothing to read (a closed one reads as EOF)."""
    try:
        sock = held._reply_listener.queue_consumer.connection.connection.sock
        return sock is not None and not select.select([sock], [], [], 0)[0]
    except (AttributeError, OSError, ValueError):
        return False


def _close(held: ClusterRpcProxy) -> None:
    with contextlib.suppress(Exception):  # a dead connection closes with an error; closed
        held.stop()


def broker_reachable(amqp_uri: str, timeout: float = 2.0) -> bool:
    """True when the broker completes a login at `amqp_uri` within `timeout` seconds (a TCP
    connect alone would not show that it is ready)."""
    with Connection(amqp_uri, connect_timeout=timeout) as conn:
        try:
            conn.ensure_connection(max_retries=0, timeout=timeout)
        except BROKER_ERRORS:
            return False
        return True
