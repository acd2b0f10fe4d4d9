"""The OpenAPI document: 3.1, every route the gateway serves, schemas from marshmallow."""

import json
import re

import pytest
from marshmallow import Schema, fields
from nameko.rpc import RpcProxy
from openapi_spec_validator import validate
from werkzeug.routing import Map, Rule
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway import handlers, routes
from services.gateway.http import Call, Denied, Remote
from services.gateway.openapi import SPEC, build_spec
from services.gateway.service import GatewayService, install
from services.visits.schemas import AcceptedSchema
from shared.runtime import catalogue, declare
from shared.runtime.auth import Principal
from shared.runtime.trust import Signer, generate_key

EXPECTED = {
    ("post", "/api/v1/units"), ("post", "/api/v1/units/{unit_id}/unit-day"),
    ("post", "/api/v1/cadres"), ("get", "/api/v1/cadres/{cadre_id}"),
    ("post", "/api/v1/cadres/{cadre_id}/transfer"), ("post", "/api/v1/cadres/{cadre_id}/leave"),
    ("post", "/api/v1/cadres/{cadre_id}/removal"), ("post", "/api/v1/cadres/{cadre_id}/leaving"),
    ("post", "/api/v1/visits"),
    ("get", "/api/v1/visits/{visit_id}"), ("post", "/api/v1/visits/{visit_id}/corrections"),
    ("post", "/api/v1/visits/{visit_id}/retraction"),
    ("post", "/api/v1/visits/{visit_id}/confirmation"),
    ("post", "/api/v1/visits/{visit_id}/withdrawal"), ("get", "/api/v1/compliance"),
    ("get", "/api/v1/openapi.json"), ("get", "/healthz"),
    ("post", "/api/v1/cases"), ("get", "/api/v1/cases"), ("get", "/api/v1/cases/{case_id}"),
    ("get", "/api/v1/cases/{case_id}/timeline"), ("get", "/api/v1/case-board"),
    *(("post", f"/api/v1/cases/{{case_id}}/{action}") for action in (
        "assign", "accept", "return", "progress", "extension-requests", "extension-decisions",
        "resolve", "callback", "reopen", "close", "park")),
}
OPEN311 = {
    (method, f"/open311/v2/{resource}.{fmt}") for fmt in ("json", "xml")
    for method, resource in (("get", "discovery"), ("get", "services"), ("get", "requests"),
                             ("post", "requests"), ("get", "requests/{service_request_id}"))
}
METHODS = {"get", "post", "put", "patch", "delete"}


def operations(spec=SPEC, open311=False):
    """The JSON API's operations (or, with `open311`, Open311's)."""
    for path, item in spec["paths"].items():
        if path.startswith("/open311/") != open311:
            continue
        for method, op in item.items():
            if method in METHODS:
                yield method, path, op


def served_routes():
    """(method, OpenAPI path) of every @http entrypoint of the gateway, but the catch-all and
    Open311 (whose paths are per format: test_open311_operations_are_served)."""
    found = set()
    for attr in vars(GatewayService).values():
        for entrypoint in getattr(attr, "nameko_entrypoints", ()):
            url, method = entrypoint.url, entrypoint.method
            if "<path:" not in url and not url.startswith("/open311/"):
                found.add((method.lower(), re.sub(r"<string:(\w+)>", r"{\1}", url)))
    return found


def resolve(ref):
    kind, name = ref.split("/")[-2:]
    return SPEC["components"][kind][name]


def test_is_openapi_3_1_and_json():
    assert SPEC["openapi"] == "3.1.0"
    assert SPEC["info"]["title"] and SPEC["info"]["version"]
    assert json.loads(json.dumps(SPEC)) == SPEC
    assert build_spec() == SPEC  # deterministic: generated once, the same every time


def test_every_route_is_documented_and_served():
    documented = {(method, path) for method, path, _ in operations()}
    assert documented == EXPECTED
    assert served_routes() == EXPECTED
    assert {(method, path) for method, path, _ in operations(open311=True)} == OPEN311
    ids = [op["operationId"] for _, _, op in (*operations(), *operations(open311=True))]
    assert len(ids) == len(set(ids))


def test_request_bodies_reference_component_schemas():
    expected = {route.url: route.request.__name__.removesuffix("Schema")
                for route in routes.ROUTES.values() if route.request}
    for method, path, op in operations():
        if method != "post":
            assert "requestBody" not in op
            continue
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{expected[path]}"}
        assert resolve(schema["$ref"])["type"] == "object"
    record = SPEC["components"]["schemas"]["RecordVisit"]
    assert {"cadre_ids", "place", "target", "id"} <= set(record["properties"])
    assert set(record["required"]) >= {"cadre_ids", "place", "target"}
    assert record["properties"]["place"] == {"$ref": "#/components/schemas/Place"}
    assert SPEC["components"]["schemas"]["RegisterUnit"]["properties"]["id"]["pattern"]


def test_responses_and_errors():
    for _, path, op in operations():
        responses = op["responses"]
        success = [code for code in responses if code.startswith("2")]
        assert len(success) == 1, path
        assert responses[success[0]]["content"]["application/json"]["schema"]
        for code, response in responses.items():
            if code.startswith(("4", "5")) and path != "/healthz":
                body = resolve(response["$ref"]) if "$ref" in response else response
                assert body["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"}
    visits = SPEC["paths"]["/api/v1/visits"]["post"]["responses"]
    assert visits["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/VisitRecorded"}
    assert set(SPEC["components"]["schemas"]["VisitRecorded"]["properties"]) == {
        "id", "position", "backfilled", "resident_id", "pending_cadre_ids"}
    assert {"400", "401", "403", "409", "422", "504"} <= set(visits)
    correction = SPEC["paths"]["/api/v1/visits/{visit_id}/corrections"]["post"]["responses"]
    assert {"400", "401", "403", "404", "409", "422", "504"} <= set(correction)
    get_visit = SPEC["paths"]["/api/v1/visits/{visit_id}"]["get"]["responses"]
    assert get_visit["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Visit"}


def test_security_is_bearer_except_public_routes():
    assert SPEC["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "an API token"}
    assert SPEC["security"] == [{"bearerAuth": []}]
    for _, path, op in operations():
        if path in ("/healthz", "/api/v1/openapi.json"):
            assert op["security"] == []
            assert "401" not in op["responses"]
        else:
            assert "security" not in op  # inherits the document's bearerAuth
            assert {"401", "403"} <= set(op["responses"])


def test_compliance_query_parameters():
    op = SPEC["paths"]["/api/v1/compliance"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    assert set(params) == {"month", "unit_id", "as_of"}
    assert all(p["in"] == "query" for p in params.values())
    assert params["month"]["required"] is True
    assert params["unit_id"]["required"] is False
    assert params["as_of"]["schema"]["format"] == "date-time"
    assert re.match(params["month"]["schema"]["pattern"], "2025-03")


def test_path_parameters_are_declared():
    for _, path, op in operations():
        names = set(re.findall(r"\{(\w+)\}", path))
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert names == declared, path


def test_every_ref_resolves():
    refs = re.findall(r'"\$ref": "([^"]+)"', json.dumps(SPEC))
    assert refs
    for ref in set(refs):
        assert ref.startswith("#/components/")
        assert resolve(ref)


def test_an_old_path_is_a_deprecated_alias_of_the_same_command():
    old = SPEC["paths"]["/api/v1/cadres/{cadre_id}/leaving"]["post"]
    new = SPEC["paths"]["/api/v1/cadres/{cadre_id}/removal"]["post"]
    assert old["deprecated"] is True and "deprecated" not in new
    assert (old["operationId"], new["operationId"]) == ("remove_cadre_leaving", "remove_cadre")
    assert "POST /api/v1/cadres/{cadre_id}/removal" in old["summary"]
    assert (old["requestBody"], old["x-roles"]) == (new["requestBody"], new["x-roles"])
    assert routes.ROUTES["remove_cadre_leaving"].method_name == "remove_cadre"  # one RPC
    assert [op["operationId"] for _, _, op in operations() if op.get("deprecated")] == [
        "remove_cadre_leaving"]


def test_validates_with_openapi_spec_validator():
    validate(SPEC)


# --- a route declared in a table is served, documented and filtered --------------------------


class PinNoteSchema(Schema):
    reason = fields.String(required=True)


PIN_NOTE = declare.Route(
    "pin_note", "POST", "/notes/{note_id}/pins", "Pin a note", "operator; the note's author",
    "notes", service="notes", roles=("operator",), status=201, request=PinNoteSchema,
    response=AcceptedSchema, signed=True)


class Recorder:
    """Stands in for a nameko proxy: records each RPC it is asked to make."""

    def __init__(self):
        self.calls = []

    def pin_note(self, *args):
        self.calls.append(args)
        return {"id": args[1], "position": 7}


def _call(principal, proxy, signer):
    env = EnvironBuilder(method="POST", path="/api/v1/notes/n-1/pins",
                         json={"reason": "keep"}).get_environ()
    return Call(Request(env), principal, {"notes": Remote(proxy, "notes", 1.0)},
                {"note_id": "n-1"}, signer=signer)


def test_every_served_route_comes_from_a_declaration():
    declared = {name for service in catalogue.SERVICES for name in
                (route.name for route in service.routes())}
    assert set(routes.ROUTES) == declared | {route.name for route in routes.OWN}
    assert set(GatewayService.targets) == set(catalogue.names("write", "view"))
    for _, _, op in operations():  # each operation says who may call it
        assert op["description"].startswith("Allowed: ")
    record = SPEC["paths"]["/api/v1/visits"]["post"]
    assert record["x-roles"] == ["operator", "cadre", "head"]
    assert SPEC["paths"]["/api/v1/units"]["post"]["x-roles"] == ["operator"]


def test_a_route_added_to_a_table_appears_in_the_gateway_and_openapi_with_its_permission():
    class Gateway(GatewayService):
        pass

    install(Gateway, [PIN_NOTE], ["notes"])
    [entrypoint] = Gateway.pin_note.nameko_entrypoints
    assert (entrypoint.method, entrypoint.url) == ("POST", "/api/v1/notes/<string:note_id>/pins")
    assert isinstance(Gateway.rpc_notes, RpcProxy) and Gateway.rpc_notes.target_service == "notes"
    assert "pin_note" not in vars(GatewayService)  # the base gateway is left as it was

    spec = build_spec([*routes.ROUTES.values(), PIN_NOTE])
    validate(spec)
    op = spec["paths"]["/api/v1/notes/{note_id}/pins"]["post"]
    assert op["operationId"] == "pin_note" and op["tags"] == ["notes"]
    assert op["description"] == "Allowed: operator; the note's author."
    assert op["x-roles"] == ["operator"]
    assert op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PinNote"}
    assert {"201", "400", "401", "403", "404", "409", "503", "504"} <= set(op["responses"])
    assert [p["name"] for p in op["parameters"] if p["in"] == "path"] == ["note_id"]


def test_a_declared_write_is_filtered_by_role_then_sent_signed_to_its_service():
    signer, proxy = Signer(generate_key()), Recorder()
    serve_it = handlers.handler(PIN_NOTE)
    with pytest.raises(Denied):
        serve_it(_call(Principal("cadre", cadre_id="c-1", token_id="t"), proxy, signer))
    assert proxy.calls == []
    operator = Principal("operator", token_id="op")
    assert serve_it(_call(operator, proxy, signer)) == (201, {"id": "n-1", "position": 7})
    [(signed, note_id, body, command_id)] = proxy.calls
    assert (note_id, body, command_id) == ("n-1", {"reason": "keep"}, None)
    assert signer.verify(signed, "pin_note", [note_id, body, command_id]) == operator


def test_two_routes_with_one_name_or_one_path_are_refused():
    twin = declare.Route("openapi", "GET", "/elsewhere", "x", "public", "operations")
    with pytest.raises(ValueError, match="declared twice"):
        routes.collect(own=(*routes.OWN, twin))
    with pytest.raises(ValueError, match="declared twice"):
        routes.collect(own=(*routes.OWN, declare.Route("other", "GET", "/openapi.json", "x",
                                                       "public", "operations")))


# --- Open311 GeoReport v2: the same document, from its own schemas ------------------------


def test_open311_answers_are_described_from_its_schemas_in_each_format():
    names = {"discovery": ("Open311Discovery", None, "discovery"),
             "services": ("Open311Service", "service", "services"),
             "requests": ("Open311Request", "request", "service_requests"),
             "requests/{service_request_id}": ("Open311Request", "request", "service_requests")}
    for method, path, op in operations(open311=True):
        resource, _, fmt = path.removeprefix("/open311/v2/").rpartition(".")
        media = {"json": "application/json", "xml": "text/xml"}[fmt]
        assert op["tags"] == ["open311"] and op["description"].startswith("Allowed: ")
        status, name, item, root = ("201", "Open311PostedRequest", "request",
                                    "service_requests") if method == "post" else (
            "200", *names[resource])
        (success,) = [code for code in op["responses"] if code.startswith("2")]
        assert success == status
        schema = op["responses"][status]["content"][media]["schema"]
        ref = schema["items"] if item else schema
        assert ref["$ref"] == f"#/components/schemas/{name}"
        assert ref["xml"] == {"name": item or root}
        if item:
            assert schema["xml"] == {"name": root, "wrapped": True}
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")) and code != "431":
                (content,) = response["content"].items()
                assert content[0] == media, (path, code)
                assert content[1]["schema"]["items"]["$ref"] == "#/components/schemas/Open311Error"
                assert content[1]["schema"]["xml"] == {"name": "errors", "wrapped": True}


def test_open311_parameters_and_form_are_its_marshmallow_schemas():
    from services.cases.open311_schemas import PostRequestSchema, RequestsQuerySchema

    query = SPEC["paths"]["/open311/v2/requests.xml"]["get"]["parameters"]
    assert {p["name"] for p in query} == set(RequestsQuerySchema().fields)
    by_name = {p["name"]: p["schema"] for p in query}
    assert by_name["status"] == {"type": "string"}  # a comma-separated list
    assert by_name["page_size"]["maximum"] == 1000
    assert by_name["start_date"]["format"] == "date-time"
    one = SPEC["paths"]["/open311/v2/requests/{service_request_id}.json"]["get"]["parameters"]
    assert [(p["in"], p["name"]) for p in one] == [("path", "service_request_id"),
                                                   ("query", "jurisdiction_id")]
    post = SPEC["paths"]["/open311/v2/requests.json"]["post"]
    assert "security" not in post and post["x-roles"] == ["operator", "hotline"]
    assert {"401", "403", "415"} <= set(post["responses"])
    (media, body), = post["requestBody"]["content"].items()
    assert media == "application/x-www-form-urlencoded"
    form = resolve(body["schema"]["$ref"])
    assert set(form["properties"]) == set(PostRequestSchema().fields)
    assert form["required"] == ["service_code"]
    personal = {name for name, prop in form["properties"].items() if prop.get("x-personal")}
    assert personal == {"first_name", "last_name", "phone", "email"}
    assert form["properties"]["email"]["format"] == "email"
    for method, _, op in operations(open311=True):
        assert (op.get("security") == []) == (method == "get")


def _open311_answer(method, path):
    """The gateway's Open311 entrypoint that takes this request, and what it answers when
    the answer needs no service (a method refused)."""
    gateway_map = Map([Rule(entrypoint.url, methods=entrypoint.method.split(","),
                            endpoint=name)
                       for name, attr in vars(GatewayService).items()
                       for entrypoint in getattr(attr, "nameko_entrypoints", ())])
    name, values = gateway_map.bind("localhost").match(path, method)
    request = Request(EnvironBuilder(method=method, path=path).get_environ())
    return name, (lambda: getattr(GatewayService, name)(None, request, **values))


def test_open311_operations_are_served_and_other_methods_are_405_with_allow():
    served = {"get": {"open311_list", "open311_request"}, "post": {"open311_post"}}
    for method, path, _ in operations(open311=True):
        concrete = path.replace("{service_request_id}", "k1")
        name, _ = _open311_answer(method.upper(), concrete)
        assert name in served[method], (method, path)
    for path, allow in (("/open311/v2/discovery.json", "GET"),
                        ("/open311/v2/requests.xml", "GET, POST"),
                        ("/open311/v2/requests/k1.json", "GET")):
        taken = {"GET"} | ({"POST"} if "POST" in allow else set())
        for method in sorted({"POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
                              "QUERY"} - taken):
            _, answer = _open311_answer(method, path)
            response = answer()
            assert (response.status_code, response.headers["Allow"]) == (405, allow), method
            fmt = path.rpartition(".")[2]
            assert response.mimetype == {"json": "application/json", "xml": "text/xml"}[fmt]
    _, answer = _open311_answer("DELETE", "/open311/v2/elsewhere.json")
    assert answer().status_code == 404
