"""`grassroots chaos --soak SECONDS`: a long run at half the measured capacity with a random
fault every few minutes, sampled per window: each service's resident memory (VmRSS from
/proc), request latency p50/p99 and the views' lag. The first window (before any fault) and
the last (after the last fault healed) are compared.

Flat means the last window is within FLAT_RATIO of the first or within an absolute margin
(FLAT_MARGINS: memory in MB, latency in ms, lag in events), whichever is larger: a few MB of
allocator slack or a few ms of noise on a shared machine is not a trend.
"""

from __future__ import annotations

import datetime as dt
import random
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from shared.runtime import catalogue
from shared.runtime.rpc import ProxyPool
from shared.tools.chaos import _Supervisor, say, stage
from shared.tools.chaos_checks import Logs, checkpoints_of, settle, view_differences
from shared.tools.chaos_faults import FAULTS, Fault, Stage, died, exits
from shared.tools.chaos_load import Load, Outcome, roster, write_route

WARMUP = 10.0  # seconds of unpaced load that measure capacity
FLAT_RATIO = 1.2
FLAT_MARGINS = {"rss_mb": 8.0, "p50_ms": 5.0, "p99_ms": 20.0, "view_lag": 20.0}


def rss_mb(pid: int) -> float:
    """A process's resident memory in MB (VmRSS), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if values \
        else 0.0


def _lag(pool: ProxyPool, service: str) -> float:
    """Events of `service`'s log the slowest view has still to fold (0 while unreachable).
    Asked every second through a kept proxy (`pool`): not a new reply queue each time."""
    try:
        with pool.proxy() as rpc:
            seen = checkpoints_of(rpc)
            head = int(getattr(rpc, service).status()["last_position"])
    except Exception:  # a fault in progress: the window's other samples say it
        pool.clear()
        return 0.0
    return float(max((head - s.get(service, head) for s in seen.values()), default=0))


def _window(st: Stage, load: Load, start: float, end: float, lags: list[float],
            fault: Fault | None, before: dict[str, int]) -> dict[str, Any]:
    done: list[Outcome] = load.since(start, end)
    latencies = [o.latency for o in done if o.acked]
    return {
        "at_s": round(start - load.started, 1), "fault": fault.name if fault else None,
        "acked": len(latencies),
        "died": died(before, exits(st.platform), int(fault.kills) if fault else 0),
        "failed": sum(not o.acked for o in done),
        "failed_by": dict(Counter(str(o.status) for o in done if not o.acked)),
        "p50_ms": _ms(latencies, 0.5), "p99_ms": _ms(latencies, 0.99),
        "view_lag": max(lags, default=0.0),
        "rss_mb": {n: rss_mb(p.pid) for n, p in st.platform.procs.items()},
    }


def _flat(first: dict[str, Any], last: dict[str, Any]) -> dict[str, bool]:
    def within(a: float, b: float, margin: float) -> bool:
        return b <= max(a * FLAT_RATIO, a + margin)

    out = {f"rss_mb.{n}": within(first["rss_mb"].get(n, 0), mb, FLAT_MARGINS["rss_mb"])
           for n, mb in last["rss_mb"].items()}
    for key in ("p50_ms", "p99_ms", "view_lag"):
        out[key] = within(first[key], last[key], FLAT_MARGINS[key])
    # A platform that no longer acknowledges writes has no latency or lag to speak of: its
    # zeros are not flat (a soak once ended so, with every figure "flat").
    out["serving"] = last["acked"] >= first["acked"] / FLAT_RATIO / 2
    return out


def soak(seconds: float, faults: list[str], clients: int = 4,
         database: str = "sqlite") -> dict[str, Any]:
    from shared.campaign.policy import load_policy

    chosen = [FAULTS[name]() for name in faults]
    window = max(10.0, seconds / 12)
    every = min(180.0, max(window * 2, seconds / 4))
    day = load_policy().local_date(dt.datetime.now(dt.UTC)) - dt.timedelta(days=1)
    service = write_route().service
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="grassroots-soak-") as tmp, \
            stage(Path(tmp), database, chosen) as (st, token), _Supervisor(st.platform):
        st.down = 3.0
        usable = [f for f in chosen if not f.unavailable(st)]
        base = f"http://{st.platform.api}"
        roster(base, token)
        run_id = uuid.uuid4().hex[:8]
        load = Load(base, token, clients, day, run_id, st.duplicate_posts)
        asking = ProxyPool(st.harness_uri, 10, size=1)
        say(f"soak: measuring capacity for {WARMUP:g}s ...")
        load.start()
        time.sleep(WARMUP)
        capacity = sum(o.acked for o in load.since(0)) / WARMUP
        load.rate = capacity / 2
        say(f"soak: {capacity:.0f} writes/s; {seconds:g}s at {load.rate:.0f}/s, a fault every "
            f"{every:g}s, windows of {window:g}s ...")
        load.started = time.monotonic()
        windows, next_fault = [], load.started + every
        while time.monotonic() + window <= load.started + seconds:
            start, lags, fault, before = time.monotonic(), [], None, exits(st.platform)
            if start >= next_fault and start + 2 * window <= load.started + seconds and usable:
                fault = rng.choice(usable)
                say(f"soak: {fault.name}")
                fault.inject(st)
                time.sleep(st.down)
                fault.heal(st)
                next_fault = start + every
            while time.monotonic() < start + window:
                lags.append(_lag(asking, service))
                time.sleep(1.0)
            windows.append(_window(st, load, start, time.monotonic(), lags, fault, before))
        load.pause()
        settled = settle(st.harness_uri)
        logs = Logs(st.harness_uri, rf"chaos-{run_id}-\d+")
        logs.refresh()
        acked = [o for o in load.since(0) if o.acked]
        from shared.eventlog.storage import make_engine

        diffs = {}
        for view in catalogue.names("view"):
            engine = make_engine(st.platform.env(view)[f"{view.upper()}_DATABASE_URL"])
            diffs[view] = view_differences(view, engine, st.harness_uri) if settled \
                else ["not settled"]
            engine.dispose()
        load.stop()
        asking.clear()
    first, last = windows[0], windows[-1]
    flat = _flat(first, last)
    lost, dups = logs.lost(service, acked), logs.duplicates()
    deaths = {n: sum(w["died"].get(n, 0) for w in windows) for n in catalogue.names()}
    deaths = {n: d for n, d in deaths.items() if d}
    return {
        "database": database, "clients": clients, "seconds": seconds,
        "capacity_s": round(capacity, 1), "rate_s": round(capacity / 2, 1),
        "window_s": window, "fault_every_s": every, "windows": windows, "first": first,
        "last": last, "flat": flat, "acked": len(acked), "lost": lost, "duplicates": dups,
        "died": deaths,
        "views_equal": not any(diffs.values()), "view_differences": diffs,
        "ok": lost == 0 and dups == 0 and not any(diffs.values()) and all(flat.values())
        and not deaths,
    }


def soak_table(result: dict[str, Any]) -> str:
    first, last = result["first"], result["last"]
    lines = [f"soak: {result['seconds']:g}s on {result['database']} at {result['rate_s']} "
             f"writes/s (half of {result['capacity_s']}), {len(result['windows'])} windows, "
             f"faults: {', '.join(w['fault'] for w in result['windows'] if w['fault']) or '-'}",
             f"{'figure':<22}{'first':>10}{'last':>10}  flat"]
    for key in ("p50_ms", "p99_ms", "view_lag"):
        lines.append(f"{key:<22}{first[key]:>10}{last[key]:>10}  {result['flat'][key]}")
    for name, mb in last["rss_mb"].items():
        lines.append(f"{'rss_mb ' + name:<22}{first['rss_mb'].get(name, 0):>10}{mb:>10}  "
                     f"{result['flat']['rss_mb.' + name]}")
    lines.append(f"{'acked last/first':<22}{first['acked']:>10}{last['acked']:>10}  "
                 f"{result['flat']['serving']}")
    died = ", ".join(f"{n} {d}" for n, d in result["died"].items()) or "none"
    lines.append(f"acked {result['acked']}, lost {result['lost']}, duplicates "
                 f"{result['duplicates']}, deaths not caused by a kill: {died}, views "
                 f"{'equal' if result['views_equal'] else 'DIFFER'}: "
                 f"{'every must-hold held' if result['ok'] else 'a must-hold FAILED'}")
    return "\n".join(lines)
