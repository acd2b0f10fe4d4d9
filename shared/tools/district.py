"""The district data set of `grassroots bench district`: a year of a district, decided by the
visits domain and appended through the service layer, as the visits service would.

Units (the demo's twelve, then one for every fifty cadres), cadres enrolled before the year,
and each month: leave (some the whole month, some over the fixed day), a few transfers, and
two or three visits per cadre on duty (the fixed day unless they miss it, their unit's day,
one more), each with a diary and, for most, a resident's name, phone and address (encrypted
under the resident's key; a third of them residents visited before). Some visits are
corrected, some retracted. Requests are built as HTTP bodies and loaded with the command
schemas, so the data is what the gateway would hand the service.

Building 170,000 commands takes minutes, so the log is kept under var/bench/, named by its
parameters, and reused; it is written with fsync off (it is a data set, not a record) and
renamed into place only when complete.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from tqdm import tqdm

from services.visits import domain, schemas
from shared.campaign.policy import Policy
from shared.campaign.roster import ROSTER_EVENT_TYPES, Roster
from shared.eventlog import EventLog
from shared.eventlog.storage import make_engine
from shared.kernel.commands import MemoryFold, Spares, execute, load
from shared.kernel.errors import DomainError
from shared.runtime.auth import Principal
from shared.tools import demo

FORMAT = 1  # bump when the data set changes: cached logs of other formats are not reused
OPERATOR = Principal("operator", token_id="bench")
POLICY = Policy()
CADRES_PER_UNIT = 50
KINDS = ("township", "street", "community", "department")


@dataclass(frozen=True)
class Request:
    """One command as the gateway would pass it on, and the moment it is decided at."""

    command: type
    body: dict[str, Any]
    now: dt.datetime
    ids: dict[str, str]


def cached_path(folder: Path, cadres: int, months: int, seed: int) -> Path:
    return folder / f"district-v{FORMAT}-c{cadres}-m{months}-s{seed}.db"


def units(cadres: int) -> list[tuple[str, str, str, int | None]]:
    """(id, name, kind, unit day): the demo's units, then numbered ones."""
    out = list(demo.UNITS)
    rng = random.Random(0)
    for n in range(len(out), max(len(out), cadres // CADRES_PER_UNIT)):
        kind = KINDS[n % len(KINDS)]
        day = rng.choice([None, None, *range(3, 27)])
        out.append((f"{kind}-{n:03d}", f"{kind.title()} {n}", kind, day))
    return out


def _at(day: dt.date, hour: int) -> dt.datetime:
    return POLICY.start_of(day) + dt.timedelta(hours=hour)


def _month_days(month: dt.date) -> list[dt.date]:
    nxt = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return [month + dt.timedelta(days=n) for n in range((nxt - month).days)]


def requests(cadres: int, months: int, seed: int, start: dt.date) -> Iterator[Request]:
    """The year's requests in the order they are decided (time order within each month)."""
    rng = random.Random(seed)
    unit_rows = units(cadres)
    before = _at(start - dt.timedelta(days=45), 9)
    since = (start - dt.timedelta(days=40)).isoformat()
    for unit_id, name, kind, unit_day in unit_rows:
        yield Request(domain.RegisterUnit, {"id": unit_id, "name": name, "kind": kind,
                                            "unit_day": unit_day}, before, {})
    staff: dict[str, list[str]] = {u[0]: [] for u in unit_rows}
    unit_of: dict[str, str] = {}
    for n in range(cadres):
        unit_id = unit_rows[n % len(unit_rows)][0]
        cadre_id = f"{unit_id}-{len(staff[unit_id]) + 1:03d}"
        role = "head" if not staff[unit_id] else "leader" if len(staff[unit_id]) < 3 else "staff"
        staff[unit_id].append(cadre_id)
        unit_of[cadre_id] = unit_id
        yield Request(domain.EnrolCadre, {
            "id": cadre_id, "name": rng.choice(demo.SURNAMES) + " " + rng.choice(demo.GIVEN),
            "unit_id": unit_id, "role": role, "effective_from": since,
            "liaison_unit_ids": [] if role != "leader" else [
                rng.choice([u[0] for u in unit_rows if u[0] != unit_id])],
        }, before, {})
    days_of = {u[0]: u[3] for u in unit_rows}
    residents: list[str] = []
    serial = 0
    month = start
    for _ in range(months):
        todo: list[tuple[dt.datetime, int, Request]] = []
        days = _month_days(month)
        fixed = month.replace(day=min(POLICY.fixed_day, len(days)))
        for cadre_id, unit_id in unit_of.items():
            profile = rng.random()
            if profile < 0.03:  # on leave all month
                todo.append((_at(month, 8), 0, Request(domain.GrantLeave, {
                    "from": month.isoformat(), "to": days[-1].isoformat(),
                    "reason": "sick leave"}, _at(month, 8), {"cadre_id": cadre_id})))
                continue
            chosen = {rng.choice(days)}
            if profile < 0.07:  # leave over the fixed day
                todo.append((_at(month, 8), 0, Request(domain.GrantLeave, {
                    "from": (fixed - dt.timedelta(days=1)).isoformat(),
                    "to": fixed.isoformat(), "reason": "training course"},
                    _at(month, 8), {"cadre_id": cadre_id})))
                chosen -= {fixed, fixed - dt.timedelta(days=1)}
            elif profile >= 0.15:  # the rest but those who miss the 28th
                chosen.add(fixed)
            unit_day = days_of[unit_id]
            if unit_day and profile >= 0.22:
                chosen.add(month.replace(day=min(unit_day, len(days))))
            for day in sorted(chosen):
                serial += 1
                leaders = staff[unit_id][:3]
                partner = [rng.choice(leaders)] if rng.random() < 0.2 else []
                body = demo._visit(rng, f"v-{serial:06d}", [cadre_id, *[
                    p for p in partner if p != cadre_id]], day, "Qiaotou")
                ids: dict[str, str] = {}
                if body["target"].get("resident"):
                    if residents and rng.random() < 0.33:
                        body["target"]["resident"]["id"] = rng.choice(residents)
                    else:  # the id the service would make, made reproducible
                        ids["fresh_resident_id"] = f"res-{rng.getrandbits(128):032x}"
                        residents.append(ids["fresh_resident_id"])
                when = _at(day, 18)
                todo.append((when, serial, Request(domain.RecordVisit, body, when, ids)))
                if rng.random() < 0.03:
                    todo.append((when, serial, Request(domain.CorrectVisit, {
                        "diary": {"thinks": "corrected: asks about the pension top-up",
                                  "notes": "details checked with the village committee"},
                        "reason": "diary completed after checking with the village"},
                        when, {"visit_id": body["id"]})))
                elif rng.random() < 0.02:
                    todo.append((when, serial, Request(domain.RetractVisit, {
                        "reason": "recorded twice by mistake"}, when,
                        {"visit_id": body["id"]})))
        for cadre_id in rng.sample(sorted(unit_of), max(1, cadres // 500)):
            to_unit = rng.choice([u[0] for u in unit_rows if u[0] != unit_of[cadre_id]])
            mid = month.replace(day=14)
            todo.append((_at(mid, 7), 0, Request(domain.TransferCadre, {
                "to_unit_id": to_unit, "effective_from": mid.isoformat()}, _at(mid, 7),
                {"cadre_id": cadre_id})))
            unit_of[cadre_id] = to_unit
        todo.sort(key=lambda item: (item[0], item[1]))
        for _when, _n, request in todo:
            yield request
        month = days[-1] + dt.timedelta(days=1)


def decider(log: EventLog, roster: MemoryFold[Roster]) -> Callable[[Request, str | None], int]:
    """Run one request through the service layer as the visits service does; 1 if refused.

    New residents get the plan's ids (reproducible) when the log keeps keys in its own
    database, as when the data set is built. When keys live apart, as the services keep them,
    they get spares from the key store as the service does (`Spares`), and the plan's ids of
    returning residents are renamed to match.
    """
    contract = schemas.EVENT_SCHEMAS
    renamed: dict[str, str] = {}

    def run(request: Request, command_id: str | None) -> int:
        ids, body = dict(request.ids), request.body
        with Spares(log, request.command) as spares:
            if spares.values:
                body = _as_served(body, ids.pop("fresh_resident_id", None), renamed,
                                  spares.values["fresh_resident_id"])
            command = request.command(**ids, **load(schemas.COMMAND_SCHEMAS[request.command],
                                                    body), **spares.values)
            try:
                execute(
                    log, domain.stream_for(command),
                    lambda history: domain.decide(command, history, roster.current(log),
                                                  request.now, POLICY, principal=OPERATOR),
                    command_id=command_id, actor="operator", contract=contract, fold=roster,
                    spares=spares,
                )
            except DomainError:
                return 1
        return 0

    return run


def _as_served(body: dict[str, Any], planned: str | None, renamed: dict[str, str],
               spare: str) -> dict[str, Any]:
    """The body with its resident's id as the service knows it: the plan's id (given, or
    `planned` for a new resident) becomes `spare` where the plan first names it (in time
    order, a returning visit may come first), and is renamed to that everywhere after."""
    resident = (body.get("target") or {}).get("resident")
    given = (resident or {}).get("id") or planned
    if resident is None or given is None:
        return body
    if given in renamed:
        resident = {**resident, "id": renamed[given]}
    else:  # a new resident to the service: it gives them the spare
        renamed[given] = spare
        resident = {k: v for k, v in resident.items() if k != "id"}
    return {**body, "target": {**body["target"], "resident": resident}}


def build(path: Path, cadres: int, months: int, seed: int, start: dt.date) -> dict[str, int]:
    """Build the data set at `path` (reused when it exists); counts of what was done."""
    if path.exists():
        return {"reused": 1}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        leftover.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{partial}")

    @event.listens_for(engine, "connect")
    def _no_fsync(dbapi_conn: Any, _record: Any) -> None:  # after the log's own settings
        dbapi_conn.execute("PRAGMA synchronous=OFF")

    log = EventLog(engine, "visits")
    run = decider(log, MemoryFold(Roster(), Roster.apply, types=ROSTER_EVENT_TYPES))
    plan = list(requests(cadres, months, seed, start))
    refused = 0
    for request in tqdm(plan, desc="building the district", unit="cmd", file=sys.stderr,
                        disable=None, mininterval=1):
        refused += run(request, None)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    log.close()
    os.replace(partial, path)
    return {"commands": len(plan), "refused": refused}
