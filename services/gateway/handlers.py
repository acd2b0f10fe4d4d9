"""What each route does: a first check of the role, validation at the edge, the call.

Every route the services declare is served by one of two generic handlers: a write (the
route's roles, its body validated with its schema, then its RPC with the principal signed for
exactly that call and the request's command id) or a read (the roles, its query validated, its
RPC with the path values then the query values, signed when the route says so). Only routes
with a rule of the edge's own have a function here (`SPECIAL`): the gateway's own routes, and
reads whose answer the edge filters itself (a roster entry, a compliance report's unit).

Each handler returns (status, JSON body) and raises shared.kernel.errors for the client's
mistakes. Bodies are forwarded as received (wire form): the services validate them again with
the same schemas and decide with the signed principal, so there is no check here that a write
could race.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import eventlet

from services.gateway import access
from services.gateway.http import Call, Reply
from services.gateway.openapi import SPEC
from services.gateway.routes import Route

Handler = Callable[[Call], Reply]


def _unit_of(call: Call) -> access.UnitOf:
    """The current unit of a cadre, from the roster (None when not on the roster)."""

    def unit_of(cadre_id: str) -> str | None:
        cadre = call.cadre(cadre_id)
        return None if cadre is None else cadre["unit_id"]

    return unit_of


def write(route: Route, call: Call) -> Reply:
    """A command: the role first (a caller without it learns nothing of the body's format),
    the body validated here and again by the service, which decides with the principal."""
    assert route.request is not None
    access.require_role(call.principal, *route.roles)
    body = call.body(route.request)
    ids = [call.params[name] for name in route.params]
    return route.status, call.act(call.remote(route.service), route.method_name, *ids, body,
                                  call.command_id())


def _read_args(route: Route, call: Call) -> list[Any]:
    """The path values, then the query values in the query schema's field order."""
    args: list[Any] = [call.params[name] for name in route.params]
    if route.query is not None:
        query = call.query(route.query)
        args += [query.get(name) for name in route.query().fields]
    return args


def read(route: Route, call: Call) -> Reply:
    """A query the service answers in full (deciding itself who may read what, when signed)."""
    access.require_role(call.principal, *route.roles)
    args = _read_args(route, call)
    remote = call.remote(route.service)
    if route.signed:
        return route.status, call.act(remote, route.method_name, *args)
    return route.status, remote.call(route.method_name, *args)


def get_cadre(route: Route, call: Call) -> Reply:
    status, cadre = read(route, call)
    access.check_cadre_read(call.principal, cadre)
    return status, cadre


def compliance(route: Route, call: Call) -> Reply:
    assert route.query is not None
    access.require_role(call.principal, *route.roles)
    query = call.query(route.query)
    if query.get("as_of"):
        access.require_role(call.principal, *access.AS_OF_READERS)
    unit_id = access.compliance_unit(call.principal, query.get("unit_id"), _unit_of(call))
    return 200, call.remote(route.service).call(route.method_name, query["month"],
                                                unit_id=unit_id, as_of=query.get("as_of"))


def healthz(_route: Route, call: Call) -> Reply:
    """The broker and each service's `status()`, asked at once within the short health
    deadline: 503 naming what is down when anything is."""

    def probe(remote: Any) -> str:
        try:
            remote.call("status", timeout=call.health_timeout)
        except Exception:
            return "down"
        return "ok"

    broker = eventlet.spawn(call.broker)
    threads = {name: eventlet.spawn(probe, remote) for name, remote in call.remotes.items()}
    services = {name: thread.wait() for name, thread in threads.items()}
    broker_state = "ok" if broker.wait() else "down"
    ok = broker_state == "ok" and all(state == "ok" for state in services.values())
    return (200 if ok else 503), {"ok": ok, "broker": broker_state, "services": services}


def openapi(_route: Route, call: Call) -> Reply:
    return 200, SPEC


SPECIAL: dict[str, Callable[[Route, Call], Reply]] = {
    "get_cadre": get_cadre, "compliance": compliance, "healthz": healthz, "openapi": openapi,
    "case_board": compliance,  # the compliance view's rules: a unit's own, as_of for some
}


def handler(route: Route) -> Handler:
    """The function that serves a route."""
    fn = SPECIAL.get(route.name) or (write if route.write else read)
    return functools.partial(fn, route)

