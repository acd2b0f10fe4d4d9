"""The compliance view in SQL against the reference fold, over a realistic district month.

The demo's month of HTTP requests is decided by the pure visits domain and appended to a real
event log (SQLite, and PostgreSQL); the SQL view is fed the way the bus feeds it (CloudEvents
without personal data, redelivered, some lost and caught up from the log) and must equal
`assess(month, facts_from_events(records), policy)`: for the month, for each unit, after
redelivery, after a rebuild, and as of an instant in the middle.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import eventlet
import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Engine

from services.compliance import projection
from services.compliance.domain import assess, facts_from_events
from services.visits import commands, domain
from shared.campaign.policy import Policy
from shared.eventlog import EventLog, Record
from shared.eventlog.storage import make_engine
from shared.kernel.commands import MemoryFold, execute, load
from shared.kernel.errors import DomainError
from shared.kernel.projection import Fetch, Projector, build_as_of, projection_checkpoints
from shared.runtime import declare
from shared.runtime.auth import Principal
from shared.runtime.providers import deliver, log_fetch
from shared.tools import demo

OPERATOR = Principal("operator", token_id="demo")

POLICY = Policy()
MONTH = dt.date(2024, 5, 1)
TODAY = dt.date(2024, 5, 31)
NOW = dt.datetime(2024, 5, 31, 20, 0, tzinfo=POLICY.tz)  # the demo is loaded that evening
MONTHS = ("2024-04", "2024-05")
UNIT_IDS = [u[0] for u in demo.UNITS]


def command_for(path: str, body: dict[str, Any]) -> Any:
    """The command a gateway request becomes, found by the routes the visits service declares
    and loaded as shared/runtime/bases.py does."""
    for row in commands.COMMANDS:
        match = re.fullmatch(declare.PARAM.sub(r"(?P<\1>[^/]+)", row.route.path), path)
        if match:
            return row.command(**match.groupdict(), **load(row.schema, body))
    raise AssertionError(f"no route for {path}")


@dataclass
class District:
    log: EventLog
    records: list[Record]
    refused: list[tuple[str, str]]
    new_view_url: Callable[[], str]  # an empty database of the same backend
    fetch: Fetch

    @cached_property
    def want(self) -> dict[tuple[str, str | None], dict[str, Any]]:
        return reference(self.records)


def load_district(log: EventLog) -> list[tuple[str, str]]:
    """Send the demo's requests through the shared service layer; return those refused."""
    plan = demo.build_plan(MONTH, TODAY, POLICY.fixed_day, seed=7)
    roster = MemoryFold(domain.Roster(), domain.Roster.apply)
    refused = []
    for n, (method, path, body) in enumerate(plan.requests):
        assert method == "POST"
        command = command_for(path, body)
        try:
            execute(
                log, domain.stream_for(command),
                lambda history, command=command: domain.decide(
                    command, history, roster.current(log), NOW, POLICY, principal=OPERATOR),
                command_id=f"demo-{n}", actor="operator",
            )
        except DomainError as exc:
            refused.append((path, str(exc)))
    return refused


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def district(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             ) -> Iterator[District]:
    if request.param == "sqlite":
        base = tmp_path_factory.mktemp("district")

        def new_url() -> str:
            return f"sqlite:///{base / uuid.uuid4().hex}.db"
    else:
        postgres = request.getfixturevalue("postgres")

        def new_url() -> str:
            return postgres.create_database(f"d_{uuid.uuid4().hex[:16]}")

    log = EventLog.open(new_url(), service="visits")
    refused = load_district(log)
    yield District(log, list(log.read()), refused, new_url, log_fetch({"visits": log}))
    log.close()


@pytest.fixture(scope="module")
def live(district: District) -> Iterator[Projector]:
    """The compliance view fed the way the bus feeds it."""
    projector = Projector.open(projection.ComplianceProjection(), district.new_view_url())
    feed_like_the_bus(projector, district)
    yield projector
    projector.engine.dispose()


def reports(engine: Engine) -> dict[tuple[str, str | None], dict[str, Any]]:
    with engine.connect() as conn:
        return {(month, unit_id): projection.report(conn, month, POLICY, unit_id)
                for month in MONTHS for unit_id in (None, *UNIT_IDS)}


def reference(records: list[Record]) -> dict[tuple[str, str | None], dict[str, Any]]:
    facts = facts_from_events(records)
    return {(month, unit_id): assess(month, facts, POLICY, unit_id=unit_id)
            for month in MONTHS for unit_id in (None, *UNIT_IDS)}


def snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every row the view holds, checkpoints included."""
    tables = [*projection.metadata.sorted_tables, projection_checkpoints]
    with engine.connect() as conn:
        return {t.name: sorted(tuple(r) for r in conn.execute(select(t)).all()) for t in tables}


def feed_like_the_bus(view: Projector, district: District) -> None:
    """Each event as the bus carries it, delivered twice, every ninth one lost on the way; a
    loss is noticed at the next event and caught up from the log as it stood then."""
    records, arrived = district.records, 0

    def log_then(source: str, after: int, limit: int, until: Any) -> list[Record]:
        assert source == "visits" and until is None
        return records[after:min(arrived, after + limit)]

    for record in records:
        arrived = record.position
        if record.position % 9 == 4:
            continue
        event = record.to_cloudevent(personal=False)
        assert deliver(view, event, log_then) >= 1
        assert deliver(view, event, log_then) == 0
    view.catch_up(district.fetch)  # what the service's timer does for losses at the end


def test_the_month_loads_as_the_demo_intends(district):
    types = Counter(r.type for r in district.records)
    assert types["unit.registered"] == len(demo.UNITS)
    assert types["visit.recorded"] > 300
    assert types["cadre.leave_granted"] and types["visit.corrected"]
    assert types["visit.retracted"] and types["cadre.transferred"]
    assert types["cadre.removed"] == 2 and not types["cadre.left"]  # the act's one name
    assert types["cadre.enrolled"] == 13 * len(demo.UNITS)
    assert district.refused == []  # every request of the demo is one the domain accepts
    assert district.log.verify().ok
    resident = next(r for r in district.records if r.personal)
    assert resident.data["target"]["resident"]["name"]  # the log holds it; the bus will not


def test_the_view_equals_the_reference_fold(district, live):
    assert live.checkpoints() == {"visits": district.records[-1].position}
    got, want = reports(live.engine), district.want
    assert got == want

    month = want[("2024-05", None)]
    cadres = month["cadres"]
    assert len(cadres) == sum(r.type == "cadre.enrolled" for r in district.records)
    outcomes = Counter((c["compliant"], c["exempt"]) for c in cadres)
    assert outcomes[(True, False)] and outcomes[(False, False)] and outcomes[(None, True)]
    assert any(c["backfilled_days"] for c in cadres)
    assert any(c["fixed_day_met"] is None and not c["exempt"] for c in cadres)  # leave
    assert {c["unit_day_met"] for c in cadres} == {True, False, None}
    assert [u["unit_id"] for u in month["units"]] == sorted(UNIT_IDS)
    for unit_id in UNIT_IDS:
        assert got[("2024-05", unit_id)]["units"] == [
            u for u in month["units"] if u["unit_id"] == unit_id]
    assert want[("2024-04", None)] != month


def test_applying_every_record_twice_changes_nothing(district, live):
    rows = snapshot(live.engine)
    assert rows["compliance_participations"]
    assert live.apply_batch(district.records) == (0, False)
    assert live.apply_batch(district.records[::-1]) == (0, False)
    for record in district.records:
        assert deliver(live, record.to_cloudevent(personal=False), district.fetch) == 0
    assert live.catch_up(district.fetch) == 0
    assert snapshot(live.engine) == rows

    # The same, applied in one go instead of event by event, in a view of its own.
    once = Projector.open(projection.ComplianceProjection(), district.new_view_url())
    assert once.apply_batch(district.records) == (len(district.records), False)
    assert once.apply_batch(district.records) == (0, False)
    assert snapshot(once.engine) == rows
    once.engine.dispose()


def test_a_rebuild_gives_the_same_view(district, live):
    view = Projector.open(projection.ComplianceProjection(), district.new_view_url())
    half = len(district.records) // 2
    assert view.apply_batch(district.records[:half]) == (half, False)
    with view.engine.begin() as conn:  # the view drifted, or its rules changed: start over
        conn.execute(projection.participations.delete())
        conn.execute(projection.participations.insert().values(
            visit_id="ghost", cadre_id="agriculture-01", date=dt.date(2024, 5, 28),
            backfilled=False, confirmed=True, made_at=1, ended_at=projection.OPEN))
    progress: list[int] = []
    assert view.rebuild(district.fetch, progress=lambda _s, p: progress.append(p)) == len(
        district.records)
    assert progress[-1] == district.records[-1].position
    assert snapshot(view.engine) == snapshot(live.engine)
    assert reports(view.engine) == district.want
    view.engine.dispose()


def test_the_view_as_of_an_instant_equals_the_fold_of_the_prefix(district, live):
    records = district.records
    first_visit = next(i for i, r in enumerate(records) if r.type == "visit.recorded")
    instant = records[(first_visit + len(records)) // 2].recorded_at
    prefix = [r for r in records if r.recorded_at <= instant]
    assert 0 < len(prefix) < len(records)

    before = snapshot(live.engine)
    then = build_as_of(projection.ComplianceProjection(), district.fetch, instant)
    assert then.checkpoints() == {"visits": prefix[-1].position}
    got = reports(then.engine)
    assert got == reference(prefix)
    assert got[("2024-05", None)] != district.want[("2024-05", None)]
    assert snapshot(live.engine) == before  # the live view is not touched


def test_replicas_opening_a_fresh_view_database_at_once(postgres):
    """Scaled-out compliance replicas start together on an empty database: none may fail."""
    url = postgres.create_database(f"replicas_{uuid.uuid4().hex[:12]}")
    engines = [make_engine(url) for _ in range(8)]
    pool = eventlet.GreenPool()
    made = list(pool.imap(lambda e: Projector(projection.ComplianceProjection(), e), engines))
    assert [p.checkpoints() for p in made] == [{"visits": 0}] * 8
    for engine in engines:
        engine.dispose()


def test_a_view_of_the_old_layout_rebuilds_itself(district):
    """A database the version-1 view made (one mutable row per fact, pending apart, no
    version table) opens as an empty version-2 view, and catching up refolds the log."""
    url = district.new_view_url()
    engine = make_engine(url)
    with engine.begin() as conn:
        for ddl in (
            "CREATE TABLE compliance_units (unit_id VARCHAR(100) PRIMARY KEY, settings TEXT)",
            "CREATE TABLE compliance_cadres (cadre_id VARCHAR(100) PRIMARY KEY, facts TEXT)",
            "CREATE TABLE compliance_participations (visit_id VARCHAR(100), cadre_id "
            "VARCHAR(100), date DATE, backfilled BOOLEAN, PRIMARY KEY (visit_id, cadre_id))",
            "CREATE TABLE compliance_pending (visit_id VARCHAR(100), cadre_id VARCHAR(100))",
            "CREATE TABLE projection_checkpoints (projection VARCHAR(100), source VARCHAR(100),"
            " position BIGINT NOT NULL, hash VARCHAR(64), PRIMARY KEY (projection, source))",
            "INSERT INTO compliance_units VALUES ('ghost', '[[null, 5]]')",
            "INSERT INTO projection_checkpoints VALUES ('compliance', 'visits', 12, NULL)",
        ):
            conn.execute(text(ddl))
    view = Projector(projection.ComplianceProjection(), engine)
    assert view.checkpoints() == {"visits": 0}
    assert "compliance_pending" not in inspect(engine).get_table_names()
    assert view.catch_up(district.fetch) == len(district.records)
    assert reports(view.engine) == district.want
    again = Projector(projection.ComplianceProjection(), engine)  # now current: kept as is
    assert again.checkpoints() == {"visits": district.records[-1].position}
    engine.dispose()
