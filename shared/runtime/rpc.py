"""RPC from outside the services (CLI, demo, tests): a nameko cluster proxy with a timeout."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nameko.standalone.rpc import ClusterRpcProxy

from shared.runtime import wire


@contextmanager
def cluster(amqp_uri: str, timeout: float = 10.0) -> Iterator[Any]:
    wire.register()
    config = {"AMQP_URI": amqp_uri, "serializer": "json", "ACCEPT": ["json", wire.SERIALIZER]}
    with ClusterRpcProxy(config, timeout=timeout) as proxy:
        yield proxy
