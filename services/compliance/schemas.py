"""The compliance view's wire contract: the query it answers and the report it returns."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.compliance.domain import MONTH_PATTERN
from shared.kernel.dates import check_month, instant_field

MET = (
    "true: a visit that day; false: none while the rule applied; null: the rule did not apply "
    "(no unit day set, or the day fell on leave or outside the cadre's time on the roster)"
)


class ComplianceQuerySchema(Schema):
    """GET /compliance?month=YYYY-MM[&unit_id=][&as_of=]"""

    month = fields.String(
        required=True,
        validate=[validate.Regexp(MONTH_PATTERN, error="not a month YYYY-MM"), check_month],
    )
    unit_id = fields.String(load_default=None, validate=validate.Length(1, 100))
    as_of = instant_field(load_default=None, metadata={
        "description": "assess from only the events recorded up to this instant",
    })


class CadreComplianceSchema(Schema):
    cadre_id = fields.String(required=True)
    unit_id = fields.String(required=True, metadata={
        "description": "the cadre's unit at the month's end, or when they left the roster",
    })
    days = fields.Integer(required=True, metadata={"description": "grassroots days in the month"})
    dates = fields.List(fields.Date(), required=True)
    fixed_day_met = fields.Boolean(required=True, allow_none=True, metadata={"description": MET})
    unit_day_met = fields.Boolean(required=True, allow_none=True, metadata={"description": MET})
    exempt = fields.Boolean(required=True, metadata={
        "description": "on leave every day the cadre was on the roster this month",
    })
    compliant = fields.Boolean(required=True, allow_none=True, metadata={
        "description": "null when exempt",
    })
    backfilled_days = fields.Integer(required=True, metadata={
        "description": "days resting only on backfilled visits (they still count)",
    })


class UnitComplianceSchema(Schema):
    unit_id = fields.String(required=True)
    cadres = fields.Integer(required=True)
    compliant = fields.Integer(required=True)
    exempt = fields.Integer(required=True)
    rate = fields.Float(required=True, allow_none=True, metadata={
        "description": "compliant / (cadres - exempt); null when no cadre is assessable",
    })


class ComplianceReportSchema(Schema):
    """GET /compliance: the view's report, with the instant and log positions it reflects."""

    month = fields.String(required=True)
    cadres = fields.List(fields.Nested(CadreComplianceSchema), required=True)
    units = fields.List(fields.Nested(UnitComplianceSchema), required=True)
    as_of = fields.AwareDateTime(allow_none=True, metadata={
        "description": "the as_of asked for; null for the live view",
    })
    checkpoints = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "per source log, the last position folded into the view",
    })
