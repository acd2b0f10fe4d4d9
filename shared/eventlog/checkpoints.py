"""Signed checkpoints of (position, hash), kept outside the database.

A bare hash chain cannot reveal a rewritten or truncated tail: whoever can write the database
can recompute it. A checkpoint signed with a key the database never sees can. Ed25519 lets an
auditor verify with the public key alone; HMAC-SHA256 is offered for simple set-ups.
Keys are written `ed25519:<base64 32-byte seed>` or `hmac:<base64 secret>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


@dataclass(frozen=True, slots=True)
class Checkpoint:
    service: str
    position: int
    hash: str
    signed_at: str
    alg: str
    key_id: str
    signature: str

    def message(self) -> bytes:
        return f"{self.service}|{self.position}|{self.hash}|{self.signed_at}".encode()

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> Checkpoint:
        return cls(**json.loads(line))


class Signer:
    """Signs and checks checkpoints with one configured key."""

    def __init__(self, spec: str) -> None:
        alg, _, material = spec.partition(":")
        raw = base64.b64decode(material)
        self.alg = alg
        if alg == "ed25519":
            self._private: Ed25519PrivateKey | None = Ed25519PrivateKey.from_private_bytes(raw)
            self.public_key = self._private.public_key().public_bytes(
                Encoding.Raw, PublicFormat.Raw
            )
        elif alg == "hmac":
            self._private = None
            self._secret = raw
            self.public_key = b""
        else:
            raise ValueError("signing key must start with 'ed25519:' or 'hmac:'")
        basis = self.public_key if alg == "ed25519" else hashlib.sha256(raw).digest()
        self.key_id = hashlib.sha256(basis).hexdigest()[:16]

    @staticmethod
    def generate(alg: str = "ed25519") -> str:
        """A new key spec, for `grassroots keys generate` and tests."""
        return f"{alg}:{base64.b64encode(os.urandom(32)).decode()}"

    def _sign(self, message: bytes) -> bytes:
        if self._private is not None:
            return self._private.sign(message)
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def sign(self, service: str, position: int, hash_: str) -> Checkpoint:
        signed_at = datetime.now(UTC).isoformat()
        unsigned = Checkpoint(service, position, hash_, signed_at, self.alg, self.key_id, "")
        signature = base64.b64encode(self._sign(unsigned.message())).decode()
        return Checkpoint(service, position, hash_, signed_at, self.alg, self.key_id, signature)

    def valid(self, checkpoint: Checkpoint) -> bool:
        if checkpoint.alg != self.alg or checkpoint.key_id != self.key_id:
            return False
        signature = base64.b64decode(checkpoint.signature)
        if self._private is None:
            return hmac.compare_digest(signature, self._sign(checkpoint.message()))
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                signature, checkpoint.message()
            )
        except InvalidSignature:
            return False
        return True


def export(path: str | Path, checkpoint: Checkpoint) -> None:
    """Append one checkpoint to a JSON-lines file (fsynced: it is evidence)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(checkpoint.to_json() + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def load(path: str | Path) -> list[Checkpoint]:
    """Every checkpoint in a file written by `export`."""
    text = Path(path).read_text(encoding="utf-8")
    return [Checkpoint.from_json(line) for line in text.splitlines() if line.strip()]


def by_position(checkpoints: Iterable[Checkpoint]) -> dict[int, Checkpoint]:
    return {cp.position: cp for cp in checkpoints}
