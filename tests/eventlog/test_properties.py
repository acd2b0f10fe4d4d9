"""Property tests: whatever sequence of appends and retries, the log's invariants hold.

Positions are dense 1..N and ordered, versions dense per stream, the chain verifies, a retried
command returns its original positions and writes nothing, a stale expected version writes
nothing. SQLite gets the larger run; PostgreSQL (a fresh database per example) a smaller one.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shared.eventlog.log as log_module
from shared.eventlog import ConcurrencyError, EventLog, NewEvent

STREAMS = ["a", "b", "c", "visit-ü"]
NUL_FREE = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(NUL_FREE, max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(NUL_FREE, max_size=4),
                                                                 inner, max_size=3),
    max_leaves=6,
)  # fmt: skip


@dataclass(frozen=True)
class Op:
    stream: str
    data: tuple[dict, ...]
    command: bool  # carry a command_id
    retry: bool  # then send the same command again
    check: bool  # pass the expected version
    stale: bool  # first try with a wrong expected version


OPS = st.lists(
    st.builds(
        Op,
        stream=st.sampled_from(STREAMS),
        data=st.lists(st.dictionaries(st.text(NUL_FREE, max_size=5), JSON, max_size=3),
                      min_size=1, max_size=5).map(tuple),
        command=st.booleans(), retry=st.booleans(), check=st.booleans(), stale=st.booleans(),
    ),  # fmt: skip
    min_size=1,
    max_size=12,
)


def run_and_check(log: EventLog, ops: list[Op]) -> None:
    versions = dict.fromkeys(STREAMS, 0)
    appended: list[tuple[str, int, dict]] = []  # what the log must hold, in order
    for op in ops:
        events = [NewEvent("thing.happened", d) for d in op.data]
        cid = str(uuid.uuid4()) if op.command else None
        head = log.last_position()
        if op.stale:
            with pytest.raises(ConcurrencyError):
                log.append(op.stream, events, expected_version=versions[op.stream] + 1,
                           command_id=cid)
            assert log.last_position() == head
        expected = versions[op.stream] if op.check else None
        got = log.append(op.stream, events, expected_version=expected, command_id=cid)
        assert got == list(range(head + 1, head + 1 + len(events)))
        for d in op.data:
            versions[op.stream] += 1
            appended.append((op.stream, versions[op.stream], d))
        if op.command and op.retry:
            assert log.append(op.stream, events[:1], expected_version=0, command_id=cid) == got
            assert log.last_position() == got[-1]

    records = list(log.read())
    assert [r.position for r in records] == list(range(1, len(appended) + 1))
    assert [(r.stream, r.version, r.data) for r in records] == appended
    for stream in STREAMS:
        assert [r.version for r in log.read_stream(stream)] == list(
            range(1, versions[stream] + 1)
        )
        assert log.stream_version(stream) == versions[stream]
    report = log.verify()
    assert report.ok and report.checked == len(appended), report
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]


COMMON = {"deadline": None, "database": None, "derandomize": True,
          "suppress_health_check": [HealthCheck.function_scoped_fixture]}


@settings(max_examples=40, **COMMON)
@given(ops=OPS, page=st.integers(1, 7))
def test_invariants_on_sqlite(ops, page, monkeypatch):
    monkeypatch.setattr(log_module, "PAGE", page)
    with tempfile.TemporaryDirectory() as tmp:
        log = EventLog.open(f"sqlite:///{Path(tmp) / 'log.db'}", service="prop")
        try:
            run_and_check(log, ops)
        finally:
            log.close()


@settings(max_examples=10, **COMMON)
@given(ops=OPS, page=st.integers(1, 7))
def test_invariants_on_postgres(postgres, ops, page, monkeypatch):
    monkeypatch.setattr(log_module, "PAGE", page)
    url = postgres.create_database(f"p_{uuid.uuid4().hex[:16]}")
    log = EventLog.open(url, service="prop")
    try:
        run_and_check(log, ops)
    finally:
        log.close()
