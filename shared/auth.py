"""API bearer tokens: created by `grassroots token create`, checked by the gateway.

Only the SHA-256 of a token is stored, so the file (mode 0600, replaced atomically) never holds
a usable secret. The gateway reloads it when it changes on disk, so a token created while the
platform runs works at once, without a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.config import ROOT, VAR

ENV_VAR = "GRASSROOTS_TOKENS"
DEFAULT_PATH = VAR / "tokens.json"
PREFIX = "gr_"
ROLES = ("operator", "cadre", "head", "supervisor", "auditor")
# Same shape as the visits service's ids (a cadre or unit id the token is bound to).
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
EXIT_USAGE = 2


def tokens_path(configured: str | os.PathLike[str] | None = None) -> Path:
    """Where tokens live: `configured`, else env GRASSROOTS_TOKENS, else tokens.json in var/
    (GRASSROOTS_VAR);
    a relative path is taken from the repository root, as `grassroots up` runs from there."""
    path = Path(configured or os.environ.get(ENV_VAR) or DEFAULT_PATH)
    return path if path.is_absolute() else ROOT / path


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: a role, bound to a cadre (role cadre) or a unit (role head)."""

    role: str
    cadre_id: str | None = None
    unit_id: str | None = None
    token_id: str = ""

    @property
    def actor(self) -> str:
        """The name recorded in events: the cadre for cadre tokens, else role and token id."""
        if self.role == "cadre" and self.cadre_id:
            return f"cadre:{self.cadre_id}"
        return f"{self.role}:{self.token_id}"


def check_binding(role: str, cadre_id: str | None, unit_id: str | None) -> None:
    """ValueError naming the misuse: an unknown role, or a cadre/unit binding that does not fit."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if role == "cadre" and not cadre_id:
        raise ValueError("role cadre needs --cadre ID (the cadre the token acts for)")
    if role == "head" and not unit_id:
        raise ValueError("role head needs --unit ID (the unit the head leads)")
    if cadre_id and role != "cadre":
        raise ValueError(f"--cadre is only for role cadre, not {role}")
    if unit_id and role != "head":
        raise ValueError(f"--unit is only for role head, not {role}")
    for flag, value in (("--cadre", cadre_id), ("--unit", unit_id)):
        if value is not None and not ID_PATTERN.match(value):
            raise ValueError(f"{flag} {value!r} is not an id (letters, digits, '_', '.', ':', '-')")


class TokenStore:
    """The hashed tokens in one JSON file: `{"tokens": {sha256: {role, cadre_id, ...}}}`."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = tokens_path(path)
        self._seen: tuple[int, int, int] | None = None
        self._tokens: dict[str, dict[str, Any]] = {}

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_ino, st.st_size)  # a rename always gives a new inode

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            with open(self.path, encoding="utf-8") as fh:
                return dict(json.load(fh).get("tokens", {}))
        except FileNotFoundError:
            return {}

    def _refresh(self) -> None:
        signature = self._signature()
        if signature != self._seen:
            self._tokens = self._read() if signature is not None else {}
            self._seen = signature

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialises read-modify-write between concurrent `token create` runs."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, tokens: dict[str, dict[str, Any]]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"version": 1, "tokens": tokens}, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def create(self, role: str, cadre_id: str | None = None, unit_id: str | None = None) -> str:
        """A new token for role (ValueError on a bad binding); returned once, stored hashed."""
        check_binding(role, cadre_id, unit_id)
        token = PREFIX + secrets.token_urlsafe(32)
        entry = {
            "role": role, "cadre_id": cadre_id, "unit_id": unit_id,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with self._locked():
            tokens = self._read()
            tokens[token_hash(token)] = entry
            self._write(tokens)
        return token

    def lookup(self, token: str) -> Principal | None:
        """The principal a token stands for, or None for an unknown token."""
        self._refresh()
        digest = token_hash(token)
        entry = self._tokens.get(digest)
        if entry is None:
            return None
        return Principal(
            role=entry["role"], cadre_id=entry.get("cadre_id"), unit_id=entry.get("unit_id"),
            token_id=digest[:12],
        )


def create_token_cli(role: str, cadre_id: str | None = None, unit_id: str | None = None) -> int:
    """`grassroots token create`: the token alone on stdout (for scripts), a hint on stderr."""
    store = TokenStore()
    try:
        token = store.create(role, cadre_id=cadre_id, unit_id=unit_id)
    except ValueError as exc:
        print(f"grassroots token create: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(token)
    api = os.environ.get("GATEWAY_ADDRESS", "127.0.0.1:8000")
    print(
        f"token for {role} stored (hashed) in {store.path}; it is shown only once. Use it as:\n"
        f'  curl -H "Authorization: Bearer {token}" http://{api}/api/v1/...',
        file=sys.stderr,
    )
    return 0
