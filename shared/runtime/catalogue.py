"""The one list of services: what `grassroots up` starts and `status` asks, what `/healthz`
probes, which projections the CLI can rebuild, whose routes the gateway serves, and which
broker rights each service's user gets.

The runtime sits below the services, so a service is named here by the paths of its class
and of its declaration table (shared/runtime/declare.py), imported when needed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["write", "view", "edge"]


@dataclass(frozen=True)
class Service:
    name: str
    kind: Kind  # write: keeps an event log; view: folds logs; edge: serves HTTP
    cls: str  # "module:Class", what `nameko run` runs
    # the logs a view folds, or a write service follows (their write services' names)
    reads: tuple[str, ...] = ()
    api: str | None = None  # the module whose ROUTES the gateway serves

    @property
    def module(self) -> str:
        return self.cls.partition(":")[0]

    def routes(self) -> tuple[Any, ...]:
        """The routes this service declares (shared.runtime.declare.Route)."""
        return tuple(importlib.import_module(self.api).ROUTES) if self.api else ()


SERVICES: tuple[Service, ...] = (
    Service("visits", "write", "services.visits.service:VisitsService",
            api="services.visits.commands"),
    Service("cases", "write", "services.cases.service:CasesService", reads=("visits",),
            api="services.cases.commands"),
    Service("compliance", "view", "services.compliance.service:ComplianceService",
            reads=("visits",), api="services.compliance.queries"),
    Service("caseboard", "view", "services.caseboard.service:CaseBoardService",
            reads=("cases",), api="services.caseboard.queries"),
    Service("gateway", "edge", "services.gateway.service:GatewayService"),
)


def names(*kinds: Kind) -> tuple[str, ...]:
    """The services' names (of the given kinds; all without), in start order."""
    return tuple(s.name for s in SERVICES if not kinds or s.kind in kinds)


def get(name: str) -> Service:
    for service in SERVICES:
        if service.name == name:
            return service
    raise KeyError(f"no service {name!r} in the catalogue")


def class_path(target: str) -> str:
    """`nameko run`'s argument for a service module: its catalogued class, since a module
    also holds the base classes (which have entrypoints of their own)."""
    for service in SERVICES:
        if target in (service.module, service.name):
            return service.cls
    return target
