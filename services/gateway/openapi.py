"""OpenAPI 3.1 for the gateway, generated once from the routes the services declare (each
operation says who is allowed, and its roles) and their marshmallow schemas, so the document is
exactly what the edge validates; Open311 GeoReport v2 too, from its own schemas
(open311_openapi.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin, resolver
from apispec.ext.marshmallow.common import resolve_schema_cls

from services.cases.open311_schemas import CommaList
from services.gateway import open311_openapi
from services.gateway.routes import ROUTES, Route
from services.visits.schemas import ErrorSchema

TITLE = "Grassroots API"
VERSION = "1.0.0"
# Error responses, shared as components: status -> (component name, description).
ERRORS = {
    400: ("BadRequest", "invalid request: the fields named; nothing was recorded"),
    401: ("Unauthorized", "missing or unknown bearer token"),
    403: ("Forbidden", "the token's role or binding does not allow this"),
    404: ("NotFound", "no such resource"),
    409: ("Conflict", "contradicts the current state (e.g. a retracted visit), or the first "
                      "request with this Idempotency-Key is still in progress"),
    413: ("TooLarge", "body too large"),
    415: ("UnsupportedMediaType", "the body is not sent as application/json (UTF-8)"),
    422: ("UnknownReference", "names a unit or cadre that is not on the roster, or reuses an "
                              "Idempotency-Key for a different request"),
    431: ("HeadersTooLarge", "a header line over 8 KiB, headers over 64 KiB, or over 100 headers"),
    500: ("InternalError", "internal error (details only in the service log)"),
    503: ("Unavailable", "a service is not running"),
    504: ("Timeout", "a service did not answer in time; retrying with the same "
                     "Idempotency-Key is safe"),
}
KEY_DESCRIPTION = (
    "A key of the client's choosing (a UUID, say; a Structured Field string, quoted, or bare) "
    "that makes the write safe to retry (IETF draft-ietf-httpapi-idempotency-key-header). The "
    "same request (method, path, JSON body) with the same key, from the same caller, within "
    "24 hours (by default) of its first use, gets the first successful answer again and "
    "writes nothing. The same key with a different request: 422. While the first is still "
    "in progress: 409. After a 503/504 a retry with the key completes the write at most "
    "once. Only successful answers are kept: after a 4xx the key is free for the corrected "
    "request. Without a key every request is a new write."
)
DESCRIPTION = (
    "Cadres' grassroots visits and the monthly compliance view. Authenticate with "
    "`Authorization: Bearer <token>` (`grassroots token create --role ROLE`). Every error is "
    '`{"errors": {field: [reasons]}}`. A write sent with an `Idempotency-Key` header can be '
    "retried safely for 24 hours (by default): the same request with the same key gets the "
    "first answer. Open311 GeoReport v2 is served under /open311/v2 (tag `open311`): its "
    "reads are public, its errors are the spec's `code`/`description` lists."
)


def _error_statuses(route: Route) -> list[int]:
    statuses = {431}  # eventlet's limits on headers, answered before any route
    if route.request or route.query or route.params:
        statuses.add(400)  # path values and query parameters are checked for NUL too
    if route.request:
        statuses |= {409, 413, 415, 422}
    if not route.public:
        statuses |= {401, 403, 500}
    if route.params:
        statuses.add(404)
    if route.rpc and not route.public:
        statuses |= {503, 504}
    return sorted(statuses)


def _json(schema: Any) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "description": f"Allowed: {route.allowed}.",
        "tags": [route.tag],
        "parameters": [
            {"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
            for name in route.params
        ],
        "responses": {},
    }
    if route.deprecated:
        op["deprecated"] = True
    if route.query is not None:
        op["parameters"].append({"in": "query", "schema": route.query})
    if route.request is not None:
        op["requestBody"] = {"required": True, "content": _json(route.request)}
        op["parameters"].append({
            "in": "header", "name": "Idempotency-Key", "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": KEY_DESCRIPTION,
        })
    if route.public:
        op["security"] = []
    else:
        op["x-roles"] = list(route.roles)  # the edge's first filter; the service decides more
    body: Any = {"type": "object"} if route.response is None else route.response
    op["responses"][str(route.status)] = {"description": "OK", "content": _json(body)}
    if route.name == "healthz":
        op["responses"]["503"] = {"description": "a service is down", "content": _json(body)}
    for status in _error_statuses(route):
        op["responses"][str(status)] = ERRORS[status][0]  # apispec makes it a $ref
    if not op["parameters"]:
        del op["parameters"]
    return op


def _names() -> Any:
    """apispec's schema names (the class name without "Schema"), except that a service's
    schema whose name another class took first gets the service's name before it (cases'
    `Place` becomes `CasesPlace`): stable, since routes come in catalogue order."""
    taken: dict[str, type] = {}

    def name(schema: Any) -> str:
        cls: Any = resolve_schema_cls(schema)
        base = resolver(cls)
        if taken.setdefault(base, cls) is cls:
            return base
        parts = cls.__module__.split(".")
        owner = parts[1].capitalize() if parts[0] == "services" and len(parts) > 1 else ""
        return name_for(f"{owner}{base}", cls)

    def name_for(candidate: str, cls: type) -> str:
        if taken.setdefault(candidate, cls) is cls:
            return candidate
        return name_for(candidate + "_", cls)

    return name


def build_spec(routes: Iterable[Route] | None = None) -> dict[str, Any]:
    """The OpenAPI document of these routes (by default every route served) as a dict."""
    plugin = MarshmallowPlugin(schema_name_resolver=_names())
    spec = APISpec(
        title=TITLE, version=VERSION, openapi_version="3.1.0", plugins=[plugin],
        info={"description": DESCRIPTION},
        security=[{"bearerAuth": []}],
    )
    spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "description": "an API token"}
    )
    plugin.map_to_openapi_type(CommaList, "string", None)  # `a,b,c`: text on the wire
    spec.components.schema("Error", schema=ErrorSchema)
    for component, schema in open311_openapi.COMPONENTS.items():
        spec.components.schema(component, schema=schema)
    for name, description in ERRORS.values():
        spec.components.response(name, {"description": description,
                                        "content": _json("Error")})
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES.values() if routes is None else routes:
        paths.setdefault(route.url, {})[route.method.lower()] = _operation(route)
    for url, operations in {**paths, **open311_openapi.paths()}.items():
        spec.path(path=url, operations=operations)
    return spec.to_dict()


SPEC = build_spec()
