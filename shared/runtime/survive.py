"""What nameko 2.14 (its last release) does wrong when the broker goes away, put right.

nameko's consumers reconnect by themselves (kombu's ConsumerMixin retries forever), but a
worker that finishes while the connection is down still acks its message and publishes its RPC
reply on it. The ack only tolerates amqp's own ConnectionError, not the socket's
(`ConnectionResetError`, `BrokenPipeError`), and a reply that cannot be published raises; both
raise in the worker's thread, which nameko takes as fatal: the whole service process exits.

Neither needs the process to die. A message that was not acked is redelivered by the broker
once it is back (delivery is at least once: commands carry their command id, events are applied
idempotently); a reply that is lost leaves the caller to its deadline (the gateway answers 504,
and a retry with the same Idempotency-Key sends the same command id). `install()` makes nameko
log these and carry on; `shared.runtime.serve` calls it before running any service.

It also shortens the consumers' reconnect schedule: kombu's default waits 2, 4, 6 ... up to
30 s between attempts, so a service could sit idle half a minute after the broker was back.
Attempts here wait 0.5 s, then 1, 1.5 ... up to RECONNECT_MAX seconds.

And a consumer waiting for the broker lets the service stop. nameko stops an entrypoint by
asking the consumer's own thread to cancel its queue, and that thread answers only between
messages: while it retries the broker it never does, so SIGTERM waited for a broker that might
never come back (the service was killed after `grassroots up`'s grace). Here, each second of
the retry lets go of the queues asked to stop (their channel died with the connection: there
is nothing to cancel, and any message not acked is the broker's again), and once none is left,
or the consumer is killed, the retry ends and the consumer with it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from amqp.exceptions import AMQPError
from kombu.exceptions import KombuError
from kombu.mixins import ConsumerMixin
from nameko.messaging import QueueConsumer
from nameko.rpc import RpcConsumer

logger = logging.getLogger(__name__)

# What a lost or refused broker connection raises: the socket's errors (timeouts included),
# amqp's and kombu's.
BROKER_ERRORS: tuple[type[BaseException], ...] = (OSError, AMQPError, KombuError)
RECONNECT_MAX = 5.0  # seconds between a consumer's attempts to reach the broker, at most


class _StoppedWaiting(Exception):
    """The consumer was stopped while it waited for the broker."""


@contextmanager
def _establish_connection(self: QueueConsumer) -> Iterator[Any]:
    """kombu's ConsumerMixin.establish_connection, on a shorter retry schedule, which
    stops retrying once the consumer is stopped (`_while_away`)."""
    with self.create_connection() as conn:
        conn.ensure_connection(self.on_connection_error, self.connect_max_retries,
                               interval_start=0.5, interval_step=0.5,
                               interval_max=RECONNECT_MAX,
                               callback=lambda: _while_away(self))
        yield conn


def _while_away(self: QueueConsumer) -> None:
    """kombu calls this at each retry and each second between them: release the queues
    whose entrypoints stopped meanwhile, and end the wait when none is left."""
    pending, self._pending_remove_providers = self._pending_remove_providers, {}
    for provider, removed in pending.items():
        self._consumers.pop(provider, None)
        removed.send()
    if self.should_stop or (pending and not self._consumers):
        self.should_stop = True
        raise _StoppedWaiting


def _run(self: QueueConsumer) -> None:
    """The consumer's thread: kombu's loop, ended quietly when stopped while away."""
    try:
        ConsumerMixin.run(self)
    except _StoppedWaiting:
        logger.info("consumer stopped while the broker was unreachable")


def _settle(message: Any, how: str) -> None:
    """Ack or requeue, unless the connection the message came on is gone (the broker then
    has it back already, and redelivers it)."""
    if not message.channel.connection:
        return
    try:
        getattr(message, how)()
    except BROKER_ERRORS as exc:
        logger.warning("could not %s a message (%s): the broker redelivers it", how, exc)


def _ack_message(_self: QueueConsumer, message: Any) -> None:
    _settle(message, "ack")


def _requeue_message(_self: QueueConsumer, message: Any) -> None:
    _settle(message, "requeue")


_send_and_ack = RpcConsumer.handle_result


def _handle_result(self: RpcConsumer, message: Any, result: Any,
                   exc_info: Any) -> tuple[Any, Any]:
    """Reply and ack; a reply the broker cannot take is logged, and the message left unacked
    (redelivered when the broker is back; the command id makes the rerun harmless)."""
    try:
        return _send_and_ack(self, message, result, exc_info)
    except BROKER_ERRORS as exc:
        logger.warning("RPC reply lost, the broker is unreachable (%s)", exc)
        return result, exc_info


def install() -> None:
    """Patch nameko's queue consumer and RPC consumer (idempotent)."""
    QueueConsumer.establish_connection = _establish_connection
    QueueConsumer.run = _run
    QueueConsumer.ack_message = _ack_message
    QueueConsumer.requeue_message = _requeue_message
    RpcConsumer.handle_result = _handle_result
