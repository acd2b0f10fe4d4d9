"""The API's routes in one table: the entrypoints bind to it and OpenAPI is generated from it,
so the document cannot drift from what the gateway serves."""

from __future__ import annotations

import re
from dataclasses import dataclass

from marshmallow import Schema
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

from services.compliance.schemas import ComplianceQuerySchema, ComplianceReportSchema
from services.gateway.schemas import HealthSchema
from services.visits import schemas as visits

API = "/api/v1"
PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Route:
    name: str  # entrypoint, handler and operationId
    method: str
    path: str  # OpenAPI template, e.g. /visits/{visit_id}
    summary: str
    roles: str
    tag: str
    status: int = 200
    request: type[Schema] | None = None
    response: type[Schema] | None = None
    query: type[Schema] | None = None
    public: bool = False
    rpc: bool = True
    prefix: str = API  # /healthz sits at the root, where load balancers look

    @property
    def url(self) -> str:
        """The full path in OpenAPI form."""
        return self.prefix + self.path

    @property
    def rule(self) -> str:
        """The werkzeug rule for nameko's @http."""
        return PARAM.sub(r"<string:\1>", self.url)

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.path)


OPERATOR = "operator"
VISIT_WRITERS = (
    "operator any; cadre: visits they take part in; head: visits with a cadre of their unit "
    "on the visit's date. Cadres the caller cannot vouch for (other units) are pending until "
    "they confirm"
)
VISIT_CHANGERS = (
    "operator; the visit's confirmed cadres; the head of a confirmed cadre's unit on the "
    "visit's date. Taking a cadre off: only that cadre, their head or an operator"
)
PARTICIPANT = "the cadre themselves, the head of their unit on the visit's date, or an operator"

_ROUTES = [
    Route("register_unit", "POST", "/units", "Register a unit", OPERATOR, "roster", 201,
          visits.RegisterUnitSchema, visits.AcceptedSchema),
    Route("set_unit_day", "POST", "/units/{unit_id}/unit-day", "Set or clear a unit's own day",
          OPERATOR, "roster", 200, visits.SetUnitDaySchema, visits.AcceptedSchema),
    Route("enrol_cadre", "POST", "/cadres", "Enrol a cadre on the roster", OPERATOR, "roster",
          201, visits.EnrolCadreSchema, visits.AcceptedSchema),
    Route("get_cadre", "GET", "/cadres/{cadre_id}", "A cadre as the roster knows them now",
          "operator, supervisor, auditor any; head: their unit's; cadre: themselves", "roster",
          response=visits.CadreSchema),
    Route("transfer_cadre", "POST", "/cadres/{cadre_id}/transfer", "Transfer a cadre to a unit",
          OPERATOR, "roster", 200, visits.TransferCadreSchema, visits.AcceptedSchema),
    Route("grant_leave", "POST", "/cadres/{cadre_id}/leave", "Grant a cadre leave", OPERATOR,
          "roster", 200, visits.GrantLeaveSchema, visits.AcceptedSchema),
    Route("remove_cadre", "POST", "/cadres/{cadre_id}/leaving", "A cadre leaves the roster",
          OPERATOR, "roster", 200, visits.RemoveCadreSchema, visits.AcceptedSchema),
    Route("record_visit", "POST", "/visits", "Record a visit", VISIT_WRITERS, "visits", 201,
          visits.RecordVisitSchema, visits.VisitRecordedSchema),
    Route("get_visit", "GET", "/visits/{visit_id}", "A visit as it stands after corrections",
          "operator, supervisor, auditor any; cadre: theirs; head: with a cadre of their unit on "
          "its date. Residents' details: the visit's confirmed cadres and their head; others "
          "only with a `purpose`, which is recorded", "visits", response=visits.VisitSchema,
          query=visits.VisitQuerySchema),
    Route("correct_visit", "POST", "/visits/{visit_id}/corrections", "Correct a visit",
          VISIT_CHANGERS, "visits", 200, visits.CorrectVisitSchema, visits.VisitRecordedSchema),
    Route("retract_visit", "POST", "/visits/{visit_id}/retraction", "Retract a visit",
          VISIT_CHANGERS + "; a visit that also counts for cadres the caller may not act for "
          "cannot be retracted by them", "visits", 200, visits.RetractVisitSchema,
          visits.AcceptedSchema),
    Route("confirm_participation", "POST", "/visits/{visit_id}/confirmation",
          "Confirm a cadre's participation, so that the visit counts for them", PARTICIPANT,
          "visits", 200, visits.ConfirmParticipationSchema, visits.AcceptedSchema),
    Route("withdraw_participation", "POST", "/visits/{visit_id}/withdrawal",
          "Take a cadre off a visit", PARTICIPANT, "visits", 200,
          visits.WithdrawParticipationSchema, visits.AcceptedSchema),
    Route("compliance", "GET", "/compliance", "Monthly compliance per cadre and unit",
          "operator, supervisor, auditor any unit; head and cadre: their own unit (the default); "
          "as_of: supervisor and auditor only",
          "compliance", response=ComplianceReportSchema, query=ComplianceQuerySchema),
    Route("openapi", "GET", "/openapi.json", "This document", "public", "operations",
          public=True, rpc=False),
    Route("healthz", "GET", "/healthz", "Is every service answering?", "public", "operations",
          response=HealthSchema, public=True, prefix=""),
]
ROUTES: dict[str, Route] = {route.name: route for route in _ROUTES}
_MAP = Map([Rule(route.rule, methods=[route.method], endpoint=route.name) for route in _ROUTES])


def at(name: str) -> tuple[str, str]:
    """`@http(*at(name))`: the method and werkzeug rule of a route."""
    route = ROUTES[name]
    return route.method, route.rule


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
