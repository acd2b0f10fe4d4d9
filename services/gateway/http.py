"""The HTTP edge without nameko: JSON in and out, authentication, error mapping, RPC deadlines.

Every answer, errors included, is JSON with the `{"errors": {field: [reasons]}}` shape that
shared.kernel.errors defines, so clients parse one format; only unexpected failures are logged
with a stack trace, and their details never reach the client.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar

import eventlet
from marshmallow import Schema
from nameko.exceptions import UnknownService
from werkzeug.wrappers import Request, Response

from services.gateway.idempotency import IdempotencyStore, Replay, claim_for
from services.gateway.inputs import check_plain, read_json_object
from shared.eventlog.storage import outage
from shared.kernel.commands import load
from shared.kernel.errors import (  # noqa: F401 (Denied: re-exported)
    SCHEMA_FIELD,
    Denied,
    DomainError,
    Invalid,
    NotFound,
    Unavailable,
    flatten,
)
from shared.runtime.auth import Principal, TokenStore, roster_refusal
from shared.runtime.survive import BROKER_ERRORS
from shared.runtime.trust import Signer

logger = logging.getLogger(__name__)

AUTH_FIELD = "authorization"
ROSTER_SERVICE = "visits"
RETRY_AFTER = 5  # seconds a client is told to wait when the broker or a service is away
Reply = tuple[int, Any]


class Unauthenticated(DomainError):
    """No bearer token, or one the token store does not know (401)."""

    http_status = 401

    def errors(self) -> dict[str, Any]:
        return {AUTH_FIELD: [str(self)]}


class RpcTimeout(Exception):
    """A service did not answer in time; the command may still complete, so a retry of the
    same request with the same Idempotency-Key is safe (it is sent with the same command id)."""

    status: ClassVar[int] = 504

    def __init__(self, service: str, method: str, seconds: float) -> None:
        super().__init__(f"{service} did not answer {method} within {seconds:g}s; "
                         "retrying with the same Idempotency-Key is safe")
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


def _retry_after(seconds: int) -> dict[str, str]:
    return {"Retry-After": str(seconds)}


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
    """One request as the handlers see it: who asks, the path values, the services (by their
    catalogue names)."""

    request: Request
    principal: Principal
    remotes: Mapping[str, Remote]
    params: dict[str, str] = field(default_factory=dict)
    health_timeout: float = 2.0
    broker: Callable[[], bool] = lambda: True  # does the broker answer (for /healthz)
    _body: dict[str, Any] | None = None
    keys: IdempotencyStore | None = None
    signer: Signer | None = None
    _cadres: dict[str, Any] = field(default_factory=dict)  # roster entries read for this call

    def __post_init__(self) -> None:
        check_plain(self.params, "path")  # no NUL in an id the handlers pass on

    @property
    def actor(self) -> str:
        return self.principal.actor

    def remote(self, service: str) -> Remote:
        try:
            return self.remotes[service]
        except KeyError:
            raise UnknownService(service) from None

    @property
    def roster(self) -> Remote:
        """The service that keeps the roster (tokens of cadres stand or fall by it)."""
        return self.remote(ROSTER_SERVICE)

    def cadre(self, cadre_id: str) -> Mapping[str, Any] | None:
        """The roster's entry for a cadre, or None when it does not know them; read once per
        request (the standing check and the handler ask about the same cadre)."""
        if cadre_id not in self._cadres:
            try:
                self._cadres[cadre_id] = self.roster.get_cadre(cadre_id)
            except NotFound:
                self._cadres[cadre_id] = None
        return self._cadres[cadre_id]

    def act(self, remote: Remote, method: str, *args: Any) -> Any:
        """Call `method(signed principal, *args)`: the principal signed for exactly this call,
        which the service checks before it decides anything."""
        assert self.signer is not None, "the gateway signs every call made for a principal"
        return remote.call(method, self.signer.sign(self.principal, method, args), *args)

    def body(self, schema: type[Schema]) -> dict[str, Any]:
        """The JSON body (as received: the services validate it again), validated by schema."""
        if self._body is None:
            self._body = read_json_object(self.request)
        load(schema, self._body)
        return self._body

    def query(self, schema: type[Schema]) -> dict[str, str]:
        args = self.request.args.to_dict()
        check_plain(args, "query")
        load(schema, args)
        return args

    def command_id(self) -> str | None:
        """The command id to send this write with: the request's Idempotency-Key claim
        (idempotency.py), or None without a key, so the write is always new. Raises Replay,
        KeyReused or KeyInFlight; call it last before the write."""
        return claim_for(self.keys, self.request, self.actor, self._body)


ANONYMOUS = Principal(role="anonymous", token_id="-")


def check_standing(call: Call, today: date) -> None:
    """A cadre's or head's token works only while its cadre stands on the roster as it did
    when the token was made: off the roster, or (a head) moved to another unit, from that
    day the token is refused (401), whatever its expiry."""
    cadre_id = call.principal.cadre_id
    if cadre_id is None:
        return
    reason = roster_refusal(call.principal, call.cadre(cadre_id), today)
    if reason is not None:
        raise Unauthenticated(f"token no longer valid: {reason}")


def serve(
    request: Request,
    handler: Callable[[Call], Reply],
    *,
    tokens: TokenStore,
    remotes: Mapping[str, Remote],
    params: dict[str, str],
    public: bool = False,
    health_timeout: float = 2.0,
    keys: IdempotencyStore | None = None,
    signer: Signer | None = None,
    today: date | None = None,
    broker: Callable[[], bool] = lambda: True,
) -> Response:
    """Authenticate (unless public), run handler, and turn any outcome into a JSON response.

    What is away answers 503 with Retry-After, never 500: the broker (the request could not be
    sent, or its reply was lost with the connection), a service not running, a service's
    database. A request sent whose reply did not come in time answers 504 (it may still be
    carried out: the outcome is unknown; see idempotency.py for why a retry is safe)."""
    try:
        principal = ANONYMOUS if public else authenticate(request, tokens)
        call = Call(request, principal, remotes, params, health_timeout, broker, keys=keys,
                    signer=signer)
        if not public and today is not None:
            check_standing(call, today)
        status, body = handler(call)
        return json_response(status, body, _retry_after(RETRY_AFTER) if status == 503 else None)
    except Replay as exc:  # a retry of a write that succeeded: its answer again
        return exc.response()
    except DomainError as exc:
        return error_response(exc.http_status, exc.errors())
    except Unavailable as exc:  # a service's database, said by the service
        return error_response(exc.http_status, exc.errors(), _retry_after(exc.retry_after))
    except RpcTimeout as exc:
        logger.warning("%s %s: %s", request.method, request.path, exc)
        return error_response(exc.status, {SCHEMA_FIELD: [str(exc)]}, _retry_after(RETRY_AFTER))
    except UnknownService as exc:
        logger.warning("%s %s: %s", request.method, request.path, exc)
        name = exc.args[0] if exc.args else "?"
        return error_response(503, {SCHEMA_FIELD: [f"service {name} is not running"]},
                              _retry_after(RETRY_AFTER))
    except BROKER_ERRORS as exc:
        logger.warning("%s %s: the broker is unreachable: %r", request.method, request.path,
                       exc)
        return error_response(503, {SCHEMA_FIELD: ["the broker is unreachable; retry after "
                                                   f"{RETRY_AFTER}s"]}, _retry_after(RETRY_AFTER))
    except Exception as exc:
        if keys is not None and outage(keys.engine, exc):  # the idempotency store's database
            logger.warning("%s %s: the gateway's database is unavailable: %r", request.method,
                           request.path, exc)
            return error_response(503, {SCHEMA_FIELD: ["the gateway's database is unavailable; "
                                                       f"retry after {RETRY_AFTER}s"]},
                                  _retry_after(RETRY_AFTER))
        logger.exception("%s %s failed", request.method, request.path)
        return error_response(500, {SCHEMA_FIELD: ["internal error"]})
