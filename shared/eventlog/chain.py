"""The hash chain: canonical JSON of a stored record, and how each hash links to the last.

`hash = sha256(prev_hash + canonical)` where `canonical` is the record as a JSON object with
sorted keys, no whitespace and UTF-8 text (no ASCII escaping). The log stores exactly that text
(column `record`), so an auditor needs nothing but SHA-256 to check it. Personal fields enter as
ciphertext, so erasing a key never breaks the chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder(order="sorted")


def dumps(value: Any) -> str:
    """Canonical JSON text of a value: sorted keys, compact, UTF-8 (no ASCII escaping).

    msgspec writes it: the same JSON as the standard library's
    `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)` but for floats'
    exponent spelling (1e16, not 1e+16). The text stored is the text hashed, so verification
    never needs to reproduce it.
    """
    return _encoder.encode(value).decode()


def link(prev_hash: str, canonical_text: str) -> str:
    """The hash of a record given the hash before it."""
    return hashlib.sha256((prev_hash + canonical_text).encode()).hexdigest()


def links(prev_hashes: Sequence[str], canonical_texts: Sequence[str]) -> list[str]:
    """`link` over many records at once (verify checks a page of them in one comprehension)."""
    sha256 = hashlib.sha256
    return [sha256((p + t).encode()).hexdigest()
            for p, t in zip(prev_hashes, canonical_texts, strict=True)]
