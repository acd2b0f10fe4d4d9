"""Domain errors every service raises and every client (HTTP or RPC) gets back intact.

Each error (a DomainError, or Unavailable for an outage) knows its HTTP status and its JSON
body, `{"errors": {field: [reasons]}}`, so the gateway maps them without a lookup table. Each
is registered with nameko so an RPC caller receives an instance of the same class, not a
`RemoteError`; that is why every constructor's positional arguments are exactly `self.args`
(nameko rebuilds the error as `cls(*args)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from nameko.exceptions import deserialize_to_instance

SCHEMA_FIELD = "_schema"  # marshmallow's key for errors that belong to no single field


def flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error map as `{"place.township": [...], "hazards.0.status": [...]}`;
    a nested `_schema` error belongs to its parent field."""
    if isinstance(messages, Mapping):
        out: dict[str, list[str]] = {}
        for key, value in messages.items():
            name = str(key) if not prefix else prefix if key == SCHEMA_FIELD else f"{prefix}.{key}"
            for leaf, reasons in flatten(value, name).items():
                out.setdefault(leaf, []).extend(reasons)
        return out
    if isinstance(messages, list | tuple):
        out = {}
        for item in messages:
            for leaf, reasons in flatten(item, prefix).items():
                out.setdefault(leaf, []).extend(reasons)
        return out
    return {prefix or SCHEMA_FIELD: [str(messages)]}


class DomainError(Exception):
    """Base of the errors a decision can end in; never a bug, always the caller's to fix."""

    http_status: ClassVar[int] = 400

    def errors(self) -> dict[str, Any]:
        """The `{field: [reasons]}` map; subclasses say which field."""
        return {SCHEMA_FIELD: [str(self)]}

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of the HTTP response."""
        return {"errors": self.errors()}


@deserialize_to_instance
class Rejected(DomainError):
    """A rule was broken by one field's value (400)."""

    http_status = 400

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"

    def errors(self) -> dict[str, Any]:
        return {self.field: [self.reason]}


@deserialize_to_instance
class Invalid(DomainError):
    """The request failed schema validation; `messages` is marshmallow's error map (400)."""

    http_status = 400

    def __init__(self, messages: dict[str, Any]) -> None:
        super().__init__(messages)
        self.messages = messages

    def __str__(self) -> str:
        return f"invalid request: {self.messages}"

    def errors(self) -> dict[str, Any]:
        return self.messages


@deserialize_to_instance
class UnknownReference(DomainError):
    """The request names a unit or cadre nobody registered (422, naming it)."""

    http_status = 422

    def __init__(self, kind: str, id: str, field: str | None = None) -> None:
        super().__init__(kind, id, field)
        self.kind = kind
        self.id = id
        self.field = field or f"{kind}_id"

    def __str__(self) -> str:
        return f"unknown {self.kind} {self.id!r}"

    def errors(self) -> dict[str, Any]:
        return {self.field: [str(self)]}


@deserialize_to_instance
class NotFound(DomainError):
    """The thing the request is about (e.g. the visit being corrected) does not exist (404)."""

    http_status = 404

    def __init__(self, kind: str, id: str) -> None:
        super().__init__(kind, id)
        self.kind = kind
        self.id = id

    def __str__(self) -> str:
        return f"no {self.kind} {self.id!r}"

    def errors(self) -> dict[str, Any]:
        return {f"{self.kind}_id": [str(self)]}


@deserialize_to_instance
class Conflict(DomainError):
    """The request contradicts the current state, e.g. correcting a retracted visit (409)."""

    http_status = 409

    def __init__(self, reason: str, field: str = SCHEMA_FIELD) -> None:
        super().__init__(reason, field)
        self.reason = reason
        self.field = field

    def __str__(self) -> str:
        return self.reason

    def errors(self) -> dict[str, Any]:
        return {self.field: [self.reason]}


@deserialize_to_instance
class Denied(DomainError):
    """The principal may not do this (403): decided by the service that writes, in the same
    decision as the write, so a check and the write can never disagree."""

    http_status = 403

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason

    def errors(self) -> dict[str, Any]:
        return {"authorization": [self.reason]}


@deserialize_to_instance
class Unavailable(Exception):  # noqa: N818 - a state of the platform, named as HTTP names it
    """Something the request needs is away for now (its database, the broker, a service): 503
    with Retry-After. Not the caller's mistake, unlike a DomainError: the same request may
    succeed later, and with an Idempotency-Key its retry writes at most once."""

    http_status: ClassVar[int] = 503

    def __init__(self, what: str, retry_after: int = 5) -> None:
        super().__init__(what, retry_after)
        self.what = what
        self.retry_after = int(retry_after)  # nameko carries the arguments as strings

    def __str__(self) -> str:
        return f"{self.what} is unavailable; retry after {self.retry_after}s"

    def errors(self) -> dict[str, Any]:
        return {SCHEMA_FIELD: [str(self)]}

    def to_dict(self) -> dict[str, Any]:
        return {"errors": self.errors()}
