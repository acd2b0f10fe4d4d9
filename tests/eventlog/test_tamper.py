"""Playing the attacker with raw SQL: every kind of tampering is detected and its position named.

Each attack first drops the append-only triggers, as someone with the database's owner rights
could. A bare hash chain catches edits, deletions and swaps; only signed checkpoints, kept
outside the database, catch a truncated tail or a tail rewritten with a recomputed chain.
Every test runs with verify walking the log in one process and in three parts at once.
"""

from __future__ import annotations

import base64
import dataclasses
import functools

import pytest

import shared.eventlog.log as log_module
from shared.eventlog import EventLog, NewEvent, Signer
from shared.eventlog.checkpoints import export, load

N = 12


def fill(log: EventLog, n: int = N) -> None:
    """n more events over three streams, some in batches."""
    start = log.last_position()
    done = 0
    while done < n:
        size = min(1 + done % 3, n - done)
        log.append(f"visit-{done % 3}",
                   [NewEvent("visit.recorded", {"n": done + i, "note": f"v{done + i}"})
                    for i in range(size)])  # fmt: skip
        done += size
    assert log.last_position() == start + n


@pytest.fixture(autouse=True)
def _small_pages(monkeypatch):
    """Pages of five, so attacks land on, before and after page boundaries."""
    monkeypatch.setattr(log_module, "PAGE", 5)


@pytest.fixture(autouse=True, params=[1, 3], ids=["one walk", "three parts"])
def jobs(request, monkeypatch) -> int:
    """verify() as asked for, or in three parts of four records (N = 12): attacks land on,
    before and after the parts' joins too."""
    if request.param > 1:
        monkeypatch.setattr(log_module, "PARALLEL_PART", 1)
        monkeypatch.setattr(EventLog, "verify", functools.partialmethod(
            EventLog.verify, jobs=request.param))
    return request.param


def assert_bad(report, position: int, *words: str) -> None:
    assert not report.ok
    assert report.first_bad_position == position, report
    for word in words:
        assert word in report.reason


@pytest.mark.parametrize("k", [1, 5, 6, N])
def test_an_edited_field_is_named(log, raw, k):
    fill(log)
    raw.drop_triggers()

    def change(doc):
        doc["data"]["note"] = "forged"

    raw.edit(k, change)
    assert_bad(log.verify(), k, "hash")
    assert log.verify().checked == k - 1


def test_an_edited_position_inside_the_record_is_named(log, raw):
    fill(log)
    raw.drop_triggers()
    raw.edit(4, lambda doc: doc.update(position=40))
    raw.rechain(4)
    assert_bad(log.verify(), 4, "another position")


def test_an_edited_hash_column_is_named(log, raw):
    fill(log)
    raw.drop_triggers()
    raw.run("UPDATE event_log SET hash = :h WHERE position = 7", h="f" * 64)
    assert_bad(log.verify(), 7, "hash")


@pytest.mark.parametrize("k", [2, 5, 6, 9, N])
def test_an_edited_prev_hash_column_is_named(log, raw, k):
    """The record and its hash intact, only the link to the one before rewritten."""
    fill(log)
    raw.drop_triggers()
    raw.run("UPDATE event_log SET prev_hash = :h WHERE position = :k", h="e" * 64, k=k)
    assert_bad(log.verify(), k, "prev_hash")


@pytest.mark.parametrize("k", [2, 5, 9])
def test_a_tail_chained_from_a_foreign_hash_is_named(log, raw, k):
    """Every record from k on links to the one before it, but k to a hash that is not its
    predecessor's (a tail spliced in from elsewhere): where the three parts meet (5, 9),
    only the check of the join sees it."""
    fill(log)
    raw.drop_triggers()
    raw.rechain(k, prev="e" * 64)
    assert_bad(log.verify(), k, "prev_hash")


def test_text_beyond_ascii_is_hashed_as_stored_and_an_edit_to_it_is_named(log, raw):
    """Verify hashes the stored UTF-8 bytes as they come from the database: the same bytes the
    append hashed, whatever the script, and one changed character breaks them."""
    fill(log, 3)
    log.append("visit-cn", [NewEvent("visit.recorded", {"note": "走访农户，送去政策"})])
    fill(log, 3)
    assert log.verify().ok
    raw.drop_triggers()
    raw.edit(4, lambda doc: doc["data"].update(note="走访农户，送去政策。"))
    assert_bad(log.verify(), 4, "hash")


@pytest.mark.parametrize("k", [1, 5, 6, N - 1])
def test_a_deleted_row_is_named(log, raw, k):
    fill(log)
    raw.drop_triggers()
    raw.run("DELETE FROM event_log WHERE position = :k", k=k)
    assert_bad(log.verify(), k, "missing")


@pytest.mark.parametrize(("i", "j"), [(3, 8), (1, 2), (5, 6), (2, N)])
def test_two_swapped_rows_name_the_first(log, raw, i, j):
    fill(log)
    raw.drop_triggers()
    # move row j to i and row i to j (via a free position, as positions are unique)
    raw.run("UPDATE event_log SET position = -1 WHERE position = :i", i=i)
    raw.run("UPDATE event_log SET position = :i WHERE position = :j", i=i, j=j)
    raw.run("UPDATE event_log SET position = :j WHERE position = -1", j=j)
    assert_bad(log.verify(), i)


def test_swapped_record_texts_name_the_first(log, raw):
    fill(log)
    raw.drop_triggers()
    rows = {p: r for p, r, _, _ in raw.rows()}
    # (stream, version) stays unique throughout, so park row 3's text elsewhere first
    raw.run("UPDATE event_log SET record = :r WHERE position = 3",
            r=rows[3].replace('"version":', '"version":99'))
    raw.run("UPDATE event_log SET record = :r WHERE position = 9", r=rows[3])
    raw.run("UPDATE event_log SET record = :r WHERE position = 3", r=rows[9])
    swapped = {p: r for p, r, _, _ in raw.rows()}
    assert (swapped[3], swapped[9]) == (rows[9], rows[3])
    assert_bad(log.verify(), 3, "hash")


def test_a_truncated_tail_needs_a_checkpoint(signed_log, raw, tmp_path):
    fill(signed_log)
    evidence = tmp_path / "checkpoints.jsonl"
    export(evidence, signed_log.checkpoint())
    raw.drop_triggers()
    raw.run("DELETE FROM event_log WHERE position > 8")

    bare = signed_log.verify()
    assert bare.ok and bare.last_position == 8, "a bare chain cannot see a missing tail"
    report = signed_log.verify(load(evidence))
    assert_bad(report, 9, "truncated", str(N))


def test_a_rewritten_and_rechained_tail_needs_a_checkpoint(signed_log, raw, tmp_path):
    evidence = tmp_path / "checkpoints.jsonl"
    fill(signed_log, 4)
    export(evidence, signed_log.checkpoint())  # at 4: before the rewrite
    fill(signed_log, N - 4)
    export(evidence, signed_log.checkpoint())  # at N
    fill(signed_log, 3)
    export(evidence, signed_log.checkpoint())  # at N + 3
    k = 6
    raw.drop_triggers()
    raw.edit(k, lambda doc: doc["data"].update(note="forged"))
    raw.rechain(k)

    assert signed_log.verify().ok, "the recomputed chain fools a bare verify"
    report = signed_log.verify(load(evidence))
    assert_bad(report, N, "signed checkpoint", f"5..{N}", "rewritten")
    assert report.first_bad_position >= k
    assert report.checkpoints_checked == 1


def test_a_rewrite_after_the_last_checkpoint_passes_an_earlier_one(signed_log, raw, tmp_path):
    """Checkpoints vouch for what they cover; the rest is only as good as the bare chain."""
    fill(signed_log)
    first = signed_log.checkpoint()  # at N
    signed_log.append("late", [NewEvent("visit.recorded", {"n": 1})] * 3)
    second = signed_log.checkpoint()  # at N + 3
    raw.drop_triggers()
    raw.edit(N + 2, lambda doc: doc["data"].update(n=2))
    raw.rechain(N + 2)
    report = signed_log.verify([first])
    assert report.ok and report.checkpoints_checked == 1
    assert_bad(signed_log.verify([first, second]), N + 3, f"{N + 1}..{N + 3}")


def test_an_intact_log_verifies_against_its_checkpoints(signed_log, tmp_path):
    evidence = tmp_path / "checkpoints.jsonl"
    for size in (4, 1, 1):
        fill(signed_log, size)
        export(evidence, signed_log.checkpoint())
    report = signed_log.verify(load(evidence))
    assert report.ok and report.checkpoints_checked == 3 and report.last_position == 6


def forgeries(cp):
    other = Signer(Signer.generate(cp.alg)).sign(cp.service, cp.position, cp.hash)
    flipped = bytearray(base64.b64decode(cp.signature))
    flipped[0] ^= 1
    return {
        "moved": dataclasses.replace(cp, position=cp.position - 1),
        "rehashed": dataclasses.replace(cp, hash="0" * 64),
        "redated": dataclasses.replace(cp, signed_at="2000-01-01T00:00:00+00:00"),
        "bit flipped": dataclasses.replace(cp, signature=base64.b64encode(flipped).decode()),
        "other key": other,
        "other key, our key id": dataclasses.replace(other, key_id=cp.key_id),
    }


def test_a_forged_checkpoint_is_rejected(signed_log, log_factory):
    fill(signed_log)
    cp = signed_log.checkpoint()
    assert signed_log.verify([cp]).ok
    for name, forged in forgeries(cp).items():
        assert not signed_log.signer.valid(forged), name
        report = signed_log.verify([forged])
        assert not report.ok, name
        assert report.first_bad_position == forged.position, name
        assert "signature" in report.reason, name
    assert not log_factory().verify([cp]).ok, "no key configured: a checkpoint proves nothing"


def test_a_walk_in_parts_reports_an_intact_log_as_one_walk_does(signed_log, tmp_path, jobs):
    """Not by walking it again: the parts' own report (a failure is walked again, above)."""
    evidence = tmp_path / "checkpoints.jsonl"
    for size in (3, 5, 4):
        fill(signed_log, size)
        export(evidence, signed_log.checkpoint())
    marks = {cp.position: cp for cp in load(evidence)}
    parts = signed_log._verify_parts(marks, N, 3)
    assert parts is not None
    assert parts == signed_log.verify(list(marks.values()))
    assert parts.ok and parts.checked == N and parts.checkpoints_checked == 3
