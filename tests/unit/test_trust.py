"""The principal the gateway signs for one call (shared/runtime/trust.py), checked as the
service checks it: after the arguments crossed the broker as JSON."""

from __future__ import annotations

import time

import pytest
from kombu.utils import json as kombu_json

from shared.kernel.errors import Denied, Unavailable
from shared.runtime.auth import Principal
from shared.runtime.trust import Signer, generate_key

HEAD = Principal("head", cadre_id="c-1", unit_id="u-1", token_id="0123456789ab")
BODY = {"id": "v-1", "cadre_ids": ["c-1", "c-2"], "diary": {"notes": "访民情 \x01"},
        "target": {"resident": {"name": "Wang", "phone": "138"}}, "n": 10**30, "f": 1.5}


def over_the_wire(args: list) -> list:
    """What the service receives: the arguments as nameko's json serializer carries them."""
    return kombu_json.loads(kombu_json.dumps(args))


def test_a_signed_call_verifies_after_the_wire_whatever_the_key_order():
    signer = Signer(generate_key())
    signed = signer.sign(HEAD, "record_visit", ("v-1", BODY, None))
    reordered = dict(reversed(list(over_the_wire([BODY])[0].items())))
    assert signer.verify(signed, "record_visit", ["v-1", reordered, None]) == HEAD


@pytest.mark.parametrize("change", [
    lambda args: ["v-2", *args[1:]],
    lambda args: [args[0], {**args[1], "f": 1.25}, None],
    lambda args: [*args[:2], "another-command-id"],
])
def test_another_call_is_refused(change):
    signer = Signer(generate_key())
    args = ["v-1", BODY, None]
    signed = signer.sign(HEAD, "record_visit", args)
    with pytest.raises(Denied, match="another call"):
        signer.verify(signed, "record_visit", change(over_the_wire(args)))
    with pytest.raises(Denied, match="another call"):
        signer.verify(signed, "correct_visit", over_the_wire(args))


def test_forged_expired_and_malformed_principals_are_refused():
    signer, args = Signer(generate_key()), ["v-1", BODY, None]
    with pytest.raises(Denied, match="not signed"):
        signer.verify(Signer(generate_key()).sign(HEAD, "record_visit", args), "record_visit",
                      args)
    with pytest.raises(Unavailable, match="expired") as expired:  # refused, retry: 503
        signer.verify(signer.sign(HEAD, "record_visit", args, now=time.time() - 3600),
                      "record_visit", args)
    assert expired.value.http_status == 503 and expired.value.retry_after == 1
    body, _, mac = signer.sign(HEAD, "record_visit", args).partition(".")
    for bad in (None, "no-dot", f"{body}.{mac}.x", f"{body}x.{mac}", f"{body}.!{mac}"):
        with pytest.raises(Denied):
            signer.verify(bad, "record_visit", args)


def test_arguments_the_fast_encoder_refuses_still_sign_and_verify():
    """A lone surrogate or a key that is not text takes the standard library's form on both
    ends: still bound to exactly that call."""
    signer = Signer(generate_key())
    for odd in ({"notes": "\ud800"}, {1: "one"}):
        signed = signer.sign(HEAD, "record_visit", [odd, None])
        assert signer.verify(signed, "record_visit", [odd, None]) == HEAD
        with pytest.raises(Denied, match="another call"):
            signer.verify(signed, "record_visit", [{"notes": "other"}, None])
