"""Cases as Open311 GeoReport v2 shows them, so that civic tools can read them and report:
the discovery document, the service list (the case categories), service requests (the cases)
and the intake of a POSTed request as a `RegisterCase`.

Pure: the cases, the district's configuration (`Site`) and the time come in; documents
(open311_format.py renders them as JSON or XML) or a command go out. Nothing personal ever goes
out: a request is built from the case's category, description, place, unit and times only,
never from `resident`, and its notes from the case's state, never from free text people wrote
in later events (reasons, results, comments).

Status: `closed` once the unit has resolved the case (办结) and after, `open` before; a reopened
case is open again, as the spec lets a status change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from marshmallow import Schema, ValidationError

from services.cases.case_policy import CasePolicy
from services.cases.domain import OPEN, CaseIndex, CaseState, RegisterCase
from services.cases.open311_format import Document, Open311Error, invalid
from services.cases.open311_schemas import (
    DISCOVERY,
    POSTED,
    REQUESTS,
    SERVICES,
    SPAN,
    JurisdictionSchema,
    PostRequestSchema,
    RequestsQuerySchema,
)
from shared.campaign.policy import Policy
from shared.kernel import history

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CLOSED = ("resolved", "called_back", "closed")
NAME_NOT_GIVEN = "(name not given)"  # a resident's record needs a name to keep their contacts


@dataclass(frozen=True)
class Site:
    """The district's Open311 configuration, and the unit names the answers show."""

    jurisdiction_id: str
    name: str  # the district: a report's township when it names none
    endpoint_url: str
    contact: str
    key_service: str  # how to get a token for POST
    changeset: dt.datetime  # when the service list last changed
    policy: Policy
    cases: CasePolicy
    units: Mapping[str, str]  # unit id -> name


class Record(history.HistoryRecord, Protocol):
    """What the index reads of a committed event (shared.eventlog.Record satisfies it)."""

    @property
    def occurred_at(self) -> dt.datetime: ...


@dataclass(frozen=True)
class Tracked:
    """A case with the instants Open311 shows: its registration and its latest event."""

    state: CaseState
    requested: dt.datetime
    updated: dt.datetime


class RequestIndex:
    """The domain's `CaseIndex`, plus each case's first and latest instants."""

    def __init__(self) -> None:
        self._cases = CaseIndex()
        self._times: dict[str, tuple[dt.datetime, dt.datetime]] = {}

    def apply(self, record: Record) -> RequestIndex:
        self._cases.apply(record)
        case_id = record.data.get("case_id")
        if case_id in self._cases.cases:
            first = self._times[case_id][0] if case_id in self._times else record.occurred_at
            self._times[case_id] = (first, record.occurred_at)
        return self

    @classmethod
    def holding(cls, cases: Iterable[Tracked]) -> RequestIndex:
        """An index that already holds these cases (a stored page of them, case_book.py)."""
        index = cls()
        for case in cases:
            index._cases.cases[case.state.case_id] = case.state
            index._times[case.state.case_id] = (case.requested, case.updated)
        return index

    def get(self, case_id: str) -> Tracked | None:
        state = self._cases.cases.get(case_id)
        return None if state is None else Tracked(state, *self._times[case_id])

    def __iter__(self) -> Iterator[Tracked]:
        return (Tracked(state, *self._times[key]) for key, state in self._cases.cases.items())


# --- reading --------------------------------------------------------------------------------


def _load(schema: type[Schema], params: Mapping[str, Any], site: Site) -> dict[str, Any]:
    """Parameters loaded; a jurisdiction other than this district's is a 404, as the spec says."""
    try:
        loaded: dict[str, Any] = schema().load(dict(params))
    except ValidationError as exc:
        raise invalid(exc) from exc
    given = loaded.get("jurisdiction_id")
    if given is not None and given != site.jurisdiction_id:
        raise Open311Error(404, f"jurisdiction_id not found: {given}")
    return loaded


def discovery(site: Site, params: Mapping[str, str]) -> Document:
    _load(JurisdictionSchema, params, site)
    changeset = _stamp(site.changeset, site)
    endpoint = {"specification": SPECIFICATION, "url": site.endpoint_url,
                "changeset": changeset, "type": "production",
                "formats": ["text/xml", "application/json"]}
    return Document(DISCOVERY.root, DISCOVERY.item, {
        "changeset": changeset, "contact": site.contact, "key_service": site.key_service,
        "endpoints": [endpoint]})


def services(site: Site, params: Mapping[str, str]) -> Document:
    """The categories; none has extra questions (`metadata` false), each takes a request at
    once (`realtime`: the answer to a POST is the request's id)."""
    _load(JurisdictionSchema, params, site)
    return Document(SERVICES.root, SERVICES.item, [
        {"service_code": c.code, "service_name": c.name, "description": c.description,
         "metadata": False, "type": "realtime",
         "keywords": ", ".join(dict.fromkeys((c.code, c.group))), "group": c.group}
        for c in site.cases.categories
    ])


def requests(cases: Iterable[Tracked], params: Mapping[str, str], site: Site,
             now: dt.datetime) -> Document:
    """Newest first. `service_request_id` overrides the other filters; without dates the
    window is the last 90 days, with one date the 90 days from (or up to) it."""
    query = _load(RequestsQuerySchema, params, site)
    ids = query.get("service_request_id")
    if ids is not None:
        chosen = [case for case in cases if case.state.case_id in ids]
    else:
        start, end = _window(query.get("start_date"), query.get("end_date"), now)
        codes, statuses = query.get("service_code"), query.get("status")
        chosen = [case for case in cases if start <= case.requested <= end
                  and (codes is None or case.state.category in codes)
                  and (statuses is None or _status(case.state) in statuses)]
    chosen.sort(key=lambda case: (case.requested, case.state.case_id), reverse=True)
    first = (query["page"] - 1) * query["page_size"]
    page = chosen[first:first + query["page_size"]]
    return Document(REQUESTS.root, REQUESTS.item, [service_request(c, site) for c in page])


def request(case: Tracked | None, case_id: str, params: Mapping[str, str],
            site: Site) -> Document:
    """One request, as a list of one (the spec's shape), or 404."""
    _load(JurisdictionSchema, params, site)
    if case is None:
        raise Open311Error(404, f"service_request_id not found: {case_id}")
    return Document(REQUESTS.root, REQUESTS.item, [service_request(case, site)])


def _window(start: dt.datetime | None, end: dt.datetime | None,
            now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    if start is not None and end is not None:
        return start, end
    if start is not None:
        return start, start + SPAN
    end = end or now
    return end - SPAN, end


def service_request(case: Tracked, site: Site) -> dict[str, Any]:
    """The spec's fields a case has; those it does not have (media_url; lat/long when the
    place was registered without coordinates) are left out."""
    state, registered = case.state, case.state.registered
    codes = site.cases.codes
    category = site.cases.category(state.category) if state.category in codes else None
    expected = None
    if state.state in OPEN and state.resolution is not None:
        expected = site.policy.start_of(state.resolution.due + dt.timedelta(days=1))
    fields = {
        "service_request_id": state.case_id,
        "status": _status(state),
        "status_notes": _notes(state),
        "service_name": category.name if category else state.category,
        "service_code": state.category,
        "description": registered["description"],
        "agency_responsible": site.units.get(state.unit_id, state.unit_id)
        if state.unit_id else None,
        "service_notice": _notice(category.accept, category.resolve) if category else None,
        "requested_datetime": _stamp(case.requested, site),
        "updated_datetime": _stamp(case.updated, site),
        "expected_datetime": _stamp(expected, site) if expected else None,
        "address": address(registered["place"]),
        "lat": registered["place"].get("lat"),
        "long": registered["place"].get("long"),
    }
    return {name: value for name, value in fields.items() if value is not None}


def address(place: Mapping[str, Any]) -> str:
    """The place, most precise first: "No. 3 bridge, Dongcun, Qiaotou"."""
    parts = (place.get(key) for key in ("detail", "community", "village", "township"))
    return ", ".join(part for part in parts if part)


def _status(state: CaseState) -> str:
    return "closed" if state.state in CLOSED else "open"


def _notes(state: CaseState) -> str:
    """The state in words, from the case's vocabulary only (no free text)."""
    accept = state.acceptance.due.isoformat() if state.acceptance else ""
    resolve = state.resolution.due.isoformat() if state.resolution else ""
    outcome = (state.outcome or "").replace("_", " ")
    notes = {
        "registered": "registered; to be assigned to a unit",
        "assigned": f"assigned to a unit; to be accepted by {accept}",
        "returned": "returned by the unit; to be assigned again",
        "accepted": f"accepted; to be resolved by {resolve}",
        "extension_requested": f"an extension is asked for; to be resolved by {resolve}",
        "resolved": f"resolved ({outcome}); the resident is to be called back",
        "called_back": f"resolved ({outcome}); the resident was called back",
        "parked": f"parked until {state.review_date}",
        "closed": f"closed ({outcome})",
    }[state.state]
    flags = [flag for flag, on in (("overdue", state.overdue),
                                   ("escalated to supervision", state.escalated)) if on]
    return "; ".join([notes, *flags])


def _notice(accept: int, resolve: int) -> str:
    return (f"accepted within {accept} and resolved within {resolve} working days "
            "(0: the same day)")


def _stamp(moment: dt.datetime, site: Site) -> str:
    """ISO 8601 with the district's offset, to the second: 2025-09-22T10:00:00+08:00."""
    return moment.astimezone(site.policy.tz).isoformat(timespec="seconds")


# --- intake ---------------------------------------------------------------------------------


def intake(form: Mapping[str, str], case_id: str, site: Site) -> RegisterCase:
    """A POSTed request as the register command (origin `hotline`: the public's own channel).
    The resident's name, phone and e-mail go only into `resident`, which the log encrypts. The
    location: `address_id` is a township unit's id (the unit whose area it is);
    `address_string` becomes the place's detail, and the coordinates its lat/long."""
    data = _load(PostRequestSchema, form, site)
    code = data["service_code"]
    if code not in site.cases.codes:
        raise Open311Error(404, f"service_code not found: {code}")
    unit_id = data.get("address_id")
    if unit_id is not None and unit_id not in site.units:
        raise Open311Error(400, f"address_id: not a township of {site.name}: {unit_id}")
    place: dict[str, Any] = {"township": site.units[unit_id] if unit_id else site.name}
    if data.get("address_string"):
        place["detail"] = data["address_string"]
    if "lat" in data:
        place.update(lat=data["lat"], long=data["long"])
    description = data.get("description") or site.cases.category(code).name
    return RegisterCase(case_id, "hotline", code, description, place, unit_id=unit_id,
                        resident=_resident(data))


def _resident(data: Mapping[str, str]) -> dict[str, Any] | None:
    """Who reported it, if they said: a name, a phone or an e-mail address (the spec's
    `email`), all of it personal; their address is not asked (the place is the difficulty's)."""
    name = " ".join(data[key] for key in ("first_name", "last_name") if key in data)
    if not name and "phone" not in data and "email" not in data:
        return None
    return {"id": None, "name": name or NAME_NOT_GIVEN, "phone": data.get("phone"),
            "address": None, "email": data.get("email")}


def accepted(command: RegisterCase, site: Site) -> Document:
    """The answer to a POST: the new request's id and what to expect (realtime: no token)."""
    category = site.cases.category(command.category)
    return Document(POSTED.root, POSTED.item, [
        {"service_request_id": command.case_id,
         "service_notice": _notice(category.accept, category.resolve)},
    ])
