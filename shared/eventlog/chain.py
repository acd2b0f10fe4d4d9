"""The hash chain: canonical JSON of a stored record, and how each hash links to the last.

`hash = sha256(prev_hash + canonical)` where `canonical` is the record as a JSON object with
sorted keys, no whitespace and UTF-8 text (no ASCII escaping). The log stores exactly that text
(column `record`), so an auditor needs nothing but SHA-256 to check it. Personal fields enter as
ciphertext, so erasing a key never breaks the chain.
"""

from __future__ import annotations

import hashlib
import json
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any


def dumps(value: Any) -> str:
    """Canonical JSON text of a value (sorted keys, compact, UTF-8)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _s(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def canonical(
    position: int, stream: str, version: int, type_: str, schema_version: int, data: str,
    event_id: str, command_id: str | None, actor: str | None, correlation_id: str | None,
    causation_id: str | None, occurred_at: str, recorded_at: str, subject: str | None,
    personal: str | None,
) -> str:
    """The record's canonical JSON; `data` and `personal` are already canonical JSON text.

    Built by hand rather than with `json.dumps(dict)` because it is the hot path of append;
    `tests/unit/test_chain.py` proves it equals `dumps` of the same record.
    """
    return (
        f'{{"actor":{_s(actor)},"causation_id":{_s(causation_id)},'
        f'"command_id":{_s(command_id)},"correlation_id":{_s(correlation_id)},'
        f'"data":{data},"event_id":{_s(event_id)},"occurred_at":{_s(occurred_at)},'
        f'"personal":{"null" if personal is None else personal},"position":{position},'
        f'"recorded_at":{_s(recorded_at)},"schema_version":{schema_version},'
        f'"stream":{_s(stream)},"subject":{_s(subject)},"type":{_s(type_)},'
        f'"version":{version}}}'
    )


def link(prev_hash: str, canonical_text: str) -> str:
    """The hash of a record given the hash before it."""
    return hashlib.sha256((prev_hash + canonical_text).encode()).hexdigest()
