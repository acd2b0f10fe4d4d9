"""RPC from outside the services (CLI, demo, tests): a nameko cluster proxy with a timeout;
and whether the broker answers at all."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu import Connection
from nameko.standalone.rpc import ClusterRpcProxy

from shared.runtime import wire
from shared.runtime.survive import BROKER_ERRORS


@contextmanager
def cluster(amqp_uri: str, timeout: float = 10.0) -> Iterator[Any]:
    wire.register()
    config = {"AMQP_URI": amqp_uri, "serializer": "json", "ACCEPT": ["json", wire.SERIALIZER]}
    with ClusterRpcProxy(config, timeout=timeout) as proxy:
        yield proxy


def broker_reachable(amqp_uri: str, timeout: float = 2.0) -> bool:
    """True when the broker completes a login at `amqp_uri` within `timeout` seconds (a TCP
    connect alone would not show that it is ready)."""
    with Connection(amqp_uri, connect_timeout=timeout) as conn:
        try:
            conn.ensure_connection(max_retries=0, timeout=timeout)
        except BROKER_ERRORS:
            return False
        return True
