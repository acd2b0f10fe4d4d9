"""What Open311 GeoReport v2 clients send: the query of GET requests and the form of POST
requests, loaded with marshmallow like the rest of the API and answered, when wrong, in the
spec's error shape (open311_format.py).

Unknown parameters are ignored, not refused: the spec's clients send extras this server does
not use (`api_key`, `device_id`, `account_id`, `media_url`, `attribute[...]`, vendors'
`extensions`). `email` is one of them: the resident's record keeps a name, a phone and an
address, nothing else.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from shared.kernel.dates import instant_field
from shared.kernel.fields import PHONE_PATTERN, text

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
    and optionally the resident's name and phone."""

    class Meta:
        unknown = EXCLUDE

    jurisdiction_id = fields.String()
    service_code = fields.String(required=True)
    lat = fields.Float(allow_nan=False, validate=validate.Range(-90, 90))
    long = fields.Float(allow_nan=False, validate=validate.Range(-180, 180))
    address_string = text(250)
    address_id = fields.String(metadata={"description": "a township unit's id"})
    description = text(2000)
    first_name = text(50)
    last_name = text(50)
    phone = fields.String(validate=validate.Regexp(PHONE_PATTERN, error="not a phone number"))

    @validates_schema
    def _location(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("lat" in data) != ("long" in data):
            raise ValidationError("lat and long come together", "long" if "lat" in data
                                  else "lat")
        if not {"lat", "address_string", "address_id"} & data.keys():
            raise ValidationError("give lat and long, address_string or address_id",
                                  "address_string")
