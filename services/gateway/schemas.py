"""Response shapes the gateway itself defines (the services' own are in their schemas.py)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class HealthSchema(Schema):
    """GET /healthz: the broker, and each service's answer to `status()` within a short
    deadline; 503 with Retry-After when anything is down."""

    ok = fields.Boolean(required=True,
                        metadata={"description": "the broker and every service answered"})
    broker = fields.String(required=True, validate=validate.OneOf(("ok", "down")))
    services = fields.Dict(
        keys=fields.String(), values=fields.String(validate=validate.OneOf(("ok", "down"))),
        required=True,
    )
