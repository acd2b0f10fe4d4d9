"""Who may do what: the gateway's permission rules, as plain functions of the principal.

Units of cadres are looked up through `unit_of` (the visits service's roster, the cadre's
current unit), so the rules stay testable without a broker. Role checks come before body
validation, so a caller without the role learns nothing about the request format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from services.gateway.http import Denied
from shared.auth import Principal
from shared.errors import UnknownReference

UnitOf = Callable[[str], str | None]  # cadre id -> current unit id; None: not on the roster

ROSTER_WRITERS = ("operator",)
VISIT_WRITERS = ("operator", "cadre", "head")
READ_ANY = ("operator", "supervisor", "auditor")
EVERYONE = ("operator", "cadre", "head", "supervisor", "auditor")


def require_role(principal: Principal, *roles: str) -> None:
    if principal.role not in roles:
        raise Denied(f"role {principal.role} may not do this; it needs {' or '.join(roles)}")


def _in_unit(cadre_ids: Iterable[str], unit_id: str | None, unit_of: UnitOf) -> bool:
    return any(unit_of(cadre_id) == unit_id for cadre_id in cadre_ids)


def check_visit_write(principal: Principal, cadre_ids: Iterable[str], unit_of: UnitOf) -> None:
    """Recording a visit: an operator any; a cadre one they took part in; a head one with at
    least one cadre of their unit (an unknown cadre is a 422 naming it, not a 403)."""
    cadre_ids = list(cadre_ids)
    require_role(principal, *VISIT_WRITERS)
    if principal.role == "cadre" and principal.cadre_id not in cadre_ids:
        raise Denied(f"cadre {principal.cadre_id} may only record visits they took part in")
    if principal.role == "head":
        units = {cadre_id: unit_of(cadre_id) for cadre_id in cadre_ids}
        unknown = [cadre_id for cadre_id, unit in units.items() if unit is None]
        if unknown:
            raise UnknownReference("cadre", unknown[0], "cadre_ids")
        if principal.unit_id not in units.values():
            raise Denied(f"none of cadre_ids belongs to unit {principal.unit_id}")


def check_visit_change(
    principal: Principal, visit: Mapping[str, Any], new_cadre_ids: Iterable[str] | None,
    unit_of: UnitOf,
) -> None:
    """Correcting or retracting: the principal must be allowed on the visit as it stands and,
    when the correction replaces cadre_ids, on the new list too (no handing a visit away)."""
    require_role(principal, *VISIT_WRITERS)
    if principal.role == "cadre" and principal.cadre_id not in visit["cadre_ids"]:
        raise Denied(f"cadre {principal.cadre_id} did not take part in visit {visit['id']}")
    if principal.role == "head" and not _in_unit(visit["cadre_ids"], principal.unit_id, unit_of):
        raise Denied(f"visit {visit['id']} has no cadre of unit {principal.unit_id}")
    if new_cadre_ids is not None:
        check_visit_write(principal, new_cadre_ids, unit_of)


def check_visit_read(principal: Principal, visit: Mapping[str, Any], unit_of: UnitOf) -> None:
    """Reading a visit: operator, supervisor, auditor any; a cadre theirs; a head their unit's."""
    if principal.role in READ_ANY:
        return
    if principal.role == "cadre" and principal.cadre_id in visit["cadre_ids"]:
        return
    if principal.role == "head" and _in_unit(visit["cadre_ids"], principal.unit_id, unit_of):
        return
    raise Denied(f"{principal.role} may not read visit {visit['id']}")


def check_cadre_read(principal: Principal, cadre: Mapping[str, Any]) -> None:
    """Reading a roster entry: readers any; a head their unit's cadres; a cadre themselves."""
    if principal.role in READ_ANY:
        return
    if principal.role == "cadre" and principal.cadre_id == cadre["id"]:
        return
    if principal.role == "head" and principal.unit_id == cadre["unit_id"]:
        return
    raise Denied(f"{principal.role} may not read cadre {cadre['id']}")


def compliance_unit(principal: Principal, requested: str | None, unit_of: UnitOf) -> str | None:
    """The unit a compliance report may cover: any (or all) for readers; a head's or a cadre's
    own unit otherwise, which is also the default."""
    if principal.role in READ_ANY:
        return requested
    require_role(principal, "head", "cadre")
    if principal.role == "head":
        own = principal.unit_id
    else:
        own = unit_of(principal.cadre_id or "")
        if own is None:
            raise Denied(f"cadre {principal.cadre_id} is not on the roster")
    if requested not in (None, own):
        raise Denied(f"{principal.role} may only see the compliance of unit {own}")
    return own
