"""Personal data is decrypted only when someone reads it (issue #8, item 6)."""

from __future__ import annotations

import copy
import pickle

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.eventlog import NewEvent, Record
from shared.eventlog.personal import KeyStore
from shared.kernel.commands import MemoryFold


@pytest.fixture
def counted(monkeypatch):
    """How many decryptions and key lookups reads have made so far."""
    calls = {"decrypt": 0, "keys": 0}
    decrypt, keys = AESGCM.decrypt, KeyStore.keys

    def counting_decrypt(self, *args, **kwargs):
        calls["decrypt"] += 1
        return decrypt(self, *args, **kwargs)

    def counting_keys(self, subjects):
        calls["keys"] += 1
        return keys(self, subjects)

    monkeypatch.setattr(AESGCM, "decrypt", counting_decrypt)
    monkeypatch.setattr(KeyStore, "keys", counting_keys)
    return calls


def visit(n: int, resident: str = "r-1") -> NewEvent:
    return NewEvent(
        "visit.recorded",
        {"cadre": f"c-{n % 3}", "n": n, "resident": {"id": resident, "name": f"Ann {n}",
                                                     "phone": "0113 496 0000"}},
        subject=resident, personal=("resident.name", "resident.phone"),
    )


@pytest.fixture
def visits(log):
    for n in range(1, 7):
        log.append(f"visit-{n}", [visit(n, f"r-{n % 2}")])
    log.append("unit-1", [NewEvent("unit.opened", {"unit": "u-1"})])
    return log


def count(state: dict[str, int], record: Record) -> dict[str, int]:
    """Visits per resident and units opened: never opens a visit's data."""
    key = record.data["unit"] if record.type == "unit.opened" else record.subject
    return {**state, key: state.get(key, 0) + 1}


def test_a_fold_that_reads_no_personal_field_decrypts_nothing(visits, counted):
    assert MemoryFold({}, count).current(visits) == {"r-1": 3, "r-0": 3, "u-1": 1}
    assert [r.stream for r in visits.read()] == [f"visit-{n}" for n in range(1, 7)] + ["unit-1"]
    assert counted == {"decrypt": 0, "keys": 0}, "no key fetched, nothing decrypted"


def test_reading_a_personal_field_decrypts_that_record_once(visits, counted):
    records = list(visits.read())
    assert records[2].data["resident"] == {"id": "r-1", "name": "Ann 3",
                                           "phone": "0113 496 0000"}
    assert counted == {"decrypt": 2, "keys": 1}, "two fields of one record, keys once a page"
    assert records[2].data is records[2].data and records[2].redacted == ()
    assert counted["decrypt"] == 2, "opened once, kept"
    assert [r.data["resident"]["name"] for r in records[:6]] == [f"Ann {n}" for n in range(1, 7)]
    assert counted == {"decrypt": 12, "keys": 1}


def test_withholding_personal_fields_decrypts_nothing_and_still_names_the_erased(visits,
                                                                                counted):
    visits.forget("r-0")
    counted.update(decrypt=0, keys=0)
    events = [r.to_cloudevent(personal=False) for r in visits.read()]
    assert counted["decrypt"] == 0
    assert events[0]["data"]["resident"] == {"id": "r-1", "name": None, "phone": None}
    assert "redacted" not in events[0]
    assert events[1]["data"]["resident"] == {"id": "r-0", "name": None, "phone": None}
    assert events[1]["redacted"] == "resident.name,resident.phone", "the key is gone"
    assert [r.redacted for r in visits.read_stream("visit-2")] == [
        ("resident.name", "resident.phone")]


def test_plain_fields_are_read_without_decrypting(visits, counted):
    """A command's answer reads the resident's id, never their name: `plain()` withholds."""
    records = list(visits.read())
    assert [r.plain()["resident"] for r in records[:2]] == [
        {"id": "r-1", "name": None, "phone": None}, {"id": "r-0", "name": None, "phone": None}]
    assert records[6].plain() == {"unit": "u-1"}
    assert counted == {"decrypt": 0, "keys": 0}
    opened = Record(*records[0][:5], records[0].data, *records[0][6:])
    assert opened.plain()["resident"]["name"] is None  # withheld from decrypted data too


def test_a_sealed_record_equals_copies_and_pickles_as_the_plain_one(visits):
    [sealed] = visits.read_stream("visit-1")
    [again] = visits.read_stream("visit-1")
    plain = Record(*sealed[:5], sealed.data, *sealed[6:-1], sealed.redacted)
    assert sealed == again == plain
    assert not sealed != plain  # noqa: SIM202 - __ne__ is under test
    assert sealed != plain._replace(data={"n": 0}) and sealed != plain._replace(redacted=("x",))
    for copied in (copy.deepcopy(again), pickle.loads(pickle.dumps(again)), Record(*again)):
        assert copied == plain and copied.data["resident"]["name"] == "Ann 1"
    assert again._asdict()["data"] == plain.data
    assert again.to_cloudevent() == plain.to_cloudevent()
    assert again.to_cloudevent(personal=False) == plain.to_cloudevent(personal=False)


def test_a_fold_of_some_types_reads_only_those(visits, counted):
    opened = MemoryFold([], lambda s, r: [*s, r.data["unit"]], types=("unit.opened",))
    assert opened.current(visits) == ["u-1"]
    visits.append("unit-2", [NewEvent("unit.opened", {"unit": "u-2"})])
    visits.append("visit-9", [visit(9)])
    assert opened.current(visits) == ["u-1", "u-2"], "only what is new, only its type"
    assert counted == {"decrypt": 0, "keys": 0}
