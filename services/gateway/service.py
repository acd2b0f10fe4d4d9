"""The gateway: the HTTP API in front of the services (nameko @http).

Entrypoints only: each binds a route of routes.ROUTES to its function in handlers.py; http.py
turns every outcome into JSON, and web.py what no route takes or the HTTP parser refuses.
Writes go to the visits service over RPC, reads to the service that owns them; the gateway
keeps only the answers to writes sent with an Idempotency-Key (idempotency.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

from nameko.rpc import RpcProxy
from werkzeug.wrappers import Request, Response

from services.gateway import handlers
from services.gateway.dependencies import Edge, EdgeProvider
from services.gateway.http import Remote, serve
from services.gateway.idempotency import settle
from services.gateway.routes import ROUTES, at
from services.gateway.web import http
from shared.campaign.policy import Policy
from shared.runtime.providers import PolicyProvider, TrustProvider
from shared.runtime.trust import Signer


class GatewayService:
    name = "gateway"

    edge: Edge = EdgeProvider()
    visits = RpcProxy("visits")
    compliance = RpcProxy("compliance")
    trust: Signer = TrustProvider()
    policy: Policy = PolicyProvider()

    def _serve(self, name: str, request: Request, **params: str) -> Response:
        timeout = self.edge.rpc_timeout
        response = serve(
            request, getattr(handlers, name), tokens=self.edge.tokens,
            visits=Remote(self.visits, "visits", timeout),
            compliance=Remote(self.compliance, "compliance", timeout),
            params=params, public=ROUTES[name].public, health_timeout=self.edge.health_timeout,
            keys=self.edge.keys, signer=self.trust,
            today=self.policy.local_date(datetime.now(UTC)),
        )
        settle(self.edge.keys, request, response)  # keep, release or hold the request's key
        return response

    @http(*at("register_unit"))
    def register_unit(self, request: Request) -> Response:
        return self._serve("register_unit", request)

    @http(*at("set_unit_day"))
    def set_unit_day(self, request: Request, unit_id: str) -> Response:
        return self._serve("set_unit_day", request, unit_id=unit_id)

    @http(*at("enrol_cadre"))
    def enrol_cadre(self, request: Request) -> Response:
        return self._serve("enrol_cadre", request)

    @http(*at("get_cadre"))
    def get_cadre(self, request: Request, cadre_id: str) -> Response:
        return self._serve("get_cadre", request, cadre_id=cadre_id)

    @http(*at("transfer_cadre"))
    def transfer_cadre(self, request: Request, cadre_id: str) -> Response:
        return self._serve("transfer_cadre", request, cadre_id=cadre_id)

    @http(*at("grant_leave"))
    def grant_leave(self, request: Request, cadre_id: str) -> Response:
        return self._serve("grant_leave", request, cadre_id=cadre_id)

    @http(*at("remove_cadre"))
    def remove_cadre(self, request: Request, cadre_id: str) -> Response:
        return self._serve("remove_cadre", request, cadre_id=cadre_id)

    @http(*at("record_visit"))
    def record_visit(self, request: Request) -> Response:
        return self._serve("record_visit", request)

    @http(*at("confirm_participation"))
    def confirm_participation(self, request: Request, visit_id: str) -> Response:
        return self._serve("confirm_participation", request, visit_id=visit_id)

    @http(*at("withdraw_participation"))
    def withdraw_participation(self, request: Request, visit_id: str) -> Response:
        return self._serve("withdraw_participation", request, visit_id=visit_id)

    @http(*at("get_visit"))
    def get_visit(self, request: Request, visit_id: str) -> Response:
        return self._serve("get_visit", request, visit_id=visit_id)

    @http(*at("correct_visit"))
    def correct_visit(self, request: Request, visit_id: str) -> Response:
        return self._serve("correct_visit", request, visit_id=visit_id)

    @http(*at("retract_visit"))
    def retract_visit(self, request: Request, visit_id: str) -> Response:
        return self._serve("retract_visit", request, visit_id=visit_id)

    @http(*at("compliance"))
    def compliance_report(self, request: Request) -> Response:
        return self._serve("compliance", request)

    @http(*at("openapi"))
    def openapi(self, request: Request) -> Response:
        return self._serve("openapi", request)

    @http(*at("healthz"))
    def healthz(self, request: Request) -> Response:
        return self._serve("healthz", request)
