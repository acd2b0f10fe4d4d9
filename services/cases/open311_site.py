"""What the cases service needs to answer Open311 over RPC: the district's `Site` from its
configuration and roster, and documents (or the spec's errors) as plain dicts that cross the
broker; the gateway renders them as JSON or XML (open311_format.py).

An answer is `{"status", "root", "item", "content"}`: the status the gateway answers with and
the document open311_format.Document describes, so a refusal keeps the spec's error shape
whichever side made it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from services.cases import case_policy
from services.cases.case_policy import CasePolicy
from services.cases.open311 import Site
from services.cases.open311_format import Document, Open311Error, from_domain
from shared.campaign.policy import Policy
from shared.kernel.errors import DomainError

KEY_SERVICE = "a token from the district's operators (grassroots token create --role hotline)"
SETTINGS = {  # config key -> default
    "OPEN311_JURISDICTION_ID": "grassroots.local",
    "OPEN311_DISTRICT": "the district",
    "OPEN311_URL": "http://127.0.0.1:8000/open311/v2",
    "OPEN311_CONTACT": "the district's 12345 hotline",
}


def changed_at() -> dt.datetime:
    """When the service list last changed: the case policy file's modification time."""
    path = Path(os.environ.get(case_policy.ENV_VAR) or case_policy.DEFAULT_PATH)
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).replace(microsecond=0)


def site(config: Mapping[str, Any], policy: Policy, cases: CasePolicy,
         units: Mapping[str, Any]) -> Site:
    """The district as Open311 shows it; `units` is the roster's (id -> unit with a name)."""
    given = {key: str(config.get(key) or default) for key, default in SETTINGS.items()}
    return Site(given["OPEN311_JURISDICTION_ID"], given["OPEN311_DISTRICT"],
                given["OPEN311_URL"], given["OPEN311_CONTACT"], KEY_SERVICE, changed_at(),
                policy, cases, {unit_id: unit.name for unit_id, unit in units.items()})


def reply(document: Document, status: int = 200) -> dict[str, Any]:
    return {"status": status, "root": document.root, "item": document.item,
            "content": document.content}


def answer(make: Callable[[], Document], status: int = 200) -> dict[str, Any]:
    """The document `make` builds, or the refusal it raised, as an RPC reply: a bad parameter,
    an unknown id, or a decision refused (403, 409, 422) keeps its status."""
    try:
        return reply(make(), status)
    except Open311Error as exc:
        return reply(exc.document(), exc.status)
    except DomainError as exc:
        refusal = from_domain(exc)
        return reply(refusal.document(), refusal.status)
