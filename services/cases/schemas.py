"""The cases service's wire contract: commands in, event data recorded, answers out.

A command schema loads to the keyword arguments of its dataclass in case_commands.py (the
case id comes from the URL). The resident's name, phone, address and e-mail are marked
personal (as the visits service marks the first three), so the log encrypts them under the
resident's key and never publishes them; `resident_id` is the data subject. Categories are
configuration (case_policy.yml), so the decision, not the schema, checks a category.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from services.cases import events as e
from shared.kernel import fields as shared
from shared.kernel.dates import date_field, instant_field
from shared.kernel.fields import (
    PERSONAL,
    EvidenceSchema,
    TupleList,
    ident,
    one_of,
    text,
)

ORIGINS = ("visit", "petition", "hotline")
OUTCOMES = ("solved", "explained", "not_our_duty", "duplicate")
SATISFACTIONS = ("satisfied", "basically_satisfied", "unsatisfied")
DECISIONS = ("approved", "denied")
EMAIL_LENGTH = 254  # the longest address SMTP carries (RFC 5321)
STATES = ("registered", "assigned", "returned", "accepted", "extension_requested", "resolved",
          "called_back", "parked", "closed")


class PlaceSchema(shared.PlaceSchema):
    """Where the difficulty is (never the resident's address: that is personal)."""

    detail = text(300, metadata={"description": "a street, a building, a landmark"})
    lat = fields.Float(validate=validate.Range(-90, 90), allow_nan=False,
                       metadata={"description": "WGS84 latitude of the spot, when known"})
    long = fields.Float(validate=validate.Range(-180, 180), allow_nan=False,
                        metadata={"description": "WGS84 longitude of the spot, when known"})


def email_field(**kwargs: Any) -> fields.Email:
    """A resident's e-mail address (an Open311 report may give one): personal data."""
    return fields.Email(validate=validate.Length(max=EMAIL_LENGTH), metadata=PERSONAL, **kwargs)


class ResidentSchema(shared.ResidentSchema):
    id = ident(load_default=None, metadata={
        "description": "the resident's id when known (e.g. from the visit); else one is issued",
    })
    email = email_field(load_default=None, allow_none=True)


class CaseResidentData(shared.ResidentData):
    """The resident's details in case.registered, encrypted as one value; `email` is absent
    from cases registered before it was kept."""

    email = fields.String(allow_none=True, metadata=PERSONAL)


class CaseResidentReadSchema(shared.ResidentReadSchema):
    email = fields.String(allow_none=True, metadata=PERSONAL)


# --- commands -----------------------------------------------------------------------------


class RegisterCaseSchema(Schema):
    case_id = ident(data_key="id", load_default=None, metadata={
        "description": "client-chosen id (one is made if left out): a retry is harmless",
    })
    origin = one_of(ORIGINS, required=True)
    category = ident(required=True, metadata={"description": "a code of GET services.json"})
    description = text(2000, required=True)
    place = fields.Nested(PlaceSchema, required=True)
    unit_id = ident(load_default=None, metadata={"description": "the unit whose area it is"})
    resident = fields.Nested(ResidentSchema, load_default=None, allow_none=True)
    visit_id = ident(load_default=None, metadata={"description": "the visit that found it"})
    cadre_ids = TupleList(ident(), load_default=())
    received_at = instant_field(load_default=None, metadata={
        "description": "when the letter or call came in (a petition entered late); default: "
                       "now. The deadlines count from its local date. Not in the future, at "
                       "most `receipt_window_working_days` of the case policy before today",
    })


class AssignCaseSchema(Schema):
    unit_id = ident(required=True)
    note = fields.String(load_default="", validate=validate.Length(max=1000))


class AcceptCaseSchema(Schema):
    pass


class ReturnCaseSchema(Schema):
    reason = text(1000, required=True)


class NoteProgressSchema(Schema):
    note = text(2000, required=True)


class RequestExtensionSchema(Schema):
    working_days = fields.Integer(required=True, strict=True, validate=validate.Range(1, 250))
    reason = text(1000, required=True)


class DecideExtensionSchema(Schema):
    decision = one_of(DECISIONS, required=True)
    comment = fields.String(load_default="", validate=validate.Length(max=1000))


class ResolveCaseSchema(Schema):
    outcome = one_of(OUTCOMES, required=True)
    result = text(2000, required=True)
    evidence = TupleList(fields.Nested(EvidenceSchema), load_default=())


class RecordCallbackSchema(Schema):
    satisfaction = one_of(SATISFACTIONS, required=True)
    comment = text(1000, required=True)


class ReopenCaseSchema(Schema):
    reason = text(1000, required=True)


class CloseCaseSchema(Schema):
    comment = fields.String(load_default="", validate=validate.Length(max=1000))


class ParkCaseSchema(Schema):
    reason = text(1000, required=True)
    review_date = date_field(required=True, metadata={
        "description": "the local date the case comes back to its unit",
    })


class CaseQuerySchema(Schema):
    unit_id = ident()
    state = one_of(STATES)
    overdue = fields.Boolean()
    page = fields.Integer(load_default=1, strict=False, validate=validate.Range(1, 100000))
    page_size = fields.Integer(load_default=50, strict=False, validate=validate.Range(1, 500))


# --- event data (the published contract) --------------------------------------------------


def _case() -> dict[str, fields.Field]:
    return {"case_id": ident(required=True)}


def _data(name: str, **more: fields.Field) -> type[Schema]:
    return Schema.from_dict({**_case(), **more}, name=name)


class CaseRegisteredData(Schema):
    case_id = ident(required=True)
    origin = one_of(ORIGINS, required=True)
    category = ident(required=True)
    description = text(2000, required=True)
    place = fields.Nested(PlaceSchema, required=True)
    unit_id = ident(required=True, allow_none=True)
    visit_id = ident(required=True, allow_none=True)
    cadre_ids = fields.List(ident(), required=True)
    resident_id = ident(required=True, allow_none=True, metadata={
        "description": "the data subject: the resident's key encrypts `resident`", "subject": True,
    })
    resident = fields.Nested(CaseResidentData, required=True, allow_none=True, metadata={
        "description": "encrypted under the resident's key; null once the resident is forgotten",
    })
    received_at = fields.AwareDateTime(metadata={
        "description": "when the case came in (the deadlines count from it); absent from "
                       "cases registered before it was recorded",
    })


def _day(**kwargs: Any) -> fields.Date:
    return fields.Date(required=True, **kwargs)


def _level() -> fields.String:
    return ident(required=True, metadata={"description": "what fired: the deadline's kind-round"})


def _kind(**kwargs: Any) -> fields.String:
    return one_of(("acceptance", "resolution"), **kwargs)


CaseAssignedData = _data("CaseAssignedData", unit_id=ident(required=True),
                         note=fields.String(required=True), accept_by=_day(),
                         resolve_by=_day(), upheld=fields.Boolean(required=True))
CaseAcceptedData = _data("CaseAcceptedData", unit_id=ident(required=True),
                         on_time=fields.Boolean(required=True))
CaseReturnedData = _data("CaseReturnedData", unit_id=ident(required=True),
                         reason=text(1000, required=True))
ProgressNotedData = _data("ProgressNotedData", note=text(2000, required=True))
ExtensionRequestedData = _data(
    "ExtensionRequestedData", working_days=fields.Integer(required=True, strict=True),
    reason=text(1000, required=True), deadline=_day())
ExtensionDecidedData = _data("ExtensionDecidedData", decision=one_of(DECISIONS, required=True),
                             comment=fields.String(required=True), resolve_by=_day())
CaseResolvedData = _data(
    "CaseResolvedData", outcome=one_of(OUTCOMES, required=True),
    result=text(2000, required=True), evidence=fields.List(fields.Nested(EvidenceSchema),
                                                           required=True),
    resolved_by=fields.String(required=True),
    resolver_cadre_id=ident(required=True, allow_none=True), callback_due=_day())
CallbackRecordedData = _data(
    "CallbackRecordedData", satisfaction=one_of(SATISFACTIONS, required=True),
    comment=text(1000, required=True),
    unsatisfied_count=fields.Integer(required=True, strict=True))
CaseClosedData = _data("CaseClosedData", comment=fields.String(required=True))
CaseReopenedData = _data("CaseReopenedData", reason=text(1000, required=True),
                         resolve_by=_day())
CaseParkedData = _data("CaseParkedData", reason=text(1000, required=True), review_date=_day())
CaseUnparkedData = _data("CaseUnparkedData", level=_level(), review_date=_day(),
                         resolve_by=_day())
DeadlineApproachingData = _data("DeadlineApproachingData", level=_level(),
                                kind=_kind(required=True), deadline=_day())
CaseOverdueData = _data("CaseOverdueData", level=_level(), kind=_kind(required=True),
                        deadline=_day())
CaseEscalatedData = _data(
    "CaseEscalatedData", level=_level(), reason=text(200, required=True),
    kind=_kind(), deadline=fields.Date())
DifficultyRemovedData = _data("DifficultyRemovedData", visit_id=ident(required=True),
                              reason=text(1000, required=True))

EVENT_SCHEMAS: dict[str, type[Schema]] = {
    e.CASE_REGISTERED: CaseRegisteredData,
    e.CASE_ASSIGNED: CaseAssignedData,
    e.CASE_ACCEPTED: CaseAcceptedData,
    e.CASE_RETURNED: CaseReturnedData,
    e.PROGRESS_NOTED: ProgressNotedData,
    e.EXTENSION_REQUESTED: ExtensionRequestedData,
    e.EXTENSION_DECIDED: ExtensionDecidedData,
    e.CASE_RESOLVED: CaseResolvedData,
    e.CALLBACK_RECORDED: CallbackRecordedData,
    e.CASE_CLOSED: CaseClosedData,
    e.CASE_REOPENED: CaseReopenedData,
    e.CASE_PARKED: CaseParkedData,
    e.CASE_UNPARKED: CaseUnparkedData,
    e.DEADLINE_APPROACHING: DeadlineApproachingData,
    e.CASE_OVERDUE: CaseOverdueData,
    e.CASE_ESCALATED: CaseEscalatedData,
    e.DIFFICULTY_REMOVED: DifficultyRemovedData,
}


# --- answers ------------------------------------------------------------------------------


class AcceptedSchema(Schema):
    """The answer to a command: the case and the log position of what it appended."""

    id = fields.String(required=True)
    position = fields.Integer(required=True)


class CaseSchema(Schema):
    """GET /cases/{id}: the case now, its deadlines (instants in the district's time zone)
    and the commands its state allows."""

    id = fields.String(required=True)
    state = one_of(STATES, required=True)
    origin = fields.String(required=True)
    category = fields.String(required=True)
    description = fields.String(required=True)
    place = fields.Nested(PlaceSchema, required=True)
    unit_id = fields.String(allow_none=True)
    visit_id = fields.String(allow_none=True)
    received_at = fields.AwareDateTime(allow_none=True, metadata={
        "description": "when the letter, call or visit came: the deadlines count from it "
                       "(null for cases registered before it was recorded)",
    })
    resident = fields.Nested(CaseResidentReadSchema, allow_none=True)
    personal_data = one_of(("shown", "withheld", "erased", "on_visit", "none"), required=True)
    accept_by = fields.AwareDateTime(allow_none=True)
    resolve_by = fields.AwareDateTime(allow_none=True)
    callback_due = fields.AwareDateTime(allow_none=True)
    review_date = fields.Date(allow_none=True)
    outcome = fields.String(allow_none=True)
    overdue = fields.Boolean(required=True)
    escalated = fields.Boolean(required=True)
    difficulty_removed = fields.Boolean(required=True)
    allowed = fields.List(fields.String(), required=True, metadata={
        "description": "the commands the case's state allows now (the caller's role aside)",
    })
    version = fields.Integer(required=True)


class TimelineEntrySchema(Schema):
    position = fields.Integer(required=True)
    type = fields.String(required=True)
    actor = fields.String(allow_none=True)
    recorded_at = fields.AwareDateTime(required=True)
    data = fields.Dict(required=True, metadata={"description": "personal fields withheld"})


class TimelineSchema(Schema):
    id = fields.String(required=True)
    events = fields.List(fields.Nested(TimelineEntrySchema), required=True)


class CaseListSchema(Schema):
    cases = fields.List(fields.Nested(CaseSchema), required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True)
