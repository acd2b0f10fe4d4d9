"""The gateway: the HTTP API in front of the services (nameko @http).

Its entrypoints are generated: one per route the services declare (routes.ROUTES, gathered
through the catalogue), each serving the route's handler (handlers.py), and one RPC proxy per
service in the catalogue. http.py turns every outcome into JSON, and web.py what no route takes
or the HTTP parser refuses. The gateway keeps only the answers to writes sent with an
Idempotency-Key (idempotency.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar

from nameko.rpc import RpcProxy
from werkzeug.wrappers import Request, Response

from services.gateway import handlers, open311
from services.gateway.dependencies import Edge, EdgeProvider
from services.gateway.http import Remote, serve
from services.gateway.idempotency import settle
from services.gateway.routes import ROUTES, Route
from services.gateway.web import http
from shared.campaign.policy import Policy
from shared.runtime import catalogue
from shared.runtime.providers import PolicyProvider, TrustProvider
from shared.runtime.trust import Signer

PROXY = "rpc_{}"  # the attribute holding a service's RPC proxy
# A request the broker cannot take is refused within about a second (503), not after kombu's
# default of three tries 2, 4 and 6 seconds apart, which outlasts the RPC deadline.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.3,
                 "interval_max": 0.5}


class GatewayService:
    name = "gateway"
    routes: ClassVar[dict[str, Route]] = {}
    targets: ClassVar[tuple[str, ...]] = ()

    edge: Edge = EdgeProvider()
    trust: Signer = TrustProvider()
    policy: Policy = PolicyProvider()

    def _serve(self, name: str, request: Request, **params: str) -> Response:
        route, timeout = self.routes[name], self.edge.rpc_timeout
        response = serve(
            request, handlers.handler(route), tokens=self.edge.tokens,
            remotes={target: Remote(getattr(self, PROXY.format(target)), target, timeout)
                     for target in self.targets},
            params=params, public=route.public, health_timeout=self.edge.health_timeout,
            keys=self.edge.keys, signer=self.trust, broker=self.edge.broker,
            today=self.policy.local_date(datetime.now(UTC)),
        )
        settle(self.edge.keys, request, response)  # keep, release or hold the request's key
        return response


def _entrypoint(route: Route) -> Any:
    def entrypoint(self: GatewayService, request: Request, **params: str) -> Response:
        return self._serve(route.name, request, **params)

    entrypoint.__name__ = entrypoint.__qualname__ = route.name
    entrypoint.__doc__ = f"{route.method} {route.url}: {route.summary}."
    return http(route.method, route.rule)(entrypoint)


def install(cls: type[GatewayService], routes: Iterable[Route],
            targets: Iterable[str]) -> None:
    """Give the gateway class an @http entrypoint per route and an RPC proxy per service
    (nameko collects both from class attributes when a container is made)."""
    cls.routes = {**cls.routes, **{route.name: route for route in routes}}
    cls.targets = tuple(dict.fromkeys((*cls.targets, *targets)))
    for route in cls.routes.values():
        taken = getattr(cls, route.name, None)
        if taken is not None and not hasattr(taken, "nameko_entrypoints"):
            raise ValueError(f"route {route.name} would replace GatewayService.{route.name}")
        setattr(cls, route.name, _entrypoint(route))
    for target in cls.targets:
        setattr(cls, PROXY.format(target), RpcProxy(target, retry_policy=PUBLISH_RETRY))


install(GatewayService, ROUTES.values(), catalogue.names("write", "view"))
open311.install(GatewayService)
