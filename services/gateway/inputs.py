"""Reading a request at the edge, so that no input can reach a service in a form it cannot
store or answer: the body must be declared JSON (415), fit in MAX_BODY (413, chunked bodies
included), be a JSON object nested at most MAX_DEPTH deep, and hold no string (key or value,
query parameter or path value) with a lone surrogate or NUL. A lone surrogate cannot be encoded
as UTF-8 (the log, the bus and our own answer would fail on it) and NUL cannot be stored by
PostgreSQL, so both are refused here with the field they were found in (400), never echoed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request

from shared.kernel.errors import DomainError, Invalid

JSON_TYPE = "application/json"
CHARSETS = ("utf-8", "utf8")  # RFC 8259: JSON between systems is UTF-8
MAX_BODY = 1 << 20  # bytes; a visit with its diary is a few kB
MAX_DEPTH = 32  # the deepest request (a visit's target.resident) is 3 levels
BODY = "body"


class TooLarge(DomainError):
    http_status = 413

    def errors(self) -> dict[str, Any]:
        return {BODY: [str(self)]}


class UnsupportedMediaType(DomainError):
    http_status = 415

    def errors(self) -> dict[str, Any]:
        return {"content-type": [str(self)]}


def check_content_type(request: Request) -> None:
    """The body must be `application/json`, with no charset or a UTF-8 one (415)."""
    if request.mimetype != JSON_TYPE:
        given = request.mimetype or "none"
        raise UnsupportedMediaType(f"send the body as {JSON_TYPE} (was {given})")
    charset = request.mimetype_params.get("charset")
    if charset is not None and charset.lower() not in CHARSETS:
        raise UnsupportedMediaType(f"{JSON_TYPE} is read as UTF-8 only (charset was {charset})")


def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object of plain text, or an error naming where it is not."""
    check_content_type(request)
    # Also bounds a chunked body while it is read; werkzeug stops *at* the bound without
    # saying so, hence one byte more than allowed, to tell a full body from a cut one.
    request.max_content_length = MAX_BODY + 1
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raw = None
    if raw is None or len(raw) > MAX_BODY:
        raise TooLarge(f"larger than {MAX_BODY} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid({BODY: [f"not valid UTF-8: {exc.reason} at byte {exc.start}"]}) from None
    if not text.strip():
        raise Invalid({BODY: ["a JSON object is required"]})
    try:
        body = _DECODER.decode(text)
    except RecursionError:
        raise Invalid({BODY: [f"nested deeper than {MAX_DEPTH} levels"]}) from None
    except ValueError as exc:
        raise Invalid({BODY: [f"not valid JSON: {exc}"]}) from None
    if not isinstance(body, dict):
        raise Invalid({BODY: ["must be a JSON object"]})
    check_plain(body, BODY)
    return body


def _not_json(name: str) -> Any:
    """NaN and Infinity, which Python's parser takes but JSON (RFC 8259) does not have."""
    raise ValueError(f"{name} is not a JSON value")


_DECODER = json.JSONDecoder(parse_constant=_not_json)  # json.loads would build one per call


def text_problem(value: str) -> str | None:
    """Why a string cannot be taken (without repeating it), or None."""
    if "\x00" in value:
        return "must not contain NUL (U+0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (U+D800-U+DFFF), which is not valid Unicode text"
    return None


def check_plain(value: Any, root: str) -> None:
    """Invalid naming every place in `value` (dotted paths, as shared.kernel.errors.flatten makes
    them; `root` for the whole) that holds a bad string or key, or nests too deep."""
    errors: dict[str, list[str]] = {}
    stack: list[tuple[str, Any, int]] = [("", value, 0)]
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, str):
            reason = text_problem(item)
            if reason:
                errors.setdefault(path or root, []).append(reason)
            continue
        if not isinstance(item, Mapping | list):
            continue
        if depth >= MAX_DEPTH:
            raise Invalid({BODY: [f"nested deeper than {MAX_DEPTH} levels"]})
        pairs = item.items() if isinstance(item, Mapping) else enumerate(item)
        for key, child in pairs:
            reason = text_problem(key) if isinstance(key, str) else None
            if reason:
                errors.setdefault(path or root, []).append(f"a key {reason}")
                continue
            stack.append((f"{path}.{key}" if path else str(key), child, depth + 1))
    if errors:
        raise Invalid(errors)
