"""Principals signed by the gateway and checked by the service that writes.

The gateway authenticates a bearer token; the write service must still know, unasked, who it
acts for, because anyone who can publish on the broker could otherwise call its RPC with any
`actor`. So the gateway signs the principal together with the exact call it is for (the RPC
method and a digest of its arguments) and a short expiry, with a key only the gateway and the
services hold (HMAC-SHA256). The service verifies the signature against the call it received:
a forged, altered, expired or replayed-onto-another-call principal is refused (an expired
one as 503: see `verify`).

Both ends digest every call (a visit's whole body), so the canonical form is made by msgspec,
several times faster than the standard library's sorted dumps; a value msgspec cannot encode
(a lone surrogate, a key that is not text) falls back to the standard library's form, which
the other end then computes too, or the call is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from shared.kernel.errors import Denied, Unavailable
from shared.runtime.auth import Principal
from shared.runtime.config import VAR

ENV_VAR = "GRASSROOTS_PRINCIPAL_KEY"
KEY_FILE = "principal.key"
TTL_SECONDS = 120.0  # a signed call must reach the service within this (clock skew included)
_CANONICAL = msgspec.json.Encoder(order="sorted")


def generate_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def principal_key(var: Path = VAR) -> str:
    """GRASSROOTS_PRINCIPAL_KEY, else the key kept in var/principal.key (made on first use)."""
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    path = var / KEY_FILE
    if not path.exists():
        var.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(generate_key() + "\n")
    return path.read_text().strip()


def _digest(method: str, args: Sequence[Any]) -> str:
    try:
        canonical = _CANONICAL.encode([method, args])
    except (TypeError, UnicodeEncodeError, msgspec.EncodeError):
        canonical = json.dumps([method, list(args)], sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
    return hashlib.sha256(canonical).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and verifies `principal for method(args)` with one shared key."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError(f"no principal key: set {ENV_VAR}")
        self._key = key.encode()

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()

    def sign(self, principal: Principal, method: str, args: Sequence[Any],
             now: float | None = None) -> str:
        claims = {
            "role": principal.role, "cadre_id": principal.cadre_id,
            "unit_id": principal.unit_id, "token_id": principal.token_id,
            "call": _digest(method, args),
            "exp": (now if now is not None else time.time()) + TTL_SECONDS,
        }
        body = _CANONICAL.encode(claims)
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def verify(self, signed: Any, method: str, args: Sequence[Any],
               now: float | None = None) -> Principal:
        """The principal, or Denied naming why the call is not trusted."""
        if not isinstance(signed, str) or signed.count(".") != 1:
            raise Denied("the call carries no principal signed by the gateway")
        body_text, mac_text = signed.split(".")
        try:
            body, mac = _unb64(body_text), _unb64(mac_text)
        except ValueError:
            raise Denied("the call's principal is malformed") from None
        if not hmac.compare_digest(mac, self._mac(body)):
            raise Denied("the call's principal is not signed by the gateway")
        claims = msgspec.json.decode(body)  # what the gateway signed: it is its own JSON
        if claims.get("call") != _digest(method, args):
            raise Denied("the call's principal was signed for another call")
        if float(claims.get("exp", 0)) < (now if now is not None else time.time()):
            # Refused like any bad principal, but as the platform's failing, not the caller's
            # (503, retry): the gateway signed it moments ago by its own clock, so either the
            # two clocks disagree or the call waited in the broker beyond TTL_SECONDS. (A soak
            # saw one 403 as a clock stepped back reached the gateway before the service.)
            raise Unavailable("the call's principal expired on its way to the service (the "
                              "gateway's and the service's clocks disagree, or it waited over "
                              f"{TTL_SECONDS:.0f} s)", retry_after=1)
        return Principal(role=claims["role"], cadre_id=claims.get("cadre_id"),
                         unit_id=claims.get("unit_id"), token_id=claims.get("token_id", ""))
