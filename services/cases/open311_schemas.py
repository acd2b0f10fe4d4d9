"""Open311 GeoReport v2's contract: what clients send (the query of GET requests, the form of
POST requests), loaded with marshmallow like the rest of the API and answered, when wrong, in
the spec's error shape (open311_format.py); and the shape of every document sent back. The
gateway's OpenAPI document is generated from these schemas, so what it promises is what is
checked and sent.

Unknown parameters are ignored, not refused: the spec's clients send extras this server does
not use (`device_id`, `account_id`, `media_url`, `attribute[...]`, vendors' `extensions`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from services.cases.schemas import email_field
from shared.kernel.dates import instant_field
from shared.kernel.fields import PERSONAL, PHONE_PATTERN, text

SPAN = dt.timedelta(days=90)  # the spec's default window, and the widest a query may ask for
LIMIT = 1000  # the spec's default limit, and the largest page
STATUSES = ("open", "closed")


class CommaList(fields.Field):
    """The spec's `a,b,c` parameters, as a tuple of the names given."""

    def _deserialize(self, value: Any, attr: str | None, data: Any,
                     **kwargs: Any) -> tuple[str, ...]:
        if not isinstance(value, str):
            raise ValidationError("must be a comma-separated list")
        items = tuple(item.strip() for item in value.split(",") if item.strip())
        if not items:
            raise ValidationError("must name at least one")
        return items


def _statuses(values: tuple[str, ...]) -> None:
    wrong = [value for value in values if value not in STATUSES]
    if wrong:
        raise ValidationError(f"must be open or closed, not {', '.join(wrong)}")


class RequestsQuerySchema(Schema):
    """GET requests: the spec's filters, and `page`/`page_size` (page 1 is the newest)."""

    class Meta:
        unknown = EXCLUDE

    jurisdiction_id = fields.String()
    service_request_id = CommaList()
    service_code = CommaList()
    status = CommaList(validate=_statuses)
    start_date = instant_field()
    end_date = instant_field()
    page = fields.Integer(load_default=1, validate=validate.Range(1, 100_000))
    page_size = fields.Integer(load_default=LIMIT, validate=validate.Range(1, LIMIT))

    @validates_schema
    def _span(self, data: dict[str, Any], **kwargs: Any) -> None:
        start, end = data.get("start_date"), data.get("end_date")
        if start is not None and end is not None:
            if end < start:
                raise ValidationError("must not be before start_date", "end_date")
            if end - start > SPAN:
                raise ValidationError("may not be more than 90 days after start_date",
                                      "end_date")


class JurisdictionSchema(Schema):
    """The one parameter every other GET takes."""

    class Meta:
        unknown = EXCLUDE

    jurisdiction_id = fields.String()


class PostRequestSchema(Schema):
    """POST requests: a category, a location (coordinates, an address, or an address id),
    and optionally who reports it: the spec's first_name, last_name, phone and email, which
    become the resident's personal data (encrypted in the log, never in an Open311 answer)."""

    class Meta:
        unknown = EXCLUDE

    jurisdiction_id = fields.String()
    api_key = fields.String(metadata={
        "description": "a token of role operator or hotline, when not sent as "
                       "`Authorization: Bearer`",
    })
    service_code = fields.String(required=True)
    lat = fields.Float(allow_nan=False, validate=validate.Range(-90, 90))
    long = fields.Float(allow_nan=False, validate=validate.Range(-180, 180))
    address_string = text(250)
    address_id = fields.String(metadata={"description": "a township unit's id"})
    description = text(2000)
    first_name = text(50, metadata=PERSONAL)
    last_name = text(50, metadata=PERSONAL)
    phone = fields.String(metadata=PERSONAL,
                          validate=validate.Regexp(PHONE_PATTERN, error="not a phone number"))
    email = email_field()

    @validates_schema
    def _location(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("lat" in data) != ("long" in data):
            raise ValidationError("lat and long come together", "long" if "lat" in data
                                  else "lat")
        if not {"lat", "address_string", "address_id"} & data.keys():
            raise ValidationError("give lat and long, address_string or address_id",
                                  "address_string")


# --- what is sent back ----------------------------------------------------------------------


class EndpointSchema(Schema):
    specification = fields.String(required=True)
    url = fields.Url(required=True, require_tld=False)
    changeset = fields.AwareDateTime(required=True)
    type = fields.String(required=True, validate=validate.OneOf(("production", "test")))
    formats = fields.List(fields.String(), required=True)


class DiscoverySchema(Schema):
    changeset = fields.AwareDateTime(required=True)
    contact = fields.String(required=True)
    key_service = fields.String(required=True)
    endpoints = fields.List(fields.Nested(EndpointSchema), required=True)


class ServiceSchema(Schema):
    """A category, which takes a request at once (`realtime`) and asks nothing more
    (`metadata` false)."""

    service_code = fields.String(required=True)
    service_name = fields.String(required=True)
    description = fields.String(required=True)
    metadata = fields.Boolean(required=True)
    type = fields.String(required=True, validate=validate.OneOf(("realtime", "batch",
                                                                 "blackbox")))
    keywords = fields.String(required=True)
    group = fields.String(required=True)


class ServiceRequestSchema(Schema):
    """A case as a service request: the fields it has (none of them personal)."""

    service_request_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    status_notes = fields.String()
    service_name = fields.String()
    service_code = fields.String(required=True)
    description = fields.String()
    agency_responsible = fields.String()
    service_notice = fields.String()
    requested_datetime = fields.AwareDateTime(required=True)
    updated_datetime = fields.AwareDateTime(required=True)
    expected_datetime = fields.AwareDateTime()
    address = fields.String()
    lat = fields.Float()
    long = fields.Float()


class PostedRequestSchema(Schema):
    """The answer to a POST: the new request's id (realtime: no token to wait on)."""

    service_request_id = fields.String(required=True)
    service_notice = fields.String()


class ErrorSchema(Schema):
    code = fields.Integer(required=True, metadata={"description": "the HTTP status"})
    description = fields.String(required=True)


@dataclass(frozen=True)
class Shape:
    """A document's XML root and item element names (JSON: the items, or the one mapping),
    and the schema of an item."""

    root: str
    item: str | None
    schema: type[Schema]


DISCOVERY = Shape("discovery", None, DiscoverySchema)
SERVICES = Shape("services", "service", ServiceSchema)
REQUESTS = Shape("service_requests", "request", ServiceRequestSchema)
POSTED = Shape("service_requests", "request", PostedRequestSchema)
ERRORS = Shape("errors", "error", ErrorSchema)
