"""Bearer tokens (shared.runtime.auth) and the gateway's own permission checks
(services.gateway.access)."""

import json
import os
import stat
import time

import eventlet
import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway import access
from services.gateway.http import Denied, Remote, RpcTimeout, flatten, serve
from services.visits.commands import ROSTER_WRITERS
from services.visits.schemas import RetractVisitSchema
from shared.kernel.errors import Conflict
from shared.runtime import auth
from shared.runtime.auth import Principal, TokenStore, create_token_cli, token_hash
from shared.tools.cli import main as cli_main


def test_create_then_lookup(tokens_file):
    store = TokenStore()
    token = store.create("cadre", cadre_id="c-001")
    assert token.startswith("gr_") and len(token) > 40
    principal = store.lookup(token)
    assert principal == Principal("cadre", "c-001", None, token_hash(token)[:12])
    assert principal.actor == "cadre:c-001"
    assert store.lookup(token + "x") is None
    assert store.lookup("") is None


def test_actor_of_other_roles_names_the_token_not_the_secret(tokens_file):
    store = TokenStore()
    token = store.create("operator")
    principal = store.lookup(token)
    assert principal.actor == f"operator:{principal.token_id}"
    assert len(principal.token_id) == 12 and principal.token_id not in token
    head = store.lookup(store.create("head", cadre_id="c-01", unit_id="u-01"))
    assert (head.role, head.unit_id, head.cadre_id) == ("head", "u-01", "c-01")


def test_only_the_hash_is_stored_in_a_private_file(tokens_file):
    token = TokenStore().create("head", cadre_id="c-01", unit_id="u-01")
    raw = tokens_file.read_text()
    assert token not in raw and token[3:] not in raw
    entry = json.loads(raw)["tokens"][token_hash(token)]
    assert entry["role"] == "head" and entry["unit_id"] == "u-01" and entry["cadre_id"] == "c-01"
    assert entry["created_at"].endswith("+00:00")
    assert stat.S_IMODE(os.stat(tokens_file).st_mode) == 0o600
    assert not [p for p in tokens_file.parent.iterdir() if p.name.endswith(".tmp")]


def test_reloads_when_the_file_changes(tokens_file):
    reader, writer = TokenStore(), TokenStore()
    assert reader.lookup("gr_nothing") is None  # no file yet: nobody is known
    first = writer.create("auditor")
    assert reader.lookup(first).role == "auditor"
    second = writer.create("supervisor")  # another process (the CLI) adds a token
    assert reader.lookup(second).role == "supervisor"
    assert reader.lookup(first).role == "auditor"
    tokens_file.unlink()
    assert reader.lookup(first) is None


def test_lookup_reads_the_file_only_when_it_changed(tokens_file, monkeypatch):
    store = TokenStore()
    token = store.create("operator")
    assert store.lookup(token) is not None
    reads = []
    monkeypatch.setattr(store, "_read", lambda: reads.append(1) or {})
    for _ in range(3):
        assert store.lookup(token) is not None
    assert reads == []
    os.utime(tokens_file, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert store.lookup(token) is None and reads == [1]


def test_relative_paths_are_taken_from_the_repository_root(monkeypatch):
    monkeypatch.delenv("GRASSROOTS_TOKENS", raising=False)
    assert auth.tokens_path() == auth.ROOT / "var" / "tokens.json"
    assert auth.tokens_path("elsewhere/t.json") == auth.ROOT / "elsewhere" / "t.json"
    monkeypatch.setenv("GRASSROOTS_TOKENS", "/tmp/x.json")
    assert str(auth.tokens_path()) == "/tmp/x.json"


@pytest.mark.parametrize(("role", "cadre", "unit", "message"), [
    ("janitor", None, None, "unknown role"),
    ("cadre", None, None, "needs --cadre"),
    ("head", None, None, "needs --cadre ID --unit ID"),
    ("head", None, "u-1", "needs --cadre ID --unit ID"),
    ("head", "c-1", None, "needs --cadre ID --unit ID"),
    ("operator", "c-1", None, "--cadre is only for roles cadre and head"),
    ("cadre", "c-1", "u-1", "--unit is only for role head"),
    ("head", "c-1", "bad id!", "is not an id"),
])
def test_role_and_binding_are_validated(tokens_file, role, cadre, unit, message):
    with pytest.raises(ValueError, match=message):
        TokenStore().create(role, cadre_id=cadre, unit_id=unit)
    assert not tokens_file.exists()


def test_cli_prints_the_token_alone_and_a_hint_on_stderr(tokens_file, capsys):
    assert create_token_cli("cadre", cadre_id="c-007") == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert out == token + "\n" and token.startswith("gr_")
    assert f'Authorization: Bearer {token}' in err
    assert TokenStore().lookup(token).cadre_id == "c-007"


def test_cli_misuse_exits_2_with_a_clear_message(tokens_file, capsys):
    assert create_token_cli("head", unit_id="u-01") == 2
    out, err = capsys.readouterr()
    assert out == "" and "role head needs --cadre ID --unit ID" in err
    assert cli_main(["token", "create", "--role", "cadre"]) == 2
    assert "role cadre needs --cadre" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli_main(["token", "create", "--role", "janitor"])  # argparse's own choice check
    assert exit_.value.code == 2
    assert not tokens_file.exists()


def test_cli_end_to_end_through_grassroots(tokens_file, capsys):
    assert cli_main(["token", "create", "--role", "head", "--cadre", "c-01", "--unit", "u-01"]) == 0
    token = capsys.readouterr().out.strip()
    assert TokenStore().lookup(token).unit_id == "u-01"


# --- the gateway's permission rules -------------------------------------------------------------

UNITS = {"c-a1": "u-a", "c-a2": "u-a", "c-b1": "u-b"}
unit_of = UNITS.get
OPERATOR = Principal("operator", token_id="op")
CADRE = Principal("cadre", cadre_id="c-a1", token_id="ca")
HEAD_A = Principal("head", unit_id="u-a", token_id="ha")
SUPERVISOR = Principal("supervisor", token_id="su")
AUDITOR = Principal("auditor", token_id="au")

def test_roster_writes_are_the_operators():
    access.require_role(OPERATOR, *ROSTER_WRITERS)
    for principal in (CADRE, HEAD_A, SUPERVISOR, AUDITOR):
        with pytest.raises(Denied) as denied:
            access.require_role(principal, *ROSTER_WRITERS)
        assert list(denied.value.errors()) == ["authorization"]


def test_compliance_scope():
    assert access.compliance_unit(SUPERVISOR, None, unit_of) is None
    assert access.compliance_unit(AUDITOR, "u-b", unit_of) == "u-b"
    assert access.compliance_unit(HEAD_A, None, unit_of) == "u-a"
    assert access.compliance_unit(HEAD_A, "u-a", unit_of) == "u-a"
    assert access.compliance_unit(CADRE, None, unit_of) == "u-a"
    for principal in (HEAD_A, CADRE):
        with pytest.raises(Denied):
            access.compliance_unit(principal, "u-b", unit_of)
    with pytest.raises(Denied, match="not on the roster"):
        access.compliance_unit(Principal("cadre", cadre_id="c-gone"), None, unit_of)


def test_cadre_reads():
    cadre = {"id": "c-a2", "unit_id": "u-a"}
    for principal in (OPERATOR, SUPERVISOR, AUDITOR, HEAD_A):
        access.check_cadre_read(principal, cadre)
    access.check_cadre_read(CADRE, {"id": "c-a1", "unit_id": "u-a"})
    with pytest.raises(Denied):
        access.check_cadre_read(CADRE, cadre)


def test_flatten_nested_marshmallow_errors():
    messages = {"place": {"township": ["Missing data for required field."],
                          "_schema": ["give a village or a community, not both"]},
                "hazards": {0: {"status": ["Must be one of: open."]}},
                "_schema": ["top"], "date": ["Not a valid date."]}
    assert flatten(messages) == {
        "place.township": ["Missing data for required field."],
        "place": ["give a village or a community, not both"],
        "hazards.0.status": ["Must be one of: open."],
        "_schema": ["top"], "date": ["Not a valid date."],
    }


# --- the edge's error mapping (services.gateway.http.serve) ---------------------------------------


def _serve(store, handler, headers=None, body=None, public=False):
    env = EnvironBuilder(method="POST", path="/api/v1/visits", headers=headers or {},
                         data=body, content_type="application/json").get_environ()
    remote = Remote(object(), "visits", 1.0)
    reply = serve(Request(env), handler, tokens=store,
                  remotes={"visits": remote, "compliance": remote}, params={}, public=public)
    assert reply.mimetype == "application/json"
    return reply.status_code, json.loads(reply.get_data())


def test_serve_maps_every_outcome_to_json(tokens_file, caplog):
    store = TokenStore()
    bearer = {"Authorization": f"Bearer {store.create('cadre', cadre_id='c-1')}"}
    assert _serve(store, lambda call: (201, {"actor": call.actor}), bearer) == (
        201, {"actor": "cadre:c-1"})
    assert _serve(store, lambda call: (200, {}))[0] == 401
    assert _serve(store, lambda call: (200, {}), public=True) == (200, {})

    def conflict(call):
        raise Conflict("visit v-1 was retracted")

    assert _serve(store, conflict, bearer) == (409, {"errors": {"_schema": [
        "visit v-1 was retracted"]}})

    def body(call):
        return 200, call.body(RetractVisitSchema)

    assert _serve(store, body, bearer, b'{"reason": " "}') == (
        400, {"errors": {"reason": ["must not be blank"]}})
    assert _serve(store, body, bearer, b"[]")[1] == {"errors": {"body": ["must be a JSON object"]}}

    def slow(call):
        with eventlet.Timeout(0.01, RpcTimeout("visits", "record_visit", 0.01)):
            eventlet.sleep(1)

    status, reply = _serve(store, slow, bearer)
    assert status == 504
    assert "retrying with the same Idempotency-Key is safe" in reply["errors"]["_schema"][0]

    def broken(call):
        raise KeyError("secret detail")

    assert _serve(store, broken, bearer) == (500, {"errors": {"_schema": ["internal error"]}})
    assert "secret detail" in caplog.text and "Traceback" in caplog.text
