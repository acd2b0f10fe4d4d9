"""What the edge itself checks: a first filter on the role, reads the gateway answers from
other services' data (a roster entry, a compliance report), and whether a token still stands
on the roster. Who may write what is decided by the service that writes (e.g.
services/visits/rights.py), in the same decision as the write.

Units of cadres are looked up through `unit_of` (the visits service's roster, the cadre's
current unit), so the rules stay testable without a broker. Role checks come before body
validation, so a caller without the role learns nothing about the request format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.kernel.errors import Denied
from shared.runtime.auth import Principal

UnitOf = Callable[[str], str | None]  # cadre id -> current unit id; None: not on the roster

# Each route's roles (the first filter) are declared with it (shared/runtime/declare.py).
READ_ANY = ("operator", "supervisor", "auditor")
AS_OF_READERS = ("supervisor", "auditor")  # a compliance report as of an instant is costly


def require_role(principal: Principal, *roles: str) -> None:
    if principal.role not in roles:
        raise Denied(f"role {principal.role} may not do this; it needs {' or '.join(roles)}")


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
