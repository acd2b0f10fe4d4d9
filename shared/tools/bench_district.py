"""`grassroots bench district [--cadres N] [--months M] [--quick]`: the log-level figures on a
realistic district year (shared/tools/district.py builds it, once, under var/bench/), each
beside its peer or floor measured in the same run. Progress on stderr, JSON on stdout.

View figures (rebuild, a month's report, as of) are `shared.tools.bench_views.view_figures`,
run on the same district log for its middle month and merged into the result.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from services.visits import domain
from shared.campaign.roster import ROSTER_EVENT_TYPES, Roster
from shared.eventlog import EventLog
from shared.eventlog.audit import raw_pages
from shared.eventlog.log import PAGE
from shared.kernel.commands import MemoryFold
from shared.tools import district
from shared.tools.bench import _rate, _say
from shared.tools.bench_appends import append_figures
from shared.tools.bench_views import view_figures

START = dt.date(2025, 1, 1)
TARGETS = {  # issue 8, for a 2-core machine
    "service_commands_s": 2_000,
    "read_ev_s": 250_000,
    "verify_ev_s": 400_000,
}


def bench_district(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.cadres, args.months = min(args.cadres, 200), min(args.months, 2)
        args.commands, args.appends, args.rounds = 200, 400, 1
    path = district.cached_path(args.cache, args.cadres, args.months, args.seed)
    _say(f"district log: {path}")
    built = district.build(path, args.cadres, args.months, args.seed, START)
    result: dict[str, Any] = {"cadres": args.cadres, "months": args.months, "built": built}
    with tempfile.TemporaryDirectory(prefix="grassroots-bench-") as tmp:
        result.update(service_commands(Path(tmp), args))
        result.update(append_figures(Path(tmp), args.appends, args.rounds))
    log = EventLog.open(f"sqlite:///{path}", service="visits")
    try:
        result["records"] = log.last_position()
        result.update(log_figures(log, path, args.rounds))
        month = _add_months(START, args.months // 2)
        result.update(view_figures(log, f"{month:%Y-%m}", rounds=args.rounds))
    finally:
        log.close()
    result["targets_met"] = {
        **{k: result[k] >= v for k, v in TARGETS.items()},
        "append_concurrent_ev_s": result["append_concurrent_vs_sqlite_floor"] >= 3,
        "append_single_ev_s": result["append_single_vs_sqlite_floor"] >= 0.9,
        "roster_ready_s": result["roster_ready_s"] <= 0.5,
    }
    return result


def _add_months(day: dt.date, months: int) -> dt.date:
    years, month = divmod(day.month - 1 + months, 12)
    return day.replace(year=day.year + years, month=month + 1, day=1)


def service_commands(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Realistic visits decided, checked against the contract and appended, one caller, on a
    durable log (fsync on) holding the district's units and first cadres, residents' keys in
    a database of their own as the visits service keeps them; the visits are dealt out to
    `rounds` rounds, the median reported."""
    log = EventLog.open(f"sqlite:///{folder / 'service.db'}", service="visits",
                        keys_url=f"sqlite:///{folder / 'keys.db'}")
    roster = MemoryFold(Roster(), Roster.apply, types=ROSTER_EVENT_TYPES)
    run = district.decider(log, roster)
    plan = district.requests(min(args.cadres, 200), 1 + args.commands // 400, args.seed, START)
    setup, visits = [], []
    for request in plan:
        if request.command is domain.RecordVisit:
            visits.append(request)
            if len(visits) == args.commands:
                break
        elif not visits:  # the roster as it stands before the first visit
            setup.append(request)
    for request in setup:
        run(request, None)
    refused, rates, cpus = 0, [], []
    rounds = max(1, args.rounds)
    for round_ in range(rounds):
        share = visits[round_::rounds]

        def work(share: list[district.Request] = share, round_: int = round_) -> None:
            nonlocal refused
            for n, request in enumerate(share):
                refused += run(request, f"bench-{round_}-{n}")

        rate, cpu = _rate(len(share), work)
        rates.append(rate)
        cpus.append(cpu)
        _say(f"round {round_ + 1}/{rounds}: service_commands_s {rate:,.0f}/s "
             f"(CPU {cpu:,.0f}/s), {refused} refused")
    log.close()
    return {"service_commands_s": round(statistics.median(rates)),
            "service_commands_cpu_s": round(statistics.median(cpus)),
            "service_commands_refused": refused}


def log_figures(log: EventLog, path: Path, rounds: int) -> dict[str, Any]:
    """Read (no personal field opened), verify (on every core, and in one process beside its
    floor: each row read and hashed, nothing checked) and the roster from a cold start;
    medians."""
    count = log.last_position()
    samples: dict[str, list[float]] = {}
    jobs = os.cpu_count() or 1

    def read() -> None:
        for record in log.read():
            record.type  # noqa: B018 - what a fold that skips personal fields touches

    def verify_floor() -> None:
        """The least a verify does: every row off the database, and its SHA-256."""
        sha256 = hashlib.sha256
        for page in raw_pages(log.engine, PAGE):
            for _, record, prev, _ in page:
                sha256(prev.encode() + record).hexdigest()
            del page

    def roster(types: tuple[str, ...] | None) -> float:
        start = time.perf_counter()
        cold = EventLog.open(f"sqlite:///{path}", service="visits")
        MemoryFold(Roster(), Roster.apply, types=types).current(cold)
        spent = time.perf_counter() - start
        cold.close()
        return spent

    for round_ in range(rounds):
        samples.setdefault("read_ev_s", []).append(_rate(count, read)[0])
        samples.setdefault("verify_ev_s", []).append(
            _rate(count, lambda: log.verify(jobs=jobs))[0])
        samples.setdefault("verify_one_process_ev_s", []).append(_rate(count, log.verify)[0])
        samples.setdefault("verify_floor_ev_s", []).append(_rate(count, verify_floor)[0])
        samples.setdefault("roster_ready_s", []).append(roster(ROSTER_EVENT_TYPES))
        samples.setdefault("roster_ready_all_types_s", []).append(roster(None))
        _say(f"round {round_ + 1}/{rounds}: " + ", ".join(
            f"{k} {v[-1]:,.3f}" if k.endswith("ready_s") or k.endswith("types_s")
            else f"{k} {v[-1]:,.0f}" for k, v in samples.items()))
    out: dict[str, Any] = {}
    for key, values in samples.items():
        median = statistics.median(values)
        out[key] = round(median, 3) if key.startswith("roster") else round(median)
    out["verify_jobs"] = jobs
    out["verify_one_process_vs_floor"] = round(
        out["verify_one_process_ev_s"] / out["verify_floor_ev_s"], 2)
    return out

