"""The visits service's wire contract: commands in, event data recorded, responses out.

These schemas are the only definition of the JSON the service accepts and emits; the gateway
validates requests and generates OpenAPI from them. A command schema loads to a dict whose keys
are the command dataclass's fields (ids taken from the URL are added by the caller), e.g.
`TransferCadre(cadre_id=path_id, **TransferCadreSchema().load(body))`.

Resident fields carry metadata `{"personal": True}`: they are personal data, stored encrypted
under the resident's key (the resident id is the data subject).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from services.visits import domain
from shared.campaign.policy import MONTH_PATTERN
from shared.kernel import fields as shared
from shared.kernel.dates import date_field, instant_field
from shared.kernel.fields import (
    EvidenceSchema,
    PlaceSchema,
    ResidentData,
    ResidentReadSchema,
    TupleList,
    ident,
    one_of,
    plain,
    text,
)

UNIT_KINDS = ("department", "township", "street", "community")
ROLES = ("staff", "leader", "head")
TARGET_KINDS = (
    "household", "enterprise", "hardship", "petitioner", "left_behind_child", "empty_nest_elder",
    "other",
)
DELIVERED = ("policy", "relief", "technology", "information", "legal", "services")
HELPED = ("difficulty", "development", "dispute", "safety", "other")
FINDING_STATUSES = ("open", "referred", "resolved")
# The running campaigns a visit can be linked with (source document, section 6).
CAMPAIGN_TAGS = (
    "serving_enterprises", "serving_projects", "livelihood", "grassroots_organisation",
    "left_behind_children", "empty_nest_elderly",
)


def _unique(values: Sequence[Any]) -> None:
    if len(set(values)) != len(values):
        raise ValidationError("must not name an item twice")


def diary_text() -> fields.String:
    return fields.String(load_default="", validate=[validate.Length(max=5000), plain])


def choices_list(choices: Sequence[str], **kwargs: Any) -> TupleList:
    return TupleList(one_of(choices), validate=_unique, **kwargs)


def unit_day(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(1, 31), allow_none=True, **kwargs)


# --- roster commands ----------------------------------------------------------------------------


class RegisterUnitSchema(Schema):
    unit_id = ident(data_key="id", required=True)
    name = text(required=True)
    kind = one_of(UNIT_KINDS, required=True)
    unit_day = unit_day(load_default=None, metadata={
        "description": "the unit's own monthly grassroots day; the last day in shorter months",
    })


class SetUnitDaySchema(Schema):
    unit_day = unit_day(required=True, metadata={"description": "null clears the unit day"})
    effective_from = date_field(required=True)


class EnrolCadreSchema(Schema):
    cadre_id = ident(data_key="id", required=True)
    name = text(required=True)
    unit_id = ident(required=True)
    role = one_of(ROLES, required=True)
    liaison_unit_ids = TupleList(ident(), validate=_unique, load_default=())
    effective_from = date_field(load_default=None, metadata={
        "description": "first day on the roster; default: today in the district's time zone",
    })


class TransferCadreSchema(Schema):
    to_unit_id = ident(required=True)
    effective_from = date_field(required=True, metadata={"description": "first day in the unit"})


class GrantLeaveSchema(Schema):
    start = date_field(data_key="from", required=True)
    end = date_field(data_key="to", required=True, metadata={"description": "inclusive"})
    reason = text(500, required=True)

    @validates_schema
    def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["end"] < data["start"]:
            raise ValidationError("must not be before from", "to")


class RemoveCadreSchema(Schema):
    effective_from = date_field(
        required=True, metadata={"description": "first day off the roster"}
    )
    reason = text(500, required=True)


# --- visit commands -----------------------------------------------------------------------------


class ResidentSchema(shared.ResidentSchema):
    id = ident(load_default=None, metadata={
        "description": "a resident id this service issued (from an earlier visit to the same "
                       "household); leave it out for a new resident and the service issues one",
    })


class TargetSchema(Schema):
    kind = one_of(TARGET_KINDS, required=True)
    resident = fields.Nested(ResidentSchema, load_default=None, allow_none=True)

    @post_load
    def _split_subject(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """The resident id leaves the (encrypted) resident details: it is the subject's key."""
        resident = data["resident"]
        if resident is None:
            return {"kind": data["kind"], "resident_id": None, "resident": None}
        person = {k: resident[k] for k in ("name", "phone", "address")}
        return {"kind": data["kind"], "resident_id": resident["id"], "resident": person}


class DiarySchema(Schema):
    """The public-sentiment diary (民情日记): what people think, hope, are glad of, worry about."""

    thinks = diary_text()
    hopes = diary_text()
    glad = diary_text()
    worries = diary_text()
    notes = diary_text()


class FindingSchema(Schema):
    """A hazard found, or a dispute taken up, on the visit."""

    description = text(1000, required=True)
    status = one_of(FINDING_STATUSES, load_default="open", metadata={
        "description": "open: found, not dealt with; referred: handed to a unit or made a case; "
                       "resolved: removed or settled on the spot",
    })


class DifficultySchema(Schema):
    """A resident's difficulty found on the visit: the cases service opens a case for it.

    `category` is a code of the cases service's list (GET /open311/v2/services.json); visits
    keep it as given, since the list is that service's configuration: a code it does not know
    is taken up in its default category, the code kept in the case's description."""

    category = ident(required=True, metadata={"description": "a case category code"})
    description = text(1000, required=True)


def _visit_fields(mode: str) -> dict[str, fields.Field]:
    """The visit's fields for a `record` request (defaults filled), a `correction` (only what
    changes) or a recorded `event` (everything present)."""
    for_record = mode != "correction"

    def dflt(value: Any) -> dict[str, Any]:
        if mode == "event":
            return {"required": True}
        return {"load_default": value} if mode == "record" else {}

    return {
        "cadre_ids": TupleList(
            ident(), required=for_record, validate=[validate.Length(min=1), _unique]
        ),
        "date": date_field(**dflt(None), metadata={
            "description": "local date; default: the local date of started_at",
        }),
        "started_at": instant_field(allow_none=True, **dflt(None)),
        "place": fields.Nested(PlaceSchema, required=for_record),
        "target": fields.Nested(TargetSchema, required=for_record),
        "diary": fields.Nested(DiarySchema, **dflt(domain.empty_diary)),
        "delivered": choices_list(DELIVERED, **dflt(())),
        "helped": choices_list(HELPED, **dflt(())),
        "hazards": TupleList(fields.Nested(FindingSchema), **dflt(())),
        "disputes": TupleList(fields.Nested(FindingSchema), **dflt(())),
        "difficulties": TupleList(fields.Nested(DifficultySchema), **(
            {"metadata": {"description": "absent in events recorded before #10: none"}}
            if mode == "event" else dflt(())
        )),
        "tags": choices_list(CAMPAIGN_TAGS, **dflt(())),
        "evidence": TupleList(fields.Nested(EvidenceSchema), **dflt(())),
    }


class RecordVisitSchema(Schema.from_dict(_visit_fields("record"))):  # type: ignore[misc]
    visit_id = ident(data_key="id", load_default=None, metadata={
        "description": "client-chosen id: retrying with the same id and content is harmless",
    })

    @validates_schema
    def _dated(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("date") is None and data.get("started_at") is None:
            raise ValidationError("required when started_at is not given", "date")

    @post_load
    def _fill_ids(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {**data, "visit_id": data["visit_id"] or str(uuid.uuid4())}


class CorrectVisitSchema(Schema.from_dict(_visit_fields("correction"))):  # type: ignore[misc]
    reason = text(500, required=True)

    @validates_schema
    def _changes_something(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not set(data) - {"reason"}:
            fields_ = ", ".join(domain.CORRECTABLE)
            raise ValidationError(f"name at least one field to correct: {fields_}")

    @post_load
    def _split(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        changes = {k: v for k, v in data.items() if k != "reason"}
        return {"changes": changes, "reason": data["reason"]}


class RetractVisitSchema(Schema):
    reason = text(500, required=True)


class VisitQuerySchema(Schema):
    purpose = text(500, metadata={
        "description": "why an operator, supervisor or auditor needs the resident's details: "
                       "recorded in the log with who asked",
    })


class ConfirmParticipationSchema(Schema):
    cadre_id = ident(load_default=None, metadata={
        "description": "the cadre who confirms; default: the token's own cadre",
    })


class WithdrawParticipationSchema(Schema):
    cadre_id = ident(load_default=None, metadata={
        "description": "the cadre taken off the visit; default: the token's own cadre",
    })
    reason = text(500, required=True)


def __getattr__(name: str) -> Any:
    """`COMMAND_SCHEMAS` (command dataclass -> schema) is the command table's
    (services/visits/commands.py), which is built from these schemas: read from there."""
    if name == "COMMAND_SCHEMAS":
        from services.visits.commands import COMMAND_SCHEMAS

        return COMMAND_SCHEMAS
    raise AttributeError(name)


# --- event data (the event contract) ------------------------------------------------------------


class UnitRegisteredData(Schema):
    unit_id = ident(required=True)
    name = text(required=True)
    kind = one_of(UNIT_KINDS, required=True)
    unit_day = unit_day(required=True)


class UnitDaySetData(Schema):
    unit_id = ident(required=True)
    unit_day = unit_day(required=True)
    effective_from = fields.Date(required=True)


class CadreEnrolledData(Schema):
    cadre_id = ident(required=True)
    name = text(required=True)
    unit_id = ident(required=True)
    role = one_of(ROLES, required=True)
    liaison_unit_ids = fields.List(ident(), required=True)
    effective_from = fields.Date(required=True)


class CadreTransferredData(Schema):
    cadre_id = ident(required=True)
    from_unit_id = ident(required=True, allow_none=True)
    to_unit_id = ident(required=True)
    effective_from = fields.Date(required=True)


class CadreLeaveGrantedData(Schema):
    cadre_id = ident(required=True)
    start = fields.Date(data_key="from", attribute="from", required=True)
    end = fields.Date(data_key="to", attribute="to", required=True)
    reason = text(500, required=True)


class CadreRemovedData(Schema):
    cadre_id = ident(required=True)
    effective_from = fields.Date(required=True)
    reason = text(500, required=True)


class TargetData(Schema):
    kind = one_of(TARGET_KINDS, required=True)
    resident_id = ident(required=True, allow_none=True, metadata={
        "description": "the data subject: the resident's key encrypts `resident`", "subject": True,
    })
    resident = fields.Nested(ResidentData, required=True, allow_none=True, metadata={
        "description": "encrypted under the resident's key; null once the resident is forgotten",
    })


def _pending() -> fields.List:
    return fields.List(ident(), metadata={
        "description": "cadres on the visit whose participation waits for their confirmation "
                       "(absent in events recorded before consent existed: none)",
    })


class VisitRecordedData(Schema.from_dict(_visit_fields("event"))):  # type: ignore[misc]
    visit_id = ident(required=True)
    target = fields.Nested(TargetData, required=True)
    pending_cadre_ids = _pending()
    backfilled = fields.Boolean(required=True)


class VisitCorrectedData(Schema.from_dict(_visit_fields("correction"))):  # type: ignore[misc]
    visit_id = ident(required=True)
    target = fields.Nested(TargetData)
    pending_cadre_ids = _pending()
    reason = text(500, required=True)
    backfilled = fields.Boolean(required=True, metadata={
        "description": "the visit's flag after the correction, against its first recording",
    })


class VisitRetractedData(Schema):
    visit_id = ident(required=True)
    reason = text(500, required=True)


class ParticipationConfirmedData(Schema):
    visit_id = ident(required=True)
    cadre_id = ident(required=True)


class ParticipationWithdrawnData(Schema):
    visit_id = ident(required=True)
    cadre_id = ident(required=True)
    reason = text(500, required=True)


class PersonalDataDisclosedData(Schema):
    """A reader who sees residents' data only for a stated purpose was shown it."""

    visit_id = ident(required=True)
    resident_id = ident(required=True)
    purpose = text(500, required=True)


class CadreRemindedData(Schema):
    """Time-driven: the cadre was still short of the month's quota before its fixed day."""

    cadre_id = ident(required=True)
    month = fields.String(required=True, validate=validate.Regexp(MONTH_PATTERN))
    rule = ident(required=True)
    level = ident(required=True)
    days_so_far = fields.Integer(required=True, strict=True, validate=validate.Range(0, 31))
    fixed_day_met = fields.Boolean(required=True)


EVENT_SCHEMAS: dict[str, type[Schema]] = {
    domain.UNIT_REGISTERED: UnitRegisteredData,
    domain.UNIT_DAY_SET: UnitDaySetData,
    domain.CADRE_ENROLLED: CadreEnrolledData,
    domain.CADRE_TRANSFERRED: CadreTransferredData,
    domain.CADRE_LEAVE_GRANTED: CadreLeaveGrantedData,
    domain.CADRE_REMOVED: CadreRemovedData,
    domain.CADRE_LEFT: CadreRemovedData,  # the same act's type in logs written before #8
    domain.VISIT_RECORDED: VisitRecordedData,
    domain.VISIT_CORRECTED: VisitCorrectedData,
    domain.VISIT_RETRACTED: VisitRetractedData,
    domain.PARTICIPATION_CONFIRMED: ParticipationConfirmedData,
    domain.PARTICIPATION_WITHDRAWN: ParticipationWithdrawnData,
    domain.PERSONAL_DATA_DISCLOSED: PersonalDataDisclosedData,
    domain.CADRE_REMINDED: CadreRemindedData,
}


# --- responses ----------------------------------------------------------------------------------


class TargetReadSchema(Schema):
    kind = fields.String(required=True)
    resident = fields.Nested(ResidentReadSchema, allow_none=True, metadata={
        "description": "null without a resident; details null once the resident is forgotten",
    })


class VisitSchema(Schema):
    """A visit as read back (GET /visits/{id}): current values after corrections."""

    id = fields.String(required=True)
    cadre_ids = fields.List(fields.String(), required=True)
    pending_cadre_ids = fields.List(fields.String(), required=True, metadata={
        "description": "cadres on the visit who have not confirmed: it does not count for them",
    })
    personal_data = fields.String(
        required=True, validate=validate.OneOf(("shown", "withheld", "erased", "none")),
        metadata={"description": "whether the resident's details are shown to this reader"},
    )
    date = fields.Date(required=True)
    started_at = fields.AwareDateTime(allow_none=True)
    place = fields.Nested(PlaceSchema, required=True)
    target = fields.Nested(TargetReadSchema, required=True)
    diary = fields.Nested(DiarySchema, required=True)
    delivered = fields.List(fields.String(), required=True)
    helped = fields.List(fields.String(), required=True)
    hazards = fields.List(fields.Nested(FindingSchema), required=True)
    disputes = fields.List(fields.Nested(FindingSchema), required=True)
    difficulties = fields.List(fields.Nested(DifficultySchema), required=True)
    tags = fields.List(fields.String(), required=True)
    evidence = fields.List(fields.Nested(EvidenceSchema), required=True)
    backfilled = fields.Boolean(required=True)
    recorded_at = fields.AwareDateTime(required=True)
    corrections = fields.Integer(required=True)
    retracted = fields.Boolean(required=True)
    retraction_reason = fields.String(allow_none=True)
    version = fields.Integer(required=True)


class CadreSchema(Schema):
    """GET /cadres/{cadre_id}: a cadre as the roster knows them now."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    unit_id = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    liaison_unit_ids = fields.List(fields.String(), required=True)
    left = fields.Boolean(required=True, metadata={"description": "has left the roster"})
    left_from = fields.Date(allow_none=True, metadata={"description": "first day off the roster"})


class AcceptedSchema(Schema):
    """The answer to a roster command or a correction: what it was about, the log position."""

    id = fields.String(required=True)
    position = fields.Integer(required=True)


class VisitRecordedSchema(AcceptedSchema):
    """The answer to POST /visits (201)."""

    backfilled = fields.Boolean(required=True)
    resident_id = fields.String(allow_none=True, metadata={
        "description": "the resident's id, issued by the service: pass it back on a later visit",
    })
    pending_cadre_ids = fields.List(fields.String(), metadata={
        "description": "cadres who must confirm before the visit counts for them",
    })


class ErrorSchema(Schema):
    errors = fields.Dict(keys=fields.String(), required=True, metadata={
        "description": "field name (or _schema) to the reasons it was refused",
    })
