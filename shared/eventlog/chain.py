"""The hash chain: canonical JSON of a stored record, and how each hash links to the last.

`hash = sha256(prev_hash + canonical)` where `canonical` is the record as a JSON object with
sorted keys, no whitespace and UTF-8 text (no ASCII escaping). The log stores exactly that text
(column `record`), so an auditor needs nothing but SHA-256 to check it. Personal fields enter as
ciphertext, so erasing a key never breaks the chain.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

_SORTED = orjson.OPT_SORT_KEYS


def dumps(value: Any) -> str:
    """Canonical JSON text of a value: sorted keys, compact, UTF-8 (no ASCII escaping).

    orjson writes it; integers beyond 64 bits, which orjson refuses, fall back to the
    standard library, whose output is the same JSON for everything else but floats' exponent
    spelling. Either way the text stored is the text hashed, so verification never needs to
    reproduce it.
    """
    try:
        return orjson.dumps(value, option=_SORTED).decode()
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def link(prev_hash: str, canonical_text: str) -> str:
    """The hash of a record given the hash before it."""
    return hashlib.sha256((prev_hash + canonical_text).encode()).hexdigest()
