"""Tokens that end (issue 7, section 4): expiry, `token list`, `token revoke`, and the roster."""

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from shared.runtime.auth import (
    Principal,
    TokenStore,
    create_token_cli,
    roster_refusal,
    token_hash,
    token_state,
)
from shared.tools.cli import main as cli_main


def stored(path, token):
    return json.loads(path.read_text())["tokens"][token_hash(token)]


def at(entry, field):
    return datetime.fromisoformat(entry[field])


# -- expiry --------------------------------------------------------------------------------------


def test_a_token_ends_after_the_operators_default_of_30_days(tokens_file):
    store = TokenStore()
    token = store.create("auditor")
    entry = stored(tokens_file, token)
    assert at(entry, "expires_at") - at(entry, "created_at") == timedelta(days=30)
    end = at(entry, "expires_at")
    assert store.lookup(token, now=end - timedelta(seconds=1)).role == "auditor"
    assert store.lookup(token, now=end) is None
    assert store.lookup(token, now=end + timedelta(days=400)) is None


def test_the_lifetime_comes_from_the_environment_or_days(tokens_file, monkeypatch):
    monkeypatch.setenv("GRASSROOTS_TOKEN_DAYS", "7")
    store = TokenStore()
    week = stored(tokens_file, store.create("operator"))
    assert at(week, "expires_at") - at(week, "created_at") == timedelta(days=7)
    day = stored(tokens_file, store.create("operator", days=1))
    assert at(day, "expires_at") - at(day, "created_at") == timedelta(days=1)


@pytest.mark.parametrize(("env", "days", "message"), [
    (None, 0, "--days must be a whole number of days from 1 to 3650, not 0"),
    (None, 3651, "--days must be"),
    ("soon", None, "GRASSROOTS_TOKEN_DAYS must be a whole number"),
    ("-3", None, "GRASSROOTS_TOKEN_DAYS must be"),
])
def test_a_bad_lifetime_is_refused(tokens_file, monkeypatch, env, days, message):
    if env is not None:
        monkeypatch.setenv("GRASSROOTS_TOKEN_DAYS", env)
    with pytest.raises(ValueError, match=message):
        TokenStore().create("operator", days=days)
    assert not tokens_file.exists()


def test_tokens_stored_before_expiry_existed_end_after_the_default(tokens_file, monkeypatch):
    """A token written by an earlier version has no expires_at: it ends 30 days after it was
    made. An old head token bound to a unit only is no longer valid at all."""
    now = datetime.now(UTC)
    old = {"role": "operator", "cadre_id": None, "unit_id": None}
    tokens = {
        token_hash("gr_recent"): {**old, "created_at": (now - timedelta(days=10)).isoformat()},
        token_hash("gr_ancient"): {**old, "created_at": (now - timedelta(days=31)).isoformat()},
        token_hash("gr_old_head"): {**old, "role": "head", "unit_id": "u-01",
                                   "created_at": now.isoformat()},
    }
    tokens_file.parent.mkdir(parents=True)
    tokens_file.write_text(json.dumps({"version": 1, "tokens": tokens}))
    store = TokenStore()
    assert store.lookup("gr_recent").role == "operator"
    assert store.lookup("gr_ancient") is None
    monkeypatch.setenv("GRASSROOTS_TOKEN_DAYS", "junk")  # an unusable setting: the default
    assert store.lookup("gr_recent").role == "operator"
    assert store.lookup("gr_ancient") is None
    assert store.lookup("gr_old_head") is None
    assert token_state(tokens[token_hash("gr_old_head")], now) == "unbound"


def test_cli_create_takes_days(tokens_file, capsys):
    assert cli_main(["token", "create", "--role", "supervisor", "--days", "2"]) == 0
    out, err = capsys.readouterr()
    entry = stored(tokens_file, out.strip())
    assert at(entry, "expires_at") - at(entry, "created_at") == timedelta(days=2)
    assert "works for 2 days" in err
    assert create_token_cli("supervisor", days=0) == 2
    assert "--days must be" in capsys.readouterr().err


# -- revoking ------------------------------------------------------------------------------------


def test_a_revoked_token_is_refused_at_once_and_kept_for_audit(tokens_file):
    gateway, cli = TokenStore(), TokenStore()  # two processes: the gateway and the operator
    token = cli.create("cadre", cadre_id="c-007")
    principal = gateway.lookup(token)
    assert principal.cadre_id == "c-007"

    entry, changed = cli.revoke(principal.token_id[:6])
    assert changed and entry["id"] == principal.token_id and entry["revoked_at"]
    assert gateway.lookup(token) is None
    kept = stored(tokens_file, token)
    assert kept["role"] == "cadre" and kept["revoked_at"] == entry["revoked_at"]
    assert cli.revoke(principal.token_id) == (entry, False), "revoking twice changes nothing"
    assert stored(tokens_file, token) == kept


@pytest.mark.parametrize(("given", "message"), [
    ("abc", "not a token id"),
    ("zzzzzzzz", "not a token id"),
    ("000000", "no tokens have an id starting '000000'"),
    ("aaaaaa", "2 tokens have an id starting 'aaaaaa': give more digits"),
])
def test_revoke_needs_an_id_naming_one_token(tokens_file, given, message):
    entry = {"role": "operator", "cadre_id": None, "unit_id": None,
             "created_at": datetime.now(UTC).isoformat(), "expires_at": None, "revoked_at": None}
    tokens = {"aaaaaa" + "1" * 58: entry, "aaaaaa" + "2" * 58: entry}
    tokens_file.parent.mkdir(parents=True)
    tokens_file.write_text(json.dumps({"version": 1, "tokens": tokens}))
    before = tokens_file.read_text()
    with pytest.raises(ValueError, match=message):
        TokenStore().revoke(given)
    assert tokens_file.read_text() == before


# -- listing -------------------------------------------------------------------------------------


def test_list_shows_every_token_with_its_state(tokens_file, capsys):
    store = TokenStore()
    operator = store.create("operator")
    head = store.create("head", cadre_id="c-01", unit_id="u-01", days=1)
    revoked = store.create("cadre", cadre_id="c-02")
    store.revoke(token_hash(revoked)[:12])
    later = datetime.now(UTC) + timedelta(days=2)
    states = {e["id"]: e["state"] for e in store.entries(now=later)}
    assert states == {token_hash(operator)[:12]: "active", token_hash(head)[:12]: "expired",
                      token_hash(revoked)[:12]: "revoked"}

    assert cli_main(["token", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(e["role"] for e in listed) == ["cadre", "head", "operator"]
    assert [e["created_at"] for e in listed] == sorted(e["created_at"] for e in listed)
    [entry] = [e for e in listed if e["role"] == "head"]
    assert set(entry) == {"id", "role", "cadre_id", "unit_id", "created_at", "expires_at",
                          "revoked_at", "state"}
    assert (entry["cadre_id"], entry["unit_id"], entry["state"]) == ("c-01", "u-01", "active")
    assert operator not in json.dumps(listed), "the list never shows a secret"

    assert cli_main(["token", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "ROLE", "BINDING", "CREATED", "EXPIRES", "STATE"]
    assert len(lines) == 4
    head_line = next(line for line in lines if token_hash(head)[:12] in line)
    assert "cadre c-01, unit u-01" in head_line and head_line.endswith("active")
    revoked_line = next(line for line in lines if token_hash(revoked)[:12] in line)
    assert "revoked " in revoked_line
    widths = {line.index("ROLE") if i == 0 else len(line.split()[0]) + 2
              for i, line in enumerate(lines)}
    assert widths == {14}, "columns line up"


def test_cli_revoke(tokens_file, capsys):
    token = TokenStore().create("auditor")
    token_id = token_hash(token)[:12]
    assert cli_main(["token", "revoke", token_id]) == 0
    assert f"token {token_id} (auditor) revoked at" in capsys.readouterr().err
    assert cli_main(["token", "revoke", token_id]) == 0
    assert "was already revoked" in capsys.readouterr().err
    assert cli_main(["token", "revoke", "ffffffffffff"]) == 1
    assert "no tokens have an id" in capsys.readouterr().err
    assert TokenStore().lookup(token) is None


# -- the roster ----------------------------------------------------------------------------------

TODAY = date(2026, 3, 10)
CADRE = Principal("cadre", cadre_id="c-1", token_id="t1")
HEAD = Principal("head", cadre_id="h-1", unit_id="u-a", token_id="t2")


def on_roster(cadre_id, unit_id="u-a", left_from=None, role="staff"):
    return {"id": cadre_id, "unit_id": unit_id, "role": role, "liaison_unit_ids": [],
            "left": left_from is not None, "left_from": left_from}


def test_roster_refusal_lets_cadres_and_heads_on_the_roster_in():
    assert roster_refusal(CADRE, on_roster("c-1", unit_id="u-z"), TODAY) is None
    assert roster_refusal(HEAD, on_roster("h-1", role="head"), TODAY) is None
    assert roster_refusal(CADRE, on_roster("c-1", left_from="2026-03-11"), TODAY) is None, (
        "leaving tomorrow: still on the roster today")
    for other in ("operator", "supervisor", "auditor"):
        assert roster_refusal(Principal(other, token_id="t"), None, TODAY) is None


@pytest.mark.parametrize(("principal", "cadre", "reason"), [
    (CADRE, None, "cadre c-1 is not on the roster"),
    (HEAD, None, "cadre h-1 is not on the roster"),
    (CADRE, on_roster("c-9"), "cadre c-1 is not on the roster"),
    (CADRE, on_roster("c-1", left_from="2026-03-10"), "cadre c-1 left the roster on 2026-03-10"),
    (HEAD, on_roster("h-1", left_from="2025-12-31"), "cadre h-1 left the roster on 2025-12-31"),
    (CADRE, {**on_roster("c-1"), "left": True}, "cadre c-1 has left the roster"),
    (HEAD, on_roster("h-1", unit_id="u-b"),
     "cadre h-1 no longer belongs to unit u-a (now u-b): the head token was for that unit"),
])
def test_roster_refusal_names_why_a_token_no_longer_works(principal, cadre, reason):
    assert roster_refusal(principal, cadre, TODAY) == reason
