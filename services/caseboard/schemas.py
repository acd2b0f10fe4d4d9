"""The case board's wire contract: the query it answers and the board it returns. What each
figure counts, and in which month, is said once in domain.py's docstring; the descriptions
here are what OpenAPI shows of it."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from shared.campaign.policy import MONTH_PATTERN
from shared.kernel.dates import check_month, instant_field

NULL_RATE = "; null when there is nothing to divide by"


def _count(description: str) -> fields.Integer:
    return fields.Integer(required=True, metadata={"description": description})


def _rate(description: str) -> fields.Float:
    return fields.Float(required=True, allow_none=True,
                        metadata={"description": description + NULL_RATE})


class CaseBoardQuerySchema(Schema):
    """GET /case-board?month=YYYY-MM[&unit_id=][&as_of=]"""

    month = fields.String(
        required=True,
        validate=[validate.Regexp(MONTH_PATTERN, error="not a month YYYY-MM"), check_month],
        metadata={"description": "the month the cases were registered in (local time)"},
    )
    unit_id = fields.String(load_default=None, validate=validate.Length(1, 100))
    as_of = instant_field(load_default=None, metadata={
        "description": "count only the events recorded up to this instant",
    })


class CallbacksSchema(Schema):
    total = _count("callbacks (回访) recorded; a case called back twice counts twice")
    satisfied = _count("satisfied verdicts")
    basically_satisfied = _count("basically satisfied verdicts")
    unsatisfied = _count("unsatisfied verdicts")


class OriginsSchema(Schema):
    visit = _count("found on a cadre's visit (下访发现)")
    petition = _count("brought by a petitioner (上访)")
    hotline = _count("from the 12345 hotline")


class UnitBoardSchema(Schema):
    unit_id = fields.String(required=True, allow_none=True, metadata={
        "description": "the unit the cases are assigned to now; null: cases waiting for a unit",
    })
    received = _count("cases registered in the month, of this unit")
    accepted_on_time = _count("accepted (签收) within the acceptance limit")
    open = _count("a deadline runs: assigned, accepted, or an extension asked for")
    overdue = _count("overdue now (chased and not since resolved or given a new deadline)")
    resolved = _count("resolved (办结) and not reopened since, closed ones included")
    closed = _count("closed for good (销号)")
    parked = _count("parked (挂账) now")
    chased = _count("chased (催办: past a deadline) at least once")
    reopened = _count("reopened (重办) at least once")
    solved = _count("resolved with the outcome `solved`")
    callbacks = fields.Nested(CallbacksSchema, required=True)
    origins = fields.Nested(OriginsSchema, required=True)
    response_rate = _rate("accepted_on_time / received (响应率); null for waiting cases")
    resolution_rate = _rate("solved / resolved (解决率)")
    satisfaction_rate = _rate("(satisfied + basically_satisfied) / callbacks (满意率)")
    chase_rate = _rate("chased / received; null for waiting cases")
    rework_rate = _rate("reopened / cases resolved at least once")
    visit_share = _rate("origins.visit / received")


class CaseBoardSchema(Schema):
    """GET /case-board: per unit, the month's cases, with the instant and log position it
    reflects. A case counts in the month it was registered, for the unit it is assigned to."""

    month = fields.String(required=True)
    units = fields.List(fields.Nested(UnitBoardSchema), required=True)
    as_of = fields.AwareDateTime(allow_none=True, metadata={
        "description": "the as_of asked for; null for the live board",
    })
    checkpoints = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "per source log, the last position folded into the board",
    })
