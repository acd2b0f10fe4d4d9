"""The concurrent and single append figures of `grassroots bench district`, each beside the
bare-sqlite3 single-commit floor measured in the same process, interleaved over rounds.

They are measured twice:
- in the services' own runtime: a child process under eventlet's monkey patch (as nameko
  runs a service), the appenders green threads, as a service's concurrent requests are.
  These are the issue's figures (`append_concurrent_ev_s`, `append_single_ev_s`);
- with OS threads in the bench's process (`append_*_os_threads_ev_s`), what a tool or a
  test appending from threads would see. There every waiting appender is a thread the
  kernel has to wake and the GIL to admit, which costs more than the commit they share
  (measured: about 120 us of CPU an event at 8 threads against 65 us for one append alone).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.eventlog import EventLog, NewEvent
from shared.tools.bench import _Floor, _payload, _say

WRITERS = 8
_CHILD = ("import eventlet; eventlet.monkey_patch(); import sys; "
          "from shared.tools.bench_appends import child; child(sys.argv[1:])")


def append_figures(folder: Path, count: int, rounds: int) -> dict[str, Any]:
    """The green figures (from a child process) and the OS-thread figures, merged."""
    green = folder / "green"
    green.mkdir()
    done = subprocess.run([sys.executable, "-c", _CHILD, str(green), str(count), str(rounds)],
                          stdout=subprocess.PIPE, text=True, check=True)
    out: dict[str, Any] = json.loads(done.stdout)
    threads = folder / "threads"
    threads.mkdir()
    out.update({k.replace("_ev_s", "_os_threads_ev_s").replace("_vs_", "_os_threads_vs_"): v
                for k, v in _rounds(threads, count, rounds, "OS threads").items()
                if not k.startswith("sqlite_floor")})
    return out


def child(argv: list[str]) -> None:
    """In the monkey-patched child: the rounds, JSON on stdout."""
    folder, count, rounds = Path(argv[0]), int(argv[1]), int(argv[2])
    print(json.dumps(_rounds(folder, count, rounds, "green threads")))


def _rounds(folder: Path, count: int, rounds: int, kind: str) -> dict[str, Any]:
    """`WRITERS` appenders of one event a call, one appender, and bare sqlite3's single-event
    commit, interleaved (order reversed every other round); medians and ratios."""
    samples: dict[str, list[float]] = {}
    for round_ in range(rounds):
        here = folder / f"round-{round_}"
        here.mkdir()
        contenders: list[tuple[str, Callable[[Path], float]]] = [
            ("append_concurrent_ev_s", lambda at: _appenders(at / "many.db", count, WRITERS)),
            ("append_single_ev_s", lambda at: _appenders(at / "one.db", count // 4, 1)),
            ("sqlite_floor_append_single_ev_s",
             lambda at: _Floor(at).append_single(count // 4)[0]),
        ]
        for key, measure in contenders if round_ % 2 == 0 else contenders[::-1]:
            samples.setdefault(key, []).append(measure(here))
            _say(f"{kind}, round {round_ + 1}/{rounds}: {key:<32} {samples[key][-1]:>10,.0f}/s")
    out: dict[str, Any] = {k: round(statistics.median(v)) for k, v in samples.items()}
    floor = out["sqlite_floor_append_single_ev_s"]
    out["append_concurrent_vs_sqlite_floor"] = round(out["append_concurrent_ev_s"] / floor, 2)
    out["append_single_vs_sqlite_floor"] = round(out["append_single_ev_s"] / floor, 2)
    return out


def _appenders(path: Path, count: int, writers: int) -> float:
    """Events a second from `writers` threads (green ones once monkey-patched) appending one
    event a call to streams of their own."""
    log = EventLog.open(f"sqlite:///{path}", service="bench")
    each = count // writers
    go = threading.Event()

    def writer(w: int) -> None:
        go.wait()
        for i in range(each):
            log.append(f"visit-{w}-{i % 10}", [NewEvent("visit.recorded", _payload(i))])

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    go.set()
    for t in threads:
        t.join()
    rate = each * writers / (time.perf_counter() - start)
    log.close()
    return rate
