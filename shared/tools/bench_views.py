"""How fast the compliance view is on a given visits log: rebuild, a month's report, as-of.

`view_figures` folds the log into a fresh view database (SQLite in a temporary folder, as a
service keeps it) through the same `Projector` the service runs, then asks for one month's
report of every cadre, live and as of an instant in the middle of the log. Figures are
medians of `rounds` runs; times are wall clock on whatever else the machine is doing.
The rebuild's time is split into reading the log and the view's own folding and writing
(each timed where it runs; a log read in-process is not read ahead, so here they add up).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from services.compliance import projection
from shared.campaign.policy import Policy
from shared.eventlog import EventLog
from shared.kernel.projection import Projector
from shared.runtime.providers import log_fetch


def _ms(action: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    """The median wall time of `action` in milliseconds, and its last result."""
    samples, result = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = action()
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 2), result


def _per(seconds: float, events: int) -> float | None:
    return round(seconds / events * 1e6, 2) if events else None


class _StatementClock:
    """From when it is made until `stop`, adds the CPU time spent in `engine`'s statements to
    `into["view_sql"]` (the CPU time of the thread running them)."""

    def __init__(self, engine: Engine, into: dict[str, float]) -> None:
        self.engine, self.into, self.started = engine, into, 0.0
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *_: Any) -> None:
        self.started = time.thread_time()

    def _after(self, *_: Any) -> None:
        self.into["view_sql"] += time.thread_time() - self.started

    def stop(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)


def _middle_instant(log: EventLog) -> datetime:
    """The instant the record halfway along the log was recorded."""
    middle = max(1, log.last_position() // 2)
    return next(iter(log.read(after=middle - 1, limit=1))).recorded_at


def view_figures(
    log: EventLog, month: str, *, policy: Policy | None = None, as_of: datetime | None = None,
    rounds: int = 5, folder: Path | None = None,
) -> dict[str, Any]:
    """`rebuild_ev_s`, `report_ms` (all cadres, `month`) and `as_of_report_ms` (as of
    `as_of`, by default the instant the middle record was recorded) on `log`."""
    policy = policy or Policy()
    read = log_fetch({log.service: log})
    wall = {"read": 0.0, "apply": 0.0}
    cpu = {"read": 0.0, "apply": 0.0, "view_sql": 0.0}

    def timed(kind: str, action: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            start, start_cpu = time.perf_counter(), time.thread_time()
            try:
                return action(*args)
            finally:
                wall[kind] += time.perf_counter() - start
                cpu[kind] += time.thread_time() - start_cpu
        return run

    fetch = timed("read", read)

    instant = as_of or _middle_instant(log)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        view = Projector.open(projection.ComplianceProjection(),
                              f"sqlite:///{Path(tmp) / 'compliance.db'}")
        timing = _StatementClock(view.engine, cpu)
        view.apply_batch = timed("apply", view.apply_batch)  # type: ignore[method-assign]
        start = time.perf_counter()
        events = view.rebuild(fetch)
        rebuild_s = time.perf_counter() - start
        timing.stop()

        def month_report(at: int | None = None) -> dict[str, Any]:
            with view.engine.connect() as conn:
                return projection.report(conn, month, policy, None, at)

        def as_of_report() -> tuple[int, dict[str, Any]]:
            at = view.position_at(fetch, log.service, instant)
            return at, month_report(at)

        month_report()  # warm: the first query pays for opening the database
        report_ms, live = _ms(month_report, rounds)
        as_of_ms, (position, then) = _ms(as_of_report, rounds)
        view.engine.dispose()
    return {
        "events": events,
        "month": month,
        "cadres": len(live["cadres"]),
        "rebuild_s": round(rebuild_s, 3),
        "rebuild_ev_s": round(events / rebuild_s) if rebuild_s else None,
        "rebuild_read_s": round(wall["read"], 3),  # reading the log
        "fold_ev_s": round(events / wall["apply"]) if wall["apply"] else None,  # the view's
        # CPU per record, whatever else the machine runs: reading the log, the view's
        # statements (loads, writes), and the fold itself (the rest of applying pages).
        "rebuild_cpu_us": {
            "read": _per(cpu["read"], events),
            "view_sql": _per(cpu["view_sql"], events),
            "fold": _per(cpu["apply"] - cpu["view_sql"], events),
        },
        "report_ms": report_ms,
        "as_of": instant.isoformat(),
        "as_of_position": position,
        "as_of_cadres": len(then["cadres"]),
        "as_of_report_ms": as_of_ms,
        "rounds": rounds,
    }
