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
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from amqp.exceptions import AMQPError
from kombu.exceptions import KombuError
from nameko.messaging import QueueConsumer
from nameko.rpc import RpcConsumer

logger = logging.getLogger(__name__)

# What a lost or refused broker connection raises: the socket's errors (timeouts included),
# amqp's and kombu's.
BROKER_ERRORS: tuple[type[BaseException], ...] = (OSError, AMQPError, KombuError)
RECONNECT_MAX = 5.0  # seconds between a consumer's attempts to reach the broker, at most


@contextmanager
def _establish_connection(self: QueueConsumer) -> Iterator[Any]:
    """kombu's ConsumerMixin.establish_connection, on a shorter retry schedule."""
    with self.create_connection() as conn:
        conn.ensure_connection(self.on_connection_error, self.connect_max_retries,
                               interval_start=0.5, interval_step=0.5,
                               interval_max=RECONNECT_MAX)
        yield conn


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
    QueueConsumer.ack_message = _ack_message
    QueueConsumer.requeue_message = _requeue_message
    RpcConsumer.handle_result = _handle_result
