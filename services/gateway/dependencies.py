"""nameko dependency providers of the gateway: its token store and its deadlines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nameko.extensions import DependencyProvider

from shared.auth import TokenStore

HEALTH_TIMEOUT = 2.0  # seconds; /healthz must answer quickly even when a service hangs


@dataclass(frozen=True)
class Edge:
    tokens: TokenStore
    rpc_timeout: float
    health_timeout: float


class EdgeProvider(DependencyProvider):
    """One token store per container (config TOKENS_FILE; it reloads itself when the file
    changes) and the RPC deadlines (config RPC_TIMEOUT, HEALTH_TIMEOUT)."""

    def setup(self) -> None:
        config = self.container.config
        self.edge = Edge(
            tokens=TokenStore(config.get("TOKENS_FILE") or None),
            rpc_timeout=float(config.get("RPC_TIMEOUT") or 10),
            health_timeout=float(config.get("HEALTH_TIMEOUT") or HEALTH_TIMEOUT),
        )

    def get_dependency(self, worker_ctx: Any) -> Edge:
        return self.edge
