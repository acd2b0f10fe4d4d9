"""chain.canonical, hand-built for speed, is exactly chain.dumps of the same record."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.eventlog import chain

TRICKY = [
    "",
    "plain",
    "ünïcødé — 日本語 — 🎉 — \U0010ffff",
    'double " quote',
    "single ' quote",
    "back\\slash and \\\\ two and trailing \\",
    '\\" escaped-looking quote',
    "\\u0000 written out",
    "\x00\x01\x08\x09\x0a\x0c\x0d\x1b\x1f",
    "\x7f\x80\x9f\xa0\xad",
    "\u2028 line and paragraph \u2029 separators",
    "\ufeff byte order mark, \ufffe, \uffff",
    "</script><!--",
    '{"position":7}',
    ',"position":99,',
]


def record(text: str | None, position: int = 7, personal: list[str] | None = None) -> dict:
    return {
        "position": position, "stream": text or "s", "version": 3, "type": text or "a.b",
        "schema_version": 2, "data": {"text": text, text or "k": [text, {"n": 1.5}]},
        "event_id": text or "e", "command_id": text, "actor": text, "correlation_id": text,
        "causation_id": text, "occurred_at": text or "t", "recorded_at": text or "r",
        "subject": text, "personal": personal,
    }  # fmt: skip


def canonical_of(doc: dict) -> str:
    return chain.canonical(
        doc["position"], doc["stream"], doc["version"], doc["type"], doc["schema_version"],
        chain.dumps(doc["data"]), doc["event_id"], doc["command_id"], doc["actor"],
        doc["correlation_id"], doc["causation_id"], doc["occurred_at"], doc["recorded_at"],
        doc["subject"],
        None if doc["personal"] is None else chain.dumps(doc["personal"]),
    )  # fmt: skip


@pytest.mark.parametrize("text", [*TRICKY, None])
@pytest.mark.parametrize("personal", [None, ["name", "address.street"]])
def test_canonical_equals_dumps_for_tricky_strings(text, personal):
    doc = record(text, personal=personal)
    text_ = canonical_of(doc)
    assert text_ == chain.dumps(doc)
    assert json.loads(text_) == doc


def test_dumps_is_sorted_compact_and_not_ascii_escaped():
    assert chain.dumps({"b": 1, "a": [1, {"d": None, "c": "é"}]}) == (
        '{"a":[1,{"c":"é","d":null}],"b":1}'
    )
    assert chain.dumps("\x00\n\"\\") == '"\\u0000\\n\\"\\\\"'


def test_link_is_sha256_of_prev_hash_and_canonical_text():
    text_ = canonical_of(record("ü"))
    prev = "ab" * 32
    assert chain.link(prev, text_) == hashlib.sha256((prev + text_).encode()).hexdigest()
    assert chain.link(prev, text_) != chain.link("cd" * 32, text_)


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(
    text=st.text(st.characters(exclude_categories=("Cs",))),
    position=st.integers(1, 2**62),
    personal=st.none() | st.lists(st.text(max_size=5), max_size=3),
)
def test_canonical_equals_dumps_for_any_text(text, position, personal):
    doc = record(text, position, personal)
    assert canonical_of(doc) == chain.dumps(doc)
