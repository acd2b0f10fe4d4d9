"""Who may do what with the roster and with visits: pure rules the decisions apply.

They live with the decisions, not at the edge, so that the check and the write are one act
(no window between a gateway's look and the service's write). Units are taken from the roster
**on the visit's date**: a head's rights over a visit follow the unit its cadres belonged to
then, not where they are today.

- Roster commands: operators only.
- Who a principal *vouches for* on a date (their participation counts at once): an operator,
  anyone; a cadre, themselves and the cadres of their own unit, and a leader or head on the
  roster also those of their liaison units; a head's token, the cadres of the unit it is bound
  to. Anyone else put on a visit is *pending* until they confirm.
- Rights over a visit (correct, retract, see residents' data): an operator; a confirmed
  participant; a head whose unit had a confirmed participant on the visit's date.
- Confirming or withdrawing someone's participation: that cadre themselves, an operator, or
  the head of the cadre's unit on the visit's date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Protocol

from shared.kernel.errors import Denied
from shared.runtime.auth import Principal

WRITERS = ("operator", "cadre", "head")
READERS_OF_ANY = ("operator", "supervisor", "auditor")
LEADING_ROLES = ("leader", "head")


class RosterView(Protocol):
    """What the rules need of the roster (domain.Roster satisfies it)."""

    def unit_of(self, cadre_id: str, day: dt.date) -> str | None: ...
    def liaison_of(self, cadre_id: str) -> tuple[str, ...]: ...
    def role_of(self, cadre_id: str) -> str | None: ...


def require_operator(principal: Principal) -> None:
    if principal.role != "operator":
        raise Denied(f"role {principal.role} may not change the roster; it needs operator")


def require_writer(principal: Principal) -> None:
    if principal.role not in WRITERS:
        raise Denied(f"role {principal.role} may not record or change visits")


def units_vouched(principal: Principal, roster: RosterView, day: dt.date) -> set[str]:
    """The units whose cadres the principal vouches for on `day` (operators: see vouches)."""
    if principal.role == "head" and principal.unit_id:
        return {principal.unit_id}
    if principal.role == "cadre" and principal.cadre_id:
        own = roster.unit_of(principal.cadre_id, day)
        units = {own} if own else set()
        if roster.role_of(principal.cadre_id) in LEADING_ROLES:
            units |= set(roster.liaison_of(principal.cadre_id))
        return units
    return set()


def vouches(principal: Principal, cadre_id: str, roster: RosterView, day: dt.date) -> bool:
    """Does the principal's word make `cadre_id`'s participation on `day` count at once?"""
    if principal.role == "operator" or (
        principal.role == "cadre" and principal.cadre_id == cadre_id
    ):
        return True
    return roster.unit_of(cadre_id, day) in units_vouched(principal, roster, day)


def heads_unit_of(principal: Principal, cadre_id: str, roster: RosterView,
                  day: dt.date) -> bool:
    """Is the principal the head (token) of `cadre_id`'s unit on `day`?"""
    return principal.role == "head" and principal.unit_id is not None and (
        roster.unit_of(cadre_id, day) == principal.unit_id
    )


def has_rights(principal: Principal, confirmed: Iterable[str], roster: RosterView,
               day: dt.date) -> bool:
    """Rights over a visit: operator, a confirmed participant, or their unit's head then."""
    confirmed = list(confirmed)
    if principal.role == "operator":
        return True
    if principal.role == "cadre":
        return principal.cadre_id in confirmed
    return any(heads_unit_of(principal, c, roster, day) for c in confirmed)


def require_rights(principal: Principal, visit_id: str, confirmed: Iterable[str],
                   roster: RosterView, day: dt.date) -> None:
    require_writer(principal)
    if not has_rights(principal, confirmed, roster, day):
        who = principal.cadre_id or principal.unit_id or principal.role
        raise Denied(f"{principal.role} {who} has no rights over visit {visit_id}: "
                     "only its confirmed cadres, their unit's head on its date, or an operator")


def may_act_for(principal: Principal, cadre_id: str, roster: RosterView,
                 day: dt.date) -> bool:
    return (principal.role == "operator"
            or (principal.role == "cadre" and principal.cadre_id == cadre_id)
            or heads_unit_of(principal, cadre_id, roster, day))


def require_act_for(principal: Principal, cadre_id: str, roster: RosterView,
                    day: dt.date) -> None:
    """Confirming or withdrawing a cadre's participation is for that cadre, their unit's head
    on the visit's date, or an operator."""
    require_writer(principal)
    if not may_act_for(principal, cadre_id, roster, day):
        raise Denied(f"only cadre {cadre_id} themselves, the head of their unit on {day} or an "
                     "operator may confirm or withdraw their participation")


def may_read(principal: Principal, participants: Iterable[str], roster: RosterView,
             day: dt.date) -> bool:
    """Reading a visit: readers of any; a cadre on it (pending too, to decide whether to
    confirm); a head whose unit had a cadre on it on its date."""
    participants = list(participants)
    if principal.role in READERS_OF_ANY:
        return True
    if principal.role == "cadre":
        return principal.cadre_id in participants
    return any(heads_unit_of(principal, c, roster, day) for c in participants)


def sees_personal_data(principal: Principal, confirmed: Iterable[str], roster: RosterView,
                       day: dt.date, purpose: str | None) -> bool:
    """Residents' data: the visit's confirmed cadres and their head; operators, supervisors
    and auditors only when they state a purpose (which the service records)."""
    if principal.role in READERS_OF_ANY:
        return bool(purpose)
    return principal.role != "operator" and has_rights(principal, confirmed, roster, day)
