"""The visits log's published contract: the event types it holds, their current versions, and
(`SCHEMAS`) the marshmallow schema each event's data keeps to.

Consumers (the compliance view, and cases and supervision next) import the types from here
instead of retyping them. The roster's types belong to the one roster fold
(shared/campaign/roster.py), which every reader of the roster shares; they are part of this
contract all the same (`CADRE_LEFT` is `CADRE_REMOVED`'s old name: no longer appended,
still read and folded from older logs). Every event is checked against its schema before it
is appended (shared.kernel.commands.check_contract), so the log holds only what this contract
promises.
Personal fields are marked in the schemas and never published.
"""

from __future__ import annotations

from typing import Any

from shared.campaign.roster import (
    CADRE_ENROLLED,
    CADRE_LEAVE_GRANTED,
    CADRE_LEFT,
    CADRE_REMOVED,
    CADRE_TRANSFERRED,
    ROSTER_EVENT_TYPES,
    UNIT_DAY_SET,
    UNIT_REGISTERED,
)

VISIT_RECORDED = "visit.recorded"
VISIT_CORRECTED = "visit.corrected"
VISIT_RETRACTED = "visit.retracted"
PARTICIPATION_CONFIRMED = "visit.participation_confirmed"
PARTICIPATION_WITHDRAWN = "visit.participation_withdrawn"
PERSONAL_DATA_DISCLOSED = "visit.personal_data_disclosed"
CADRE_REMINDED = "cadre.reminded"  # time-driven: services/visits/reminders.py

VISIT_EVENT_TYPES = (VISIT_RECORDED, VISIT_CORRECTED, VISIT_RETRACTED,
                     PARTICIPATION_CONFIRMED, PARTICIPATION_WITHDRAWN)
TYPES = (*ROSTER_EVENT_TYPES, *VISIT_EVENT_TYPES, PERSONAL_DATA_DISCLOSED, CADRE_REMINDED)
# The schema version each type is appended with today; older versions are upcast on read.
VERSIONS: dict[str, int] = dict.fromkeys(TYPES, 1)

__all__ = [
    "CADRE_ENROLLED", "CADRE_LEAVE_GRANTED", "CADRE_LEFT", "CADRE_REMINDED", "CADRE_REMOVED",
    "CADRE_TRANSFERRED", "PARTICIPATION_CONFIRMED", "PARTICIPATION_WITHDRAWN",
    "PERSONAL_DATA_DISCLOSED", "ROSTER_EVENT_TYPES", "TYPES", "UNIT_DAY_SET",
    "UNIT_REGISTERED", "VERSIONS", "VISIT_CORRECTED", "VISIT_EVENT_TYPES", "VISIT_RECORDED",
    "VISIT_RETRACTED",
]


def __getattr__(name: str) -> Any:
    """`SCHEMAS` (type -> schema) loads on first use: the schemas are built from the domain's
    rules, and the domain imports its types from here."""
    if name == "SCHEMAS":
        from services.visits.schemas import EVENT_SCHEMAS

        return EVENT_SCHEMAS
    raise AttributeError(name)
