"""nameko dependency providers of the gateway: its token store, its idempotency keys, its
deadlines and a check of its broker."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nameko.extensions import DependencyProvider

from services.gateway.idempotency import IdempotencyStore
from shared.runtime.auth import TokenStore
from shared.runtime.rpc import broker_reachable

HEALTH_TIMEOUT = 2.0  # seconds; /healthz must answer quickly even when a service hangs
KEYS_URL = "sqlite:///var/gateway.db"
KEY_WINDOW = 86400.0  # seconds an Idempotency-Key is remembered (the draft asks for a policy)


@dataclass(frozen=True)
class Edge:
    tokens: TokenStore
    rpc_timeout: float
    health_timeout: float
    keys: IdempotencyStore
    broker: Callable[[], bool]  # does the broker answer (for /healthz)


class EdgeProvider(DependencyProvider):
    """One token store per container (config TOKENS_FILE; it reloads itself when the file
    changes), the RPC deadlines (config RPC_TIMEOUT, HEALTH_TIMEOUT), the idempotency keys
    (config IDEMPOTENCY_DATABASE_URL, IDEMPOTENCY_WINDOW_SECONDS) and a login to the broker
    (config AMQP_URI) that /healthz tries.

    A key's claim is leased for twice the RPC deadline and a margin: a write holds it for one
    RPC, so a claim older than that belongs to a gateway that died mid-request."""

    def setup(self) -> None:
        config = self.container.config
        rpc_timeout = float(config.get("RPC_TIMEOUT") or 10)
        health_timeout = float(config.get("HEALTH_TIMEOUT") or HEALTH_TIMEOUT)
        self.edge = Edge(
            tokens=TokenStore(config.get("TOKENS_FILE") or None),
            rpc_timeout=rpc_timeout,
            health_timeout=health_timeout,
            keys=IdempotencyStore.open(
                config.get("IDEMPOTENCY_DATABASE_URL") or KEYS_URL,
                window=float(config.get("IDEMPOTENCY_WINDOW_SECONDS") or KEY_WINDOW),
                lease=2 * rpc_timeout + 5),
            broker=functools.partial(broker_reachable, config["AMQP_URI"], health_timeout),
        )

    def stop(self) -> None:
        self.edge.keys.close()

    def get_dependency(self, worker_ctx: Any) -> Edge:
        return self.edge
