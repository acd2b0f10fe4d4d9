"""Response shapes the gateway itself defines (the services' own are in their schemas.py)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class HealthSchema(Schema):
    """GET /healthz: each service's answer to `status()` within a short deadline."""

    ok = fields.Boolean(required=True, metadata={"description": "every service answered"})
    services = fields.Dict(
        keys=fields.String(), values=fields.String(validate=validate.OneOf(("ok", "down"))),
        required=True,
    )
