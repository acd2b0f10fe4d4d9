"""Open311 GeoReport v2 answers checked field by field against the specification, on cases
made by the domain's own decisions: discovery, services, requests (filters, window, limit,
paging), one request, POST intake, errors, both formats, and no personal data anywhere."""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.cases import domain as d
from services.cases import open311 as o
from services.cases import open311_schemas as s
from services.cases.events import SCHEMAS
from services.cases.open311_format import (
    Answer,
    Document,
    Open311Error,
    from_domain,
    render,
    render_error,
    split_format,
)
from services.cases.schemas import CaseSchema
from shared.eventlog import EventLog
from shared.kernel.commands import execute
from shared.kernel.errors import Conflict
from tests.unit.cases_support import CASES, POLICY, ROSTER, at, check, context

MONDAY = dt.date(2025, 9, 22)
NOW = at(MONDAY, 15)
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")  # ISO 8601 with offset
SITE = o.Site("qiaotou.example", "Qiaotou District", "https://open311.example/v2",
              "12345 hotline", "ask the district office for a token",
              dt.datetime(2025, 9, 1, tzinfo=dt.UTC), POLICY, CASES,
              {unit_id: f"Unit {unit.name.upper()}" for unit_id, unit in ROSTER.units.items()})
REQUEST_FIELDS = ("service_request_id", "status", "status_notes", "service_name",
                  "service_code", "description", "agency_responsible", "service_notice",
                  "requested_datetime", "updated_datetime", "expected_datetime", "address")


@dataclass(frozen=True)
class Rec:
    type: str
    data: dict[str, Any]
    version: int
    occurred_at: dt.datetime


@dataclass
class District:
    """Case streams in memory, decided by the domain, indexed as Open311 reads them."""

    streams: dict[str, list[Rec]] = field(default_factory=dict)
    index: o.RequestIndex = field(default_factory=o.RequestIndex)

    def send(self, command: Any, who: str, now: dt.datetime) -> None:
        records = self.streams.setdefault(command.case_id, [])
        for event in d.decide(command, records, context(who, now)):
            check(event)
            record = Rec(event.type, event.data, len(records) + 1, now)
            records.append(record)
            self.index.apply(record)

    def register(self, case_id: str, now: dt.datetime, category: str = "complaint",
                 description: str = "the lane floods after rain",
                 resident: dict[str, Any] | None = None) -> None:
        place = {"township": "Qiaotou", "village": "Dongcun", "detail": "No. 3 bridge"}
        self.send(d.RegisterCase(case_id, "hotline", category, description, place,
                                 resident=resident), "hotline", now)

    def requests(self, now: dt.datetime = NOW, /, **params: str) -> list[dict[str, Any]]:
        document = o.requests(self.index, params, SITE, now)
        assert (document.root, document.item) == ("service_requests", "request")
        assert isinstance(document.content, list)
        return document.content


def accepted_case(district: District, case_id: str = "k1") -> None:
    district.register(case_id, at(MONDAY, 9))
    district.send(d.AssignCase(case_id, "u1"), "supervisor", at(MONDAY, 10))
    district.send(d.AcceptCase(case_id), "head1", at(MONDAY, 11))


def refused(call: Any, *args: Any) -> Open311Error:
    with pytest.raises(Open311Error) as caught:
        call(*args)
    return caught.value


def as_json(answer: Answer) -> Any:
    assert answer.content_type == "application/json; charset=utf-8"
    return json.loads(answer.body.decode("utf-8"))


def as_xml(answer: Answer) -> ET.Element:
    assert answer.content_type == "text/xml; charset=utf-8"
    assert answer.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(answer.body)


# --- discovery and services -----------------------------------------------------------------


def test_discovery_names_the_endpoint_its_formats_and_changeset() -> None:
    document = o.discovery(SITE, {})
    content = as_json(render(document, "json"))
    assert content["changeset"] == "2025-09-01T08:00:00+08:00"
    assert content["contact"] == "12345 hotline"
    assert content["key_service"] == "ask the district office for a token"
    (endpoint,) = content["endpoints"]
    assert endpoint == {"specification": "http://wiki.open311.org/GeoReport_v2",
                        "url": "https://open311.example/v2",
                        "changeset": "2025-09-01T08:00:00+08:00", "type": "production",
                        "formats": ["text/xml", "application/json"]}
    root = as_xml(render(document, "xml"))
    assert root.tag == "discovery"
    assert [f.text for f in root.findall("endpoints/endpoint/formats/format")] == [
        "text/xml", "application/json"]
    assert root.findtext("endpoints/endpoint/specification") == o.SPECIFICATION


def test_services_are_the_categories_with_the_specs_fields() -> None:
    document = o.services(SITE, {})
    content = as_json(render(document, "json"))
    assert [s["service_code"] for s in content] == list(CASES.codes)
    complaint = content[CASES.codes.index("complaint")]
    assert complaint == {"service_code": "complaint", "service_name": "Complaint",
                         "description": CASES.category("complaint").description,
                         "metadata": False, "type": "realtime",
                         "keywords": "complaint, general", "group": "general"}
    root = as_xml(render(document, "xml"))
    assert root.tag == "services"
    services = root.findall("service")
    assert len(services) == len(CASES.categories)
    assert {child.tag for child in services[0]} == {
        "service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
    assert {s.findtext("metadata") for s in services} == {"false"}
    assert {s.findtext("type") for s in services} == {"realtime"}


# --- one request, field by field ------------------------------------------------------------


def test_an_accepted_case_as_a_request() -> None:
    district = District()
    accepted_case(district)
    (request,) = district.requests()
    assert set(request) == set(REQUEST_FIELDS)  # media_url, lat and long: not known
    assert request["service_request_id"] == "k1"
    assert request["status"] == "open"
    assert request["service_code"] == "complaint"
    assert request["service_name"] == "Complaint"
    assert request["description"] == "the lane floods after rain"
    assert request["agency_responsible"] == "Unit U1"
    assert request["address"] == "No. 3 bridge, Dongcun, Qiaotou"
    assert request["service_notice"].startswith("accepted within 1 and resolved within 13")
    for name in ("requested_datetime", "updated_datetime", "expected_datetime"):
        assert STAMP.match(request[name]), name
    assert request["requested_datetime"] == "2025-09-22T09:00:00+08:00"
    assert request["updated_datetime"] == "2025-09-22T11:00:00+08:00"
    due = district.index.get("k1").state.resolution.due  # type: ignore[union-attr]
    assert request["expected_datetime"] == f"{due + dt.timedelta(days=1)}T00:00:00+08:00"
    assert request["status_notes"] == f"accepted; to be resolved by {due}"


def test_status_is_closed_from_resolution_and_open_again_after_a_reopen() -> None:
    district = District()
    accepted_case(district)
    district.send(d.ResolveCase("k1", "solved", "drain cleared"), "head1", at(MONDAY, 16))
    (request,) = district.requests(at(MONDAY, 17))
    assert request["status"] == "closed"
    assert request["status_notes"] == "resolved (solved); the resident is to be called back"
    assert "expected_datetime" not in request
    assert "drain cleared" not in json.dumps(request)  # people's free text stays out
    district.send(d.RecordCallback("k1", "unsatisfied", "still floods"), "callback",
                  at(MONDAY, 18))
    district.send(d.ReopenCase("k1", "redo the drain"), "supervisor", at(MONDAY, 19))
    (request,) = district.requests(at(MONDAY, 20))
    assert request["status"] == "open"
    assert request["updated_datetime"] == "2025-09-22T19:00:00+08:00"
    assert "expected_datetime" in request


def test_a_registered_case_has_no_agency_nor_expected_time() -> None:
    district = District()
    district.register("k1", at(MONDAY, 9))
    (request,) = district.requests()
    assert "agency_responsible" not in request and "expected_datetime" not in request
    assert request["status_notes"] == "registered; to be assigned to a unit"


def test_one_request_is_a_list_of_one_or_a_404_in_both_formats() -> None:
    district = District()
    accepted_case(district)
    document = o.request(district.index.get("k1"), "k1", {}, SITE)
    assert [r["service_request_id"] for r in as_json(render(document, "json"))] == ["k1"]
    root = as_xml(render(document, "xml"))
    assert root.tag == "service_requests"
    (request,) = root.findall("request")
    assert [child.tag for child in request] == list(REQUEST_FIELDS)
    assert request.findtext("status") == "open"
    error = refused(o.request, district.index.get("nope"), "nope", {}, SITE)
    assert as_json(render_error(error, "json")) == [
        {"code": 404, "description": "service_request_id not found: nope"}]
    answer = render_error(error, "xml")
    assert answer.status == 404
    root = as_xml(answer)
    assert root.tag == "errors"
    assert root.findtext("error/code") == "404"
    assert root.findtext("error/description") == "service_request_id not found: nope"


# --- filters, window, limit, paging ---------------------------------------------------------


def test_without_dates_the_window_is_the_last_90_days_and_one_date_spans_90() -> None:
    district = District()
    for case_id, days in (("old", 91), ("recent", 89), ("new", 1)):
        district.register(case_id, NOW - dt.timedelta(days=days))

    def ids(**params: str) -> list[str]:
        return [r["service_request_id"] for r in district.requests(**params)]

    assert ids() == ["new", "recent"]
    assert ids(start_date=(NOW - dt.timedelta(days=92)).isoformat()) == ["recent", "old"]
    assert ids(end_date=(NOW - dt.timedelta(days=90)).isoformat()) == ["old"]


def test_dates_status_code_and_ids_filter() -> None:
    district = District()
    accepted_case(district, "a")
    district.register("b", at(MONDAY, 12), category="help")
    district.register("c", at(MONDAY, 13), category="urgent")
    district.send(d.AssignCase("c", "u1"), "supervisor", at(MONDAY, 13))
    district.send(d.AcceptCase("c"), "head1", at(MONDAY, 13))
    district.send(d.ResolveCase("c", "explained", "told"), "head1", at(MONDAY, 14))

    def ids(**params: str) -> list[str]:
        return [r["service_request_id"] for r in district.requests(**params)]

    assert ids() == ["c", "b", "a"]  # newest first
    assert ids(status="closed") == ["c"]
    assert ids(status="open") == ["b", "a"]
    assert ids(status="open,closed") == ["c", "b", "a"]
    assert ids(service_code="help,urgent") == ["c", "b"]
    assert ids(start_date="2025-09-22T12:00:00+08:00", end_date="2025-09-22T04:30:00Z") == ["b"]
    old = (NOW - dt.timedelta(days=200)).isoformat()
    assert ids(service_request_id="a,zzz", status="closed", end_date=old) == ["a"]


def test_the_default_limit_is_1000_and_pages_go_on_from_there() -> None:
    district = District()
    for n in range(1001):
        district.register(f"k{n:04d}", NOW - dt.timedelta(minutes=n))
    first = district.requests()
    assert len(first) == 1000
    assert first[0]["service_request_id"] == "k0000"
    assert [r["service_request_id"] for r in district.requests(page="2")] == ["k1000"]
    page = district.requests(page="3", page_size="10")
    assert [r["service_request_id"] for r in page] == [f"k{n:04d}" for n in range(20, 30)]


@pytest.mark.parametrize(("params", "description"), [
    ({"start_date": "2025-01-01T00:00:00Z", "end_date": "2025-04-02T00:00:00Z"},
     "end_date: may not be more than 90 days after start_date"),
    ({"start_date": "2025-02-01T00:00:00Z", "end_date": "2025-01-01T00:00:00Z"},
     "end_date: must not be before start_date"),
    ({"start_date": "2025-01-01T00:00:00"}, "start_date: Not a valid aware datetime."),
    ({"status": "pending"}, "status: must be open or closed, not pending"),
    ({"page_size": "1001"}, "page_size: Must be greater than or equal to 1 and less than or "
                            "equal to 1000."),
    ({"service_code": " , "}, "service_code: must name at least one"),
])
def test_bad_filters_are_400_in_the_specs_shape(params: dict[str, str],
                                               description: str) -> None:
    error = refused(o.requests, [], params, SITE, NOW)
    answer = render_error(error, "json")
    assert answer.status == 400
    assert as_json(answer) == [{"code": 400, "description": description}]


def test_another_jurisdiction_is_404_everywhere() -> None:
    other = {"jurisdiction_id": "elsewhere.example"}
    for call, args in ((o.discovery, (SITE, other)), (o.services, (SITE, other)),
                       (o.requests, ([], other, SITE, NOW)), (o.request, (None, "k", other, SITE)),
                       (o.intake, ({**other, "service_code": "help", "address_id": "u1"}, "k",
                                   SITE))):
        error = refused(call, *args)
        assert (error.status, error.descriptions) == (
            404, ("jurisdiction_id not found: elsewhere.example",)), call
    assert o.services(SITE, {"jurisdiction_id": "qiaotou.example"}).content


# --- POST intake ----------------------------------------------------------------------------


def test_a_posted_request_becomes_a_case_with_the_person_only_in_resident() -> None:
    form = {"service_code": "help", "description": "no water since Monday",
            "address_string": "Lane 5", "lat": "31.2304", "long": "121.4737",
            "address_id": "u2", "first_name": "Mei", "last_name": "Zhou",
            "phone": "13912345678", "email": "mei@example.com", "api_key": "ignored",
            "attribute[floor]": "2"}
    command = o.intake(form, "p1", SITE)
    assert command == d.RegisterCase(
        "p1", "hotline", "help", "no water since Monday",
        {"township": "Unit U2", "detail": "Lane 5", "lat": 31.2304, "long": 121.4737},
        unit_id="u2",
        resident={"id": None, "name": "Mei Zhou", "phone": "13912345678", "address": None,
                  "email": "mei@example.com"},
        fresh_resident_id=command.fresh_resident_id)
    district = District()
    district.send(command, "hotline", NOW)
    (registered,) = district.streams["p1"]
    # the encrypted, personal part, under the resident's key
    assert registered.data["resident"] == {"name": "Mei Zhou", "phone": "13912345678",
                                           "address": None, "email": "mei@example.com"}
    (event,) = d.decide(command, [], context("hotline", NOW))
    assert (event.personal, event.subject) == (("resident",), registered.data["resident_id"])
    (shown,) = district.requests(service_request_id="p1")
    assert (shown["lat"], shown["long"], shown["address"]) == (31.2304, 121.4737,
                                                               "Lane 5, Unit U2")
    answer = as_json(render(o.accepted(command, SITE), "json"))
    assert answer == [{"service_request_id": "p1",
                       "service_notice": "accepted within 1 and resolved within 3 working "
                                         "days (0: the same day)"}]
    root = as_xml(render(o.accepted(command, SITE), "xml"))
    assert root.tag == "service_requests"
    assert root.findtext("request/service_request_id") == "p1"


def test_a_posted_email_is_kept_encrypted_and_shown_only_on_the_case(tmp_path: Path) -> None:
    """The spec's `email` is the resident's personal data like their name and phone: sealed
    under their key in the log (and gone when they are forgotten), shown by GET /cases/{id} to
    whom it may show personal data, withheld from the rest, and never in Open311."""
    form = {"service_code": "help", "address_string": "Lane 5", "first_name": "Meiling",
            "last_name": "Zhou", "email": "mei.zhou@example.com"}
    command = o.intake(form, "p5", SITE)
    log = EventLog.open(f"sqlite:///{tmp_path / 'cases.db'}", service="cases")
    execute(log, d.stream_for(command),
            lambda history: d.decide(command, history, context("hotline", NOW)),
            command_id=None, actor="hotline", contract=SCHEMAS)
    stored = b"".join(path.read_bytes() for path in tmp_path.iterdir())
    assert b"mei.zhou@example.com" not in stored and b"Meiling Zhou" not in stored
    (record,) = log.read()
    assert record.data["resident"]["email"] == "mei.zhou@example.com"
    assert record.plain()["resident"] is None  # what the bus and Open311's index get

    def case(personal: bool) -> dict[str, Any]:
        (state,) = d.CaseIndex().apply(record).cases.values()
        return CaseSchema().dump(d.read_back(state, POLICY, personal))

    shown = case(personal=True)
    assert shown["personal_data"] == "shown"
    assert shown["resident"] == {"id": record.subject, "name": "Meiling Zhou", "phone": None,
                                 "address": None, "email": "mei.zhou@example.com"}
    withheld = case(personal=False)
    assert withheld["personal_data"] == "withheld"
    assert withheld["resident"] == {"id": record.subject, "name": None, "phone": None,
                                    "address": None, "email": None}
    index = o.RequestIndex().apply(record._replace(data=record.plain()))
    for fmt in ("json", "xml"):
        body = render(o.request(index.get("p5"), "p5", {}, SITE), fmt).body
        assert b"mei.zhou" not in body and b"Meiling" not in body
    assert log.forget(record.subject or "") is True
    (forgotten,) = log.read_stream(d.stream_for(command))
    assert forgotten.data["resident"] is None


def test_intake_defaults_township_description_and_anonymity() -> None:
    command = o.intake({"service_code": "consultation", "lat": "31", "long": "121"}, "p2", SITE)
    assert command.place == {"township": "Qiaotou District", "lat": 31.0, "long": 121.0}
    assert command.description == "Consultation"
    assert command.resident is None
    phone_only = o.intake({"service_code": "help", "address_string": "x", "phone": "110"},
                          "p3", SITE)
    assert phone_only.resident == {"id": None, "name": o.NAME_NOT_GIVEN, "phone": "110",
                                   "address": None, "email": None}
    email_only = o.intake({"service_code": "help", "address_string": "x",
                           "email": "a@example.org"}, "p4", SITE)
    assert email_only.resident == {"id": None, "name": o.NAME_NOT_GIVEN, "phone": None,
                                   "address": None, "email": "a@example.org"}


@pytest.mark.parametrize(("form", "status", "description"), [
    ({"address_string": "Lane 5"}, 400, "service_code: Missing data for required field."),
    ({"service_code": "potholes", "address_string": "Lane 5"}, 404,
     "service_code not found: potholes"),
    ({"service_code": "help"}, 400,
     "address_string: give lat and long, address_string or address_id"),
    ({"service_code": "help", "lat": "31"}, 400, "long: lat and long come together"),
    ({"service_code": "help", "lat": "91", "long": "0"}, 400,
     "lat: Must be greater than or equal to -90 and less than or equal to 90."),
    ({"service_code": "help", "address_id": "u9"}, 400,
     "address_id: not a township of Qiaotou District: u9"),
    ({"service_code": "help", "address_string": "x", "phone": "call me"}, 400,
     "phone: not a phone number"),
    ({"service_code": "help", "address_string": "x", "email": "mei at example"}, 400,
     "email: Not a valid email address."),
    ({"service_code": "help", "address_string": "x", "email": f"{'m' * 250}@example.com"},
     400, "email: Longer than maximum length 254."),
])
def test_bad_posts_are_refused_in_the_specs_shape(form: dict[str, str], status: int,
                                                 description: str) -> None:
    error = refused(o.intake, form, "p", SITE)
    assert (error.status, error.descriptions) == (status, (description,))


def test_a_domain_refusal_keeps_its_status_and_reason() -> None:
    error = from_domain(Conflict("case k1 is closed", "state"))
    assert as_json(render_error(error, "json")) == [
        {"code": 409, "description": "state: case k1 is closed"}]


# --- the contract the OpenAPI document is made from -----------------------------------------


def test_every_document_is_what_its_shape_promises() -> None:
    """The shapes (open311_schemas.py) are what the gateway's OpenAPI document says of each
    answer: every document sent has the shape's XML names and loads with its schema."""
    district = District()
    accepted_case(district)
    district.register("k2", at(MONDAY, 12))
    district.send(d.ResolveCase("k1", "solved", "done"), "head1", at(MONDAY, 13))
    command = o.intake({"service_code": "help", "lat": "31.2", "long": "121.4"}, "k3", SITE)
    district.send(command, "hotline", at(MONDAY, 14))
    shaped = [
        (o.discovery(SITE, {}), s.DISCOVERY), (o.services(SITE, {}), s.SERVICES),
        (o.requests(district.index, {}, SITE, NOW), s.REQUESTS),
        (o.request(district.index.get("k3"), "k3", {}, SITE), s.REQUESTS),
        (o.accepted(command, SITE), s.POSTED),
        (refused(o.requests, [], {"status": "maybe", "page": "0"}, SITE, NOW).document(),
         s.ERRORS),
    ]
    assert len(shaped[2][0].content) == 3
    for document, shape in shaped:
        assert (document.root, document.item) == (shape.root, shape.item)
        content = as_json(render(document, "json"))
        assert shape.schema(many=shape.item is not None).validate(content) == {}, shape


# --- formats --------------------------------------------------------------------------------


def test_formats_come_from_the_suffix() -> None:
    assert split_format("requests.json") == ("requests", "json")
    assert split_format("requests/k1.xml") == ("requests/k1", "xml")
    for name in ("requests", "requests.html"):
        assert refused(split_format, name).status == 404


def test_xml_escapes_markup_and_replaces_what_xml_cannot_hold() -> None:
    district = District()
    district.register("k1", at(MONDAY, 9), description='a <b>&"c"\' \x07 d')
    document = o.requests(district.index, {}, SITE, NOW)
    root = as_xml(render(document, "xml"))
    assert root.findtext("request/description") == 'a <b>&"c"\' \ufffd d'
    assert as_json(render(document, "json"))[0]["description"] == 'a <b>&"c"\' \x07 d'


def test_unicode_is_utf8_in_both_formats() -> None:
    document = Document("services", "service", [{"service_name": "求助"}])
    assert "求助".encode() in render(document, "json").body
    assert as_xml(render(document, "xml")).findtext("service/service_name") == "求助"


# --- no personal data, ever -----------------------------------------------------------------

SECRETS = ("Wenjuan Xiaolong", "13987654321", "Flat 1207 Peony Court",
           "Guohua Tiemei", "13711112222", "mei.secret@example.com")


def test_no_personal_data_appears_in_any_answer() -> None:
    district = District()
    resident = {"id": None, "name": SECRETS[0], "phone": SECRETS[1], "address": SECRETS[2]}
    district.register("r1", at(MONDAY, 8), resident=resident)
    district.send(d.AssignCase("r1", "u1"), "supervisor", at(MONDAY, 9))
    district.send(d.AcceptCase("r1"), "head1", at(MONDAY, 9))
    district.send(d.ResolveCase("r1", "solved", "fixed"), "head1", at(MONDAY, 10))
    first, last = SECRETS[3].split()
    form = {"service_code": "help", "address_string": "Lane 5", "first_name": first,
            "last_name": last, "phone": SECRETS[4], "email": SECRETS[5]}
    command = o.intake(form, "r2", SITE)
    district.send(command, "hotline", at(MONDAY, 11))
    assert SECRETS[0] in json.dumps([r.data for r in district.streams["r1"]])  # it is there
    assert SECRETS[5] in json.dumps([r.data for r in district.streams["r2"]])  # and kept
    documents = [
        o.discovery(SITE, {}), o.services(SITE, {}), o.accepted(command, SITE),
        o.requests(district.index, {}, SITE, NOW),
        o.requests(district.index, {"service_request_id": "r1,r2"}, SITE, NOW),
        o.request(district.index.get("r1"), "r1", {}, SITE),
        o.request(district.index.get("r2"), "r2", {}, SITE),
        refused(o.intake, {**form, "service_code": "nope"}, "r3", SITE).document(),
    ]
    assert len(documents[3].content) == 2
    for document in documents:
        for fmt in ("json", "xml"):
            body = render(document, fmt).body.decode("utf-8")
            for secret in (*SECRETS, first, last):
                assert secret not in body, (document.root, fmt, secret)


# --- any input: an answer or a refusal in the spec's shape, never a crash -------------------

KEYS = st.sampled_from(["service_request_id", "service_code", "status", "start_date", "end_date",
                        "page", "page_size", "jurisdiction_id", "description", "lat", "long",
                        "address_string", "address_id", "first_name", "last_name", "phone",
                        "email", "api_key"])
VALUES = st.one_of(st.text(max_size=30), st.sampled_from(
    ["open", "closed", "help", "k1", "u2", "31.2", "-200", "nan", "inf", "2025-06-01",
     "2025-06-01T00:00:00Z", "0", "-1", "1001", "1e309", "\x00", "\ud800"]))


@settings(max_examples=300, deadline=None)
@given(params=st.dictionaries(KEYS, VALUES, max_size=6))
def test_any_query_or_form_is_answered_or_refused_in_the_spec_shape(
        params: dict[str, str]) -> None:
    district = District()
    accepted_case(district)
    for attempt in (lambda: o.requests(district.index, params, SITE, NOW),
                    lambda: o.accepted(o.intake(params, "f1", SITE), SITE)):
        try:
            document = attempt()
        except Open311Error as refused:
            assert 400 <= refused.status < 500
            render_error(refused, "xml")  # and it renders
        else:
            for fmt in ("json", "xml"):
                render(document, fmt)
