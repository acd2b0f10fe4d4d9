"""The canonical JSON every record is stored and hashed as, and the chain link itself."""

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


def reference(value: object) -> str:
    """The canonical form as the standard library writes it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("text", [*TRICKY, None])
@pytest.mark.parametrize("personal", [None, ["name", "address.street"]])
def test_canonical_equals_the_standard_library_for_tricky_strings(text, personal):
    doc = record(text, personal=personal)
    text_ = chain.dumps(doc)
    assert text_ == reference(doc)
    assert json.loads(text_) == doc


def test_dumps_is_sorted_compact_and_not_ascii_escaped():
    assert chain.dumps({"b": 1, "a": [1, {"d": None, "c": "é"}]}) == (
        '{"a":[1,{"c":"é","d":null}],"b":1}'
    )
    assert chain.dumps("\x00\n\"\\") == '"\\u0000\\n\\"\\\\"'


def test_link_is_sha256_of_prev_hash_and_canonical_text():
    text_ = chain.dumps(record("ü"))
    prev = "ab" * 32
    assert chain.link(prev, text_) == hashlib.sha256((prev + text_).encode()).hexdigest()
    assert chain.link(prev, text_) != chain.link("cd" * 32, text_)


def test_chained_is_dumps_and_link_record_after_record():
    documents = [record(value) for value in TRICKY]
    prev, expected = "ab" * 32, []
    for document in documents:
        text_ = chain.dumps(document)
        expected.append((text_, prev, chain.link(prev, text_)))
        prev = expected[-1][2]
    assert chain.chained("ab" * 32, documents) == expected


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(
    text=st.text(st.characters(exclude_categories=("Cs",))),
    position=st.integers(1, 2**62),
    personal=st.none() | st.lists(st.text(max_size=5), max_size=3),
)
def test_canonical_equals_the_standard_library_for_any_text(text, position, personal):
    doc = record(text, position, personal)
    assert chain.dumps(doc) == reference(doc)


def test_integers_beyond_64_bits_still_get_a_canonical_form():
    doc = {"b": 2**70, "a": -(2**65)}
    assert chain.dumps(doc) == f'{{"a":{-(2**65)},"b":{2**70}}}'


def test_event_ids_are_distinct_version_4_uuids():
    import uuid

    from shared.eventlog.log import _uuid4s

    ids = _uuid4s(500)
    assert len(set(ids)) == 500
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
