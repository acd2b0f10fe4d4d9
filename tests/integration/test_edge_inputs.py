"""Hostile and odd input at the HTTP edge, against the real gateway and services: every answer
is JSON naming the field and the reason, never a 5xx, and nothing is appended."""

import json
import socket

import pytest
import requests

# The gateway and services of test_gateway.py (fixture `api`), shared, not redefined:
from tests.integration.test_gateway import YESTERDAY, visit

JSON = {"Content-Type": "application/json"}


def _raw(api, path, body, who="operator", **headers):
    """POST a body exactly as given (bytes or str), as `api.post` would with json=."""
    return api.post(path, who, data=body if isinstance(body, bytes) else body.encode(),
                    headers={**JSON, **headers})


def _visit_json(cadre_ids=("c-a1",), **diary):
    """A visit as JSON text; a lone surrogate in a value is written as its JSON escape."""
    return json.dumps(visit(list(cadre_ids), diary=diary))


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/units", r'{"id": "u-s", "name": "\ud800", "kind": "township"}', "name"),
    ("/units", r'{"id": "u-s", "name": "ok\udfff", "kind": "township"}', "name"),
    ("/visits", _visit_json(notes="\ud800"), "diary.notes"),
    ("/units", r'{"id": "u-s", "name": "x", "kind": "township", "\ud83d": 1}', "body"),
    ("/visits", _visit_json(["c-a1", "\udc00"]), "cadre_ids.1"),
])
def test_a_lone_surrogate_is_400_naming_the_field(api, path, body, field):
    assert "\\ud" in body  # the escape itself travels: the client sent valid JSON
    before = api.log_length()
    reply = _raw(api, path, body)
    assert reply.status_code == 400, reply.text
    errors = reply.json()["errors"]
    assert list(errors) == [field] and "surrogate" in errors[field][0]
    assert api.log_length() == before


def test_nul_in_a_text_field_is_400_naming_it(api):
    before = api.log_length()
    for body, field in ((_visit_json(notes="a\x00b"), "diary.notes"),
                        (r'{"id": "u-n", "name": "N\u0000", "kind": "township"}', "name")):
        reply = _raw(api, "/visits" if "cadre_ids" in body else "/units", body)
        assert reply.status_code == 400, reply.text
        assert list(reply.json()["errors"]) == [field] and "NUL" in reply.json()["errors"][field][0]
    reply = api.get("/compliance", "operator", params={"month": "2025-01", "unit_id": "u\x00"})
    assert reply.status_code == 400 and list(reply.json()["errors"]) == ["unit_id"], reply.text
    reply = api.get("/visits/v%00x", "operator")
    assert reply.status_code == 400 and list(reply.json()["errors"]) == ["visit_id"], reply.text
    assert api.log_length() == before


@pytest.mark.parametrize("body", [
    "[" * 1000 + "]" * 1000,
    '{"id": "u-d", "name": "D", "kind": "township", "x": ' + "[" * 1000 + "]" * 1000 + "}",
    '{"a": ' * 1000 + "1" + "}" * 1000,
])
def test_json_nested_1000_deep_is_400(api, body):
    reply = _raw(api, "/units", body)
    assert reply.status_code == 400, reply.text
    assert list(reply.json()["errors"]) == ["body"] and "deep" in reply.json()["errors"]["body"][0]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_numbers_json_does_not_have_are_400(api, constant):
    reply = _raw(api, "/units", '{"id": "u-f", "name": "F", "kind": "township", '
                                f'"unit_day": {constant}}}')
    assert reply.status_code == 400, reply.text
    assert list(reply.json()["errors"]) == ["body"] and constant in reply.text


def test_calendar_edges_are_400_naming_the_field(api):
    before = api.log_length()
    for month in ("0000-01", "9999-12", "1899-12"):
        reply = api.get("/compliance", "operator", params={"month": month})
        assert reply.status_code == 400 and list(reply.json()["errors"]) == ["month"], reply.text
    reply = api.get("/compliance", "operator",
                    params={"month": "2025-01", "as_of": "9999-12-31T23:59:59-14:00"})
    assert reply.status_code == 400 and list(reply.json()["errors"]) == ["as_of"], reply.text
    cadre = {"id": "c-old", "name": "Old", "unit_id": "u-a", "role": "staff"}
    cases = [
        ("/cadres", {**cadre, "effective_from": "0001-01-01"}, "effective_from"),
        ("/cadres/c-a1/transfer", {"to_unit_id": "u-b", "effective_from": "0001-01-01"},
         "effective_from"),
        ("/units/u-a/unit-day", {"unit_day": 3, "effective_from": "9999-12-31"}, "effective_from"),
        ("/cadres/c-a1/leave", {"from": "0001-01-01", "to": "9999-12-31", "reason": "r"},
         "from"),
        ("/visits", visit(["c-a1"], started_at="9999-12-31T23:59:59-14:00", date=None),
         "started_at"),
        ("/visits", visit(["c-a1"], started_at="0001-01-01T00:00:00+14:00", date=None),
         "started_at"),
        ("/visits", visit(["c-a1"], day=YESTERDAY.replace(year=1)), "date"),
    ]
    for path, body, field in cases:
        body = {k: v for k, v in body.items() if v is not None}
        reply = api.post(path, "operator", body)
        assert reply.status_code == 400, (path, reply.text)
        assert field in reply.json()["errors"], (path, reply.text)
    assert api.log_length() == before


def test_only_json_bodies_are_accepted(api):
    body = '{"id": "u-t", "name": "T", "kind": "township"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded",
                         "application/json; charset=latin-1", "application/jsonx"):
        reply = _raw(api, "/units", body, **{"Content-Type": content_type})
        assert reply.status_code == 415, (content_type, reply.text)
        assert list(reply.json()["errors"]) == ["content-type"]
    reply = api.post("/units", "operator", data=body.encode())  # no Content-Type at all
    assert reply.status_code == 415, reply.text
    reply = _raw(api, "/units", body, **{"Content-Type": "Application/JSON; charset=UTF-8"})
    assert reply.status_code == 201, reply.text


def test_a_chunked_body_is_read(api):
    chunks = (part.encode() for part in ('{"id": "u-c", "name": "C",', ' "kind": "township"}'))
    reply = api.post("/units", "operator", data=chunks, headers=JSON)
    assert reply.request.headers.get("Transfer-Encoding") == "chunked"
    assert reply.status_code == 201, reply.text
    big = (b" " * 65536 for _ in range(20))  # 1.25 MiB of whitespace, never a Content-Length
    reply = api.post("/units", "operator", data=big, headers=JSON)
    assert reply.status_code == 413 and list(reply.json()["errors"]) == ["body"]


@pytest.mark.parametrize("method", ["TRACE", "FOO", "CONNECT", "PROPFIND"])
def test_unknown_methods_are_405_json_with_allow(api, method):
    reply = api.call(method, "/visits", "operator")
    assert reply.status_code == 405, reply.text
    assert reply.headers["Allow"] == "POST" and list(reply.json()["errors"]) == ["method"]
    assert api.call(method, "/nowhere", "operator").status_code == 404


def test_the_root_and_odd_paths_are_json(api):
    for path in ("/", "//", "/api/v1/", "/api/v1/visits/"):
        reply = requests.get(api.base + path, timeout=5)
        assert reply.headers["Content-Type"] == "application/json", (path, reply.text)
        assert reply.status_code == 404, path


def _exchange(api, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read one response (status, headers, body) until the server closes."""
    host, port = api.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize(("extra", "status", "field"), [
    ("X-Big: " + "a" * 10000 + "\r\n", 431, "headers"),
    ("".join(f"X-{i}: {i}\r\n" for i in range(120)), 431, "headers"),
    ("".join(f"X-{i}: {'c' * 8000}\r\n" for i in range(10)), 431, "headers"),  # 80 kB
    ("Content-Length: -1\r\n", 400, "content-length"),
    ("Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", 400, "transfer-encoding"),
])
def test_malformed_or_oversized_headers_are_json(api, extra, status, field):
    request = f"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"
    code, headers, body = _exchange(api, request.encode())
    assert code == status, body
    assert headers["content-type"] == "application/json"
    assert list(json.loads(body)["errors"]) == [field]


def test_a_long_request_line_and_a_bad_version_are_json(api):
    code, headers, body = _exchange(api, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")
    assert (code, headers["content-type"]) == (414, "application/json")
    assert list(json.loads(body)["errors"]) == ["path"]
    code, headers, body = _exchange(api, b"GET / HTTP/9\r\n\r\n")
    assert code == 400 and headers["content-type"] == "application/json"
    assert json.loads(body)["errors"]
