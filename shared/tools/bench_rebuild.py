"""`grassroots bench rebuild [district options]`: the compliance view rebuilt on the district
log as the running platform rebuilds it, beside the in-process rebuild of `bench district`,
in the same run.

In the platform a view reads the visits log over RPC (`read_log`, pages of at most 2,000
CloudEvents with personal fields withheld), so a rebuild costs the log's read, the events'
JSON both ways and the broker besides the fold. Here the visits and compliance services run
as `grassroots up` runs them (own processes, own RabbitMQ node, SQLite under a temporary
var/) on a copy of the district log, its relay's checkpoint set at the head (the data set was
never published; publishing it is not what is measured). Timed: the view's first catch-up
from empty (from the services' start, so their start-up is in it), then `projections
rebuild compliance`, each until the view's checkpoint reaches the log's head. Progress on
stderr, JSON on stdout.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from shared.eventlog import EventLog
from shared.runtime.relay import Checkpoints
from shared.runtime.rpc import cluster
from shared.tools import district
from shared.tools.bench import _say
from shared.tools.bench_api import started
from shared.tools.bench_district import START, _add_months
from shared.tools.bench_views import view_figures

VIEW = "compliance"
READY_SECONDS = 120.0


def bench_rebuild(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.cadres, args.months = min(args.cadres, 200), min(args.months, 2)
    path = district.cached_path(args.cache, args.cadres, args.months, args.seed)
    _say(f"district log: {path}")
    district.build(path, args.cadres, args.months, args.seed, START)
    month = f"{_add_months(START, args.months // 2):%Y-%m}"
    log = EventLog.open(f"sqlite:///{path}", service="visits")
    try:
        local = view_figures(log, month, rounds=1)
    finally:
        log.close()
    out: dict[str, Any] = {"cadres": args.cadres, "months": args.months,
                           "events": local["events"], "rebuild_ev_s": local["rebuild_ev_s"]}
    with tempfile.TemporaryDirectory(prefix="grassroots-bench-rebuild-") as tmp:
        work = Path(tmp)
        head = _copy(path, work / "var" / "visits.db")
        with started(work, ("visits", VIEW)) as platform, \
                cluster(platform.amqp_uri, timeout=30) as rpc:
            start = time.perf_counter()
            _until_caught_up(rpc, head, start)
            out["catch_up_rpc_s"] = round(time.perf_counter() - start, 2)
            _say(f"bench rebuild: first catch-up over RPC in {out['catch_up_rpc_s']} s")
            start = time.perf_counter()
            getattr(rpc, VIEW).rebuild()
            _until_caught_up(rpc, head, start)
            spent = time.perf_counter() - start
    out["rebuild_rpc_s"] = round(spent, 2)
    out["rebuild_rpc_ev_s"] = round(head / spent)
    out["rpc_vs_in_process"] = round(out["rebuild_rpc_ev_s"] / out["rebuild_ev_s"], 2)
    return out


def _copy(source: Path, target: Path) -> int:
    """Copy the log (SQLite's backup, whatever a reader left in its WAL) and its residents'
    keys to where the service keeps them (var/keys/, as `grassroots up` runs it: without
    them every resident would read as forgotten), and set the relay's checkpoint at the
    head; the head."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    keys = target.parent / "keys" / "visits.db"
    log = EventLog.open(f"sqlite:///{target}", service="visits", keys_url=f"sqlite:///{keys}")
    try:
        head = log.last_position()
        Checkpoints(log.engine, "relay:visits").advance(head)
    finally:
        log.close()
    with sqlite3.connect(keys) as store:
        store.execute("ATTACH DATABASE ? AS log", (str(target),))
        store.execute("INSERT INTO subject_keys SELECT * FROM log.subject_keys")
    return head


def _until_caught_up(rpc: Any, head: int, since: float) -> None:
    """Until the view has folded the log to `head` and is not rebuilding (the services may
    still be starting: a status call that fails is asked again)."""
    while True:
        try:
            status = getattr(rpc, VIEW).status()
        except Exception:  # noqa: BLE001 - not up yet; the deadline below bounds the wait
            status = None
        folded = ((status or {}).get("sources") or {}).get("visits", {}).get("checkpoint", 0)
        if status and not status["rebuilding"] and folded >= head:
            return
        if time.perf_counter() - since > READY_SECONDS + head / 1000:
            raise RuntimeError(f"the {VIEW} view did not reach position {head} in time")
        time.sleep(0.2)
