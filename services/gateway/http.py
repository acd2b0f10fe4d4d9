"""The HTTP edge without nameko: JSON in and out, authentication, error mapping, RPC deadlines.

Every answer, errors included, is JSON with the `{"errors": {field: [reasons]}}` shape that
shared.errors defines, so clients parse one format; only unexpected failures are logged with a
stack trace, and their details never reach the client.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import eventlet
from marshmallow import Schema
from nameko.exceptions import UnknownService
from werkzeug.wrappers import Request, Response

from shared.auth import Principal, TokenStore
from shared.commands import load
from shared.errors import SCHEMA_FIELD, DomainError, Invalid, flatten

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # bytes; a visit with its diary is a few kB
AUTH_FIELD = "authorization"
Reply = tuple[int, Any]


class Unauthenticated(DomainError):
    """No bearer token, or one the token store does not know (401)."""

    http_status = 401

    def errors(self) -> dict[str, Any]:
        return {AUTH_FIELD: [str(self)]}


class Denied(DomainError):
    """A known principal whose role or binding does not allow the request (403)."""

    http_status = 403

    def errors(self) -> dict[str, Any]:
        return {AUTH_FIELD: [str(self)]}


class TooLarge(DomainError):
    http_status = 413

    def errors(self) -> dict[str, Any]:
        return {"body": [str(self)]}


class RpcTimeout(Exception):
    """A service did not answer in time; the command may still complete, so a retry of the
    same request (same idempotency key) is safe."""

    status: ClassVar[int] = 504

    def __init__(self, service: str, method: str, seconds: float) -> None:
        super().__init__(f"{service} did not answer {method} within {seconds:g}s; "
                         "retrying the same request is safe")
        self.service = service


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(data, status=status, headers=dict(headers or {}),
                    mimetype="application/json")


def error_response(
    status: int, errors: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="grassroots"'
    return json_response(status, {"errors": flatten(errors)}, headers)


def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or Invalid naming `body`."""
    if (request.content_length or 0) > MAX_BODY:
        raise TooLarge(f"larger than {MAX_BODY} bytes")
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise Invalid({"body": ["a JSON object is required"]})
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid({"body": [f"not valid JSON: {exc}"]}) from None
    if not isinstance(body, dict):
        raise Invalid({"body": ["must be a JSON object"]})
    return body


def authenticate(request: Request, tokens: TokenStore) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("malformed Authorization header: use 'Bearer <token>'")
    principal = tokens.lookup(token.strip())
    if principal is None:
        raise Unauthenticated("unknown or revoked token")
    return principal


def command_id(request: Request, body: Any, actor: str) -> str:
    """The idempotency key of a write: an exact retry (same actor, method, path and JSON body)
    maps to the same key. A client's Idempotency-Key header replaces the body in the hash, scoped
    to actor, method and path so that two clients' keys never collide."""
    key = request.headers.get("Idempotency-Key")
    material = ["key", key] if key else ["body", body]
    canonical = json.dumps([request.method, request.path, actor, *material],
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Remote:
    """A nameko service proxy whose calls give up after a deadline (RpcTimeout).

    nameko 2.14's RpcProxy has no timeout of its own; an eventlet Timeout around the call
    abandons the wait (a late reply is dropped by the reply listener)."""

    def __init__(self, proxy: Any, service: str, timeout: float) -> None:
        self.proxy = proxy
        self.service = service
        self.timeout = timeout

    def call(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        seconds = timeout or self.timeout
        with eventlet.Timeout(seconds, RpcTimeout(self.service, method, seconds)):
            return getattr(self.proxy, method)(*args, **kwargs)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        return functools.partial(self.call, method)


@dataclass
class Call:
    """One request as the handlers see it: who asks, the path values, the services."""

    request: Request
    principal: Principal
    visits: Remote
    compliance: Remote
    params: dict[str, str] = field(default_factory=dict)
    health_timeout: float = 2.0
    _body: dict[str, Any] | None = None

    @property
    def actor(self) -> str:
        return self.principal.actor

    def body(self, schema: type[Schema]) -> dict[str, Any]:
        """The JSON body (as received: the services validate it again), validated by schema."""
        if self._body is None:
            self._body = read_json_object(self.request)
        load(schema, self._body)
        return self._body

    def query(self, schema: type[Schema]) -> dict[str, str]:
        args = self.request.args.to_dict()
        load(schema, args)
        return args

    def command_id(self) -> str:
        return command_id(self.request, self._body, self.actor)


ANONYMOUS = Principal(role="anonymous", token_id="-")


def serve(
    request: Request,
    handler: Callable[[Call], Reply],
    *,
    tokens: TokenStore,
    visits: Remote,
    compliance: Remote,
    params: dict[str, str],
    public: bool = False,
    health_timeout: float = 2.0,
) -> Response:
    """Authenticate (unless public), run handler, and turn any outcome into a JSON response."""
    try:
        principal = ANONYMOUS if public else authenticate(request, tokens)
        call = Call(request, principal, visits, compliance, params, health_timeout)
        status, body = handler(call)
        return json_response(status, body)
    except DomainError as exc:
        return error_response(exc.http_status, exc.errors())
    except RpcTimeout as exc:
        log.warning("%s %s: %s", request.method, request.path, exc)
        return error_response(exc.status, {SCHEMA_FIELD: [str(exc)]})
    except UnknownService as exc:
        log.warning("%s %s: %s", request.method, request.path, exc)
        name = exc.args[0] if exc.args else "?"
        return error_response(503, {SCHEMA_FIELD: [f"service {name} is not running"]})
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, {SCHEMA_FIELD: ["internal error"]})
