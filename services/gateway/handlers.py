"""What each route does: a first check of the role, validation at the edge, the call.

One function per route (named as in routes.ROUTES); each returns (status, JSON body) and
raises shared.kernel.errors for the client's mistakes. Bodies are forwarded as received (wire form):
the services validate them again with the same schemas. Writes carry the principal signed for
exactly that call (`Call.act`): the service that writes decides what the principal may do, in
the same decision as the write, so there is no check here that a write could race.
"""

from __future__ import annotations

from typing import Any

import eventlet
from marshmallow import Schema

from services.gateway import access
from services.gateway.http import Call, Reply
from services.gateway.openapi import SPEC
from services.gateway.routes import ROUTES
from shared.kernel.errors import NotFound


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


def _schema(schema: type[Schema] | None) -> type[Schema]:
    assert schema is not None
    return schema


def _write(call: Call, name: str, roles: tuple[str, ...], *ids: str) -> Reply:
    """A command: the role first (a caller without it learns nothing of the body's format),
    the body validated here and again by the service, which decides with the principal."""
    route = ROUTES[name]
    access.require_role(call.principal, *roles)
    body = call.body(_schema(route.request))
    return route.status, call.act(call.visits, name, *ids, body, call.command_id())


def register_unit(call: Call) -> Reply:
    return _write(call, "register_unit", access.ROSTER_WRITERS)


def set_unit_day(call: Call) -> Reply:
    return _write(call, "set_unit_day", access.ROSTER_WRITERS, call.params["unit_id"])


def enrol_cadre(call: Call) -> Reply:
    return _write(call, "enrol_cadre", access.ROSTER_WRITERS)


def transfer_cadre(call: Call) -> Reply:
    return _write(call, "transfer_cadre", access.ROSTER_WRITERS, call.params["cadre_id"])


def grant_leave(call: Call) -> Reply:
    return _write(call, "grant_leave", access.ROSTER_WRITERS, call.params["cadre_id"])


def remove_cadre(call: Call) -> Reply:
    return _write(call, "remove_cadre", access.ROSTER_WRITERS, call.params["cadre_id"])


def get_cadre(call: Call) -> Reply:
    access.require_role(call.principal, *access.EVERYONE)
    cadre = call.visits.get_cadre(call.params["cadre_id"])
    access.check_cadre_read(call.principal, cadre)
    return 200, cadre


def record_visit(call: Call) -> Reply:
    return _write(call, "record_visit", access.VISIT_WRITERS)


def correct_visit(call: Call) -> Reply:
    return _write(call, "correct_visit", access.VISIT_WRITERS, call.params["visit_id"])


def retract_visit(call: Call) -> Reply:
    return _write(call, "retract_visit", access.VISIT_WRITERS, call.params["visit_id"])


def confirm_participation(call: Call) -> Reply:
    return _write(call, "confirm_participation", access.VISIT_WRITERS, call.params["visit_id"])


def withdraw_participation(call: Call) -> Reply:
    return _write(call, "withdraw_participation", access.VISIT_WRITERS,
                  call.params["visit_id"])


def get_visit(call: Call) -> Reply:
    """The visits service decides who may read it and whether the resident's details are
    shown (a stated purpose is recorded there)."""
    access.require_role(call.principal, *access.EVERYONE)
    query = call.query(_schema(ROUTES["get_visit"].query))
    return 200, call.act(call.visits, "get_visit", call.params["visit_id"], query.get("purpose"))


def compliance(call: Call) -> Reply:
    access.require_role(call.principal, *access.EVERYONE)
    query = call.query(_schema(ROUTES["compliance"].query))
    if query.get("as_of"):
        access.require_role(call.principal, *access.AS_OF_READERS)
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
