"""The gateway: the HTTP API in front of the services (nameko @http).

Entrypoints only: each binds a route of routes.ROUTES to its function in handlers.py; http.py
turns every outcome into JSON. Nothing is stored here: writes go to the visits service over
RPC, reads to the service that owns them.
"""

from __future__ import annotations

from nameko.rpc import RpcProxy
from nameko.web.handlers import http
from werkzeug.wrappers import Request, Response

from services.gateway import handlers
from services.gateway.dependencies import Edge, EdgeProvider
from services.gateway.http import Remote, error_response, serve
from services.gateway.routes import ROUTES, at, unmatched

ALL_METHODS = "GET,POST,PUT,PATCH,DELETE,OPTIONS"


class GatewayService:
    name = "gateway"

    edge: Edge = EdgeProvider()
    visits = RpcProxy("visits")
    compliance = RpcProxy("compliance")

    def _serve(self, name: str, request: Request, **params: str) -> Response:
        timeout = self.edge.rpc_timeout
        return serve(
            request, getattr(handlers, name), tokens=self.edge.tokens,
            visits=Remote(self.visits, "visits", timeout),
            compliance=Remote(self.compliance, "compliance", timeout),
            params=params, public=ROUTES[name].public, health_timeout=self.edge.health_timeout,
        )

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

    @http(ALL_METHODS, "/<path:path>")
    def unmatched(self, request: Request, path: str) -> Response:
        """Anything no route took: a JSON 404, or 405 when the path exists for other methods."""
        status, errors, allowed = unmatched(request.method, request.path)
        return error_response(status, errors, {"Allow": ", ".join(allowed)} if allowed else None)
