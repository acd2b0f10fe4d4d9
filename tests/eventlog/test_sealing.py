"""Sealing an append's personal data: a copy of only what is sealed, once per event with the
subject's own key, and event ids that are random version 4 UUIDs."""

from __future__ import annotations

import copy
import os
import uuid
from typing import Any

from shared.eventlog import NewEvent
from shared.eventlog import log as log_module
from shared.eventlog.personal import ENCRYPTED, decrypt, encrypt

VISIT = {
    "visit_id": "v-1", "place": {"township": "Qiaotou"}, "tags": ["livelihood"],
    "target": {"kind": "household", "resident_id": "r-1",
               "resident": {"name": "Ann", "phone": "138 0000 0000", "address": None}},
}  # fmt: skip
PATHS = ("target.resident", "target.kind")


def test_encrypt_leaves_the_data_it_seals_untouched():
    data, before = VISIT, copy.deepcopy(VISIT)
    sealed = encrypt(data, PATHS, key := os.urandom(32), "event-1")
    assert data == before
    assert set(sealed["target"]["resident"]) == {ENCRYPTED}
    assert set(sealed["target"]["kind"]) == {ENCRYPTED}
    assert sealed["place"] == data["place"]
    opened, redacted = decrypt(sealed, PATHS, key, "event-1")
    assert (opened, redacted) == (before, ())


def test_encrypt_skips_a_path_that_is_absent_or_not_an_object():
    data = {"target": "household", "other": {"a": 1}}
    assert encrypt(data, ("target.resident", "missing.x", "other.b"), os.urandom(32), "e") == data


def resident(subject: str, name: str) -> NewEvent:
    return NewEvent("resident.visited", {"name": name}, subject=subject, personal=("name",))


def test_a_returning_resident_is_sealed_once_with_their_stored_key(log, monkeypatch):
    log.append("visit-1", [resident("r-1", "Ann Smith")])
    used: list[bytes] = []

    def spy(data: dict[str, Any], paths: tuple[str, ...], key: bytes, aad: str) -> Any:
        used.append(key)
        return encrypt(data, paths, key, aad)

    monkeypatch.setattr(log_module, "encrypt", spy)
    log.append("visit-2", [resident("r-1", "Ann Smith-Jones")])
    assert used == [log.keys.keys(["r-1"])["r-1"]]
    assert [r.data for r in log.read()] == [{"name": "Ann Smith"}, {"name": "Ann Smith-Jones"}]
    assert log.verify().ok


def test_event_ids_are_distinct_version_4_uuids():
    ids = log_module._uuid4s(2000)
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert (str(parsed), parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)
