"""The field vocabulary the services' wire contracts are written in: ids, bounded text, choices,
JSON arrays held as tuples, and the shapes more than one service takes (a place, a piece of
evidence, a resident's details), with the `PERSONAL` mark that makes the log encrypt a field.

One copy, so that a place or a resident's phone is checked the same way by every service that
takes it (the cases service takes both from the visits it follows), and so that services need
not import one another for it: the kernel lies below them (import-linter's layers).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import field
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
PHONE_PATTERN = re.compile(r"^\+?[0-9][0-9 -]{2,30}$")
EVIDENCE_KINDS = ("photo", "document", "audio", "video", "other")
PERSONAL = {"personal": True, "x-personal": True}  # x-: apispec copies it into OpenAPI
FRESH_SUBJECT = "grassroots.fresh_subject"  # a command field's metadata: see `fresh_subject`


def fresh_subject(make: Callable[[], str]) -> Any:
    """A command field holding the id a new data subject (a resident) gets if the command
    creates one: `make()` by default; the service that runs the command puts a spare in it
    whose key is already stored (`Spares`), when its keys live apart."""
    return field(default_factory=make, metadata={FRESH_SUBJECT: make})


class TupleList(fields.List):
    """A JSON array loaded as a tuple, as the frozen commands hold it."""

    container = tuple  # what shared.kernel.compiled's fast loader makes of it, the same

    def _deserialize(  # type: ignore[override]
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> tuple[Any, ...]:
        return tuple(super()._deserialize(value, attr, data, **kwargs))


def not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("must not be blank")


def plain(value: str) -> None:
    """No NUL (the log refuses it: PostgreSQL cannot store it) and no lone surrogate (it cannot
    be encoded); the gateway refuses both first, this holds for any other caller."""
    if "\x00" in value:
        raise ValidationError("must not contain NUL (U+0000)")
    if not value.isascii() and any("\ud800" <= char <= "\udfff" for char in value):
        raise ValidationError("contains a lone surrogate (U+D800-U+DFFF)")


def text(max_length: int = 200, **kwargs: Any) -> fields.String:
    """A non-blank string of bounded length."""
    return fields.String(validate=[validate.Length(max=max_length), not_blank, plain], **kwargs)


def ident(**kwargs: Any) -> fields.String:
    """A client-chosen id: it becomes part of a stream name and a URL, so it is kept plain."""
    message = "must be 1-100 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
    return fields.String(validate=validate.Regexp(ID_PATTERN, error=message), **kwargs)


def one_of(choices: Sequence[str], **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.OneOf(choices), **kwargs)


class PlaceSchema(Schema):
    township = text(required=True)
    village = text()
    community = text()

    @validates_schema
    def _one_locality(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "village" in data and "community" in data:
            raise ValidationError("give a village or a community, not both", "community")


class EvidenceSchema(Schema):
    kind = one_of(EVIDENCE_KINDS, required=True)
    ref = text(500, required=True, metadata={"description": "a URL or a storage key"})


class ResidentSchema(Schema):
    """A resident as a request names them; each service says in `id` where the id comes from."""

    id = ident(load_default=None)
    name = text(100, required=True, metadata=PERSONAL)
    phone = fields.String(
        load_default=None, allow_none=True, metadata=PERSONAL,
        validate=validate.Regexp(PHONE_PATTERN, error="not a phone number"),
    )
    address = text(300, load_default=None, allow_none=True, metadata=PERSONAL)


class ResidentData(Schema):
    """A resident's details in an event: encrypted under their key, never published."""

    name = text(100, required=True, metadata=PERSONAL)
    phone = fields.String(required=True, allow_none=True, metadata=PERSONAL)
    address = fields.String(required=True, allow_none=True, metadata=PERSONAL)


class ResidentReadSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(allow_none=True, metadata=PERSONAL)
    phone = fields.String(allow_none=True, metadata=PERSONAL)
    address = fields.String(allow_none=True, metadata=PERSONAL)
