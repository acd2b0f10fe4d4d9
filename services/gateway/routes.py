"""The API's routes in one table, gathered from what each service declares (its `api` table in
the catalogue, shared/runtime/catalogue.py) and the gateway's own: the entrypoints are
generated from it and OpenAPI too, so the document cannot drift from what the gateway serves,
and a new command or service adds no code here."""

from __future__ import annotations

from collections.abc import Iterable

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

from services.gateway.schemas import HealthSchema
from shared.runtime import catalogue
from shared.runtime.declare import API, PARAM, Route

__all__ = ["API", "PARAM", "ROUTES", "Route", "collect", "unmatched"]

# The gateway's own routes: answered at the edge, no service behind them.
OWN = (
    Route("openapi", "GET", "/openapi.json", "This document", "public", "operations",
          public=True),
    Route("healthz", "GET", "/healthz", "Is every service answering?", "public", "operations",
          response=HealthSchema, public=True, prefix=""),
)


def collect(services: Iterable[catalogue.Service] = catalogue.SERVICES,
            own: Iterable[Route] = OWN) -> dict[str, Route]:
    """Every route by name: the services' (in catalogue order), then the gateway's own. Two
    routes with one name, or one method and path, are a mistake in a table: refused here."""
    routes: dict[str, Route] = {}
    seen: dict[tuple[str, str], str] = {}
    for route in (*(r for s in services for r in s.routes()), *own):
        where = (route.method, route.url)
        if route.name in routes or where in seen:
            raise ValueError(f"route {route.name} ({route.method} {route.url}) is declared twice")
        routes[route.name], seen[where] = route, route.name
    return routes


ROUTES: dict[str, Route] = collect()
_MAP = Map([Rule(route.rule, methods=[route.method], endpoint=route.name)
            for route in ROUTES.values()])


def unmatched(method: str, path: str) -> tuple[int, dict[str, list[str]], list[str]]:
    """Status, errors and allowed methods for a request no route took: 405 or 404."""
    try:
        _MAP.bind("localhost").match(path, method)
    except MethodNotAllowed as exc:
        allowed = sorted(exc.valid_methods or [])
        return 405, {"method": [f"{method} not allowed here; use {', '.join(allowed)}"]}, allowed
    except NotFound:
        pass
    return 404, {"path": [f"no such endpoint: {method} {path}"]}, []
