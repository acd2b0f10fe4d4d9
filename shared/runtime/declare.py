"""What a service declares once: its HTTP routes and, for a write service, its commands.

A service package lists its `ROUTES` (and a write service its `COMMANDS`, each carrying its
route) in one table; the write service's RPC entrypoints (shared/runtime/bases.py), the
gateway's routes, role filter and dispatch (services/gateway) and the OpenAPI document are all
generated from it, so a new command is its domain code and one row here, nowhere else.

One name per act: a row's `name` is the command's RPC method, the route's operationId and the
gateway entrypoint.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from marshmallow import Schema

API = "/api/v1"
PARAM = re.compile(r"\{(\w+)\}")
EVERYONE = ("operator", "cadre", "head", "supervisor", "auditor")


@dataclass(frozen=True)
class Route:
    """One HTTP operation and the RPC behind it.

    `roles` is the gateway's coarse filter (checked before the body is read, so a caller
    without the role learns nothing of its format); `allowed` says in words what the service
    itself then decides, for the OpenAPI description. A `signed` call carries the principal
    the gateway signs for it (writes always do); its RPC arguments are the path values, then
    the body (writes) or the query values in the query schema's field order (reads).
    """

    name: str
    method: str
    path: str  # OpenAPI template, e.g. /visits/{visit_id}
    summary: str
    allowed: str
    tag: str
    service: str = ""  # the service that answers (over RPC); "" for the gateway's own
    roles: tuple[str, ...] = EVERYONE
    status: int = 200
    request: type[Schema] | None = None
    response: type[Schema] | None = None
    query: type[Schema] | None = None
    signed: bool = False
    public: bool = False
    prefix: str = API  # /healthz sits at the root, where load balancers look
    call: str = ""  # the RPC method when it is not `name` (an operationId clients already use)
    deprecated: bool = False  # an old path kept for existing clients (OpenAPI says so)

    @property
    def rpc(self) -> bool:
        return bool(self.service)

    @property
    def method_name(self) -> str:
        """The service's RPC method behind this route."""
        return self.call or self.name

    @property
    def write(self) -> bool:
        return self.request is not None

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


Prepare = Callable[[Any, "str | None"], Any]


@dataclass(frozen=True)
class Act:
    """A command as its domain handles it: the decision that turns it into events and the
    stream they are appended to, a template over the command's fields ("visit-{visit_id}").
    A time-driven command is an act with no route (nobody sends it over HTTP or RPC)."""

    command: type
    decide: Callable[..., Any] = field(compare=False)
    stream: str

    def stream_for(self, command: Any) -> str:
        return self.stream.format_map(vars(command))


@dataclass(frozen=True)
class Command:
    """A write service's command: the dataclass the domain decides, and its route (whose
    `request` schema loads the body, over HTTP and over RPC alike). The path values fill the
    dataclass fields of the same names. `prepare(payload, command_id)` may complete a payload
    before it is loaded (e.g. give a new visit its id). `act` names its decision and stream
    when the table is the service's one list of them (shared by `domain.decide`)."""

    route: Route
    command: type
    prepare: Prepare | None = field(default=None, compare=False)
    act: Act | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return self.route.name

    @property
    def schema(self) -> type[Schema]:
        assert self.route.request is not None, f"{self.name}: a command needs a request schema"
        return self.route.request

    @property
    def ids(self) -> list[str]:
        return self.route.params


def command(cls: type, name: str, method: str, path: str, summary: str, allowed: str, tag: str,
            *, service: str, roles: tuple[str, ...], request: type[Schema],
            response: type[Schema], status: int = 200,
            prepare: Prepare | None = None, decide: Callable[..., Any] | None = None,
            stream: str = "") -> Command:
    """A table row: a command with its route, signed as every write is, and (given `decide`
    and `stream`) the act its domain decides."""
    act = Act(cls, decide, stream) if decide is not None else None
    return Command(Route(name, method, path, summary, allowed, tag, service=service,
                         roles=roles, status=status, request=request, response=response,
                         signed=True), cls, prepare, act)


def acts(rows: Iterable[Command | Act]) -> dict[type, Act]:
    """Each command type's act, from a table's command rows and its time-driven acts."""
    found: dict[type, Act] = {}
    for row in rows:
        act = row if isinstance(row, Act) else row.act
        if act is None:
            continue
        if act.command in found:
            raise ValueError(f"{act.command.__name__} is declared twice")
        found[act.command] = act
    return found


def deprecated_alias(row: Command, name: str, path: str) -> Route:
    """An old path of a command, kept so existing clients keep working: the same RPC behind
    it, its own operationId, marked deprecated in OpenAPI with a pointer to the new path."""
    new = row.route
    return replace(new, name=name, path=path, call=new.method_name, deprecated=True,
                   summary=f"{new.summary} (deprecated: use {new.method} {new.url})")
