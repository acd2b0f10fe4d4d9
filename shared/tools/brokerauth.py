"""Who may do what on the broker: one RabbitMQ user per service, and one for the operator's CLI.

The broker is otherwise a back door: whoever reaches port 5672 with `guest:guest` could call any
service's RPC. So no node of ours has a guest account. Each user gets the configure/write/read
rights (regexes over exchange and queue names) and the topic rights (regexes over routing keys on
the `nameko-rpc` and `visits.events` topic exchanges) that what it runs needs, read off nameko
2.14.1's source:

- an `@rpc` service declares the durable queue `rpc-<service>`, bound to `nameko-rpc` with the key
  `<service>.*`, consumes it, and publishes each reply to `nameko-rpc` with the caller's reply key
  (a random UUID);
- an `RpcProxy` (the gateway) declares `rpc.reply-<service>-<uuid>`, bound with the key `<uuid>`,
  and publishes calls to `nameko-rpc` as `<target>.<method>`; a standalone `ClusterRpcProxy` (the
  CLI, and the compliance service catching up over `read_log`) does the same with the queue
  `rpc.reply-standalone_rpc_proxy-<uuid>`;
- an `@event_handler("visits", "#")` declares the exchange `visits.events` and the durable queue
  `evt-visits-#--<service>.<method>`, binds it with the key `#` and consumes it;
- the relay (shared/runtime/relay.py) declares `visits.events` and publishes with key = event type.

Declaring an existing exchange still needs `configure` on it, so every user may configure
`nameko-rpc` (and could delete it: a denial of service, not a way in). Topic rights are what
keep RPC apart: publishing checks the routing key against `write`, binding a queue checks the
binding key against `read`, so the compliance user can call `visits.read_log` and
`visits.status` but not `visits.record_visit`, and cannot bind a queue of its own to listen in.

The grants are made from the catalogue (shared/runtime/catalogue.py) by each service's kind: a
write service serves its RPCs and publishes `<name>.events`; a view serves its own, folds the
logs it reads and calls their `read_log`/`status`; the edge calls every service but a log dump,
an erasure or a rebuild; the operator's CLI, status, erasure and rebuild. A new service gets its
user by its catalogue entry.

Passwords are made with `secrets` and kept in `var/broker/users.json` (0600, folder 0700),
never in the repository; `definitions()` renders the users for RabbitMQ's definitions import,
which the local node loads on boot and Compose renders from `docker/rabbitmq/`.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import os
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from nameko.events import EventHandler

from shared.runtime import catalogue

VHOST = "/"
RPC_EXCHANGE = "nameko-rpc"
EVENTS_EXCHANGE = "visits.events"
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
NOTHING = "^$"  # matches no exchange or queue name a client can use, nor any routing key we use


def _any(*names: str) -> str:
    """An anchored regex matching exactly one of the given (already escaped) patterns."""
    return "^(" + "|".join(names) + ")$"


@dataclass(frozen=True)
class Grant:
    """A user's rights in the vhost: name regexes, and (write, read) routing-key regexes per
    topic exchange. A topic exchange not listed is unrestricted by topic rights, so every user
    lists both of ours."""

    configure: str
    write: str
    read: str
    topics: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    tags: str = ""


_STANDALONE_REPLY = rf"rpc\.reply-standalone_rpc_proxy-{UUID}"
_RPC = r"nameko-rpc"


def _events(service: str) -> str:
    return rf"{service}\.events"


def _topics(rpc: tuple[str, str], events: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    """Topic rights on the RPC exchange and on every write service's events exchange (each
    one listed, so none is left unrestricted)."""
    return {RPC_EXCHANGE: rpc, **{f"{name}.events": events.get(name, (NOTHING, NOTHING))
                                  for name in catalogue.names("write")}}


def _write_grant(name: str) -> Grant:
    """Serves <name>.* over RPC, publishes its log's events; calls nothing."""
    return Grant(
        configure=_any(_RPC, _events(name), rf"rpc-{name}"),
        write=_any(_RPC, _events(name), rf"rpc-{name}"),
        read=_any(_RPC, rf"rpc-{name}"),
        topics=_topics((_any(UUID), _any(rf"{name}\.\*")), {name: (".*", NOTHING)}),
    )


def _handled(service: catalogue.Service) -> dict[str, tuple[str, ...]]:
    """The event types a service's `@event_handler`s bind, per source log, read off its class
    (a write service that follows other logs binds only the types it handles, not `#`)."""
    module, _, name = service.cls.partition(":")
    cls = getattr(importlib.import_module(module), name)
    bound: dict[str, tuple[str, ...]] = {}
    for attr in dir(cls):
        for entrypoint in getattr(getattr(cls, attr), "nameko_entrypoints", ()):
            if isinstance(entrypoint, EventHandler):
                source = entrypoint.source_service
                bound[source] = (*bound.get(source, ()), entrypoint.event_type)
    return bound


def _follower_grant(service: catalogue.Service) -> Grant:
    """A write service that also follows other logs: its write grant, plus the durable queues
    of its event handlers (bound only to the event types they handle) and catching up over
    the followed logs' read_log/status."""
    name, bound = service.name, _handled(service)
    queues = [rf"evt-{source}-.+--{name}\..+" for source in service.reads]
    events = [_events(source) for source in service.reads]
    mine = [_RPC, _events(name), rf"rpc-{name}"]
    types = {source: _any(*map(re.escape, bound[source])) if bound.get(source) else NOTHING
             for source in service.reads}
    return Grant(
        configure=_any(*mine, *events, *queues, _STANDALONE_REPLY),
        write=_any(*mine, *queues, _STANDALONE_REPLY),
        read=_any(_RPC, rf"rpc-{name}", *events, *queues, _STANDALONE_REPLY),
        topics=_topics((_any(UUID, *(rf"{source}\.(read_log|status)" for source in service.reads)),
                        _any(rf"{name}\.\*", UUID)),
                       {name: (".*", NOTHING), **{s: (NOTHING, t) for s, t in types.items()}}),
    )


def _view_grant(name: str, reads: tuple[str, ...]) -> Grant:
    """Serves <name>.*, folds the events of the logs it reads (its own durable queues), and
    catches up over their read_log/status."""
    queues = [rf"evt-{source}-.+--{name}\..+" for source in reads]
    events = [_events(source) for source in reads]
    return Grant(
        configure=_any(_RPC, *events, rf"rpc-{name}", *queues, _STANDALONE_REPLY),
        write=_any(_RPC, rf"rpc-{name}", *queues, _STANDALONE_REPLY),
        read=_any(_RPC, *events, rf"rpc-{name}", *queues, _STANDALONE_REPLY),
        topics=_topics((_any(*(rf"{source}\.(read_log|status)" for source in reads), UUID),
                        _any(rf"{name}\.\*", UUID)),
                       {source: (NOTHING, _any("#")) for source in reads}),
    )


def _caller_grant(user: str, methods: Mapping[str, str]) -> Grant:
    """Calls the given methods (a regex per service) and listens to no events."""
    reply = _STANDALONE_REPLY if user == "operator" else rf"rpc\.reply-{user}-{UUID}"
    return Grant(
        configure=_any(_RPC, reply), write=_any(_RPC, reply), read=_any(_RPC, reply),
        topics=_topics((_any(*(rf"{name}\.{m}" for name, m in methods.items())), _any(UUID)),
                       {}),
    )


def _grants() -> dict[str, Grant]:
    """One user per service in the catalogue, by its kind, and the operator's tools."""
    grants: dict[str, Grant] = {}
    # The HTTP edge calls what its routes need; never a log dump, an erasure or a rebuild.
    edge = {s.name: "(?!read_log$|forget_resident$)[a-z0-9_]+" if s.kind == "write"
            else "(?!rebuild$)[a-z0-9_]+" for s in catalogue.SERVICES if s.kind != "edge"}
    # The CLI (`grassroots status`, `projections rebuild`): status, rebuild, erasure.
    operator = {s.name: "(status|forget_resident)" if s.kind == "write" else "(status|rebuild)"
                for s in catalogue.SERVICES if s.kind != "edge"}
    for service in catalogue.SERVICES:
        if service.kind == "write":
            grants[service.name] = (_follower_grant(service) if service.reads
                                    else _write_grant(service.name))
        elif service.kind == "view":
            grants[service.name] = _view_grant(service.name, service.reads)
        else:
            grants[service.name] = _caller_grant(service.name, edge)
    grants["operator"] = _caller_grant("operator", operator)
    return grants


GRANTS: dict[str, Grant] = _grants()
USERS = tuple(GRANTS)


def uri(user: str, password: str, host: str, port: int, vhost: str = VHOST) -> str:
    """The AMQP URI for one user (URL-quoted: ours are hex, an operator's may not be)."""
    user, password, vhost = (quote(part, safe="") for part in (user, password, vhost))
    return f"amqp://{user}:{password}@{host}:{port}/{vhost}"


def write_secret(path: Path, text: str) -> None:
    """Write text to path readable by the owner only (0600, created so: never briefly wider),
    its folder 0700."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def passwords(path: Path, users: tuple[str, ...] = USERS) -> dict[str, str]:
    """Each user's password from path, making (and keeping) one for any user it lacks."""
    known: dict[str, str] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    missing = [user for user in users if not known.get(user)]
    for user in missing:
        known[user] = secrets.token_hex(24)
    if missing or not path.exists() or path.stat().st_mode & 0o077:
        write_secret(path, json.dumps(known, indent=2, sort_keys=True) + "\n")
    return {user: known[user] for user in users}


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(secrets_by_user: Mapping[str, str], grants: Mapping[str, Grant] = GRANTS,
                *, hashed: bool = True) -> dict[str, Any]:
    """RabbitMQ definitions (users, the vhost, permissions, topic permissions) for import.

    hashed=False writes each password as given: Compose fills placeholders in at start, in a
    container without Python to hash them.
    """
    users = []
    for name in grants:
        secret = secrets_by_user[name]
        user: dict[str, Any] = {"name": name, "tags": grants[name].tags}
        if hashed:
            user.update(password_hash=password_hash(secret),
                        hashing_algorithm="rabbit_password_hashing_sha256")
        else:
            user["password"] = secret
        users.append(user)
    return {
        "users": users,
        "vhosts": [{"name": VHOST}],
        "permissions": [{"user": name, "vhost": VHOST, "configure": g.configure,
                         "write": g.write, "read": g.read} for name, g in grants.items()],
        "topic_permissions": [{"user": name, "vhost": VHOST, "exchange": exchange,
                               "write": write, "read": read}
                              for name, g in grants.items()
                              for exchange, (write, read) in g.topics.items()],
    }


def placeholder(user: str) -> str:
    """The stand-in for a user's password in docker/rabbitmq/definitions.template.json."""
    return f"@{user.upper()}_AMQP_PASSWORD@"


def compose_template() -> str:
    """docker/rabbitmq/definitions.template.json, which tests keep equal to this."""
    doc = definitions({user: placeholder(user) for user in GRANTS}, hashed=False)
    return json.dumps(doc, indent=2) + "\n"


if __name__ == "__main__":  # python -m shared.tools.brokerauth > docker/rabbitmq/definitions.template.json  # noqa: E501
    sys.stdout.write(compose_template())
