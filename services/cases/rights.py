"""Who may do what with a case: pure rules the decisions apply, in the same act as the write.

- Register: operators and hotline staff (`hotline`); the service itself (`intake`) opens the
  cases a visit brings.
- Assign, arbitrate a return (assign again: to another unit, or the same one to uphold the
  assignment), decide extensions, reopen, close, park: supervisors.
- Accept, return, note progress, request an extension, resolve: the assigned unit, that is a
  head's token bound to it or a cadre who belongs to it today (the roster's word).
- Callback: a supervisor or a `callback` role, never the one who resolved the case.
- Personal data (the resident's name, phone, address): those who took the case in
  (operators, hotline), supervisors and callback staff (they call the resident back), and the
  unit the case is assigned to now; never another unit, nor a unit it was taken from;
  auditors see the case without it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol

from shared.kernel.errors import Denied
from shared.runtime.auth import Principal

REGISTRARS = ("operator", "hotline")
INTAKE = "intake"  # the service itself, opening the cases a visit brings
TIMER = "timer"  # the service's clock (never a token's role)
SUPERVISORS = ("supervisor",)
CALLERS = ("supervisor", "callback")
UNIT_ROLES = ("head", "cadre")
SEES_ALL_PERSONAL = (*REGISTRARS, *CALLERS)


class RosterView(Protocol):
    """What the rules read of the roster (shared.campaign.roster.Roster satisfies it)."""

    @property
    def units(self) -> Mapping[str, Any]: ...
    def unit_of(self, cadre_id: str, day: dt.date) -> str | None: ...


def require(principal: Principal, roles: tuple[str, ...], doing: str) -> None:
    if principal.role not in roles:
        raise Denied(f"role {principal.role} may not {doing}; it needs {' or '.join(roles)}")


def in_unit(principal: Principal, unit_id: str | None, roster: RosterView,
            today: dt.date) -> bool:
    """The principal speaks for `unit_id` today: its head's token, or one of its cadres."""
    if unit_id is None:
        return False
    if principal.role == "head":
        return principal.unit_id == unit_id
    if principal.role == "cadre" and principal.cadre_id:
        return roster.unit_of(principal.cadre_id, today) == unit_id
    return False


def require_unit(principal: Principal, unit_id: str | None, roster: RosterView,
                 today: dt.date, doing: str) -> None:
    if not in_unit(principal, unit_id, roster, today):
        who = principal.cadre_id or principal.unit_id or principal.role
        raise Denied(f"{principal.role} {who} may not {doing}: only the head or a cadre of "
                     f"unit {unit_id}, to which the case is assigned")


def require_caller(principal: Principal, resolved_by: str | None,
                   resolver_cadre_id: str | None) -> None:
    """A callback is by a supervisor or callback staff who did not resolve the case (the same
    token, or a token of the same cadre)."""
    require(principal, CALLERS, "record a callback")
    if principal.actor == resolved_by or (
        principal.cadre_id is not None and principal.cadre_id == resolver_cadre_id
    ):
        raise Denied("the callback must be made by someone other than who resolved the case")


def sees_personal_data(principal: Principal, unit_id: str | None, roster: RosterView,
                       today: dt.date) -> bool:
    return principal.role in SEES_ALL_PERSONAL or in_unit(principal, unit_id, roster, today)
