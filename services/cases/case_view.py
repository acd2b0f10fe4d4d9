"""What GET /cases/{id} shows of a case: its state read back for CaseSchema, with the
commands its state allows named as the table (commands.py) names them.

Kept apart from the decisions because it is the read side: time zones and what a reader may
see of the resident, never what a command may do.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from services.cases.case_commands import ALLOWED
from services.cases.case_state import CaseState
from services.cases.commands import NAMES
from shared.campaign.policy import Policy


def allowed(state: CaseState) -> list[str]:
    """The commands people may send in the case's state (the names of the table's rows)."""
    return [NAMES[cls] for cls in ALLOWED[state.state]]


def read_back(state: CaseState, policy: Policy, personal: bool) -> dict[str, Any]:
    """The case as GET /cases/{id} shows it (dump with CaseSchema): a deadline is the end of
    its local day, shown as an instant in the district's time zone. `personal` False: the
    resident's details are withheld."""
    def end_of(day: dt.date | None) -> dt.datetime | None:
        return policy.start_of(day + dt.timedelta(days=1)) if day else None

    registered = state.registered
    resident_id, details = registered.get("resident_id"), registered.get("resident")
    # a case opened from a visit carries the resident's pseudonym only: the details stay in
    # the visits log ("on_visit"), which is not the same as details erased
    shown = ("none" if resident_id is None
             else "on_visit" if details is None and registered.get("visit_id")
             else "erased" if details is None else "shown" if personal else "withheld")
    blank: dict[str, Any] = {"name": None, "phone": None, "address": None, "email": None}
    return {
        "id": state.case_id, "state": state.state, "origin": state.origin,
        "category": state.category, "description": registered["description"],
        "place": registered["place"], "unit_id": state.unit_id,
        "visit_id": registered.get("visit_id"),
        "received_at": _shown_at(registered.get("received_at"), policy),
        "resident": None if resident_id is None else
        {"id": resident_id, **(details if personal and details else blank)},
        "personal_data": shown,
        "accept_by": end_of(state.acceptance.due if state.acceptance else None),
        "resolve_by": end_of(state.resolution.due if state.resolution else None),
        "callback_due": end_of(state.callback_due), "review_date": state.review_date,
        "outcome": state.outcome, "overdue": state.overdue, "escalated": state.escalated,
        "difficulty_removed": state.difficulty_removed, "allowed": allowed(state),
        "version": state.version,
    }


def _shown_at(value: str | None, policy: Policy) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value).astimezone(policy.tz) if value else None
