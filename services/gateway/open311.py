"""Open311 GeoReport v2 under /open311/v2/, so civic tools can read the cases and report.

Not part of the JSON API's table: the spec has its own shapes (a `.json` or `.xml` suffix picks
the format, errors are `code`/`description` lists, POST bodies are form-encoded, a key may come
as the `api_key` form field). Reads are public; POST requests needs a token of role operator or
hotline, as a Bearer header or as `api_key`. The cases service answers (its `open311_read` and
`open311_post` RPCs, a document and a status); this module checks what comes in, renders what
goes out and turns what is away into the spec's error shape too. Its OpenAPI description is
open311_openapi.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from nameko.exceptions import UnknownService
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from services.cases.open311_format import Document, Open311Error, render, render_error, split_format
from services.gateway.http import Remote, RpcTimeout
from services.gateway.inputs import MAX_BODY, check_plain
from services.gateway.web import http
from shared.kernel.errors import DomainError
from shared.runtime.auth import Principal
from shared.runtime.survive import BROKER_ERRORS

logger = logging.getLogger(__name__)
PREFIX = "/open311/v2"
SERVICE = "cases"
FORM_TYPE = "application/x-www-form-urlencoded"
WRITERS = ("operator", "hotline")
RESOURCES = {"discovery", "services", "requests"}
# The methods each resource takes (HEAD comes with GET); any other method is 405 with Allow.
METHODS = {"discovery": ("GET",), "services": ("GET",), "requests": ("GET", "POST"),
           "requests/": ("GET",)}
OTHER_METHODS = "PUT,PATCH,DELETE,OPTIONS,TRACE,QUERY"  # the rest schemathesis tries


class NotAllowed(Open311Error):
    """A method the resource does not take: 405, and the methods it does take."""

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(405, f"{method} not allowed here; use {', '.join(allowed)}")
        self.allowed = allowed


def _refuse_method(method: str, stem: str) -> Open311Error:
    """405 for a resource this server has (one request: `requests/<id>`), else 404."""
    key = "requests/" if stem.startswith("requests/") and stem.count("/") == 1 else stem
    allowed = METHODS.get(key)
    if allowed is None:
        return Open311Error(404, f"no such resource: {stem}")
    return NotAllowed(method, allowed)


def _plain(values: Mapping[str, str], where: str) -> dict[str, str]:
    """Parameters as text (a NUL or lone surrogate is a 400 in the spec's shape)."""
    given = dict(values)
    try:
        check_plain(given, where)
    except DomainError as exc:
        raise Open311Error(400, *(f"{name}: {reason}" for name, reasons in exc.errors().items()
                                  for reason in reasons)) from None
    return given


def _document(reply: Mapping[str, Any]) -> tuple[Document, int]:
    return Document(reply["root"], reply["item"], reply["content"]), int(reply["status"])


def _principal(request: Request, tokens: Any, form: Mapping[str, str]) -> Principal:
    """The token of a POST: `Authorization: Bearer`, else the spec's `api_key` field."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else form.get("api_key", "")
    if not token:
        raise Open311Error(401, "a token is required: Authorization: Bearer <token>, or api_key")
    principal: Principal | None = tokens.lookup(token)
    if principal is None:
        raise Open311Error(401, "unknown, expired or revoked token")
    if principal.role not in WRITERS:
        raise Open311Error(403, f"role {principal.role} may not post requests; it needs "
                                f"{' or '.join(WRITERS)}")
    return principal


def _form(request: Request) -> dict[str, str]:
    if request.mimetype != FORM_TYPE:
        raise Open311Error(415, f"send the request as {FORM_TYPE} "
                                f"(was {request.mimetype or 'none'})")
    request.max_content_length = MAX_BODY
    try:
        return _plain(request.form.to_dict(), "form")
    except RequestEntityTooLarge:
        raise Open311Error(413, f"larger than {MAX_BODY} bytes") from None


def _answer(name: str, ask: Callable[[str], Mapping[str, Any]]) -> Response:
    """Split the format off `name`, ask the cases service, render; every refusal and every
    outage in the spec's error shape (JSON when the format itself is what is wrong)."""
    fmt, headers = "json", {}
    try:
        stem, fmt = split_format(name)
        document, status = _document(ask(stem))
        answer = render(document, fmt, status)
    except NotAllowed as exc:
        answer, headers = render_error(exc, fmt), {"Allow": ", ".join(exc.allowed)}
    except Open311Error as exc:
        answer = render_error(exc, fmt)
    except (RpcTimeout, UnknownService, *BROKER_ERRORS) as exc:
        logger.warning("open311 %s: %r", name, exc)
        answer = render_error(Open311Error(503, "the cases service is unavailable; retry "
                                                "later"), fmt)
        headers = {"Retry-After": "5"}
    return Response(answer.body, status=answer.status, headers=headers,
                    content_type=answer.content_type)


def install(cls: type) -> None:
    """Give the gateway class the Open311 entrypoints (reads, POST, and a 405 with Allow for
    any other method, in the spec's error shape); they use its token store, signer and cases
    proxy (`edge`, `trust`, `rpc_cases`)."""

    def cases(gateway: Any) -> Remote:
        return Remote(gateway.rpc_cases, SERVICE, gateway.edge.rpc_timeout)

    def open311_list(gateway: Any, request: Request, name: str) -> Response:
        def ask(stem: str) -> Mapping[str, Any]:
            if stem not in RESOURCES:
                raise Open311Error(404, f"no such resource: {stem}")
            return cases(gateway).call("open311_read", stem, _plain(request.args, "query"))

        return _answer(name, ask)

    def open311_request(gateway: Any, request: Request, name: str) -> Response:
        return _answer(name, lambda case_id: cases(gateway).call(
            "open311_read", "request", _plain(request.args, "query"), case_id))

    def open311_post(gateway: Any, request: Request, name: str) -> Response:
        def ask(stem: str) -> Mapping[str, Any]:
            if stem != "requests":
                raise _refuse_method("POST", stem)
            form = _form(request)
            who = _principal(request, gateway.edge.tokens, form)
            form.pop("api_key", None)
            signed = gateway.trust.sign(who, "open311_post", [form])
            return cases(gateway).call("open311_post", signed, form)

        return _answer(name, ask)

    def open311_other(gateway: Any, request: Request, name: str) -> Response:
        def ask(stem: str) -> Mapping[str, Any]:
            raise _refuse_method(request.method, stem)

        return _answer(name, ask)

    for method, rule, fn in (("GET", f"{PREFIX}/<name>", open311_list),
                             ("GET", f"{PREFIX}/requests/<name>", open311_request),
                             ("POST", f"{PREFIX}/<path:name>", open311_post),
                             (OTHER_METHODS, f"{PREFIX}/<path:name>", open311_other)):
        fn.__doc__ = f"{method} {rule}: Open311 GeoReport v2."
        setattr(cls, fn.__name__, http(method, rule)(fn))
