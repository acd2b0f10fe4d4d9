"""Open311 GeoReport v2 (open311.py) in the gateway's OpenAPI document, generated from the
marshmallow schemas the cases service loads and answers with (services/cases/open311_schemas.py),
so the document, the checks and the answers are one contract and schemathesis fuzzes Open311
with the rest of the API.

OpenAPI has no notion of a format suffix, so each resource is one path per format
(`requests.json`, `requests.xml`), and each answer is declared with that format's content type.
An XML document is described with OpenAPI's `xml` names: the root element over its items.
"""

from __future__ import annotations

from typing import Any

from services.cases.open311_format import CONTENT_TYPES
from services.cases.open311_schemas import (
    DISCOVERY,
    ERRORS,
    POSTED,
    REQUESTS,
    SERVICES,
    EndpointSchema,
    JurisdictionSchema,
    PostRequestSchema,
    RequestsQuerySchema,
    Shape,
)
from services.gateway.open311 import FORM_TYPE, PREFIX, WRITERS

TAG = "open311"
# Component names, prefixed so that Open311's `Service` or `Error` is not taken for the API's.
COMPONENTS = {"Open311Endpoint": EndpointSchema, "Open311Discovery": DISCOVERY.schema,
              "Open311Service": SERVICES.schema, "Open311Request": REQUESTS.schema,
              "Open311PostedRequest": POSTED.schema, "Open311Error": ERRORS.schema,
              "Open311PostRequest": PostRequestSchema}
NAMES = {schema: name for name, schema in COMPONENTS.items()}
REFUSALS = {
    400: "a parameter is invalid: one error per field and reason",
    401: "no token, or an unknown, expired or revoked one (Bearer or api_key)",
    403: "the token's role may not post requests",
    404: "no such request, service_code or jurisdiction_id",
    409: "contradicts the case's state",
    413: "the form is larger than 1 MiB",
    415: f"the form is not sent as {FORM_TYPE}",
    422: "names what the district does not know (a unit)",
    503: "the cases service is unavailable; retry later (Retry-After)",
}
READS = (400, 404, 503)
POSTS = (400, 401, 403, 404, 409, 413, 415, 422, 503)


def _ref(schema: type, element: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"$ref": f"#/components/schemas/{NAMES[schema]}"}
    if element is not None:
        ref["xml"] = {"name": element}
    return ref


def _document(shape: Shape) -> dict[str, Any]:
    """A document's schema: JSON reads it as the items (or the one mapping), XML as the
    root element over them."""
    if shape.item is None:
        return _ref(shape.schema, shape.root)
    return {"type": "array", "items": _ref(shape.schema, shape.item),
            "xml": {"name": shape.root, "wrapped": True}}


def _content(fmt: str, shape: Shape) -> dict[str, Any]:
    media = CONTENT_TYPES[fmt].partition(";")[0]
    return {media: {"schema": _document(shape)}}


def _responses(fmt: str, status: int, shape: Shape, refusals: tuple[int, ...]) -> dict[str, Any]:
    responses: dict[str, Any] = {str(status): {"description": "OK",
                                               "content": _content(fmt, shape)}}
    for code in refusals:
        responses[str(code)] = {"description": REFUSALS[code],
                                "content": _content(fmt, ERRORS)}
    responses["431"] = "HeadersTooLarge"  # eventlet's limits, answered before any route
    return responses


def _read(fmt: str, name: str, summary: str, shape: Shape, query: type,
          path_param: str | None = None) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [{"in": "query", "schema": query}]
    if path_param is not None:
        parameters.insert(0, {"in": "path", "name": path_param, "required": True,
                              "schema": {"type": "string"}})
    return {"operationId": f"open311_{name}_{fmt}", "summary": summary,
            "description": "Allowed: public.", "tags": [TAG], "security": [],
            "parameters": parameters, "responses": _responses(fmt, 200, shape, READS)}


def _post(fmt: str) -> dict[str, Any]:
    return {
        "operationId": f"open311_post_request_{fmt}",
        "summary": "Report a difficulty: it is registered as a hotline case",
        "description": f"Allowed: {' or '.join(WRITERS)}, with `Authorization: Bearer` or the "
                       "form's `api_key`. The reporter's name, phone and email are kept as "
                       "the resident's personal data and never shown by Open311.",
        "tags": [TAG], "x-roles": list(WRITERS),
        "requestBody": {"required": True, "content": {FORM_TYPE: {
            "schema": _ref(PostRequestSchema)}}},
        "responses": _responses(fmt, 201, POSTED, POSTS),
    }


def paths() -> dict[str, dict[str, Any]]:
    """Every Open311 path and its operations (fresh dicts: apispec resolves them in place)."""
    found: dict[str, dict[str, Any]] = {}
    for fmt in CONTENT_TYPES:
        found[f"{PREFIX}/discovery.{fmt}"] = {"get": _read(
            fmt, "discovery", "Open311 discovery: the endpoint, its formats and contact",
            DISCOVERY, JurisdictionSchema)}
        found[f"{PREFIX}/services.{fmt}"] = {"get": _read(
            fmt, "services", "The case categories as Open311 services", SERVICES,
            JurisdictionSchema)}
        found[f"{PREFIX}/requests.{fmt}"] = {
            "get": _read(fmt, "requests", "Cases as Open311 service requests, newest first "
                                          "(the last 90 days unless dates are given)",
                         REQUESTS, RequestsQuerySchema),
            "post": _post(fmt),
        }
        found[f"{PREFIX}/requests/{{service_request_id}}.{fmt}"] = {"get": _read(
            fmt, "request", "One case as a list of one Open311 service request", REQUESTS,
            JurisdictionSchema, "service_request_id")}
    return found
