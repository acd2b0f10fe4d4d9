"""The cases log's published contract: the event types, their versions and (`SCHEMAS`) the
schema each event's data keeps to. The case board and any other consumer import them from here.

One name per act: the command `assign_case`, the route `/cases/{id}/assign` and the event
`case.assigned` are one act (the table in commands.py lists them side by side). The last five
types are appended by the service itself: four by its clock (timed.py), `difficulty_removed`
when a correction of the source visit drops the difficulty (the case stays; it is noted).
Personal fields (the resident's name, phone, address) are marked in the schemas, encrypted
under the resident's key in the log and never published.
"""

from __future__ import annotations

from typing import Any

CASE_REGISTERED = "case.registered"
CASE_ASSIGNED = "case.assigned"
CASE_ACCEPTED = "case.accepted"
CASE_RETURNED = "case.returned"
PROGRESS_NOTED = "case.progress_noted"
EXTENSION_REQUESTED = "case.extension_requested"
EXTENSION_DECIDED = "case.extension_decided"
CASE_RESOLVED = "case.resolved"
CALLBACK_RECORDED = "case.callback_recorded"
CASE_CLOSED = "case.closed"
CASE_REOPENED = "case.reopened"
CASE_PARKED = "case.parked"
CASE_UNPARKED = "case.unparked"
DEADLINE_APPROACHING = "case.deadline_approaching"
CASE_OVERDUE = "case.overdue"
CASE_ESCALATED = "case.escalated"
DIFFICULTY_REMOVED = "case.difficulty_removed"

TYPES = (
    CASE_REGISTERED, CASE_ASSIGNED, CASE_ACCEPTED, CASE_RETURNED, PROGRESS_NOTED,
    EXTENSION_REQUESTED, EXTENSION_DECIDED, CASE_RESOLVED, CALLBACK_RECORDED, CASE_CLOSED,
    CASE_REOPENED, CASE_PARKED, CASE_UNPARKED, DEADLINE_APPROACHING, CASE_OVERDUE,
    CASE_ESCALATED, DIFFICULTY_REMOVED,
)
# The schema version each type is appended with today; older versions are upcast on read.
VERSIONS: dict[str, int] = dict.fromkeys(TYPES, 1)


def __getattr__(name: str) -> Any:
    """`SCHEMAS` (type -> schema) loads on first use: the schemas import the domain's
    vocabulary, and the domain imports its types from here."""
    if name == "SCHEMAS":
        from services.cases.schemas import EVENT_SCHEMAS

        return EVENT_SCHEMAS
    raise AttributeError(name)
