"""API bearer tokens: created by `grassroots token create`, checked by the gateway.

Only the SHA-256 of a token is stored, so the file (mode 0600, replaced atomically) never holds
a usable secret. The gateway reloads it when it changes on disk, so a token created or revoked
while the platform runs takes effect at once, without a restart.

Tokens end: each expires (GRASSROOTS_TOKEN_DAYS, default 30 days, or `--days`) and can be
revoked (`grassroots token revoke ID`; kept, marked revoked, for audit). A cadre's or head's
token is also tied to the roster: `roster_refusal` says when it no longer works.
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.runtime.config import ROOT, VAR

ENV_VAR = "GRASSROOTS_TOKENS"
DEFAULT_PATH = VAR / "tokens.json"
PREFIX = "gr_"
# hotline: 12345 staff who register cases; callback: staff who call residents back on them.
# The cases service's own intake acts as `intake`, a principal no token is ever made for.
ROLES = ("operator", "cadre", "head", "supervisor", "auditor", "hotline", "callback")
# Same shape as the visits service's ids (a cadre or unit id the token is bound to).
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
EXIT_USAGE = 2
DAYS_ENV = "GRASSROOTS_TOKEN_DAYS"
DEFAULT_DAYS = 30
MAX_DAYS = 3650
MIN_ID = 6  # hex digits of the hash that `token revoke` needs to pick one token


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
    """Who a request acts for: a role, bound to a cadre (role cadre), or to a head cadre and
    the unit they lead (role head)."""

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
    if role == "head" and not (cadre_id and unit_id):
        raise ValueError("role head needs --cadre ID --unit ID (the head, and the unit they lead)")
    if cadre_id and role not in ("cadre", "head"):
        raise ValueError(f"--cadre is only for roles cadre and head, not {role}")
    if unit_id and role != "head":
        raise ValueError(f"--unit is only for role head, not {role}")
    for flag, value in (("--cadre", cadre_id), ("--unit", unit_id)):
        if value is not None and not ID_PATTERN.match(value):
            raise ValueError(f"{flag} {value!r} is not an id (letters, digits, '_', '.', ':', '-')")


def token_days(days: int | None = None) -> int:
    """How long a new token lives: `days`, else env GRASSROOTS_TOKEN_DAYS, else 30."""
    raw: object = days if days is not None else os.environ.get(DAYS_ENV) or DEFAULT_DAYS
    try:
        value = int(str(raw))
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_DAYS:
        source = "--days" if days is not None else DAYS_ENV
        raise ValueError(f"{source} must be a whole number of days from 1 to {MAX_DAYS}, "
                         f"not {raw!r}")
    return value


def _default_days() -> int:
    """The operator's default lifetime; 30 days while GRASSROOTS_TOKEN_DAYS is unusable (a
    lookup must answer, and `token create` reports the bad setting)."""
    try:
        return token_days()
    except ValueError:
        return DEFAULT_DAYS


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def token_state(entry: Mapping[str, Any], now: datetime) -> str:
    """active, revoked, expired, or unbound (a head token from before heads were tied to a
    cadre: it must be issued again). A token stored without an expiry (made before tokens
    had one) ends GRASSROOTS_TOKEN_DAYS after it was made."""
    if entry.get("revoked_at"):
        return "revoked"
    if entry.get("role") == "head" and not entry.get("cadre_id"):
        return "unbound"
    expires = entry.get("expires_at")
    end = (_instant(expires) if expires
           else _instant(entry["created_at"]) + timedelta(days=_default_days()))
    return "active" if now < end else "expired"


def roster_refusal(
    principal: Principal, cadre: Mapping[str, Any] | None, today: date
) -> str | None:
    """Why a cadre's or head's token no longer works, given the roster's answer, or None.

    `cadre` is the visits service's dump of the cadre the token is bound to (`id`, `unit_id`,
    `left`, `left_from`: the ISO date they left the roster from, or None), or None when the
    roster does not know them. Refused: off the roster from the day they left, and a head
    token once its cadre no longer belongs to the unit it was issued for. Other roles: None.
    """
    if principal.role not in ("cadre", "head"):
        return None
    who = principal.cadre_id
    if cadre is None or cadre.get("id") != who:
        return f"cadre {who} is not on the roster"
    left_from = cadre.get("left_from")
    if left_from:
        if date.fromisoformat(str(left_from)[:10]) <= today:
            return f"cadre {who} left the roster on {str(left_from)[:10]}"
    elif cadre.get("left"):
        return f"cadre {who} has left the roster"
    if principal.role == "head" and cadre.get("unit_id") != principal.unit_id:
        return (f"cadre {who} no longer belongs to unit {principal.unit_id} "
                f"(now {cadre.get('unit_id')}): the head token was for that unit")
    return None


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

    def create(self, role: str, cadre_id: str | None = None, unit_id: str | None = None,
               days: int | None = None) -> str:
        """A new token for role, valid `days` (default: `token_days()`); ValueError on a bad
        binding or lifetime. Returned once, stored hashed."""
        check_binding(role, cadre_id, unit_id)
        now = datetime.now(UTC).replace(microsecond=0)
        lifetime = timedelta(days=token_days(days))
        token = PREFIX + secrets.token_urlsafe(32)
        entry = {
            "role": role, "cadre_id": cadre_id, "unit_id": unit_id,
            "created_at": now.isoformat(), "expires_at": (now + lifetime).isoformat(),
            "revoked_at": None,
        }
        with self._locked():
            tokens = self._read()
            tokens[token_hash(token)] = entry
            self._write(tokens)
        return token

    def lookup(self, token: str, now: datetime | None = None) -> Principal | None:
        """The principal a token stands for, or None for an unknown, expired or revoked one."""
        self._refresh()
        digest = token_hash(token)
        entry = self._tokens.get(digest)
        if entry is None or token_state(entry, now or datetime.now(UTC)) != "active":
            return None
        return Principal(
            role=entry["role"], cadre_id=entry.get("cadre_id"), unit_id=entry.get("unit_id"),
            token_id=digest[:12],
        )


    def entries(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Every token, oldest first, as `token list` shows it: id (the hash's first 12 hex
        digits, as in `Principal.token_id`), binding, times and state."""
        moment = now or datetime.now(UTC)
        out = [
            {"id": digest[:12], "role": e["role"], "cadre_id": e.get("cadre_id"),
             "unit_id": e.get("unit_id"), "created_at": e["created_at"],
             "expires_at": e.get("expires_at"), "revoked_at": e.get("revoked_at"),
             "state": token_state(e, moment)}
            for digest, e in self._read().items()
        ]
        return sorted(out, key=lambda e: (e["created_at"], e["id"]))

    def revoke(self, token_id: str) -> tuple[dict[str, Any], bool]:
        """Mark the token whose hash starts with `token_id` revoked (it is kept, for audit);
        (its entry, whether this call revoked it). ValueError unless exactly one matches."""
        wanted = token_id.strip().lower()
        if len(wanted) < MIN_ID or not re.fullmatch(r"[0-9a-f]+", wanted):
            raise ValueError(f"{token_id!r} is not a token id (at least {MIN_ID} hex digits, "
                             "as `grassroots token list` shows)")
        with self._locked():
            tokens = self._read()
            found = [d for d in tokens if d.startswith(wanted)]
            if len(found) != 1:
                raise ValueError(f"{len(found) or 'no'} tokens have an id starting {wanted!r}"
                                 + (": give more digits" if found else ""))
            entry = tokens[found[0]]
            if entry.get("revoked_at"):
                return {"id": found[0][:12], **entry}, False
            entry["revoked_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            self._write(tokens)
        return {"id": found[0][:12], **entry}, True


def create_token_cli(role: str, cadre_id: str | None = None, unit_id: str | None = None,
                     days: int | None = None) -> int:
    """`grassroots token create`: the token alone on stdout (for scripts), a hint on stderr."""
    store = TokenStore()
    try:
        token = store.create(role, cadre_id=cadre_id, unit_id=unit_id, days=days)
    except ValueError as exc:
        print(f"grassroots token create: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(token)
    api = os.environ.get("GATEWAY_ADDRESS", "127.0.0.1:8000")
    print(
        f"token for {role} stored (hashed) in {store.path}; it is shown only once and works "
        f"for {token_days(days)} days. Use it as:\n"
        f'  curl -H "Authorization: Bearer {token}" http://{api}/api/v1/...',
        file=sys.stderr,
    )
    return 0


def _when(text: str | None) -> str:
    return text[:16].replace("T", " ") if text else "-"


def list_tokens_cli(as_json: bool = False) -> int:
    """`grassroots token list`: a table (times in UTC), or JSON with --json."""
    entries = TokenStore().entries()
    if as_json:
        print(json.dumps(entries, indent=1))
        return 0
    rows = [("ID", "ROLE", "BINDING", "CREATED", "EXPIRES", "STATE")]
    for e in entries:
        binding = ", ".join(f"{k} {e[f'{k}_id']}" for k in ("cadre", "unit") if e[f"{k}_id"])
        state = f"revoked {_when(e['revoked_at'])}" if e["state"] == "revoked" else e["state"]
        rows.append((e["id"], e["role"], binding or "-", _when(e["created_at"]),
                     _when(e["expires_at"]), state))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def revoke_token_cli(token_id: str) -> int:
    """`grassroots token revoke ID`: 0 when the token is (now or already) revoked."""
    try:
        entry, changed = TokenStore().revoke(token_id)
    except ValueError as exc:
        print(f"grassroots token revoke: {exc}", file=sys.stderr)
        return 1
    what = "revoked" if changed else "was already revoked"
    print(f"token {entry['id']} ({entry['role']}) {what} at {entry['revoked_at']}",
          file=sys.stderr)
    return 0
