"""What each route does: check the role, validate at the edge, check access, call the service.

One function per route (named as in routes.ROUTES); each returns (status, JSON body) and
raises shared.errors for the client's mistakes. Bodies are forwarded as received (wire form):
the services validate them again with the same schemas.
"""

from __future__ import annotations

from typing import Any

import eventlet
from marshmallow import Schema

from services.gateway import access
from services.gateway.http import Call, Reply
from services.gateway.openapi import SPEC
from services.gateway.routes import ROUTES
from shared.errors import NotFound


def _unit_of(call: Call) -> access.UnitOf:
    """The current unit of a cadre, from the visits service (None when not on the roster)."""
    cache: dict[str, str | None] = {}

    def unit_of(cadre_id: str) -> str | None:
        if cadre_id not in cache:
            try:
                cache[cadre_id] = call.visits.get_cadre(cadre_id)["unit_id"]
            except NotFound:
                cache[cadre_id] = None
        return cache[cadre_id]

    return unit_of


def _roster(call: Call, name: str, *ids: str) -> Reply:
    route = ROUTES[name]
    access.require_role(call.principal, *access.ROSTER_WRITERS)
    body = call.body(_schema(route.request))
    return route.status, call.visits.call(name, *ids, body, call.actor, call.command_id())


def _schema(schema: type[Schema] | None) -> type[Schema]:
    assert schema is not None
    return schema


def register_unit(call: Call) -> Reply:
    return _roster(call, "register_unit")


def set_unit_day(call: Call) -> Reply:
    return _roster(call, "set_unit_day", call.params["unit_id"])


def enrol_cadre(call: Call) -> Reply:
    return _roster(call, "enrol_cadre")


def transfer_cadre(call: Call) -> Reply:
    return _roster(call, "transfer_cadre", call.params["cadre_id"])


def grant_leave(call: Call) -> Reply:
    return _roster(call, "grant_leave", call.params["cadre_id"])


def remove_cadre(call: Call) -> Reply:
    return _roster(call, "remove_cadre", call.params["cadre_id"])


def get_cadre(call: Call) -> Reply:
    access.require_role(call.principal, *access.EVERYONE)
    cadre = call.visits.get_cadre(call.params["cadre_id"])
    access.check_cadre_read(call.principal, cadre)
    return 200, cadre


def record_visit(call: Call) -> Reply:
    access.require_role(call.principal, *access.VISIT_WRITERS)
    body = call.body(_schema(ROUTES["record_visit"].request))
    access.check_visit_write(call.principal, body["cadre_ids"], _unit_of(call))
    return 201, call.visits.record_visit(body, call.actor, call.command_id())


def _change_visit(call: Call, name: str) -> Reply:
    access.require_role(call.principal, *access.VISIT_WRITERS)
    body = call.body(_schema(ROUTES[name].request))
    visit_id = call.params["visit_id"]
    if call.principal.role != "operator":
        visit = call.visits.get_visit(visit_id)
        access.check_visit_change(call.principal, visit, body.get("cadre_ids"), _unit_of(call))
    return 200, call.visits.call(name, visit_id, body, call.actor, call.command_id())


def correct_visit(call: Call) -> Reply:
    return _change_visit(call, "correct_visit")


def retract_visit(call: Call) -> Reply:
    return _change_visit(call, "retract_visit")


def get_visit(call: Call) -> Reply:
    access.require_role(call.principal, *access.EVERYONE)
    visit = call.visits.get_visit(call.params["visit_id"])
    access.check_visit_read(call.principal, visit, _unit_of(call))
    return 200, visit


def compliance(call: Call) -> Reply:
    access.require_role(call.principal, *access.EVERYONE)
    query = call.query(_schema(ROUTES["compliance"].query))
    unit_id = access.compliance_unit(call.principal, query.get("unit_id"), _unit_of(call))
    return 200, call.compliance.report(query["month"], unit_id=unit_id, as_of=query.get("as_of"))


def healthz(call: Call) -> Reply:
    """Each service's `status()` asked at once, within the short health deadline."""

    def probe(remote: Any) -> str:
        try:
            remote.call("status", timeout=call.health_timeout)
        except Exception:
            return "down"
        return "ok"

    threads = {name: eventlet.spawn(probe, remote)
               for name, remote in (("visits", call.visits), ("compliance", call.compliance))}
    services = {name: thread.wait() for name, thread in threads.items()}
    ok = all(state == "ok" for state in services.values())
    return (200 if ok else 503), {"ok": ok, "services": services}


def openapi(call: Call) -> Reply:
    return 200, SPEC
