"""The compiled loaders (shared.kernel.compiled) against marshmallow itself: on realistic
visits commands and events, and on hypothesis' mutations of them, a compiled loader either
gives up or returns exactly what marshmallow returns, and never accepts what it refuses."""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields, validate

from services.visits import schemas
from services.visits.commands import COMMAND_SCHEMAS
from shared.campaign.roster import ROSTER_EVENT_TYPES, Roster
from shared.eventlog import EventLog
from shared.kernel.commands import MemoryFold
from shared.kernel.compiled import Unsure, fast_load
from shared.kernel.contracts import instance
from shared.tools import district

REFUSED = object()


@cache
def commands() -> tuple[tuple[type[Schema], dict[str, Any]], ...]:
    plan = district.requests(40, 1, 7, dt.date(2025, 1, 1))
    return tuple((COMMAND_SCHEMAS[r.command], r.body)
                 for _, r in zip(range(400), plan, strict=False))


@cache
def events(folder: str) -> tuple[tuple[type[Schema], dict[str, Any]], ...]:
    """Events the visits domain really decides, read back from a real log."""
    log = EventLog.open(f"sqlite:///{folder}/seeds.db", service="visits")
    run = district.decider(log, MemoryFold(Roster(), Roster.apply, types=ROSTER_EVENT_TYPES))
    for n, request in zip(range(400), district.requests(40, 1, 7, dt.date(2025, 1, 1)),
                          strict=False):
        run(request, f"seed-{n}")
    seeds = tuple((schemas.EVENT_SCHEMAS[r.type], r.data) for r in log.read())
    log.close()
    return seeds


@pytest.fixture(scope="module")
def event_seeds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ...]:
    return events(str(tmp_path_factory.mktemp("compiled")))


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (a tuple is not a list here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(map(same, a, b))
    return bool(a == b)


def verdicts(schema: type[Schema], data: Any, postprocess: bool) -> tuple[Any, Any]:
    try:
        fast = fast_load(schema, data, postprocess=postprocess)
        fast = fast if postprocess else {}  # validating: only the verdict counts
    except Unsure:
        fast = None
    try:
        slow = instance(schema).load(data) if postprocess else (
            {} if not instance(schema).validate(data) else REFUSED)
    except ValidationError:
        slow = REFUSED
    if postprocess and isinstance(fast, dict) and isinstance(slow, dict) and not data.get("id"):
        for out in (fast, slow):  # a visit without an id gets a fresh uuid: not compared
            if "visit_id" in out:
                out["visit_id"] = "issued"
    return fast, slow


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 40), st.sampled_from(
        ["", " ", "a", "2025-01-31", "2025-02-30", "1999-12-31", "household", "photo", "open",
         "x" * 600, "a\x00b", "\ud800", "+86 138", "u-1", "bad id!", "2025-01-02T08:00:00+08:00",
         "2025-01-02T08:00:00"]),
    st.text(max_size=8),
)
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)


def paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += paths(inner, (*here, key))
    elif isinstance(value, list | tuple):
        for index, inner in enumerate(value):
            found += paths(inner, (*here, index))
    return found


def thaw(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


@st.composite
def mutated(draw: st.DrawFn, seeds: tuple[tuple[type[Schema], dict[str, Any]], ...]) -> Any:
    schema, seed = draw(st.sampled_from(seeds))
    data = thaw(seed)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(paths(data)))
        if not path:
            continue
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(json_value)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(json_value)
    return schema, data


def test_realistic_data_takes_the_fast_path_with_marshmallow_s_result(event_seeds) -> None:
    for seeds, postprocess in ((commands(), True), (event_seeds, False)):
        for schema, data in seeds:
            fast, slow = verdicts(schema, thaw(data), postprocess)
            assert fast is not None, (schema, data)
            assert same(fast, slow), (schema, data)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.data())
def test_mutated_data_gets_marshmallow_s_verdict_or_none(case: st.DataObject,
                                                         event_seeds) -> None:
    for seeds, postprocess in ((commands(), True), (event_seeds, False)):
        schema, data = case.draw(mutated(seeds))
        fast, slow = verdicts(schema, data, postprocess)
        if fast is not None:
            assert slow is not REFUSED, (schema, data)
            assert same(fast, slow), (schema, data)


class Bounds(Schema):
    """The validators the compiled loader writes out inline, at their edges."""

    above = fields.Integer(validate=validate.Range(0, 10, min_inclusive=False))
    below = fields.Integer(validate=validate.Range(max=5, max_inclusive=False))
    code = fields.String(validate=validate.Length(equal=3))
    name = fields.String(validate=validate.Length(min=2, max=4))
    pick = fields.Integer(validate=validate.OneOf([1, 2]))
    word = fields.String(validate=[validate.OneOf(["a", "b"]), validate.Regexp("a")])
    flags = fields.List(fields.Boolean(), validate=validate.Length(max=2))
    day = fields.Date()


EDGES = {
    "above": (0, 1, 10, 11), "below": (4, 5), "code": ("ab", "abc", "abcd"),
    "name": ("a", "ab", "abcd", "abcde"), "pick": (1, 3, True), "word": ("a", "b", "c"),
    "flags": ([], [True, False], [True, None], [True, True, True], ["yes"]),
    "day": ("2025-01-31", "2025-02-30", "20250131", "2025-W05-5", "", "2025-01-31T00:00"),
}


@pytest.mark.parametrize("data", [{key: v} for key, values in EDGES.items() for v in values])
def test_inline_validators_give_marshmallow_s_verdict(data: dict[str, Any]) -> None:
    """Accepted exactly when marshmallow accepts, with its result; the only data left to
    marshmallow are values of another type (it converts them, or refuses)."""
    fast, slow = verdicts(Bounds, data, postprocess=True)
    assert fast is None or (slow is not REFUSED and same(fast, slow)), (data, fast, slow)
    assert (fast is None) == (slow is REFUSED) or data in CONVERTED, (data, fast, slow)


CONVERTED = ({"pick": True}, {"flags": ["yes"]})
